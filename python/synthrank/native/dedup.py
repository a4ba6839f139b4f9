"""Exact and near-duplicate detection: FNV-1a hashes, MinHash signatures, LSH and union-find.

See `synthrank.native.reference.dedup` for the exact algorithm (the readable spec). In short: shingles of
the normalised text, hashed with FNV-1a 64; signatures by one-permutation hashing with optimal
densification (Shrivastava 2017): each shingle hash is mixed once with a seeded SplitMix64
finaliser, which picks its bin and value, and empty bins copy a filled bin along a seeded probe
sequence; (bands, rows) chosen like datasketch's `_optimal_param`; each bucket member is compared
with the bucket's first member only; with `verify` a pair is joined only when the true Jaccard of the
shingle sets reaches the threshold. Each text's cluster id is the smallest index in its cluster;
exact duplicates always share one; a text with no shingle joins only its exact copies.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from synthrank.errors import InvalidArgumentError
from synthrank.native import _backend, _checks

SHINGLE_KINDS = ("char", "word")
MAX_PERMUTATIONS = 4096


def _shingle_options(num_perm: int, shingle_size: int, shingle: str) -> tuple[int, int, str]:
    num_perm = _checks.integer("num_perm", num_perm, minimum=1, maximum=MAX_PERMUTATIONS)
    shingle_size = _checks.integer("shingle_size", shingle_size, minimum=1)
    if shingle not in SHINGLE_KINDS:
        raise InvalidArgumentError(f"shingle: expected 'char' or 'word', got {shingle!r}")
    return num_perm, shingle_size, shingle


def _threshold(threshold: float) -> float:
    value = _checks.real("threshold", threshold)
    assert value is not None
    if not 0.0 < value <= 1.0:
        raise InvalidArgumentError(f"threshold: must be in (0, 1], got {value}")
    return value


def exact_hashes(
    texts: Sequence[str], *, backend: str | None = None, threads: int | None = None
) -> np.ndarray:
    """FNV-1a 64 of each normalised text (uint64): equal hashes mean exact duplicates."""
    items = _checks.texts_list("texts", texts)
    return _backend.guarded(_backend.get(backend).exact_hashes, items, threads=_checks.threads(threads))


def minhash_signatures(
    texts: Sequence[str],
    *,
    num_perm: int = 128,
    shingle_size: int = 5,
    shingle: str = "char",
    seed: int = 0,
    backend: str | None = None,
    threads: int | None = None,
) -> np.ndarray:
    """One-permutation MinHash signatures, uint64 of shape (len(texts), num_perm), values below 2^63.

    Each of the num_perm bins holds the smallest mixed shingle hash falling into it (empty bins are
    densified from filled ones), so two texts agree on a bin with probability ~ their Jaccard
    similarity. A text with no shingle is all 2^64 - 1.
    """
    items = _checks.texts_list("texts", texts)
    num_perm, shingle_size, shingle = _shingle_options(num_perm, shingle_size, shingle)
    return _backend.guarded(
        _backend.get(backend).minhash_signatures,
        items,
        num_perm,
        shingle_size,
        shingle,
        _checks.seed(seed),
        threads=_checks.threads(threads),
    )


def lsh_params(threshold: float, num_perm: int, *, backend: str | None = None) -> tuple[int, int]:
    """(bands, rows) with bands * rows <= num_perm minimising false positives + false negatives."""
    num_perm = _checks.integer("num_perm", num_perm, minimum=1, maximum=MAX_PERMUTATIONS)
    bands, rows = _backend.guarded(_backend.get(backend).lsh_params, _threshold(threshold), num_perm)
    return int(bands), int(rows)


def near_duplicates(
    texts: Sequence[str],
    *,
    threshold: float = 0.8,
    num_perm: int = 128,
    shingle_size: int = 5,
    shingle: str = "char",
    seed: int = 0,
    verify: bool = True,
    backend: str | None = None,
    threads: int | None = None,
) -> np.ndarray:
    """Cluster id per text (int64): the smallest index of the texts it near-duplicates."""
    items = _checks.texts_list("texts", texts)
    num_perm, shingle_size, shingle = _shingle_options(num_perm, shingle_size, shingle)
    return _backend.guarded(
        _backend.get(backend).near_duplicates,
        items,
        _threshold(threshold),
        num_perm,
        shingle_size,
        shingle,
        _checks.seed(seed),
        bool(verify),
        threads=_checks.threads(threads),
    )
