"""Every corpus format and every bad-input case, with real files in tmp_path."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from synthrank.cli import main
from synthrank.errors import InputFormatError
from synthrank.records import Passage, RunLayout, read_jsonl
from synthrank.stages.ingest import IngestConfig, run_ingest

DOCS = [
    {"id": "a", "title": "Asthma", "text": "Asthma is a chronic disease of the airways.", "lang": "en"},
    {
        "id": "b",
        "title": "Gout",
        "text": "Gout is a form of arthritis caused by uric acid crystals.",
        "lang": "en",
    },
    {"id": "c", "title": "Flu", "text": "Influenza is a contagious respiratory illness.", "lang": "en"},
]


def ingest(tmp_path: Path, source: Path, **options: object) -> tuple[dict[str, object], list[Passage]]:
    layout = RunLayout(tmp_path / "run")
    counts = run_ingest(layout, IngestConfig(heldout_fraction=0.0, **options), source)  # type: ignore[arg-type]
    return counts, list(read_jsonl(layout.passages, Passage))


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_delimited(path: Path, rows: list[dict[str, object]], delimiter: str) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)
    return path


def assert_three_docs(passages: list[Passage]) -> None:
    assert [p.passage_id for p in passages] == ["a#0", "b#0", "c#0"]
    assert [p.doc_id for p in passages] == ["a", "b", "c"]
    assert passages[1].text == DOCS[1]["text"]
    assert passages[1].title == "Gout"


def test_jsonl(tmp_path: Path) -> None:
    counts, passages = ingest(tmp_path, write_jsonl(tmp_path / "c.jsonl", DOCS), meta_fields=("lang",))
    assert counts["documents"] == 3 and counts["passages"] == 3
    assert_three_docs(passages)
    assert passages[0].meta == {"lang": "en"}


def test_jsonl_custom_field_names_and_numeric_ids(tmp_path: Path) -> None:
    rows = [{"doc": i, "body": d["text"]} for i, d in enumerate(DOCS)]
    _, passages = ingest(tmp_path, write_jsonl(tmp_path / "c.jsonl", rows), id_field="doc", text_field="body")
    assert [p.doc_id for p in passages] == ["0", "1", "2"]
    assert passages[0].title == ""


@pytest.mark.parametrize(("suffix", "delimiter"), [(".csv", ","), (".tsv", "\t")])
def test_csv_and_tsv(tmp_path: Path, suffix: str, delimiter: str) -> None:
    rows = [dict(d) for d in DOCS]
    rows[2]["text"] = "Influenza is contagious.\nIt spreads, mostly, by droplets."  # quoted newline
    _, passages = ingest(tmp_path, write_delimited(tmp_path / f"c{suffix}", rows, delimiter))
    assert [p.doc_id for p in passages] == ["a", "b", "c"]
    assert passages[2].text == rows[2]["text"]


def test_parquet_streamed_in_batches(tmp_path: Path) -> None:
    path = tmp_path / "c.parquet"
    pq.write_table(pa.Table.from_pylist(DOCS), path, row_group_size=1)
    _, passages = ingest(tmp_path, path)
    assert_three_docs(passages)


def test_text_folder(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "one.txt").write_text("A plain text document about sleep.", encoding="utf-8")
    (folder / "sub" / "two.md").write_text("# Notes\nMarkdown about diet.", encoding="utf-8")
    (folder / "skip.json").write_text("{}", encoding="utf-8")
    _, passages = ingest(tmp_path, folder)
    assert [p.doc_id for p in passages] == ["one.txt", "sub/two.md"]
    assert passages[1].text == "# Notes\nMarkdown about diet."


def test_beir_folder(tmp_path: Path) -> None:
    folder = tmp_path / "beir"
    folder.mkdir()
    write_jsonl(
        folder / "corpus.jsonl", [{"_id": d["id"], "title": d["title"], "text": d["text"]} for d in DOCS]
    )
    write_jsonl(folder / "queries.jsonl", [{"_id": "q1", "text": "what is gout"}])
    _, passages = ingest(tmp_path, folder)
    assert_three_docs(passages)


# --- bad input: an error naming file and line; --on-error skip counts instead ----------------------

BAD_JSONL = {
    "malformed": (b'{"id": "x", "text": "broken"\n', 2),
    "missing_field": (b'{"id": "x"}\n', 2),
    "duplicate_id": (b'{"id": "a", "text": "again"}\n', 2),
    "empty_text": (b'{"id": "x", "text": "   "}\n', 2),
    "invalid_utf8": (b'{"id": "x", "text": "caf\xe9"}\n', 2),
}


@pytest.mark.parametrize("reason", sorted(BAD_JSONL))
def test_bad_jsonl_line_raises_with_file_and_line(tmp_path: Path, reason: str) -> None:
    bad, line = BAD_JSONL[reason]
    source = tmp_path / "c.jsonl"
    source.write_bytes(json.dumps(DOCS[0]).encode() + b"\n" + bad + json.dumps(DOCS[1]).encode() + b"\n")
    layout = RunLayout(tmp_path / "run")
    with pytest.raises(InputFormatError) as info:
        run_ingest(layout, IngestConfig(), source)
    assert f"{source}:{line}:" in str(info.value)
    assert not layout.passages.exists() and not layout.passage_arrays.exists() and not layout.split.exists()
    assert not list((tmp_path / "run" / "corpus").glob("*.tmp"))


@pytest.mark.parametrize("reason", sorted(BAD_JSONL))
def test_bad_jsonl_line_skipped_and_counted(tmp_path: Path, reason: str) -> None:
    source = tmp_path / "c.jsonl"
    source.write_bytes(
        json.dumps(DOCS[0]).encode() + b"\n" + BAD_JSONL[reason][0] + json.dumps(DOCS[1]).encode() + b"\n"
    )
    counts, passages = ingest(tmp_path, source, on_error="skip")
    assert counts["skipped"] == {reason: 1}
    assert [p.doc_id for p in passages] == ["a", "b"]


def test_csv_bad_rows(tmp_path: Path) -> None:
    source = tmp_path / "c.csv"
    source.write_bytes(b"id,text\na,fine text\nb,too,many\nc,\n\xff,bad bytes\nd,last one\n")
    with pytest.raises(InputFormatError, match=r"c\.csv:3: more fields"):
        run_ingest(RunLayout(tmp_path / "r1"), IngestConfig(), source)
    counts, passages = ingest(tmp_path, source, on_error="skip")
    assert counts["skipped"] == {"malformed": 1, "empty_text": 1, "invalid_utf8": 1}
    assert [p.doc_id for p in passages] == ["a", "d"]


def test_csv_missing_column_is_reported_even_when_skipping(tmp_path: Path) -> None:
    source = write_delimited(tmp_path / "c.csv", [{"id": "a", "body": "x"}], ",")
    with pytest.raises(InputFormatError, match=r"c\.csv:1: no column 'text'"):
        run_ingest(RunLayout(tmp_path / "run"), IngestConfig(on_error="skip"), source)


def test_parquet_missing_column_and_null_text(tmp_path: Path) -> None:
    path = tmp_path / "c.parquet"
    pq.write_table(pa.Table.from_pylist([{"id": "a", "text": "fine"}, {"id": "b", "text": None}]), path)
    with pytest.raises(InputFormatError, match=r"c\.parquet:2: text field 'text' missing"):
        run_ingest(RunLayout(tmp_path / "r1"), IngestConfig(), path)
    with pytest.raises(InputFormatError, match="no column 'body'"):
        run_ingest(RunLayout(tmp_path / "r2"), IngestConfig(text_field="body"), path)
    (tmp_path / "junk.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(InputFormatError, match="not a readable Parquet file"):
        run_ingest(RunLayout(tmp_path / "r3"), IngestConfig(), tmp_path / "junk.parquet")


def test_text_folder_invalid_utf8_names_file_and_line(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "good.txt").write_text("fine", encoding="utf-8")
    (folder / "bad.txt").write_bytes(b"line one\nline two \xc3\x28\n")
    with pytest.raises(InputFormatError, match=r"bad\.txt:2: invalid UTF-8"):
        run_ingest(RunLayout(tmp_path / "run"), IngestConfig(), folder)


def test_unknown_format_and_missing_source(tmp_path: Path) -> None:
    (tmp_path / "corpus.xlsx").write_bytes(b"x")
    with pytest.raises(InputFormatError, match="pass --format"):
        run_ingest(RunLayout(tmp_path / "run"), IngestConfig(), tmp_path / "corpus.xlsx")
    with pytest.raises(InputFormatError, match="no such file"):
        run_ingest(RunLayout(tmp_path / "run"), IngestConfig(), tmp_path / "nope.jsonl")


def test_cli_bad_input_exits_2_without_traceback(tmp_path: Path) -> None:
    source = tmp_path / "c.jsonl"
    source.write_bytes(b'{"id": "a", "text": "ok"}\n{"id": "a", "text": "dup"}\n')
    result = CliRunner().invoke(main, ["ingest", str(source), "--run", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert f"{source}:2: duplicate id 'a'" in result.output
    assert "Traceback" not in result.output
    ok = CliRunner().invoke(
        main, ["ingest", str(source), "--run", str(tmp_path / "run"), "--on-error", "skip"]
    )
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output.strip().splitlines()[-1])["skipped"] == {"duplicate_id": 1}
