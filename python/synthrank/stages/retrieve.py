"""Bi-encoder embeddings, a usearch index and top-k candidates per synthetic query.

Embeddings: `embeddings/passages.npy` and `queries.npy` (float32, L2-normalised, row = passage /
query row) with `manifest.json` (model, prompts, corpus fingerprint); a re-run with the same inputs
reuses them, and later stages read them memory-mapped. Index: usearch HNSW over the *trainable*
passages only (held-out and excluded documents never become candidates, so the judge never grades
them and mining never sees them), saved to `index/passages.usearch` and opened as a memory-mapped
view. Small corpora are searched exactly instead. ANN recall@k against exact search on a sample of
queries is measured and reported, so the cost of the index is visible.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from synthrank.config import at_least
from synthrank.errors import ConfigError, InputFormatError
from synthrank.models import DEFAULT_EMBEDDER, resolve_model
from synthrank.progress import progress_bar
from synthrank.records import (
    Passage,
    Query,
    RunLayout,
    atomic_open,
    atomic_path,
    read_jsonl,
    write_text_atomic,
)
from synthrank.stages.sample import load_passage_arrays

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmbedConfig:
    """Options of the embed stage (section [embed] of synthrank.toml)."""

    model: str = DEFAULT_EMBEDDER
    batch_size: int = 64
    device: str | None = None  # None: CUDA when available, else CPU
    devices: tuple[str, ...] = ()  # two or more: sentence-transformers' multi-process pool
    fp16: bool = True  # on CUDA only
    max_seq_length: int | None = None
    include_title: bool = True
    query_prompt: str = ""  # e.g. "query: " for E5 models
    passage_prompt: str = ""
    chunk_size: int = 16384  # texts per encode call: bounds memory, drives the progress bar

    def validate(self) -> None:
        at_least(self, "embed", 1, "batch_size", "chunk_size")
        at_least(self, "embed", 1, "max_seq_length", optional=True)


@dataclass(frozen=True)
class IndexConfig:
    """Options of the usearch index (section [index] of synthrank.toml)."""

    metric: Literal["cos", "ip", "l2sq"] = "cos"
    dtype: Literal["f32", "f16", "i8"] = "f32"
    connectivity: int = 16
    expansion_add: int = 128
    expansion_search: int = 128
    threads: int = 0  # 0 = all cores

    def validate(self) -> None:
        if self.metric not in ("cos", "ip", "l2sq"):
            raise ConfigError(f"must be cos, ip or l2sq, got {self.metric!r}", section="index", key="metric")
        if self.dtype not in ("f32", "f16", "i8"):
            raise ConfigError(f"must be f32, f16 or i8, got {self.dtype!r}", section="index", key="dtype")
        at_least(self, "index", 2, "connectivity")
        at_least(self, "index", 1, "expansion_add", "expansion_search")
        at_least(self, "index", 0, "threads")


@dataclass(frozen=True)
class RetrieveConfig:
    """Options of the candidate search (section [retrieve] of synthrank.toml)."""

    k: int = 100
    exact: bool | None = None  # None: exact search when the corpus has <= exact_below passages
    exact_below: int = 20_000
    recall_sample: int = 200  # queries whose ANN top-k is compared with exact search (0 = skip)
    threads: int = 0  # 0 = all cores
    seed: int = 0

    def validate(self) -> None:
        at_least(self, "retrieve", 1, "k")
        at_least(self, "retrieve", 0, "recall_sample", "exact_below", "threads", "seed")


@dataclass(frozen=True)
class Candidates:
    """Top-k passages per query: `ids` are passage rows (-1 = none), `scores` cosine similarities."""

    query_ids: np.ndarray
    ids: np.ndarray
    scores: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)


def file_fingerprint(path: Path) -> str:
    """Content hash of a file, so cached embeddings are reused only for the very same input."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def _write_json_atomic(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(data, indent=1) + "\n")


def load_model(cfg: EmbedConfig, *, field: str = "[embed] model") -> Any:
    """The sentence-transformers model of `cfg`; `field` names the setting it came from in errors."""
    import torch
    from sentence_transformers import SentenceTransformer

    device = cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        model = SentenceTransformer(resolve_model(cfg.model), device=device)
    except OSError as exc:
        raise ConfigError(f"{field}: cannot load {cfg.model!r}: {exc}") from exc
    if cfg.max_seq_length:
        model.max_seq_length = cfg.max_seq_length
    if cfg.fp16 and device.startswith("cuda"):
        model.half()
    return model


def embedding_dim(model: Any) -> int:
    # sentence-transformers 5.x renamed get_sentence_embedding_dimension; accept both generations
    getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    return int(getter())


def _chunks(texts: Iterator[str], size: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    for text in texts:
        chunk.append(text)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def encode_to_npy(
    model: Any, texts: Iterator[str], count: int, out: Path, cfg: EmbedConfig, prompt: str
) -> None:
    """Encode `count` texts chunk by chunk into a float32 .npy (written via a temp file)."""
    dim = embedding_dim(model)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(count, dim))
        pool = model.start_multi_process_pool(list(cfg.devices)) if len(cfg.devices) > 1 else None
        try:
            row = 0
            with progress_bar(f"embed {out.stem}", total=count, unit="texts") as bar:
                for chunk in _chunks(texts, cfg.chunk_size):
                    vectors = model.encode(
                        chunk,
                        batch_size=cfg.batch_size,
                        prompt=prompt or None,
                        normalize_embeddings=True,
                        convert_to_numpy=True,
                        show_progress_bar=False,
                        pool=pool,
                    )
                    array[row : row + len(chunk)] = vectors.astype(np.float32)
                    row += len(chunk)
                    bar.advance(len(chunk))
            if row != count:
                raise InputFormatError(out, None, f"expected {count} texts, encoded {row}")
            array.flush()
        finally:
            if pool is not None:
                model.stop_multi_process_pool(pool)
            del array  # the memory map is closed before the file is renamed


def _passage_texts(path: Path, include_title: bool) -> Iterator[str]:
    for p in read_jsonl(path, Passage):
        yield f"{p.title}\n{p.text}" if include_title and p.title else p.text


def _count_lines(path: Path) -> int:
    with open(path, "rb") as fh:
        return sum(1 for line in fh if line.strip())


def run_embed(layout: RunLayout, cfg: EmbedConfig) -> dict[str, object]:
    """Embed passages (and queries, when queries.jsonl exists), reusing cached arrays when valid."""
    cfg.validate()
    if not layout.passages.is_file():
        raise InputFormatError(layout.passages, None, "missing: run `synthrank ingest` first")
    manifest_path = layout.embeddings_manifest
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    settings = {
        "model": cfg.model,
        "max_seq_length": cfg.max_seq_length,
        "include_title": cfg.include_title,
        "query_prompt": cfg.query_prompt,
        "passage_prompt": cfg.passage_prompt,
        "normalized": "l2",
    }
    if manifest.get("settings") != settings:
        manifest = {"settings": settings}
    model = None
    counts: dict[str, object] = {}
    inputs = [("passages", layout.passages, cfg.passage_prompt)]
    if layout.queries.is_file():
        inputs.append(("queries", layout.queries, cfg.query_prompt))
    for name, source, prompt in inputs:
        out = layout.embeddings / f"{name}.npy"
        count = _count_lines(source)
        stamp = {"fingerprint": file_fingerprint(source), "count": count}
        if manifest.get(name) == stamp and out.is_file():
            counts[f"{name}_reused"] = count
            continue
        model = model or load_model(cfg)
        texts = (
            _passage_texts(source, cfg.include_title)
            if name == "passages"
            else (q.text for q in read_jsonl(source, Query))
        )
        started = time.perf_counter()
        encode_to_npy(model, texts, count, out, cfg, prompt)
        manifest[name] = stamp
        manifest["dim"] = embedding_dim(model)
        _write_json_atomic(manifest_path, manifest)
        counts[f"{name}_embedded"] = count
        if name == "passages":  # the rate `synthrank plan` times the next embedding of the folder at
            counts["passages_per_second"] = round(count / max(time.perf_counter() - started, 1e-9), 2)
    return counts


def load_embeddings(layout: RunLayout, name: str) -> np.ndarray:
    """Memory-mapped float32 embeddings (`passages` or `queries`)."""
    path = layout.embeddings / f"{name}.npy"
    if not path.is_file():
        raise InputFormatError(path, None, "missing: run `synthrank embed` first")
    return np.load(path, mmap_mode="r")


def exact_search(
    queries: np.ndarray,
    passages: np.ndarray,
    k: int,
    *,
    rows: np.ndarray | None = None,
    block: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k by inner product (= cosine on normalised vectors) over `rows` of `passages`.

    Passages are scanned in blocks (about 2^24 scores at a time) keeping a running top-k, so memory
    stays bounded however large the corpus is.
    """
    rows = np.arange(len(passages)) if rows is None else rows
    n_q = len(queries)
    block = block or int(np.clip(2**24 // max(1, n_q), 1024, 65536))
    best_ids = np.full((n_q, k), -1, dtype=np.int64)
    best_scores = np.full((n_q, k), -np.inf, dtype=np.float32)
    q = np.asarray(queries, dtype=np.float32)
    for lo in range(0, len(rows), block):
        block_rows = rows[lo : lo + block]
        scores = q @ np.asarray(passages[block_rows], dtype=np.float32).T
        if scores.shape[1] > k:  # keep only each query's k best of this block before merging
            part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
            scores, block_ids = np.take_along_axis(scores, part, axis=1), block_rows[part]
        else:
            block_ids = np.broadcast_to(block_rows, scores.shape)
        merged_scores = np.concatenate([best_scores, scores], axis=1)
        merged_ids = np.concatenate([best_ids, block_ids], axis=1)
        top = np.argpartition(-merged_scores, k - 1, axis=1)[:, :k]
        best_scores = np.take_along_axis(merged_scores, top, axis=1)
        best_ids = np.take_along_axis(merged_ids, top, axis=1)
    order = np.argsort(-best_scores, axis=1, kind="stable")
    best_scores = np.take_along_axis(best_scores, order, axis=1)
    best_ids = np.take_along_axis(best_ids, order, axis=1)
    best_ids[~np.isfinite(best_scores)] = -1
    best_scores[~np.isfinite(best_scores)] = 0.0
    return best_ids, best_scores.astype(np.float32)


def _index_settings(cfg: IndexConfig, passages_stamp: object, rows: int) -> dict[str, object]:
    return {
        "metric": cfg.metric,
        "dtype": cfg.dtype,
        "connectivity": cfg.connectivity,
        "expansion_add": cfg.expansion_add,
        "passages": passages_stamp,
        "rows": rows,
    }


def open_index(layout: RunLayout, cfg: IndexConfig) -> Any:
    """The saved index as a memory-mapped view (the corpus may be larger than RAM)."""
    from usearch.index import Index

    if not layout.index.is_file():
        raise InputFormatError(layout.index, None, "missing: run `synthrank index` first")
    # expansion_search is not stored in the file: pass it again when opening
    return Index.restore(str(layout.index), view=True, expansion_search=cfg.expansion_search)


def run_index(layout: RunLayout, cfg: IndexConfig) -> dict[str, object]:
    """Build the usearch index over the trainable passages, unless one with the same settings exists."""
    from usearch.index import Index

    cfg.validate()
    passages = load_embeddings(layout, "passages")
    rows = trainable_rows(layout)
    manifest = json.loads(layout.embeddings_manifest.read_text())
    settings = _index_settings(cfg, manifest.get("passages"), len(rows))
    settings_path = layout.index.with_suffix(".json")
    if (
        layout.index.is_file()
        and settings_path.is_file()
        and json.loads(settings_path.read_text()) == settings
    ):
        return {"index_reused": len(rows)}
    index = Index(
        ndim=passages.shape[1],
        metric=cfg.metric,
        dtype=cfg.dtype,
        connectivity=cfg.connectivity,
        expansion_add=cfg.expansion_add,
        expansion_search=cfg.expansion_search,
    )
    step = 65536
    with progress_bar("index", total=len(rows), unit="vectors") as bar:
        for lo in range(0, len(rows), step):
            keys = rows[lo : lo + step]
            index.add(keys, np.asarray(passages[keys], dtype=np.float32), threads=cfg.threads)
            bar.advance(len(keys))
    layout.index.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(layout.index) as tmp:
        index.save(str(tmp))
    _write_json_atomic(settings_path, settings)
    return {"indexed": len(rows), "index_bytes": layout.index.stat().st_size}


def ann_search(index: Any, queries: np.ndarray, k: int, threads: int) -> tuple[np.ndarray, np.ndarray]:
    """One batched usearch search; distances become cosine similarities, missing hits -1."""
    matches = index.search(np.asarray(queries, dtype=np.float32), k, threads=threads)
    ids = matches.keys.astype(np.int64).reshape(len(queries), -1)
    missing = np.arange(ids.shape[1])[None, :] >= np.asarray(matches.counts).reshape(-1, 1)
    # slots past a query's hit count hold undefined distances (NaN, inf): masked before any arithmetic
    distances = np.where(missing, 1.0, np.asarray(matches.distances).reshape(len(queries), -1))
    scores = (1.0 - distances).astype(np.float32)
    ids[missing] = -1
    if ids.shape[1] < k:  # fewer vectors than k
        pad = k - ids.shape[1]
        ids = np.pad(ids, ((0, 0), (0, pad)), constant_values=-1)
        scores = np.pad(scores, ((0, 0), (0, pad)))
    return ids, scores


def recall_at_k(approx: np.ndarray, exact: np.ndarray) -> float:
    """Mean share of each query's exact top-k found in its approximate top-k."""
    hits = total = 0
    for a, e in zip(approx, exact, strict=True):
        truth = set(e[e >= 0].tolist())
        hits += len(truth & set(a.tolist()))
        total += len(truth)
    return hits / total if total else 1.0


def trainable_rows(layout: RunLayout) -> np.ndarray:
    """Passage rows outside held-out and excluded documents: the only ones that may be candidates."""
    heldout = load_passage_arrays(layout, "heldout")["heldout"]
    return np.flatnonzero(~heldout).astype(np.int64)


def search_queries(layout: RunLayout, cfg: RetrieveConfig, index_cfg: IndexConfig) -> Candidates:
    passages = load_embeddings(layout, "passages")
    queries = load_embeddings(layout, "queries")
    rows = trainable_rows(layout)
    if len(rows) != 0 and rows[-1] >= len(passages):
        raise InputFormatError(layout.embeddings, None, "passages.npy is older than the corpus: re-run embed")
    exact = cfg.exact if cfg.exact is not None else len(rows) <= cfg.exact_below
    meta: dict[str, Any] = {"search": "exact" if exact else "ann", "trainable_passages": len(rows)}
    index = open_index(layout, index_cfg) if layout.index.is_file() or not exact else None
    if exact:
        ids, scores = exact_search(queries, passages, cfg.k, rows=rows)
    else:
        ids, scores = ann_search(index, queries, cfg.k, cfg.threads)
    if index is not None and cfg.recall_sample > 0 and len(queries):
        rng = np.random.default_rng(cfg.seed)
        sample = np.sort(rng.choice(len(queries), size=min(cfg.recall_sample, len(queries)), replace=False))
        truth = ids[sample] if exact else exact_search(queries[sample], passages, cfg.k, rows=rows)[0]
        approx = ann_search(index, queries[sample], cfg.k, cfg.threads)[0] if exact else ids[sample]
        meta["ann_recall_at_k"] = round(recall_at_k(approx, truth), 4)
        meta["recall_sample"] = len(sample)
    query_ids = np.asarray([q.query_id for q in read_jsonl(layout.queries, Query)], dtype=str)
    if len(query_ids) != len(queries):
        raise InputFormatError(layout.queries, None, "queries.npy is older than queries.jsonl: re-run embed")
    return Candidates(query_ids=query_ids, ids=ids, scores=scores, meta=meta)


def save_candidates(path: Path, candidates: Candidates) -> None:
    with atomic_open(path, "wb") as fh:
        np.savez(fh, query_ids=candidates.query_ids, ids=candidates.ids, scores=candidates.scores)


def load_candidates(path: Path) -> Candidates:
    if not path.is_file():
        raise InputFormatError(path, None, "missing: run `synthrank retrieve` first")
    with np.load(path) as data:
        return Candidates(query_ids=data["query_ids"], ids=data["ids"], scores=data["scores"])


def run_retrieve(
    layout: RunLayout,
    cfg: RetrieveConfig,
    embed_cfg: EmbedConfig | None = None,
    index_cfg: IndexConfig | None = None,
) -> dict[str, object]:
    """Embed and index what is missing, search top-k per query, write `layout.candidates`."""
    cfg.validate()
    index_cfg = index_cfg or IndexConfig()
    if not layout.queries.is_file():
        raise InputFormatError(layout.queries, None, "missing: generate and filter queries first")
    counts: dict[str, object] = dict(run_embed(layout, embed_cfg or EmbedConfig()))
    counts.update(run_index(layout, index_cfg))
    candidates = search_queries(layout, cfg, index_cfg)
    save_candidates(layout.candidates, candidates)
    found = candidates.ids >= 0
    counts.update(candidates.meta)
    counts.update(
        {
            "queries": len(candidates.query_ids),
            "k": cfg.k,
            "mean_candidates": round(float(found.sum(axis=1).mean()), 2) if len(found) else 0.0,
        }
    )
    return counts
