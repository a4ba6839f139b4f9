"""Exact and near-duplicate detection (MinHash + LSH + union-find): the twin of `synthrank-core::dedup`.

- Shingles come from the normalised text (see `reference.text`) and are hashed with FNV-1a 64.
- Permutation i maps a shingle hash h to (a_i * h + b_i) mod (2^61 - 1); a_i in [1, p), b_i in [0, p)
  are drawn in that order from SplitMix64(seed) by modulo (the tiny bias is irrelevant here).
- A text with no shingle has the all-max signature and takes part in no LSH band.
- Band keys are FNV-1a 64 over the little-endian bytes of the band's `rows` values. Within a bucket
  each member is paired with the bucket's smallest index only (linear, deterministic); with
  `verify`, a pair is joined only when the Jaccard similarity of the two shingle-hash sets reaches
  the threshold. Exact duplicates (equal hash of the normalised text) always share a cluster.
- A cluster is named by its smallest index.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import numpy as np

from synthrank.reference.hash import fnv1a64_bytes, fnv1a64_str
from synthrank.reference.rng import SplitMix64
from synthrank.reference.text import (
    char_shingles_of_normalized,
    normalize_one,
    word_shingles_of_normalized,
)

MERSENNE_61 = (1 << 61) - 1
EMPTY_SLOT = (1 << 64) - 1
INTEGRATION_STEPS = 100


def exact_hashes(texts: Sequence[str], threads: int | None = None) -> np.ndarray:
    return np.array([fnv1a64_str(normalize_one(text)) for text in texts], dtype=np.uint64)


def permutations(num_perm: int, seed: int) -> list[tuple[int, int]]:
    rng = SplitMix64(seed)
    result = []
    for _ in range(num_perm):
        a = 1 + rng.next_u64() % (MERSENNE_61 - 1)
        b = rng.next_u64() % MERSENNE_61
        result.append((a, b))
    return result


def shingle_hashes(text: str, shingle_size: int, shingle: str) -> set[int]:
    normalized = normalize_one(text)
    if shingle == "char":
        shingles = char_shingles_of_normalized(normalized, shingle_size)
    else:
        shingles = word_shingles_of_normalized(normalized, shingle_size)
    return {fnv1a64_str(item) for item in shingles}


def signature(hashes: set[int], perms: list[tuple[int, int]]) -> list[int]:
    if not hashes:
        return [EMPTY_SLOT] * len(perms)
    return [min((a * h + b) % MERSENNE_61 for h in hashes) for a, b in perms]


def minhash_signatures(
    texts: Sequence[str],
    num_perm: int,
    shingle_size: int,
    shingle: str,
    seed: int,
    threads: int | None = None,
) -> np.ndarray:
    perms = permutations(num_perm, seed)
    rows = [signature(shingle_hashes(text, shingle_size, shingle), perms) for text in texts]
    return np.array(rows, dtype=np.uint64).reshape(len(texts), num_perm)


def integrate(function: Callable[[float], float], low: float, high: float) -> float:
    """Midpoint rule; the native core sums the same terms in the same order."""
    width = (high - low) / INTEGRATION_STEPS
    total = 0.0
    for step in range(INTEGRATION_STEPS):
        total += function(low + (step + 0.5) * width)
    return total * width


def candidate_probability(s: float, b: float, r: float) -> float:
    """Chance that two sets of Jaccard similarity s share a bucket in at least one of b bands of r rows."""
    return 1.0 - (1.0 - s**r) ** b


def missed_probability(s: float, b: float, r: float) -> float:
    return 1.0 - (1.0 - (1.0 - s**r) ** b)


@functools.lru_cache(maxsize=64)
def lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows) minimising the equally weighted false-positive and false-negative areas."""
    best_error = float("inf")
    best = (0, 0)
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            b, r = float(bands), float(rows)
            false_positive = integrate(functools.partial(candidate_probability, b=b, r=r), 0.0, threshold)
            false_negative = integrate(functools.partial(missed_probability, b=b, r=r), threshold, 1.0)
            error = false_positive * 0.5 + false_negative * 0.5
            if error < best_error:
                best_error = error
                best = (bands, rows)
    return best


def band_key(values: Sequence[int]) -> int:
    return fnv1a64_bytes(b"".join(value.to_bytes(8, "little") for value in values))


def jaccard(left: set[int], right: set[int]) -> float:
    return len(left & right) / len(left | right)


class UnionFind:
    """Disjoint sets whose root is always the smallest member."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, item: int) -> int:
        root = item
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[item] != root:
            self.parent[item], item = root, self.parent[item]
        return root

    def union(self, left: int, right: int) -> None:
        left, right = self.find(left), self.find(right)
        if left != right:
            self.parent[max(left, right)] = min(left, right)


def near_duplicates(
    texts: Sequence[str],
    threshold: float,
    num_perm: int,
    shingle_size: int,
    shingle: str,
    seed: int,
    verify: bool,
    threads: int | None = None,
) -> np.ndarray:
    n = len(texts)
    clusters = UnionFind(n)
    first_with_hash: dict[int, int] = {}
    for index, text_hash in enumerate(exact_hashes(texts).tolist()):
        clusters.union(first_with_hash.setdefault(text_hash, index), index)

    bands, rows = lsh_params(threshold, num_perm)
    perms = permutations(num_perm, seed)[: bands * rows]
    sets = [shingle_hashes(text, shingle_size, shingle) for text in texts]
    signatures = [signature(hashes, perms) for hashes in sets]

    pairs: set[tuple[int, int]] = set()
    for band in range(bands):
        first_in_bucket: dict[int, int] = {}
        for index in range(n):
            if not sets[index]:
                continue
            key = band_key(signatures[index][band * rows : (band + 1) * rows])
            first = first_in_bucket.setdefault(key, index)
            if first != index:
                pairs.add((first, index))

    for left, right in sorted(pairs):
        if not verify or jaccard(sets[left], sets[right]) >= threshold:
            clusters.union(left, right)
    return np.array([clusters.find(index) for index in range(n)], dtype=np.int64)
