"""Peer implementations the native core is measured against, and how their outputs are compared.

Near-duplicates: datasketch and rensa, each used the way their docs recommend for bulk work (MinHash
of normalised character shingles, LSH with the same bands x rows, union of every LSH candidate pair —
neither verifies true Jaccard). Hard negatives: the selection step of sentence-transformers'
`mine_hard_negatives`, reproduced on the given score matrix.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

import numpy as np

_WORD = re.compile(r"\w+")


def char_shingle_set(text: str, size: int) -> set[str]:
    """Character shingles as synthrank makes them, written the usual Python way.

    Words of the NFKC + case-folded text joined by one space; a shorter text is one shingle. (`\\w`
    leaves out combining marks that synthrank counts as word characters; NFKC composes the accents
    in the benchmark texts, so their shingles are the same.)
    """
    joined = " ".join(_WORD.findall(unicodedata.normalize("NFKC", text).casefold()))
    if len(joined) <= size:
        return {joined} if joined else set()
    return {joined[i : i + size] for i in range(len(joined) - size + 1)}


def _cluster_roots(n: int, pairs: Sequence[tuple[int, list[int]]]) -> np.ndarray:
    """Cluster id per item = smallest index in its connected component (union-find)."""
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for item, neighbours in pairs:
        for other in neighbours:
            a, b = find(item), find(int(other))
            if a != b:
                parent[max(a, b)] = min(a, b)
    return np.array([find(i) for i in range(n)], dtype=np.int64)


def datasketch_near_duplicates(
    texts: Sequence[str], *, threshold: float, num_perm: int, bands: int, rows: int, shingle_size: int
) -> np.ndarray:
    """Clusters from datasketch `MinHash.bulk` + `MinHashLSH` (insertion session, then query each)."""
    from datasketch import MinHash, MinHashLSH

    shingles = [[s.encode("utf-8") for s in char_shingle_set(t, shingle_size)] for t in texts]
    minhashes = MinHash.bulk(shingles, num_perm=num_perm)
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, params=(bands, rows))
    with lsh.insertion_session() as session:
        for i, minhash in enumerate(minhashes):
            session.insert(i, minhash, check_duplication=False)
    return _cluster_roots(len(texts), [(i, lsh.query(m)) for i, m in enumerate(minhashes)])


def rensa_near_duplicates(
    texts: Sequence[str], *, threshold: float, num_perm: int, bands: int, shingle_size: int, seed: int = 0
) -> np.ndarray:
    """Clusters from rensa `RMinHash.from_token_sets` + `RMinHashLSH.insert_many` / `query_all`."""
    from rensa import RMinHash, RMinHashLSH

    shingles = [list(char_shingle_set(t, shingle_size)) for t in texts]
    minhashes = RMinHash.from_token_sets(shingles, num_perm, seed)
    lsh = RMinHashLSH(threshold, num_perm, bands)
    lsh.insert_many(minhashes)
    return _cluster_roots(len(texts), list(enumerate(lsh.query_all(minhashes))))


def pair_agreement(clusters: np.ndarray, reference: np.ndarray) -> float:
    """Percent agreement of near-duplicate pairs: Jaccard of the (item, cluster root) pair sets.

    100.0 means both put exactly the same items in the same clusters; no pairs on either side also
    counts as 100.0.
    """
    ours = {(int(r), i) for i, r in enumerate(clusters) if r != i}
    theirs = {(int(r), i) for i, r in enumerate(reference) if r != i}
    union = ours | theirs
    return 100.0 * len(ours & theirs) / len(union) if union else 100.0


def sentence_transformers_select_negatives(
    cand_ids: np.ndarray,
    cand_scores: np.ndarray,
    pos_ids: np.ndarray,
    pos_scores: np.ndarray,
    *,
    num_negatives: int,
    range_min: int = 0,
    range_max: int | None = None,
    absolute_margin: float | None = None,
    relative_margin: float | None = None,
    max_score: float | None = None,
) -> np.ndarray:
    """Negative ids per query (-1 where too few) chosen as sentence-transformers would choose them.

    Mirrors `sentence_transformers/util/hard_negatives.py::mine_hard_negatives` of
    sentence-transformers 6.2.0, from "scores[indices == -1] = -inf" to the "top" sampling branch:
    -1 padding and positives (per-query `torch.isin`) masked to -inf, the margin against each
    query's weakest positive (relative: `pos - |pos| * margin`), `max_score`, then `torch.topk` of
    `range_max` and the slice `[range_min:][:num_negatives]`. Embedding, retrieval, rescoring and
    dataset building are left out: both sides get the same candidate arrays. `range_max=None` keeps
    every given candidate, as synthrank does (sentence-transformers would derive it from
    num_negatives and retrieve that many).
    """
    import torch

    indices = torch.from_numpy(cand_ids)
    scores = torch.from_numpy(cand_scores).clone()
    n_queries = indices.size(0)
    range_max = indices.size(1) if range_max is None else range_max
    batch_idx = torch.arange(n_queries).unsqueeze(-1)
    positive_indices = [torch.from_numpy(row[row >= 0]) for row in pos_ids]
    n_positives = [len(p) for p in positive_indices]
    positive_scores = torch.from_numpy(pos_scores[pos_ids >= 0])

    scores[indices == -1] = -float("inf")
    positive_mask = torch.stack(
        [torch.isin(indices[q_idx], positive_indices[q_idx]) for q_idx in range(n_queries)]
    )
    scores[positive_mask] = -float("inf")

    if absolute_margin is not None or relative_margin is not None:
        max_positive_scores = torch.empty(n_queries, dtype=positive_scores.dtype)
        positive_score_idx = 0
        for q_idx in range(n_queries):
            max_positive_scores[q_idx] = torch.min(
                positive_scores[positive_score_idx : positive_score_idx + n_positives[q_idx]]
            )
            positive_score_idx += n_positives[q_idx]
        if absolute_margin is not None:
            removed_indices = scores + absolute_margin > max_positive_scores.repeat(scores.size(1), 1).T
            scores[removed_indices] = -float("inf")
        if relative_margin is not None:
            relative_threshold = max_positive_scores - max_positive_scores.abs() * relative_margin
            removed_indices = scores > relative_threshold.repeat(scores.size(1), 1).T
            scores[removed_indices] = -float("inf")

    if max_score is not None:
        scores[scores > max_score] = -float("inf")

    negative_scores, local_indices = torch.topk(scores, k=range_max, dim=1)
    indices = indices[batch_idx, local_indices]
    indices = indices[:, range_min:][:, :num_negatives]
    negative_scores = negative_scores[:, range_min:][:, :num_negatives]
    indices[negative_scores == -float("inf")] = -1
    return indices.numpy()


def row_agreement(neg_ids: np.ndarray, reference: np.ndarray) -> float:
    """Percent of queries whose negative ids (in rank order, -1 padded) equal the reference's."""
    if len(reference) == 0:
        return 100.0
    return 100.0 * float(np.mean(np.all(neg_ids == reference, axis=1)))
