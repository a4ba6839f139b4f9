"""Mining: positives from grades, the false-negative guard, drops by reason, and the three outputs."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from synthrank.cli import main
from synthrank.errors import EmptyOutputError, InputFormatError
from synthrank.records import (
    Judgment,
    Passage,
    Query,
    RunLayout,
    TrainGroup,
    read_jsonl,
    to_json,
    write_jsonl_atomic,
)
from synthrank.stages.mine import MineConfig, run_mine

N_PASSAGES = 40
# Passage rows: 0 = q0's source; 1 = exact duplicate of 0; 2 = near-duplicate of 0 (same cluster);
# 3 = judged 3 for q0; 4 = judged 2 (relevant, so never a negative); 5 = withheld; 6.. = ordinary.
EXACT_DUP, NEAR_DUP, WITHHELD = 1, 2, 5


def make_run(root: Path, judgments: list[tuple[str, int, int | None]], k: int = 20) -> RunLayout:
    layout = RunLayout(root)
    layout.passages.parent.mkdir(parents=True)
    passages = [Passage(f"d{i}#0", f"d{i}", f"passage text {i}") for i in range(N_PASSAGES)]
    passages[EXACT_DUP] = Passage("d1#0", "d1", passages[0].text)
    passages[6] = Passage("d6#0", "d6", "passage text 6", title="Title 6")
    layout.passages.write_text("".join(to_json(p) + "\n" for p in passages), encoding="utf-8")
    hashes = np.arange(N_PASSAGES, dtype=np.uint64)
    hashes[EXACT_DUP] = hashes[0]
    clusters = np.arange(N_PASSAGES, dtype=np.int64)
    clusters[[EXACT_DUP, NEAR_DUP]] = 0
    heldout = np.zeros(N_PASSAGES, dtype=bool)
    heldout[WITHHELD] = True
    np.savez(
        layout.passage_arrays,
        exact_hash=hashes,
        cluster_id=clusters,
        n_tokens=np.full(N_PASSAGES, 10, dtype=np.int32),
        heldout=heldout,
    )
    # q_i's source is passage 10*i (q0: passage 0); its candidates: rows 0.. in rank order
    queries = [
        Query(f"q{i}", f"d{10 * i}", f"d{10 * i}#0", f"question {i}", "question", "v1", "t") for i in range(4)
    ]
    write_jsonl_atomic(layout.queries, queries)
    ids = np.stack([np.roll(np.arange(N_PASSAGES), -10 * i)[:k] for i in range(4)]).astype(np.int64)
    scores = np.tile(np.linspace(0.9, 0.1, k, dtype=np.float32), (4, 1))
    np.savez(layout.candidates, query_ids=np.array([q.query_id for q in queries]), ids=ids, scores=scores)
    write_jsonl_atomic(
        layout.judgments,
        [Judgment(q, f"d{row}#0", f"d{row}", g, None, "", "v1", "t") for q, row, g in judgments],
    )
    return layout


def q0_judgments(other_queries: bool = True) -> list[tuple[str, int, int | None]]:
    q0 = [
        ("q0", 0, 3),
        ("q0", EXACT_DUP, 0),
        ("q0", NEAR_DUP, 0),
        ("q0", 3, 3),
        ("q0", 4, 2),
        ("q0", WITHHELD, 0),
    ]
    q0 += [("q0", row, 0 if row % 2 else 1) for row in range(6, 20)]
    if not other_queries:
        return q0
    q1 = [("q1", 10, 1)] + [("q1", 10 + r, 0) for r in range(1, 15)]  # source judged irrelevant, nothing else
    q2 = [("q2", 20, None), ("q2", 21, 3)] + [("q2", 20 + r, 0) for r in range(2, 15)]  # unparsable source
    return q0 + q1 + q2  # q3 is never judged


def groups(layout: RunLayout) -> dict[str, TrainGroup]:
    return {g.query_id: g for g in read_jsonl(layout.train_groups, TrainGroup)}


def test_false_negative_guard_and_positives(tmp_path: Path) -> None:
    layout = make_run(tmp_path, q0_judgments())
    stats = run_mine(layout, MineConfig(num_negatives=5, negative_max_grade=1, dev_fraction=0.0))
    g = groups(layout)["q0"]
    assert g.pos_ids == ["d0#0", "d3#0", "d4#0"]  # grade 3, 3, 2: best first
    assert g.query == "question 0" and g.pos[0] == "passage text 0"
    forbidden = {"d0#0", "d1#0", "d2#0", "d3#0", "d4#0", "d5#0"}  # positives, duplicates, withheld
    assert not forbidden & set(g.neg_ids)
    assert g.neg_ids == ["d6#0", "d7#0", "d8#0", "d9#0", "d10#0"] and g.neg_judged == [True] * 5
    assert g.neg[0] == "Title 6 passage text 6"  # what the reranker reads: the title goes with the text
    selection = stats["negative_selection"]
    assert selection["duplicate_of_positive"] >= 1 and selection["near_duplicate_of_positive"] >= 1
    assert stats["withheld_candidates_removed"] >= 1


def test_on_topic_passages_are_not_negatives_by_default(tmp_path: Path) -> None:
    layout = make_run(tmp_path, q0_judgments(other_queries=False))
    stats = run_mine(layout, MineConfig(num_negatives=5, dev_fraction=0.0))
    assert groups(layout)["q0"].neg_ids == ["d7#0", "d9#0", "d11#0", "d13#0", "d15#0"]  # grade 0 only
    assert stats["negative_selection"]["judged_ambiguous"] == 7  # the grade-1 rows 6, 8, ..., 18


def test_drops_are_counted_by_reason(tmp_path: Path) -> None:
    layout = make_run(tmp_path, q0_judgments())
    stats = run_mine(layout, MineConfig(num_negatives=5, dev_fraction=0.0))
    assert set(groups(layout)) == {"q0", "q2"}  # q2: its other candidate was judged 3
    assert stats["dropped"] == {
        "not_in_candidates": 0,
        "not_judged": 1,
        "source_judged_irrelevant": 1,
        "no_positive": 0,
        "too_few_negatives": 0,
    }
    assert stats["queries_in"] == 4 and stats["train_groups"] == 2
    assert stats["grade_distribution"]["unparsable"] == 1
    assert json.loads(layout.mining_stats.read_text())["train_groups"] == 2


def test_a_query_the_judges_source_gate_stopped_is_dropped_even_with_unjudged_negatives(
    tmp_path: Path,
) -> None:
    # `[judge] source_first`: q1's source graded 1 < positive_min_grade, so none of its candidates
    # was judged; q2's source passed and its candidates were judged as usual
    q2 = [("q2", 20, 3)] + [("q2", 20 + r, 0) for r in range(1, 15)]
    layout = make_run(tmp_path, [*q0_judgments(other_queries=False), ("q1", 10, 1), *q2])
    cfg = MineConfig(num_negatives=5, min_negatives=0, allow_unjudged=True, adapt="off", dev_fraction=0.0)
    stats = run_mine(layout, cfg)
    assert set(groups(layout)) == {"q0", "q2"}  # q1 has no positive: no group of unjudged negatives
    assert stats["dropped"]["source_judged_irrelevant"] == 1 and stats["dropped"]["not_judged"] == 1


def test_too_few_negatives_and_unjudged_easier_negatives(tmp_path: Path) -> None:
    layout = make_run(tmp_path, q0_judgments(other_queries=False), k=30)
    cfg = MineConfig(num_negatives=20, negative_max_grade=1, dev_fraction=0.0)
    with pytest.raises(EmptyOutputError, match=r"0 training groups.*allow_unjudged = true"):
        run_mine(layout, cfg)  # a dead end: the statistics are written, then the stage fails
    stats = json.loads(layout.mining_stats.read_text())
    assert stats["dropped"]["too_few_negatives"] == 1 and not groups(layout)
    stats = run_mine(layout, dataclasses.replace(cfg, allow_unjudged=True))
    g = groups(layout)["q0"]
    assert len(g.neg) == 20 and g.neg_judged.count(False) == 6  # rows 20-25 were never judged
    assert g.neg_ids[-6:] == [f"d{r}#0" for r in range(20, 26)] and stats["unjudged_negatives"] == 6


def test_outputs_load_in_datasets_sentence_transformers_and_flagembedding_format(tmp_path: Path) -> None:
    from datasets import load_dataset, load_from_disk

    layout = make_run(tmp_path, q0_judgments())
    run_mine(layout, MineConfig(num_negatives=4, dev_fraction=0.0))
    hf = load_from_disk(str(layout.train_groups_hf))
    assert hf.column_names == ["query", "positive", "negative_1", "negative_2", "negative_3", "negative_4"]
    assert hf[0]["query"] == "question 0" and hf[0]["positive"] == "passage text 0"
    # FlagEmbedding's reranker/embedder readers: datasets' json loader, then str query and list pos/neg
    flag = load_dataset("json", data_files=str(layout.train_groups), split="train")
    for row in flag:
        assert isinstance(row["query"], str) and isinstance(row["pos"], list) and isinstance(row["neg"], list)
        assert row["pos"] and row["neg"]


def test_hf_dataset_trains_a_sentence_transformers_cross_encoder(tmp_path: Path) -> None:
    from datasets import load_from_disk
    from sentence_transformers.cross_encoder import CrossEncoder, CrossEncoderTrainer
    from sentence_transformers.cross_encoder.losses import MultipleNegativesRankingLoss
    from sentence_transformers.cross_encoder.training_args import CrossEncoderTrainingArguments

    from synthrank.models import resolve_model

    layout = make_run(tmp_path, q0_judgments())
    run_mine(layout, MineConfig(num_negatives=3, dev_fraction=0.0))
    model = CrossEncoder(resolve_model("sentence-transformers/all-MiniLM-L6-v2"), num_labels=1, device="cpu")
    args = CrossEncoderTrainingArguments(
        output_dir=str(tmp_path / "out"),
        max_steps=1,
        per_device_train_batch_size=2,
        report_to=[],
        save_strategy="no",
    )
    trainer = CrossEncoderTrainer(
        model=model,
        args=args,
        train_dataset=load_from_disk(str(layout.train_groups_hf)),
        loss=MultipleNegativesRankingLoss(model),
    )
    assert trainer.train().global_step == 1


def test_dev_set_is_held_out_by_document_in_beir_layout(tmp_path: Path) -> None:
    layout = make_run(tmp_path, q0_judgments())
    with pytest.raises(EmptyOutputError, match="lower \\[mine\\] dev_fraction"):
        run_mine(layout, MineConfig(num_negatives=5, dev_fraction=0.999))  # every group went to dev
    stats = json.loads(layout.mining_stats.read_text())
    assert stats["dev_queries"] == 2 and stats["train_groups"] == 0
    queries = [json.loads(line) for line in (layout.dev / "queries.jsonl").read_text().splitlines()]
    assert {q["_id"] for q in queries} == {"q0", "q2"}
    corpus = {json.loads(line)["_id"] for line in (layout.dev / "corpus.jsonl").read_text().splitlines()}
    assert "d3#0" in corpus and "d5#0" not in corpus  # candidates, never withheld passages
    qrels = (layout.dev / "qrels" / "dev.tsv").read_text().splitlines()
    assert qrels[0] == "query-id\tcorpus-id\tscore"
    assert {"q0\td0#0\t2", "q0\td3#0\t2", "q0\td4#0\t1", "q2\td21#0\t2"} == set(qrels[1:])


def test_cli_prints_the_table_and_reports_missing_inputs(tmp_path: Path) -> None:
    layout = make_run(tmp_path / "ok", q0_judgments())
    result = CliRunner().invoke(main, ["mine", "--run", str(layout.root), "--num-negatives", "3"])
    assert result.exit_code == 0, result.output
    assert "source judged irrelevant" in result.output and "negatives per query" in result.output
    layout.judgments.unlink()
    result = CliRunner().invoke(main, ["mine", "--run", str(layout.root)])
    assert result.exit_code == 2 and "judgments.jsonl" in result.output and "Traceback" not in result.output
    with pytest.raises(InputFormatError, match="judge"):
        run_mine(layout, MineConfig())


def test_a_malformed_judgment_line_is_named(tmp_path: Path) -> None:
    layout = make_run(tmp_path, q0_judgments())
    lines = layout.judgments.read_text().splitlines()
    lines[3] = lines[3][:-5]  # a truncated JSON object
    layout.judgments.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputFormatError, match=r"judgments\.jsonl:4: invalid JSON"):
        run_mine(layout, MineConfig())
