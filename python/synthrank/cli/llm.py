"""Click commands of the LLM stage: generate, filter-queries, judge, serve-llm, cache."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from synthrank.cli.common import RUN_OPTION, BadInputError, config_option, stage_command
from synthrank.errors import SynthrankError
from synthrank.records import RunLayout

# the config dataclasses whose defaults are the options' defaults
LLM = "synthrank.llm.config:LLMConfig"
GENERATE = "synthrank.stages.generate:GenerateConfig"
FILTER = "synthrank.stages.filter:FilterConfig"
JUDGE = "synthrank.stages.judge:JudgeConfig"
SERVER = "synthrank.llm.local_server:ServerOptions"

# option name -> LLMConfig field, for the options of `llm_options`
LLM_FIELDS = {
    "base_urls": "base_urls",
    "model": "model",
    "concurrency": "concurrency",
    "rpm": "rpm",
    "tpm": "tpm",
    "timeout": "timeout",
    "retries": "retries",
    "interrupt_grace": "interrupt_grace_s",
    "price_prompt": "price_prompt",
    "price_completion": "price_completion",
    "max_cost": "max_cost",
    "cache_path": "cache",
    "refresh": "refresh",
    "offline": "offline",
}


def _apply(options: list[Callable[..., Any]], command: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(options):
        command = option(command)
    return command


def llm_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by every command that calls the LLM; they build an `LLMConfig`."""
    options = [
        click.option(
            "--base-url",
            "base_urls",
            multiple=True,
            help="OpenAI-compatible base URL (repeat for several servers). "
            "Default: $SYNTHRANK_LLM_BASE_URL or $OPENAI_BASE_URL. The key comes from "
            "$SYNTHRANK_LLM_API_KEY or $OPENAI_API_KEY only.",
        ),
        config_option(
            LLM,
            "--model",
            show_default=False,
            help="Model name sent to the server (default $SYNTHRANK_LLM_MODEL).",
        ),
        config_option(LLM, "--concurrency", type=click.IntRange(min=1)),
        click.option("--rpm", type=click.FloatRange(min=0, min_open=True), help="Requests per minute limit."),
        click.option("--tpm", type=click.FloatRange(min=0, min_open=True), help="Tokens per minute limit."),
        config_option(LLM, "--timeout", type=click.FloatRange(min=0, min_open=True)),
        config_option(LLM, "--retries", type=click.IntRange(min=0)),
        config_option(
            LLM,
            "--interrupt-grace",
            field="interrupt_grace_s",
            type=click.FloatRange(min=0),
            help="After Ctrl-C, seconds the calls in flight get to arrive and be cached (again: at once).",
        ),
        config_option(LLM, "--price-prompt", type=click.FloatRange(min=0), help="Cost per 1M prompt tokens."),
        config_option(
            LLM,
            "--price-completion",
            type=click.FloatRange(min=0),
            help="Cost per 1M completion tokens.",
        ),
        click.option(
            "--max-cost",
            type=click.FloatRange(min=0, min_open=True),
            help="The run folder's LLM budget over every stage and re-run (RUN/llm_ledger.sqlite); "
            "no call is sent that would cross it (exit 1; re-run with a higher cap).",
        ),
        click.option(
            "--cache",
            "cache_path",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Request cache file (default RUN/llm_cache.sqlite); share one between runs.",
        ),
        config_option(
            LLM, "--refresh", is_flag=True, help="Ignore cached answers (new answers replace them)."
        ),
        config_option(
            LLM, "--offline", is_flag=True, help="Answer only from the cache; a miss fails that call."
        ),
    ]
    return _apply(options, command)


def build_llm_config(kw: dict[str, Any]) -> Any:
    """The `LLMConfig` of the `llm_options` in `kw` (taken out of it)."""
    from synthrank.llm.config import LLMConfig

    values = {field: kw.pop(option) for option, field in LLM_FIELDS.items()}
    return LLMConfig(**{**values, "base_urls": list(values["base_urls"])})


def prompt_options(config: str, *, few_shot: str, examples: str) -> Callable[..., Any]:
    """The few-shot and template options of a prompted stage (generate, judge)."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        options = [
            config_option(config, "--few-shot", type=click.IntRange(min=0), help=few_shot),
            click.option(
                "--examples",
                "few_shot_file",
                type=click.Path(exists=True, dir_okay=False, path_type=Path),
                help=examples,
            ),
            click.option(
                "--prompts",
                type=click.Path(exists=True, file_okay=False, path_type=Path),
                help="Folder of prompt templates replacing the packaged ones.",
            ),
        ]
        return _apply(options, command)

    return decorate


@click.command(
    epilog="Example:\n\n\b\n  synthrank generate --run runs/med --base-url http://127.0.0.1:8080/v1 \\\n"
    "    --n-queries 3 --max-cost 5"
)
@RUN_OPTION
@config_option(GENERATE, "--n-queries", type=click.IntRange(min=1), help="Queries per passage.")
@config_option(
    GENERATE,
    "--keyword-ratio",
    type=click.FloatRange(0, 1),
    help="Share of keyword-style queries (the rest are natural questions).",
)
@prompt_options(
    GENERATE,
    few_shot="Few-shot examples.",
    examples="Few-shot example JSONL (document, question[], keywords[]).",
)
@config_option(GENERATE, "--temperature", type=click.FloatRange(min=0))
@config_option(GENERATE, "--seed", type=int)
@config_option(
    GENERATE,
    "--one-call/--call-per-style",
    help="All queries of a passage in one request (styles mixed), or one request per style.",
)
@llm_options
@stage_command
def generate(run_dir: Path, **kw: Any) -> dict[str, Any]:
    """Write synthetic queries for the sampled passages into RUN/queries.raw.jsonl (resumable)."""
    from synthrank.stages.generate import GenerateConfig, run_generate

    llm_cfg = build_llm_config(kw)
    return run_generate(RunLayout(run_dir), GenerateConfig(**kw), llm_cfg)


@click.command(
    "filter-queries", epilog="Example:\n\n\b\n  synthrank filter-queries --run runs/med --max-words 40"
)
@RUN_OPTION
@config_option(FILTER, "--min-words", type=click.IntRange(min=1))
@config_option(FILTER, "--max-words", type=click.IntRange(min=1))
@config_option(
    FILTER,
    "--copy-ngram",
    type=click.IntRange(min=1),
    help="Word n-gram length used to detect queries copied from the passage.",
)
@config_option(
    FILTER,
    "--copy-overlap",
    type=click.FloatRange(0, 1, min_open=True),
    help="Share of a query's words inside shared n-grams that marks it as copied.",
)
@config_option(FILTER, "--near-duplicate-threshold", type=click.FloatRange(0, 1, min_open=True))
@stage_command
def filter_queries(run_dir: Path, **kw: Any) -> dict[str, Any]:
    """Drop empty, short, long, copied, badly formatted and duplicate queries: RUN/queries.jsonl."""
    from synthrank.stages.filter import FilterConfig, run_filter

    return run_filter(RunLayout(run_dir), FilterConfig(**kw))


@click.command(epilog="Example:\n\n\b\n  synthrank judge --run runs/med --top-m 20 --max-cost 5")
@RUN_OPTION
@config_option(
    JUDGE,
    "--top-m",
    type=click.IntRange(min=0),
    help="Candidates judged per query besides its source passage.",
)
@config_option(
    JUDGE, "--logprobs/--no-logprobs", help="Ask for grade-token logprobs to record an expected grade."
)
@prompt_options(JUDGE, few_shot="Graded examples.", examples="Graded example JSONL (query, passage, grade).")
@config_option(
    JUDGE,
    "--mode",
    type=click.Choice(["pointwise", "listwise"]),
    help="One call per pair, or one JSON-schema-constrained call per list of a query's passages.",
)
@config_option(JUDGE, "--list-size", type=click.IntRange(min=1), help="Passages per listwise call.")
@click.option(
    "--passage-max-tokens",
    type=click.IntRange(min=1),
    help="Cut each passage to this many tokens for the judge (default: no cut).",
)
@click.option(
    "--skip-margin",
    type=click.FloatRange(min=0),
    help="Leave unjudged the candidates whose cosine is this far below the source passage's.",
)
@config_option(
    JUDGE,
    "--ambiguous-first",
    is_flag=True,
    help="Judge the pairs nearest the source passage's cosine first.",
)
@config_option(
    JUDGE,
    "--source-first",
    is_flag=True,
    help="Grade each source passage first; judge no candidate of a query whose source fails the gate.",
)
@click.option(
    "--source-min-grade",
    type=click.IntRange(1, 3),
    help="The gate of --source-first (default: [mine] positive_min_grade's default, 2).",
)
@llm_options
@stage_command
def judge(run_dir: Path, **kw: Any) -> dict[str, Any]:
    """Grade each query's source passage and top candidates 0-3 into RUN/judgments.jsonl (resumable)."""
    from synthrank.stages.judge import JudgeConfig, run_judge

    llm_cfg = build_llm_config(kw)
    return run_judge(RunLayout(run_dir), JudgeConfig(**kw), llm_cfg)


@click.command(
    "serve-llm", epilog="Example:\n\n\b\n  synthrank serve-llm --model qwen0.5b --port 8080 --threads 2"
)
@config_option(
    SERVER,
    "--model",
    help="smollm2 (SmolLM2-135M, fast), qwen0.5b (Qwen2.5-Coder-0.5B) or a path to a .gguf file.",
)
@config_option(SERVER, "--host")
@config_option(SERVER, "--port", type=click.IntRange(0, 65535), help="0 = any free port.")
@config_option(SERVER, "--threads", type=click.IntRange(min=1))
@config_option(SERVER, "--ctx", type=click.IntRange(min=256), help="Context size (tokens).")
@config_option(
    SERVER,
    "--parallel",
    type=click.IntRange(min=1),
    help="Sequences decoded together; the context is split between them.",
)
@config_option(SERVER, "--verbose", is_flag=True, help="Show llama.cpp's log.")
def serve_llm(**kw: Any) -> None:
    """Start a local OpenAI-compatible LLM server (llama.cpp) in the foreground; Ctrl-C stops it."""
    from synthrank.llm.local_server import ServerOptions, free_port, start_server

    opts = ServerOptions(**kw)
    if opts.port == 0:
        opts.port = free_port(opts.host)
    try:
        server, base_url = start_server(opts)
    except SynthrankError as exc:
        raise BadInputError(str(exc)) from None
    click.echo(f"serving {opts.model} at {base_url}", err=True)
    click.echo(base_url)
    sys.stdout.flush()
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        click.echo("stopping", err=True)
    finally:
        del server


CACHE_OPTION = click.option(
    "--cache",
    "cache_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The cache file, when `[llm] cache` puts it outside RUN.",
)


@click.group("cache")
def cache() -> None:
    """Move LLM replies between runs and machines: a reply any cache holds is not paid for again.

    \b
    Split the LLM work over machines, or carry it to a new run:
      synthrank cache export --run runs/med replies.sqlite.gz      # on the machine that ran it
      synthrank cache merge --run runs/med2 replies.sqlite.gz      # where the run continues
    """


@cache.command("export")
@RUN_OPTION
@CACHE_OPTION
@click.argument("target", type=click.Path(dir_okay=False, path_type=Path))
def cache_export(run_dir: Path, cache_path: Path | None, target: Path) -> None:
    """Write RUN's LLM cache to TARGET, one file (gzipped when TARGET ends in .gz), safe while RUN runs."""
    from synthrank.llm.cache import ResponseCache

    source = cache_path or RunLayout(run_dir).llm_cache
    if not source.is_file():
        raise BadInputError(f"{source}: no LLM cache here (has RUN called the LLM yet?)")
    try:
        with ResponseCache(source) as replies:
            replies.export(target)
            count = len(replies)
    except SynthrankError as exc:
        raise BadInputError(str(exc)) from None
    except OSError as exc:
        raise BadInputError(f"{target}: {exc.strerror or exc}") from None
    click.echo(f"{count} replies written to {target}")


@cache.command("merge")
@RUN_OPTION
@CACHE_OPTION
@click.argument(
    "sources", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
def cache_merge(run_dir: Path, cache_path: Path | None, sources: tuple[Path, ...]) -> None:
    """Add the replies in SOURCES (exports, or other runs' llm_cache.sqlite) that RUN's cache lacks."""
    from synthrank.llm.cache import ResponseCache

    try:
        with ResponseCache(cache_path or RunLayout(run_dir).llm_cache) as replies:
            for source in sources:
                click.echo(f"{source}: {replies.merge(source)} replies added")
    except SynthrankError as exc:
        raise BadInputError(str(exc)) from None


COMMANDS: list[click.Command] = [generate, filter_queries, judge, serve_llm, cache]
