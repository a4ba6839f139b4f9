"""What each benchmarked stage runs: its synthetic input, its call per backend, and its peers.

Every stage calls the public wrapper (`synthrank.native.chunking`, ...) with `backend="native"` or
`"python"`, so the benchmark measures what users call, argument checks included.
"""

from __future__ import annotations

import importlib.util
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from synthrank.bench import data, peers

CHUNK_MAX_TOKENS = 128
CHUNK_OVERLAP = 16
DEDUP_THRESHOLD = 0.8
DEDUP_NUM_PERM = 128
DEDUP_SHINGLE_SIZE = 5
DEDUP_BATCH = 1000  # passages per `add`, about what ingest adds per batch of documents
NUM_NEGATIVES = 8
RELATIVE_MARGIN = 0.05
JUDGED_RANGE_MAX = 50
SAMPLE_SEED = 7


# The extra that installs the optional peers (datasketch, rensa); a plain install benches without them.
PEERS_EXTRA = "synthrank[bench]"


@dataclass(frozen=True)
class Peer:
    """Another library doing the stage's job; `agreement` scores its output against the twin's."""

    run: Callable[[Any, int | None], Any]  # (input, threads) -> output
    agreement: Callable[[Any, Any], float]  # (peer output, twin output) -> percent
    compared: str
    module: str  # what it imports: a peer whose module is missing is skipped, not an error

    def installed(self) -> bool:
        return importlib.util.find_spec(self.module) is not None


@dataclass(frozen=True)
class Stage:
    name: str
    unit: str
    make: Callable[[int, int], Any]  # (size, seed) -> input
    run: Callable[[Any, str, int | None], Any]  # (input, backend, threads) -> output
    same: Callable[[Any, Any], bool]
    # Inputs larger than this are generated and run in blocks of this many items (None: whole).
    block_size: int | None = None
    peers: dict[str, Peer] = field(default_factory=dict)

    def installed_peers(self) -> dict[str, Peer]:
        return {name: peer for name, peer in self.peers.items() if peer.installed()}


def _chunk(texts: list[str], backend: str, threads: int | None) -> Any:
    from synthrank.native.chunking import chunk_words

    return chunk_words(
        texts, max_tokens=CHUNK_MAX_TOKENS, overlap=CHUNK_OVERLAP, backend=backend, threads=threads
    )


def _same_chunks(left: Any, right: Any) -> bool:
    return all(
        np.array_equal(getattr(left, name), getattr(right, name))
        for name in ("doc_index", "start", "end", "n_tokens")
    )


def _sample(population: data.Population, backend: str, threads: int | None) -> np.ndarray:
    from synthrank.native.sampling import sample_uniform

    # a reservoir draw is sequential: it runs on one thread whatever `threads` says
    return sample_uniform(
        population.n,
        population.k,
        seed=SAMPLE_SEED,
        eligible=population.eligible,
        backend=backend,
    )


def _ingest_near_duplicates(texts: list[str], backend: str, threads: int | None) -> np.ndarray:
    """What ingest runs: passages streamed in batches into a `NearDupIndex`, then its clusters."""
    from synthrank.native.neardup import NearDupIndex

    with tempfile.TemporaryDirectory(prefix="synthrank-bench-") as folder:
        index = NearDupIndex(
            Path(folder) / "signatures",
            threshold=DEDUP_THRESHOLD,
            num_perm=DEDUP_NUM_PERM,
            shingle_size=DEDUP_SHINGLE_SIZE,
            backend=backend,
        )
        with index:
            for start in range(0, len(texts), DEDUP_BATCH):
                index.add(texts[start : start + DEDUP_BATCH], threads=threads)
            return index.clusters()


def _near_duplicates(texts: list[str], backend: str, threads: int | None) -> np.ndarray:
    """What the filter stage runs on generated queries: one call over all of them."""
    from synthrank.native.dedup import near_duplicates

    return near_duplicates(
        texts,
        threshold=DEDUP_THRESHOLD,
        num_perm=DEDUP_NUM_PERM,
        shingle_size=DEDUP_SHINGLE_SIZE,
        backend=backend,
        threads=threads,
    )


def _lsh_bands_rows() -> tuple[int, int]:
    from synthrank.native.dedup import lsh_params

    return lsh_params(DEDUP_THRESHOLD, DEDUP_NUM_PERM)


# Peers hash only the bands x rows permutations LSH uses, as the twin and the core do (rensa also
# requires num_perm to be a multiple of the band count).
def _datasketch(texts: list[str], threads: int | None) -> np.ndarray:
    bands, rows = _lsh_bands_rows()
    return peers.datasketch_near_duplicates(
        texts,
        threshold=DEDUP_THRESHOLD,
        num_perm=bands * rows,
        bands=bands,
        rows=rows,
        shingle_size=DEDUP_SHINGLE_SIZE,
    )


def _rensa(texts: list[str], threads: int | None) -> np.ndarray:
    bands, rows = _lsh_bands_rows()
    return peers.rensa_near_duplicates(
        texts, threshold=DEDUP_THRESHOLD, num_perm=bands * rows, bands=bands, shingle_size=DEDUP_SHINGLE_SIZE
    )


def _select_negatives(candidates: data.Candidates, backend: str, threads: int | None) -> Any:
    from synthrank.native.negatives import select_negatives

    # Only the filters sentence-transformers also has, so all three implementations do the same job.
    return select_negatives(
        candidates.cand_ids,
        candidates.cand_scores,
        candidates.pos_ids,
        num_negatives=NUM_NEGATIVES,
        pos_scores=candidates.pos_scores,
        relative_margin=RELATIVE_MARGIN,
        backend=backend,
        threads=threads,
    )


def _select_judged_negatives(candidates: data.Candidates, backend: str, threads: int | None) -> Any:
    from synthrank.native.negatives import select_negatives

    # Every filter synthrank adds on top: judge labels, exact and near duplicates of positives,
    # a rank window, and seeded random sampling.
    return select_negatives(
        candidates.cand_ids,
        candidates.cand_scores,
        candidates.pos_ids,
        num_negatives=NUM_NEGATIVES,
        pos_scores=candidates.pos_scores,
        labels=candidates.labels,
        doc_hashes=candidates.doc_hashes,
        cluster_ids=candidates.cluster_ids,
        range_min=1,
        range_max=JUDGED_RANGE_MAX,
        relative_margin=RELATIVE_MARGIN,
        sampling="random",
        seed=SAMPLE_SEED,
        backend=backend,
        threads=threads,
    )


def _same_selection(left: Any, right: Any) -> bool:
    return (
        np.array_equal(left.neg_ids, right.neg_ids)
        and np.array_equal(left.neg_scores, right.neg_scores, equal_nan=True)
        and np.array_equal(left.neg_judged, right.neg_judged)
        and left.counts == right.counts
    )


def _sentence_transformers(candidates: data.Candidates, threads: int | None) -> np.ndarray:
    import torch

    if threads:
        torch.set_num_threads(threads)
    return peers.sentence_transformers_select_negatives(
        candidates.cand_ids,
        candidates.cand_scores,
        candidates.pos_ids,
        candidates.pos_scores,
        num_negatives=NUM_NEGATIVES,
        relative_margin=RELATIVE_MARGIN,
    )


_NEAR_DUP_PAIRS = "near-dup pairs vs python twin"

STAGES: dict[str, Stage] = {
    "chunk": Stage(
        name="chunk",
        unit="docs",
        make=lambda size, seed: data.make_documents(size, seed=seed),
        run=_chunk,
        same=_same_chunks,
        block_size=100_000,
    ),
    "sample": Stage(
        name="sample",
        unit="passages",
        make=lambda size, seed: data.make_population(size, seed=seed),
        run=_sample,
        same=np.array_equal,
    ),
    "dedup": Stage(
        name="dedup",
        unit="passages",
        make=lambda size, seed: data.make_passages(size, seed=seed),
        run=_ingest_near_duplicates,
        same=np.array_equal,
        peers={
            "datasketch": Peer(_datasketch, peers.pair_agreement, _NEAR_DUP_PAIRS, module="datasketch"),
            "rensa": Peer(_rensa, peers.pair_agreement, _NEAR_DUP_PAIRS, module="rensa"),
        },
    ),
    "dedup-queries": Stage(
        name="dedup-queries",
        unit="texts",
        make=lambda size, seed: data.make_texts(size, seed=seed),
        run=_near_duplicates,
        same=np.array_equal,
    ),
    "negatives": Stage(
        name="negatives",
        unit="queries",
        make=lambda size, seed: data.make_candidates(size, seed=seed),
        run=_select_negatives,
        same=_same_selection,
        block_size=100_000,
        peers={
            "sentence-transformers": Peer(
                _sentence_transformers,
                lambda ids, twin: peers.row_agreement(ids, twin.neg_ids),
                "queries with the same negatives as python twin",
                module="sentence_transformers",
            )
        },
    ),
    "negatives-judged": Stage(
        name="negatives-judged",
        unit="queries",
        make=lambda size, seed: data.make_candidates(size, seed=seed),
        run=_select_judged_negatives,
        same=_same_selection,
        block_size=100_000,
    ),
}


def missing_peers(stage_names: list[str] | tuple[str, ...]) -> list[str]:
    """One line per peer of these stages that is not installed, saying how to install it."""
    return [
        f"{stage}: skipping peer {name} (not installed; pip install '{PEERS_EXTRA}')"
        for stage in stage_names
        if stage in STAGES
        for name, peer in STAGES[stage].peers.items()
        if not peer.installed()
    ]
