"""What every stage command shares: exit codes, and turning a stage's outcome into them."""

from __future__ import annotations

import dataclasses
import functools
import importlib
import json
import sys
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import click

from synthrank.console import error, say
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


def default_of(config: type[Any], name: str) -> Any:
    """The default of field `name` of the config dataclass `config` (its factory's value for a list)."""
    for f in dataclasses.fields(config):
        if f.name == name:
            if f.default is not dataclasses.MISSING:
                return f.default
            if f.default_factory is not dataclasses.MISSING:
                return f.default_factory()
            raise TypeError(f"{config.__name__}.{name} has no default")
    raise TypeError(f"{config.__name__} has no field {name!r}")


def config_class(path: str) -> type[Any]:
    """The class named by "module:Class" (imported on demand)."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


class ConfigOption(click.Option):
    """An option whose default is a config dataclass field's, so the two cannot drift apart.

    The class is named as "module:Class" and imported only when the default is needed (`--help` or a
    call of this command): the stage modules import numpy or torch, which `synthrank status` must not
    pay for. `field` defaults to the option's name. With `from_config`, an option not given is None
    (the command takes it from the run's config.json, else the dataclass) and `--help` shows the
    dataclass default.
    """

    def __init__(
        self, *decls: Any, config: str, field: str | None = None, from_config: bool = False, **attrs: Any
    ) -> None:
        if "default" in attrs:
            raise TypeError("a ConfigOption takes its default from the config dataclass")
        attrs.setdefault("show_default", True)
        super().__init__(*decls, **attrs)
        self.config = config
        self.field = field or self.name or ""
        self.from_config = from_config
        self._in_help = False

    def config_default(self) -> Any:
        value = default_of(config_class(self.config), self.field)
        return tuple(value) if self.multiple and value is not None else value

    def get_default(self, ctx: click.Context, call: bool = True) -> Any:
        return None if self.from_config and not self._in_help else self.config_default()

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        self._in_help = True  # Click writes "[default: ...]" from get_default
        try:
            return super().get_help_record(ctx)
        finally:
            self._in_help = False


def config_option(config: str, *decls: str, **attrs: Any) -> Callable[[Callable[..., Any]], Any]:
    """`click.option` with its default from `config` ("module:Class"): see `ConfigOption`."""
    return click.option(*decls, cls=ConfigOption, config=config, **attrs)


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
        say("interrupted; finished work is kept, re-run to continue", "yellow")
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
