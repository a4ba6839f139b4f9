"""Seeded synthetic inputs for the benchmarks: same seed and size, same data, on every machine.

Texts are Zipf-distributed pseudo-words (with a few accented and ligature spellings, so normalisation
does real work) and a controlled share of near-duplicates; candidate lists look like a bi-encoder's
output: scores sorted descending, positives mostly near the top, judge labels on the top ranks,
usearch's -1 padding on some rows, and corpus clusters/hashes that tie some candidates to a positive.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

VOCABULARY_SIZE = 20_000
_ONSETS = [*"bcdfghklmnprstvwz", "br", "ch", "cl", "dr", "fl", "gr", "kr", "pl", "pr", "sh", "st", "th", "tr"]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ea", "ou", "io", "é", "ü"]
_CODAS = ["", "", "", "", "n", "r", "s", "t", "l", "m", "nd", "st", "ng", "ck", "ß", "ﬁ"]
_ZIPF_EXPONENT = 1.07


@cache
def vocabulary() -> tuple[np.ndarray, np.ndarray]:
    """Fixed pseudo-word list (object array) and its Zipf cumulative distribution."""
    rng = np.random.default_rng(0)
    words: dict[str, None] = {}
    while len(words) < VOCABULARY_SIZE:
        syllables = rng.integers(1, 4)
        word = "".join(
            _ONSETS[rng.integers(len(_ONSETS))]
            + _VOWELS[rng.integers(len(_VOWELS))]
            + _CODAS[rng.integers(len(_CODAS))]
            for _ in range(syllables)
        )
        words[word] = None
    weights = 1.0 / np.arange(1, VOCABULARY_SIZE + 1) ** _ZIPF_EXPONENT
    return np.array(list(words), dtype=object), np.cumsum(weights) / weights.sum()


def _random_words(rng: np.random.Generator, count: int) -> np.ndarray:
    words, cdf = vocabulary()
    return words[np.minimum(np.searchsorted(cdf, rng.random(count)), len(words) - 1)]


def make_texts(
    n: int, *, seed: int, min_words: int = 8, max_words: int = 40, near_dup_fraction: float = 0.1
) -> list[str]:
    """`n` sentence-like texts; `near_dup_fraction` of them are edited copies of an earlier text.

    Edits: exact copy, upper-cased copy (equal after normalisation), one word replaced, one word
    deleted, or one word appended — each keeps the character-shingle Jaccard high for 8+ words.
    """
    rng = np.random.default_rng(seed)
    lengths = rng.integers(min_words, max_words + 1, size=n)
    words = _random_words(rng, int(lengths.sum()))
    ends = np.cumsum(lengths)
    texts = []
    for start, end in zip(ends - lengths, ends, strict=True):
        text = " ".join(words[start:end])
        texts.append(text[:1].upper() + text[1:] + ".")
    n_dups = int(n * near_dup_fraction) if n > 1 else 0
    for i in np.sort(rng.choice(np.arange(1, n), size=n_dups, replace=False)) if n_dups else ():
        texts[i] = _edit(texts[int(rng.integers(i))], rng)
    return texts


def make_passages(n: int, *, seed: int) -> list[str]:
    """`n` corpus passages of 45-80 words (~600 characters, as MedQuAD's answer passages), 10% of
    them edited copies of an earlier one."""
    return make_texts(n, seed=seed, min_words=45, max_words=80)


def _edit(text: str, rng: np.random.Generator) -> str:
    kind = int(rng.integers(5))
    if kind == 0:
        return text
    if kind == 1:
        return text.upper()
    words = text.split(" ")
    position = int(rng.integers(len(words)))
    if kind == 2:
        words[position] = str(_random_words(rng, 1)[0])
    elif kind == 3 and len(words) > 1:
        del words[position]
    else:
        words.append(str(_random_words(rng, 1)[0]))
    return " ".join(words)


def make_documents(n: int, *, seed: int) -> list[str]:
    """`n` documents of 20-400 words in sentences and paragraphs; about 1% are blank."""
    texts = make_texts(n, seed=seed, min_words=20, max_words=400, near_dup_fraction=0.0)
    rng = np.random.default_rng(seed + 1)
    for i in np.flatnonzero(rng.random(n) < 0.01):
        texts[i] = " \n "
    return [_punctuate(text, rng) for text in texts]


def _punctuate(text: str, rng: np.random.Generator) -> str:
    words = text.split(" ")
    breaks = np.flatnonzero(rng.random(len(words)) < 1 / 12)
    for i in breaks:
        words[i] += ".\n\n" if rng.random() < 0.2 else "."
    return " ".join(words)


@dataclass(frozen=True)
class Population:
    """Input of the sampling stage: a corpus of `n` passages, `k` to draw from the eligible ones."""

    n: int
    k: int
    eligible: np.ndarray  # bool[n]


def make_population(n: int, *, seed: int) -> Population:
    """Passages with log-normal lengths; eligible when 32-512 tokens long (about 85%); k = n / 10."""
    lengths = np.random.default_rng(seed).lognormal(mean=5.0, sigma=0.8, size=n)
    return Population(n=n, k=max(1, n // 10), eligible=(lengths >= 32) & (lengths <= 512))


@dataclass(frozen=True)
class Candidates:
    """Input of the negatives stage, in the shapes `synthrank.native.negatives.select_negatives` takes."""

    cand_ids: np.ndarray  # int64[Q, k], -1 = usearch padding
    cand_scores: np.ndarray  # float32[Q, k], descending per row
    pos_ids: np.ndarray  # int64[Q, P], -1 padded
    pos_scores: np.ndarray  # float32[Q, P], NaN where pos_ids is -1
    labels: np.ndarray  # float32[Q, k], judge grade 0-3 on the top ranks, NaN = unjudged
    doc_hashes: np.ndarray  # uint64[N]
    cluster_ids: np.ndarray  # int64[N]

    @property
    def n_queries(self) -> int:
        return int(self.cand_ids.shape[0])

    def rows(self, stop: int) -> Candidates:
        """The first `stop` queries (corpus arrays shared)."""
        return Candidates(
            self.cand_ids[:stop],
            self.cand_scores[:stop],
            self.pos_ids[:stop],
            self.pos_scores[:stop],
            self.labels[:stop],
            self.doc_hashes,
            self.cluster_ids,
        )


def make_candidates(
    n_queries: int,
    *,
    seed: int,
    k: int = 100,
    max_positives: int = 3,
    judged_ranks: int = 20,
    corpus_size: int = 1_000_000,
) -> Candidates:
    """Candidate lists of `k` per query over a corpus of `corpus_size` passages.

    The corpus size does not follow `n_queries`, so a capped sample of queries costs per query what
    the full run does (lookups into `doc_hashes` / `cluster_ids` miss the cache alike).

    Per query: 1-3 positives, the first retrieved at a geometric rank (10% not retrieved at all);
    3% of rows end in -1 padding; 5% hold a candidate in a positive's cluster, 2% one with a
    positive's exact hash.
    """
    rng = np.random.default_rng(seed)
    rows = np.arange(n_queries)
    cand_ids = rng.integers(0, corpus_size, size=(n_queries, k), dtype=np.int64)
    gaps = rng.exponential(0.004, size=(n_queries, k)).astype(np.float32)
    top = rng.uniform(0.5, 0.9, size=(n_queries, 1)).astype(np.float32)
    cand_scores = top - np.cumsum(gaps, axis=1) + gaps[:, :1]

    n_pos = rng.choice([1, 2, 3], p=[0.6, 0.3, 0.1], size=n_queries).clip(max=max_positives)
    pos_ids = rng.integers(0, corpus_size, size=(n_queries, max_positives), dtype=np.int64)
    pos_ids[np.arange(max_positives) >= n_pos[:, None]] = -1
    first_rank = np.minimum(rng.geometric(0.35, size=n_queries) - 1, k - 1)
    retrieved = rng.random(n_queries) >= 0.1
    cand_ids[rows[retrieved], first_rank[retrieved]] = pos_ids[retrieved, 0]
    pos_scores = np.where(pos_ids >= 0, rng.uniform(0.3, 0.7, size=pos_ids.shape), np.nan).astype(np.float32)
    pos_scores[rows[retrieved], 0] = cand_scores[rows[retrieved], first_rank[retrieved]]

    padded = np.flatnonzero(rng.random(n_queries) < 0.03)
    pad_from = rng.integers(k - 40, k, size=len(padded))
    pad_mask = np.zeros((n_queries, k), dtype=bool)
    pad_mask[padded] = np.arange(k) >= pad_from[:, None]
    cand_ids[pad_mask] = -1
    cand_scores[pad_mask] = 0.0

    labels = np.full((n_queries, k), np.nan, dtype=np.float32)
    judged = min(judged_ranks, k)
    labels[:, :judged] = rng.choice([0, 1, 2, 3], p=[0.55, 0.2, 0.15, 0.1], size=(n_queries, judged))
    labels[np.isin(cand_ids, pos_ids) & (cand_ids >= 0)] = 3.0

    cluster_ids = np.arange(corpus_size, dtype=np.int64)
    doc_hashes = rng.integers(0, np.iinfo(np.uint64).max, size=corpus_size, dtype=np.uint64)
    columns = rng.integers(np.minimum(first_rank + 1, k - 1), k, size=n_queries)
    tied = cand_ids[rows, columns] >= 0
    near_dup = tied & (rng.random(n_queries) < 0.05)
    cluster_ids[cand_ids[near_dup, columns[near_dup]]] = cluster_ids[pos_ids[near_dup, 0]]
    exact_dup = tied & ~near_dup & (rng.random(n_queries) < 0.02)
    doc_hashes[cand_ids[exact_dup, columns[exact_dup]]] = doc_hashes[pos_ids[exact_dup, 0]]
    return Candidates(cand_ids, cand_scores, pos_ids, pos_scores, labels, doc_hashes, cluster_ids)
