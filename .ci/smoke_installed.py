"""Smoke-test an installed synthrank wheel through its CLI: ingest (chunking, exact and near-duplicate
clusters), dedup in `synthrank bench`, and mine, all on the native backend. Run it with the Python
of the venv the wheel went into, from a folder outside the source tree.

    python .ci/smoke_installed.py SOURCE_TREE WORK_FOLDER
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

SOURCE, WORK = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()
VENV_BIN = Path(sys.executable).parent


def run(*args: str) -> str:
    done = subprocess.run([str(VENV_BIN / "synthrank"), *args], capture_output=True, text=True, cwd=WORK)
    if done.returncode != 0:
        sys.exit(f"synthrank {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def main() -> None:
    import synthrank
    from synthrank.native import _backend

    where = Path(synthrank.__file__).resolve()
    if Path(sys.prefix).resolve() not in where.parents:
        sys.exit(f"synthrank was imported from {where}, not from the venv the wheel went into ({sys.prefix})")
    if not _backend.native_available():
        sys.exit("the installed wheel's native extension does not load")
    native = _backend.get("native")
    if native.build_profile() != "release":
        sys.exit(f"the wheel carries a {native.build_profile()} build")
    for tool in ("cargo", "rustc"):
        if shutil.which(tool):
            sys.exit(f"{tool} is on PATH: this check must run without a Rust toolchain")
    print(f"synthrank {synthrank.__version__} from {where.parent}, native {Path(native.__file__).name}")

    os.environ["SYNTHRANK_BACKEND"] = "native"
    WORK.mkdir(parents=True, exist_ok=True)
    corpus = WORK / "corpus.jsonl"
    body = "Aspirin lowers fever and eases pain in adults; children should not take it. "
    with open(corpus, "w", encoding="utf-8") as fh:
        for i in range(40):
            text = f"Document {i % 30} about topic {i % 30}. " + body * (1 + i % 5)
            fh.write(json.dumps({"id": f"doc-{i}", "text": text}) + "\n")
    counts = json.loads(run("ingest", str(corpus), "--run", "run").strip().splitlines()[-1])
    print(f"ingest: {counts}")
    if counts["documents"] != 40 or counts["exact_duplicate_passages"] != 10:  # docs i and i + 30 are equal
        sys.exit(f"ingest: expected 40 documents with 10 exact duplicates, got {counts}")

    bench = WORK / "bench.json"
    run("bench", "--stage", "dedup", "--size", "1000", "--repeat", "1", "--json", str(bench))
    rows = json.loads(bench.read_text(encoding="utf-8"))["results"]
    native_row = next(r for r in rows if r["implementation"] == "native")
    if native_row["matches"] is not True:
        sys.exit(f"bench dedup: native output differs from the python twin: {native_row}")
    print(f"bench dedup 1000: native {native_row['seconds']:.4f} s, equal to the twin")

    # mine on the mining tests' fixture run (queries, candidates and judgments written by hand)
    sys.path.insert(0, str(SOURCE / "tests"))
    from test_mining import make_run, q0_judgments

    layout = make_run(WORK / "mine-run", q0_judgments())
    run("mine", "--run", str(layout.root), "--num-negatives", "3")
    groups = layout.train_groups.read_text(encoding="utf-8").splitlines()
    if not groups:
        sys.exit("mine wrote no training group")
    print(f"mine: {len(groups)} training groups")
    print("smoke test passed")


if __name__ == "__main__":
    main()
