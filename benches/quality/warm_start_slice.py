"""README's Quality table (the warm start + LCE on the bundled slice), as it was measured.

    python benches/quality/warm_start_slice.py OUT [--trec-dl-archive PATH]

No LLM: the demo's recorded replies are replayed. Two warm-start rounds (OUT/a: 2,303 Inverse-Cloze
pseudo-queries, seed 0, from the start model; OUT/b: a second draw, seed 14, continuing from a's
warm start), then LCE into OUT/b/model and LCE + 1.0 x KL into OUT/b/model-kl, then the evaluation
of every row on 300 held-out MedQuAD questions (BM25 top-30) and, given the archive, TREC DL 2019.
About 4 hours on 2 CPU cores; every step resumes from its checkpoints when run again. Nothing is
picked on test questions: the fusion weight is the even mix 0.5 (2 dev queries are too few).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import shutil
from pathlib import Path

from common import evaluate_rows, log_to, synthrank

from synthrank.cli.demo import demo_config, demo_file
from synthrank.run.pipeline import run_pipeline
from synthrank.stages.distill import DistillConfig

# the warm start: 8 lists of 8 candidates (6 from the bi-encoder's top, 2 random) per step
DISTILL = DistillConfig(
    enabled="on",
    pseudo_queries=3000,
    list_size=8,
    random_candidates=2,
    batch_size=8,
    epochs=1,
    max_length=128,
    learning_rate=1e-4,
    checkpoint_every=50,
)


def warm_start_round(run: Path, *, seed: int, head_learning_rate: float, start: str | None) -> None:
    """One warm-start round (and LCE after it) on the slice, replaying the demo's LLM replies."""
    run.mkdir(parents=True, exist_ok=True)
    if not (run / "llm_cache.sqlite").exists():
        shutil.copyfile(demo_file("replies.sqlite"), run / "llm_cache.sqlite")
    config = demo_config(run, live=False)
    train = dataclasses.replace(config.train, learning_rate=2e-5, head_learning_rate=0.0, epochs=3)
    config = config.with_changes(
        distill=dataclasses.replace(DISTILL, seed=seed, head_learning_rate=head_learning_rate),
        train=dataclasses.replace(train, model=start) if start else train,
    )
    for result in run_pipeline(config, stop="train"):
        logging.info("%s %s %.0f s %s", result.stage, result.action, result.seconds, result.counts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--trec-dl-archive", type=Path, help="trec-dl-19.tar.gz (README, Data and licences)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    log_to(args.out)
    a, b = args.out / "a", args.out / "b"
    warm_start_round(a, seed=0, head_learning_rate=1e-3, start=None)
    warm_start_round(b, seed=14, head_learning_rate=1e-4, start=str(a / "warm_start"))
    # the same LCE with the teacher kept in the loss (λ = 1)
    synthrank(
        "train", "--run", b, "--output", b / "model-kl", "--model", a / "warm_start", "--warm-start",
        "--epochs", "3", "--batch-size", "4", "--lr", "2e-5", "--random-negative-share", "0.5",
        "--max-length", "160", "--distill-weight", "1.0",
    )  # fmt: skip
    models = {"warm-start": b / "warm_start", "ours-kl": b / "model-kl", "ours": b / "model"}
    evaluate_rows(b, models, args.trec_dl_archive)


if __name__ == "__main__":
    main()
