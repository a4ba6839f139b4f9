"""`PipelineConfig`: the whole `synthrank.toml`, one options dataclass per stage section.

Section names are the stage names (plus `[run]` and `[llm]`), and each table's keys are the
fields of that stage's own options dataclass, so the stage commands and the pipeline share one
definition of every option.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from synthrank.config import build, read_toml
from synthrank.errors import ConfigError
from synthrank.llm.config import LLMConfig
from synthrank.stages.evaluate.datasets import NAMED_DATASETS
from synthrank.stages.filter import FilterConfig
from synthrank.stages.generate import GenerateConfig
from synthrank.stages.ingest.ingest import IngestConfig
from synthrank.stages.judge import JudgeConfig
from synthrank.stages.mine import MineConfig
from synthrank.stages.retrieve import EmbedConfig, IndexConfig, RetrieveConfig
from synthrank.stages.sample import SampleConfig


@dataclass(frozen=True)
class RunConfig:
    """dir: the run folder; backend: native | python for the Rust-core stages (None = env/default)."""

    dir: Path = Path("synthrank-run")
    seed: int = 0
    backend: Literal["native", "python"] | None = None
    log_level: Literal["debug", "info", "warning"] = "info"


@dataclass(frozen=True)
class CorpusConfig(IngestConfig):
    """The `[corpus]` table: what to ingest (`path`) and how (the ingest options)."""

    path: Path | None = None


def _train_config() -> Any:
    from synthrank.stages.train.trainer import TrainConfig

    return TrainConfig


def _distill_config() -> Any:
    from synthrank.stages.distill import DistillConfig

    return DistillConfig


def _eval_config() -> Any:
    from synthrank.stages.evaluate.evaluator import EvalConfig

    return EvalConfig


# section name -> options class (training and evaluation import torch, so they are resolved lazily)
SECTIONS: dict[str, Any] = {
    "run": RunConfig,
    "corpus": CorpusConfig,
    "sample": SampleConfig,
    "llm": LLMConfig,
    "generate": GenerateConfig,
    "filter": FilterConfig,
    "embed": EmbedConfig,
    "index": IndexConfig,
    "retrieve": RetrieveConfig,
    "judge": JudgeConfig,
    "mine": MineConfig,
    "distill": _distill_config,
    "train": _train_config,
    "evaluate": _eval_config,
}


def section_class(name: str) -> Any:
    cls = SECTIONS[name]
    return cls if isinstance(cls, type) else cls()


@dataclass
class PipelineConfig:
    run: RunConfig = field(default_factory=RunConfig)
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    llm: LLMConfig = field(default_factory=LLMConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    filter: FilterConfig = field(default_factory=FilterConfig)
    embed: EmbedConfig = field(default_factory=EmbedConfig)
    index: IndexConfig = field(default_factory=IndexConfig)
    retrieve: RetrieveConfig = field(default_factory=RetrieveConfig)
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    mine: MineConfig = field(default_factory=MineConfig)
    distill: Any = None
    train: Any = None
    evaluate: Any = None
    source: Path | None = None  # the TOML file this came from

    def __post_init__(self) -> None:
        if self.distill is None:
            self.distill = section_class("distill")()
        if self.train is None:
            self.train = section_class("train")()
        if self.evaluate is None:
            self.evaluate = section_class("evaluate")()
        if self.judge.source_first and self.judge.source_min_grade is None:
            # the gate stops what mining would drop, at one threshold; being in [judge], it is in
            # the judge stage's fingerprint, so a changed [mine] positive_min_grade re-runs the gate
            self.judge = dataclasses.replace(self.judge, source_min_grade=self.mine.positive_min_grade)

    def section(self, dotted: str) -> Any:
        """`"llm.model"` -> config.llm.model; a whole section minus secrets for `"llm"`."""
        value: Any = self
        for part in dotted.split("."):
            value = getattr(value, part)
        return value

    def with_changes(self, **sections: Any) -> PipelineConfig:
        return dataclasses.replace(self, **sections)


def load_config(path: Path | str, *, overrides: dict[str, dict[str, Any]] | None = None) -> PipelineConfig:
    """Read and validate a synthrank.toml; relative paths in it are relative to the file's folder."""
    path = Path(path)
    data, text = read_toml(path)
    for section, values in (overrides or {}).items():
        data.setdefault(section, {}).update(values)
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"{path}: unknown section [{unknown[0]}]; sections: {', '.join(SECTIONS)}")
    built = {
        name: build(section_class(name), table, section=name, path=path, text=text)
        for name, table in data.items()
    }
    config = PipelineConfig(**built, source=path)
    return _relative_to(config, path.parent)


def _relative_to(config: PipelineConfig, base: Path) -> PipelineConfig:
    """Resolve the config's relative paths against the config file's folder, like a user reads them."""

    def fix(p: Path | None) -> Path | None:
        return p if p is None or p.is_absolute() else base / p

    run = dataclasses.replace(config.run, dir=fix(config.run.dir) or config.run.dir)
    corpus = dataclasses.replace(
        config.corpus, path=fix(config.corpus.path), exclude_docs=fix(config.corpus.exclude_docs)
    )
    sample = dataclasses.replace(config.sample, passage_ids=fix(config.sample.passage_ids))
    llm = dataclasses.replace(config.llm, cache=fix(config.llm.cache))
    archive = fix(Path(config.evaluate.trec_dl_archive))
    datasets = [d if d in NAMED_DATASETS else str(fix(Path(d))) for d in config.evaluate.datasets]
    evaluate = dataclasses.replace(config.evaluate, trec_dl_archive=str(archive), datasets=datasets)
    return config.with_changes(run=run, corpus=corpus, sample=sample, llm=llm, evaluate=evaluate)


def check_inputs(config: PipelineConfig) -> None:
    """Fail before anything runs when an input file the config names is missing."""
    if config.corpus.path is None:
        raise ConfigError(f"{config.source or 'config'}: [corpus] path: required (the corpus to ingest)")
    for key, value in (("path", config.corpus.path), ("exclude_docs", config.corpus.exclude_docs)):
        if value is not None and not Path(value).exists():
            raise ConfigError(f"{config.source or 'config'}: [corpus] {key}: {value} does not exist")
    if config.sample.passage_ids is not None and not config.sample.passage_ids.is_file():
        raise ConfigError(
            f"{config.source or 'config'}: [sample] passage_ids: {config.sample.passage_ids} does not exist"
        )
