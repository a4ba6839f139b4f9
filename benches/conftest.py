"""Shared setup of the benchmark suite (`pytest benches --benchmark-enable`).

Collects the `bench_*.py` files, and makes timed runs refuse a debug build of the native extension;
with benchmarks disabled (the default in pyproject) every case runs once as a smoke test, on any
build.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from synthrank.bench import check_native
from synthrank.errors import SynthrankError


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Module | None:
    if file_path.suffix == ".py" and file_path.name.startswith("bench_"):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


@pytest.fixture(scope="session", autouse=True)
def native_release_build(request: pytest.FixtureRequest) -> None:
    config = request.config
    timing = config.getoption("benchmark_enable") or not config.getoption("benchmark_disable")
    try:
        check_native(allow_debug_build=not timing)
    except SynthrankError as error:
        pytest.exit(str(error), returncode=2)
