"""The benchmark's outputs: a rich table for people, a JSON file (with the environment) for tools."""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from rich.table import Table

from synthrank.bench.runner import NATIVE, BenchResult

TABLE_NOTES = (
    "matches: native = output identical to the python twin's on the same input; peers = % agreement "
    "with the twin (near-dup pairs: Jaccard of (item, cluster) pairs; negatives: queries with the "
    "same negative ids). e.g. 'python (10k sample)': run on 10k items, seconds extrapolated "
    "linearly to the full size. peak MB: growth of resident memory during the call. "
    "native speedup: this row's seconds / native seconds."
)


def _matches_text(result: BenchResult) -> str:
    if result.matches is None:
        return "-"
    if isinstance(result.matches, bool):
        return "yes" if result.matches else "NO"
    return f"{result.matches:.1f}%"


def render_table(results: Sequence[BenchResult]) -> Table:
    native_seconds = {(r.stage, r.size): r.seconds for r in results if r.implementation == NATIVE}
    table = Table(title="synthrank bench", caption=TABLE_NOTES, caption_justify="left")
    for column in (
        "stage",
        "size",
        "implementation",
        "seconds",
        "items/s",
        "peak MB",
        "matches",
        "native speedup",
    ):
        table.add_column(column, justify="left" if column in ("stage", "implementation") else "right")
    for r, following in zip(results, [*results[1:], None], strict=True):
        native = native_seconds.get((r.stage, r.size))
        table.add_row(
            r.stage,
            f"{r.size:,}",
            r.label,
            f"{r.seconds:.4g}",
            f"{r.items_per_s:,.0f}" if r.items_per_s is not None else "-",
            f"{r.peak_mb:,.1f}" if r.peak_mb is not None else "n/a",
            _matches_text(r),
            f"{r.seconds / native:,.1f}x" if native else "-",
            end_section=following is not None and (following.stage, following.size) != (r.stage, r.size),
        )
    return table


def environment(threads: int | None, repeat: int, sample_cap: int, seed: int) -> dict[str, Any]:
    """Machine, versions and settings, stored beside the numbers so they can be compared later."""
    from synthrank.bench.measure import native_build_profile
    from synthrank.native import _backend

    def version(package: str) -> str | None:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return None

    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "native_build": native_build_profile(_backend.get(NATIVE)),
        "threads": threads,
        "repeat": repeat,
        "sample_cap": sample_cap,
        "seed": seed,
        "versions": {
            package: version(package)
            for package in ("synthrank", "numpy", "torch", "sentence-transformers", "datasketch", "rensa")
        },
    }


def write_json(path: Path, results: Sequence[BenchResult], env: dict[str, Any]) -> None:
    """{"environment": {...}, "results": [{stage, size, implementation, seconds, ...}, ...]}."""
    rows = [{**asdict(result), "implementation_label": result.label} for result in results]
    path.write_text(json.dumps({"environment": env, "results": rows}, indent=2) + "\n", encoding="utf-8")
