"""What the quality scripts share: the CLI as a subprocess, their log, and the evaluation of their rows."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path


def synthrank(*args: str | Path) -> None:
    subprocess.run([sys.executable, "-m", "synthrank", *map(str, args)], check=True)


def log_to(folder: Path) -> None:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(message)s",
        handlers=[logging.FileHandler(folder / "experiment.log"), logging.StreamHandler()],
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per LLM request otherwise


def evaluate_rows(
    run: Path, models: dict[str, Path], trec_dl_archive: Path | None, *, suffix: str = ""
) -> None:
    """Every model reranks the same lists: 300 held-out real questions (BM25 top-30) and, given the
    archive, TREC DL 2019 (BM25 top-100); fused rows at the weight the synthetic dev set picks
    (the even mix on too few dev queries), never at one picked on test questions. The reports go
    to `RUN/eval-indomain{suffix}` and `RUN/eval-trec{suffix}`."""
    common = [*(f"--model={name}={path}" for name, path in models.items()), "--fuse", "auto"]
    common += ["--max-length", "256"]
    synthrank(
        "evaluate", "--run", run, *common, "--dataset", "indomain", "--indomain-max-queries", "300",
        "--top-k", "30", "--output", run / f"eval-indomain{suffix}",
    )  # fmt: skip
    if trec_dl_archive:
        synthrank(
            "evaluate", "--run", run, *common, "--dataset", "trec-dl-19",
            "--trec-dl-archive", trec_dl_archive, "--output", run / f"eval-trec{suffix}",
        )  # fmt: skip
