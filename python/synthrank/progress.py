"""A rich progress bar for long loops that stays quiet when stderr is not a terminal (CI, pipes)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class Bar:
    """What a loop needs from a progress bar: advance it."""

    def __init__(self, progress: Progress, total: int | None, description: str) -> None:
        self._progress = progress
        self._task = progress.add_task(description, total=total)

    def advance(self, n: int = 1) -> None:
        self._progress.advance(self._task, n)


@contextmanager
def progress_bar(description: str, *, total: int | None = None, unit: str = "items") -> Iterator[Bar]:
    progress = Progress(
        TextColumn(f"[bold]{description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=not sys.stderr.isatty(),
        transient=True,
    )
    with progress:
        yield Bar(progress, total, description)
