"""Training throughput (groups/s): synthrank's Trainer vs a bare PyTorch loop, same model and batches.

The bare loop gets the very groups the Trainer draws (built before timing) and does only what any
loop must: tokenize, forward, LCE, backward, clip, AdamW, scheduler. The Trainer's extra work (group
drawing, bookkeeping, progress) must cost under 10 %. Both start from the same seed, so their final
weights are compared too (`extra_info["same_weights"]`).
Run: `pytest benches/bench_training.py --benchmark-enable`, or `python benches/bench_training.py`
for a plain table. BENCH_TRAIN_MODEL picks the model (default: all-MiniLM-L6-v2 with a new head).
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from synthrank.records import Passage, RunLayout, TrainGroup, write_jsonl_atomic
from synthrank.stages.train import load_cross_encoder
from synthrank.stages.train.data import encode_pairs, load_groups
from synthrank.stages.train.losses import lce_loss
from synthrank.stages.train.trainer import TrainConfig, Trainer

os.environ.setdefault("HF_HUB_OFFLINE", "1")
MODEL = os.environ.get("BENCH_TRAIN_MODEL", "sentence-transformers/all-MiniLM-L6-v2")
STEPS, BATCH, GROUP_SIZE, MAX_LENGTH = 8, 4, 8, 128
WORDS = [
    "insulin",
    "glucose",
    "asthma",
    "fever",
    "lupus",
    "kidney",
    "liver",
    "symptoms",
    "treatment",
    "cause",
    "dose",
    "risk",
    "child",
    "adult",
]


def make_run(root: Path, n_groups: int = STEPS * BATCH, seed: int = 0) -> RunLayout:
    """Synthetic groups of realistic length (~100-word passages, 15 negatives per query)."""
    rng = random.Random(seed)
    layout = RunLayout(root)
    passages = [
        Passage(f"d{i}#0", f"d{i}", " ".join(rng.choices(WORDS, k=rng.randint(60, 140)))) for i in range(400)
    ]
    write_jsonl_atomic(layout.passages, passages)
    groups = []
    for q in range(n_groups):
        picked = rng.sample(passages, 16)
        groups.append(
            TrainGroup(
                " ".join(rng.choices(WORDS, k=6)),
                [picked[0].text],
                [p.text for p in picked[1:]],
                f"q{q}",
                [picked[0].passage_id],
                [p.passage_id for p in picked[1:]],
            )
        )
    write_jsonl_atomic(layout.train_groups, groups)
    return layout


def config(output: Path) -> TrainConfig:
    return TrainConfig(
        model=MODEL,
        batch_size=BATCH,
        group_size=GROUP_SIZE,
        epochs=1,
        max_steps=STEPS,
        max_length=MAX_LENGTH,
        checkpoint_every=0,
        early_stopping_patience=0,
        output=str(output),
        resume=False,
        cpu_threads=torch.get_num_threads(),
    )


def run_trainer(layout: RunLayout, output: Path) -> tuple[float, Any]:
    """Wall time of `train()` (model loading excluded, the final save included)."""
    trainer = Trainer(layout, config(output))
    started = time.perf_counter()
    trainer.train()
    return STEPS * BATCH / (time.perf_counter() - started), trainer.model


def run_bare(layout: RunLayout, output: Path) -> tuple[float, Any]:
    """The same batches through a plain loop (the groups are drawn before the clock starts)."""
    cfg = config(output)
    data = load_groups(layout, cfg.group_options())
    order = data.epoch_order(0)
    batches = []
    for step in range(STEPS):
        queries, texts = [], []
        for index in order[step * BATCH : (step + 1) * BATCH]:
            query, group = data.group(int(index), 0)
            queries += [query] * len(group)
            texts += group
        batches.append((queries, texts))
    torch.manual_seed(cfg.seed)
    model, tokenizer = load_cross_encoder(cfg.model)
    model.train()
    decay = [p for n, p in model.named_parameters() if p.ndim > 1 and "LayerNorm" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.ndim > 1 and "LayerNorm" not in n)]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": rest, "weight_decay": 0.0}],
        lr=cfg.learning_rate,
    )
    warmup = int(cfg.warmup_ratio * STEPS)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: (s + 1) / (warmup + 1) if s < warmup else max(0.0, (STEPS - s) / max(1, STEPS - warmup)),
    )
    started = time.perf_counter()
    for queries, texts in batches:
        enc = encode_pairs(tokenizer, queries, texts, cfg.max_length, cfg.max_query_tokens)
        loss = lce_loss(model(**enc).logits.view(-1, GROUP_SIZE))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    return STEPS * BATCH / (time.perf_counter() - started), model


RUNNERS = {"synthrank": run_trainer, "bare-pytorch": run_bare}


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> RunLayout:
    return make_run(tmp_path_factory.mktemp("bench-train"))


@pytest.mark.parametrize("loop", list(RUNNERS))
def test_training_throughput(benchmark: Any, layout: RunLayout, loop: str, tmp_path: Path) -> None:
    benchmark.group = f"train {STEPS} steps x {BATCH} groups of {GROUP_SIZE}, max_length {MAX_LENGTH}"
    groups_per_second, _ = benchmark.pedantic(RUNNERS[loop], args=(layout, tmp_path / "model"), rounds=1)
    benchmark.extra_info["groups_per_second"] = round(groups_per_second, 3)


def main() -> None:
    """Alternate the two loops three times; print groups/s, the ratio and whether weights match."""
    with tempfile.TemporaryDirectory() as tmp:
        layout = make_run(Path(tmp) / "run")
        speeds: dict[str, list[float]] = {name: [] for name in RUNNERS}
        models = {}
        for _ in range(3):
            for name, runner in RUNNERS.items():
                gps, models[name] = runner(layout, Path(tmp) / name)
                speeds[name].append(gps)
        same = all(
            torch.allclose(a, b, atol=1e-6)
            for a, b in zip(
                models["synthrank"].state_dict().values(),
                models["bare-pytorch"].state_dict().values(),
                strict=True,
            )
        )
    best = {name: max(v) for name, v in speeds.items()}
    print(f"model {MODEL}, {torch.get_num_threads()} threads, {STEPS} steps x {BATCH} groups of {GROUP_SIZE}")
    for name, v in speeds.items():
        print(f"{name:>14}: best {best[name]:.3f} groups/s  (runs: {', '.join(f'{x:.3f}' for x in v)})")
    print(f"synthrank / bare = {best['synthrank'] / best['bare-pytorch']:.3f}; same final weights: {same}")


if __name__ == "__main__":
    sys.exit(main())
