"""Seeded reservoir sampling (Algorithm R): the twin of `synthrank-core::sample`."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from synthrank.native.reference.rng import SplitMix64, derive_seed


class Reservoir:
    """Keeps a uniform sample of `k` ids from a stream of any length, seeded by `seed`."""

    def __init__(self, k: int, seed: int) -> None:
        self.k = k
        self._rng = SplitMix64(seed)
        self._seen = 0
        self._items: list[int] = []

    def extend(self, ids: Iterable[int]) -> None:
        if self.k == 0:
            return
        for item in ids:
            if self._seen < self.k:
                self._items.append(int(item))
            else:
                slot = self._rng.below(self._seen + 1)
                if slot < self.k:
                    self._items[slot] = int(item)
            self._seen += 1

    def result(self) -> np.ndarray:
        return np.array(sorted(self._items), dtype=np.int64)


def eligible_ids(n: int, eligible: np.ndarray | None) -> np.ndarray:
    return np.arange(n, dtype=np.int64) if eligible is None else np.flatnonzero(eligible).astype(np.int64)


def sample_uniform(n: int, k: int, seed: int, eligible: np.ndarray | None = None) -> np.ndarray:
    reservoir = Reservoir(k, seed)
    reservoir.extend(eligible_ids(n, eligible).tolist())
    return reservoir.result()


def sample_stratified(
    strata: np.ndarray,
    default_quota: int,
    quota_strata: np.ndarray,
    quota_values: np.ndarray,
    seed: int,
    eligible: np.ndarray | None = None,
) -> np.ndarray:
    quotas = dict(zip(quota_strata.tolist(), quota_values.tolist(), strict=True))
    reservoirs: dict[int, Reservoir] = {}
    for item in eligible_ids(len(strata), eligible).tolist():
        stratum = int(strata[item])
        if stratum not in reservoirs:
            reservoirs[stratum] = Reservoir(quotas.get(stratum, default_quota), derive_seed(seed, stratum))
        reservoirs[stratum].extend([item])
    chosen = [int(item) for reservoir in reservoirs.values() for item in reservoir.result()]
    return np.array(sorted(chosen), dtype=np.int64)


def length_mask(
    lengths: np.ndarray, min_length: int | None = None, max_length: int | None = None
) -> np.ndarray:
    mask = np.ones(len(lengths), dtype=bool)
    for position, length in enumerate(lengths.tolist()):
        too_short = min_length is not None and length < min_length
        too_long = max_length is not None and length > max_length
        mask[position] = not (too_short or too_long)
    return mask
