"""Hard-negative selection from retrieval candidates: the twin of `synthrank-core::negatives`.

Each candidate of a query is dropped for the first reason that applies, in `DROP_REASONS` order;
the survivors ("eligible", in rank order) are then taken from the top, or sampled without
replacement by a partial Fisher-Yates shuffle on the query's own SplitMix64 stream and put back in
rank order. Output rows are padded with id -1, score NaN, judged False.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from synthrank.native.reference.rng import SplitMix64, derive_seed

DROP_REASONS = (
    "invalid_id",
    "positive",
    "duplicate_of_positive",
    "near_duplicate_of_positive",
    "judged_relevant",
    "judged_ambiguous",
    "unjudged",
    "outside_rank_window",
    "above_max_score",
    "margin",
)
COUNT_NAMES = (*DROP_REASONS, "not_selected", "selected", "queries_short")


def weakest_positive_score(
    positives: set[int],
    pos_scores_row: list[float] | None,
    cand_ids_row: list[int],
    cand_scores_row: list[float],
) -> float | None:
    if pos_scores_row is not None:
        scores = [score for score in pos_scores_row if not math.isnan(score)]
    else:
        scores = [s for c, s in zip(cand_ids_row, cand_scores_row, strict=True) if c in positives]
    return min(scores) if scores else None


def drop_reason(
    rank: int,
    cand_id: int,
    score: float,
    label: float,
    positives: set[int],
    positive_hashes: set[int],
    positive_clusters: set[int],
    weakest: float | None,
    options: dict[str, Any],
) -> str | None:
    doc_hashes, cluster_ids = options["doc_hashes"], options["cluster_ids"]
    if cand_id < 0:
        return "invalid_id"
    if cand_id in positives:
        return "positive"
    if doc_hashes is not None and int(doc_hashes[cand_id]) in positive_hashes:
        return "duplicate_of_positive"
    if cluster_ids is not None and int(cluster_ids[cand_id]) in positive_clusters:
        return "near_duplicate_of_positive"
    if label >= options["relevant_min_label"]:
        return "judged_relevant"
    if options["negative_max_label"] < label < options["relevant_min_label"]:
        return "judged_ambiguous"
    if math.isnan(label) and not options["allow_unjudged"]:
        return "unjudged"
    if not options["range_min"] <= rank < options["range_max"]:
        return "outside_rank_window"
    if options["max_score"] is not None and score > options["max_score"]:
        return "above_max_score"
    if weakest is not None:
        absolute, relative = options["absolute_margin"], options["relative_margin"]
        if absolute is not None and score > weakest - absolute:
            return "margin"
        if relative is not None and score > weakest * (1.0 - relative):
            return "margin"
    return None


def choose(eligible: list[int], num_negatives: int, sampling: str, seed: int, query: int) -> list[int]:
    if len(eligible) <= num_negatives or sampling == "top":
        return eligible[:num_negatives]
    rng = SplitMix64(derive_seed(seed, query))
    order = list(range(len(eligible)))
    for i in range(num_negatives):
        j = i + rng.below(len(eligible) - i)
        order[i], order[j] = order[j], order[i]
    return [eligible[position] for position in sorted(order[:num_negatives])]


def select_negatives(
    cand_ids: np.ndarray,
    cand_scores: np.ndarray,
    pos_ids: np.ndarray,
    num_negatives: int,
    pos_scores: np.ndarray | None,
    labels: np.ndarray | None,
    doc_hashes: np.ndarray | None,
    cluster_ids: np.ndarray | None,
    range_min: int,
    range_max: int | None,
    absolute_margin: float | None,
    relative_margin: float | None,
    max_score: float | None,
    sampling: str,
    seed: int,
    relevant_min_label: float,
    negative_max_label: float,
    allow_unjudged: bool,
    threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[tuple[str, int]]]:
    n_queries, k = cand_ids.shape
    options = {
        "doc_hashes": doc_hashes,
        "cluster_ids": cluster_ids,
        "relevant_min_label": relevant_min_label,
        "negative_max_label": negative_max_label,
        "allow_unjudged": allow_unjudged,
        "range_min": range_min,
        "range_max": k if range_max is None else range_max,
        "max_score": max_score,
        "absolute_margin": absolute_margin,
        "relative_margin": relative_margin,
    }
    neg_ids = np.full((n_queries, num_negatives), -1, dtype=np.int64)
    neg_scores = np.full((n_queries, num_negatives), np.nan, dtype=np.float32)
    neg_judged = np.zeros((n_queries, num_negatives), dtype=bool)
    counts = dict.fromkeys(COUNT_NAMES, 0)

    for query in range(n_queries):
        ids_row = cand_ids[query].tolist()
        scores_row = [float(score) for score in cand_scores[query]]
        labels_row = [math.nan] * k if labels is None else [float(label) for label in labels[query]]
        positives = {int(pid) for pid in pos_ids[query] if pid >= 0}
        positive_hashes = set() if doc_hashes is None else {int(doc_hashes[pid]) for pid in positives}
        positive_clusters = set() if cluster_ids is None else {int(cluster_ids[pid]) for pid in positives}
        pos_row = None
        if pos_scores is not None:
            pos_row = [float(s) for s, pid in zip(pos_scores[query], pos_ids[query], strict=True) if pid >= 0]
        weakest = weakest_positive_score(positives, pos_row, ids_row, scores_row)

        eligible = []
        for rank in range(k):
            reason = drop_reason(
                rank,
                ids_row[rank],
                scores_row[rank],
                labels_row[rank],
                positives,
                positive_hashes,
                positive_clusters,
                weakest,
                options,
            )
            if reason is None:
                eligible.append(rank)
            else:
                counts[reason] += 1

        chosen = choose(eligible, num_negatives, sampling, seed, query)
        for slot, rank in enumerate(chosen):
            neg_ids[query, slot] = ids_row[rank]
            neg_scores[query, slot] = scores_row[rank]
            neg_judged[query, slot] = not math.isnan(labels_row[rank])
        counts["not_selected"] += len(eligible) - len(chosen)
        counts["selected"] += len(chosen)
        counts["queries_short"] += int(len(chosen) < num_negatives)
    return neg_ids, neg_scores, neg_judged, list(counts.items())
