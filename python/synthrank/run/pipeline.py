"""The whole method as one resumable run: corpus → queries → candidates → labels → groups → model → report.

Each stage reads and writes the run folder (`RunLayout`) and leaves a manifest. A stage is skipped
when its manifest says `done` under the fingerprint the current config gives it: that fingerprint
covers the stage's own config sections (the options set away from their defaults) and the
fingerprint of the stage before it, so a changed setting re-runs that stage and everything
downstream, and nothing upstream; an upgrade that only adds options re-runs nothing. Stages resume their own
partial work (the LLM cache, append-only JSONL, training checkpoints), so an interrupted run loses
nothing already finished.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synthrank.config import fingerprint
from synthrank.errors import BudgetExceededError, SynthrankError
from synthrank.llm.config import token_cost
from synthrank.records import RunLayout, write_text_atomic
from synthrank.run.manifest import Manifest, output_sizes, outputs_intact, read_manifest, write_manifest

if TYPE_CHECKING:  # settings imports every stage's options: kept out of `synthrank status`
    from synthrank.run.settings import PipelineConfig

log = logging.getLogger(__name__)


# Stage adapters: each calls one stage's own entry point with its section of the config. Heavy
# modules (torch, sentence-transformers) are imported inside, so `synthrank status` stays fast.


def _ingest(layout: RunLayout, c: PipelineConfig) -> dict[str, Any]:
    from synthrank.stages.ingest.ingest import run_ingest

    assert c.corpus.path is not None  # checked by settings.check_inputs before the run starts
    return run_ingest(layout, c.corpus, c.corpus.path)


def _sample(layout: RunLayout, c: PipelineConfig) -> dict[str, Any]:
    from synthrank.stages.sample import run_sample

    return run_sample(layout, c.sample)


def _generate(layout: RunLayout, c: PipelineConfig) -> dict[str, Any]:
    from synthrank.stages.generate import run_generate

    return run_generate(layout, c.generate, c.llm)


def _filter(layout: RunLayout, c: PipelineConfig) -> dict[str, Any]:
    from synthrank.stages.filter import run_filter

    return run_filter(layout, c.filter)


def _embed(layout: RunLayout, c: PipelineConfig) -> dict[str, Any]:
    from synthrank.stages.retrieve import run_embed

    return run_embed(layout, c.embed)


def _index(layout: RunLayout, c: PipelineConfig) -> dict[str, Any]:
    from synthrank.stages.retrieve import run_index

    return run_index(layout, c.index)


def _retrieve(layout: RunLayout, c: PipelineConfig) -> dict[str, Any]:
    from synthrank.stages.retrieve import run_retrieve

    return run_retrieve(layout, c.retrieve, c.embed, c.index)


def _judge(layout: RunLayout, c: PipelineConfig) -> dict[str, Any]:
    from synthrank.stages.judge import run_judge

    return run_judge(layout, c.judge, c.llm)


def _mine(layout: RunLayout, c: PipelineConfig) -> dict[str, Any]:
    from synthrank.stages.mine import run_mine

    return run_mine(layout, c.mine)


def _distill(layout: RunLayout, c: PipelineConfig) -> dict[str, Any]:
    from synthrank.stages.distill import run_distill

    return run_distill(layout, c.distill, c.train, c.embed, c.mine)


def _train(layout: RunLayout, c: PipelineConfig) -> dict[str, Any]:
    from synthrank.stages.train.trainer import run_train

    return run_train(layout, c.train)


def _testset(layout: RunLayout, c: PipelineConfig) -> dict[str, Any]:
    from synthrank.stages.testset import run_testset

    return run_testset(layout, c)


def _evaluate(layout: RunLayout, c: PipelineConfig) -> dict[str, Any]:
    from synthrank.stages.evaluate.evaluator import run_evaluate

    return run_evaluate(layout, c.evaluate)


def _report(layout: RunLayout, c: PipelineConfig) -> dict[str, Any]:
    from synthrank.run.report import write_run_report

    return write_run_report(layout, STAGE_NAMES)


@dataclass(frozen=True)
class Stage:
    name: str
    sections: tuple[str, ...]  # config sections that define what the stage produces
    run: Callable[[RunLayout, PipelineConfig], dict[str, Any]]
    outputs: Callable[[RunLayout], list[Path]]
    summary: str
    after: tuple[str, ...] = ()  # the stages whose outputs it reads; () = the stage before it
    # raised when the stage's code makes something else of the same settings, so that outputs made
    # under the old meaning are not skipped as unchanged
    revision: int = 0


TESTSET_SECTIONS = (
    "llm.model",
    "generate",
    "filter",
    "judge",
    "sample.min_tokens",
    "sample.max_tokens",
    "evaluate.datasets",
    "evaluate.synthetic_queries",
    "evaluate.synthetic_judge_top_m",
    "evaluate.seed",
)

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
    # The in-domain test set reads the corpus and the passage embeddings; its own LLM work is
    # independent of the training data's, so a change to it re-runs evaluate and nothing else.
    Stage(
        "testset",
        TESTSET_SECTIONS,
        _testset,
        lambda r: [r.test, r.test_work],
        "in-domain test set: real held-out questions, else LLM-written and LLM-graded",
        after=("embed",),
    ),
    # The warm start reads the corpus, embeddings and candidates, not the LLM's labels: a change to
    # judge or mine does not redo it (but the dev split, which it keeps out, is part of its print).
    Stage(
        "distill",
        ("distill", "train.model", "train.precision", "embed", "mine.dev_fraction", "mine.seed"),
        _distill,
        lambda r: [r.warm_start],
        "warm start: the cross-encoder learns the bi-encoder's ranking (no LLM)",
        after=("retrieve",),
        revision=1,  # 1: [distill] max_steps overrides epochs (it was capped at them)
    ),
    Stage(
        "train",
        ("train",),
        _train,
        lambda r: [r.model],
        "fine-tune the cross-encoder (LCE)",
        after=("mine", "distill"),
    ),
    Stage(
        "evaluate",
        ("evaluate",),
        _evaluate,
        lambda r: [r.eval],
        "base vs fine-tuned, held-out sets",
        after=("train", "testset"),
    ),
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
    """Each stage's fingerprint: its config sections chained onto the fingerprints of the stages it
    reads (by default the stage before it)."""
    prints: dict[str, str] = {}
    previous = fingerprint(config.run.seed)
    for stage in STAGES:
        upstream: Any = [prints[name] for name in stage.after] if stage.after else previous
        sections = [config.section(s) for s in stage.sections]
        # revision 0 stays out of the hash: runs made before revisions existed keep their prints
        previous = fingerprint(stage.name, upstream, sections, *([stage.revision] if stage.revision else []))
        prints[stage.name] = previous
    return prints


def upstream_of(stage: Stage) -> tuple[str, ...]:
    """The stages whose outputs `stage` reads."""
    index = STAGE_NAMES.index(stage.name)
    return stage.after or ((STAGE_NAMES[index - 1],) if index else ())


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
    runs: dict[str, bool] = {}
    manifests: dict[str, Manifest | None] = {}
    for index, stage in enumerate(STAGES[: last + 1]):
        previous = read_manifest(layout, stage.name)
        upstream = upstream_of(stage)
        finished = (
            previous is not None
            and previous.status == "done"
            and previous.fingerprint == prints[stage.name]
            and outputs_intact(layout, previous)
            and not any(_older_than(previous, manifests.get(name)) for name in upstream)
        )
        will_run = force or index >= first or not finished or any(runs.get(name, False) for name in upstream)
        runs[stage.name] = will_run
        manifests[stage.name] = previous
        steps.append((stage, will_run))
    return steps


def _older_than(manifest: Manifest, upstream: Manifest | None) -> bool:
    """Whether a stage ran before its upstream last finished (e.g. `synthrank train` retrained)."""
    return upstream is not None and upstream.status == "done" and manifest.started < upstream.finished


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

    # `synthrank status` shows the stage as running while this process lives (the pid says which)
    save("running", {"pid": os.getpid()})
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


def run_one_stage(name: str, config: PipelineConfig) -> StageResult:
    """Run one stage outside `run_pipeline` (a stage command) and record its manifest, so `status`
    and the next `synthrank run` see it, and the stages after it count as stale."""
    stage = STAGES[STAGE_NAMES.index(name)]
    layout = RunLayout(config.run.dir)
    return _run_stage(stage, layout, config, stage_fingerprints(config)[name])


RUN_CONFIG = "config.json"  # inside the run folder: the resolved config `synthrank run` last used


def save_run_config(config: PipelineConfig) -> Path:
    """Write the resolved config into the run folder, for stage commands run on the folder later."""
    from synthrank.run.settings import SECTIONS

    layout = RunLayout(config.run.dir)
    layout.root.mkdir(parents=True, exist_ok=True)
    sections = {
        name: config.llm.public_dict() if name == "llm" else _as_dict(getattr(config, name))
        for name in SECTIONS
    }
    data = {"source": str(config.source) if config.source else None, "sections": sections}
    path = layout.root / RUN_CONFIG
    write_text_atomic(path, json.dumps(data, indent=1, default=str) + "\n")
    return path


def _as_dict(options: Any) -> dict[str, Any]:
    import dataclasses

    return {f.name: getattr(options, f.name) for f in dataclasses.fields(options)}


def read_run_config(run_dir: Path) -> dict[str, Any] | None:
    """The saved config's sections as plain JSON (no imports of the stages: fast for `status`)."""
    try:
        data = json.loads((Path(run_dir) / RUN_CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    sections = data.get("sections") if isinstance(data, dict) else None
    return sections if isinstance(sections, dict) else None


def load_run_config(run_dir: Path) -> PipelineConfig | None:
    """The config `synthrank run` saved in `run_dir` (None when the folder has none), checked like
    a TOML file; `run.dir` is the folder given, wherever it has moved since."""
    import dataclasses

    from synthrank.config import build
    from synthrank.run.settings import SECTIONS, PipelineConfig, section_class

    sections = read_run_config(run_dir)
    if sections is None:
        return None
    path = Path(run_dir) / RUN_CONFIG
    built = {
        name: build(section_class(name), table, section=name, path=path)
        for name, table in sections.items()
        if name in SECTIONS
    }
    config = PipelineConfig(**built, source=path)
    return config.with_changes(run=dataclasses.replace(config.run, dir=Path(run_dir)))


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def llm_spend_since(layout: RunLayout, since: float) -> dict[str, float]:
    """Calls, tokens and cost paid since `since` (a running LLM stage's spend so far), read-only so
    the stage is not disturbed: from the run's spending ledger, else from the replies cached since
    then, priced with the run's saved `[llm]` prices."""
    queries = (
        (
            layout.llm_ledger,
            "SELECT COUNT(*), SUM(prompt_tokens), SUM(completion_tokens), SUM(cost) FROM calls",
        ),
        (
            None,
            "SELECT COUNT(*), SUM(json_extract(response, '$.usage.prompt_tokens')), "
            "SUM(json_extract(response, '$.usage.completion_tokens')), NULL FROM responses",
        ),
    )
    llm = (read_run_config(layout.root) or {}).get("llm") or {}
    for path, query in queries:
        path = path or Path(llm.get("cache") or layout.llm_cache)
        if not path.is_file():
            continue
        try:
            with sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=2) as db:
                calls, prompt, completion, cost = db.execute(
                    f"{query} WHERE created >= ?", (since,)
                ).fetchone()
        except sqlite3.Error:
            continue
        prompt, completion = int(prompt or 0), int(completion or 0)
        if cost is None:
            prices = float(llm.get("price_prompt") or 0), float(llm.get("price_completion") or 0)
            cost = token_cost(prompt, completion, *prices)
        return {
            "calls": calls,
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "cost": round(cost, 6),
        }
    return {}


def stage_table(layout: RunLayout, config: PipelineConfig | None = None) -> list[dict[str, Any]]:
    """Rows for `synthrank status`: state, counts, time and LLM cost of every stage.

    A stage is `running` while the process that started it lives (its spend so far comes from the
    LLM cache), `stale` when the config would re-run it or a stage before it finished after it did.
    """
    prints = stage_fingerprints(config) if config is not None else {}
    rows = []
    manifests: dict[str, Manifest | None] = {}
    states: dict[str, str] = {}
    for stage in STAGES:
        manifest = read_manifest(layout, stage.name)
        manifests[stage.name] = manifest
        # stale travels downstream: a stage reading a stale stage's outputs is stale too
        newer_upstream = manifest is not None and any(
            _older_than(manifest, manifests.get(name)) or states.get(name) == "stale"
            for name in upstream_of(stage)
        )
        counts = manifest.counts if manifest else {}
        seconds = manifest.seconds if manifest else None
        if manifest is None:
            state = "pending"
        elif manifest.status == "running":
            state = "running" if _alive(counts.get("pid")) else "partial"
            seconds = time.time() - manifest.started if state == "running" else None
            spend = llm_spend_since(layout, manifest.started) if state == "running" else {}
            counts = spend if spend.get("calls") else {}
        elif manifest.status != "done":
            state = manifest.status
        elif (prints and manifest.fingerprint != prints[stage.name]) or newer_upstream:
            state = "stale"
        else:
            state = "done"
        states[stage.name] = state
        rows.append(
            {
                "stage": stage.name,
                "state": state,
                "seconds": seconds,
                "cost": float(counts.get("cost", 0.0) or 0.0),
                "llm": "calls" in counts,
                "counts": counts,
                "error": manifest.error if manifest else None,
            }
        )
    return rows


def check_stage_names(names: Sequence[str]) -> None:
    unknown = [n for n in names if n not in STAGE_NAMES]
    if unknown:
        raise SynthrankError(f"unknown stage {', '.join(unknown)}; stages: {', '.join(STAGE_NAMES)}")
