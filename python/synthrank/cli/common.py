"""What every stage command shares: exit codes, and turning a stage's outcome into them."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import click

from synthrank.console import error
from synthrank.errors import EXIT_BAD_INPUT, EXIT_INCOMPLETE, SynthrankError, exit_code

RUN_OPTION = click.option(
    "--run", "run_dir", required=True, type=click.Path(file_okay=False, path_type=Path), help="Run folder."
)


def run_folder_argument(func: Callable[..., Any]) -> Callable[..., Any]:
    """The run folder as `RUN` or as `--run RUN`, so every stage command takes `--run` alike."""

    @functools.wraps(func)
    def wrapper(*args: Any, run_arg: Path | None, run_opt: Path | None, **kwargs: Any) -> Any:
        if run_arg is not None and run_opt is not None and run_arg != run_opt:
            raise click.UsageError(f"two run folders given: {run_arg} and --run {run_opt}")
        run_dir = run_arg or run_opt
        if run_dir is None:
            raise click.UsageError("missing the run folder: give RUN or --run RUN")
        return func(*args, run_dir=run_dir, **kwargs)

    path = click.Path(file_okay=False, path_type=Path)
    wrapper = click.argument("run_arg", metavar="[RUN]", required=False, type=path)(wrapper)
    return click.option("--run", "run_opt", type=path, help="Run folder (instead of RUN).")(wrapper)


class BadInputError(click.ClickException):
    exit_code = EXIT_BAD_INPUT  # bad usage, configuration or input


def report_outcome(
    stage: Callable[..., dict[str, Any]], *args: Any, lock: Path | None = None, **kwargs: Any
) -> None:
    """Run a stage, holding the run folder `lock` (if given) throughout, and print its counts as JSON.

    Exit codes (`errors.exit_code`, as `synthrank run`): 2 bad input (the message names the file,
    line or option) or a run folder another command writes into, 1 an LLM failure or an incomplete
    stage (e.g. max_cost reached), 130 Ctrl-C; finished work stays on disk in every case.
    """
    from synthrank.run.lock import RunLock

    try:
        with RunLock(lock) if lock is not None else nullcontext():
            counts = stage(*args, **kwargs)
    except KeyboardInterrupt as exc:
        click.echo("interrupted; finished work is kept, re-run to continue", err=True)
        sys.exit(exit_code(exc))
    except SynthrankError as exc:
        error(exc)
        sys.exit(exit_code(exc))
    click.echo(json.dumps(counts, default=str))
    if counts.get("complete") is False:
        error(f"stage incomplete: {counts.get('stop_reason')}")
        sys.exit(EXIT_INCOMPLETE)


def stage_command(func: Callable[..., dict[str, Any]]) -> Callable[..., None]:
    """Decorate a command body that writes into RUN and returns a stage's counts (see `report_outcome`)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        report_outcome(func, *args, lock=kwargs.get("run_dir"), **kwargs)

    return wrapper
