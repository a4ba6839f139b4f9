"""The warm-start folder's marker: what distill started from, so train knows when to start from it.

Its own module because both sides need it: `distill` writes the marker (and runs the trainer),
`trainer` reads it; with the marker in either of them the two would import each other.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from synthrank.records import RunLayout, write_text_atomic

MARKER = "warm_start.json"  # in the warm-start folder


def write_marker(folder: Path, data: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(folder / MARKER, json.dumps(data, indent=1) + "\n")


def warm_start_for(layout: RunLayout, start_model: str) -> Path | None:
    """The run's warm-start model when one was trained from `start_model`, else None."""
    marker = layout.warm_start / MARKER
    if not marker.is_file():
        return None
    data = json.loads(marker.read_text(encoding="utf-8"))
    ok = data.get("enabled") and data.get("start_model") == start_model
    return layout.warm_start if ok and (layout.warm_start / "config.json").is_file() else None
