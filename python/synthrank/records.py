"""The records that flow between stages and the files that hold them: the contract, written once.

Run folder layout (every stage reads and writes only these paths, through `RunLayout`)::

    corpus/passages.jsonl     Passage per line, in row order: row i is passage index i everywhere
    corpus/passages.npz       exact_hash (uint64), cluster_id (int64), n_tokens (int32), heldout (bool)
                              aligned with passages.jsonl rows
    corpus/split.json         {"heldout_doc_ids": [...], "excluded_doc_ids": [...]}
    corpus/sampled_ids.txt    passage_id per line: the passages the LLM writes queries for
    queries.raw.jsonl         Query per generated reply, before filtering (append-only)
    queries.jsonl             Query per kept query (after filtering)
    embeddings/               passages.npy, queries.npy (float32, L2-normalised) + manifest.json
    index/passages.usearch    usearch index over passages.npy
    candidates.npz            query_ids (str), ids (int64, queries x k, -1 = none), scores (float32)
    judgments.jsonl           Judgment per (query, passage) pair graded by the LLM (append-only)
    train_groups.jsonl        TrainGroup per query (FlagEmbedding format plus ids)
    train_groups_hf/          the same as a Hugging Face `datasets` folder (query, positive, negative_1..n)
    dev/                      synthetic dev set in BEIR layout (corpus.jsonl, queries.jsonl, qrels/dev.tsv)
    test/                     in-domain test set when the corpus has no real questions: BEIR layout
                              (corpus.jsonl, queries.jsonl, qrels/test.tsv, candidates.tsv, testset.json)
    testset/                  its LLM work: a small run folder (queries, filter, judgments), held-out passages
    mining_stats.json         counts of the mining stage
    warm_start/               the cross-encoder distilled from the teacher (warm_start.json: from what)
    model/                    the fine-tuned cross-encoder (transformers + sentence-transformers layout)
    eval/                     report.json, report.md, chart.png
    llm_cache.sqlite          request cache shared by the LLM stages
    llm_ledger.sqlite         every paid LLM call's tokens and cost: the run's max_cost budget
    manifests/<stage>.json    what each stage did (config hash, inputs, outputs, counts, timings)

Append-only JSONL files are written one whole line at a time and flushed per batch; a crash can
leave at most one partial last line, which `repair_tail` cuts off before a resumed stage appends.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import IO, Any, TypeVar

from synthrank.errors import InputFormatError, json_error


@dataclass(frozen=True, slots=True)
class Passage:
    """A chunk of a corpus document: the unit that is retrieved, judged and reranked."""

    passage_id: str
    doc_id: str
    text: str
    title: str = ""
    start: int = 0  # character offset of the passage in its document's text
    end: int = 0
    meta: dict[str, str] = field(default_factory=dict)

    @property
    def reranker_text(self) -> str:
        """What the reranker reads, in training and evaluation alike: the title, then the text."""
        return f"{self.title} {self.text}" if self.title else self.text


@dataclass(frozen=True, slots=True)
class Query:
    """A synthetic query written by the LLM for one source passage."""

    query_id: str
    doc_id: str
    passage_id: str
    text: str
    style: str  # "question" | "keywords"
    template_version: str
    model: str


@dataclass(frozen=True, slots=True)
class Judgment:
    """The LLM judge's grade for one (query, passage) pair.

    grade: 0-3 (3 answers fully, 2 partly, 1 on topic only, 0 unrelated), None if unparsable.
    expected_grade: sum of grade x probability from the grade tokens' logprobs, when available.
    """

    query_id: str
    passage_id: str
    doc_id: str
    grade: int | None
    expected_grade: float | None
    raw: str
    template_version: str
    model: str


@dataclass(frozen=True, slots=True)
class TrainGroup:
    """One query with its positives and hard negatives (FlagEmbedding's format plus ids).

    `pos`/`neg` hold each passage's `reranker_text` (title, then text): what the reranker reads.
    """

    query: str
    pos: list[str]
    neg: list[str]
    query_id: str
    pos_ids: list[str]
    neg_ids: list[str]
    # per negative: False = an unjudged candidate below the judged depth (an easier negative)
    neg_judged: list[bool] = field(default_factory=list)


R = TypeVar("R", Passage, Query, Judgment, TrainGroup)


# (all field names, required ones) per record class: read per line of large files, so made once.
_FIELD_NAMES: dict[type, tuple[tuple[str, ...], frozenset[str]]] = {
    cls: (
        tuple(f.name for f in fields(cls)),
        frozenset(f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING),
    )
    for cls in (Passage, Query, Judgment, TrainGroup)
}


def to_json(record: Passage | Query | Judgment | TrainGroup) -> str:
    # Field values are JSON types already (str, int, float, list, dict): no deep copy like asdict's.
    data = {name: getattr(record, name) for name in _FIELD_NAMES[type(record)][0]}
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def from_dict(cls: type[R], data: Any, path: Path | str, line: int) -> R:
    """Build a record from a parsed JSON line, naming file and line when a field is wrong."""
    if not isinstance(data, dict):
        raise InputFormatError(path, line, f"expected a JSON object, got {type(data).__name__}")
    names, required = _FIELD_NAMES[cls]
    missing = sorted(required - data.keys())
    if missing:
        raise InputFormatError(path, line, f"missing field(s) {', '.join(missing)}")
    try:
        return cls(**{k: v for k, v in data.items() if k in names})
    except TypeError as exc:
        raise InputFormatError(path, line, str(exc)) from exc


# Fields that identify a record in its file. Two appending writers (or a hand-made file) can repeat
# an id, which every later stage would count twice, so a repeat is an error naming both lines.
_ID_FIELDS: dict[type, tuple[str, ...]] = {Query: ("query_id",), Judgment: ("query_id", "passage_id")}


def read_jsonl(path: Path | str, cls: type[R]) -> Iterator[R]:
    """Stream records from a JSONL file; a malformed line or a repeated id raises InputFormatError."""
    id_fields = _ID_FIELDS.get(cls, ())
    first_line: dict[tuple[str, ...], int] = {}
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputFormatError(path, lineno, f"invalid JSON: {json_error(exc)}") from exc
            record = from_dict(cls, data, path, lineno)
            if id_fields:
                key = tuple(getattr(record, name) for name in id_fields)
                first = first_line.setdefault(key, lineno)
                if first != lineno:
                    raise InputFormatError(
                        path,
                        lineno,
                        f"duplicate {' + '.join(id_fields)} {' + '.join(map(repr, key))} (first on line "
                        f"{first}); was the stage run twice at once? Remove the repeated lines or the file",
                    )
            yield record


def count_lines(path: Path | str) -> int:
    """Newline-terminated lines of a file (a JSONL file's records), read in 1 MiB blocks."""
    with open(path, "rb") as fh:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))


def repair_tail(path: Path | str) -> int:
    """Cut a partial last line (no newline, or not valid JSON) left by a crash; return bytes removed."""
    path = Path(path)
    if not path.exists():
        return 0
    with open(path, "rb+") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        if size == 0:
            return 0
        back = min(size, 1 << 20)
        fh.seek(size - back)
        tail = fh.read(back)
        if tail.endswith(b"\n"):
            last = tail[:-1].rsplit(b"\n", 1)[-1]
            try:
                json.loads(last)
                return 0
            except ValueError:
                keep = size - len(last) - 1
        else:
            cut = tail.rfind(b"\n")
            keep = size - back + cut + 1 if cut >= 0 else 0
        fh.truncate(keep)
        return size - keep


class JsonlAppender:
    """Append records to a JSONL file, whole lines only, flushed and fsynced on `flush()`."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        repair_tail(self.path)
        self._fh: IO[str] = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (held open for appends, closed by close())

    def write(self, record: Passage | Query | Judgment | TrainGroup) -> None:
        self._fh.write(to_json(record) + "\n")

    def write_many(self, records: Iterable[Passage | Query | Judgment | TrainGroup]) -> None:
        self._fh.writelines(to_json(r) + "\n" for r in records)

    def flush(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        if not self._fh.closed:
            self.flush()
            self._fh.close()

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextmanager
def atomic_path(path: Path | str, *, keep_suffix: bool = False, per_process: bool = False) -> Iterator[Path]:
    """A temporary path beside `path` (a file or a folder) that replaces `path` when the block ends.

    Readers see the old version or the new one, never half of either: the block writes `NAME.tmp`
    in the same folder (same file system, so `os.replace` is atomic), which is then renamed over
    `path`. `keep_suffix` names it `tmp.NAME` instead, for writers that pick the format from the
    file name (matplotlib), and `per_process` names it `.NAME.PID.tmp`, for a file that several
    processes may build at once (each renames its own whole copy; none removes another's). A folder
    target is removed just before the rename, as `os.replace` cannot replace a non-empty folder. On an
    error the temporary copy is removed, the old one kept.
    """
    path = Path(path)
    if per_process:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    else:
        tmp = path.with_name(f"tmp.{path.name}" if keep_suffix else f"{path.name}.tmp")
    _remove(tmp)  # left over from a crashed run
    try:
        yield tmp
        if tmp.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


@contextmanager
def atomic_open(path: Path | str, mode: str = "w", *, fsync: bool = False) -> Iterator[IO[Any]]:
    """A file opened for writing ("w" text in UTF-8, or "wb") that replaces `path` as `atomic_path`
    does. `fsync=True` also puts the bytes on disk before the rename, so a power cut leaves the old
    file or the whole new one."""
    with atomic_path(path) as tmp, open(tmp, mode, encoding=None if "b" in mode else "utf-8") as fh:
        yield fh
        if fsync:
            fh.flush()
            os.fsync(fh.fileno())


def write_text_atomic(path: Path | str, text: str, *, fsync: bool = False) -> None:
    """Write a whole text file (UTF-8) through `atomic_open`."""
    with atomic_open(path, fsync=fsync) as fh:
        fh.write(text)


def write_jsonl_atomic(path: Path | str, records: Iterable[Passage | Query | Judgment | TrainGroup]) -> int:
    """Write a whole JSONL file via a temporary file and rename, so readers never see half of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with atomic_open(path, fsync=True) as fh:
        for r in records:
            fh.write(to_json(r) + "\n")
            n += 1
    return n


@dataclass(frozen=True)
class RunLayout:
    """Paths inside one run folder (see the module docstring)."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def passages(self) -> Path:
        return self.root / "corpus" / "passages.jsonl"

    @property
    def passage_arrays(self) -> Path:
        return self.root / "corpus" / "passages.npz"

    @property
    def split(self) -> Path:
        return self.root / "corpus" / "split.json"

    def withheld_doc_ids(self) -> set[str]:
        """Held-out (the test set's) and excluded documents: nothing of them may reach training."""
        if not self.split.is_file():
            return set()
        split = json.loads(self.split.read_text(encoding="utf-8"))
        return set(map(str, [*split.get("heldout_doc_ids", []), *split.get("excluded_doc_ids", [])]))

    @property
    def sampled_ids(self) -> Path:
        return self.root / "corpus" / "sampled_ids.txt"

    @property
    def raw_queries(self) -> Path:
        return self.root / "queries.raw.jsonl"

    @property
    def queries(self) -> Path:
        return self.root / "queries.jsonl"

    @property
    def embeddings(self) -> Path:
        return self.root / "embeddings"

    @property
    def embeddings_manifest(self) -> Path:
        """The embed stage's settings (model, prompts, input length) and its arrays' fingerprints."""
        return self.embeddings / "manifest.json"

    @property
    def index(self) -> Path:
        return self.root / "index" / "passages.usearch"

    @property
    def candidates(self) -> Path:
        return self.root / "candidates.npz"

    @property
    def judgments(self) -> Path:
        return self.root / "judgments.jsonl"

    @property
    def warm_start(self) -> Path:
        return self.root / "warm_start"

    @property
    def train_groups(self) -> Path:
        return self.root / "train_groups.jsonl"

    @property
    def train_groups_hf(self) -> Path:
        return self.root / "train_groups_hf"

    @property
    def dev(self) -> Path:
        return self.root / "dev"

    @property
    def test(self) -> Path:
        return self.root / "test"

    @property
    def test_work(self) -> Path:
        return self.root / "testset"

    @property
    def mining_stats(self) -> Path:
        return self.root / "mining_stats.json"

    @property
    def model(self) -> Path:
        return self.root / "model"

    @property
    def eval(self) -> Path:
        return self.root / "eval"

    @property
    def llm_cache(self) -> Path:
        return self.root / "llm_cache.sqlite"

    @property
    def llm_ledger(self) -> Path:
        return self.root / "llm_ledger.sqlite"

    def manifest(self, stage: str) -> Path:
        return self.root / "manifests" / f"{stage}.json"
