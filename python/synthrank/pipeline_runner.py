"""What `synthrank run` and `synthrank status` do around the pipeline: validate, log, report, exit codes."""

from __future__ import annotations

import logging
import os
import time
import traceback
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from synthrank.errors import BudgetExceededError, ConfigError, SynthrankError
from synthrank.pipeline import Stage, check_stage_names, plan, run_pipeline, stage_table
from synthrank.records import RunLayout
from synthrank.settings import PipelineConfig, check_inputs, load_config

EXIT_OK, EXIT_INCOMPLETE, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
LLM_STAGES = ("generate", "judge")

console = Console(stderr=True)


def say(message: str, style: str = "") -> None:
    """A message to stderr, never parsed as rich markup (config keys look like `[train]`)."""
    console.print(message, style=style or None, markup=False, soft_wrap=True, highlight=False)


def setup_logging(layout: RunLayout, level: str, verbose: bool) -> None:
    """Console logs at the configured level; with -v, debug logs also go to RUN/synthrank.log."""
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if verbose else getattr(logging, level.upper()))
    if not any(isinstance(h, logging.StreamHandler) for h in root.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
        root.addHandler(handler)
    if verbose:
        layout.root.mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(layout.root / "synthrank.log", encoding="utf-8")
        file_handler.setLevel(logging.DEBUG)
        file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(file_handler)
    for noisy in ("httpx", "httpcore", "urllib3", "filelock", "sentence_transformers", "transformers"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def check_llm_endpoints(config: PipelineConfig) -> None:
    """Probe each LLM base URL (GET /models) so a wrong URL fails before hours of work, not after."""
    llm = config.llm.resolved()
    for url in llm.base_urls:
        headers = {"Authorization": f"Bearer {llm.api_key}"} if llm.api_key else {}
        try:
            httpx.get(url.rstrip("/") + "/models", headers=headers, timeout=10.0)
        except httpx.HTTPError as exc:
            raise ConfigError(
                f"{config.source or 'config'}: [llm] base_urls: {url} is unreachable ({type(exc).__name__}); "
                "start the server, fix the URL, or pass --skip-llm-check"
            ) from exc


def prepare(
    config: PipelineConfig, *, start: str | None, stop: str | None, force: bool, check_llm: bool
) -> list[tuple[Stage, bool]]:
    """Validate everything that can be validated before the first stage starts."""
    check_stage_names([s for s in (start, stop) if s])
    steps = plan(config, start=start, stop=stop, force=force)
    if any(run for stage, run in steps if stage.name == "ingest"):
        check_inputs(config)
    if check_llm and not config.llm.offline and any(run for stage, run in steps if stage.name in LLM_STAGES):
        check_llm_endpoints(config)
    return steps


def run_config(
    config: PipelineConfig,
    *,
    start: str | None = None,
    stop: str | None = None,
    force: bool = False,
    check_llm: bool = True,
    verbose: bool = False,
) -> int:
    """Run a loaded config; print progress and the final tables; return the exit code."""
    layout = RunLayout(config.run.dir)
    setup_logging(layout, config.run.log_level, verbose)
    if config.run.backend:
        os.environ["SYNTHRANK_BACKEND"] = config.run.backend
    try:
        steps = prepare(config, start=start, stop=stop, force=force, check_llm=check_llm)
    except SynthrankError as exc:
        say(f"Error: {exc}", "red")
        return EXIT_BAD_INPUT
    if not any(run for _, run in steps):
        say(f"Nothing to do: every stage of {layout.root} is finished under this config.")
        print_status(layout.root, None)
        return EXIT_OK
    started = time.time()

    def on_stage(stage: Stage, state: str) -> None:
        if state == "running":
            console.rule(f"[bold]{stage.name}[/bold]: {stage.summary}")
        elif state == "skipped":
            console.print(f"[dim]{stage.name}: finished earlier, skipped[/dim]")

    try:
        results = run_pipeline(config, start=start, stop=stop, force=force, on_stage=on_stage)
    except KeyboardInterrupt:
        say(f"Interrupted. Finished stages are kept; run again to resume ({layout.root}).", "yellow")
        return EXIT_INTERRUPTED
    except BudgetExceededError as exc:
        say(f"Stopped: {exc}. Raise [llm] max_cost and run again to continue.", "yellow")
        return EXIT_INCOMPLETE
    except SynthrankError as exc:
        say(f"Error: {exc}", "red")
        say(f"Finished stages are kept in {layout.root}; fix the cause and run again.")
        return EXIT_BAD_INPUT
    except Exception as exc:  # a bug, not bad input: keep the traceback on disk, not on the screen
        log_path = layout.root / "synthrank.log"
        with open(log_path, "a", encoding="utf-8") as fh:
            fh.write(traceback.format_exc())
        say(f"Error: {type(exc).__name__}: {exc}", "red")
        say(f"The traceback is in {log_path}; finished stages are kept in {layout.root}.")
        return EXIT_INCOMPLETE
    print_status(layout.root, None)
    if results and results[-1].action == "partial":
        say(f"Stage {results[-1].stage} is incomplete: run again to resume it.", "yellow")
        return EXIT_INCOMPLETE
    say(f"Done in {time.time() - started:.0f} s. Report: {layout.root / 'report.md'}")
    return EXIT_OK


def execute(
    config_path: Path, *, start: str | None, stop: str | None, force: bool, check_llm: bool, verbose: bool
) -> int:
    try:
        config = load_config(config_path)
    except SynthrankError as exc:
        say(f"Error: {exc}", "red")
        return EXIT_BAD_INPUT
    return run_config(config, start=start, stop=stop, force=force, check_llm=check_llm, verbose=verbose)


def print_status(run_dir: Path, config_path: Path | None) -> None:
    config = load_config(config_path) if config_path else None
    rows = stage_table(RunLayout(run_dir), config)
    table = Table(title=f"synthrank run {run_dir}")
    for column in ("stage", "state", "time", "LLM cost", "counts"):
        table.add_column(column, justify="right" if column in ("time", "LLM cost") else "left")
    colours = {"done": "green", "partial": "yellow", "failed": "red", "stale": "magenta", "pending": "dim"}
    for row in rows:
        counts = ", ".join(
            f"{k}={v}" for k, v in list(row["counts"].items())[:4] if not isinstance(v, (dict, list))
        )
        if row["error"]:
            counts = f"{row['error']}"[:80]
        table.add_row(
            row["stage"],
            f"[{colours[row['state']]}]{row['state']}[/]",
            f"{row['seconds']:.1f} s" if row["seconds"] is not None else "",
            f"{row['cost']:.4f}" if row["cost"] else "",
            counts,
        )
    Console().print(table)
