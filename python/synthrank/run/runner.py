"""What `synthrank run` and `synthrank status` do around the pipeline: validate, log, report, exit codes."""

from __future__ import annotations

import logging
import os
import re
import sys
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table

from synthrank.console import error, say, stderr, table_console
from synthrank.errors import (
    EXIT_INCOMPLETE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    BudgetExceededError,
    ConfigError,
    EmptyOutputError,
    LLMError,
    SynthrankError,
    exit_code,
)
from synthrank.llm.ledger import read_spend
from synthrank.models import RUN_EMBEDDER
from synthrank.records import RunLayout
from synthrank.run.lock import RunLock, RunLockedError
from synthrank.run.pipeline import Stage, check_stage_names, plan, run_pipeline, save_run_config, stage_table

if TYPE_CHECKING:  # httpx and every stage's options stay out of `synthrank status`
    import httpx

    from synthrank.run.settings import PipelineConfig

LLM_STAGES = ("generate", "judge")


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
    if not sys.stderr.isatty():  # a log file: the hub's and transformers' bars ("Loading weights") are noise
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def check_llm_endpoints(config: PipelineConfig) -> None:
    """Probe each LLM base URL (GET /models) so a wrong URL fails before hours of work, not after."""
    import httpx

    llm = config.llm.resolved()
    for url in llm.base_urls:
        headers = {"Authorization": f"Bearer {llm.api_key}"} if llm.api_key else {}
        where = f"{config.source or 'config'}: [llm]"
        try:
            response = httpx.get(url.rstrip("/") + "/models", headers=headers, timeout=10.0)
        except httpx.HTTPError as exc:
            raise ConfigError(
                f"{where} base_urls: {url} is unreachable ({type(exc).__name__}); "
                "start the server, fix the URL, or pass --skip-llm-check"
            ) from exc
        check_probe(response, url, llm.model, where)


def check_probe(response: httpx.Response, url: str, model: str, where: str) -> None:
    """A reachable endpoint can still refuse the key or lack the model: say so before any work."""
    if response.status_code in (401, 403):
        key = "set" if response.request.headers.get("authorization") else "not set"
        raise ConfigError(
            f"{where} base_urls: {url}: the server refused the key (HTTP {response.status_code}; "
            f"$SYNTHRANK_LLM_API_KEY / $OPENAI_API_KEY is {key})"
        )
    if response.status_code == 404:
        raise ConfigError(
            f"{where} base_urls: {url}/models: HTTP 404, no OpenAI-compatible API there "
            "(the URL usually ends in /v1); fix the URL or pass --skip-llm-check"
        )
    if response.status_code != 200:
        return  # some servers lack /models: the first real call will tell
    try:
        listed = [m.get("id") for m in response.json().get("data", []) if isinstance(m, dict)]
    except (ValueError, AttributeError):
        return
    served = ", ".join(map(str, listed[:10]))
    if model == "default" and len(listed) > 1:  # Ollama and the like: no name, no model
        raise ConfigError(f"{where} model is not set and {url} serves several ({served}): name one")
    if model == "default" and listed:
        # llama.cpp answers to any name, vLLM only to its own; and the name keys every cached reply,
        # so another model behind the same URL would be answered from this one's cache
        say(f"{where} model is not set: replies are cached as 'default'; {url} serves {served}", "yellow")
    # servers serving one model (llama.cpp) answer to any name; where several are listed, it must match
    if model != "default" and len(listed) > 1 and model not in listed:
        raise ConfigError(f"{where} model: no such model {model!r} at {url} (it serves {served})")


def _offline_hub() -> bool:
    return any(os.environ.get(v, "").lower() not in ("", "0", "false") for v in HUB_OFFLINE_ENV)


HUB_OFFLINE_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
_HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def model_problem(name: str) -> str | None:
    """Why `name` (a model or tokenizer: local path, packaged or hub name) cannot load, or None.

    A hub name is accepted when it is in the local hub cache, or when the hub may be reached (the
    download itself is left to the stage); a path must exist.
    """
    from synthrank.models import resolve_model

    if Path(resolve_model(name)).exists():
        return None
    if not _HUB_NAME.match(name) or name.startswith((".", "~")):
        return f"{name} does not exist"
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    for filename in ("config.json", "tokenizer.json"):
        if isinstance(try_to_load_from_cache(name, filename), str):
            return None
    if _offline_hub():
        return f"{name} is neither a local path nor in the hub cache, and the hub is offline (HF_HUB_OFFLINE)"
    return None


def check_models(config: PipelineConfig, steps: list[tuple[Stage, bool]]) -> None:
    """Fail before the first LLM call when a model a later stage needs cannot load."""
    runs = {stage.name for stage, run in steps if run}
    bi_encoder = config.evaluate.bi_encoder
    if bi_encoder == RUN_EMBEDDER:  # the model evaluate loads is the one [embed] names
        bi_encoder = config.embed.model
    wanted = [
        ("ingest", "corpus", "tokenizer", config.corpus.tokenizer),
        ("embed", "embed", "model", config.embed.model),
        ("train", "train", "model", config.train.model),
        ("evaluate", "evaluate", "bi_encoder", bi_encoder),
    ]
    for stage, section, key, name in wanted:
        problem = model_problem(str(name)) if stage in runs and name else None
        if problem:
            raise ConfigError(f"{config.source or 'config'}: [{section}] {key}: {problem}")


def prepare(
    config: PipelineConfig, *, start: str | None, stop: str | None, force: bool, check_llm: bool
) -> list[tuple[Stage, bool]]:
    """Validate everything that can be validated before the first stage starts."""
    from synthrank.run.settings import check_inputs

    check_stage_names([s for s in (start, stop) if s])
    steps = plan(config, start=start, stop=stop, force=force)
    if any(run for stage, run in steps if stage.name == "ingest"):
        check_inputs(config)
    check_models(config, steps)
    running = {stage.name for stage, run in steps if run}
    llm_needed = bool(running & set(LLM_STAGES))
    if running & {"testset", "evaluate"}:
        from synthrank.stages.evaluate.datasets import check_datasets
        from synthrank.stages.testset import needs_llm

        check_datasets(config, ingested="ingest" not in running)
        llm_needed = llm_needed or (
            "testset" in running and needs_llm(config, ingested="ingest" not in running)
        )
    if check_llm and not config.llm.offline and llm_needed:
        check_llm_endpoints(config)
    return steps


def run_config(config: PipelineConfig, **options: Any) -> int:
    """Run a loaded config holding its run folder's lock (see `_run_locked`); return the exit code."""
    from synthrank.native._backend import selected  # not at import: `synthrank status` loads no numpy

    try:
        with RunLock(config.run.dir), selected(config.run.backend):
            return _run_locked(config, **options)
    except RunLockedError as exc:
        error(exc)
        return exit_code(exc)


def _run_locked(
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
    try:
        steps = prepare(config, start=start, stop=stop, force=force, check_llm=check_llm)
    except SynthrankError as exc:
        error(exc)
        return exit_code(exc)
    if not any(run for _, run in steps):
        say(f"Nothing to do: every stage of {layout.root} is finished under this config.")
        print_status(layout.root, None)
        return EXIT_OK
    save_run_config(config)  # stage commands run on this folder later (`synthrank train RUN`) read it
    started = time.time()

    def on_stage(stage: Stage, state: str) -> None:
        if state == "running":
            stderr().rule(f"[bold]{stage.name}[/bold]: {stage.summary}")
        elif state == "skipped":
            stderr().print(f"[dim]{stage.name}: finished earlier, skipped[/dim]")

    try:
        results = run_pipeline(config, start=start, stop=stop, force=force, on_stage=on_stage)
    except KeyboardInterrupt:
        say(f"Interrupted. Finished stages are kept; run again to resume ({layout.root}).", "yellow")
        return EXIT_INTERRUPTED
    except BudgetExceededError as exc:
        say(f"Stopped: {exc}. Raise [llm] max_cost and run again to continue.", "yellow")
        return exit_code(exc)
    except EmptyOutputError as exc:
        error(exc)
        say(f"Finished stages are kept in {layout.root}; change the setting and run again.")
        return exit_code(exc)
    except SynthrankError as exc:
        error(exc)
        say(f"Finished stages are kept in {layout.root}; fix the cause and run again.")
        return exit_code(exc)
    except Exception as exc:  # a bug, not bad input: keep the traceback on disk, not on the screen
        log_path = layout.root / "synthrank.log"
        with open(log_path, "a", encoding="utf-8") as fh:
            fh.write(traceback.format_exc())
        error(f"{type(exc).__name__}: {exc}")
        say(f"The traceback is in {log_path}; finished stages are kept in {layout.root}.")
        return exit_code(exc)
    print_status(layout.root, None)
    if results and results[-1].action == "partial":
        reason = results[-1].counts.get("stop_reason")
        because = f" ({reason})" if reason else ""
        say(f"Stage {results[-1].stage} is incomplete{because}: run again to resume it.", "yellow")
        return EXIT_INCOMPLETE
    say(f"Done in {time.time() - started:.0f} s. Report: {layout.root / 'report.md'}")
    return EXIT_OK


def execute(
    config_path: Path,
    *,
    start: str | None,
    stop: str | None,
    force: bool,
    check_llm: bool,
    verbose: bool,
    dry_run: bool = False,
    pilot: int | None = None,
) -> int:
    from synthrank.run.settings import load_config

    try:
        config = load_config(config_path)
    except SynthrankError as exc:
        error(exc)
        return exit_code(exc)
    if dry_run:
        return plan_config(config, start=start, stop=stop, force=force)
    if pilot is not None:
        return pilot_run(config, pilot, check_llm=check_llm, verbose=verbose)
    return run_config(config, start=start, stop=stop, force=force, check_llm=check_llm, verbose=verbose)


def plan_config(config: PipelineConfig, *, start: str | None, stop: str | None, force: bool) -> int:
    """`synthrank plan` / `run --dry-run`: the checks of a run, then the plan; nothing runs."""
    from synthrank.run.preview import print_plan

    try:
        prepare(config, start=start, stop=stop, force=force, check_llm=False)
        print_plan(config, start=start, stop=stop, force=force)
    except SynthrankError as exc:
        error(exc)
        return exit_code(exc)
    return EXIT_OK


def pilot_run(config: PipelineConfig, n: int, *, check_llm: bool, verbose: bool) -> int:
    """`run --pilot N`: generate → ... → mine on N sampled passages in RUN/pilot, then the yield."""
    from synthrank.run.preview import pilot_config, run_pilot

    layout = RunLayout(config.run.dir)
    setup_logging(layout, config.run.log_level, verbose)
    try:
        prepare(config, start=None, stop="sample", force=False, check_llm=False)
        if check_llm and not config.llm.offline:
            check_llm_endpoints(config)
        check_models(config, plan(pilot_config(config, n), stop="mine"))
        return run_pilot(config, n)
    except KeyboardInterrupt:
        say(f"Interrupted. Run the pilot again to resume ({layout.root / 'pilot'}).", "yellow")
        return EXIT_INTERRUPTED
    except (BudgetExceededError, LLMError) as exc:
        say(f"Stopped: {exc}", "yellow")
        return exit_code(exc)
    except SynthrankError as exc:
        error(exc)
        return exit_code(exc)


def print_status(run_dir: Path, config_path: Path | None) -> None:
    config = None
    if config_path:  # loading a config imports every stage's options: only when one is given
        from synthrank.run.settings import load_config

        config = load_config(config_path)
    rows = stage_table(RunLayout(run_dir), config)
    spend = read_spend(RunLayout(run_dir).llm_ledger)  # every process's calls, not the last one's only
    for row in rows:
        row["cost"] = spend.get(row["stage"], row["cost"])
    table = Table(title=f"synthrank run {run_dir}")
    if spend:
        table.caption = f"LLM spend of the run folder, all stages and re-runs: {sum(spend.values()):.4f}"
    for column in ("stage", "state", "time", "LLM cost", "counts"):
        table.add_column(column, justify="right" if column in ("time", "LLM cost") else "left")
    colours = {
        "done": "green",
        "running": "cyan",
        "partial": "yellow",
        "failed": "red",
        "stale": "magenta",
        "pending": "dim",
    }
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
            f"{row['cost']:.4f}" if row["cost"] or row["llm"] else "",
            counts,
        )
    table_console().print(table)
