"""synthrank.native.sampling: reservoir behaviour, streaming == one-shot, and native == reference."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from synthrank.errors import InvalidArgumentError
from synthrank.native import sampling

BACKENDS = ("native", "python")
SEEDS = st.integers(0, 2**64 - 1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_uniform_is_sorted_distinct_and_eligible(backend: str) -> None:
    eligible = np.arange(1000) % 3 == 0
    chosen = sampling.sample_uniform(1000, 50, seed=7, eligible=eligible, backend=backend)
    assert chosen.dtype == np.int64 and len(chosen) == 50
    assert np.all(np.diff(chosen) > 0) and np.all(eligible[chosen])
    everything = sampling.sample_uniform(1000, 5000, seed=7, eligible=eligible, backend=backend)
    assert everything.tolist() == np.flatnonzero(eligible).tolist()
    assert len(sampling.sample_uniform(0, 5, seed=1, backend=backend)) == 0


def test_uniform_is_roughly_uniform() -> None:
    hits = Counter(int(i) for seed in range(4000) for i in sampling.sample_uniform(8, 2, seed=seed))
    assert set(hits) == set(range(8))
    assert all(abs(count - 1000) < 150 for count in hits.values())  # 8000 draws over 8 items


@pytest.mark.parametrize("backend", BACKENDS)
def test_streaming_equals_one_shot(backend: str) -> None:
    reservoir = sampling.Reservoir(25, seed=3, backend=backend)
    for batch in np.array_split(np.arange(1000, dtype=np.int64), 7):
        reservoir.extend(batch)
    assert reservoir.result().tolist() == sampling.sample_uniform(1000, 25, seed=3, backend=backend).tolist()


@pytest.mark.parametrize("backend", BACKENDS)
def test_stratified_meets_quotas(backend: str) -> None:
    strata = np.arange(300, dtype=np.int64) % 4 - 1  # strata -1, 0, 1, 2
    chosen = sampling.sample_stratified(strata, {-1: 3, 2: 50}, seed=11, backend=backend)
    per_stratum = Counter(strata[chosen].tolist())
    assert per_stratum == {-1: 3, 2: 50}
    flat = sampling.sample_stratified(strata, 5, seed=11, backend=backend)
    assert Counter(strata[flat].tolist()) == {-1: 5, 0: 5, 1: 5, 2: 5}


def test_length_mask_bounds_are_inclusive() -> None:
    lengths = np.array([0, 5, 9, 10, 11])
    for backend in BACKENDS:
        assert sampling.length_mask(lengths, 5, 10, backend=backend).tolist() == [
            False,
            True,
            True,
            True,
            False,
        ]
        assert sampling.length_mask(lengths, backend=backend).all()


def test_bad_arguments_name_the_argument() -> None:
    with pytest.raises(InvalidArgumentError, match="k"):
        sampling.sample_uniform(10, -1, seed=0)
    with pytest.raises(InvalidArgumentError, match="seed"):
        sampling.sample_uniform(10, 1, seed=-5)
    with pytest.raises(InvalidArgumentError, match="eligible"):
        sampling.sample_uniform(10, 1, seed=0, eligible=np.ones(9, dtype=bool))
    with pytest.raises(InvalidArgumentError, match="eligible"):
        sampling.sample_uniform(3, 1, seed=0, eligible=np.ones(3, dtype=np.float64))
    with pytest.raises(InvalidArgumentError, match="strata"):
        sampling.sample_stratified(np.zeros((2, 2), dtype=np.int64), 1, seed=0)
    with pytest.raises(InvalidArgumentError, match=r"quotas\[3\]"):
        sampling.sample_stratified(np.zeros(4, dtype=np.int64), {3: -1}, seed=0)
    with pytest.raises(InvalidArgumentError, match="lengths"):
        sampling.length_mask(np.array([1.5]))


@pytest.mark.native
@settings(max_examples=100, deadline=None)
@given(st.integers(0, 400), st.integers(0, 500), SEEDS, st.data())
def test_parity_uniform_and_streaming(n: int, k: int, seed: int, data: st.DataObject) -> None:
    eligible = data.draw(st.none() | arrays(np.bool_, n))
    results = [sampling.sample_uniform(n, k, seed=seed, eligible=eligible, backend=b) for b in BACKENDS]
    assert results[0].tolist() == results[1].tolist()
    cut = data.draw(st.integers(0, n))
    streams = []
    for backend in BACKENDS:
        reservoir = sampling.Reservoir(k, seed, backend=backend)
        reservoir.extend(np.arange(cut, dtype=np.int64))
        reservoir.extend(np.arange(cut, n, dtype=np.int64))
        streams.append(reservoir.result().tolist())
    assert streams[0] == streams[1]


@pytest.mark.native
@settings(max_examples=100, deadline=None)
@given(
    arrays(np.int64, st.integers(0, 300), elements=st.integers(-3, 5)),
    st.one_of(st.integers(0, 40), st.dictionaries(st.integers(-3, 6), st.integers(0, 40), max_size=5)),
    SEEDS,
    st.data(),
)
def test_parity_stratified(
    strata: np.ndarray, quotas: int | dict[int, int], seed: int, data: st.DataObject
) -> None:
    eligible = data.draw(st.none() | arrays(np.bool_, len(strata)))
    native, python = (
        sampling.sample_stratified(strata, quotas, seed=seed, eligible=eligible, backend=b) for b in BACKENDS
    )
    assert native.tolist() == python.tolist()


@pytest.mark.native
@settings(max_examples=50, deadline=None)
@given(
    arrays(np.int64, st.integers(0, 50), elements=st.integers(-(2**40), 2**40)),
    st.none() | st.integers(-100, 100),
    st.none() | st.integers(-100, 100),
)
def test_parity_length_mask(lengths: np.ndarray, low: int | None, high: int | None) -> None:
    native, python = (sampling.length_mask(lengths, low, high, backend=b) for b in BACKENDS)
    assert native.tolist() == python.tolist()
