"""Peak memory of `ingest` against the size of one single huge document.

Each size runs in a fresh process (one JSONL line, or one .txt file, holding one document of real
MedQuAD text, repeated with a counter so that passages differ) and the peak RSS is the kernel's
high-water mark of that process (`wait4`). Before long documents were tokenized in slices, a 20 MB
document peaked at ~3 GB; the target is < 300 MB for 100 MB.
Run: `python benches/bench_ingest_memory.py 20 100 [--format jsonl|text|both]` (sizes in MB;
default 1 5 20, JSONL).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LIVEQA_ZIP = REPO.parent / "shared" / "data" / "medquad-liveqa-test-qrels.zip"
CHILD = """
import sys
from pathlib import Path
from synthrank.stages.ingest.ingest import IngestConfig, run_ingest
from synthrank.records import RunLayout
counts = run_ingest(RunLayout(Path(sys.argv[1])), IngestConfig(heldout_fraction=0.0), Path(sys.argv[2]))
print(counts["passages"])
"""
BASELINE = "import synthrank.stages.ingest.ingest, tokenizers, numpy"


def sample_text() -> str:
    import csv
    import io
    import zipfile

    if not LIVEQA_ZIP.is_file():
        return " ".join(
            f"Insulin helps glucose enter cells; dose {i} matters for patients." for i in range(2000)
        )
    with zipfile.ZipFile(LIVEQA_ZIP) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".csv") and "__MACOSX" not in n)
        with archive.open(name) as raw:
            rows = list(csv.reader(io.TextIOWrapper(raw, encoding="utf-8", errors="replace")))
    return "\n".join(row[1] for row in rows[1:500])


def write_document(path: Path, megabytes: float) -> int:
    """One document of about `megabytes` MB of text, as a JSONL line or (for a .txt path) a text
    file; returns the text's length in characters."""
    base = sample_text()
    target = int(megabytes * 1_000_000)
    parts, size, i = [], 0, 0
    while size < target:
        part = f"Part {i}. {base}"
        parts.append(part)
        size += len(part) + 1
        i += 1
    text = "\n".join(parts)[:target]
    if path.suffix == ".txt":
        path.write_text(text, encoding="utf-8")
    else:
        path.write_text(json.dumps({"id": "huge", "text": text}) + "\n", encoding="utf-8")
    return len(text)


def write_document_apart(path: Path, megabytes: float) -> int:
    """`write_document` in a process of its own. On Linux a child's peak RSS (`wait4`) includes the
    high-water mark of the process that started it, counted up to its exec: had this process built
    the document, a 100 MB one would have "peaked" at the ~420 MB it took to write it."""
    code = (
        "import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); "
        "from bench_ingest_memory import write_document; "
        "print(write_document(Path(sys.argv[2]), float(sys.argv[3])))"
    )
    args = [sys.executable, "-c", code, str(Path(__file__).parent), str(path), str(megabytes)]
    return int(subprocess.run(args, check=True, capture_output=True, text=True).stdout)


def peak_rss_mb(args: list[str]) -> tuple[float, float, str]:
    """(peak RSS in MB, seconds, stdout) of a child process."""
    started = time.monotonic()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    out = proc.stdout.read() if proc.stdout else ""
    err = proc.stderr.read() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{args[:3]} failed: {err[-2000:]}")
    scale = 1024 if sys.platform != "darwin" else 1  # ru_maxrss is KiB on Linux, bytes on macOS
    return usage.ru_maxrss * scale / 1e6, time.monotonic() - started, out.strip()


def measure(megabytes: float, fmt: str = "jsonl") -> dict[str, float]:
    """Peak RSS of ingesting one document given as a JSONL line or (fmt "text") a folder's .txt file."""
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "huge.jsonl"
        if fmt == "text":
            source = Path(tmp) / "corpus"
            source.mkdir()
        chars = write_document_apart(source / "huge.txt" if fmt == "text" else source, megabytes)
        rss, seconds, passages = peak_rss_mb(
            [sys.executable, "-c", CHILD, str(Path(tmp) / "run"), str(source)]
        )
        return {"input_mb": chars / 1e6, "peak_rss_mb": rss, "seconds": seconds, "passages": float(passages)}


def test_ingest_memory_smoke() -> None:
    jsonl, text = measure(1), measure(1, "text")
    assert jsonl["passages"] == text["passages"] > 100
    assert jsonl["peak_rss_mb"] < 1000 and text["peak_rss_mb"] < 1000


def main(sizes: list[float], formats: list[str]) -> None:
    baseline, _, _ = peak_rss_mb([sys.executable, "-c", BASELINE])
    print(f"baseline (python + synthrank imports): {baseline:.0f} MB peak RSS")
    columns = ("format", 6), ("document MB", 12), ("peak RSS MB", 12), ("RSS/input", 10), ("passages", 9)
    print(" ".join(f"{name:>{width}}" for name, width in columns), f"{'seconds':>8}")
    for size in sizes:
        for fmt in formats:
            r = measure(size, fmt)
            print(
                f"{fmt:>6} {r['input_mb']:12.1f} {r['peak_rss_mb']:12.0f} "
                f"{r['peak_rss_mb'] / r['input_mb']:10.1f} {r['passages']:9.0f} {r['seconds']:8.1f}",
                flush=True,
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=float, default=[1.0, 5.0, 20.0], help="document sizes in MB")
    parser.add_argument("--format", choices=["jsonl", "text", "both"], default="jsonl")
    args = parser.parse_args()
    main(args.sizes, ["jsonl", "text"] if args.format == "both" else [args.format])
