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


def say(message: str, style: str = "") -> None:
    """A message to stderr, never parsed as rich markup (config keys look like `[train]`)."""
    stderr().print(message, style=style or None, markup=False, soft_wrap=True, highlight=False)


def error(message: object) -> None:
    say(f"Error: {message}", "red")
