"""Messages to stderr, shared by every command and `synthrank run`: `say` for progress, `error` for
failures (one format: "Error: ..." in red on a terminal, plain text in a pipe or a log)."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console


@functools.cache
def stderr() -> Console:
    from rich.console import Console  # imported on first message: `synthrank status` stays fast

    return Console(stderr=True)


PIPE_WIDTH = 160  # columns of a table written to a pipe or a log file


def table_console(*, stderr: bool = False, min_width: int = 0) -> Console:
    """A console for tables: a terminal's own width (at least min_width); in a pipe or a log file,
    where rich would assume 80 columns and cut every cell short, PIPE_WIDTH."""
    from rich.console import Console

    console = Console(stderr=stderr)
    console.width = max(console.width if console.is_terminal else PIPE_WIDTH, min_width)
    return console


def say(message: str, style: str = "") -> None:
    """A message to stderr, never parsed as rich markup (config keys look like `[train]`)."""
    stderr().print(message, style=style or None, markup=False, soft_wrap=True, highlight=False)


def error(message: object) -> None:
    say(f"Error: {message}", "red")
