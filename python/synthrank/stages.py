"""One pipeline stage at a time, as `synthrank run CONFIG --from STAGE --to STAGE` runs it.

    from synthrank import load_config, stages
    config = load_config("my-domain.toml")
    stages.ingest(config).counts            # {"documents": ..., "passages": ...}
    stages.generate(config, check_llm=False)

Each function first runs the earlier stages that are not finished under this config (so `mine` on a
fresh run folder does everything before it), then always runs its own stage, writes its manifest
and returns its `StageResult` (action, seconds, counts). `run_dir` writes to another run folder
than `[run] dir`. Errors are raised as `SynthrankError`s with finished work kept on disk.
"""

from __future__ import annotations

from pathlib import Path

from synthrank.api import Pipeline
from synthrank.errors import SynthrankError
from synthrank.pipeline import StageResult
from synthrank.settings import PipelineConfig

__all__ = [
    "StageResult",
    "distill",
    "embed",
    "evaluate",
    "filter_queries",
    "generate",
    "index",
    "ingest",
    "judge",
    "mine",
    "report",
    "retrieve",
    "sample",
    "testset",
    "train",
]

ConfigLike = PipelineConfig | str | Path


def _run_stage(
    name: str, config: ConfigLike, run_dir: str | Path | None, check_llm: bool = True
) -> StageResult:
    pipeline = Pipeline(config)
    if run_dir is not None:
        pipeline = pipeline.with_run_dir(run_dir)
    result = pipeline.run(start=name, stop=name, check_llm=check_llm)
    last = result.stages[-1]
    if last.stage != name:  # an earlier stage stopped part-way (e.g. max_cost): nothing ran here
        raise SynthrankError(f"stage {last.stage} is incomplete ({last.action}); run it again before {name}")
    return last


def ingest(config: ConfigLike, *, run_dir: str | Path | None = None) -> StageResult:
    """Read, chunk and deduplicate `[corpus] path` into RUN/corpus/."""
    return _run_stage("ingest", config, run_dir)


def sample(config: ConfigLike, *, run_dir: str | Path | None = None) -> StageResult:
    """Pick the passages that get queries (RUN/sampled_ids.txt)."""
    return _run_stage("sample", config, run_dir)


def generate(config: ConfigLike, *, run_dir: str | Path | None = None, check_llm: bool = True) -> StageResult:
    """The LLM writes queries for the sampled passages (cached, resumable)."""
    return _run_stage("generate", config, run_dir, check_llm)


def filter_queries(config: ConfigLike, *, run_dir: str | Path | None = None) -> StageResult:
    """Drop empty, copied, off-format and duplicate queries (the `filter` stage)."""
    return _run_stage("filter", config, run_dir)


def embed(config: ConfigLike, *, run_dir: str | Path | None = None) -> StageResult:
    """Bi-encoder embeddings of every passage."""
    return _run_stage("embed", config, run_dir)


def index(config: ConfigLike, *, run_dir: str | Path | None = None) -> StageResult:
    """The usearch ANN index over the passage embeddings."""
    return _run_stage("index", config, run_dir)


def retrieve(config: ConfigLike, *, run_dir: str | Path | None = None) -> StageResult:
    """Top-k candidate passages per query."""
    return _run_stage("retrieve", config, run_dir)


def judge(config: ConfigLike, *, run_dir: str | Path | None = None, check_llm: bool = True) -> StageResult:
    """The LLM grades (query, candidate) pairs 0-3 (cached, resumable)."""
    return _run_stage("judge", config, run_dir, check_llm)


def mine(config: ConfigLike, *, run_dir: str | Path | None = None) -> StageResult:
    """Positives and hard negatives: RUN/train_groups.jsonl and the synthetic dev set."""
    return _run_stage("mine", config, run_dir)


def testset(config: ConfigLike, *, run_dir: str | Path | None = None) -> StageResult:
    """The in-domain test set: real held-out questions, else LLM-written ones for held-out passages."""
    return _run_stage("testset", config, run_dir)


def distill(config: ConfigLike, *, run_dir: str | Path | None = None) -> StageResult:
    """The warm start: the cross-encoder learns the bi-encoder's ranking (no LLM)."""
    return _run_stage("distill", config, run_dir)


def train(config: ConfigLike, *, run_dir: str | Path | None = None) -> StageResult:
    """Fine-tune the cross-encoder into RUN/model/ (resumes from its checkpoints)."""
    return _run_stage("train", config, run_dir)


def evaluate(config: ConfigLike, *, run_dir: str | Path | None = None) -> StageResult:
    """Base vs fine-tuned reranker on the held-out sets (RUN/eval/)."""
    return _run_stage("evaluate", config, run_dir)


def report(config: ConfigLike, *, run_dir: str | Path | None = None) -> StageResult:
    """RUN/report.md and RUN/report.html with every stage's numbers."""
    return _run_stage("report", config, run_dir)
