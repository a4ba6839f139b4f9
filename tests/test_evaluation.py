"""Evaluation data sets (TREC DL 2019, in-domain held-out questions, BEIR) and the evaluate stage."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from synthrank.errors import ConfigError, InvalidArgumentError
from synthrank.models import DEFAULT_EMBEDDER
from synthrank.stages.evaluate import metrics
from synthrank.stages.evaluate.datasets import load_beir, load_indomain, load_trec_dl19
from synthrank.stages.evaluate.evaluator import (
    BiEncoder,
    EvalConfig,
    fuse_runs,
    load_bi_encoder,
    parse_model_spec,
    rerank_with_bi_encoder,
    run_evaluate,
    score_pairs,
)
from test_training_support import tiny_model, tiny_run

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
TREC_DL = REPO.parent / "shared" / "data" / "trec-dl-19.tar.gz"


def test_trec_dl_19_bm25_order_gives_the_published_ndcg() -> None:
    ds = load_trec_dl19(TREC_DL)
    assert len(ds.queries) == 43 and ds.n_pairs == 4300 and ds.relevance_level == 2
    assert all(len(c) == 100 for c in ds.candidates.values())
    assert all(d in ds.passages for c in ds.candidates.values() for d in c)
    per_query = metrics.per_query(ds.qrels, ds.first_stage_run(), "ndcg@10")
    assert len(per_query) == 43
    assert round(metrics.mean(per_query), 4) == 0.5058


def test_indomain_set_uses_real_questions_of_held_out_documents(tmp_path: Path) -> None:
    layout = tiny_run(tmp_path, heldout_topics=4)
    ds = load_indomain(layout, top_k=10)
    assert len(ds.queries) == 4 * 3
    asked = {text: qid for qid, text in ds.queries.items()}
    qid = asked["What are the treatment of vertigo ?"]
    assert ds.qrels[qid] == {"vertigo#1": 1}
    assert all(len(c) <= 10 for c in ds.candidates.values())
    assert "vertigo#1" in ds.candidates[qid]  # BM25 over all passages finds it
    assert any(not d.startswith(("rickets", "scurvy", "tinnitus", "vertigo")) for d in ds.passages)
    assert len(load_indomain(layout, top_k=10, max_queries=5).queries) == 5


def test_indomain_needs_held_out_questions(tmp_path: Path) -> None:
    layout = tiny_run(tmp_path, heldout_topics=4)
    layout.split.write_text(json.dumps({"heldout_doc_ids": [], "excluded_doc_ids": []}))
    with pytest.raises(InvalidArgumentError, match=r"meta\.question"):
        load_indomain(layout)


def test_beir_folder_without_candidates_gets_bm25_top_k(tmp_path: Path) -> None:
    layout = tiny_run(tmp_path)
    ds = load_beir(layout.dev, split="dev", top_k=5)
    assert ds.first_stage == "bm25" and len(ds.queries) == 12
    assert all(len(c) <= 5 for c in ds.candidates.values())
    run = ds.first_stage_run()
    assert metrics.mean(metrics.per_query(ds.qrels, run, "recall@100")) > 0.9
    with pytest.raises(InvalidArgumentError, match="not found"):
        load_beir(tmp_path / "missing")


def test_length_bucketed_scoring_returns_scores_in_input_order(tmp_path: Path) -> None:
    import torch

    from synthrank.stages.train import load_cross_encoder

    model, tokenizer = load_cross_encoder(str(tiny_model(tmp_path / "tiny")))
    queries = ["asthma", "gout treatment", "what is lupus"] * 7
    passages = [("word " * n).strip() for n in range(1, 22)]
    bucketed = score_pairs(model, tokenizer, queries, passages, max_length=64, tokens_per_batch=40)
    model.eval()

    def one_pair(q: str, p: str) -> float:
        with torch.no_grad():
            enc = tokenizer(q, p, return_tensors="pt", truncation="only_second", max_length=64)
            return float(model(**enc).logits[0, 0])

    one_by_one = [one_pair(q, p) for q, p in zip(queries, passages, strict=True)]
    assert bucketed.tolist() == pytest.approx(one_by_one, abs=1e-5)
    # bf16 autocast on the CPU: the same ranking signal, to bf16's precision
    low = score_pairs(model, tokenizer, queries, passages, max_length=64, precision="bf16")
    assert low.tolist() == pytest.approx(one_by_one, abs=0.05)
    assert low.tolist() != pytest.approx(one_by_one, abs=1e-6)


def test_evaluation_precision_is_checked() -> None:
    from synthrank.errors import ConfigError

    with pytest.raises(ConfigError, match="precision"):
        EvalConfig(precision="fp8")


def test_model_specs_take_an_optional_label(tmp_path: Path) -> None:
    assert parse_model_spec("ours=runs/x/model") == ("ours", "runs/x/model")
    assert parse_model_spec(str(tmp_path)) == (tmp_path.name, str(tmp_path))


def test_run_evaluate_compares_every_system_on_the_same_lists(tmp_path: Path) -> None:
    layout = tiny_run(tmp_path / "run")
    tiny = tiny_model(tmp_path / "tiny")
    cfg = EvalConfig(
        models=[f"base={tiny}", f"again={tiny}"],
        datasets=["trec-dl-19"],
        bi_encoder="",
        max_length=64,
        trec_dl_archive=str(TREC_DL),
    )
    counts = run_evaluate(layout, cfg)
    assert counts == {"datasets": 1, "systems": 3, "pairs": 4300, "report": str(layout.eval / "report.json")}
    report = json.loads((layout.eval / "report.json").read_text())
    dl = report["datasets"]["trec-dl-19"]
    assert list(dl["systems"]) == ["bm25 (pyserini)", "base", "again"]
    assert dl["systems"]["bm25 (pyserini)"]["ndcg@10"] == 0.5058
    assert dl["systems"]["base"]["pairs_per_second"] > 0
    same = dl["comparisons"]["base"]["ndcg@10"]  # one model twice: no difference at all
    assert same["ties"] == 43 and same["p_randomization"] == 1.0
    assert dl["systems"]["again"]["recall@100"] == dl["systems"]["bm25 (pyserini)"]["recall@100"]
    markdown = (layout.eval / "report.md").read_text()
    assert "| bm25 (pyserini) | 0.5058 |" in markdown and "again vs each system" in markdown
    assert (layout.eval / "chart.png").read_bytes()[:4] == b"\x89PNG"


def test_run_evaluate_in_domain_with_the_bi_encoder_row(tmp_path: Path) -> None:
    layout = tiny_run(tmp_path / "run")
    tiny = tiny_model(tmp_path / "tiny")
    cfg = EvalConfig(models=[f"ours={tiny}"], datasets=["indomain"], max_length=64, fuse_weights=[0.0, 1.0])
    run_evaluate(layout, cfg)
    report = json.loads((layout.eval / "report.json").read_text())
    systems = report["datasets"]["indomain"]["systems"]
    assert list(systems) == ["bm25", "bi-encoder", "ours", "ours+bi@0", "ours+bi@1"]
    assert systems["bi-encoder"]["ndcg@10"] > 0.9  # all-MiniLM-L6-v2 knows "symptoms of asthma"
    assert report["bi_encoder"] == {"model": DEFAULT_EMBEDDER, "query_prompt": "", "passage_prompt": ""}
    # weight 0 ranks as the bi-encoder, weight 1 as the cross-encoder; the last fused row is tested
    assert systems["ours+bi@0"]["ndcg@10"] == systems["bi-encoder"]["ndcg@10"]
    assert systems["ours+bi@1"]["ndcg@10"] == systems["ours"]["ndcg@10"]
    assert report["candidate"] == "ours+bi@1" and "ours" in report["datasets"]["indomain"]["comparisons"]


def test_the_bi_encoder_row_embeds_as_the_run_did(tmp_path: Path) -> None:
    import numpy as np
    import torch

    layout = tiny_run(tmp_path / "run")
    cpu = torch.device("cpu")
    assert load_bi_encoder(layout, "", cpu) is None
    plain = load_bi_encoder(layout, "embed", cpu)  # a run without embeddings: the default model
    assert plain is not None and (plain.query_prompt, plain.passage_prompt) == ("", "")
    settings = {
        "model": DEFAULT_EMBEDDER,
        "max_seq_length": 48,
        "query_prompt": "query: ",
        "passage_prompt": "passage: ",
    }
    layout.embeddings.mkdir(parents=True)
    layout.embeddings_manifest.write_text(json.dumps({"settings": settings}))
    bi = load_bi_encoder(layout, "embed", cpu)
    assert bi is not None and (bi.query_prompt, bi.passage_prompt) == ("query: ", "passage: ")
    assert bi.name == DEFAULT_EMBEDDER
    assert bi.model.max_seq_length == 48
    ds = load_indomain(layout, top_k=3, max_queries=2)
    run, _ = rerank_with_bi_encoder(bi, ds)
    qid = next(iter(ds.candidates))
    pid = ds.candidates[qid][0]
    q, p = bi.model.encode(
        [f"query: {ds.queries[qid]}", f"passage: {ds.passages[pid]}"], normalize_embeddings=True
    )
    assert run[qid][pid] == pytest.approx(float(np.dot(q, p)), abs=1e-5)
    unprompted, _ = rerank_with_bi_encoder(BiEncoder(bi.model), ds)
    assert unprompted[qid][pid] != pytest.approx(run[qid][pid], abs=1e-5)
    with pytest.raises(ConfigError, match=r"\[evaluate\] bi_encoder: cannot load"):
        load_bi_encoder(layout, str(tmp_path / "no-such-model"), cpu)


def test_fusion_mixes_per_query_z_scores() -> None:
    cross = {"q": {"a": 10.0, "b": 0.0, "c": 5.0}}  # logits: a > c > b
    first = {"q": {"a": 0.1, "b": 0.3, "c": 0.2}}  # cosines: b > c > a
    half = fuse_runs(cross, first, 0.5)["q"]
    assert all(v == pytest.approx(0.0) for v in half.values())  # mirror-image rankings cancel out
    leaning = fuse_runs(cross, first, 0.8)["q"]
    assert sorted(leaning, key=leaning.__getitem__, reverse=True) == ["a", "c", "b"]
    flat = fuse_runs({"q": {"a": 1.0, "b": 1.0}}, {"q": {"a": 0.2, "b": 0.1}}, 0.5)["q"]
    assert flat["a"] > flat["b"]  # a constant list has no spread: no division by zero
    with pytest.raises(ConfigError, match="fuse_weights"):
        EvalConfig(fuse_weights=[1.5])
    with pytest.raises(ConfigError, match="needs the bi-encoder"):
        EvalConfig(fuse_weights=[0.5], bi_encoder="")


def test_bm25_lists_leave_run_logs_quiet() -> None:
    """bm25s sets its own logger to DEBUG on import; a run's INFO log must not get its chatter."""
    import logging

    from synthrank.stages.evaluate.datasets import bm25_candidates

    found = bm25_candidates({"q": "fever cough"}, {"a": "fever and cough in children", "b": "tax law"}, 2)
    assert found["q"][0] == "a"
    assert not logging.getLogger("bm25s").isEnabledFor(logging.INFO)


def test_bm25_lists_order_equal_scores_by_passage_order() -> None:
    """Equal BM25 scores keep the corpus order, also across the top-k cut: bm25s's own top-k leaves
    them as numpy's unstable sorts do, and a BM25 row or a first-stage list that can change with
    numpy makes two runs' reports disagree."""
    from synthrank.stages.evaluate.datasets import bm25_candidates, top_k_indices

    passages = {f"p{i}": "cat sat" if i % 2 else "dog" for i in range(40)}
    found = bm25_candidates({"q": "cat sat", "none": "the of", "x": "zebra"}, passages, 5)
    assert found == {"q": ["p1", "p3", "p5", "p7", "p9"], "none": [], "x": []}
    scores = np.array([0.5, 2.0, 0.5, 2.0, 1.0, 0.5])
    assert top_k_indices(scores, 4).tolist() == [1, 3, 4, 0]
    assert top_k_indices(scores, 6).tolist() == [1, 3, 4, 0, 2, 5]


def test_a_new_head_on_an_encoder_is_said_once_without_transformers_alarm(
    capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """A bi-encoder start model has no relevance head by design: transformers' MISSING-keys report
    would read as a broken checkpoint in every run's log."""
    import logging

    from synthrank.models import DEFAULT_RERANKER_START
    from synthrank.scoring import load_cross_encoder

    with caplog.at_level(logging.INFO, logger="synthrank.scoring"):
        model, _ = load_cross_encoder(DEFAULT_RERANKER_START)
    assert model.config.num_labels == 1
    assert "MISSING" not in capfd.readouterr().err
    assert "a new 1-logit head" in caplog.text
