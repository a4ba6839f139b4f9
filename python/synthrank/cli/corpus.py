"""Click commands of the corpus, retrieval and mining stages: ingest, sample, embed, index, retrieve, mine."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from synthrank.cli.common import RUN_OPTION, stage_command
from synthrank.records import RunLayout

SEED_OPTION = click.option(
    "--seed", default=0, show_default=True, type=int, help="Seed of every random choice."
)


@click.command(
    epilog="Examples:\n\n\b\n"
    "  synthrank ingest ../shared/data/medquad-xml.tar.gz --run runs/med --heldout-fraction 0.1\n"
    "  synthrank ingest corpus.jsonl --run runs/mine --id-field doc_id --text-field body --on-error skip"
)
@click.argument("source", type=click.Path(path_type=Path))
@RUN_OPTION
@click.option(
    "--format",
    "fmt",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "jsonl", "csv", "tsv", "parquet", "text", "beir", "medquad"]),
)
@click.option("--id-field", default="id", show_default=True)
@click.option("--text-field", default="text", show_default=True)
@click.option("--title-field", default="title", show_default=True)
@click.option("--meta-field", "meta_fields", multiple=True, help="Extra field kept in meta (repeatable).")
@click.option("--tokenizer", default=None, help="Reranker whose tokens budget passages (default MiniLM).")
@click.option(
    "--max-length", default=320, show_default=True, type=click.IntRange(min=16), help="Reranker max_length."
)
@click.option("--query-budget", default=64, show_default=True, type=click.IntRange(min=0))
@click.option(
    "--overlap", default=32, show_default=True, type=click.IntRange(min=0), help="Tokens shared by chunks."
)
@click.option(
    "--near-dup-threshold", default=0.8, show_default=True, type=click.FloatRange(0, 1, min_open=True)
)
@click.option(
    "--heldout-fraction", default=0.1, show_default=True, type=click.FloatRange(0, 1, max_open=True)
)
@click.option(
    "--heldout-group",
    default=None,
    help="Meta key grouping documents for the held-out split (default: focus for MedQuAD, else none).",
)
@click.option(
    "--exclude-docs",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File of document ids (one per line) never used for generation, mining or training.",
)
@click.option("--on-error", default="raise", show_default=True, type=click.Choice(["raise", "skip"]))
@SEED_OPTION
@stage_command
def ingest(source: Path, run_dir: Path, fmt: str, **kw: Any) -> dict[str, Any]:
    """Read a corpus (JSONL, CSV/TSV, Parquet, .txt/.md folder, BEIR, MedQuAD); chunk, dedupe, split."""
    from synthrank.models import DEFAULT_RERANKER_START
    from synthrank.stages.ingest import IngestConfig, run_ingest

    kw["meta_fields"] = tuple(kw["meta_fields"])
    kw["tokenizer"] = kw["tokenizer"] or DEFAULT_RERANKER_START
    return run_ingest(RunLayout(run_dir), IngestConfig(format=fmt, **kw), source)  # type: ignore[arg-type]


@click.command(epilog="Example:\n\n\b\n  synthrank sample --run runs/med -n 2000 --stratify-by qtype")
@RUN_OPTION
@click.option("-n", "--num-passages", default=1000, show_default=True, type=click.IntRange(min=1))
@click.option("--stratify-by", default=None, help="Meta key for equal quotas per value (default: uniform).")
@click.option("--min-tokens", default=16, show_default=True, type=click.IntRange(min=0))
@click.option("--max-tokens", default=None, type=click.IntRange(min=1))
@click.option(
    "--all-near-duplicates", is_flag=True, help="Allow several passages of one near-duplicate cluster."
)
@SEED_OPTION
@stage_command
def sample(run_dir: Path, stratify_by: str | None, all_near_duplicates: bool, **kw: Any) -> dict[str, Any]:
    """Pick the passages the LLM writes queries for (never held-out or excluded documents)."""
    from synthrank.stages.sample import SampleConfig, run_sample

    cfg = SampleConfig(
        strategy="stratified" if stratify_by else "uniform",
        stratify_by=stratify_by,
        one_per_cluster=not all_near_duplicates,
        **kw,
    )
    return run_sample(RunLayout(run_dir), cfg)


def embed_options(command: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--model", default=None, help="sentence-transformers model: hub name or local path."),
        click.option("--batch-size", default=64, show_default=True, type=click.IntRange(min=1)),
        click.option(
            "--device", "devices", multiple=True, help="cpu, cuda, cuda:1 ...; repeat for a multi-GPU pool."
        ),
        click.option("--no-fp16", is_flag=True, help="Keep float32 on GPU."),
        click.option("--query-prompt", default="", help='Prefix for queries, e.g. "query: " for E5.'),
        click.option("--passage-prompt", default="", help='Prefix for passages, e.g. "passage: ".'),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def build_embed_config(kw: dict[str, Any]) -> Any:
    from synthrank.models import DEFAULT_EMBEDDER
    from synthrank.stages.retrieve import EmbedConfig

    devices = tuple(kw.pop("devices"))
    return EmbedConfig(
        model=kw.pop("model") or DEFAULT_EMBEDDER,
        batch_size=kw.pop("batch_size"),
        device=devices[0] if len(devices) == 1 else None,
        devices=devices if len(devices) > 1 else (),
        fp16=not kw.pop("no_fp16"),
        query_prompt=kw.pop("query_prompt"),
        passage_prompt=kw.pop("passage_prompt"),
    )


def index_options(command: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--metric", default="cos", show_default=True, type=click.Choice(["cos", "ip", "l2sq"])),
        click.option("--dtype", default="f32", show_default=True, type=click.Choice(["f32", "f16", "i8"])),
        click.option("--connectivity", default=16, show_default=True, type=click.IntRange(min=2)),
        click.option("--expansion-add", default=128, show_default=True, type=click.IntRange(min=1)),
        click.option("--expansion-search", default=128, show_default=True, type=click.IntRange(min=1)),
        click.option(
            "--threads", default=0, show_default=True, type=click.IntRange(min=0), help="0 = all cores."
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def build_index_config(kw: dict[str, Any]) -> Any:
    from synthrank.stages.retrieve import IndexConfig

    names = ("metric", "dtype", "connectivity", "expansion_add", "expansion_search", "threads")
    return IndexConfig(**{name: kw.pop(name) for name in names})


@click.command(epilog="Example:\n\n\b\n  synthrank embed --run runs/med --device cuda --batch-size 256")
@RUN_OPTION
@embed_options
@stage_command
def embed(run_dir: Path, **kw: Any) -> dict[str, Any]:
    """Embed passages (and queries, once written) with a bi-encoder; cached and reused on re-runs."""
    from synthrank.stages.retrieve import run_embed

    return run_embed(RunLayout(run_dir), build_embed_config(kw))


@click.command(epilog="Example:\n\n\b\n  synthrank index --run runs/med --dtype f16 --connectivity 32")
@RUN_OPTION
@index_options
@stage_command
def index(run_dir: Path, **kw: Any) -> dict[str, Any]:
    """Build the usearch index over the trainable passages' embeddings."""
    from synthrank.stages.retrieve import run_index

    return run_index(RunLayout(run_dir), build_index_config(kw))


@click.command(epilog="Example:\n\n\b\n  synthrank retrieve --run runs/med -k 100 --dtype f16")
@RUN_OPTION
@click.option("-k", default=100, show_default=True, type=click.IntRange(min=1), help="Candidates per query.")
@click.option(
    "--exact/--ann", default=None, help="Force exact or ANN search (default: exact for small corpora)."
)
@click.option("--exact-below", default=20_000, show_default=True, type=click.IntRange(min=0))
@click.option("--recall-sample", default=200, show_default=True, type=click.IntRange(min=0))
@embed_options
@index_options
@SEED_OPTION
@stage_command
def retrieve(
    run_dir: Path, k: int, exact: bool | None, exact_below: int, recall_sample: int, seed: int, **kw: Any
) -> dict[str, Any]:
    """Top-k candidate passages per query (embeds and indexes what is missing first)."""
    from synthrank.stages.retrieve import RetrieveConfig, run_retrieve

    index_cfg = build_index_config(kw)
    cfg = RetrieveConfig(
        k=k,
        exact=exact,
        exact_below=exact_below,
        recall_sample=recall_sample,
        threads=index_cfg.threads,
        seed=seed,
    )
    counts = run_retrieve(RunLayout(run_dir), cfg, build_embed_config(kw), index_cfg)
    if "ann_recall_at_k" in counts:
        click.echo(f"ANN recall@{k} vs exact search: {counts['ann_recall_at_k']:.4f}", err=True)
    return counts


@click.command(
    epilog="Example:\n\n\b\n"
    "  synthrank mine --run runs/med --num-negatives 7 --relative-margin 0.05 --allow-unjudged"
)
@RUN_OPTION
@click.option("--positive-min-grade", default=2, show_default=True, type=click.IntRange(1, 3))
@click.option(
    "--negative-max-grade",
    default=0,
    show_default=True,
    type=click.IntRange(0, 2),
    help="Highest grade a negative may have (1 also takes on-topic passages that do not answer).",
)
@click.option("--max-positives", default=3, show_default=True, type=click.IntRange(min=1))
@click.option("--num-negatives", default=7, show_default=True, type=click.IntRange(min=1))
@click.option("--min-negatives", default=None, type=click.IntRange(min=0), help="Default: --num-negatives.")
@click.option("--range-min", default=0, show_default=True, type=click.IntRange(min=0))
@click.option("--range-max", default=None, type=click.IntRange(min=1))
@click.option("--absolute-margin", default=None, type=float)
@click.option("--relative-margin", default=None, type=click.FloatRange(0, 1, max_open=True))
@click.option("--max-score", default=None, type=float)
@click.option("--sampling", default="top", show_default=True, type=click.Choice(["top", "random"]))
@click.option("--allow-unjudged", is_flag=True, help="Use unjudged candidates as (flagged) easier negatives.")
@click.option("--dev-fraction", default=0.05, show_default=True, type=click.FloatRange(0, 1, max_open=True))
@click.option("--backend", default=None, type=click.Choice(["native", "python"]))
@click.option(
    "--adapt",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "off"]),
    help="auto: the weak-judge recipe when the judge (almost) never grades <= --negative-max-grade.",
)
@SEED_OPTION
@stage_command
def mine(run_dir: Path, **kw: Any) -> dict[str, Any]:
    """Positives and hard negatives from the judge's grades -> training groups, HF dataset, dev set."""
    from rich.console import Console

    from synthrank.stages.mine import MineConfig, run_mine, stats_table

    stats = run_mine(RunLayout(run_dir), MineConfig(**kw))
    Console(stderr=True).print(stats_table(stats))
    return stats


COMMANDS: list[click.Command] = [ingest, sample, embed, index, retrieve, mine]
