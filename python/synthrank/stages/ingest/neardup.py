"""Near-duplicate clusters over a corpus streamed in batches, keeping only compact LSH band keys.

`synthrank.native.dedup.near_duplicates` needs every text in memory; a corpus streamed from a 10 GB file
cannot do that. Here each batch's MinHash signatures (native, `synthrank.native.dedup.minhash_signatures`)
are folded into one uint64 key per LSH band (bands x 8 bytes per passage, e.g. 72 B at threshold
0.8), and the clusters are the connected components of "shares a band key or an exact hash".
Unlike `near_duplicates(verify=True)`, band collisions are not re-checked against the true Jaccard
(the texts are gone by then), so a cluster can chain pairs slightly below the threshold. Passages
without shingles (nothing but punctuation) get band keys of their own: only exact copies join them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from synthrank.native import dedup

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
_NO_SHINGLES = np.uint64(0x9E3779B97F4A7C15)  # salts the per-passage keys of texts without shingles


def band_keys(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """Fold each band's `rows` MinHash values into one uint64 (FNV-1a over the values), [n, bands]."""
    grouped = signatures[:, : bands * rows].reshape(len(signatures), bands, rows)
    keys = np.full((len(signatures), bands), _FNV_OFFSET, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(rows):
            keys ^= grouped[:, :, j]
            keys *= _FNV_PRIME
    return keys


def same_key_edges(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edges (first row with this key, other row with it) for every repeated key."""
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    starts = np.ones(len(keys), dtype=bool)
    starts[1:] = ordered[1:] != ordered[:-1]
    first = order[np.maximum.accumulate(np.where(starts, np.arange(len(keys)), 0))]
    return first[~starts], order[~starts]


def connected_components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Label each node with the smallest index in its component (min-label propagation)."""
    labels = np.arange(n, dtype=np.int64)
    if len(a) == 0:
        return labels
    while True:
        lowest = np.minimum(labels[a], labels[b])
        updated = labels.copy()
        np.minimum.at(updated, a, lowest)
        np.minimum.at(updated, b, lowest)
        updated = updated[updated]  # pointer jumping: follow labels to their own labels
        if np.array_equal(updated, labels):
            return labels
        labels = updated


class NearDuplicateClusters:
    """Add passage texts batch by batch, then `clusters(exact_hashes)` gives a cluster id per passage."""

    def __init__(self, *, threshold: float = 0.8, num_perm: int = 128, shingle_size: int = 5, seed: int = 0):
        self.num_perm, self.shingle_size, self.seed = num_perm, shingle_size, seed
        self.bands, self.rows = dedup.lsh_params(threshold, num_perm)
        self._keys: list[np.ndarray] = []
        self._added = 0

    def add(self, texts: Sequence[str]) -> None:
        if not texts:
            return
        signatures = dedup.minhash_signatures(
            texts, num_perm=self.num_perm, shingle_size=self.shingle_size, seed=self.seed
        )
        keys = band_keys(signatures, self.bands, self.rows)
        # a passage without shingles (e.g. only punctuation) has the all-max signature: give it keys
        # of its own, so such passages are joined only by their exact hashes, not all into one cluster
        empty = np.flatnonzero((signatures == np.iinfo(np.uint64).max).all(axis=1))
        if len(empty):
            rows = (empty + self._added).astype(np.uint64)[:, None]
            with np.errstate(over="ignore"):
                keys[empty] = (rows * _FNV_PRIME + np.arange(self.bands, dtype=np.uint64)) ^ _NO_SHINGLES
        self._added += len(texts)
        self._keys.append(keys)

    def clusters(self, exact_hashes: np.ndarray) -> np.ndarray:
        n = len(exact_hashes)
        keys = np.concatenate(self._keys) if self._keys else np.empty((0, self.bands), dtype=np.uint64)
        if len(keys) != n:
            raise ValueError(f"exact_hashes has {n} entries for {len(keys)} passages")
        edges = [same_key_edges(exact_hashes)] + [same_key_edges(keys[:, band]) for band in range(self.bands)]
        a = np.concatenate([e[0] for e in edges])
        b = np.concatenate([e[1] for e in edges])
        return connected_components(n, a, b)
