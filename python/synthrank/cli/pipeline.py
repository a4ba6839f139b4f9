"""`synthrank init | run | status | demo`: the whole pipeline from one config file."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import click

from synthrank.console import error
from synthrank.errors import ConfigError, SynthrankError, exit_code

STAGE_HELP = (
    "ingest, sample, generate, filter, embed, index, retrieve, judge, mine, testset, distill, train, "
    "evaluate, report"
)


def _fail(exc: SynthrankError) -> NoReturn:
    error(exc)
    sys.exit(exit_code(exc))


@click.command("init")
@click.argument("path", default="synthrank.toml", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@click.option(
    "--corpus",
    type=click.Path(exists=True, path_type=Path),
    help="Sets [corpus] path: a file or folder in any format `synthrank ingest` reads.",
)
@click.option(
    "--base-url", "base_urls", multiple=True, help="Sets [llm] base_urls (repeat for several servers)."
)
@click.option("--llm-model", default="", help="Sets [llm] model: the name the server serves.")
def init_command(
    path: Path, force: bool, corpus: Path | None, base_urls: tuple[str, ...], llm_model: str
) -> None:
    """Write a commented synthrank.toml with every option and its default.

    \b
    Example:
      synthrank init my-domain.toml --corpus docs/ --base-url http://127.0.0.1:8080/v1
      synthrank plan my-domain.toml     # what it will do and cost; runs nothing
      synthrank run my-domain.toml
    """
    from synthrank.cli.init_config import filled_template, write_template

    if path.exists() and not force:
        _fail(ConfigError(f"{path} exists; pass --force to overwrite it"))
    write_template(path, filled_template(path, corpus, base_urls, llm_model))
    todo = [what for what, given in (("[corpus] path", corpus), ("[llm] base_urls", base_urls)) if not given]
    then = f"set {' and '.join(todo)}, then" if todo else "check it, then"
    click.echo(f"wrote {path}: {then} `synthrank plan {path}` and `synthrank run {path}`")


@click.command("run")
@click.argument("config_path", metavar="CONFIG", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--from", "start", metavar="STAGE", help=f"Re-run from this stage on ({STAGE_HELP}).")
@click.option("--to", "stop", metavar="STAGE", help="Stop after this stage.")
@click.option("--force", is_flag=True, help="Re-run every stage, even finished ones.")
@click.option("--skip-llm-check", is_flag=True, help="Do not probe the LLM endpoints before starting.")
@click.option("--dry-run", is_flag=True, help="Print the plan (as `synthrank plan`) and run nothing.")
@click.option(
    "--pilot",
    type=click.IntRange(min=1),
    metavar="N",
    help="Run generate → judge → mine on N sampled passages in RUN/pilot and print the yield.",
)
@click.option("-v", "--verbose", is_flag=True, help="Debug logs (also written to RUN/synthrank.log).")
def run_command(
    config_path: Path,
    start: str | None,
    stop: str | None,
    force: bool,
    skip_llm_check: bool,
    dry_run: bool,
    pilot: int | None,
    verbose: bool,
) -> None:
    """Run every stage of CONFIG into its run folder; finished stages are skipped.

    A second run with the same config does no work; a changed setting re-runs only the stages it
    affects. Ctrl-C stops cleanly (exit 130) and `kill -9` loses nothing finished: run it again.
    `--pilot N` exits 0 when the pilot made training groups, 1 when it made none.

    \b
    Example:
      synthrank run synthrank.toml --dry-run       # calls, tokens, cost and time; nothing runs
      synthrank run synthrank.toml --pilot 50      # the yield on 50 passages, and what to change
      synthrank run synthrank.toml
      synthrank run synthrank.toml --from train     # retrain and re-evaluate only
    """
    from synthrank.run.runner import execute

    if dry_run and pilot is not None:
        raise click.UsageError("--dry-run and --pilot exclude each other")
    sys.exit(
        execute(
            config_path,
            start=start,
            stop=stop,
            force=force,
            check_llm=not skip_llm_check,
            verbose=verbose,
            dry_run=dry_run,
            pilot=pilot,
        )
    )


@click.command("plan")
@click.argument("config_path", metavar="CONFIG", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--from", "start", metavar="STAGE", help="Plan a re-run from this stage on.")
@click.option("--to", "stop", metavar="STAGE", help="Stop after this stage.")
@click.option("--force", is_flag=True, help="Plan a re-run of every stage.")
def plan_command(config_path: Path, start: str | None, stop: str | None, force: bool) -> None:
    """What `synthrank run CONFIG` would do: each stage run or skipped, and the LLM calls, prompt
    and completion tokens, cost (at [llm] price_prompt / price_completion) and time it would take.

    Tokens come from the real prompt templates rendered with the sampled passages (before ingest:
    passages of the full token budget). Times use the seconds per call measured in this run folder
    or its pilot, else a default rate, and say which. No LLM call, no training.

    \b
    Example:
      synthrank plan synthrank.toml
    """
    from synthrank.run.runner import execute

    sys.exit(
        execute(
            config_path, start=start, stop=stop, force=force, check_llm=False, verbose=False, dry_run=True
        )
    )


@click.command("status")
@click.argument("run_dir", metavar="RUN", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also mark stages the config would re-run as stale.",
)
def status_command(run_dir: Path, config_path: Path | None) -> None:
    """Print the stage table of a run folder: done / partial / pending, counts, time, LLM cost.

    \b
    Example:
      synthrank status synthrank-run
    """
    from synthrank.run.runner import print_status

    if not run_dir.is_dir():
        _fail(SynthrankError(f"{run_dir}: no such run folder"))
    try:
        print_status(run_dir, config_path)
    except SynthrankError as exc:
        _fail(exc)


@click.command("demo")
@click.option(
    "--out",
    "run_dir",
    default="synthrank-demo",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Run folder.",
)
@click.option(
    "--live",
    is_flag=True,
    help="Call a real LLM instead of replaying the recorded replies: the server in "
    "$SYNTHRANK_LLM_BASE_URL, else a local llama.cpp server started for the run.",
)
@click.option("--force", is_flag=True, help="Re-run every stage.")
@click.option("-v", "--verbose", is_flag=True, help="Debug logs (also written to RUN/synthrank.log).")
def demo_command(run_dir: Path, live: bool, force: bool, verbose: bool) -> None:
    """Run the whole pipeline offline on the bundled MedQuAD slice and print base vs fine-tuned.

    The LLM replies of a real run (Qwen2.5-Coder-0.5B-Instruct on llama.cpp) ship with the package
    and are replayed, so no LLM server or network is needed; `--live` makes new calls.

    \b
    Example:
      synthrank demo
      synthrank demo --live --out demo-live
    """
    from synthrank.cli.demo import run_demo

    sys.exit(run_demo(run_dir, live=live, force=force, verbose=verbose))


COMMANDS: list[click.Command] = [init_command, plan_command, run_command, status_command, demo_command]
