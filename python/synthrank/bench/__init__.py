"""Benchmarks of the native core against its python twin and peer libraries (`synthrank bench`).

`run_bench(["dedup"], [10_000])` returns one `BenchResult` per implementation; `render_table` and
`write_json` present them. Inputs are seeded synthetic data (`synthrank.bench.data`).
"""

from synthrank.bench.measure import DebugBuildError, NativeUnavailableError, native_build_profile
from synthrank.bench.report import environment, render_table, write_json
from synthrank.bench.runner import BenchResult, bench_stage, check_native, run_bench
from synthrank.bench.stages import PEERS_EXTRA, STAGES, missing_peers

__all__ = [
    "PEERS_EXTRA",
    "STAGES",
    "BenchResult",
    "DebugBuildError",
    "NativeUnavailableError",
    "bench_stage",
    "check_native",
    "environment",
    "missing_peers",
    "native_build_profile",
    "render_table",
    "run_bench",
    "write_json",
]
