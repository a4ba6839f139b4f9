"""Atomic writes of run-folder files and folders (`records.atomic_path` and the helpers on it)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from synthrank.records import atomic_open, atomic_path, write_text_atomic


def test_a_file_is_replaced_whole_and_no_temporary_file_stays(tmp_path: Path) -> None:
    target = tmp_path / "stats.json"
    target.write_text("old", encoding="utf-8")
    write_text_atomic(target, "new ✓\n")
    assert target.read_text(encoding="utf-8") == "new ✓\n"
    with atomic_open(target, "wb", fsync=True) as fh:
        fh.write(b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stats.json"]


def test_an_error_keeps_the_old_file_and_removes_the_temporary_one(tmp_path: Path) -> None:
    target = tmp_path / "ids.txt"
    target.write_text("old\n", encoding="utf-8")
    with pytest.raises(RuntimeError, match="disk on fire"), atomic_open(target) as fh:
        fh.write("half of the new")
        raise RuntimeError("disk on fire")
    assert target.read_text(encoding="utf-8") == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ids.txt"]


def test_a_folder_is_swapped_in_and_a_crashed_run_leftover_is_cleared(tmp_path: Path) -> None:
    folder = tmp_path / "dev"
    (folder / "qrels").mkdir(parents=True)
    (folder / "qrels" / "stale.tsv").write_text("stale", encoding="utf-8")
    leftover = tmp_path / "dev.tmp"
    leftover.mkdir()
    (leftover / "half.jsonl").write_text("{", encoding="utf-8")
    with atomic_path(folder) as tmp:
        assert tmp == leftover and not tmp.exists()
        (tmp / "qrels").mkdir(parents=True)
        (tmp / "qrels" / "dev.tsv").write_text("query-id\tcorpus-id\tscore\n", encoding="utf-8")
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) == [
        "qrels",
        os.path.join("qrels", "dev.tsv"),
    ]
    assert not leftover.exists()


def test_keep_suffix_names_the_temporary_file_with_the_target_extension(tmp_path: Path) -> None:
    target = tmp_path / "chart.png"
    with atomic_path(target, keep_suffix=True) as tmp:
        assert tmp.name == "tmp.chart.png"  # matplotlib picks the format from the name
        tmp.write_bytes(b"png")
    assert target.read_bytes() == b"png"
