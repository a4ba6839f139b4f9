"""Click commands of the LLM stage: generate, filter-queries, judge, serve-llm."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from synthrank.cli.common import RUN_OPTION, BadInputError, stage_command
from synthrank.errors import SynthrankError
from synthrank.records import RunLayout


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
        click.option(
            "--model", default="", help="Model name sent to the server (default $SYNTHRANK_LLM_MODEL)."
        ),
        click.option("--concurrency", default=8, show_default=True, type=click.IntRange(min=1)),
        click.option("--rpm", type=click.FloatRange(min=0, min_open=True), help="Requests per minute limit."),
        click.option("--tpm", type=click.FloatRange(min=0, min_open=True), help="Tokens per minute limit."),
        click.option(
            "--timeout", default=120.0, show_default=True, type=click.FloatRange(min=0, min_open=True)
        ),
        click.option("--retries", default=6, show_default=True, type=click.IntRange(min=0)),
        click.option(
            "--interrupt-grace",
            default=2.0,
            show_default=True,
            type=click.FloatRange(min=0),
            help="After Ctrl-C, seconds the calls in flight get to arrive and be cached (again: at once).",
        ),
        click.option(
            "--price-prompt",
            default=0.0,
            show_default=True,
            type=click.FloatRange(min=0),
            help="Cost per 1M prompt tokens.",
        ),
        click.option(
            "--price-completion",
            default=0.0,
            show_default=True,
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
        click.option("--refresh", is_flag=True, help="Ignore cached answers (new answers replace them)."),
        click.option("--offline", is_flag=True, help="Answer only from the cache; a miss fails that call."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def build_llm_config(kw: dict[str, Any]) -> Any:
    from synthrank.llm.config import LLMConfig

    return LLMConfig(
        base_urls=list(kw.pop("base_urls")),
        model=kw.pop("model"),
        concurrency=kw.pop("concurrency"),
        rpm=kw.pop("rpm"),
        tpm=kw.pop("tpm"),
        timeout=kw.pop("timeout"),
        retries=kw.pop("retries"),
        interrupt_grace_s=kw.pop("interrupt_grace"),
        price_prompt=kw.pop("price_prompt"),
        price_completion=kw.pop("price_completion"),
        max_cost=kw.pop("max_cost"),
        cache=kw.pop("cache_path"),
        refresh=kw.pop("refresh"),
        offline=kw.pop("offline"),
    )


@click.command(
    epilog="Example:\n\n\b\n  synthrank generate --run runs/med --base-url http://127.0.0.1:8080/v1 \\\n"
    "    --n-queries 3 --max-cost 5"
)
@RUN_OPTION
@click.option(
    "--n-queries", default=3, show_default=True, type=click.IntRange(min=1), help="Queries per passage."
)
@click.option(
    "--keyword-ratio",
    default=0.3,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Share of keyword-style queries (the rest are natural questions).",
)
@click.option(
    "--few-shot", default=3, show_default=True, type=click.IntRange(min=0), help="Few-shot examples."
)
@click.option(
    "--examples",
    "few_shot_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Few-shot example JSONL (document, question[], keywords[]).",
)
@click.option(
    "--prompts",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder of prompt templates replacing the packaged ones.",
)
@click.option("--temperature", default=0.7, show_default=True, type=click.FloatRange(min=0))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option(
    "--one-call/--call-per-style",
    default=False,
    show_default=True,
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
@click.option("--min-words", default=3, show_default=True, type=click.IntRange(min=1))
@click.option("--max-words", default=64, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--copy-ngram",
    default=4,
    show_default=True,
    type=click.IntRange(min=1),
    help="Word n-gram length used to detect queries copied from the passage.",
)
@click.option(
    "--copy-overlap",
    default=0.8,
    show_default=True,
    type=click.FloatRange(0, 1, min_open=True),
    help="Share of a query's words inside shared n-grams that marks it as copied.",
)
@click.option(
    "--near-duplicate-threshold", default=0.8, show_default=True, type=click.FloatRange(0, 1, min_open=True)
)
@stage_command
def filter_queries(run_dir: Path, **kw: Any) -> dict[str, Any]:
    """Drop empty, short, long, copied, badly formatted and duplicate queries: RUN/queries.jsonl."""
    from synthrank.stages.filter import FilterConfig, run_filter

    return run_filter(RunLayout(run_dir), FilterConfig(**kw))


@click.command(epilog="Example:\n\n\b\n  synthrank judge --run runs/med --top-m 20 --max-cost 5")
@RUN_OPTION
@click.option(
    "--top-m",
    default=20,
    show_default=True,
    type=click.IntRange(min=0),
    help="Candidates judged per query besides its source passage.",
)
@click.option(
    "--logprobs/--no-logprobs",
    default=True,
    show_default=True,
    help="Ask for grade-token logprobs to record an expected grade.",
)
@click.option("--few-shot", default=4, show_default=True, type=click.IntRange(min=0), help="Graded examples.")
@click.option(
    "--examples",
    "few_shot_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Graded example JSONL (query, passage, grade).",
)
@click.option(
    "--prompts",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder of prompt templates replacing the packaged ones.",
)
@click.option(
    "--mode",
    type=click.Choice(["pointwise", "listwise"]),
    default="pointwise",
    show_default=True,
    help="One call per pair, or one JSON-schema-constrained call per list of a query's passages.",
)
@click.option(
    "--list-size",
    default=10,
    show_default=True,
    type=click.IntRange(min=1),
    help="Passages per listwise call.",
)
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
@click.option(
    "--ambiguous-first", is_flag=True, help="Judge the pairs nearest the source passage's cosine first."
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
@click.option(
    "--model",
    default="smollm2",
    show_default=True,
    help="smollm2 (SmolLM2-135M, fast), qwen0.5b (Qwen2.5-Coder-0.5B) or a path to a .gguf file.",
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option(
    "--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="0 = any free port."
)
@click.option("--threads", default=2, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--ctx", default=4096, show_default=True, type=click.IntRange(min=256), help="Context size (tokens)."
)
@click.option(
    "--parallel",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Sequences decoded together; the context is split between them.",
)
@click.option("--verbose", is_flag=True, help="Show llama.cpp's log.")
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


COMMANDS: list[click.Command] = [generate, filter_queries, judge, serve_llm]
