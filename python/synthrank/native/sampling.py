"""Seeded, reproducible sampling of passage indices: uniform, stratified and streaming.

All samplers are reservoir samplers (Algorithm R) driven by SplitMix64, with bounded draws by
Lemire's multiply-shift method with rejection, so a seed gives the same sample in both backends and
for any chunking of a stream. Results are sorted ascending.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from synthrank.errors import InvalidArgumentError
from synthrank.native import _backend, _checks


def _eligible(eligible: Any, n: int) -> np.ndarray | None:
    mask = _checks.optional_array("eligible", eligible, np.bool_, 1)
    if mask is not None and len(mask) != n:
        raise InvalidArgumentError(f"eligible: length {len(mask)} does not match n = {n}")
    return mask


def sample_uniform(
    n: int,
    k: int,
    *,
    seed: int,
    eligible: np.ndarray | None = None,
    backend: str | None = None,
) -> np.ndarray:
    """`k` of the eligible indices in [0, n) uniformly without replacement (all of them if fewer)."""
    n = _checks.integer("n", n, minimum=0)
    k = _checks.integer("k", k, minimum=0)
    core = _backend.get(backend)
    return _backend.guarded(core.sample_uniform, n, k, _checks.seed(seed), _eligible(eligible, n))


def sample_stratified(
    strata: np.ndarray,
    quotas: int | Mapping[int, int],
    *,
    seed: int,
    eligible: np.ndarray | None = None,
    backend: str | None = None,
) -> np.ndarray:
    """Up to quota indices per stratum (`strata[i]` is item i's stratum; a Mapping quota defaults to 0)."""
    strata_arr = _checks.array("strata", strata, np.int64, 1)
    if isinstance(quotas, Mapping):
        default_quota = 0
        keys = [_checks.integer("quotas key", key) for key in quotas]
        values = [_checks.integer(f"quotas[{key}]", quotas[key], minimum=0) for key in quotas]
    else:
        default_quota = _checks.integer("quotas", quotas, minimum=0)
        keys, values = [], []
    core = _backend.get(backend)
    return _backend.guarded(
        core.sample_stratified,
        strata_arr,
        default_quota,
        np.array(keys, dtype=np.int64),
        np.array(values, dtype=np.int64),
        _checks.seed(seed),
        _eligible(eligible, len(strata_arr)),
    )


def length_mask(
    lengths: np.ndarray,
    min_length: int | None = None,
    max_length: int | None = None,
    *,
    backend: str | None = None,
) -> np.ndarray:
    """True where min_length <= length <= max_length (a None bound is open)."""
    lengths_arr = _checks.array("lengths", lengths, np.int64, 1)
    low = None if min_length is None else _checks.integer("min_length", min_length)
    high = None if max_length is None else _checks.integer("max_length", max_length)
    return _backend.guarded(_backend.get(backend).length_mask, lengths_arr, low, high)


class Reservoir:
    """A streaming sampler: `extend` with batches of ids, then `result()` equals `sample_uniform`
    over their concatenation with the same seed."""

    def __init__(self, k: int, seed: int, *, backend: str | None = None) -> None:
        self._impl = _backend.get(backend).Reservoir(_checks.integer("k", k, minimum=0), _checks.seed(seed))

    def extend(self, ids: np.ndarray) -> None:
        _backend.guarded(self._impl.extend, _checks.array("ids", ids, np.int64, 1))

    def result(self) -> np.ndarray:
        return _backend.guarded(self._impl.result)
