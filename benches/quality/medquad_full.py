"""Issue 16's quality run on the full MedQuAD release: the recipe `medquad-full.toml`, then its rows.

    python benches/quality/medquad_full.py OUT --medquad medquad-xml.tar.gz --llm http://127.0.0.1:8080/v1
    python benches/quality/medquad_full.py OUT --medquad medquad-xml.tar.gz --replies REPLIES.sqlite.gz

With `--llm`, Qwen2.5-Coder-0.5B-Instruct behind that URL (`synthrank serve-llm --model qwen0.5b`)
writes and grades; with `--replies`, a recorded cache is replayed offline (nothing is sent; a reply
missing from it is an error). OUT is the run folder. Steps, each resumed or skipped when run again:
1. `synthrank run` on the recipe: ingest (20 % of foci held out) ... judge, mine, the warm start,
   LCE from it ("ours") and the run's own evaluation;
2. `--to judge` stops there (the LLM part; `--export-replies FILE` then writes the cache, gzipped);
3. the ablations: a naive cross-encoder (BCE, source positives, random negatives) and LCE without
   the warm start, from the same start model and groups;
4. every model reranks the same lists: 300 held-out real questions (BM25 top-30) and, given
   `--trec-dl-archive`, TREC DL 2019 (BM25 top-100); fused rows at the weight picked on the
   synthetic dev set (`--fuse auto`), never on test questions.
"""

from __future__ import annotations

import argparse
import gzip
import logging
import shutil
import subprocess
import sys
from pathlib import Path

from common import evaluate_rows, log_to, synthrank

from synthrank.errors import SynthrankError, exit_code
from synthrank.run.pipeline import run_pipeline
from synthrank.run.settings import load_config

RECIPE = Path(__file__).with_name("medquad-full.toml")
# the ablations start from a new head, not the warm start: the learning rates of the recipe before it
NEW_HEAD = ("--no-warm-start", "--lr", "2e-4", "--head-learning-rate", "1e-3")
# trained on the same groups as ours: (folder, `synthrank train` options)
ABLATIONS = (
    ("naive", ("--loss", "bce", "--positives", "source", "--negatives", "random", *NEW_HEAD)),
    ("lce-only", NEW_HEAD),
)


def copy_replies(replies: Path, out: Path) -> None:
    """Unpack a recorded cache into the run folder once; later runs add to it there."""
    cache = out / "llm_cache.sqlite"
    if cache.exists():
        return
    tmp = cache.with_name(cache.name + ".tmp")
    with gzip.open(replies, "rb") as src, open(tmp, "wb") as dst:
        shutil.copyfileobj(src, dst)
    tmp.replace(cache)


def export_replies(out: Path, target: Path) -> None:
    """The run's LLM cache, checkpointed into one file and gzipped, for `--replies`."""
    import sqlite3

    snapshot = target.with_suffix(".tmp")
    with sqlite3.connect(out / "llm_cache.sqlite") as db:
        db.execute("VACUUM INTO ?", (str(snapshot),))
    with open(snapshot, "rb") as src, gzip.open(target, "wb", compresslevel=9) as dst:
        shutil.copyfileobj(src, dst)
    snapshot.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, help="run folder")
    parser.add_argument("--medquad", type=Path, required=True, help="MedQuAD's medquad-xml.tar.gz")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--llm", help="OpenAI-compatible base URL serving qwen2.5-coder-0.5b-instruct")
    source.add_argument("--replies", type=Path, help="a recorded cache (.sqlite.gz) to replay offline")
    parser.add_argument("--to", choices=("judge",), help="stop after the LLM stages")
    parser.add_argument("--export-replies", type=Path, help="write the run's LLM cache here (gzipped)")
    parser.add_argument("--trec-dl-archive", type=Path, help="trec-dl-19.tar.gz (README, Data and licences)")
    args = parser.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    log_to(out)
    llm = {"base_urls": [args.llm]} if args.llm else {"offline": True}
    if args.replies:
        copy_replies(args.replies, out)
    config = load_config(
        RECIPE,
        overrides={"run": {"dir": str(out)}, "corpus": {"path": str(args.medquad.resolve())}, "llm": llm},
    )
    for result in run_pipeline(config, stop=args.to):
        logging.info("%s %s %.0f s %s", result.stage, result.action, result.seconds, result.counts)
    if args.export_replies:
        export_replies(out, args.export_replies)
    if args.to:
        return

    for folder, options in ABLATIONS:
        if not (out / folder / "config.json").exists():
            synthrank("train", "--run", out, "--output", out / folder, *options)
    models = {"warm-start": out / "warm_start", "naive": out / "naive", "lce-only": out / "lce-only"}
    evaluate_rows(out, {**models, "ours": out / "model"}, args.trec_dl_archive)


if __name__ == "__main__":
    try:
        main()
    except (KeyboardInterrupt, SynthrankError, subprocess.CalledProcessError) as exc:
        # finished stages and cached LLM replies stay on disk: the same command resumes
        print(f"stopped: {exc or 'interrupted'}; finished work is kept", file=sys.stderr)
        sys.exit(exc.returncode if isinstance(exc, subprocess.CalledProcessError) else exit_code(exc))
