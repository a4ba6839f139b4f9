"""synthrank.native.negatives: drop reasons, sampling, padding, and native == reference."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synthrank.errors import InvalidArgumentError
from synthrank.native import negatives
from synthrank.native.reference.negatives import COUNT_NAMES

BACKENDS = ("native", "python")
N_DOCS = 40
TABLE = object()  # in generated options: "pass the case's table of this name"


def random_case(seed: int, n_queries: int = 30, k: int = 12, n_pos: int = 2) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    cand_ids = rng.integers(-1, N_DOCS, (n_queries, k))
    scores = np.sort(rng.random((n_queries, k), dtype=np.float32), axis=1)[:, ::-1].copy()
    pos_ids = rng.integers(-1, N_DOCS, (n_queries, n_pos))
    labels = rng.choice(np.array([np.nan, 0, 1, 2, 3], dtype=np.float32), (n_queries, k))
    return {
        "cand_ids": cand_ids,
        "cand_scores": scores,
        "pos_ids": pos_ids,
        "pos_scores": rng.random((n_queries, n_pos), dtype=np.float32),
        "labels": labels,
        "doc_hashes": rng.integers(0, 25, N_DOCS).astype(np.uint64),
        "cluster_ids": rng.integers(0, 30, N_DOCS),
    }


def test_no_negative_is_a_positive_a_copy_or_a_cluster_mate() -> None:
    case = random_case(1)
    selection = negatives.select_negatives(
        case["cand_ids"],
        case["cand_scores"],
        case["pos_ids"],
        num_negatives=4,
        doc_hashes=case["doc_hashes"],
        cluster_ids=case["cluster_ids"],
    )
    assert selection.neg_ids.shape == (30, 4) and selection.neg_ids.dtype == np.int64
    for query in range(30):
        positives = [p for p in case["pos_ids"][query] if p >= 0]
        for neg in selection.neg_ids[query]:
            if neg < 0:
                continue
            assert neg not in positives
            assert all(case["doc_hashes"][neg] != case["doc_hashes"][p] for p in positives)
            assert all(case["cluster_ids"][neg] != case["cluster_ids"][p] for p in positives)
    counts = selection.counts
    assert list(counts) == list(COUNT_NAMES)
    dropped = sum(counts[name] for name in COUNT_NAMES[:-3])
    assert dropped + counts["not_selected"] + counts["selected"] == case["cand_ids"].size
    assert counts["selected"] == int((selection.neg_ids >= 0).sum())


def test_labels_margins_windows_and_padding() -> None:
    cand_ids = np.array([[10, 11, 12, 13, 14, 15, 16]])
    scores = np.array([[0.99, 0.95, 0.9, 0.8, 0.7, 0.6, 0.5]], dtype=np.float32)
    labels = np.array([[3, 1, 0, np.nan, 0, 0, 0]], dtype=np.float32)
    selection = negatives.select_negatives(
        cand_ids,
        scores,
        np.array([[99]]),
        num_negatives=3,
        pos_scores=np.array([[0.9]], dtype=np.float32),
        labels=labels,
        range_max=6,
        absolute_margin=0.05,
        allow_unjudged=False,
    )
    # 10 judged relevant, 11 ambiguous, 13 unjudged, 16 outside the window, 12 within the margin
    assert selection.neg_ids.tolist() == [[14, 15, -1]]
    assert selection.neg_judged.tolist() == [[True, True, False]]
    assert np.isnan(selection.neg_scores[0, 2])
    expected = {"judged_relevant": 1, "judged_ambiguous": 1, "unjudged": 1, "outside_rank_window": 1}
    assert {name: selection.counts[name] for name in expected} == expected
    assert selection.counts["margin"] == 1 and selection.counts["queries_short"] == 1


def test_weakest_positive_comes_from_the_candidate_row_without_pos_scores() -> None:
    selection = negatives.select_negatives(
        np.array([[1, 2, 3, 4]]),
        np.array([[0.9, 0.8, 0.75, 0.4]], dtype=np.float32),
        np.array([[2, -1]]),
        num_negatives=2,
        relative_margin=0.1,  # drop scores above 0.8 * 0.9 = 0.72
        max_score=0.95,
    )
    assert selection.neg_ids.tolist() == [[4, -1]]
    assert selection.counts["margin"] == 2 and selection.counts["positive"] == 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_random_sampling_is_seeded_and_kept_in_rank_order(backend: str) -> None:
    ids = np.arange(60).reshape(2, 30)
    scores = np.tile(np.linspace(1, 0, 30, dtype=np.float32), (2, 1))
    pos = np.full((2, 1), -1)
    picks = [
        negatives.select_negatives(
            ids, scores, pos, num_negatives=5, sampling="random", seed=seed, backend=backend
        )
        for seed in (1, 1, 2)
    ]
    assert np.array_equal(picks[0].neg_ids, picks[1].neg_ids)
    assert not np.array_equal(picks[0].neg_ids, picks[2].neg_ids)
    assert np.all(np.diff(picks[0].neg_ids, axis=1) > 0)
    assert not np.array_equal(picks[0].neg_ids[0], np.arange(5))


def test_bad_arguments_name_the_argument() -> None:
    ids, scores, pos = np.zeros((2, 3), dtype=np.int64), np.zeros((2, 3), dtype=np.float32), np.zeros((2, 1))
    pos = pos.astype(np.int64)
    cases: list[tuple[str, dict[str, Any]]] = [
        ("cand_scores", {"cand_scores": np.zeros((2, 4), dtype=np.float32)}),
        ("cand_ids", {"cand_ids": np.zeros((2, 3), dtype=np.float64)}),
        ("cand_ids", {"cand_ids": np.zeros(3, dtype=np.int64)}),
        ("pos_ids", {"pos_ids": np.zeros((3, 1), dtype=np.int64)}),
        ("labels", {"labels": np.zeros((2, 2), dtype=np.float32)}),
        ("num_negatives", {"num_negatives": -1}),
        ("doc_hashes", {"doc_hashes": np.zeros(3, dtype=np.int8)}),
        ("cand_ids", {"cluster_ids": np.zeros(0, dtype=np.int64)}),
        ("sampling", {"sampling": "best"}),
        ("relative_margin", {"relative_margin": 1.0}),
        ("range_max", {"range_min": 2, "range_max": 1}),
        ("negative_max_label", {"negative_max_label": 3.0}),
    ]
    for argument, override in cases:
        arguments: dict[str, Any] = {
            "cand_ids": ids,
            "cand_scores": scores,
            "pos_ids": pos,
            "num_negatives": 2,
            **override,
        }
        with pytest.raises(InvalidArgumentError, match=argument):
            negatives.select_negatives(**arguments)


@pytest.mark.native
@settings(max_examples=100, deadline=None)
@given(
    st.integers(0, 2**32),
    st.integers(0, 8),
    st.integers(0, 6),
    st.sampled_from(["top", "random"]),
    st.fixed_dictionaries(
        {},
        optional={
            "pos_scores": st.just(TABLE),
            "labels": st.just(TABLE),
            "doc_hashes": st.just(TABLE),
            "cluster_ids": st.just(TABLE),
            "range_min": st.integers(0, 4),
            "range_max": st.integers(4, 20),
            "absolute_margin": st.floats(0, 0.5),
            "relative_margin": st.floats(0, 0.9),
            "max_score": st.floats(0.2, 1.0),
            "allow_unjudged": st.booleans(),
            "relevant_min_label": st.sampled_from([1.0, 2.0, 3.0]),
        },
    ),
)
def test_parity_select_negatives(
    case_seed: int, n_queries: int, num_negatives: int, sampling: str, extra: dict[str, Any]
) -> None:
    case = random_case(case_seed, n_queries=n_queries)
    options: dict[str, Any] = {name: case[name] if value is TABLE else value for name, value in extra.items()}
    native, python = (
        negatives.select_negatives(
            case["cand_ids"],
            case["cand_scores"],
            case["pos_ids"],
            num_negatives=num_negatives,
            sampling=sampling,
            seed=case_seed,
            backend=backend,
            **options,
        )
        for backend in BACKENDS
    )
    assert np.array_equal(native.neg_ids, python.neg_ids)
    assert np.array_equal(native.neg_scores, python.neg_scores, equal_nan=True)
    assert np.array_equal(native.neg_judged, python.neg_judged)
    assert native.counts == python.counts
