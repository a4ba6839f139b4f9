"""Click commands of the corpus, retrieval and mining stages: ingest, sample, embed, index, retrieve, mine."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from synthrank.cli.common import RUN_OPTION, config_option, stage_command
from synthrank.records import RunLayout

# the config dataclass of each stage, whose defaults are the options' defaults
INGEST = "synthrank.stages.ingest:IngestConfig"
SAMPLE = "synthrank.stages.sample:SampleConfig"
EMBED = "synthrank.stages.retrieve:EmbedConfig"
INDEX = "synthrank.stages.retrieve:IndexConfig"
RETRIEVE = "synthrank.stages.retrieve:RetrieveConfig"
MINE = "synthrank.stages.mine:MineConfig"


def seed_option(config: str) -> Callable[[Callable[..., Any]], Any]:
    return config_option(config, "--seed", type=int, help="Seed of every random choice.")


@click.command(
    epilog="Examples:\n\n\b\n"
    "  synthrank ingest ../shared/data/medquad-xml.tar.gz --run runs/med --heldout-fraction 0.1\n"
    "  synthrank ingest corpus.jsonl --run runs/mine --id-field doc_id --text-field body --on-error skip"
)
@click.argument("source", type=click.Path(path_type=Path))
@RUN_OPTION
@config_option(
    INGEST,
    "--format",
    "fmt",
    field="format",
    type=click.Choice(["auto", "jsonl", "csv", "tsv", "parquet", "text", "beir", "medquad"]),
)
@config_option(INGEST, "--id-field")
@config_option(INGEST, "--text-field")
@config_option(INGEST, "--title-field")
@click.option("--meta-field", "meta_fields", multiple=True, help="Extra field kept in meta (repeatable).")
@config_option(INGEST, "--tokenizer", help="Reranker whose tokens budget passages.")
@config_option(INGEST, "--max-length", type=click.IntRange(min=16), help="Reranker max_length.")
@config_option(INGEST, "--query-budget", type=click.IntRange(min=0))
@config_option(INGEST, "--overlap", type=click.IntRange(min=0), help="Tokens shared by chunks.")
@config_option(INGEST, "--near-dup-threshold", type=click.FloatRange(0, 1, min_open=True))
@config_option(INGEST, "--heldout-fraction", type=click.FloatRange(0, 1, max_open=True))
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
@config_option(INGEST, "--on-error", type=click.Choice(["raise", "skip"]))
@seed_option(INGEST)
@stage_command
def ingest(source: Path, run_dir: Path, fmt: str, **kw: Any) -> dict[str, Any]:
    """Read a corpus (JSONL, CSV/TSV, Parquet, .txt/.md folder, BEIR, MedQuAD); chunk, dedupe, split."""
    from synthrank.stages.ingest import IngestConfig, run_ingest

    kw["meta_fields"] = tuple(kw["meta_fields"])
    if not kw["tokenizer"]:
        del kw["tokenizer"]  # `--tokenizer ""`: the default
    return run_ingest(RunLayout(run_dir), IngestConfig(format=fmt, **kw), source)  # type: ignore[arg-type]


@click.command(epilog="Example:\n\n\b\n  synthrank sample --run runs/med -n 2000 --stratify-by qtype")
@RUN_OPTION
@config_option(SAMPLE, "-n", "--num-passages", type=click.IntRange(min=1))
@click.option("--stratify-by", default=None, help="Meta key for equal quotas per value (default: uniform).")
@config_option(SAMPLE, "--min-tokens", type=click.IntRange(min=0))
@click.option("--max-tokens", default=None, type=click.IntRange(min=1))
@click.option(
    "--all-near-duplicates", is_flag=True, help="Allow several passages of one near-duplicate cluster."
)
@seed_option(SAMPLE)
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
        config_option(EMBED, "--model", help="sentence-transformers model: hub name or local path."),
        config_option(EMBED, "--batch-size", type=click.IntRange(min=1)),
        click.option(
            "--device", "devices", multiple=True, help="cpu, cuda, cuda:1 ...; repeat for a multi-GPU pool."
        ),
        click.option("--no-fp16", is_flag=True, help="Keep float32 on GPU."),
        config_option(EMBED, "--query-prompt", help='Prefix for queries, e.g. "query: " for E5.'),
        config_option(EMBED, "--passage-prompt", help='Prefix for passages, e.g. "passage: ".'),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def build_embed_config(kw: dict[str, Any]) -> Any:
    from synthrank.stages.retrieve import EmbedConfig

    devices = tuple(kw.pop("devices"))
    return EmbedConfig(
        model=kw.pop("model") or EmbedConfig.model,
        batch_size=kw.pop("batch_size"),
        device=devices[0] if len(devices) == 1 else None,
        devices=devices if len(devices) > 1 else (),
        fp16=not kw.pop("no_fp16"),
        query_prompt=kw.pop("query_prompt"),
        passage_prompt=kw.pop("passage_prompt"),
    )


def index_options(command: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        config_option(INDEX, "--metric", type=click.Choice(["cos", "ip", "l2sq"])),
        config_option(INDEX, "--dtype", type=click.Choice(["f32", "f16", "i8"])),
        config_option(INDEX, "--connectivity", type=click.IntRange(min=2)),
        config_option(INDEX, "--expansion-add", type=click.IntRange(min=1)),
        config_option(INDEX, "--expansion-search", type=click.IntRange(min=1)),
        config_option(INDEX, "--threads", type=click.IntRange(min=0), help="0 = all cores."),
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
@config_option(RETRIEVE, "-k", type=click.IntRange(min=1), help="Candidates per query.")
@click.option(
    "--exact/--ann", default=None, help="Force exact or ANN search (default: exact for small corpora)."
)
@config_option(RETRIEVE, "--exact-below", type=click.IntRange(min=0))
@config_option(RETRIEVE, "--recall-sample", type=click.IntRange(min=0))
@embed_options
@index_options
@seed_option(RETRIEVE)
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
@config_option(MINE, "--positive-min-grade", type=click.IntRange(1, 3))
@config_option(
    MINE,
    "--negative-max-grade",
    type=click.IntRange(0, 2),
    help="Highest grade a negative may have (1 also takes on-topic passages that do not answer).",
)
@config_option(MINE, "--max-positives", type=click.IntRange(min=1))
@config_option(MINE, "--num-negatives", type=click.IntRange(min=1))
@click.option("--min-negatives", default=None, type=click.IntRange(min=0), help="Default: --num-negatives.")
@config_option(MINE, "--range-min", type=click.IntRange(min=0))
@click.option("--range-max", default=None, type=click.IntRange(min=1))
@click.option("--absolute-margin", default=None, type=float)
@click.option("--relative-margin", default=None, type=click.FloatRange(0, 1, max_open=True))
@click.option("--max-score", default=None, type=float)
@config_option(MINE, "--sampling", type=click.Choice(["top", "random"]))
@config_option(
    MINE, "--allow-unjudged", is_flag=True, help="Use unjudged candidates as (flagged) easier negatives."
)
@config_option(MINE, "--dev-fraction", type=click.FloatRange(0, 1, max_open=True))
@config_option(
    MINE,
    "--adapt",
    type=click.Choice(["auto", "off"]),
    help="auto: the weak-judge recipe when the judge (almost) never grades <= --negative-max-grade.",
)
@seed_option(MINE)
@stage_command
def mine(run_dir: Path, **kw: Any) -> dict[str, Any]:
    """Positives and hard negatives from the judge's grades -> training groups, HF dataset, dev set."""
    from synthrank.console import table_console
    from synthrank.stages.mine import MineConfig, run_mine, stats_table

    stats = run_mine(RunLayout(run_dir), MineConfig(**kw))
    table_console(stderr=True).print(stats_table(stats))
    return stats


COMMANDS: list[click.Command] = [ingest, sample, embed, index, retrieve, mine]
