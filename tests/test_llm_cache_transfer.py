"""Moving LLM replies between caches: `ResponseCache.export`/`merge` and `synthrank cache`."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from synthrank.cli import main
from synthrank.errors import EXIT_BAD_INPUT, LLMError
from synthrank.llm.cache import ResponseCache


def reply(text: str) -> dict[str, object]:
    return {"choices": [{"message": {"content": text}}]}


def cache_cli(*args: object) -> Result:
    return CliRunner().invoke(main, ["cache", *map(str, args)])


def fill(path: Path, replies: dict[str, str]) -> None:
    with ResponseCache(path) as cache:
        for key, text in replies.items():
            cache.put(key, "chat", reply(text))


@pytest.mark.parametrize("name", ["replies.sqlite.gz", "replies.sqlite"])
def test_an_export_merged_elsewhere_holds_every_reply_and_keeps_what_was_there(
    tmp_path: Path, name: str
) -> None:
    fill(tmp_path / "a.sqlite", {"k1": "one", "k2": "two"})
    with ResponseCache(tmp_path / "a.sqlite") as cache:
        cache.export(tmp_path / name)
    if name.endswith(".gz"):
        with gzip.open(tmp_path / name) as exported:
            assert exported.read(16) == b"SQLite format 3\x00"
    fill(tmp_path / "b.sqlite", {"k2": "kept", "k3": "three"})
    with ResponseCache(tmp_path / "b.sqlite") as cache:
        assert cache.merge(tmp_path / name) == 1
        assert cache.merge(tmp_path / name) == 0  # merging again adds nothing
        assert len(cache) == 3
        assert cache.get("k1") == reply("one")
        assert cache.get("k2") == reply("kept")  # a reply already there wins
    assert not list(tmp_path.glob("*.merge")) and not list(tmp_path.glob("*.snapshot"))


def test_an_export_replaces_the_previous_file_and_a_killed_exports_leftover(tmp_path: Path) -> None:
    target = tmp_path / "replies.sqlite.gz"
    (tmp_path / "replies.sqlite.gz.snapshot").write_bytes(b"left by a killed export")
    fill(tmp_path / "a.sqlite", {"k1": "one"})
    with ResponseCache(tmp_path / "a.sqlite") as cache:
        cache.export(target)
        cache.put("k2", "chat", reply("two"))
        cache.export(target)
    with ResponseCache(tmp_path / "b.sqlite") as cache:
        assert cache.merge(target) == 2


def test_merging_what_is_not_a_cache_names_the_file(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a database\n" * 100)
    broken = tmp_path / "broken.sqlite.gz"
    broken.write_bytes(gzip.compress(b"SQLite format 3\x00")[:-8])
    with ResponseCache(tmp_path / "cache.sqlite") as cache:
        cache.put("k1", "chat", reply("one"))
        for source in (text, broken, tmp_path / "missing.sqlite"):
            with pytest.raises(LLMError, match=source.name):
                cache.merge(source)
        assert cache.get("k1") == reply("one")  # the cache is unharmed and still usable
        cache.put("k2", "chat", reply("two"))
        assert len(cache) == 2


def test_the_cache_commands_carry_a_runs_replies_to_another_run(tmp_path: Path) -> None:
    fill(tmp_path / "run1" / "llm_cache.sqlite", {"k1": "one", "k2": "two"})
    export = cache_cli("export", "--run", tmp_path / "run1", tmp_path / "r.sqlite.gz")
    assert export.exit_code == 0, export.output
    assert "2 replies written" in export.output
    merge = cache_cli("merge", "--run", tmp_path / "run2", tmp_path / "r.sqlite.gz")
    assert merge.exit_code == 0, merge.output
    assert "2 replies added" in merge.output
    with ResponseCache(tmp_path / "run2" / "llm_cache.sqlite") as cache:
        assert cache.get("k2") == reply("two")


def test_the_cache_commands_refuse_bad_input_with_a_message(tmp_path: Path) -> None:
    empty = cache_cli("export", "--run", tmp_path / "new", tmp_path / "r.gz")
    assert empty.exit_code == EXIT_BAD_INPUT
    assert "no LLM cache here" in empty.output
    (tmp_path / "notes.txt").write_text("hello")
    merge = cache_cli("merge", "--run", tmp_path / "run", tmp_path / "notes.txt")
    assert merge.exit_code == EXIT_BAD_INPUT
    assert "notes.txt" in merge.output and "Traceback" not in merge.output
    fill(tmp_path / "run" / "llm_cache.sqlite", {"k1": "one"})
    unwritable = cache_cli("export", "--run", tmp_path / "run", tmp_path / "no" / "such" / "r.gz")
    assert unwritable.exit_code == EXIT_BAD_INPUT
    assert "r.gz" in unwritable.output
