"""The whole method as one resumable run: corpus → queries → candidates → labels → groups → model → report.

Each stage reads and writes the run folder (`RunLayout`) and leaves a manifest. A stage is skipped
when its manifest says `done` under the fingerprint the current config gives it: that fingerprint
covers the stage's own config sections and the fingerprint of the stage before it, so a changed
setting re-runs that stage and everything downstream, and nothing upstream. Stages resume their own
partial work (the LLM cache, append-only JSONL, training checkpoints), so an interrupted run loses
nothing already finished.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthrank.config import fingerprint
from synthrank.errors import BudgetExceededError, SynthrankError
from synthrank.manifest import Manifest, output_sizes, outputs_intact, read_manifest, write_manifest
from synthrank.records import RunLayout
from synthrank.settings import PipelineConfig

log = logging.getLogger(__name__)


# Stage adapters: each calls one stage's own entry point with its section of the config. Heavy
# modules (torch, sentence-transformers) are imported inside, so `synthrank status` stays fast.


def _ingest(layout: RunLayout, c: PipelineConfig) -> dict[str, Any]:
    from synthrank.corpus.ingest import run_ingest

    assert c.corpus.path is not None  # checked by settings.check_inputs before the run starts
    return run_ingest(layout, c.corpus, c.corpus.path)


def _sample(layout: RunLayout, c: PipelineConfig) -> dict[str, Any]:
    from synthrank.sample import run_sample

    return run_sample(layout, c.sample)


def _generate(layout: RunLayout, c: PipelineConfig) -> dict[str, Any]:
    from synthrank.llm.generate import run_generate

    return run_generate(layout, c.generate, c.llm)


def _filter(layout: RunLayout, c: PipelineConfig) -> dict[str, Any]:
    from synthrank.llm.query_filter import run_filter

    return run_filter(layout, c.filter)


def _embed(layout: RunLayout, c: PipelineConfig) -> dict[str, Any]:
    from synthrank.retrieval import run_embed

    return run_embed(layout, c.embed)


def _index(layout: RunLayout, c: PipelineConfig) -> dict[str, Any]:
    from synthrank.retrieval import run_index

    return run_index(layout, c.index)


def _retrieve(layout: RunLayout, c: PipelineConfig) -> dict[str, Any]:
    from synthrank.retrieval import run_retrieve

    return run_retrieve(layout, c.retrieve, c.embed, c.index)


def _judge(layout: RunLayout, c: PipelineConfig) -> dict[str, Any]:
    from synthrank.llm.judge import run_judge

    return run_judge(layout, c.judge, c.llm)


def _mine(layout: RunLayout, c: PipelineConfig) -> dict[str, Any]:
    from synthrank.mining import run_mine

    return run_mine(layout, c.mine)


def _train(layout: RunLayout, c: PipelineConfig) -> dict[str, Any]:
    from synthrank.training.trainer import run_train

    return run_train(layout, c.train)


def _evaluate(layout: RunLayout, c: PipelineConfig) -> dict[str, Any]:
    from synthrank.evaluation.evaluator import run_evaluate

    return run_evaluate(layout, c.evaluate)


def _report(layout: RunLayout, c: PipelineConfig) -> dict[str, Any]:
    from synthrank.run_report import write_run_report

    return write_run_report(layout, STAGE_NAMES)


@dataclass(frozen=True)
class Stage:
    name: str
    sections: tuple[str, ...]  # config sections that define what the stage produces
    run: Callable[[RunLayout, PipelineConfig], dict[str, Any]]
    outputs: Callable[[RunLayout], list[Path]]
    summary: str


STAGES: tuple[Stage, ...] = (
    Stage(
        "ingest",
        ("corpus",),
        _ingest,
        lambda r: [r.passages, r.passage_arrays, r.split],
        "read, chunk and deduplicate the corpus",
    ),
    Stage("sample", ("sample",), _sample, lambda r: [r.sampled_ids], "pick the passages that get queries"),
    Stage(
        "generate",
        ("llm.model", "generate"),
        _generate,
        lambda r: [r.raw_queries],
        "LLM writes queries (cached, resumable)",
    ),
    Stage("filter", ("filter",), _filter, lambda r: [r.queries], "drop empty, copied and duplicate queries"),
    Stage("embed", ("embed",), _embed, lambda r: [r.embeddings], "bi-encoder embeddings"),
    Stage("index", ("index",), _index, lambda r: [r.index], "usearch ANN index over the passages"),
    Stage("retrieve", ("retrieve",), _retrieve, lambda r: [r.candidates], "top-k candidates per query"),
    Stage(
        "judge",
        ("llm.model", "judge"),
        _judge,
        lambda r: [r.judgments],
        "LLM grades query-candidate pairs (cached, resumable)",
    ),
    Stage(
        "mine",
        ("mine",),
        _mine,
        lambda r: [r.train_groups, r.mining_stats, r.dev],
        "positives and hard negatives",
    ),
    Stage("train", ("train",), _train, lambda r: [r.model], "fine-tune the cross-encoder (LCE)"),
    Stage("evaluate", ("evaluate",), _evaluate, lambda r: [r.eval], "base vs fine-tuned, held-out sets"),
    Stage(
        "report",
        (),
        _report,
        lambda r: [r.root / "report.md", r.root / "report.html"],
        "report.md and report.html",
    ),
)
STAGE_NAMES = tuple(s.name for s in STAGES)


def stage_fingerprints(config: PipelineConfig) -> dict[str, str]:
    """Each stage's fingerprint: its config sections chained onto the previous stage's fingerprint."""
    prints: dict[str, str] = {}
    previous = fingerprint(config.run.seed)
    for stage in STAGES:
        previous = fingerprint(stage.name, previous, [config.section(s) for s in stage.sections])
        prints[stage.name] = previous
    return prints


@dataclass
class StageResult:
    stage: str
    action: str  # "skipped" | "ran" | "partial" | "failed"
    seconds: float
    counts: dict[str, Any]


def plan(
    config: PipelineConfig, *, start: str | None = None, stop: str | None = None, force: bool = False
) -> list[tuple[Stage, bool]]:
    """(stage, will_run) for every stage up to `stop`: finished stages under the same fingerprint
    are skipped unless `force`, or `start` names them or a stage before them."""
    layout = RunLayout(config.run.dir)
    prints = stage_fingerprints(config)
    first = STAGE_NAMES.index(start) if start else len(STAGE_NAMES)
    last = STAGE_NAMES.index(stop) if stop else len(STAGE_NAMES) - 1
    steps = []
    upstream_reran = False
    for index, stage in enumerate(STAGES[: last + 1]):
        previous = read_manifest(layout, stage.name)
        finished = (
            previous is not None
            and previous.status == "done"
            and previous.fingerprint == prints[stage.name]
            and outputs_intact(layout, previous)
        )
        will_run = force or index >= first or not finished or upstream_reran
        upstream_reran = upstream_reran or will_run
        steps.append((stage, will_run))
    return steps


def run_pipeline(
    config: PipelineConfig,
    *,
    start: str | None = None,
    stop: str | None = None,
    force: bool = False,
    on_stage: Callable[[Stage, str], None] | None = None,
) -> list[StageResult]:
    """Run the stages in order, skipping finished ones; returns what happened to each stage.

    A stage that raises keeps a `failed` (or, for a spending cap or Ctrl-C, `partial`) manifest
    and stops the run; the exception propagates with everything finished still on disk. A stage
    that returns `complete: False` (e.g. LLM calls that failed for good) stops the run too.
    """
    layout = RunLayout(config.run.dir)
    layout.root.mkdir(parents=True, exist_ok=True)
    prints = stage_fingerprints(config)
    results: list[StageResult] = []
    for stage, will_run in plan(config, start=start, stop=stop, force=force):
        if not will_run:
            previous = read_manifest(layout, stage.name)
            results.append(StageResult(stage.name, "skipped", 0.0, previous.counts if previous else {}))
            if on_stage:
                on_stage(stage, "skipped")
            continue
        if on_stage:
            on_stage(stage, "running")
        results.append(_run_stage(stage, layout, config, prints[stage.name]))
        if on_stage:
            on_stage(stage, results[-1].action)
        if results[-1].action == "partial":
            break
    return results


def _run_stage(stage: Stage, layout: RunLayout, config: PipelineConfig, stage_print: str) -> StageResult:
    started = time.time()
    log.info("stage %s: %s", stage.name, stage.summary)

    def save(status: str, counts: dict[str, Any], error: str | None = None) -> None:
        finished = time.time()
        write_manifest(
            layout,
            Manifest(
                stage=stage.name,
                status=status,  # type: ignore[arg-type]
                fingerprint=stage_print,
                started=started,
                finished=finished,
                seconds=round(finished - started, 3),
                counts=counts,
                outputs=output_sizes(layout, stage.outputs(layout)),
                error=error,
            ),
        )

    try:
        counts = dict(stage.run(layout, config))
    except BudgetExceededError as exc:
        save("partial", {}, str(exc))
        raise
    except KeyboardInterrupt:
        save("partial", {}, "interrupted")
        raise
    except SynthrankError as exc:
        save("failed", {}, str(exc))
        raise
    except Exception as exc:
        log.debug("stage %s failed:\n%s", stage.name, traceback.format_exc())
        save("failed", {}, f"{type(exc).__name__}: {exc}")
        raise
    complete = counts.pop("complete", True)
    save("done" if complete else "partial", counts)
    action = "ran" if complete else "partial"
    return StageResult(stage.name, action, time.time() - started, counts)


def stage_table(layout: RunLayout, config: PipelineConfig | None = None) -> list[dict[str, Any]]:
    """Rows for `synthrank status`: state, counts, time and LLM cost of every stage."""
    prints = stage_fingerprints(config) if config is not None else {}
    rows = []
    for stage in STAGES:
        manifest = read_manifest(layout, stage.name)
        if manifest is None:
            state = "pending"
        elif manifest.status != "done":
            state = manifest.status
        elif prints and manifest.fingerprint != prints[stage.name]:
            state = "stale"
        else:
            state = "done"
        rows.append(
            {
                "stage": stage.name,
                "state": state,
                "seconds": manifest.seconds if manifest else None,
                "cost": manifest.cost if manifest else 0.0,
                "counts": manifest.counts if manifest else {},
                "error": manifest.error if manifest else None,
            }
        )
    return rows


def check_stage_names(names: Sequence[str]) -> None:
    unknown = [n for n in names if n not in STAGE_NAMES]
    if unknown:
        raise SynthrankError(f"unknown stage {', '.join(unknown)}; stages: {', '.join(STAGE_NAMES)}")
