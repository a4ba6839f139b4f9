"""The sample stage: pick the passages the LLM writes queries for -> corpus/sampled_ids.txt.

Eligible passages: not withheld (held-out or excluded document), within the token-length filter, and
not in a near-duplicate cluster that touches a withheld passage (a copy of a held-out answer in
another document would leak it into training). One passage per cluster (its first eligible member),
so near-duplicates do not get queries twice. Then a seeded uniform or stratified sample.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from synthrank.config import at_least
from synthrank.errors import ConfigError, EmptyOutputError, InputFormatError
from synthrank.native import sampling
from synthrank.records import RunLayout, atomic_open


@dataclass(frozen=True)
class SampleConfig:
    """Options of the sample stage (section [sample] of synthrank.toml)."""

    num_passages: int = 1000
    # uniform | stratified | hash: the passages with the smallest seeded hash of their id, so whether
    # a passage is picked never depends on which other documents are held out or excluded (a replay
    # of recorded LLM replies with extra exclusions only drops calls)
    strategy: Literal["uniform", "stratified", "hash"] = "uniform"
    stratify_by: str | None = None  # a meta key (e.g. "qtype", "source"): equal quotas per stratum
    min_tokens: int | None = 16
    max_tokens: int | None = None
    one_per_cluster: bool = True
    seed: int = 0
    # a file of passage ids, one per line: sample exactly these (the eligible ones) instead of drawing;
    # e.g. the passages a set of recorded LLM replies was made for, so the replay survives any change
    # to the sampler or to the near-duplicate clusters
    passage_ids: Path | None = None

    def validate(self) -> None:
        at_least(self, "sample", 1, "num_passages")
        at_least(self, "sample", 0, "min_tokens", "max_tokens", "seed", optional=True)
        if self.strategy not in ("uniform", "stratified", "hash"):
            raise ConfigError(
                f"must be 'uniform', 'stratified' or 'hash', got {self.strategy!r}",
                section="sample",
                key="strategy",
            )
        if self.strategy == "stratified" and not self.stratify_by:
            raise ConfigError(
                "a meta key is required for strategy 'stratified'", section="sample", key="stratify_by"
            )


def load_passage_arrays(layout: RunLayout, *keys: str) -> dict[str, np.ndarray]:
    """Ingest's per-passage arrays (passages.npz): those named in `keys`, else all of them."""
    if not layout.passage_arrays.is_file():
        raise InputFormatError(layout.passage_arrays, None, "missing: run `synthrank ingest` first")
    with np.load(layout.passage_arrays) as data:
        return {key: data[key] for key in keys or data.files}


def eligible_mask(arrays: dict[str, np.ndarray], cfg: SampleConfig) -> np.ndarray:
    withheld, clusters = arrays["heldout"], arrays["cluster_id"]
    eligible = ~withheld & sampling.length_mask(arrays["n_tokens"], cfg.min_tokens, cfg.max_tokens)
    eligible &= ~np.isin(clusters, np.unique(clusters[withheld]))
    if cfg.one_per_cluster:
        candidates = np.flatnonzero(eligible)
        _, first = np.unique(clusters[candidates], return_index=True)
        eligible = np.zeros_like(eligible)
        eligible[candidates[first]] = True
    return eligible


def _strata(layout: RunLayout, key: str) -> np.ndarray:
    """Stratum code per passage row: index of its `meta[key]` value in first-seen order (-1 = missing)."""
    codes: dict[str, int] = {}
    out: list[int] = []
    with open(layout.passages, encoding="utf-8") as fh:
        for line in fh:
            value = json.loads(line).get("meta", {}).get(key)
            out.append(-1 if value is None else codes.setdefault(value, len(codes)))
    return np.asarray(out, dtype=np.int64)


def _balanced_quotas(strata: np.ndarray, eligible: np.ndarray, total: int) -> dict[int, int]:
    """Equal quotas per stratum; what a small stratum cannot fill goes to the larger ones."""
    present, sizes = np.unique(strata[eligible & (strata >= 0)], return_counts=True)
    quotas: dict[int, int] = {}
    remaining = total
    for i, index in enumerate(np.argsort(sizes, kind="stable")):
        share = -(-remaining // (len(present) - i))  # ceil: the fair share of what is left
        quotas[int(present[index])] = min(int(sizes[index]), share)
        remaining -= quotas[int(present[index])]
    return quotas


def _smallest_hashes(layout: RunLayout, eligible: np.ndarray, cfg: SampleConfig) -> np.ndarray:
    """The `num_passages` eligible rows whose passage ids have the smallest seeded hash."""
    keys = np.full(len(eligible), np.iinfo(np.uint64).max, dtype=np.uint64)
    salt = f"sample\x00{cfg.seed}\x00".encode()
    with open(layout.passages, encoding="utf-8") as fh:
        for row, line in enumerate(fh):
            if eligible[row]:
                digest = hashlib.blake2b(salt + json.loads(line)["passage_id"].encode(), digest_size=8)
                keys[row] = int.from_bytes(digest.digest(), "little")
    rows = np.flatnonzero(eligible)
    return rows[np.argsort(keys[rows], kind="stable")[: cfg.num_passages]]


def _listed(layout: RunLayout, eligible: np.ndarray, path: Path) -> tuple[np.ndarray, dict[str, int]]:
    """The eligible rows among the passage ids listed in `path`, and what became of the others."""
    try:
        wanted = {line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()}
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}", section="sample", key="passage_ids") from exc
    rows = []
    with open(layout.passages, encoding="utf-8") as fh:
        for row, line in enumerate(fh):
            if json.loads(line)["passage_id"] in wanted:
                rows.append(row)
    found = np.asarray(rows, dtype=np.int64)
    chosen = found[eligible[found]] if len(found) else found
    if not len(chosen):
        raise EmptyOutputError(
            f"[sample] passage_ids: none of the {len(wanted)} ids in {path} is an eligible passage of "
            f"{layout.passages} ({len(found)} found)"
        )
    return chosen, {
        "listed": len(wanted),
        "listed_not_found": len(wanted) - len(found),
        "listed_not_eligible": len(found) - len(chosen),
    }


def run_sample(layout: RunLayout, cfg: SampleConfig) -> dict[str, object]:
    """Choose passages for query generation and write their ids to `layout.sampled_ids`."""
    cfg.validate()
    arrays = load_passage_arrays(layout)
    eligible = eligible_mask(arrays, cfg)
    listed: dict[str, int] = {}
    if cfg.passage_ids is not None:
        chosen, listed = _listed(layout, eligible, cfg.passage_ids)
    elif cfg.strategy == "stratified":
        assert cfg.stratify_by is not None  # validate() checked it
        strata = _strata(layout, cfg.stratify_by)
        quotas = _balanced_quotas(strata, eligible, cfg.num_passages)
        chosen = sampling.sample_stratified(strata, quotas, seed=cfg.seed, eligible=eligible & (strata >= 0))
    elif cfg.strategy == "hash":
        chosen = _smallest_hashes(layout, eligible, cfg)
    else:
        chosen = sampling.sample_uniform(len(eligible), cfg.num_passages, seed=cfg.seed, eligible=eligible)
    chosen = np.sort(np.asarray(chosen, dtype=np.int64))

    wanted = set(chosen.tolist())
    with open(layout.passages, encoding="utf-8") as fh, atomic_open(layout.sampled_ids) as out:
        for row, line in enumerate(fh):
            if row in wanted:
                out.write(json.loads(line)["passage_id"] + "\n")
    return {
        "passages": len(eligible),
        "eligible": int(eligible.sum()),
        "withheld": int(arrays["heldout"].sum()),
        "sampled": len(chosen),
        **listed,
    }
