"""What every stage command shares: exit codes, and turning a stage's outcome into them."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from synthrank.errors import LLMError, SynthrankError

RUN_OPTION = click.option(
    "--run", "run_dir", required=True, type=click.Path(file_okay=False, path_type=Path), help="Run folder."
)


class BadInputError(click.ClickException):
    exit_code = 2  # bad usage, configuration or input


def report_outcome(stage: Callable[..., dict[str, Any]], *args: Any, **kwargs: Any) -> None:
    """Run a stage and print its counts as JSON.

    Exit codes: 2 bad input (the message names the file, line or option), 1 an LLM failure or an
    incomplete stage (e.g. max_cost reached), 130 Ctrl-C; finished work stays on disk in every case.
    """
    try:
        counts = stage(*args, **kwargs)
    except KeyboardInterrupt:
        click.echo("interrupted; finished work is kept, re-run to continue", err=True)
        sys.exit(130)
    except LLMError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    except SynthrankError as exc:
        raise BadInputError(str(exc)) from None
    click.echo(json.dumps(counts, default=str))
    if counts.get("complete") is False:
        click.echo(f"Error: stage incomplete: {counts.get('stop_reason')}", err=True)
        sys.exit(1)


def stage_command(func: Callable[..., dict[str, Any]]) -> Callable[..., None]:
    """Decorate a command body that returns a stage's counts (see `report_outcome`)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        report_outcome(func, *args, **kwargs)

    return wrapper
