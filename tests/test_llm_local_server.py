"""Locating and assembling the packaged GGUF weights for `synthrank serve-llm`."""

from __future__ import annotations

from pathlib import Path

import pytest

from synthrank.errors import ConfigError, SynthrankError
from synthrank.llm import local_server
from synthrank.llm.local_server import QWEN_FILE, QWEN_SIZE, assemble_qwen, free_port, resolve_gguf


def test_known_names_and_paths_resolve(tmp_path: Path) -> None:
    smol = resolve_gguf("smollm2")
    assert smol.name.endswith(".gguf") and smol.stat().st_size > 50_000_000
    own = tmp_path / "mine.gguf"
    own.write_bytes(b"GGUF")
    assert resolve_gguf(str(own)) == own
    with pytest.raises(ConfigError, match="neither"):
        resolve_gguf("gpt-17")
    assert 0 < free_port() < 65536


def test_qwen_is_assembled_once_and_hash_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = assemble_qwen(tmp_path)
    assert target == tmp_path / QWEN_FILE and target.stat().st_size == QWEN_SIZE
    stamp = target.stat().st_mtime_ns
    assert assemble_qwen(tmp_path).stat().st_mtime_ns == stamp  # reused, not rebuilt


def test_corrupt_parts_leave_no_model_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    part = tmp_path / "part.bin"
    part.write_bytes(b"x" * 1000)
    monkeypatch.setattr(local_server, "_package_file", lambda module, relative: part)
    broken = tmp_path / "broken"
    with pytest.raises(SynthrankError, match="corrupt"):
        assemble_qwen(broken)
    assert list(broken.iterdir()) == []  # no half-written or unverified file left behind
