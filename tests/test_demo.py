"""The demo's recorded LLM replies cover every call the demo makes: it runs with no LLM at all, and on
through train and evaluate (here with a tiny cross-encoder, so the test takes seconds, not minutes)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from synthrank.cli.demo import DEMO_MODEL, demo_config, demo_file, run_demo
from synthrank.records import Judgment, Query, RunLayout, read_jsonl
from synthrank.run.manifest import read_manifest
from synthrank.run.runner import run_config
from test_training_support import tiny_model


@pytest.fixture(scope="module")
def demo_to_judge(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, Path]:
    """The demo run up to judge (its exit code and folder), shared: the second test goes on from it."""
    run_dir = tmp_path_factory.mktemp("demo") / "demo"
    return run_demo(run_dir, live=False, force=False, verbose=False, stop="judge"), run_dir


def test_demo_replays_every_llm_call_offline(demo_to_judge: tuple[int, Path]) -> None:
    assert demo_file("replies.sqlite").is_file()
    code, run_dir = demo_to_judge
    assert code == 0
    layout = RunLayout(run_dir)
    for stage in ("generate", "judge"):
        manifest = read_manifest(layout, stage)
        assert manifest is not None and manifest.status == "done", stage
        assert manifest.counts["calls"] == 0  # nothing was sent: every reply came from the recording
        assert manifest.counts["failures"] == 0
        assert manifest.counts["cache_hits"] > 0
    queries = list(read_jsonl(layout.queries, Query))
    judgments = list(read_jsonl(layout.judgments, Judgment))
    assert len(queries) >= 70 and {q.model for q in queries} == {DEMO_MODEL}
    assert len(judgments) >= 4 * len(queries)
    assert all(j.grade is not None and j.expected_grade is not None for j in judgments)


def test_demo_goes_on_through_train_and_evaluate(demo_to_judge: tuple[int, Path], tmp_path: Path) -> None:
    """The rest of the demo (mine, testset, distill, train, evaluate, report) on the replayed labels,
    with a tiny random cross-encoder in place of MiniLM: a trained model and nDCG rows for BM25, the
    bi-encoder and it. The tiny model is a sequence classifier already, so distill skips itself."""
    code, run_dir = demo_to_judge
    assert code == 0
    tiny = tiny_model(tmp_path / "tiny")
    config = demo_config(run_dir, live=False)
    train = dataclasses.replace(
        config.train,
        model=str(tiny),
        epochs=1,
        max_length=64,
        max_query_tokens=16,
        learning_rate=1e-3,
        cpu_threads=1,
        checkpoint_every=0,
    )
    evaluate = dataclasses.replace(
        config.evaluate, indomain_max_queries=20, max_length=96, max_query_tokens=16
    )
    assert run_config(config.with_changes(train=train, evaluate=evaluate), check_llm=False) == 0
    layout = RunLayout(run_dir)
    for stage in ("mine", "testset", "distill", "train", "evaluate", "report"):
        manifest = read_manifest(layout, stage)
        assert manifest is not None and manifest.status == "done", stage
    distill = read_manifest(layout, "distill")
    assert distill is not None and distill.counts["warm_start"] == "skipped"

    trained, start = (
        load_file(str(layout.model / "model.safetensors")),
        load_file(str(tiny / "model.safetensors")),
    )
    assert (layout.model / "config.json").is_file() and trained.keys() == start.keys()
    assert any(not torch.equal(trained[name], start[name]) for name in start)  # the steps changed it

    report = json.loads((layout.eval / "report.json").read_text())
    indomain = report["datasets"]["indomain"]
    assert 0 < indomain["queries"] <= 20
    systems = indomain["systems"]
    assert {"bm25", "bi-encoder", "ours"} <= set(systems)
    assert systems["bm25"]["kind"] == "first-stage" and systems["ours"]["kind"] == "cross-encoder"
    for name in ("bm25", "bi-encoder", "ours"):
        assert 0.0 <= systems[name]["ndcg@10"] <= 1.0, name
    assert systems["bi-encoder"]["ndcg@10"] > 0  # MiniLM finds some of the held-out answers
    assert report["candidate"].startswith("ours+bi@")  # fuse_weights = "auto": the fused row is tested
    assert "ours" in (layout.root / "report.md").read_text()
