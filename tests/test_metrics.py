"""Metrics against ranx on random runs, hand-checked edge cases, and the paired comparison."""

from __future__ import annotations

import random

import pytest

from synthrank.stages.evaluate import metrics


def random_case(seed: int, n_queries: int = 30, n_docs: int = 60) -> tuple[dict, dict]:
    rng = random.Random(seed)
    qrels, run = {}, {}
    for q in range(n_queries):
        docs = [f"d{i}" for i in range(n_docs)]
        judged = rng.sample(docs, rng.randint(1, 25))
        qrels[f"q{q}"] = {d: rng.choice([0, 1, 2, 3]) for d in judged}
        qrels[f"q{q}"][judged[0]] = rng.choice([1, 2, 3])  # at least one relevant
        qrels[f"q{q}"][f"unretrieved{q}"] = 2  # judged but never ranked: enters the ideal DCG and recall
        retrieved = rng.sample(docs, rng.randint(5, n_docs))
        run[f"q{q}"] = {d: rng.random() for d in retrieved}
    return qrels, run


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("relevance_level", [1, 2])
def test_metrics_match_ranx_on_random_runs(seed: int, relevance_level: int) -> None:
    import ranx

    qrels, run = random_case(seed)
    ours = metrics.evaluate(qrels, run, relevance_level=relevance_level)
    binary = [f"{m}-l{relevance_level}" for m in ("mrr@10", "map@100", "recall@100")]
    theirs = ranx.evaluate(ranx.Qrels(qrels), ranx.Run(run), binary, return_mean=False)
    for m in ("mrr@10", "map@100", "recall@100"):
        ranx_per_query = dict(zip(sorted(qrels), theirs[f"{m}-l{relevance_level}"], strict=True))
        for q, value in ours[m].items():
            assert value == pytest.approx(ranx_per_query[q], abs=1e-9), (m, q)
    # graded nDCG with linear gains (trec_eval's), which ranx computes whatever rel_lvl is
    ndcg = ranx.evaluate(ranx.Qrels(qrels), ranx.Run(run), "ndcg@10", return_mean=False)
    ranx_ndcg = dict(zip(sorted(qrels), ndcg, strict=True))
    for q, value in ours["ndcg@10"].items():
        assert value == pytest.approx(ranx_ndcg[q], abs=1e-9), q


def test_ndcg_by_hand_with_graded_gains_and_an_unretrieved_relevant() -> None:
    qrels = {"q": {"a": 3, "b": 0, "c": 1, "z": 2}}
    run = {"q": {"a": 0.1, "b": 0.9, "c": 0.5}}  # order: b, c, a
    dcg = 0 + 1 / 2**0 * 0 + 1 / 1.5849625007211562 + 3 / 2.0
    idcg = 3 + 2 / 1.5849625007211562 + 1 / 2.0
    assert metrics.ndcg(qrels["q"], run["q"]) == pytest.approx(dcg / idcg)
    assert metrics.mrr(qrels["q"], run["q"]) == pytest.approx(1 / 2)
    assert metrics.mrr(qrels["q"], run["q"], relevance_level=2) == pytest.approx(1 / 3)
    assert metrics.recall(qrels["q"], run["q"], k=100) == pytest.approx(2 / 3)
    assert metrics.average_precision(qrels["q"], run["q"]) == pytest.approx((1 / 2 + 2 / 3) / 3)


def test_a_judged_query_missing_from_the_run_scores_zero() -> None:
    per_query = metrics.per_query({"q1": {"a": 1}, "q2": {"a": 1}}, {"q1": {"a": 1.0}}, "ndcg@10")
    assert per_query == {"q1": 1.0, "q2": 0.0}


def test_ties_are_broken_by_doc_id_descending_like_trec_eval() -> None:
    assert metrics.ranked({"a": 1.0, "c": 1.0, "b": 2.0}, 3) == ["b", "c", "a"]


def test_unknown_metric_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown metric"):
        metrics.per_query({}, {}, "ndcg")


def test_paired_comparison_counts_and_detects_a_consistent_gain() -> None:
    rng = random.Random(0)
    base = {f"q{i}": rng.random() * 0.5 for i in range(40)}
    better = {q: v + 0.2 + rng.random() * 0.05 for q, v in base.items()}
    better["q0"] = base["q0"]
    out = metrics.paired_comparison(base, better)
    assert (out["wins"], out["ties"], out["losses"]) == (39, 1, 0)
    assert out["p_ttest"] < 1e-6 and out["p_randomization"] < 0.001
    assert out["mean_diff"] == pytest.approx(sum(better[q] - base[q] for q in base) / 40)
    noise = {q: v + rng.choice([-0.01, 0.01]) for q, v in base.items()}
    assert metrics.paired_comparison(base, noise)["p_randomization"] > 0.01
    assert metrics.paired_comparison(base, base)["p_ttest"] == 1.0
