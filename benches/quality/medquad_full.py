"""Issue 16's quality run on the full MedQuAD release: the recipe `medquad-full.toml`, then its rows.

    python benches/quality/medquad_full.py OUT --medquad medquad-xml.tar.gz --llm http://127.0.0.1:8080/v1
    python benches/quality/medquad_full.py OUT --medquad medquad-xml.tar.gz --replies REPLIES.sqlite.gz

With `--llm`, Qwen2.5-Coder-0.5B-Instruct behind that URL (`synthrank serve-llm --model qwen0.5b`)
writes and grades; with `--replies`, a recorded cache is replayed offline (nothing is sent; a reply
missing from it is an error); with both, the recorded replies seed the cache and the server writes
only what they miss, so the LLM part can be split over several sittings (export, then resume from
the export on another machine). OUT is the run folder. Steps, each resumed or skipped when run again:
1. `synthrank run` on the recipe: ingest (20 % of foci held out) ... judge, mine, the warm start,
   LCE from it ("ours") and the run's own evaluation;
2. `--to judge` stops there (the LLM part; `--export-replies FILE` writes the cache, gzipped, when
   the pipeline ends, also when it is stopped or fails);
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
import signal
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


def seed_replies(replies: Path, out: Path) -> None:
    """Add a recorded cache's replies to the run folder's cache (a new cache is the recording itself);
    replies the run already holds are kept."""
    import sqlite3

    cache = out / "llm_cache.sqlite"
    tmp = cache.with_name(cache.name + ".seed")
    with gzip.open(replies, "rb") as src, open(tmp, "wb") as dst:
        shutil.copyfileobj(src, dst)
    if not cache.exists():
        tmp.replace(cache)
        return
    db = sqlite3.connect(cache)
    try:
        db.execute("ATTACH ? AS seed", (str(tmp),))
        with db:
            columns = "key, kind, response, created"
            added = db.execute(
                f"INSERT OR IGNORE INTO responses ({columns}) SELECT {columns} FROM seed.responses"
            ).rowcount
    finally:
        db.close()
    tmp.unlink()
    logging.info("%s: %d recorded replies added to %s", replies, added, cache)


def export_replies(out: Path, target: Path) -> None:
    """The run's LLM cache, checkpointed into one file and gzipped, for `--replies`."""
    import sqlite3

    snapshot = target.with_suffix(".tmp")
    snapshot.unlink(missing_ok=True)  # VACUUM INTO will not overwrite a killed export's leftover
    db = sqlite3.connect(out / "llm_cache.sqlite")
    try:
        db.execute("VACUUM INTO ?", (str(snapshot),))
    finally:
        db.close()
    partial = target.with_name(target.name + ".part")
    with open(snapshot, "rb") as src, gzip.open(partial, "wb", compresslevel=9) as dst:
        shutil.copyfileobj(src, dst)
    partial.replace(target)  # an interrupted export leaves the previous file whole
    snapshot.unlink()


def stop_on_signals() -> None:
    """`kill -INT` and `kill -TERM` stop the run as Ctrl-C does (replies exported, work kept), also
    when it was started in the background, where a shell leaves SIGINT ignored."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, help="run folder")
    parser.add_argument("--medquad", type=Path, required=True, help="MedQuAD's medquad-xml.tar.gz")
    parser.add_argument("--llm", help="OpenAI-compatible base URL serving qwen2.5-coder-0.5b-instruct")
    parser.add_argument("--replies", type=Path, help="a recorded cache (.sqlite.gz) to replay")
    parser.add_argument("--to", choices=("judge",), help="stop after the LLM stages")
    parser.add_argument("--export-replies", type=Path, help="write the run's LLM cache here (gzipped)")
    parser.add_argument("--trec-dl-archive", type=Path, help="trec-dl-19.tar.gz (README, Data and licences)")
    args = parser.parse_args()
    stop_on_signals()
    if not (args.llm or args.replies):
        parser.error("give --llm, --replies or both")
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    log_to(out)
    llm = {"base_urls": [args.llm]} if args.llm else {"offline": True}
    if args.replies:
        seed_replies(args.replies, out)
    config = load_config(
        RECIPE,
        overrides={"run": {"dir": str(out)}, "corpus": {"path": str(args.medquad.resolve())}, "llm": llm},
    )
    try:
        for result in run_pipeline(config, stop=args.to):
            logging.info("%s %s %.0f s %s", result.stage, result.action, result.seconds, result.counts)
    finally:
        # also on Ctrl-C or a failed stage: the replies so far are what a later sitting resumes from
        if args.export_replies and (out / "llm_cache.sqlite").exists():
            export_replies(out, args.export_replies)
            logging.info("LLM replies exported to %s", args.export_replies)
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
