"""Stage manifests: what each pipeline stage did, so a re-run knows what it can skip.

`manifests/<stage>.json` holds the stage's fingerprint (its own options plus the fingerprints of
the stages it reads from), the output files with sizes, counts, timings and LLM cost. A stage whose
manifest says `done` with the fingerprint the current config gives is skipped; any other state
re-runs it (stages resume their own partial work from what is on disk).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from synthrank.records import RunLayout, write_text_atomic

Status = Literal["done", "partial", "failed", "running"]  # running: counts hold the stage's pid


@dataclass
class Manifest:
    stage: str
    status: Status
    fingerprint: str
    started: float
    finished: float
    seconds: float
    counts: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, int] = field(default_factory=dict)  # relative path -> size in bytes
    error: str | None = None

    @property
    def cost(self) -> float:
        return float(self.counts.get("cost", 0.0) or 0.0)


def read_manifest(layout: RunLayout, stage: str) -> Manifest | None:
    path = layout.manifest(stage)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Manifest(**data)
    except (OSError, ValueError, TypeError):
        return None


def write_manifest(layout: RunLayout, manifest: Manifest) -> None:
    path = layout.manifest(manifest.stage)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(asdict(manifest), indent=2, default=str) + "\n")


def output_sizes(layout: RunLayout, paths: list[Path]) -> dict[str, int]:
    sizes = {}
    for path in paths:
        if path.is_dir():
            total = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        elif path.exists():
            total = path.stat().st_size
        else:
            continue
        sizes[str(path.relative_to(layout.root))] = total
    return sizes


def outputs_intact(layout: RunLayout, manifest: Manifest) -> bool:
    """A finished stage is only trusted while the files it wrote are still there."""
    return all((layout.root / rel).exists() for rel in manifest.outputs)


def now() -> float:
    return time.time()
