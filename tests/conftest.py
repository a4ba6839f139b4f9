"""Shared fixtures: the real data beside the repository and the two backends of the native core."""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

import pytest

from synthrank.models import resolve_model
from synthrank.native import _backend

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
LIVEQA_ZIP = SHARED_DATA / "medquad-liveqa-test-qrels.zip"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "native: compares the native core with its Python twin")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Parity tests need the built extension; without it they are skipped, never silently passed."""
    if _backend.native_available():
        return
    missing = pytest.mark.skip(reason="synthrank._native is not built (run `maturin develop`)")
    for item in items:
        if "native" in item.keywords:
            item.add_marker(missing)


@pytest.fixture(scope="session")
def liveqa_answers() -> list[str]:
    """The 2,479 judged MedQuAD answers of the LiveQA-Med test pool (real text, with exact repeats)."""
    with zipfile.ZipFile(LIVEQA_ZIP) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".csv") and "__MACOSX" not in n)
        with archive.open(name) as raw:
            rows = list(csv.reader(io.TextIOWrapper(raw, encoding="utf-8", errors="replace")))
    return [row[1] for row in rows[1:]]


@pytest.fixture(scope="session")
def minilm_tokenizer() -> Path:
    """The tokenizer.json of the packaged all-MiniLM-L6-v2."""
    return Path(resolve_model("sentence-transformers/all-MiniLM-L6-v2")) / "tokenizer.json"
