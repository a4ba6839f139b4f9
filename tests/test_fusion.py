"""The fused ranker: `fuse_scores`, the record evaluate leaves in the model folder, and
`FusedReranker` serving the same scores the report's fused row measured."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from synthrank import FusedReranker, fuse_scores
from synthrank.errors import InvalidArgumentError
from synthrank.fusion import FUSION_FILE, zscores
from synthrank.run.report import write_run_report
from synthrank.stages.evaluate.datasets import load_indomain_any
from synthrank.stages.evaluate.evaluator import (
    EvalConfig,
    evaluate_cross_encoder,
    fuse_runs,
    load_bi_encoder,
    rerank_with_bi_encoder,
    run_evaluate,
)
from synthrank.stages.train.model_card import finish_model_folder
from test_training_support import tiny_model, tiny_run


def test_fuse_scores_mixes_per_query_z_scores() -> None:
    cross, first = [2.0, 0.0, -2.0], [0.1, 0.3, 0.2]
    assert np.allclose(fuse_scores(cross, first, 1.0), [1.2247449, 0.0, -1.2247449])
    assert np.allclose(fuse_scores(cross, first, 0.0), zscores(first))
    assert np.allclose(fuse_scores(cross, first, 0.5), 0.5 * zscores(cross) + 0.5 * zscores(first))
    # the scale of either score does not matter, only its order and spread within the list
    assert np.allclose(fuse_scores([20.0, 0.0, -20.0], [1.0, 3.0, 2.0], 0.3), fuse_scores(cross, first, 0.3))
    assert np.array_equal(zscores([0.7, 0.7]), [0.0, 0.0])
    with pytest.raises(InvalidArgumentError, match="3 cross-encoder scores, 2 first"):
        fuse_scores(cross, first[:2], 0.5)


def test_evaluate_records_the_fused_ranker_and_fused_reranker_serves_it(tmp_path: Path) -> None:
    layout = tiny_run(tmp_path / "run")
    folder = tiny_model(layout.model)  # the run's model, as train leaves it
    finish_model_folder(folder, base_model="tiny", config={"max_length": 64}, result={"steps": 1})
    cfg = EvalConfig(datasets=["indomain"], max_length=64, fuse_min_dev_queries=10)
    run_evaluate(layout, cfg)  # the default fuse_weights: "auto"

    report = json.loads((layout.eval / "report.json").read_text())
    weight = report["fusion"]["picked"]["ours"]
    record = json.loads((folder / FUSION_FILE).read_text())
    assert record["weight"] == weight and record["mode"] == "auto" and record["dev_queries"] == 12
    assert record["bi_encoder"]["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert record["max_length"] == 64
    card = (folder / "README.md").read_text()
    assert f"Serving the fused ranker (ours+bi@{weight:g})" in card and "FusedReranker(" in card
    write_run_report(layout, ("evaluate",))
    glance = (layout.root / "report.md").read_text()
    assert f'To serve**: `synthrank.FusedReranker("{layout.model}")`' in glance

    # the served scores are the evaluated ones, for every query of the data set
    ds = load_indomain_any(layout, cfg.top_k, None, cfg.seed)
    cpu = torch.device("cpu")
    bi = load_bi_encoder(layout, cfg.bi_encoder, cpu)
    assert bi is not None
    bi_run, _ = rerank_with_bi_encoder(bi, ds)
    fused = fuse_runs(evaluate_cross_encoder("ours", folder, ds, cpu, cfg).run, bi_run, weight)
    ranker = FusedReranker(folder, device="cpu")
    for qid, docs in list(ds.candidates.items())[:3]:
        texts = [ds.passages[d] for d in docs]
        served = ranker.score(ds.queries[qid], texts)
        assert np.allclose(served, [fused[qid][d] for d in docs], atol=1e-4)
        cosines = [bi_run[qid][d] for d in docs]  # a first stage's own cosines skip the bi-encoder
        assert np.allclose(ranker.score(ds.queries[qid], texts, first=cosines), served, atol=1e-4)
        ranked = ranker.rank(ds.queries[qid], texts)
        assert [i for i, _ in ranked] == list(np.argsort(-served, kind="stable"))

    alone = FusedReranker(folder, device="cpu", weight=1.0)  # the cross-encoder alone, no bi-encoder
    assert np.allclose(alone.score("flu", ["a", "b"]), zscores(alone.cross_scores("flu", ["a", "b"])))
    assert alone._bi is None

    # a base model evaluated beside ours is not a synthrank folder: nothing is written into it
    other = tiny_model(tmp_path / "other", seed=1)
    run_evaluate(layout, EvalConfig(models=[f"o={other}"], datasets=["indomain"], max_length=64))
    assert not (other / FUSION_FILE).exists()


def test_fused_reranker_needs_the_record(tmp_path: Path) -> None:
    folder = tiny_model(tmp_path / "model")
    with pytest.raises(InvalidArgumentError, match=f"{FUSION_FILE}: not found"):
        FusedReranker(folder, device="cpu")
    (folder / FUSION_FILE).write_text('{"weight": 0.3}')
    with pytest.raises(InvalidArgumentError, match="not a fusion record"):
        FusedReranker(folder, device="cpu")
