"""Print how each stage scales: native vs python twin vs peers at 10k, 100k and 1M items.

    python benches/scale.py                       # every stage, 10k / 100k / 1M (takes a while)
    python benches/scale.py --stage dedup --size 100000 --json scale.json

The twin and the peers run on at most --sample-cap items and their seconds are extrapolated
(marked "(10k sample)" in the table). Needs a release build: `maturin develop --release`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console

from synthrank import bench
from synthrank.errors import SynthrankError

DEFAULT_SIZES = (10_000, 100_000, 1_000_000)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stage", action="append", choices=list(bench.STAGES), help="default: all")
    parser.add_argument("--size", action="append", type=int, help="default: 10k, 100k, 1M")
    parser.add_argument("--sample-cap", type=int, default=10_000)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--repeat", type=int, default=1, help="runs each (one if over 5 s); fastest kept")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    console = Console(width=140)
    try:
        results = bench.run_bench(
            args.stage or list(bench.STAGES),
            args.size or DEFAULT_SIZES,
            threads=args.threads,
            repeat=args.repeat,
            sample_cap=args.sample_cap,
            on_stage_done=lambda done: console.print(
                f"{done[0].stage} x {done[0].size:,}: "
                + ", ".join(f"{r.label} {r.seconds:.3g}s" for r in done)
            ),
        )
    except SynthrankError as error:
        console.print(f"[red]{error}")
        return 2
    console.print(bench.render_table(results))
    if args.json:
        bench.write_json(args.json, results, bench.environment(args.threads, args.repeat, args.sample_cap, 0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
