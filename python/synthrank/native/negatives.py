"""Hard-negative selection from retrieval candidates, with every drop counted by reason.

A candidate is dropped for the first reason that applies, in this order: `invalid_id` (usearch's -1
padding), `positive`, `duplicate_of_positive` (same exact hash), `near_duplicate_of_positive` (same
cluster), `judged_relevant` (label >= relevant_min_label), `judged_ambiguous` (between the two label
bounds), `unjudged` (NaN label and not allow_unjudged), `outside_rank_window` (rank outside
[range_min, range_max)), `above_max_score`, `margin` (score > weakest positive - absolute_margin or
> weakest * (1 - relative_margin); the weakest positive score comes from pos_scores, else from the
candidate row; no positive score means no margin check). The eligible rest is taken from the top, or
sampled (per-query SplitMix64 stream from (seed, query), partial Fisher-Yates) and kept in rank
order. Rows are padded with id -1, score NaN, judged False. Repeated ids within one candidate row
are not merged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from synthrank.errors import InvalidArgumentError
from synthrank.native import _backend, _checks

SAMPLING_MODES = ("top", "random")
MAX_NEGATIVES = 65_536  # far more than any training group needs; bounds the output allocation


@dataclass(frozen=True, eq=False)  # arrays have no single truth value to compare by
class NegativeSelection:
    """neg_ids int64[Q, n] (-1 padded), neg_scores float32[Q, n], neg_judged bool[Q, n], counts."""

    neg_ids: np.ndarray
    neg_scores: np.ndarray
    neg_judged: np.ndarray
    counts: dict[str, int]


def _check_ids_in_range(ids: np.ndarray, positives: np.ndarray, tables: dict[str, np.ndarray | None]) -> None:
    largest = {name: int(arr.max()) for name, arr in (("cand_ids", ids), ("pos_ids", positives)) if arr.size}
    for table_name, table in tables.items():
        for name, value in largest.items():
            if table is not None and value >= len(table):
                raise InvalidArgumentError(
                    f"{name}: id {value} is out of range for {table_name} of length {len(table)}"
                )


def select_negatives(
    cand_ids: np.ndarray,
    cand_scores: np.ndarray,
    pos_ids: np.ndarray,
    *,
    num_negatives: int,
    pos_scores: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    doc_hashes: np.ndarray | None = None,
    cluster_ids: np.ndarray | None = None,
    range_min: int = 0,
    range_max: int | None = None,
    absolute_margin: float | None = None,
    relative_margin: float | None = None,
    max_score: float | None = None,
    sampling: str = "top",
    seed: int = 0,
    relevant_min_label: float = 2.0,
    negative_max_label: float = 0.0,
    allow_unjudged: bool = True,
    backend: str | None = None,
    threads: int | None = None,
) -> NegativeSelection:
    """Pick up to `num_negatives` hard negatives per query from its ranked candidates."""
    ids = _checks.array("cand_ids", cand_ids, np.int64, 2)
    scores = _checks.array("cand_scores", cand_scores, np.float32, 2)
    _checks.same_shape("cand_scores", scores, ids.shape, "cand_ids")
    positives = _checks.array("pos_ids", pos_ids, np.int64, 2)
    if positives.shape[0] != ids.shape[0]:
        raise InvalidArgumentError(f"pos_ids: {positives.shape[0]} rows but cand_ids has {ids.shape[0]}")
    positive_scores = _checks.optional_array("pos_scores", pos_scores, np.float32, 2)
    _checks.same_shape("pos_scores", positive_scores, positives.shape, "pos_ids")
    label_arr = _checks.optional_array("labels", labels, np.float32, 2)
    _checks.same_shape("labels", label_arr, ids.shape, "cand_ids")
    hashes = _checks.optional_array("doc_hashes", doc_hashes, np.uint64, 1)
    clusters = _checks.optional_array("cluster_ids", cluster_ids, np.int64, 1)
    if hashes is not None and clusters is not None and len(hashes) != len(clusters):
        raise InvalidArgumentError(
            f"cluster_ids: length {len(clusters)} does not match doc_hashes length {len(hashes)}"
        )
    _check_ids_in_range(ids, positives, {"doc_hashes": hashes, "cluster_ids": clusters})

    k = ids.shape[1]
    range_min = _checks.integer("range_min", range_min, minimum=0)
    if range_max is not None:
        range_max = _checks.integer("range_max", range_max, minimum=range_min)
    relative = _checks.real("relative_margin", relative_margin, allow_none=True)
    if relative is not None and not 0.0 <= relative < 1.0:
        raise InvalidArgumentError(f"relative_margin: must be in [0, 1), got {relative}")
    if sampling not in SAMPLING_MODES:
        raise InvalidArgumentError(f"sampling: expected 'top' or 'random', got {sampling!r}")
    relevant = _checks.real("relevant_min_label", relevant_min_label)
    negative = _checks.real("negative_max_label", negative_max_label)
    assert relevant is not None and negative is not None
    if negative > relevant:
        raise InvalidArgumentError(
            f"negative_max_label: must be <= relevant_min_label ({relevant}), got {negative}"
        )
    neg_ids, neg_scores, neg_judged, counts = _backend.guarded(
        _backend.get(backend).select_negatives,
        ids,
        scores,
        positives,
        num_negatives=_checks.integer("num_negatives", num_negatives, minimum=0, maximum=MAX_NEGATIVES),
        pos_scores=positive_scores,
        labels=label_arr,
        doc_hashes=hashes,
        cluster_ids=clusters,
        range_min=range_min,
        range_max=k if range_max is None else min(range_max, k),
        absolute_margin=_checks.real("absolute_margin", absolute_margin, allow_none=True),
        relative_margin=relative,
        max_score=_checks.real("max_score", max_score, allow_none=True),
        sampling=sampling,
        seed=_checks.seed(seed),
        relevant_min_label=relevant,
        negative_max_label=negative,
        allow_unjudged=bool(allow_unjudged),
        threads=_checks.threads(threads),
    )
    return NegativeSelection(neg_ids, neg_scores, neg_judged, dict(counts))
