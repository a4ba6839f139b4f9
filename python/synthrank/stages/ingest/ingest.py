"""The ingest stage: any supported corpus -> passages.jsonl + passages.npz + split.json in a run folder.

One streaming pass: documents are read, validated and chunked batch by batch (chunks budgeted in the
reranker's tokens), passages are written to a temporary JSONL, and only compact per-passage data
(exact hash, cluster id, token count, held-out flag, and the 32-bit LSH band keys of near-duplicate
cluster leaders: ~120 bytes per passage) stays in memory; the leaders' signatures go to a scratch
file beside the passages (`synthrank.native.neardup`). Outputs are renamed into place only when the
whole corpus went through, so a failed ingest leaves nothing half-written.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Literal

import numpy as np

from synthrank.config import at_least, within
from synthrank.errors import ConfigError, InputFormatError
from synthrank.models import DEFAULT_RERANKER_START, resolve_model
from synthrank.native import chunking
from synthrank.native.dedup import MAX_PERMUTATIONS
from synthrank.native.neardup import NearDupIndex
from synthrank.progress import progress_bar
from synthrank.records import Passage, RunLayout, atomic_open, to_json, write_text_atomic
from synthrank.stages.ingest.medquad import is_medquad, read_medquad
from synthrank.stages.ingest.readers import (
    BadRecord,
    Document,
    FieldNames,
    Record,
    read_beir,
    read_delimited,
    read_jsonl,
    read_parquet,
    read_text_folder,
)

log = logging.getLogger(__name__)

Format = Literal["auto", "jsonl", "csv", "tsv", "parquet", "text", "beir", "medquad"]
HASH_BATCH = 8192  # passages hashed at once; only their hashes and the near-duplicate index are kept
SCRATCH_NAME = "passages.neardup.tmp"  # the leaders' signatures, removed when ingest ends


@dataclass(frozen=True)
class IngestConfig:
    """Options of the ingest stage (section [corpus] of synthrank.toml)."""

    format: Format = "auto"
    id_field: str = "id"
    text_field: str = "text"
    title_field: str = "title"
    meta_fields: tuple[str, ...] = ()
    # Passages are budgeted in the reranker's tokens: max_length - query_budget - special_tokens.
    # 320 keeps a passage (253 tokens) inside MiniLM's 256-token bi-encoder window too.
    tokenizer: str = DEFAULT_RERANKER_START
    max_length: int = 320
    query_budget: int = 64
    special_tokens: int = 3  # [CLS] query [SEP] passage [SEP]
    overlap: int = 32
    near_dup_threshold: float = 0.8
    num_perm: int = 128
    shingle_size: int = 5
    heldout_fraction: float = 0.1
    # a meta key grouping documents for the split (None: "focus" for MedQuAD, else the doc id)
    heldout_group: str | None = None
    exclude_docs: Path | None = None
    seed: int = 0
    on_error: Literal["raise", "skip"] = "raise"
    batch_size: int = 1000

    @property
    def passage_tokens(self) -> int:
        return self.max_length - self.query_budget - self.special_tokens

    def validate(self) -> None:
        if self.passage_tokens < 8:
            raise ConfigError(
                f"{self.max_length} leaves {self.passage_tokens} passage tokens after "
                f"query_budget {self.query_budget} and special_tokens {self.special_tokens}",
                section="corpus",
                key="max_length",
            )
        within(self, "corpus", 0, self.passage_tokens, "overlap", ends="[)")
        within(self, "corpus", 0, 1, "heldout_fraction", ends="[)")
        if self.on_error not in ("raise", "skip"):
            raise ConfigError(
                f"must be 'raise' or 'skip', got {self.on_error!r}", section="corpus", key="on_error"
            )
        at_least(self, "corpus", 1, "batch_size", "shingle_size")
        at_least(self, "corpus", 0, "query_budget", "special_tokens", "seed")
        within(self, "corpus", 0, 1, "near_dup_threshold", ends="(]")
        within(self, "corpus", 1, MAX_PERMUTATIONS, "num_perm")


def detect_format(path: Path) -> str:
    """The reader for `path`, from its suffix or (for folders) its contents."""
    name = path.name.lower()
    if is_medquad(path):
        return "medquad"
    if path.is_dir():
        return "beir" if (path / "corpus.jsonl").is_file() else "text"
    for suffix, fmt in ((".jsonl", "jsonl"), (".ndjson", "jsonl"), (".csv", "csv"), (".tsv", "tsv")):
        if name.endswith(suffix):
            return fmt
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    raise InputFormatError(path, None, "cannot tell the format from the name; pass --format")


def resolve_format(path: Path, cfg: IngestConfig) -> str:
    if not path.exists():
        raise InputFormatError(path, None, "no such file or folder")
    return detect_format(path) if cfg.format == "auto" else cfg.format


def read_documents(path: Path, cfg: IngestConfig) -> Iterator[Record]:
    """Open `path` with the reader its format needs."""
    fmt = resolve_format(path, cfg)
    names = FieldNames(cfg.id_field, cfg.text_field, cfg.title_field, tuple(cfg.meta_fields))
    readers = {
        "jsonl": lambda: read_jsonl(path, names),
        "csv": lambda: read_delimited(path, names, ","),
        "tsv": lambda: read_delimited(path, names, "\t"),
        "parquet": lambda: read_parquet(path, names),
        "text": lambda: read_text_folder(path),
        "beir": lambda: read_beir(path),
        "medquad": lambda: read_medquad(path),
    }
    if fmt not in readers:
        raise ConfigError(
            f"unknown format {fmt!r}; known: auto, {', '.join(readers)}", section="corpus", key="format"
        )
    return readers[fmt]()


def _unit_hash(text: str, seed: int) -> float:
    """A stable value in [0, 1) per (seed, text): the split must not depend on order or Python's hash."""
    digest = hashlib.blake2b(f"{seed}\x00{text}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2.0**64


def _id_key(doc_id: str) -> int:
    # 64-bit keys instead of the id strings keep the duplicate check compact on huge corpora.
    return int.from_bytes(hashlib.blake2b(doc_id.encode(), digest_size=8).digest(), "little")


def read_exclude_file(path: Path) -> set[str]:
    if not path.is_file():
        raise InputFormatError(path, None, "exclude-docs file not found")
    with open(path, encoding="utf-8") as fh:
        return {line.strip() for line in fh if line.strip()}


class _Batches:
    """Validate documents and group them into batches; bad records raise or are counted."""

    def __init__(self, cfg: IngestConfig) -> None:
        self.cfg = cfg
        self.skipped: Counter[str] = Counter()
        self.documents = 0
        self._seen: set[int] = set()

    def _reject(self, reason: str, error: InputFormatError) -> None:
        if self.cfg.on_error == "raise":
            raise error
        self.skipped[reason] += 1
        log.debug("skipped (%s): %s", reason, error)

    def __call__(self, records: Iterator[Record]) -> Iterator[list[Document]]:
        batch: list[Document] = []
        for record in records:
            if isinstance(record, BadRecord):
                self._reject(record.reason, record.error)
                continue
            if not record.text or record.text.isspace():  # `not text.strip()` without copying it
                self._reject(
                    "empty_text",
                    InputFormatError(record.path, record.line, f"empty text in {record.doc_id!r}"),
                )
                continue
            key = _id_key(record.doc_id)
            if key in self._seen:
                self._reject(
                    "duplicate_id",
                    InputFormatError(record.path, record.line, f"duplicate id {record.doc_id!r}"),
                )
                continue
            self._seen.add(key)
            self.documents += 1
            batch.append(record)
            del record  # a huge document is not held here while the next one is read
            if len(batch) >= self.cfg.batch_size:
                yield batch
                batch = []
        if batch:
            yield batch


class _Split:
    """Which documents are withheld from training: listed in `exclude_docs`, or held out by group."""

    def __init__(self, cfg: IngestConfig, group_key: str | None, excluded_ids: set[str]) -> None:
        self.cfg, self.group_key, self.excluded_ids = cfg, group_key, excluded_ids
        self.heldout_docs: list[str] = []
        self.excluded_seen: list[str] = []

    def withheld(self, batch: list[Document]) -> np.ndarray:
        """One flag per document of `batch`; records the held-out and excluded ids."""
        flags = np.zeros(len(batch), dtype=bool)
        for i, doc in enumerate(batch):
            if doc.doc_id in self.excluded_ids:
                self.excluded_seen.append(doc.doc_id)
                flags[i] = True
            elif self.cfg.heldout_fraction > 0:
                # documents with an empty group value (14 MedQuAD answers lack a focus)
                # form one group of their own, held out or kept together
                group = doc.meta.get(self.group_key, "") if self.group_key else doc.doc_id
                if _unit_hash(group.casefold().strip(), self.cfg.seed) < self.cfg.heldout_fraction:
                    self.heldout_docs.append(doc.doc_id)
                    flags[i] = True
        return flags

    def as_json(self) -> dict[str, object]:
        return {
            "heldout_doc_ids": self.heldout_docs,
            "excluded_doc_ids": self.excluded_seen,
            "heldout_fraction": self.cfg.heldout_fraction,
            "heldout_group": self.group_key,
            "seed": self.cfg.seed,
        }


@dataclass(frozen=True)
class _PassageArrays:
    """The per-passage arrays of passages.npz, in passage order."""

    exact_hash: np.ndarray
    cluster_id: np.ndarray
    n_tokens: np.ndarray
    heldout: np.ndarray


def _write_passages(
    out: IO[str],
    batches: Iterator[list[Document]],
    chunk: chunking.TokenChunker,
    split: _Split,
    near_dups: NearDupIndex,
) -> _PassageArrays:
    """Chunk each batch of documents into passages, write them to `out` and index them; only compact
    per-passage arrays are kept, never the texts."""
    hashes: list[np.ndarray] = []
    n_tokens: list[np.ndarray] = []
    withheld: list[np.ndarray] = []
    with progress_bar("ingest", unit="docs") as bar:
        for batch in batches:
            chunks = chunk([d.text for d in batch])
            doc_withheld = split.withheld(batch)
            texts: list[str] = []
            part = np.zeros(len(batch), dtype=np.int64)
            for doc_index, start, end in zip(
                chunks.doc_index.tolist(), chunks.start.tolist(), chunks.end.tolist(), strict=True
            ):
                doc = batch[doc_index]
                text = doc.text[start:end]
                passage = Passage(
                    passage_id=f"{doc.doc_id}#{part[doc_index]}",
                    doc_id=doc.doc_id,
                    text=text,
                    title=doc.title,
                    start=start,
                    end=end,
                    meta=doc.meta,
                )
                part[doc_index] += 1
                out.write(to_json(passage) + "\n")
                texts.append(text)
                if len(texts) == HASH_BATCH:  # one huge document must not hold all its passages
                    hashes.append(near_dups.add(texts))
                    texts = []
            hashes.append(near_dups.add(texts))
            n_tokens.append(chunks.n_tokens.astype(np.int32))
            withheld.append(doc_withheld[chunks.doc_index])
            bar.advance(len(batch))
            del batch, doc  # the next batch is read without this one's texts in memory
    return _PassageArrays(
        exact_hash=np.concatenate(hashes) if hashes else np.empty(0, dtype=np.uint64),
        cluster_id=near_dups.clusters(),
        n_tokens=np.concatenate(n_tokens) if n_tokens else np.empty(0, dtype=np.int32),
        heldout=np.concatenate(withheld) if withheld else np.empty(0, dtype=bool),
    )


def _write_arrays(path: Path, arrays: _PassageArrays) -> None:
    with atomic_open(path, "wb", fsync=True) as fh:
        np.savez(fh, **asdict(arrays))


def _counts(arrays: _PassageArrays, batches: _Batches, split: _Split) -> dict[str, object]:
    n = len(arrays.exact_hash)
    return {
        "documents": batches.documents,
        "passages": n,
        "skipped": dict(batches.skipped),
        "heldout_documents": len(split.heldout_docs),
        "excluded_documents": len(split.excluded_seen),
        "withheld_passages": int(arrays.heldout.sum()),
        "exact_duplicate_passages": int(n - len(np.unique(arrays.exact_hash))),
        "near_duplicate_clusters": len(np.unique(arrays.cluster_id)),
        "passages_in_shared_clusters": int(n - np.sum(np.bincount(arrays.cluster_id, minlength=n) == 1)),
    }


def run_ingest(layout: RunLayout, cfg: IngestConfig, source: Path | str) -> dict[str, object]:
    """Read `source`, chunk, dedupe and split it into `layout`'s corpus files; return the counts.

    passages.jsonl is written through a temporary file renamed into place last, after
    passages.npz and split.json, so a failed ingest leaves no new passages behind.
    """
    cfg.validate()
    source = Path(source)
    # MedQuAD's questions are templated per focus: splitting by answer would leak topics into training
    group_key = cfg.heldout_group or ("focus" if resolve_format(source, cfg) == "medquad" else None)
    split = _Split(cfg, group_key, read_exclude_file(cfg.exclude_docs) if cfg.exclude_docs else set())
    chunk = chunking.TokenChunker(
        resolve_model(cfg.tokenizer), max_tokens=cfg.passage_tokens, overlap=cfg.overlap
    )
    layout.passages.parent.mkdir(parents=True, exist_ok=True)
    batches = _Batches(cfg)
    with (
        NearDupIndex(
            layout.passages.with_name(SCRATCH_NAME),
            threshold=cfg.near_dup_threshold,
            num_perm=cfg.num_perm,
            shingle_size=cfg.shingle_size,
            seed=cfg.seed,
        ) as near_dups,
        atomic_open(layout.passages, fsync=True) as out,
    ):
        arrays = _write_passages(out, batches(read_documents(source, cfg)), chunk, split, near_dups)
        if len(arrays.exact_hash) == 0:
            raise InputFormatError(source, None, "no usable documents")
        _write_arrays(layout.passage_arrays, arrays)
        write_text_atomic(layout.split, json.dumps(split.as_json(), ensure_ascii=False, indent=1) + "\n")
    return _counts(arrays, batches, split)
