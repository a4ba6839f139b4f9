"""The Python API: what `synthrank run` does, for notebooks and scripts.

    import synthrank
    config = synthrank.load_config("my-domain.toml")
    result = synthrank.Pipeline(config).run(stop="mine")
    result["mine"].counts, list(result.train_groups())[:3]

`Pipeline.run` is `synthrank run CONFIG --from/--to/--force` without the printing and exit codes:
the same checks before the first stage (stage names, input files, LLM endpoints), the same resume
and skip logic (`synthrank.run.pipeline.run_pipeline`), and errors raised as `SynthrankError`s instead
of exit codes. `synthrank.stages` runs one stage at a time the same way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from synthrank.errors import SynthrankError
from synthrank.native._backend import selected
from synthrank.records import Judgment, Passage, Query, RunLayout, TrainGroup, read_jsonl
from synthrank.run.pipeline import STAGE_NAMES, StageResult, plan, run_pipeline, stage_table
from synthrank.run.settings import PipelineConfig
from synthrank.run.settings import load_config as _load_config

__all__ = ["Pipeline", "RunResult", "StageResult", "load_config"]

R = TypeVar("R", Passage, Query, Judgment, TrainGroup)


def load_config(path: str | Path, *, overrides: dict[str, dict[str, Any]] | None = None) -> PipelineConfig:
    """Read and validate a synthrank.toml (as `synthrank run` does); `overrides` replace keys per section.

    Example: `load_config("my.toml", overrides={"sample": {"num_passages": 50}})`. Relative paths in
    the file are relative to its folder. Raises `ConfigError` naming the section, key and line.
    """
    return _load_config(path, overrides=overrides)


@dataclass(frozen=True)
class RunResult:
    """What `Pipeline.run` did to each stage, and typed readers of the run folder's outputs."""

    layout: RunLayout
    stages: tuple[StageResult, ...]

    def __getitem__(self, stage: str) -> StageResult:
        for result in self.stages:
            if result.stage == stage:
                return result
        raise KeyError(f"{stage!r} was not part of this run; stages: {[r.stage for r in self.stages]}")

    @property
    def complete(self) -> bool:
        """False when the last stage stopped part-way (e.g. `[llm] max_cost` reached): run again."""
        return not self.stages or self.stages[-1].action != "partial"

    @property
    def ran(self) -> list[str]:
        """The stages that did work this time (the others were finished under this config)."""
        return [r.stage for r in self.stages if r.action != "skipped"]

    @property
    def model_dir(self) -> Path:
        """The fine-tuned cross-encoder (after `train`): load it with `sentence_transformers.CrossEncoder`."""
        return self.layout.model

    def passages(self) -> Iterator[Passage]:
        """The ingested passages, streamed (after `ingest`)."""
        return self._read(self.layout.passages, Passage, "ingest")

    def queries(self) -> Iterator[Query]:
        """The queries that passed the filter (after `filter`)."""
        return self._read(self.layout.queries, Query, "filter")

    def judgments(self) -> Iterator[Judgment]:
        """The LLM's graded (query, passage) pairs (after `judge`)."""
        return self._read(self.layout.judgments, Judgment, "judge")

    def train_groups(self) -> Iterator[TrainGroup]:
        """One query, its positives and hard negatives per group (after `mine`)."""
        return self._read(self.layout.train_groups, TrainGroup, "mine")

    def _read(self, path: Path, cls: type[R], stage: str) -> Iterator[R]:
        if not path.is_file():
            raise SynthrankError(f"{path} does not exist: run the {stage} stage first")
        return read_jsonl(path, cls)


class Pipeline:
    """The whole method over one config: `run` skips stages already finished under the same settings."""

    def __init__(self, config: PipelineConfig | str | Path) -> None:
        self.config = config if isinstance(config, PipelineConfig) else load_config(config)

    @property
    def layout(self) -> RunLayout:
        """Paths of every output in the run folder (`[run] dir`)."""
        return RunLayout(self.config.run.dir)

    def plan(
        self, *, start: str | None = None, stop: str | None = None, force: bool = False
    ) -> dict[str, bool]:
        """{stage: will it run} up to `stop`, as `run` with the same arguments would decide."""
        _check_stages(start, stop)
        return {
            stage.name: will_run for stage, will_run in plan(self.config, start=start, stop=stop, force=force)
        }

    def run(
        self,
        *,
        start: str | None = None,
        stop: str | None = None,
        force: bool = False,
        check_llm: bool = True,
    ) -> RunResult:
        """Run the stages from the first unfinished one (or `start`) through `stop` (default: all).

        Checks the corpus path and, when an LLM stage will run, probes each `[llm] base_urls`
        endpoint (`check_llm=False` skips the probe) before any stage starts. Raises the stage's
        `SynthrankError` (e.g. `BudgetExceededError`, `EmptyOutputError`) with every finished stage
        kept on disk; calling `run` again resumes.
        """
        from synthrank.run.lock import RunLock
        from synthrank.run.runner import prepare

        _check_stages(start, stop)
        # the run folder's lock, as `synthrank run` holds it: a second writer fails at once
        lock = RunLock(self.config.run.dir, command="synthrank.Pipeline.run")
        with lock, selected(self.config.run.backend):
            prepare(self.config, start=start, stop=stop, force=force, check_llm=check_llm)
            results = run_pipeline(self.config, start=start, stop=stop, force=force)
        # absolute, so the result still points at the run after a notebook changes its directory
        return RunResult(RunLayout(self.layout.root.resolve()), tuple(results))

    def run_stage(self, name: str, *, check_llm: bool = True) -> StageResult:
        """Run one stage, as `synthrank run --from NAME --to NAME`, after any earlier stage that is not
        finished under this config; raises if an earlier stage stopped part-way (e.g. `max_cost`)."""
        result = self.run(start=name, stop=name, check_llm=check_llm)
        last = result.stages[-1]
        if last.stage != name:
            raise SynthrankError(
                f"stage {last.stage} is incomplete ({last.action}); run it again before {name}"
            )
        return last

    def status(self) -> list[dict[str, Any]]:
        """One row per stage: state (done, partial, failed, stale, pending), seconds, LLM cost, counts."""
        return stage_table(self.layout, self.config)

    def with_run_dir(self, run_dir: str | Path) -> Pipeline:
        """The same settings writing to another run folder."""
        run = dataclasses.replace(self.config.run, dir=Path(run_dir))
        return Pipeline(self.config.with_changes(run=run))


def _check_stages(*names: str | None) -> None:
    for name in names:
        if name is not None and name not in STAGE_NAMES:
            raise SynthrankError(f"unknown stage {name!r}; stages: {', '.join(STAGE_NAMES)}")
