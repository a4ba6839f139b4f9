"""Exact and near-duplicate detection (MinHash + LSH + union-find): the twin of `synthrank-core::dedup`.

- Shingles come from the normalised text (see `reference.text`) and are hashed with FNV-1a 64.
- Signatures use one-permutation hashing with optimal densification (Shrivastava 2017, "Optimal
  Densification for Fast and Accurate Minwise Hashing"). SplitMix64(seed) draws a mixing key, then
  a probe key. Each shingle hash h is mixed once, m = mix64(h ^ mix_key) (SplitMix64's finaliser);
  its bin is (m * num_perm) >> 64 (multiply-shift on the high bits), its value m >> 1, and each bin
  keeps its smallest value. An empty bin i then copies the value of the first originally filled bin
  on its probe sequence: the successive draws (x * num_perm) >> 64 of SplitMix64(probe_key ^ i),
  the same for every text, so two texts agree on a bin with probability equal to their Jaccard.
  Values stay below 2^63.
- A text with no shingle has the all-max signature and takes part in no LSH band.
- LSH uses the first bands * rows bins. A band's key chains key = mix64(key ^ value) over its
  `rows` values, starting from 0xCBF29CE484222325 (FNV's offset basis). Within a bucket each member
  is paired with the bucket's smallest index only (linear, deterministic); with `verify`, a pair is
  joined only when the Jaccard similarity of the two shingle-hash sets reaches the threshold.
  Exact duplicates (equal hash of the normalised text) always share a cluster.
- A cluster is named by its smallest index.
- `NearDupIndex` clusters a corpus streamed in batches, each member verified against its
  cluster's leader (see the class).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import numpy as np

from synthrank.errors import InvalidArgumentError
from synthrank.native.reference.hash import fnv1a64_str
from synthrank.native.reference.rng import SplitMix64, mix64
from synthrank.native.reference.text import (
    char_shingles_of_normalized,
    normalize_one,
    word_shingles_of_normalized,
)

EMPTY_SLOT = (1 << 64) - 1
INTEGRATION_STEPS = 100
BAND_KEY_START = 0xCBF29CE484222325


def exact_hashes(texts: Sequence[str], threads: int | None = None) -> np.ndarray:
    return np.array([fnv1a64_str(normalize_one(text)) for text in texts], dtype=np.uint64)


def one_permutation_keys(seed: int) -> tuple[int, int]:
    """(mix_key, probe_key), drawn in this order from SplitMix64(seed)."""
    rng = SplitMix64(seed)
    mix_key = rng.next_u64()
    return mix_key, rng.next_u64()


def shingle_hashes(text: str, shingle_size: int, shingle: str) -> set[int]:
    normalized = normalize_one(text)
    if shingle == "char":
        shingles = char_shingles_of_normalized(normalized, shingle_size)
    else:
        shingles = word_shingles_of_normalized(normalized, shingle_size)
    return {fnv1a64_str(item) for item in shingles}


def signature(hashes: set[int], num_perm: int, seed: int) -> list[int]:
    if not hashes:
        return [EMPTY_SLOT] * num_perm
    mix_key, probe_key = one_permutation_keys(seed)
    bins = [EMPTY_SLOT] * num_perm
    for h in hashes:
        mixed = mix64(h ^ mix_key)
        slot = (mixed * num_perm) >> 64
        bins[slot] = min(bins[slot], mixed >> 1)
    return densify(bins, probe_key)


def densify(bins: list[int], probe_key: int) -> list[int]:
    """Optimal densification: each empty bin copies the first originally filled bin on its probe sequence."""
    num_perm = len(bins)
    result = list(bins)
    for empty in (i for i, value in enumerate(bins) if value == EMPTY_SLOT):
        probe = SplitMix64(probe_key ^ empty)
        while True:
            source = (probe.next_u64() * num_perm) >> 64
            if bins[source] != EMPTY_SLOT:
                result[empty] = bins[source]
                break
    return result


def minhash_signatures(
    texts: Sequence[str],
    num_perm: int,
    shingle_size: int,
    shingle: str,
    seed: int,
    threads: int | None = None,
) -> np.ndarray:
    rows = [signature(shingle_hashes(text, shingle_size, shingle), num_perm, seed) for text in texts]
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
    """key = mix64(key ^ value) over the band's values, from FNV's offset basis."""
    key = BAND_KEY_START
    for value in values:
        key = mix64(key ^ value)
    return key


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
    sets = [shingle_hashes(text, shingle_size, shingle) for text in texts]
    signatures = [signature(hashes, num_perm, seed) for hashes in sets]

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


FINGERPRINT_MASK = (1 << 32) - 1


class NearDupIndex:
    """Near-duplicate clusters of a corpus streamed in batches (ingest); twin of `dedup::NearDupIndex`.

    Passages are numbered in the order they are added and assigned one at a time, so batch sizes do
    not change the result:
    1. a passage without shingles joins the cluster of an earlier passage with the same exact hash,
       else starts its own;
    2. otherwise it joins the cluster of the earliest *leader* that shares one of its band keys
       (the high 32 bits of `band_key`) and agrees with its signature on at least `threshold` of
       the `num_perm` values, compared on their low 32 bits (the estimated Jaccard);
    3. otherwise it starts a cluster and becomes its leader; only leaders are indexed.
    A cluster's id is its leader's index. Every member reaches the threshold with its leader, so
    clusters never chain; an exact copy has its original's signature and so joins its cluster. The
    native core keeps the leaders' signatures in `scratch_path`; the twin keeps them in memory.
    """

    def __init__(
        self, threshold: float, num_perm: int, shingle_size: int, shingle: str, seed: int, scratch_path: str
    ) -> None:
        self.num_perm, self.shingle_size, self.shingle, self.seed = num_perm, shingle_size, shingle, seed
        self.bands, self.rows = lsh_params(threshold, num_perm)
        self.min_equal = next(equal for equal in range(num_perm + 1) if equal / num_perm >= threshold)
        self.cluster_of: list[int] = []
        self._leaders: list[tuple[int, list[int]]] = []  # (passage index, fingerprints) per slot
        self.slots_with_key: list[dict[int, list[int]]] = [{} for _ in range(self.bands)]
        self.without_shingles: dict[int, int] = {}  # exact hash -> cluster
        self.closed = False

    def __len__(self) -> int:
        return len(self.cluster_of)

    def add(self, texts: Sequence[str], threads: int | None = None) -> np.ndarray:
        if self.closed:
            raise InvalidArgumentError("index: closed: its scratch file is gone")
        hashes = exact_hashes(texts)
        for text, text_hash in zip(texts, hashes.tolist(), strict=True):
            index = len(self.cluster_of)
            shingles = shingle_hashes(text, self.shingle_size, self.shingle)
            if shingles:
                cluster = self._assign(index, signature(shingles, self.num_perm, self.seed))
            else:
                cluster = self.without_shingles.setdefault(text_hash, index)
            self.cluster_of.append(cluster)
        return hashes

    def clusters(self) -> np.ndarray:
        return np.array(self.cluster_of, dtype=np.int64)

    def leaders(self) -> int:
        return len(self._leaders)

    def close(self) -> None:
        self.closed = True

    def _assign(self, index: int, values: list[int]) -> int:
        rows = self.rows
        keys = [band_key(values[band * rows : (band + 1) * rows]) >> 32 for band in range(self.bands)]
        fingerprints = [value & FINGERPRINT_MASK for value in values]
        with_key = self.slots_with_key
        candidates = {slot for band, key in enumerate(keys) for slot in with_key[band].get(key, ())}
        for slot in sorted(candidates):  # slots are in passage order: the earliest leader first
            leader, kept = self._leaders[slot]
            if sum(a == b for a, b in zip(kept, fingerprints, strict=True)) >= self.min_equal:
                return leader
        slot = len(self._leaders)
        self._leaders.append((index, fingerprints))
        for band, key in enumerate(keys):
            self.slots_with_key[band].setdefault(key, []).append(slot)
        return index
