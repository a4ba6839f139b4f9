"""README's Quality tables from `synthrank evaluate` reports, which may come from several sittings.

    python benches/quality/table.py RUN/eval-indomain-*/report.json RUN/eval-trec-*/report.json

Per data set, one row per system: the first stage and the bi-encoder once (every report reranks the
same lists, so they must agree query by query), then each report's cross-encoder and fused rows,
with nDCG@10, MRR@10 and MAP@100 and, against the bi-encoder, the mean nDCG@10 difference, queries
won/tied/lost and the paired randomisation test's p (20,000 sign flips) on per-query nDCG@10.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from synthrank.stages.evaluate.metrics import paired_comparison

BASELINE_KINDS = ("first-stage", "bi-encoder")


def collect(reports: list[Path]) -> dict[str, dict[str, tuple[dict[str, Any], dict[str, float]]]]:
    """data set -> system -> (its means, its per-query nDCG@10), in the order first met."""
    tables: dict[str, dict[str, tuple[dict[str, Any], dict[str, float]]]] = {}
    for path in reports:
        report = json.loads(path.read_text(encoding="utf-8"))
        for name, entry in report["datasets"].items():
            rows = tables.setdefault(name, {})
            for system, means in entry["systems"].items():
                per_query = entry["per_query_ndcg@10"][system]
                if system in rows and means["kind"] in BASELINE_KINDS and rows[system][1] != per_query:
                    raise SystemExit(
                        f"{path}: {name}: {system} differs from an earlier report's: not the same lists"
                    )
                rows.setdefault(system, (means, per_query))
    return tables


def markdown(name: str, rows: dict[str, tuple[dict[str, Any], dict[str, float]]]) -> str:
    bi = rows.get("bi-encoder")
    queries = len(next(iter(rows.values()))[1])
    lines = [
        f"| {name} ({queries} q) | nDCG@10 | MRR@10 | MAP@100 | vs bi-encoder: Δ, W/T/L, p |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for system, (means, per_query) in rows.items():
        versus = ""
        if bi is not None and means["kind"] not in BASELINE_KINDS:
            c = paired_comparison(bi[1], per_query, n_resamples=20_000)
            p = "p < 0.001" if c["p_randomization"] < 0.001 else f"p = {c['p_randomization']:.2g}"
            versus = f"{c['mean_diff']:+.4f}, {c['wins']:.0f}/{c['ties']:.0f}/{c['losses']:.0f}, {p}"
        metrics = " | ".join(f"{means[m]:.4f}" for m in ("ndcg@10", "mrr@10", "map@100"))
        lines.append(f"| {system} | {metrics} | {versus} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("reports", type=Path, nargs="+", help="report.json files of `synthrank evaluate`")
    args = parser.parse_args()
    missing = [str(p) for p in args.reports if not p.is_file()]
    if missing:
        sys.exit(f"no such report: {', '.join(missing)}")
    print("\n\n".join(markdown(name, rows) for name, rows in collect(args.reports).items()))


if __name__ == "__main__":
    main()
