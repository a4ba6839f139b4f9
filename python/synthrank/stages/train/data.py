"""Training groups, the contract written down once: position 0 is the positive, 1..n the negatives.

Each epoch a query's group is rebuilt from its pools by a seeded rotation, so later epochs see
different negatives while any (seed, epoch, index) always gives the same group: the data position of
a run is just (epoch, step), which is what makes checkpoints resumable and ranks agree under DDP.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

from synthrank.config import within
from synthrank.errors import ConfigError, InvalidArgumentError
from synthrank.records import Passage, Query, RunLayout, TrainGroup, read_jsonl
from synthrank.scoring import cap_queries

RANDOM_POOL_MAX = 200_000  # random negatives come from a seeded sample of at most this many passages


@dataclass(frozen=True)
class GroupOptions:
    """How groups are drawn from the mined pools (a subset of TrainConfig)."""

    group_size: int = 8
    random_negative_share: float = 0.0  # share of the n negatives drawn at random from the corpus
    too_few_negatives: Literal["pad", "drop"] = "pad"  # pad with random negatives, or drop the query
    negatives: Literal["hard", "random"] = "hard"  # "random": the naive baseline's negatives
    positives: Literal["judged", "source"] = "judged"  # "source": the query's source passage
    seed: int = 42

    def __post_init__(self) -> None:
        if self.group_size < 2:
            raise ConfigError(
                f"must be >= 2 (1 positive + negatives), got {self.group_size}",
                section="train",
                key="group_size",
            )
        within(self, "train", 0, 1, "random_negative_share")


@dataclass
class GroupStats:
    groups_in: int = 0
    groups_used: int = 0
    dropped_no_positive: int = 0
    dropped_too_few_negatives: int = 0
    padded_too_few_negatives: int = 0
    negatives_per_query_mean: float = 0.0
    random_pool_size: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class GroupSource(Protocol):
    """What the trainer reads: lists of texts per query, in a seeded order per epoch. A source with a
    `targets(index, epoch)` method also gives the teacher's score of each text (distillation)."""

    @property
    def stats(self) -> Any: ...

    def __len__(self) -> int: ...

    def epoch_order(self, epoch: int) -> np.ndarray: ...

    def group(self, index: int, epoch: int) -> tuple[str, list[str]]: ...


@dataclass
class GroupDataset:
    """The kept groups plus a random in-corpus pool; `group(i, epoch)` gives texts, positive first."""

    groups: list[TrainGroup]
    random_pool: list[tuple[str, str]]  # (passage_id, text)
    options: GroupOptions
    stats: GroupStats = field(default_factory=GroupStats)

    def __len__(self) -> int:
        return len(self.groups)

    def epoch_order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.options.seed, epoch]).permutation(len(self.groups))

    def group(self, index: int, epoch: int) -> tuple[str, list[str]]:
        """(query, [positive, negative_1, ..., negative_n]) of group `index` in `epoch`."""
        query, members = self.members(index, epoch)
        return query, [text for _, text in members]

    def members(self, index: int, epoch: int) -> tuple[str, list[tuple[str, str]]]:
        """(query, [(passage_id, text) of the positive, then of each negative]) of group `index`."""
        g, opts = self.groups[index], self.options
        n = opts.group_size - 1
        rng = np.random.default_rng([opts.seed, index])  # per-query start offsets, fixed across epochs
        pos_start, neg_start = int(rng.integers(len(g.pos))), int(rng.integers(max(1, len(g.neg))))
        p = (pos_start + epoch) % len(g.pos)
        members = [(g.pos_ids[p], g.pos[p])]
        n_hard = (
            0 if opts.negatives == "random" else min(len(g.neg), n - round(opts.random_negative_share * n))
        )
        start = neg_start + epoch * n_hard
        members += [
            (g.neg_ids[(start + j) % len(g.neg)], g.neg[(start + j) % len(g.neg)]) for j in range(n_hard)
        ]
        if len(members) < opts.group_size:
            epoch_rng = np.random.default_rng([opts.seed, index, epoch])
            members += self._random_negatives(
                opts.group_size - len(members), set(g.pos_ids) | set(g.neg_ids), epoch_rng
            )
        return g.query, members

    def _random_negatives(self, k: int, exclude: set[str], rng: np.random.Generator) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        if not self.random_pool:
            raise InvalidArgumentError("no passages to draw random negatives from")
        for _ in range(20 * k):
            pid, text = self.random_pool[int(rng.integers(len(self.random_pool)))]
            if pid not in exclude:
                out.append((pid, text))
                exclude = exclude | {pid}
                if len(out) == k:
                    return out
        raise InvalidArgumentError(f"could not draw {k} random negatives outside the query's own pools")


@dataclass
class WithTeacher:
    """Mined groups plus the bi-encoder's cosine of each member, for LCE + λ·KL (the warm start's
    teacher kept in the loss, so fine-tuning on a few LLM labels does not forget what it taught)."""

    groups: GroupDataset
    query_vectors: np.ndarray  # row per query_id in `query_rows`
    passage_vectors: np.ndarray  # row per passage_id in `passage_rows`
    query_rows: dict[str, int]
    passage_rows: dict[str, int]

    @property
    def stats(self) -> GroupStats:
        return self.groups.stats

    def __len__(self) -> int:
        return len(self.groups)

    def epoch_order(self, epoch: int) -> np.ndarray:
        return self.groups.epoch_order(epoch)

    def group(self, index: int, epoch: int) -> tuple[str, list[str]]:
        return self.groups.group(index, epoch)

    def targets(self, index: int, epoch: int) -> np.ndarray:
        _, members = self.groups.members(index, epoch)
        q = np.asarray(self.query_vectors[self.query_rows[self.groups.groups[index].query_id]], np.float32)
        rows = [self.passage_rows[pid] for pid, _ in members]
        return np.asarray(self.passage_vectors[rows], np.float32) @ q


def with_teacher(layout: RunLayout, groups: GroupDataset) -> WithTeacher:
    """`groups` with the run's bi-encoder embeddings as the teacher (queries.npy, passages.npy)."""
    from synthrank.stages.retrieve import load_embeddings

    query_rows = {q.query_id: i for i, q in enumerate(read_jsonl(layout.queries, Query))}
    passage_rows = {p.passage_id: i for i, p in enumerate(read_jsonl(layout.passages, Passage))}
    missing = [g.query_id for g in groups.groups if g.query_id not in query_rows]
    if missing:
        raise InvalidArgumentError(f"{layout.queries}: no query {missing[0]!r} of the training groups")
    return WithTeacher(
        groups,
        load_embeddings(layout, "queries"),
        load_embeddings(layout, "passages"),
        query_rows,
        passage_rows,
    )


def _dev_passage_ids(layout: RunLayout) -> set[str]:
    """Every passage the synthetic dev set ranks (its corpus.jsonl)."""
    path = layout.dev / "corpus.jsonl"
    if not path.is_file():
        return set()
    with open(path, encoding="utf-8") as fh:
        return {str(json.loads(line)["_id"]) for line in fh if line.strip()}


def _random_pool(layout: RunLayout, groups: Sequence[TrainGroup], seed: int) -> list[tuple[str, str]]:
    """A seeded reservoir sample of the run's training passages, or the groups' own passages without
    a corpus. Never a held-out or excluded document's (the test set's), nor one the synthetic dev
    set ranks (a dev passage trained as a negative would bias the settings picked on it)."""
    if layout.passages.is_file():
        rng = random.Random(seed)
        withheld = layout.withheld_doc_ids()
        dev = _dev_passage_ids(layout)
        pool: list[tuple[str, str]] = []
        passages = read_jsonl(layout.passages, Passage)
        trainable = (p for p in passages if p.doc_id not in withheld and p.passage_id not in dev)
        for i, p in enumerate(trainable):
            if i < RANDOM_POOL_MAX:
                pool.append((p.passage_id, p.reranker_text))
            elif (j := rng.randrange(i + 1)) < RANDOM_POOL_MAX:
                pool[j] = (p.passage_id, p.reranker_text)
        return pool
    seen: dict[str, str] = {}
    for g in groups:
        seen.update(zip(g.pos_ids, g.pos, strict=True))
        seen.update(zip(g.neg_ids, g.neg, strict=True))
    return sorted(seen.items())


def _with_source_positives(layout: RunLayout, groups: list[TrainGroup]) -> tuple[list[TrainGroup], int]:
    """The naive baseline's groups: each query's source passage as its only positive, no judged labels."""
    for path in (layout.queries, layout.passages):
        if not path.is_file():
            raise InvalidArgumentError(
                f"{path}: not found; positives='source' needs the queries and passages"
            )
    source = {q.query_id: q.passage_id for q in read_jsonl(layout.queries, Query)}
    wanted = {source[g.query_id] for g in groups if g.query_id in source}
    texts = {
        p.passage_id: p.reranker_text for p in read_jsonl(layout.passages, Passage) if p.passage_id in wanted
    }
    out = [
        TrainGroup(g.query, [texts[source[g.query_id]]], [], g.query_id, [source[g.query_id]], [])
        for g in groups
        if source.get(g.query_id) in texts
    ]
    return out, len(groups) - len(out)


def load_groups(layout: RunLayout, options: GroupOptions) -> GroupDataset:
    """Read `train_groups.jsonl`, apply the positives/negatives policy and count what was dropped."""
    if not layout.train_groups.is_file():
        raise InvalidArgumentError(f"{layout.train_groups}: not found; run `synthrank mine` first")
    groups = list(read_jsonl(layout.train_groups, TrainGroup))
    stats = GroupStats(groups_in=len(groups))
    kept = [g for g in groups if g.pos]
    stats.dropped_no_positive = len(groups) - len(kept)
    if options.positives == "source":
        kept, missing = _with_source_positives(layout, kept)
        stats.dropped_no_positive += missing
    n = options.group_size - 1
    if options.negatives == "hard":
        short = [g for g in kept if len(g.neg) < n]
        if options.too_few_negatives == "drop":
            kept = [g for g in kept if len(g.neg) >= n]
            stats.dropped_too_few_negatives = len(short)
        else:
            stats.padded_too_few_negatives = len(short)
    stats.groups_used = len(kept)
    stats.negatives_per_query_mean = float(np.mean([len(g.neg) for g in kept])) if kept else 0.0
    if not kept:
        raise InvalidArgumentError(
            f"{layout.train_groups}: no usable group ({json.dumps(stats.as_dict())}); the mine stage "
            f'made none: see {layout.mining_stats} for why, then change [mine] (e.g. adapt = "auto", '
            "allow_unjudged = true, negative_max_grade = 1, min_negatives) and re-run from mine "
            "(`synthrank run CONFIG --pilot 50` shows the yield first)"
        )
    pool = _random_pool(layout, kept, options.seed)
    stats.random_pool_size = len(pool)
    return GroupDataset(kept, pool, options, stats)


def encode_pairs(
    tokenizer: Any, queries: Sequence[str], passages: Sequence[str], max_length: int, max_query_tokens: int
) -> dict[str, Any]:
    """Tokenize (query, passage) pairs: the query is capped first, then only the passage is cut."""
    return tokenizer(
        cap_queries(tokenizer, queries, max_query_tokens),
        list(passages),
        truncation="only_second",
        max_length=max_length,
        padding=True,
        return_tensors="pt",
    )
