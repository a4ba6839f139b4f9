"""Click commands of the training and evaluation stages: `train` and `evaluate`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import click

from synthrank.cli.common import BadInputError, config_option, report_outcome, run_folder_argument
from synthrank.records import RunLayout

DISTILL = "synthrank.stages.distill:DistillConfig"
TRAIN = "synthrank.stages.train.trainer:TrainConfig"
EVALUATE = "synthrank.stages.evaluate.evaluator:EvalConfig"


def distill_option(*decls: str, **attrs: Any) -> Any:
    """An option of `distill`: None when not given (then the run's config decides)."""
    return config_option(DISTILL, *decls, from_config=True, **attrs)


def train_option(*decls: str, **attrs: Any) -> Any:
    """An option of `train`: None when not given (then the run's config decides)."""
    return config_option(TRAIN, *decls, from_config=True, **attrs)


def evaluate_option(*decls: str, **attrs: Any) -> Any:
    """An option of `evaluate`: None when not given (then EvalConfig decides)."""
    return config_option(EVALUATE, *decls, from_config=True, **attrs)


class FuseWeight(click.ParamType):
    """A fusion weight in [0, 1], or "auto"."""

    name = "W|auto"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float | str:
        if value == "auto" or isinstance(value, float):
            return value  # type: ignore[no-any-return]
        try:
            weight = float(value)
        except ValueError:
            self.fail(f"{value!r} is neither a number in [0, 1] nor auto", param, ctx)
        if not 0.0 <= weight <= 1.0:
            self.fail(f"{weight:g} is not in [0, 1]", param, ctx)
        return weight


def _run_stage(stage: Any, *args: Any, lock: Path | None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    report_outcome(stage, *args, lock=lock)


@click.command(
    epilog="Examples:\n\n\b\n"
    "  synthrank distill --run runs/med\n"
    "  synthrank distill --run runs/med --pseudo-queries 8000 --epochs 2\n"
    "  synthrank distill --run runs/med --teacher path/to/a/cross-encoder"
)
@run_folder_argument
@distill_option(
    "--enabled", type=click.Choice(["auto", "on", "off"]), help="auto: on unless the start is a reranker."
)
@distill_option("--teacher", help="Teacher model ('' = the run's bi-encoder and its embeddings).")
@distill_option("--pseudo-queries", type=int, help="Sentences cut from training passages.")
@distill_option("--list-size", type=int, help="Candidates per query.")
@distill_option("--random-candidates", type=int, help="Of those, random passages.")
@distill_option("--temperature", type=float, help="Teacher softmax temperature.")
@distill_option("--batch-size", type=int, help="Queries per micro-batch.")
@distill_option("--epochs", type=int)
@distill_option("--max-steps", type=int, help="Optimizer steps; overrides --epochs (0: epochs x steps).")
@distill_option("--learning-rate", "--lr", "learning_rate", type=float)
@distill_option("--head-learning-rate", type=float)
@distill_option("--max-length", type=int, help="Tokens of query + passage.")
def distill(run_dir: Path, **options: Any) -> None:
    """Warm start: teach the start model the bi-encoder's ranking (no LLM) into RUN/warm_start.

    `synthrank train` then starts from it. Options not given here come from the run's config.
    """
    import dataclasses

    from synthrank.run.pipeline import load_run_config, run_one_stage
    from synthrank.run.settings import PipelineConfig, RunConfig

    def stage() -> dict[str, Any]:
        given = {k: v for k, v in options.items() if v is not None}
        config = load_run_config(run_dir) or PipelineConfig(run=RunConfig(dir=run_dir))
        try:
            cfg = dataclasses.replace(config.distill, **given)
        except ValueError as exc:
            raise BadInputError(str(exc)) from None
        return run_one_stage("distill", config.with_changes(distill=cfg)).counts

    _run_stage(stage, lock=run_dir)


@click.command(
    epilog="Examples:\n\n\b\n"
    "  synthrank train runs/med\n"
    "  synthrank train runs/med --model cross-encoder/ms-marco-MiniLM-L-6-v2 --epochs 2 --group-size 16\n"
    "  synthrank train runs/med --loss bce --negatives random --positives source --output runs/med/naive\n"
    "  torchrun --nproc_per_node 4 $(which synthrank) train runs/med"
)
@run_folder_argument
@train_option("--model", help="Start point: local path or hub name (a bi-encoder gets a new relevance head).")
@click.option("--output", type=click.Path(file_okay=False), help="Where the model goes. [default: RUN/model]")
@train_option(
    "--loss", type=click.Choice(["lce", "bce"]), help="lce: softmax over the group; bce: pointwise."
)
@train_option("--group-size", type=int, help="1 positive + N-1 negatives per query.")
@train_option("--batch-size", type=int, help="Groups per device per micro-batch.")
@train_option("--grad-accumulation", type=int)
@train_option("--epochs", type=int)
@train_option("--max-steps", type=int, help="Optimizer steps; overrides --epochs (0: epochs x steps).")
@train_option("--learning-rate", "--lr", "learning_rate", type=float)
@train_option("--head-learning-rate", type=float, help="Learning rate of the new head (0 = --lr).")
@train_option("--max-length", type=int, help="Tokens of query + passage.")
@train_option("--max-query-tokens", type=int, help="Longer queries are cut to this.")
@train_option("--negatives", type=click.Choice(["hard", "random"]))
@train_option("--positives", type=click.Choice(["judged", "source"]))
@train_option("--random-negative-share", type=float)
@train_option("--too-few-negatives", type=click.Choice(["pad", "drop"]))
@train_option(
    "--distill-weight",
    type=float,
    help="Add this x KL to the bi-encoder's scores of each group (0 = LCE only).",
)
@train_option("--precision", type=click.Choice(["auto", "bf16", "fp16", "fp32"]))
@train_option("--compile/--no-compile", "compile_", field="compile", help="torch.compile the model.")
@train_option("--device", help="auto, cpu, cuda, cuda:1, mps.")
@train_option("--cpu-threads", type=int, help="Torch threads on CPU (0 = cores / local processes).")
@train_option(
    "--max-forward-pairs",
    type=int,
    help="Pairs per forward/backward pass (whole groups): the same gradients in less memory; "
    "0 = 32 on CPU, all on GPU.",
)
@train_option("--checkpoint-every", type=int, help="Optimizer steps between checkpoints.")
@train_option("--eval-every", type=int, help="Optimizer steps between dev evaluations (0 = per epoch).")
@train_option("--early-stopping-patience", type=int)
@train_option("--seed", type=int)
@click.option("--no-resume", is_flag=True, help="Ignore existing checkpoints.")
@train_option("--warm-start/--no-warm-start", help="Start from RUN/warm_start when distill made it.")
def train(run_dir: Path, no_resume: bool, compile_: bool | None, **options: Any) -> None:
    """Fine-tune a cross-encoder on RUN/train_groups.jsonl (best dev nDCG@10 kept) into RUN/model.

    Options not given here come from the run's config (saved by `synthrank run`), else the defaults.
    A retrain into RUN/model is recorded in the run's manifests: `status` and the next `synthrank
    run` see it and re-run evaluate and report.
    """
    import dataclasses
    import os

    from synthrank.run.pipeline import load_run_config, run_one_stage
    from synthrank.run.settings import PipelineConfig, RunConfig
    from synthrank.stages.train.trainer import TrainConfig, run_train

    def stage() -> dict[str, Any]:
        given = {k: v for k, v in options.items() if v is not None}
        if compile_ is not None:
            given["compile"] = compile_
        if no_resume:
            given["resume"] = False
        saved = load_run_config(run_dir)
        try:
            cfg = dataclasses.replace(saved.train if saved else TrainConfig(), **given)
        except ValueError as exc:
            raise BadInputError(str(exc)) from None
        layout = RunLayout(run_dir)
        into_run_model = not cfg.output or Path(cfg.output).resolve() == layout.model.resolve()
        # under torchrun only rank 0 records the stage; a model trained elsewhere is not the run's
        if not into_run_model or int(os.environ.get("RANK", "0")) != 0:
            return run_train(layout, cfg)
        config = (saved or PipelineConfig(run=RunConfig(dir=run_dir))).with_changes(train=cfg)
        return run_one_stage("train", config).counts

    _run_stage(stage, lock=run_dir)


@click.command(
    epilog="Examples:\n\n\b\n"
    "  synthrank evaluate runs/med\n"
    "  synthrank evaluate runs/med --model base=cross-encoder/ms-marco-MiniLM-L-6-v2 "
    "--model ours=runs/med/model\n"
    "  synthrank evaluate runs/med --model naive=runs/med/naive --model ours=runs/med/model "
    "--dataset indomain --dataset trec-dl-19\n"
    "  synthrank evaluate runs/med --dataset path/to/beir/scifact --no-bi-encoder\n"
    "  synthrank evaluate runs/med --fuse 0.3 --fuse 0.5\n"
    "  synthrank evaluate runs/med --fuse auto\n"
    "  synthrank evaluate runs/med --dataset dev --model short=runs/med/short --model long=runs/med/model"
)
@run_folder_argument
@click.option(
    "--model",
    "models",
    multiple=True,
    help="Cross-encoder to compare, LABEL=PATH or PATH; repeat. The last is tested against all others. "
    "[default: ours=RUN/model]",
)
@click.option(
    "--dataset",
    "datasets",
    multiple=True,
    help="indomain, dev (the run's synthetic dev set: compare settings there, never on test "
    "questions), trec-dl-19 or a BEIR folder; repeat. [default: indomain]",
)
@evaluate_option(
    "--bi-encoder",
    help="Bi-encoder row (cosine rerank): embed = the run's [embed] model with its prompts; or a model.",
)
@click.option("--no-bi-encoder", is_flag=True, help="Leave the bi-encoder row out.")
@click.option(
    "--fuse",
    "fuse_weights",
    type=FuseWeight(),
    multiple=True,
    help="Also rank by W*z(cross-encoder) + (1-W)*z(bi-encoder) per query; repeat for several W. "
    "auto: the W in 0, 0.1, ..., 1 best on the run's synthetic dev set (RUN/dev), one per model. "
    "[default: [evaluate] fuse_weights, auto]",
)
@click.option("--no-fuse", is_flag=True, help="No fused rows: each model is ranked alone.")
@evaluate_option("--top-k", type=int, help="First-stage candidates reranked per query.")
@evaluate_option("--max-length", type=int, help="Tokens of query + passage.")
@evaluate_option("--indomain-max-queries", type=int, help="Sample this many held-out questions (0 = all).")
@evaluate_option("--trec-dl-archive", type=click.Path(dir_okay=False), help="Path of trec-dl-19.tar.gz.")
@click.option("--output", type=click.Path(file_okay=False), help="Report folder. [default: RUN/eval]")
@evaluate_option("--device", help="auto, cpu, cuda, mps.")
@evaluate_option(
    "--precision",
    type=click.Choice(["auto", "bf16", "fp16", "fp32"]),
    help="auto: bf16 on GPU, fp32 on CPU; bf16 also speeds up CPUs with AVX512-BF16/AMX.",
)
def evaluate(
    run_dir: Path,
    models: tuple[str, ...],
    datasets: tuple[str, ...],
    fuse_weights: tuple[float | str, ...],
    no_fuse: bool,
    no_bi_encoder: bool,
    **options: Any,
) -> None:
    """Rerank the same top-100 lists with BM25, the bi-encoder and each model; report to RUN/eval."""
    from synthrank.stages.evaluate.evaluator import EvalConfig, run_evaluate

    def stage() -> dict[str, Any]:
        given = {k: v for k, v in options.items() if v is not None}
        if models:
            given["models"] = list(models)
        if datasets:
            given["datasets"] = list(datasets)
        if no_fuse and fuse_weights:
            raise BadInputError("--no-fuse and --fuse: give one of them")
        if no_fuse:
            given["fuse_weights"] = []
        elif "auto" in fuse_weights:
            if len(fuse_weights) > 1:
                raise BadInputError("--fuse auto picks one weight per model: give it alone")
            given["fuse_weights"] = "auto"
        elif fuse_weights:
            given["fuse_weights"] = list(fuse_weights)
        if no_bi_encoder:
            given["bi_encoder"] = ""
        return run_evaluate(RunLayout(run_dir), EvalConfig(**given))

    # a report written elsewhere only reads the run: no lock, so it can run beside a writer
    _run_stage(stage, lock=run_dir if options.get("output") is None else None)


COMMANDS: list[click.Command] = [distill, train, evaluate]
