"""How long the heavy stages without an LLM take, for `synthrank plan`: embed, distill, train.

A training step's cost is close to its pair-tokens (groups x pairs per group x max_length): the
trainer records the rate it reached (`pair_tokens_per_second` in the distill and train manifests)
and the plan uses the last one measured in the run folder. Embedding is timed in passages per second
(`passages_per_second` in the embed manifest of the folder or its pilot). Before any measurement the
plan assumes a per-core rate for a MiniLM-L6-sized model on CPU, scaled by the model's layers x
hidden², and does not guess a GPU's. Dev evaluations and checkpoints come on top.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from synthrank.records import RunLayout, count_lines
from synthrank.run.manifest import read_manifest

if TYPE_CHECKING:
    from synthrank.run.settings import PipelineConfig
    from synthrank.stages.train.trainer import TrainConfig

# MiniLM-L6 (6 layers, hidden 384) in fp32 on 2 idle AVX2 cores, the full-MedQuAD run: forward +
# backward, 8 lists of 8 pairs at 128 tokens in 7.3 s a step (~560 pair-tokens/s per core); forward
# only, 27,493 passages of ~250 tokens embedded in 27 minutes (~2,100 tokens/s per core).
DEFAULT_CPU_RATE_PER_CORE = 560.0
DEFAULT_CPU_EMBED_TOKENS_PER_CORE = 2100.0
REFERENCE_SIZE = 6 * 384 * 384  # layers x hidden² of that model


@dataclass
class StageTime:
    steps: int
    seconds: float | None
    rate: str  # where the rate came from, or why there is no time


def optimizer_steps(tc: TrainConfig, groups: float) -> int:
    """The trainer's step count for `groups` groups on one device: max_steps, else whole epochs."""
    if tc.max_steps > 0:
        return tc.max_steps
    per_step = tc.batch_size * tc.grad_accumulation
    return math.ceil(groups / per_step) * tc.epochs if groups > 0 else 0


def pair_tokens_per_step(tc: TrainConfig) -> int:
    return tc.batch_size * tc.grad_accumulation * tc.group_size * tc.max_length


def model_scale(name: str) -> float | None:
    """The model's layers x hidden² against MiniLM-L6's, from its config.json; None if unreadable."""
    from synthrank.models import resolve_model

    path = Path(resolve_model(name)) / "config.json"
    if not path.is_file():
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(name, "config.json")
        except Exception:  # not a hub id, no cache: the size is unknown, which the plan says
            return None
        if not isinstance(cached, str):
            return None
        path = Path(cached)
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
        return int(config["num_hidden_layers"]) * int(config["hidden_size"]) ** 2 / REFERENCE_SIZE
    except (OSError, ValueError, KeyError, TypeError):
        return None


def measured_rate(layout: RunLayout) -> float | None:
    """Pair-tokens per second of the folder's last finished train, else distill (the same trainer)."""
    for stage in ("train", "distill"):
        manifest = read_manifest(layout, stage)
        if manifest is not None and manifest.status == "done":
            rate = manifest.counts.get("pair_tokens_per_second")
            if rate:
                return float(rate)
    return None


def _cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def _on_gpu(tc: TrainConfig) -> bool:
    return tc.device.startswith(("cuda", "mps")) if tc.device != "auto" else _cuda()


def _cores(threads: int) -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return min(cores, threads) if threads > 0 else cores


def _cpu_rate(per_core: float, model: str, cores: int) -> tuple[float, str]:
    scale = model_scale(model)
    size = f"{model} {scale:.1f}x MiniLM-L6" if scale else f"{model}: size unknown, as MiniLM-L6"
    return per_core * cores / (scale or 1.0), f"{per_core:g} per core x {cores} cores, {size}"


def embed_time(config: PipelineConfig) -> StageTime | None:
    """Seconds to embed the corpus's passages (queries are few); None before ingest has counted them."""
    layout = RunLayout(config.run.dir)
    ingest = read_manifest(layout, "ingest")
    if ingest is None or ingest.status != "done" or not ingest.counts.get("passages"):
        return None
    passages = int(ingest.counts["passages"])
    if _embeddings_cover(layout, passages):
        return StageTime(0, 0.0, "the passages' embeddings are there already (a pilot's)")
    for root in (layout.root, layout.root / "pilot"):
        manifest = read_manifest(RunLayout(root), "embed")
        rate = manifest.counts.get("passages_per_second") if manifest and manifest.status == "done" else None
        if rate:
            return StageTime(0, passages / float(rate), "measured by this folder's (or its pilot's) embed")
    embed = config.embed
    if (embed.device or "").startswith(("cuda", "mps")) or (embed.device is None and _cuda()):
        return StageTime(0, None, "not timed: no rate measured on this GPU yet")
    tokens = min(config.corpus.passage_tokens, embed.max_seq_length or config.corpus.passage_tokens)
    rate, how = _cpu_rate(DEFAULT_CPU_EMBED_TOKENS_PER_CORE, embed.model, _cores(0))
    return StageTime(0, passages * tokens / rate, f"default: tokens/s {how}, {tokens} tokens a passage")


def _embeddings_cover(layout: RunLayout, passages: int) -> bool:
    try:
        manifest = json.loads(layout.embeddings_manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    stamp = manifest.get("passages") or {}
    return stamp.get("count") == passages and (layout.embeddings / "passages.npy").is_file()


def training_time(tc: TrainConfig, groups: float, layout: RunLayout) -> StageTime:
    steps = optimizer_steps(tc, groups)
    rate = measured_rate(layout)
    source = "measured by this folder's last training"
    if rate is None:
        if _on_gpu(tc):
            return StageTime(steps, None, "not timed: no rate measured on this GPU yet")
        rate, how = _cpu_rate(DEFAULT_CPU_RATE_PER_CORE, tc.model, _cores(tc.cpu_threads))
        source = f"default: pair-tokens/s {how}"
    return StageTime(steps, steps * pair_tokens_per_step(tc) / rate, source)


def training_estimates(config: PipelineConfig, queries: float | None) -> dict[str, StageTime]:
    """Steps and seconds of distill and train, given the training queries the LLM stages will keep
    (None: unknown). train needs the mined groups: counted when mine has run, else the queries times
    the groups per query an earlier mine of the folder (or its pilot) measured."""
    from synthrank.stages.distill import student_config, wanted

    layout = RunLayout(config.run.dir)
    out: dict[str, StageTime] = {}
    if wanted(config.distill, config.train.model):
        student = student_config(config.train, config.distill, layout.warm_start)
        synthetic = (queries or 0.0) if config.distill.synthetic_queries else 0.0
        lists = config.distill.pseudo_queries + synthetic
        out["distill"] = training_time(student, lists, layout)
    groups = _groups(layout, queries)
    if groups is None:
        steps = config.train.max_steps
        out["train"] = StageTime(steps, None, "not timed: the groups mine makes are known after a pilot")
    else:
        out["train"] = training_time(config.train, groups, layout)
    return out


def _groups(layout: RunLayout, queries: float | None) -> float | None:
    if layout.train_groups.is_file():
        return float(count_lines(layout.train_groups))
    if queries is None:
        return None
    for root in (layout.root, layout.root / "pilot"):
        manifest = read_manifest(RunLayout(root), "mine")
        if manifest is not None and manifest.status == "done" and manifest.counts.get("queries_in"):
            return queries * manifest.counts["train_groups"] / manifest.counts["queries_in"]
    return None
