"""Stream documents out of the corpus formats synthrank reads, one record at a time.

Every reader yields `Document`s, or `BadRecord`s for lines it cannot use, so the caller decides
whether a bad record stops the ingest (`on_error="raise"`) or is skipped and counted. Bytes are
decoded line by line, so invalid UTF-8 is reported with its line instead of failing a whole file.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from synthrank.errors import InputFormatError, json_error

TEXT_SUFFIXES = (".txt", ".md")


@dataclass(frozen=True, slots=True)
class Document:
    """One corpus document before chunking; `line` is where it starts in its file (1-based)."""

    doc_id: str
    text: str
    path: str
    line: int | None
    title: str = ""
    meta: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BadRecord:
    """A record the reader could not turn into a Document; `reason` is a key of the skip counts."""

    reason: str  # "malformed" | "missing_field" | "invalid_utf8"
    error: InputFormatError


@dataclass(frozen=True, slots=True)
class FieldNames:
    """Which fields of a JSONL/CSV/Parquet record hold the id, text, title and extra metadata."""

    id: str = "id"
    text: str = "text"
    title: str = "title"
    meta: tuple[str, ...] = ()


Record = Document | BadRecord


def _decode(raw: bytes, path: Path, lineno: int) -> str | BadRecord:
    """One line as text, or a BadRecord if it is not valid UTF-8."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return BadRecord("invalid_utf8", InputFormatError(path, lineno, f"invalid UTF-8: {exc}"))
    return line.removeprefix("\ufeff") if lineno == 1 else line


def _decoded_lines(path: Path) -> Iterator[tuple[int, str | BadRecord]]:
    """Lines of a file as text, or a BadRecord for a line that is not valid UTF-8."""
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            yield lineno, _decode(raw, path, lineno)


def _scalar(value: object) -> str | None:
    """A JSON/CSV/Parquet value as text; ids may be numbers, nothing else may be a container."""
    if value is None or isinstance(value, (dict, list)):
        return None
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _document(row: dict[str, object], names: FieldNames, path: Path, line: int | None) -> Record:
    """Pick id/text/title/meta out of one parsed row, naming the missing field."""
    doc_id = _scalar(row.get(names.id))
    if doc_id is None or not doc_id.strip():
        return BadRecord(
            "missing_field", InputFormatError(path, line, f"missing or empty id field {names.id!r}")
        )
    text = row.get(names.text)
    if not isinstance(text, str):
        what = "missing" if text is None else f"not a string ({type(text).__name__})"
        return BadRecord("missing_field", InputFormatError(path, line, f"text field {names.text!r} {what}"))
    title = _scalar(row.get(names.title)) or ""
    meta = {key: value for key in names.meta if (value := _scalar(row.get(key))) is not None}
    return Document(doc_id=doc_id, text=text, path=str(path), line=line, title=title, meta=meta)


def _jsonl_record(fh: BinaryIO, path: Path, lineno: int, names: FieldNames) -> Record | None:
    """The record on the next line of `fh` (None for a blank line); EOFError at the end.

    A one-line corpus can be gigabytes: the line's bytes are dropped once decoded and its text once
    parsed (this frame holds the only references), so at most two copies of it exist at a time and
    only the document's text outlives the call.
    """
    raw = fh.readline()
    if not raw:
        raise EOFError
    line = _decode(raw, path, lineno)
    del raw
    if isinstance(line, BadRecord):
        return line
    if not line or line.isspace():  # the same test as `not line.strip()`, without copying the line
        return None
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        return BadRecord("malformed", InputFormatError(path, lineno, f"invalid JSON: {json_error(exc)}"))
    del line
    if not isinstance(row, dict):
        return BadRecord(
            "malformed", InputFormatError(path, lineno, f"expected a JSON object, got {type(row).__name__}")
        )
    return _document(row, names, path, lineno)


def read_jsonl(path: Path, names: FieldNames) -> Iterator[Record]:
    with open(path, "rb") as fh:
        lineno = 0
        while True:
            lineno += 1
            try:
                record = _jsonl_record(fh, path, lineno, names)
            except EOFError:
                return
            if record is not None:
                yield record
            del record  # not held while the next line is read and parsed


def read_delimited(path: Path, names: FieldNames, delimiter: str) -> Iterator[Record]:
    """CSV/TSV with a header row; quoted fields may span lines (`line` is where the record ends)."""
    csv.field_size_limit(sys.maxsize)
    bad: list[BadRecord] = []

    def text_lines() -> Iterator[str]:
        for _, line in _decoded_lines(path):
            if isinstance(line, BadRecord):
                bad.append(line)
            else:
                yield line

    reader = csv.DictReader(text_lines(), delimiter=delimiter)
    header = reader.fieldnames or []
    while bad:
        yield bad.pop(0)
    for column in (names.id, names.text):
        if column not in header:
            raise InputFormatError(
                path, 1, f"no column {column!r} in the header (columns: {', '.join(header)})"
            )
    for row in reader:
        while bad:
            yield bad.pop(0)
        if None in row:
            yield BadRecord(
                "malformed",
                InputFormatError(path, reader.line_num, f"more fields than the {len(header)} columns"),
            )
            continue
        yield _document(row, names, path, reader.line_num)
    while bad:
        yield bad.pop(0)


def read_parquet(path: Path, names: FieldNames, batch_size: int = 4096) -> Iterator[Record]:
    """Parquet streamed by record batches; `line` is the 1-based row number."""
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a corrupt file
        raise InputFormatError(path, None, f"not a readable Parquet file: {exc}") from exc
    available = parquet.schema_arrow.names
    for column in (names.id, names.text):
        if column not in available:
            raise InputFormatError(path, None, f"no column {column!r} (columns: {', '.join(available)})")
    wanted = [c for c in dict.fromkeys((names.id, names.text, names.title, *names.meta)) if c in available]
    row_number = 0
    for batch in parquet.iter_batches(batch_size=batch_size, columns=wanted):
        for row in batch.to_pylist():
            row_number += 1
            yield _document(row, names, path, row_number)


def text_files(folder: Path) -> list[Path]:
    """The .txt/.md files under `folder`, in a stable order: the documents of a text-folder corpus."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES)


def read_text_folder(folder: Path) -> Iterator[Record]:
    """Each .txt/.md file is one document; its id is the path relative to the folder."""
    files = text_files(folder)
    if not files:
        raise InputFormatError(folder, None, "no .txt or .md files in the folder")
    for file in files:
        record = _text_file(file, folder)
        yield record
        del record  # not held while the next file is read


def _text_file(file: Path, folder: Path) -> Record:
    """One .txt/.md file as a Document; its bytes are dropped before it is returned."""
    raw = file.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        return BadRecord("invalid_utf8", InputFormatError(file, line, f"invalid UTF-8: {exc}"))
    del raw
    return Document(
        doc_id=file.relative_to(folder).as_posix(),
        text=text.removeprefix("\ufeff"),
        path=str(file),
        line=1,
        title=file.stem,
    )


def read_beir(folder: Path) -> Iterator[Record]:
    """A BEIR folder's corpus.jsonl (_id, title, text); its queries and qrels are for evaluation."""
    corpus = folder / "corpus.jsonl"
    if not corpus.is_file():
        raise InputFormatError(folder, None, "not a BEIR folder: corpus.jsonl is missing")
    return read_jsonl(corpus, FieldNames(id="_id", text="text", title="title"))
