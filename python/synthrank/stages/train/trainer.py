"""Fine-tune a cross-encoder on mined groups: LCE (or pointwise BCE), resumable, DDP-ready.

The data position is (epoch, step): groups are a pure function of (seed, epoch, index), so a
checkpoint holding model, optimizer, scheduler, grad scaler, RNG states and that position resumes to
the same weights as an uninterrupted run. Under `torchrun` every rank builds the same epoch order
and takes its own slice of each global batch; rank 0 alone evaluates, checkpoints and saves.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import torch
import torch.distributed as dist

from synthrank.config import above, at_least, within
from synthrank.devices import Precision, autocast_dtype, pick_device
from synthrank.errors import ConfigError, EmptyOutputError, InvalidArgumentError
from synthrank.models import DEFAULT_RERANKER_START
from synthrank.records import RunLayout, atomic_path
from synthrank.scoring import load_cross_encoder, rerank_with_cross_encoder
from synthrank.stages.evaluate.datasets import EvalDataset, load_dev
from synthrank.stages.evaluate.metrics import mean, per_query
from synthrank.stages.train.data import GroupOptions, GroupSource, encode_pairs, load_groups, with_teacher
from synthrank.stages.train.losses import LOSSES, lce_with_kl
from synthrank.stages.train.model_card import finish_model_folder
from synthrank.stages.train.warm_start import warm_start_for

log = logging.getLogger(__name__)

# (scores [groups, group_size], teacher scores or None) -> loss
LossFn = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]

CHECKPOINTS_DIR = "checkpoints"  # RUN/checkpoints/<output folder name>/{step-N, best}
# options that may change between a run and its resumption; any other change refuses to resume
RESUMABLE_CHANGES = {
    "resume",
    "checkpoint_every",
    "keep_checkpoints",
    "device",
    "cpu_threads",
    "compile",
    "dev_min_queries",
    "max_forward_pairs",  # the same gradients in fewer or more passes
}
# pairs per forward/backward pass on CPU when max_forward_pairs is 0: a micro-batch of 16 groups x 8
# pairs x 256 tokens holds ~10 GB of activations for the backward pass there
CPU_FORWARD_PAIRS = 32


@dataclass
class TrainConfig:
    """Options of the train stage (the `[train]` table of synthrank.toml)."""

    model: str = DEFAULT_RERANKER_START  # start point: local path, packaged or hub name
    loss: Literal["lce", "bce"] = "lce"
    group_size: int = 8  # 1 positive + group_size-1 negatives
    batch_size: int = 16  # groups per device per micro-batch
    grad_accumulation: int = 1
    epochs: int = 1
    max_steps: int = 0  # optimizer steps; > 0 overrides epochs (as in transformers' Trainer); 0 = epochs
    learning_rate: float = 2e-5
    head_learning_rate: float = (
        0.0  # for the relevance head only; 0 = learning_rate (a new head may want more)
    )
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    max_length: int = 256  # tokens of query + passage; the passage is cut, never the query
    max_query_tokens: int = 64
    random_negative_share: float = 0.0
    too_few_negatives: Literal["pad", "drop"] = "pad"
    negatives: Literal["hard", "random"] = "hard"
    positives: Literal["judged", "source"] = "judged"
    seed: int = 42
    precision: Precision = "auto"  # auto: bf16 (or fp16) on GPU, fp32 on CPU
    compile: bool = False
    device: str = "auto"
    cpu_threads: int = 0  # 0 = CPU cores / local processes
    # pairs per forward/backward pass: a micro-batch runs in passes of whole groups, summing the
    # same gradients in less memory; 0 = 32 on CPU, the whole micro-batch on GPU
    max_forward_pairs: int = 0
    checkpoint_every: int = 200  # optimizer steps; 0 = never
    keep_checkpoints: int = 2
    eval_every: int = 0  # optimizer steps; 0 = once per epoch
    early_stopping_patience: int = 3  # dev evaluations without improvement; 0 = off
    dev_top_k: int = 20  # BM25 candidates per dev query reranked for nDCG@10
    dev_max_queries: int = 200
    dev_min_queries: int = 30  # a smaller dev set is too noisy to pick checkpoints: the last model is kept
    resume: bool = True
    output: str = ""  # "" = the run's model/ folder
    warm_start: bool = True  # start from RUN/warm_start when the distill stage trained it from `model`
    distill_weight: float = 0.0  # λ: LCE + λ·KL to the bi-encoder's scores of each group (0 = LCE only)
    distill_temperature: float = 0.05

    def __post_init__(self) -> None:
        at_least(
            self,
            "train",
            1,
            "group_size",
            "batch_size",
            "grad_accumulation",
            "epochs",
            "max_length",
            "max_query_tokens",
        )
        if self.loss not in LOSSES:
            raise ConfigError(
                f"must be one of {sorted(LOSSES)}, got {self.loss!r}", section="train", key="loss"
            )
        at_least(self, "train", 0, "distill_weight")
        above(self, "train", 0, "distill_temperature")
        if self.max_query_tokens >= self.max_length:
            raise ConfigError(
                f"must be smaller than max_length ({self.max_length}), got {self.max_query_tokens}",
                section="train",
                key="max_query_tokens",
            )
        at_least(self, "train", 1, "dev_top_k", "keep_checkpoints")
        at_least(
            self,
            "train",
            0,
            "seed",  # numpy's generators take no negative seed
            "max_steps",
            "learning_rate",
            "head_learning_rate",
            "weight_decay",
            "max_grad_norm",
            "cpu_threads",
            "max_forward_pairs",
            "checkpoint_every",
            "eval_every",
            "early_stopping_patience",
            "dev_max_queries",
            "dev_min_queries",
        )
        within(self, "train", 0, 1, "warmup_ratio")
        self.group_options()  # its checks (group_size >= 2, random_negative_share) at load, not at train

    def group_options(self) -> GroupOptions:
        return GroupOptions(
            group_size=self.group_size,
            random_negative_share=self.random_negative_share,
            too_few_negatives=self.too_few_negatives,
            negatives=self.negatives,
            positives=self.positives,
            seed=self.seed,
        )


@dataclass
class TrainState:
    """What a checkpoint restores besides the tensors: where the run is and how dev went."""

    global_step: int = 0
    epoch: int = 0
    step_in_epoch: int = 0
    best_dev_ndcg: float = -1.0
    best_step: int = -1
    evals_without_improvement: int = 0
    stopped_early: bool = False
    history: list[dict[str, float]] = field(default_factory=list)


def _distributed() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment; (0, 1, 0) otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0"))


def parameter_groups(model: torch.nn.Module, cfg: TrainConfig) -> list[dict[str, Any]]:
    """AdamW groups: no weight decay on biases and LayerNorm; the head's own learning rate if set."""
    encoder_prefix = getattr(model, "base_model_prefix", "") + "."  # e.g. "bert.": all but the head
    groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
    for name, param in model.named_parameters():
        in_head = encoder_prefix != "." and not name.startswith(encoder_prefix)
        decays = param.ndim > 1 and "LayerNorm" not in name
        groups.setdefault((in_head, decays), []).append(param)
    return [
        {
            "params": params,
            "weight_decay": cfg.weight_decay if decays else 0.0,
            "lr": cfg.head_learning_rate if in_head and cfg.head_learning_rate > 0 else cfg.learning_rate,
        }
        for (in_head, decays), params in sorted(groups.items())
    ]


class Trainer:
    """One training run over a run folder; `train()` resumes from the newest checkpoint if any."""

    def __init__(
        self,
        layout: RunLayout,
        cfg: TrainConfig,
        *,
        data: GroupSource | None = None,
        loss: LossFn | None = None,
        on_checkpoint: Callable[[int, Path], None] | None = None,
    ) -> None:
        """`data` and `loss` replace the mined groups and cfg.loss (the warm start's teacher lists)."""
        self.layout, self.cfg, self.on_checkpoint = layout, cfg, on_checkpoint
        self.rank, self.world, local_rank = _distributed()
        self.owns_process_group = self._join_process_group()
        self.device = self._place(local_rank)
        self.output = Path(cfg.output) if cfg.output else layout.model
        self.checkpoints = layout.root / CHECKPOINTS_DIR / self.output.name
        self.data, self.loss_fn = self._training_data(data, loss)
        self.steps_per_epoch, self.total_steps = self._schedule_length()

        torch.manual_seed(cfg.seed)
        self.model, self.tokenizer = load_cross_encoder(cfg.model, self.device)
        self.model.train()
        self.autocast_dtype = autocast_dtype(cfg.precision, self.device)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.autocast_dtype == torch.float16)
        self.optimizer, self.scheduler = self._optimizer_and_schedule()
        self.forward_model = self._forward_model(local_rank)
        self.groups_per_pass = self._groups_per_pass()
        self.state = TrainState()
        self.dev = self._load_dev()

    # --- setup --------------------------------------------------------------------------------

    def _join_process_group(self) -> bool:
        """Start torchrun's process group unless the caller already has; True if this Trainer started
        it (and so destroys it when done)."""
        if self.world == 1 or dist.is_initialized():
            return False
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
        return True

    def _place(self, local_rank: int) -> torch.device:
        """The device of this process (its own GPU under torchrun); on CPU, its share of the cores."""
        device = pick_device(self.cfg.device)
        if device.type == "cuda" and self.world > 1:
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        if device.type == "cpu":
            local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(self.world)))
            torch.set_num_threads(self.cfg.cpu_threads or max(1, (os.cpu_count() or 1) // local_world))
        return device

    def _groups_per_pass(self) -> int:
        """Whole groups per forward/backward pass within a micro-batch (max_forward_pairs)."""
        cfg = self.cfg
        pairs = cfg.max_forward_pairs or (CPU_FORWARD_PAIRS if self.device.type == "cpu" else 0)
        return min(cfg.batch_size, max(1, pairs // cfg.group_size)) if pairs else cfg.batch_size

    def _training_data(self, data: GroupSource | None, loss: LossFn | None) -> tuple[GroupSource, LossFn]:
        """The given groups and loss, else the mined groups with cfg.loss, or with the bi-encoder as
        teacher and LCE + KL when distill_weight > 0."""
        cfg = self.cfg
        if data is None:
            groups = load_groups(self.layout, cfg.group_options())
            if cfg.distill_weight > 0:
                return with_teacher(self.layout, groups), lce_with_kl(
                    cfg.distill_weight, cfg.distill_temperature
                )
            data = groups
        return data, loss or LOSSES[cfg.loss]

    def _schedule_length(self) -> tuple[int, int]:
        """(optimizer steps per epoch, total steps); InvalidArgumentError if the data has not one step."""
        cfg = self.cfg
        micro_per_epoch = len(self.data) // (cfg.batch_size * self.world)
        steps_per_epoch = micro_per_epoch // cfg.grad_accumulation
        if steps_per_epoch < 1:
            raise InvalidArgumentError(
                f"{self.layout.train_groups}: {len(self.data)} usable groups is fewer than one optimizer "
                f"step (batch_size {cfg.batch_size} x grad_accumulation {cfg.grad_accumulation} "
                f"x {self.world} processes)"
            )
        # max_steps past the last epoch goes on into the next ones: a step budget is not capped by epochs
        return steps_per_epoch, cfg.max_steps or steps_per_epoch * cfg.epochs

    def _optimizer_and_schedule(self) -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.LambdaLR]:
        """AdamW over `parameter_groups`; linear warm-up over warmup_ratio of the steps, then decay to 0."""
        optimizer = torch.optim.AdamW(parameter_groups(self.model, self.cfg), lr=self.cfg.learning_rate)
        total = self.total_steps
        warmup = int(self.cfg.warmup_ratio * total)

        def linear(step: int) -> float:
            if step < warmup:
                return (step + 1) / (warmup + 1)
            return max(0.0, (total - step) / max(1, total - warmup))

        return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, linear)

    def _forward_model(self, local_rank: int) -> Any:
        """The model that forward passes go through: DDP-wrapped under torchrun, compiled if asked."""
        forward_model: Any = self.model
        if self.world > 1:
            ids = [local_rank] if self.device.type == "cuda" else None
            forward_model = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        if self.cfg.compile:
            forward_model = torch.compile(forward_model)
        return forward_model

    # --- data ---------------------------------------------------------------------------------

    def micro_batch(
        self, order: np.ndarray, step_in_epoch: int, accum_index: int
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """This rank's tokenized micro-batch, groups flattened row-major (positive first in mined
        groups), and the teacher's scores [groups, group_size] when the data has them."""
        cfg = self.cfg
        micro = step_in_epoch * cfg.grad_accumulation + accum_index
        start = (micro * self.world + self.rank) * cfg.batch_size
        queries, passages, targets = [], [], []
        # a source with a teacher's scores has `targets(index, epoch)` (see GroupSource)
        targets_of: Callable[[int, int], np.ndarray] | None = getattr(self.data, "targets", None)
        for index in order[start : start + cfg.batch_size]:
            query, texts = self.data.group(int(index), self.state.epoch)
            queries += [query] * len(texts)
            passages += texts
            if targets_of is not None:
                targets.append(targets_of(int(index), self.state.epoch))
        enc = encode_pairs(self.tokenizer, queries, passages, cfg.max_length, cfg.max_query_tokens)
        target = torch.as_tensor(np.stack(targets), device=self.device) if targets_of is not None else None
        return {k: v.to(self.device) for k, v in enc.items()}, target

    def _load_dev(self) -> EvalDataset | None:
        """The synthetic dev set for checkpoint selection, or None (with a warning when there is one
        but it is too small): training goes on without it, keeping the last model."""
        if self.rank != 0 or not (self.layout.dev / "qrels").is_dir():
            return None
        try:
            ds: EvalDataset | None = load_dev(self.layout, self.cfg.dev_top_k, "checkpoint selection")
        except EmptyOutputError:
            ds = None
        found = len(ds.candidates) if ds is not None else 0
        if ds is None or found < self.cfg.dev_min_queries:
            log.warning(
                "%s: %d dev queries, fewer than dev_min_queries (%d): no checkpoint selection or early "
                "stopping, the last model is kept",
                self.layout.dev,
                found,
                self.cfg.dev_min_queries,
            )
            return None
        keep = sorted(ds.candidates)[: self.cfg.dev_max_queries]
        ds.candidates = {q: ds.candidates[q] for q in keep}
        return ds

    # --- one step -----------------------------------------------------------------------------

    def train_step(self, order: np.ndarray) -> float:
        """One optimizer step over grad_accumulation micro-batches, each in passes of at most
        groups_per_pass groups (every loss is a mean over groups, so weighting each pass by its share
        of the groups gives the micro-batch's gradient); returns the mean loss."""
        cfg, total = self.cfg, 0.0
        for a in range(cfg.grad_accumulation):
            batch, targets = self.micro_batch(order, self.state.step_in_epoch, a)
            groups = len(batch["input_ids"]) // cfg.group_size
            for first in range(0, groups, self.groups_per_pass):
                last = min(first + self.groups_per_pass, groups)
                rows = slice(first * cfg.group_size, last * cfg.group_size)
                final = a == cfg.grad_accumulation - 1 and last == groups
                # DDP averages gradients across processes on the final backward of the step only
                ctx = contextlib.nullcontext() if final or self.world == 1 else self.forward_model.no_sync()
                with ctx:
                    with torch.autocast(
                        self.device.type,
                        dtype=self.autocast_dtype or torch.float32,
                        enabled=self.autocast_dtype is not None,
                    ):
                        part = {k: v[rows] for k, v in batch.items()}
                        logits = self.forward_model(**part).logits.view(-1, cfg.group_size)
                    scored = targets[first:last] if targets is not None else None
                    share = (last - first) / groups / cfg.grad_accumulation
                    loss = self.loss_fn(logits, scored) * share
                    self.scaler.scale(loss).backward()
                total += float(loss.detach())
        self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.max_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return total

    # --- dev, checkpoints ---------------------------------------------------------------------

    def dev_ndcg(self) -> float:
        assert self.dev is not None, "dev_ndcg is only called where a dev set was loaded"
        run, _ = rerank_with_cross_encoder(
            self.model,
            self.tokenizer,
            self.dev,
            max_length=self.cfg.max_length,
            max_query_tokens=self.cfg.max_query_tokens,
            precision=self.cfg.precision,
        )
        return mean(per_query(self.dev.qrels, run, "ndcg@10", self.dev.relevance_level))

    def _evaluate_and_decide(self) -> bool:
        """Dev nDCG@10 on rank 0, best model kept; returns whether to stop (agreed by all ranks)."""
        stop = False
        if self.rank == 0 and self.dev is not None:
            score = self.dev_ndcg()
            self.state.history.append({"step": self.state.global_step, "dev_ndcg@10": score})
            log.info("step %d: dev nDCG@10 %.4f", self.state.global_step, score)
            if score > self.state.best_dev_ndcg:
                self.state.best_dev_ndcg, self.state.best_step = score, self.state.global_step
                self.state.evals_without_improvement = 0
                self._save_model(self.checkpoints / "best")
            else:
                self.state.evals_without_improvement += 1
            patience = self.cfg.early_stopping_patience
            stop = patience > 0 and self.state.evals_without_improvement >= patience
        if self.world > 1:
            flag = [stop]
            dist.broadcast_object_list(flag, src=0)
            stop = bool(flag[0])
        return stop

    def _save_model(self, folder: Path) -> None:
        with atomic_path(folder) as tmp:
            self.model.save_pretrained(tmp)
            self.tokenizer.model_max_length = self.cfg.max_length
            self.tokenizer.save_pretrained(tmp)

    def save_checkpoint(self) -> Path:
        folder = self.checkpoints / f"step-{self.state.global_step:08d}"
        if self.rank == 0:
            with atomic_path(folder) as tmp:
                tmp.mkdir(parents=True, exist_ok=True)
                torch.save(
                    {
                        "model": self.model.state_dict(),
                        "optimizer": self.optimizer.state_dict(),
                        "scheduler": self.scheduler.state_dict(),
                        "scaler": self.scaler.state_dict(),
                        "rng": {
                            "python": random.getstate(),
                            "numpy": _numpy_rng_state(),
                            "torch": torch.get_rng_state(),
                            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                        },
                        "state": asdict(self.state),
                        "config": asdict(self.cfg),
                    },
                    tmp / "trainer_state.pt",
                )
            for old in sorted(self.checkpoints.glob("step-*[0-9]"))[: -self.cfg.keep_checkpoints]:
                shutil.rmtree(old, ignore_errors=True)
        if self.world > 1:
            dist.barrier()
        return folder

    def latest_checkpoint(self) -> Path | None:
        found = sorted(p for p in self.checkpoints.glob("step-*[0-9]") if (p / "trainer_state.pt").is_file())
        return found[-1] if found else None

    def load_checkpoint(self, folder: Path) -> None:
        """Restore a checkpoint made with the same options (read once; the options are checked first)."""
        saved = _read_trainer_state(folder)
        self._check_resumable(folder, saved["config"])
        self.model.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scheduler.load_state_dict(saved["scheduler"])
        self.scaler.load_state_dict(saved["scaler"])
        rng = saved["rng"]
        random.setstate(rng["python"])
        kind, keys, pos, has_gauss, gauss = rng["numpy"]
        np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        self.state = TrainState(**saved["state"])

    def _check_resumable(self, folder: Path, saved: dict[str, Any]) -> None:
        changed = sorted(
            k for k, v in asdict(self.cfg).items() if k not in RESUMABLE_CHANGES and saved.get(k) != v
        )
        if changed:
            raise ConfigError(
                f"{folder}: checkpoint was made with other train options ({', '.join(changed)}); "
                "restore them or start over with --no-resume"
            )

    # --- the loop -----------------------------------------------------------------------------

    def train(self) -> dict[str, Any]:
        cfg, started = self.cfg, time.perf_counter()
        resumed_from = None
        if not cfg.resume and self.rank == 0:
            shutil.rmtree(self.checkpoints, ignore_errors=True)
        if self.world > 1:
            dist.barrier()
        if cfg.resume and (latest := self.latest_checkpoint()) is not None:
            self.load_checkpoint(latest)
            resumed_from = self.state.global_step
            log.info("resumed from %s", latest)
        steps_run, loss_sum, step_seconds = 0, 0.0, 0.0
        eval_every = cfg.eval_every or self.steps_per_epoch
        log_every = max(1, self.total_steps // 20)  # progress in logs too, where no bar is drawn
        progress = _progress(self.rank == 0)
        with progress:
            task = progress.add_task("train", total=self.total_steps, completed=self.state.global_step)
            while self.state.global_step < self.total_steps and not self.state.stopped_early:
                order = self.data.epoch_order(self.state.epoch)
                step_started = time.perf_counter()
                loss = self.train_step(order)
                step_seconds += time.perf_counter() - step_started
                steps_run += 1
                loss_sum += loss
                self.state.global_step += 1
                self.state.step_in_epoch += 1
                if self.state.step_in_epoch == self.steps_per_epoch:
                    self.state.epoch, self.state.step_in_epoch = self.state.epoch + 1, 0
                progress.update(task, advance=1, description=f"train loss {loss:.4f}")
                done = self.state.global_step == self.total_steps
                lr = float(self.scheduler.get_last_lr()[0])
                self.state.history.append({"step": self.state.global_step, "loss": round(loss, 6), "lr": lr})
                if self.rank == 0 and (self.state.global_step % log_every == 0 or done):
                    log.info("step %d/%d: loss %.4f", self.state.global_step, self.total_steps, loss)
                if (self.dev is not None or self.world > 1) and (
                    self.state.global_step % eval_every == 0 or done
                ):
                    self.state.stopped_early = self._evaluate_and_decide() and not done
                if cfg.checkpoint_every and self.state.global_step % cfg.checkpoint_every == 0 and not done:
                    folder = self.save_checkpoint()
                    if self.on_checkpoint is not None:
                        self.on_checkpoint(self.state.global_step, folder)
        elapsed = time.perf_counter() - started
        selected = self.dev is not None and self.state.best_step >= 0
        groups_done = steps_run * cfg.batch_size * cfg.grad_accumulation * self.world
        result: dict[str, Any] = {
            "steps": self.state.global_step,
            "steps_this_run": steps_run,
            "total_steps": self.total_steps,
            "epochs": round(self.state.global_step / self.steps_per_epoch, 3),
            "resumed_from_step": resumed_from,
            "stopped_early": self.state.stopped_early,
            "best_dev_ndcg@10": self.state.best_dev_ndcg if selected else None,
            "best_step": self.state.best_step if selected else None,
            "dev_history": [h for h in self.state.history if "dev_ndcg@10" in h],
            "mean_loss": loss_sum / steps_run if steps_run else None,
            "seconds": round(elapsed, 3),  # wall time, dev evaluations and checkpoints included
            "groups_per_second": groups_done / step_seconds if step_seconds > 0 else None,
            # the rate `synthrank plan` times the next training of the folder at (pairs x max_length)
            "pair_tokens_per_second": (
                groups_done * cfg.group_size * cfg.max_length / step_seconds if step_seconds > 0 else None
            ),
            "device": str(self.device),
            "world_size": self.world,
            **{f"data_{k}": v for k, v in self.data.stats.as_dict().items()},
        }
        if self.rank == 0:
            self._finish(result)
        if self.world > 1:
            dist.barrier()
        return result

    def _finish(self, result: dict[str, Any]) -> None:
        """The best dev model (or the last one without a dev set) goes to the output with its card."""
        best = self.checkpoints / "best"
        if result["best_step"] is not None and best.is_dir():
            with atomic_path(self.output) as tmp:
                shutil.copytree(best, tmp)
        else:
            self.output.parent.mkdir(parents=True, exist_ok=True)
            self._save_model(self.output)
        finish_model_folder(self.output, base_model=self.cfg.model, config=asdict(self.cfg), result=result)
        with open(self.output / "training_log.jsonl", "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(entry) + "\n" for entry in self.state.history)


def _numpy_rng_state() -> tuple[Any, ...]:
    """NumPy's global RNG state as plain Python values, so checkpoints load with `weights_only=True`."""
    # the global RandomState is MT19937, whose legacy state is this tuple (numpy's stub allows a dict)
    state = cast("tuple[str, np.ndarray, int, int, float]", np.random.get_state(legacy=True))
    kind, keys, pos, has_gauss, gauss = state
    return (kind, keys.tolist(), int(pos), int(has_gauss), float(gauss))


def _read_trainer_state(folder: Path) -> dict[str, Any]:
    """A checkpoint's tensors and plain values; `weights_only` refuses anything a pickle could run."""
    return torch.load(folder / "trainer_state.pt", map_location="cpu", weights_only=True)


def _progress(enabled: bool) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        disable=not enabled or not os.isatty(2),
        transient=True,
    )


def run_train(
    layout: RunLayout, cfg: TrainConfig, *, on_checkpoint: Callable[[int, Path], None] | None = None
) -> dict[str, Any]:
    """Train a cross-encoder on `layout.train_groups` into `layout.model`; returns counts and timings.

    With `warm_start`, a model the distill stage trained from `cfg.model` is the start point instead.
    """
    warm = warm_start_for(layout, cfg.model) if cfg.warm_start else None
    if warm is not None:
        log.info("starting from the warm start %s (distilled from %s)", warm, cfg.model)
        cfg = dataclasses.replace(cfg, model=str(warm))
    trainer = Trainer(layout, cfg, on_checkpoint=on_checkpoint)
    try:
        return trainer.train()
    finally:
        if trainer.owns_process_group:
            dist.destroy_process_group()
