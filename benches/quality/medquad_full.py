"""Issue 16's quality run on the full MedQuAD release: the recipe `medquad-full.toml`, then its rows.

    python benches/quality/medquad_full.py OUT --medquad medquad-xml.tar.gz --llm http://127.0.0.1:8080/v1
    python benches/quality/medquad_full.py OUT --medquad medquad-xml.tar.gz --replies REPLIES.sqlite.gz

With `--llm`, Qwen2.5-Coder-0.5B-Instruct behind that URL (`synthrank serve-llm --model qwen0.5b`)
writes and grades; with `--replies`, a recorded cache is replayed offline (nothing is sent; a reply
missing from it is an error); with both, the recorded replies seed the cache and the server writes
only what they miss, so the LLM part can be split over several sittings (export, then resume from
the export on another machine). OUT is the run folder. Steps, each resumed or skipped when run again:
1. `synthrank run` on the recipe up to its groups (mine), then, for the rows that need them, the
   warm start and LCE from it ("ours"); `--to judge` stops after the LLM stages, and
   `--export-replies FILE` writes the LLM cache, gzipped, when the pipeline ends, stopped or not;
2. the ablations: a naive cross-encoder (BCE, source positives, random negatives) and LCE without
   the warm start, from the same start model and groups;
3. each row (`--rows`, default all) reranks the same lists on its own: 300 held-out real questions
   (BM25 top-30) and, given `--trec-dl-archive`, TREC DL 2019 (BM25 top-100), with its fused row
   at the weight picked on the synthetic dev set (`--fuse auto`), never on test questions; its
   reports go to OUT/eval-*-ROW (and `--results DIR`), and the table of every row evaluated so
   far is printed (`table.py`). A sitting too short for all rows does some; the reports of several
   sittings make one table, since every report holds the same BM25 and bi-encoder rows.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from common import evaluate_rows, log_to, synthrank
from table import collect, markdown

from synthrank.errors import SynthrankError, exit_code
from synthrank.llm.cache import ResponseCache
from synthrank.records import RunLayout
from synthrank.run.pipeline import run_pipeline
from synthrank.run.settings import load_config

RECIPE = Path(__file__).with_name("medquad-full.toml")
# the ablations start from a new head, not the warm start: the learning rates of the recipe before it
NEW_HEAD = ("--no-warm-start", "--lr", "2e-4", "--head-learning-rate", "1e-3")
# trained on the same groups as ours: folder -> `synthrank train` options
ABLATIONS = {
    "naive": ("--loss", "bce", "--positives", "source", "--negatives", "random", *NEW_HEAD),
    "lce-only": NEW_HEAD,
}
# the table's rows, in its order, and where each model is written
ROW_MODELS = {"naive": "naive", "warm-start": "warm_start", "lce-only": "lce-only", "ours": "model"}
DATASETS = ("indomain", "trec")  # the report folders' names: eval-DATASET-ROW


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
    parser.add_argument(
        "--rows",
        type=lambda text: [row for row in text.split(",") if row],
        default=list(ROW_MODELS),
        help=f"rows to train and evaluate in this sitting, comma-separated (default {','.join(ROW_MODELS)})",
    )
    parser.add_argument("--results", type=Path, help="copy the rows' evaluation reports into this folder")
    args = parser.parse_args()
    unknown = sorted(set(args.rows) - set(ROW_MODELS))
    if unknown or not args.rows:
        parser.error(
            f"--rows: unknown {', '.join(unknown) or 'nothing'}; choose from {', '.join(ROW_MODELS)}"
        )
    stop_on_signals()
    if not (args.llm or args.replies):
        parser.error("give --llm, --replies or both")
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    log_to(out)
    llm = {"base_urls": [args.llm]} if args.llm else {"offline": True}
    llm_cache = RunLayout(out).llm_cache
    if args.replies:
        with ResponseCache(llm_cache) as cache:
            added = cache.merge(args.replies)
        logging.info("%s: %d recorded replies added to the run's cache", args.replies, added)
    config = load_config(
        RECIPE,
        overrides={"run": {"dir": str(out)}, "corpus": {"path": str(args.medquad.resolve())}, "llm": llm},
    )
    try:
        # the warm start and ours come from the pipeline's distill and train stages; the ablations
        # need only its groups
        stop = args.to or (
            "train" if "ours" in args.rows else "distill" if "warm-start" in args.rows else "mine"
        )
        for result in run_pipeline(config, stop=stop):
            logging.info("%s %s %.0f s %s", result.stage, result.action, result.seconds, result.counts)
    finally:
        # also on Ctrl-C or a failed stage: the replies so far are what a later sitting resumes from
        if args.export_replies and llm_cache.exists():
            with ResponseCache(llm_cache) as cache:
                cache.export(args.export_replies)
            logging.info("LLM replies exported to %s", args.export_replies)
    if args.to:
        return

    datasets = DATASETS[: 1 + bool(args.trec_dl_archive)]
    for row in args.rows:
        if row in ABLATIONS and not (out / row / "config.json").exists():
            synthrank("train", "--run", out, "--output", out / row, *ABLATIONS[row])
        if not all((out / f"eval-{name}-{row}" / "report.json").exists() for name in datasets):
            evaluate_rows(out, {row: out / ROW_MODELS[row]}, args.trec_dl_archive, suffix=f"-{row}")
    print_table(out, args.results)


def keep_report(report: Path, kept: Path, out: Path) -> None:
    """Copy a report for the repository without this machine's paths: the run folder is `OUT`, as in
    the README's commands, and the TREC archive is named by its file name."""

    def portable(value: Any) -> Any:
        if isinstance(value, str):
            return value.replace(str(out), "OUT")
        if isinstance(value, list):
            return [portable(item) for item in value]
        if isinstance(value, dict):
            return {key: portable(item) for key, item in value.items()}
        return value

    data = portable(json.loads(report.read_text(encoding="utf-8")))
    if data["config"].get("trec_dl_archive"):
        data["config"]["trec_dl_archive"] = Path(data["config"]["trec_dl_archive"]).name
    kept.parent.mkdir(parents=True, exist_ok=True)
    kept.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def print_table(out: Path, results: Path | None) -> None:
    """The table of every row evaluated so far: in this run folder, else among the reports kept from
    earlier sittings in `results` (where this sitting's are copied)."""
    reports = []
    for row, name in itertools.product(ROW_MODELS, DATASETS):
        report = out / f"eval-{name}-{row}" / "report.json"
        kept = results / f"eval-{name}-{row}.json" if results else None
        if report.exists() and kept:
            keep_report(report, kept, out)
        reports += [path for path in (report, kept) if path and path.exists()][:1]
    reports.sort(key=lambda path: "trec" in path.parent.name + path.name)  # in-domain tables first
    print("\n\n".join(markdown(name, rows) for name, rows in collect(reports).items()))


if __name__ == "__main__":
    try:
        main()
    except (KeyboardInterrupt, SynthrankError, subprocess.CalledProcessError) as exc:
        # finished stages and cached LLM replies stay on disk: the same command resumes
        print(f"stopped: {exc or 'interrupted'}; finished work is kept", file=sys.stderr)
        sys.exit(exc.returncode if isinstance(exc, subprocess.CalledProcessError) else exit_code(exc))
