"""Shared setup of the benchmark suite (`pytest benches --benchmark-enable`).

Collects the `bench_*.py` files. `native_release_build` makes timed runs of the native core refuse
a debug build; with benchmarks disabled (the default in pyproject) every case runs once as a smoke
test, on any build.
"""

from __future__ import annotations

import pytest

from synthrank.bench import check_native
from synthrank.errors import SynthrankError


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("python_files", "bench_*.py")


@pytest.fixture(scope="session")
def native_release_build(request: pytest.FixtureRequest) -> None:
    """For benchmarks of the native core: stop the session when timing a debug or missing build."""
    config = request.config
    timing = config.getoption("benchmark_enable") or not config.getoption("benchmark_disable")
    try:
        check_native(allow_debug_build=not timing)
    except SynthrankError as error:
        pytest.exit(str(error), returncode=2)
