"""The in-domain test set without real questions (testset stage), the evaluation report's verdicts,
fusion weights picked on the dev set, `datasets = []`, and the pre-flight check of the data sets."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from llm_support import FakeServer, fake_server_fixture, fake_server_process_fixture  # noqa: F401
from synthrank.errors import ConfigError, EmptyOutputError
from synthrank.records import Passage, RunLayout
from synthrank.run.report import write_run_report
from synthrank.run.settings import PipelineConfig, load_config
from synthrank.stages.evaluate.datasets import KIND_SYNTHETIC, check_datasets, load_indomain_any
from synthrank.stages.evaluate.evaluator import FUSE_GRID, EvalConfig, run_evaluate, verdict
from synthrank.stages.evaluate.report import markdown_tables, verdict_line
from synthrank.stages.testset import pick_passages, run_testset
from test_pipeline import synthrank, write_config, write_corpus
from test_training_support import tiny_model, tiny_run

NO_QUESTIONS = {'path = "corpus.jsonl"': 'path = "corpus.jsonl"'}  # keeps `question` out of the passages
SMALL_TESTSET = {
    "synthetic_queries = 100": "synthetic_queries = 6",
    "synthetic_judge_top_m = 10": "synthetic_judge_top_m = 3",
}


@pytest.fixture(scope="module", name="tiny_reranker")
def tiny_reranker_fixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model(tmp_path_factory.mktemp("model") / "tiny")


def test_test_passages_spread_over_documents_and_clusters() -> None:
    passages = [Passage(f"d{d}#{i}", f"d{d}", "text") for d in range(3) for i in range(4)]
    rows = list(range(len(passages)))
    n_tokens = np.full(len(passages), 50)
    n_tokens[0] = 5  # too short
    clusters = np.arange(len(passages))
    clusters[5] = clusters[4]  # d1#0 and d1#1 are near duplicates
    picked = pick_passages(passages, rows, n_tokens, clusters, 6, min_tokens=16, max_tokens=None, seed=0)
    docs = [passages[r].doc_id for r in picked]
    assert sorted(docs[:3]) == ["d0", "d1", "d2"] and sorted(docs[3:]) == ["d0", "d1", "d2"]
    assert 0 not in picked and not {4, 5} <= set(picked)
    again = pick_passages(passages, rows, n_tokens, clusters, 6, min_tokens=16, max_tokens=None, seed=0)
    assert again == picked
    other_seed = pick_passages(passages, rows, n_tokens, clusters, 6, min_tokens=16, max_tokens=None, seed=1)
    assert sorted(other_seed) != sorted(picked) or other_seed != picked


def _ingested_run(
    tmp_path: Path, server_url: str, model: Path, **edits: str
) -> tuple[PipelineConfig, RunLayout]:
    from synthrank.stages.ingest.ingest import run_ingest
    from synthrank.stages.retrieve import run_embed

    write_corpus(tmp_path / "corpus.jsonl")
    config = load_config(write_config(tmp_path, server_url, model, **NO_QUESTIONS, **SMALL_TESTSET, **edits))
    layout = RunLayout(config.run.dir)
    assert config.corpus.path is not None
    run_ingest(layout, config.corpus, config.corpus.path)
    run_embed(layout, config.embed)
    return config, layout


def test_corpus_without_questions_gets_a_synthetic_graded_test_set(
    tmp_path: Path, fake_server: FakeServer, tiny_reranker: Path
) -> None:
    config, layout = _ingested_run(tmp_path, fake_server.url, tiny_reranker)
    counts = run_testset(layout, config)
    assert counts["kind"] == KIND_SYNTHETIC and counts["passages"] == 6
    assert 0 < counts["queries"] <= 6 and counts["calls"] > 0
    info = json.loads((layout.test / "testset.json").read_text())
    assert info["kind"] == KIND_SYNTHETIC and info["source_min_grade"] == 2

    heldout = set(json.loads(layout.split.read_text())["heldout_doc_ids"])
    corpus = [json.loads(line) for line in (layout.test / "corpus.jsonl").read_text().splitlines()]
    assert corpus and all(row["_id"].split("#")[0] in heldout for row in corpus)  # never a training passage
    queries = {q["_id"]: q for q in map(json.loads, (layout.test / "queries.jsonl").read_text().splitlines())}
    with open(layout.test / "qrels" / "test.tsv") as fh:
        qrels = {(q, d): int(g) for q, d, g in list(csv.reader(fh, delimiter="\t"))[1:]}
    with open(layout.test / "candidates.tsv") as fh:
        candidates = [(q, d) for q, d, _ in list(csv.reader(fh, delimiter="\t"))[1:]]
    assert set(candidates) == set(qrels)  # every candidate a system can rank is graded
    for qid, query in queries.items():
        assert qrels[(qid, query["source_passage"])] >= 2  # the passage it was written for
        pool = [d for q, d in candidates if q == qid]
        assert 2 <= len(pool) <= 1 + 2 * 3
    assert any(g < 2 for g in qrels.values())  # graded by the judge, not only "the source passage"
    # relevant for the binary metrics: grade >= 2; grade 1 is "on topic, does not answer"
    relevant = [sum(g >= 2 for (q, _), g in qrels.items() if q == qid) for qid in queries]
    assert info["relevant_per_query"] == round(sum(relevant) / len(relevant), 2)

    ds = load_indomain_any(layout)
    assert ds.meta["kind"] == KIND_SYNTHETIC and ds.name == "indomain" and ds.relevance_level == 2
    assert set(ds.candidates) == set(queries)

    hits = fake_server.stats()["hits"]
    assert run_testset(layout, config)["queries"] == counts["queries"]
    assert fake_server.stats()["hits"] == hits  # a re-run is answered by the run's cache

    run_evaluate(layout, EvalConfig(models=[f"ours={tiny_reranker}"], datasets=["indomain"], max_length=64))
    report = json.loads((layout.eval / "report.json").read_text())
    assert report["datasets"]["indomain"]["kind"] == KIND_SYNTHETIC
    markdown = (layout.eval / "report.md").read_text()
    assert "synthetic: LLM-written queries, LLM-graded" in markdown
    assert "ours: " in markdown and " bi-encoder (nDCG@10 " in markdown


def test_no_test_set_is_a_dead_end_with_advice(
    tmp_path: Path, fake_server: FakeServer, tiny_reranker: Path
) -> None:
    config, layout = _ingested_run(tmp_path, fake_server.url, tiny_reranker)
    with pytest.raises(EmptyOutputError, match="testset"):
        load_indomain_any(layout)
    none = config.with_changes(evaluate=EvalConfig(synthetic_queries=0))
    with pytest.raises(EmptyOutputError, match="synthetic_queries = 0"):
        run_testset(layout, none)
    with pytest.raises(ConfigError, match=r"\[evaluate\] datasets: indomain: .*synthetic_queries = 0"):
        check_datasets(none, ingested=True)
    assert fake_server.stats()["hits"] == 0


def test_pre_flight_names_the_data_set_that_cannot_be_had(tmp_path: Path) -> None:
    config = PipelineConfig(source=tmp_path / "x.toml")
    beir = tmp_path / "beir"
    (beir / "qrels").mkdir(parents=True)
    (beir / "corpus.jsonl").write_text("")
    cases = [
        (EvalConfig(datasets=["trec-dl-19"], trec_dl_archive=str(tmp_path / "no.tar.gz")), "trec_dl_archive"),
        (EvalConfig(datasets=[str(beir)]), "lacks queries.jsonl"),
        (EvalConfig(datasets=["scifact"]), "neither indomain, dev, trec-dl-19 nor a BEIR folder"),
    ]
    for evaluate, message in cases:
        with pytest.raises(ConfigError, match=message):
            check_datasets(config.with_changes(evaluate=evaluate), ingested=False)
    from synthrank.run.settings import CorpusConfig

    no_heldout = config.with_changes(corpus=CorpusConfig(heldout_fraction=0.0))
    with pytest.raises(ConfigError, match="heldout_fraction = 0"):
        check_datasets(no_heldout, ingested=False)
    from synthrank.stages.mine import MineConfig

    no_dev = config.with_changes(evaluate=EvalConfig(datasets=["dev"]), mine=MineConfig(dev_fraction=0.0))
    with pytest.raises(ConfigError, match=r"datasets: dev .*dev_fraction > 0"):
        check_datasets(no_dev, ingested=False)
    check_datasets(config, ingested=False)  # the defaults: a synthetic set can be built
    check_datasets(config.with_changes(evaluate=EvalConfig(datasets=[])), ingested=False)


def test_run_refuses_an_unobtainable_data_set_before_any_work(tmp_path: Path, tiny_reranker: Path) -> None:
    write_corpus(tmp_path / "corpus.jsonl")
    edit = {'datasets = ["indomain"]': 'datasets = ["indomain", "no-such-folder"]'}
    config = write_config(tmp_path, "http://127.0.0.1:9/v1", tiny_reranker, **edit)
    result = synthrank("run", str(config), "--skip-llm-check", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "[evaluate] datasets: " in result.stderr and "no-such-folder" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "synthrank-run" / "manifests").exists()


def test_verdicts_say_better_worse_or_no_difference() -> None:
    better = verdict("ours", "bm25", {"p_randomization": 0.002, "mean_diff": 0.081, "n": 100.0})
    worse = verdict("ours", "bi-encoder", {"p_randomization": 0.0001, "mean_diff": -0.1, "n": 100.0})
    tie = verdict("ours", "naive", {"p_randomization": 0.4, "mean_diff": 0.01, "n": 100.0})
    assert [v["verdict"] for v in (better, worse, tie)] == ["better", "worse", "no significant difference"]
    assert verdict_line(better) == "ours: better than bm25 (nDCG@10 +0.0810, p = 0.002)"
    assert verdict_line(worse) == "ours: worse than bi-encoder (nDCG@10 -0.1000, p < 0.001)"
    assert verdict_line(tie).startswith("ours: no significant difference from naive")


def test_fuse_auto_picks_the_weight_on_the_dev_set_and_names_it(tmp_path: Path) -> None:
    layout = tiny_run(tmp_path / "run")
    tiny = tiny_model(tmp_path / "tiny")
    counts = run_evaluate(
        layout,
        EvalConfig(
            models=[f"ours={tiny}"],
            datasets=["indomain"],
            fuse_weights="auto",
            max_length=64,
            fuse_min_dev_queries=10,
        ),
    )
    report = json.loads((layout.eval / "report.json").read_text())
    weight = report["fusion"]["picked"]["ours"]
    assert weight in FUSE_GRID and counts["fuse_weights_picked"] == {"ours": weight}
    assert report["fusion"]["dev_queries"] == 12 and len(report["fusion"]["dev_ndcg@10"]["ours"]) == 11
    name = f"ours+bi@{weight:g} (picked on dev)"
    indomain = report["datasets"]["indomain"]
    assert report["candidate"] == name and list(indomain["systems"])[-1] == name
    lines = [verdict_line(v) for v in indomain["verdicts"]]
    assert any(line.startswith(f"{name}: ") and " bm25 " in line for line in lines)
    assert any(
        line.startswith("ours: ") and " bi-encoder " in line for line in lines
    )  # the unfused model too
    markdown = (layout.eval / "report.md").read_text()
    assert (
        "picked on 12 synthetic dev queries (weights 0 to 1" in markdown
        and "never on test questions" in markdown
    )

    # too few dev queries to pick on: picked on pseudo-queries cut from training passages instead
    run_evaluate(
        layout,
        EvalConfig(models=[f"ours={tiny}"], datasets=["indomain"], fuse_weights="auto", max_length=64),
    )
    report = json.loads((layout.eval / "report.json").read_text())
    fusion = report["fusion"]
    assert fusion["mode"] == "pseudo" and fusion["dev_queries"] == 12 and fusion["pseudo_queries"] >= 30
    assert report["candidate"] == f"ours+bi@{fusion['picked']['ours']:g} (picked on dev)"
    markdown = (layout.eval / "report.md").read_text()
    assert "pseudo-queries cut from training passages: the synthetic dev set has 12 queries" in markdown

    # ... and with pseudo-queries off: the even mix, fixed in advance, and not called "picked"
    run_evaluate(
        layout,
        EvalConfig(models=[f"ours={tiny}"], datasets=["indomain"], max_length=64, fuse_pseudo_queries=0),
    )
    report = json.loads((layout.eval / "report.json").read_text())
    assert report["fusion"]["mode"] == "even" and report["fusion"]["picked"] == {"ours": 0.5}
    assert report["candidate"] == "ours+bi@0.5"

    # no dev set (a run mined with dev_fraction = 0) and pseudo-queries off: nothing to pick on, so
    # the even mix, and the report says why
    import shutil

    shutil.rmtree(layout.dev)
    no_pseudo = EvalConfig(
        models=[f"ours={tiny}"], datasets=["indomain"], max_length=64, fuse_pseudo_queries=0
    )
    run_evaluate(layout, no_pseudo)
    report = json.loads((layout.eval / "report.json").read_text())
    assert report["fusion"] == {"mode": "even", "dev_queries": 0, "picked": {"ours": 0.5}}
    assert report["candidate"] == "ours+bi@0.5"
    assert "no synthetic dev set" in (layout.eval / "report.md").read_text()

    # no bi-encoder row: nothing to fuse with, so "auto" ranks the model alone
    run_evaluate(
        layout, EvalConfig(models=[f"ours={tiny}"], datasets=["indomain"], bi_encoder="", max_length=64)
    )
    report = json.loads((layout.eval / "report.json").read_text())
    assert report["fusion"] is None and report["candidate"] == "ours"


def test_models_are_compared_on_the_dev_set(tmp_path: Path) -> None:
    """`--dataset dev`: settings are picked by comparing their models on the synthetic dev set, with
    the paired test saying whether its queries can tell them apart."""
    layout = tiny_run(tmp_path / "run")
    tiny = tiny_model(tmp_path / "tiny")
    other = tiny_model(tmp_path / "other", seed=1)
    cfg = EvalConfig(models=[f"a={tiny}", f"b={other}"], datasets=["dev"], max_length=64)
    run_evaluate(layout, cfg)
    dev = json.loads((layout.eval / "report.json").read_text())["datasets"]["dev"]
    assert dev["queries"] == 12 and {"bi-encoder", "a", "b"} <= set(dev["systems"])
    assert any(v["system"] == "b" and v["baseline"] == "a" for v in dev["verdicts"])
    # no fused rows there: "auto" would pick the weight on these very queries
    assert not any("+bi@" in system for system in dev["systems"])
    markdown = (layout.eval / "report.md").read_text()
    assert "dev (12 queries; the synthetic dev set: for picking settings" in markdown

    import shutil

    shutil.rmtree(layout.dev)
    with pytest.raises(EmptyOutputError, match=r"no synthetic dev set .*dev_fraction > 0"):
        run_evaluate(layout, cfg)


def test_fuse_weights_option_is_checked() -> None:
    from synthrank.cli.training import FuseWeight

    with pytest.raises(ConfigError, match="fuse_weights"):
        EvalConfig(fuse_weights="best")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="needs the bi-encoder"):
        EvalConfig(fuse_weights=[0.5], bi_encoder="")
    assert EvalConfig(bi_encoder="").fuse_weights == "auto"  # the default: fused only where it can be
    assert FuseWeight().convert("auto", None, None) == "auto"
    assert FuseWeight().convert("0.3", None, None) == 0.3
    import click

    with pytest.raises(click.BadParameter):
        FuseWeight().convert("1.5", None, None)


def test_fuse_weights_key_error_names_the_key(tmp_path: Path) -> None:
    from synthrank.cli.init_config import template_text

    path = tmp_path / "synthrank.toml"
    assert load_config_text(path, template_text()).evaluate.fuse_weights == "auto"
    with pytest.raises(ConfigError, match=r"\[evaluate\] fuse_weights"):
        load_config_text(path, template_text().replace('fuse_weights = "auto"', 'fuse_weights = "best"'))
    off = template_text().replace('fuse_weights = "auto"', "fuse_weights = []")
    assert load_config_text(path, off).evaluate.fuse_weights == []


def load_config_text(path: Path, text: str) -> PipelineConfig:
    path.write_text(text)
    return load_config(path)


def test_no_data_sets_means_no_evaluation_and_a_finished_report(tmp_path: Path) -> None:
    layout = tiny_run(tmp_path / "run")
    layout.eval.mkdir(parents=True)
    (layout.eval / "chart.png").write_bytes(b"stale")
    counts = run_evaluate(layout, EvalConfig(datasets=[]))
    assert counts["datasets"] == 0
    assert not (layout.eval / "chart.png").exists()
    assert "No evaluation" in (layout.eval / "report.md").read_text()
    assert json.loads((layout.eval / "report.json").read_text())["datasets"] == {}
    write_run_report(layout, ("evaluate",))
    assert "No evaluation: `[evaluate] datasets` is empty." in (layout.root / "report.md").read_text()


def test_report_warns_when_the_loss_stays_at_chance_and_embeds_its_charts(tmp_path: Path) -> None:
    from synthrank.run.manifest import Manifest, write_manifest

    layout = tiny_run(tmp_path / "run")
    layout.model.mkdir()
    chance = math.log(4)
    steps = [{"step": i, "loss": chance - 0.01 * (i % 3), "lr": 1e-5} for i in range(1, 41)]
    (layout.model / "training_log.jsonl").write_text("".join(json.dumps(s) + "\n" for s in steps))
    config = {"loss": "lce", "group_size": 4}
    (layout.model / "synthrank_training.json").write_text(json.dumps({"config": config, "result": {}}))
    write_manifest(layout, Manifest("train", "done", "x", 0.0, 1.0, 1.0, {"steps": 40}))
    write_run_report(layout, ("train",))
    markdown = (layout.root / "report.md").read_text()
    assert "## At a glance" in markdown and "stayed near chance" in markdown and "ln(4) = 1.386" in markdown
    html = (layout.root / "report.html").read_text()
    assert 'src="data:image/png;base64,' in html and 'src="training_curve.png"' not in html

    learned = [{"step": i, "loss": chance / i} for i in range(1, 41)]
    (layout.model / "training_log.jsonl").write_text("".join(json.dumps(s) + "\n" for s in learned))
    write_run_report(layout, ("train",))
    assert "stayed near chance" not in (layout.root / "report.md").read_text()


def test_markdown_shows_the_test_set_kind_and_verdicts() -> None:
    systems = {
        "bm25": {"kind": "first-stage", "ndcg@10": 0.5, "mrr@10": 0.5, "map@100": 0.5, "recall@100": 1.0}
    }
    systems["ours"] = {**systems["bm25"], "kind": "cross-encoder", "ndcg@10": 0.6}
    for row in systems.values():
        row["pairs_per_second"] = None
    v = verdict("ours", "bm25", {"p_randomization": 0.01, "mean_diff": 0.1, "n": 50.0})
    report = {
        "candidate": "ours",
        "datasets": {
            "indomain": {
                "queries": 50,
                "pairs": 500,
                "first_stage": "bm25",
                "kind": KIND_SYNTHETIC,
                "systems": systems,
                "comparisons": {},
                "verdicts": [v],
            }
        },
    }
    text = markdown_tables(report)
    assert f"### indomain (50 queries; {KIND_SYNTHETIC}; 500 pairs" in text
    assert "- ours: better than bm25 (nDCG@10 +0.1000, p = 0.01)" in text


def test_run_on_a_corpus_without_questions_ends_with_a_synthetic_verdict(
    tmp_path: Path, fake_server: FakeServer, tiny_reranker: Path
) -> None:
    from synthrank.run.pipeline import STAGE_NAMES
    from test_pipeline import finished_times

    write_corpus(tmp_path / "corpus.jsonl")
    bi_encoder = 'bi_encoder = "embed"'
    edits = {
        **NO_QUESTIONS,
        **SMALL_TESTSET,
        bi_encoder: bi_encoder,  # fusion needs the bi-encoder row
        "dev_fraction = 0.05": "dev_fraction = 0.3",
        "fuse_min_dev_queries = 30": "fuse_min_dev_queries = 1",
    }
    config = write_config(tmp_path, fake_server.url, tiny_reranker, **edits)
    first = synthrank("run", str(config), cwd=tmp_path, timeout=1800)
    assert first.returncode == 0, first.stderr[-4000:]
    layout = RunLayout(tmp_path / "synthrank-run")
    assert (layout.test / "testset.json").is_file()
    report = (layout.root / "report.md").read_text()
    glance = report.split("## At a glance", 1)[1].split("\n## ", 1)[0]
    assert "**indomain** (" in glance and KIND_SYNTHETIC in glance and "(picked on dev): " in glance
    assert "## In-domain test set" in report
    html = (layout.root / "report.html").read_text()
    assert html.count('src="data:image/png;base64,') == 2  # training curve and evaluation chart

    # no evaluation: only the stages that read [evaluate] run again, and the report still finishes
    before = finished_times(layout)
    write_config(
        tmp_path, fake_server.url, tiny_reranker, **edits, **{'datasets = ["indomain"]': "datasets = []"}
    )
    second = synthrank("run", str(config), cwd=tmp_path, timeout=1800)
    assert second.returncode == 0, second.stderr[-4000:]
    after = finished_times(layout)
    assert {name for name in STAGE_NAMES if after[name] != before[name]} == {"testset", "evaluate", "report"}
    assert "No evaluation: `[evaluate] datasets` is empty." in (layout.root / "report.md").read_text()
