"""Each stage x {native, python twin, peers} on the same seeded input, grouped per stage.

Run: `pytest benches --benchmark-enable` (add `--benchmark-json out.json` to keep the numbers).
`extra_info["matches"]` is True/False for native and the twin (output equal to the twin's), and
percent agreement with the twin for peers (see `synthrank.bench.peers`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from synthrank.bench import STAGES

# Items per case: one input per stage, shared by every implementation in its group.
SIZES = {
    "chunk": 2_000,
    "sample": 100_000,
    "dedup": 2_000,
    "dedup-queries": 2_000,
    "negatives": 10_000,
    "negatives-judged": 10_000,
}
SEED = 0
CASES = [(stage, impl) for stage in STAGES for impl in ("native", "python", *STAGES[stage].peers)]
# The twin takes seconds per round where native takes milliseconds; one round is enough to compare.
ROUNDS = {"python": 1}
DEFAULT_ROUNDS = 5


@pytest.fixture(scope="module")
def stage_input() -> Callable[[str], tuple[Any, Any]]:
    """(input, python twin's output on it) per stage, built once."""
    cache: dict[str, tuple[Any, Any]] = {}

    def get(name: str) -> tuple[Any, Any]:
        if name not in cache:
            inputs = STAGES[name].make(SIZES[name], SEED)
            cache[name] = (inputs, STAGES[name].run(inputs, "python", None))
        return cache[name]

    return get


@pytest.mark.usefixtures("native_release_build")
@pytest.mark.parametrize(("stage_name", "implementation"), CASES, ids=[f"{s}-{i}" for s, i in CASES])
def test_stage(
    benchmark: Any, stage_input: Callable[[str], tuple[Any, Any]], stage_name: str, implementation: str
) -> None:
    stage = STAGES[stage_name]
    inputs, twin_output = stage_input(stage_name)
    benchmark.group = f"{stage_name} ({SIZES[stage_name]:,} {stage.unit})"
    peer = stage.peers.get(implementation)
    rounds = ROUNDS.get(implementation, DEFAULT_ROUNDS)
    warmup_rounds = 1 if rounds > 1 else 0
    if peer is not None:
        output = benchmark.pedantic(
            peer.run, args=(inputs, None), rounds=rounds, iterations=1, warmup_rounds=warmup_rounds
        )
        benchmark.extra_info["matches"] = peer.agreement(output, twin_output)
        benchmark.extra_info["compared"] = peer.compared
        return
    output = benchmark.pedantic(
        stage.run,
        args=(inputs, implementation, None),
        rounds=rounds,
        iterations=1,
        warmup_rounds=warmup_rounds,
    )
    matches = bool(stage.same(output, twin_output))
    benchmark.extra_info["matches"] = matches
    benchmark.extra_info["compared"] = "output == python twin"
    assert matches, f"{stage_name}: {implementation} output differs from the python twin"
