"""Ranking metrics as pure functions on qrels/run dicts, plus paired significance tests.

qrels: {query_id: {doc_id: grade}}; run: {query_id: {doc_id: score}}. Conventions follow trec_eval:
documents are ranked by score (ties broken by doc id, descending), nDCG uses the grades as linear
gains and its ideal ranking counts every judged document (not only the retrieved ones), binary
metrics count grade >= `relevance_level` as relevant, and a judged query missing from the run scores 0.
Queries with no relevant document are left out of the binary metrics' averages, as trec_eval does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np

Qrels = Mapping[str, Mapping[str, int]]
Run = Mapping[str, Mapping[str, float]]

METRICS = ("ndcg@10", "mrr@10", "map@100", "recall@100")


def ranked(scores: Mapping[str, float], k: int) -> list[str]:
    """Doc ids by descending score, ties by descending doc id (trec_eval's order), cut at k."""
    return [d for d, _ in sorted(scores.items(), key=lambda item: (item[1], item[0]), reverse=True)[:k]]


def ndcg(grades: Mapping[str, int], scores: Mapping[str, float], k: int = 10) -> float:
    dcg = sum(
        grades.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked(scores, k)) if grades.get(d, 0) > 0
    )
    ideal = sorted((g for g in grades.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def mrr(
    grades: Mapping[str, int], scores: Mapping[str, float], k: int = 10, relevance_level: int = 1
) -> float:
    for i, d in enumerate(ranked(scores, k)):
        if grades.get(d, 0) >= relevance_level:
            return 1.0 / (i + 1)
    return 0.0


def average_precision(
    grades: Mapping[str, int], scores: Mapping[str, float], k: int = 100, relevance_level: int = 1
) -> float:
    n_relevant = sum(g >= relevance_level for g in grades.values())
    if n_relevant == 0:
        return 0.0
    hits, total = 0, 0.0
    for i, d in enumerate(ranked(scores, k)):
        if grades.get(d, 0) >= relevance_level:
            hits += 1
            total += hits / (i + 1)
    return total / n_relevant


def recall(
    grades: Mapping[str, int], scores: Mapping[str, float], k: int = 100, relevance_level: int = 1
) -> float:
    relevant = {d for d, g in grades.items() if g >= relevance_level}
    if not relevant:
        return 0.0
    return len(relevant.intersection(ranked(scores, k))) / len(relevant)


def _parse(metric: str) -> tuple[str, int]:
    name, _, cut = metric.partition("@")
    if name not in ("ndcg", "mrr", "map", "recall") or not cut.isdigit():
        raise ValueError(f"unknown metric {metric!r}; use e.g. {', '.join(METRICS)}")
    return name, int(cut)


def per_query(qrels: Qrels, run: Run, metric: str, relevance_level: int = 1) -> dict[str, float]:
    """The metric for every judged query that has at least one relevant document."""
    name, k = _parse(metric)
    fn: Callable[[Mapping[str, int], Mapping[str, float]], float]
    if name == "ndcg":
        fn = lambda g, s: ndcg(g, s, k)  # noqa: E731
    elif name == "mrr":
        fn = lambda g, s: mrr(g, s, k, relevance_level)  # noqa: E731
    elif name == "map":
        fn = lambda g, s: average_precision(g, s, k, relevance_level)  # noqa: E731
    else:
        fn = lambda g, s: recall(g, s, k, relevance_level)  # noqa: E731
    threshold = 1 if name == "ndcg" else relevance_level
    return {
        qid: fn(grades, run.get(qid, {}))
        for qid, grades in qrels.items()
        if any(g >= threshold for g in grades.values())
    }


def evaluate(
    qrels: Qrels, run: Run, metrics: tuple[str, ...] = METRICS, relevance_level: int = 1
) -> dict[str, dict[str, float]]:
    """{metric: {query_id: value}} for each metric."""
    return {m: per_query(qrels, run, m, relevance_level) for m in metrics}


def mean(values: Mapping[str, float]) -> float:
    return float(np.mean(list(values.values()))) if values else 0.0


def paired_comparison(
    baseline: Mapping[str, float], system: Mapping[str, float], *, n_resamples: int = 10_000, seed: int = 0
) -> dict[str, float]:
    """Per-query paired comparison of `system` against `baseline` on their shared queries.

    Returns the mean difference, wins/ties/losses of `system`, the paired t-test p-value and a
    two-sided paired randomisation (sign-flip) test p-value, which assumes no normality.
    """
    from scipy import stats

    shared = sorted(set(baseline) & set(system))
    diff = np.array([system[q] - baseline[q] for q in shared], dtype=np.float64)
    out = {
        "n": float(len(shared)),
        "mean_diff": float(diff.mean()) if len(diff) else 0.0,
        "wins": float((diff > 1e-12).sum()),
        "ties": float((np.abs(diff) <= 1e-12).sum()),
        "losses": float((diff < -1e-12).sum()),
        "p_ttest": 1.0,
        "p_randomization": 1.0,
    }
    if len(diff) < 2 or not np.any(np.abs(diff) > 1e-12):
        return out
    out["p_ttest"] = float(stats.ttest_rel([system[q] for q in shared], [baseline[q] for q in shared]).pvalue)
    rng = np.random.default_rng(seed)
    signs = rng.choice([-1.0, 1.0], size=(n_resamples, len(diff)))
    observed = abs(diff.mean())
    extreme = int((np.abs((signs * diff).mean(axis=1)) >= observed - 1e-15).sum())
    out["p_randomization"] = (extreme + 1) / (n_resamples + 1)
    return out
