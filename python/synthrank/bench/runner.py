"""Run stages x sizes x implementations, check outputs against the python twin, report the numbers.

For each stage and size:
- `native` runs on the whole input (stages with a `block_size` get it generated and run block by
  block, so 1M items fit in memory; the seconds are the sum over blocks, the peak the largest).
- `python` (the twin) runs on the whole input, or — above `sample_cap` items — on a same-seed
  input of `sample_cap` items, and its seconds are extrapolated linearly to the full size.
- peers run on the same input as the twin (capped the same way); within one `run_bench` the capped
  runs are made once and reused by every larger size. A peer that is not installed is left out
  (`missing_peers` says which and how to install them).
- `matches`: for native, whether its output equals the twin's on the twin's input; for a peer, the
  percent agreement with the twin's output described by the peer's `compared`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from synthrank.bench.measure import Measured, NativeUnavailableError, measure, require_release_build
from synthrank.bench.stages import STAGES, Stage
from synthrank.errors import InvalidArgumentError

NATIVE = "native"
PYTHON = "python"


@dataclass(frozen=True)
class BenchResult:
    stage: str
    size: int
    implementation: str
    seconds: float  # for the full size (extrapolated when measured_items < size)
    items_per_s: float | None  # None when too fast to time
    peak_mb: float | None  # RSS growth during the call(s) actually run
    matches: bool | float | None  # native: equal to the twin; peers: percent agreement
    compared: str
    measured_items: int

    @property
    def label(self) -> str:
        if self.measured_items < self.size:
            return f"{self.implementation} ({_short_count(self.measured_items)} sample)"
        return self.implementation


def _short_count(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1_000 and n % 1_000 == 0:
        return f"{n // 1_000}k"
    return str(n)


# A run this long is not repeated: its noise is small next to it, and the twin's runs take minutes.
LONG_RUN_SECONDS = 5.0


def _best_of(repeat: int, call: Callable[[], Measured[Any]]) -> Measured[Any]:
    runs = [call()]
    while len(runs) < repeat and runs[-1].seconds < LONG_RUN_SECONDS:
        runs.append(call())
    fastest = min(runs, key=lambda run: run.seconds)
    return Measured(fastest.result, fastest.seconds, _largest_peak(runs))


def _largest_peak(runs: Sequence[Measured[Any]]) -> float | None:
    peaks = [run.peak_mb for run in runs if run.peak_mb is not None]
    return max(peaks) if peaks else None


def _blocks(stage: Stage, size: int, seed: int) -> Iterator[Any]:
    block = stage.block_size or size
    for index, start in enumerate(range(0, size, block)):
        yield stage.make(min(block, size - start), seed + index)


def _run_native(stage: Stage, size: int, seed: int, threads: int | None) -> Measured[Any]:
    """One native pass over the whole size; the result is the output when it ran as one block."""
    runs = [measure(partial(stage.run, block, NATIVE, threads)) for block in _blocks(stage, size, seed)]
    return Measured(
        runs[0].result if len(runs) == 1 else None, sum(run.seconds for run in runs), _largest_peak(runs)
    )


def _result(
    stage: Stage,
    size: int,
    implementation: str,
    run: Measured[Any],
    measured_items: int,
    matches: bool | float | None = None,
    compared: str = "",
) -> BenchResult:
    seconds = run.seconds * size / measured_items if measured_items else run.seconds
    return BenchResult(
        stage=stage.name,
        size=size,
        implementation=implementation,
        seconds=seconds,
        items_per_s=measured_items / run.seconds if run.seconds > 0 else None,
        peak_mb=run.peak_mb,
        measured_items=measured_items,
        matches=matches,
        compared=compared,
    )


WARM_UP_ITEMS = 50


def _warm_up(stage: Stage, seed: int, threads: int | None) -> None:
    """One untimed call of every implementation, so imports and first-call setup stay out of the numbers."""
    tiny = stage.make(WARM_UP_ITEMS, seed)
    stage.run(tiny, NATIVE, threads)
    stage.run(tiny, PYTHON, threads)
    for peer in stage.installed_peers().values():
        peer.run(tiny, threads)


@dataclass(frozen=True)
class SampleRuns:
    """The twin's and the peers' best runs on one input; every size above the cap reuses them."""

    inputs: Any
    twin: Measured[Any]
    peers: dict[str, Measured[Any]]


def _sample_runs(stage: Stage, items: int, seed: int, threads: int | None, repeat: int) -> SampleRuns:
    inputs = stage.make(items, seed)
    twin = _best_of(repeat, partial(measure, partial(stage.run, inputs, PYTHON, threads)))
    peers = {
        name: _best_of(repeat, partial(measure, partial(peer.run, inputs, threads)))
        for name, peer in stage.installed_peers().items()
    }
    return SampleRuns(inputs, twin, peers)


def bench_stage(
    stage: Stage,
    size: int,
    *,
    threads: int | None = None,
    repeat: int = 1,
    sample_cap: int = 10_000,
    seed: int = 0,
    sample_runs: dict[tuple[str, int, int], SampleRuns] | None = None,
) -> list[BenchResult]:
    """Native, twin and peers for one stage at one size; `sample_runs` caches the capped runs."""
    _warm_up(stage, seed, threads)
    twin_items = min(size, sample_cap)
    cache = {} if sample_runs is None else sample_runs
    key = (stage.name, twin_items, seed)
    if key not in cache:
        cache[key] = _sample_runs(stage, twin_items, seed, threads, repeat)
    sampled = cache[key]
    native = _best_of(repeat, partial(_run_native, stage, size, seed, threads))
    one_block_on_twin_input = twin_items == size and (stage.block_size or size) >= size
    native_on_twin_input = (
        native.result if one_block_on_twin_input else stage.run(sampled.inputs, NATIVE, threads)
    )
    matches = bool(stage.same(native_on_twin_input, sampled.twin.result))
    results = [
        _result(stage, size, NATIVE, native, size, matches=matches, compared="output == python twin"),
        _result(stage, size, PYTHON, sampled.twin, twin_items),
    ]
    for name, peer in stage.installed_peers().items():
        run = sampled.peers[name]
        agreement = peer.agreement(run.result, sampled.twin.result)
        results.append(_result(stage, size, name, run, twin_items, matches=agreement, compared=peer.compared))
    return results


def check_native(allow_debug_build: bool) -> Any:
    """The loaded native module; NativeUnavailableError if it is not built, DebugBuildError for a debug
    build unless allowed (the backend's silent fallback to the twin would make the numbers a lie)."""
    from synthrank.native import _backend

    if not _backend.native_available():
        raise NativeUnavailableError(
            "synthrank._native is not built; build it with `maturin develop --release` before benchmarking"
        )
    module = _backend.get(NATIVE)
    if not allow_debug_build:
        require_release_build(module)
    return module


def run_bench(
    stages: Sequence[str],
    sizes: Sequence[int],
    *,
    threads: int | None = None,
    repeat: int = 1,
    sample_cap: int = 10_000,
    seed: int = 0,
    allow_debug_build: bool = False,
    on_stage_done: Callable[[list[BenchResult]], None] | None = None,
) -> list[BenchResult]:
    """Every stage x size; raises DebugBuildError before any work if native is a debug build."""
    unknown = [name for name in stages if name not in STAGES]
    if unknown:
        raise InvalidArgumentError(f"stages: unknown {unknown}; choose from {sorted(STAGES)}")
    if any(size < 1 for size in sizes) or repeat < 1 or sample_cap < 1:
        raise InvalidArgumentError("sizes, repeat and sample_cap must be at least 1")
    check_native(allow_debug_build)
    results: list[BenchResult] = []
    sample_runs: dict[tuple[str, int, int], SampleRuns] = {}
    for name in stages:
        for size in sizes:
            done = bench_stage(
                STAGES[name],
                size,
                threads=threads,
                repeat=repeat,
                sample_cap=sample_cap,
                seed=seed,
                sample_runs=sample_runs,
            )
            results.extend(done)
            if on_stage_done:
                on_stage_done(done)
    return results
