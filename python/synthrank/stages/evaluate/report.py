"""Write the evaluation report: report.json, report.md, chart.png, and a printed rich table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from synthrank.records import atomic_path
from synthrank.stages.evaluate.metrics import METRICS

# Markers around the evaluation section of a model card (`training/model_card.py` writes the card).
CARD_EVAL_START = "<!-- synthrank:evaluation -->"
CARD_EVAL_END = "<!-- /synthrank:evaluation -->"

_HEAD = {"ndcg@10": "nDCG@10", "mrr@10": "MRR@10", "map@100": "MAP@100", "recall@100": "R@100"}


def _fmt(value: Any, digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def format_p(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.2g}"


def verdict_line(v: dict[str, Any]) -> str:
    """ "ours: better than bm25 (nDCG@10 +0.0810, p = 0.002)" """
    relation = {"better": "better than", "worse": "worse than"}.get(
        v["verdict"], "no significant difference from"
    )
    return f"{v['system']}: {relation} {v['baseline']} (nDCG@10 {v['mean_diff']:+.4f}, {format_p(v['p'])})"


def weight_origin(fusion: dict[str, Any]) -> str:
    """How `fuse_weights = "auto"` chose its weight (`mode`, `dev_queries` of the report's fusion or
    of a model's fusion record), for the report, the model card and the run report."""
    queries = fusion["dev_queries"]
    if fusion["mode"] == "auto":
        return f"picked on {queries} synthetic dev queries"
    why = (
        f"the synthetic dev set has {queries} queries, too few to pick a weight on "
        "([evaluate] fuse_min_dev_queries)"
        if queries
        else "the run has no synthetic dev set to pick a weight on ([mine] dev_fraction)"
    )
    if fusion["mode"] == "pseudo":
        return f"picked on {fusion['pseudo_queries']} pseudo-queries cut from training passages: {why}"
    return f"the even mix 0.5, fixed in advance: {why}"


def fusion_note(report: dict[str, Any]) -> str | None:
    """Which fusion weight was picked where, for `fuse_weights = "auto"`."""
    fusion = report.get("fusion")
    if not fusion:
        return None
    if fusion["mode"] == "even":
        return f"Fusion weight: {weight_origin(fusion)}.\n"
    picks = ", ".join(
        f"{label} → {w:g} (dev nDCG@10 {fusion['dev_ndcg@10'][label][f'{w:g}']:.4f}, "
        f"cross-encoder alone {fusion['dev_ndcg@10'][label]['1']:.4f})"
        for label, w in fusion["picked"].items()
    )
    return (
        f"Fusion weight {weight_origin(fusion)} (weights 0 to 1 in steps of 0.1), never on test "
        f"questions: {picks}.\n"
    )


def markdown_tables(report: dict[str, Any]) -> str:
    """Per data set: the verdicts, one metrics table, then the candidate's paired comparisons (nDCG@10)."""
    if not report["datasets"]:
        return "No evaluation: `[evaluate] datasets` is empty.\n"
    parts = []
    candidate = report.get("candidate")
    note = fusion_note(report)
    if note:
        parts.append(note)
    for name, ds in report["datasets"].items():
        kind = f"; {ds['kind']}" if ds.get("kind") else ""
        parts.append(
            f"### {name} ({ds['queries']} queries{kind}; {ds['pairs']} pairs, first stage: "
            f"{ds['first_stage']})\n"
        )
        if ds.get("verdicts"):
            parts.append(
                "Verdict (paired randomisation test on per-query nDCG@10, p < 0.05 is significant):\n"
            )
            parts += [f"- {verdict_line(v)}" for v in ds["verdicts"]]
            parts.append("")
        parts.append("| system | " + " | ".join(_HEAD[m] for m in METRICS) + " | pairs/s |")
        parts.append("| --- |" + " ---: |" * (len(METRICS) + 1))
        for system, row in ds["systems"].items():
            mark = "**" if system == candidate else ""
            cells = " | ".join(_fmt(row[m]) for m in METRICS)
            parts.append(f"| {mark}{system}{mark} | {cells} | {_fmt(row['pairs_per_second'], 1)} |")
        if ds["comparisons"]:
            parts.append(f"\n{candidate} vs each system, per query nDCG@10 (paired):\n")
            parts.append("| vs | Δ nDCG@10 | wins / ties / losses | p (t-test) | p (randomisation) |")
            parts.append("| --- | ---: | :---: | ---: | ---: |")
            for other, by_metric in ds["comparisons"].items():
                c = by_metric["ndcg@10"]
                wtl = f"{int(c['wins'])} / {int(c['ties'])} / {int(c['losses'])}"
                parts.append(
                    f"| {other} | {c['mean_diff']:+.4f} | {wtl} | {c['p_ttest']:.2g} "
                    f"| {c['p_randomization']:.2g} |"
                )
        parts.append("")
    return "\n".join(parts)


def write_chart(report: dict[str, Any], path: Path) -> None:
    """Grouped bars: one panel per data set, metrics on the x axis, one bar per system."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = list(report["datasets"])
    fig, axes = plt.subplots(1, len(names), figsize=(6 * len(names), 4.5), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        systems = report["datasets"][name]["systems"]
        x = np.arange(len(METRICS))
        width = 0.8 / max(1, len(systems))
        for i, (system, row) in enumerate(systems.items()):
            bars = ax.bar(x + i * width - 0.4 + width / 2, [row[m] for m in METRICS], width, label=system)
            ax.bar_label(bars, fmt="%.2f", fontsize=6, rotation=90, padding=2)
        ax.set_xticks(x, [_HEAD[m] for m in METRICS])
        ax.set_ylim(0, 1.15)  # room for the value labels above 1.0 bars
        ax.set_title(name)
        ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.1))  # below the bars
    fig.tight_layout()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def write_report(folder: Path, report: dict[str, Any]) -> dict[str, Any]:
    """Write the three files (each via a temporary name); returns their paths and the Markdown tables.

    Without data sets there is no chart (and one left by an earlier evaluation is removed).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tables = markdown_tables(report)
    device = (
        f"Device: {report['device']} ({report['torch_threads']} torch threads)\n\n"
        if report["device"]
        else ""
    )
    markdown = f"# Evaluation\n\n{device}{tables}"
    paths = {"json": folder / "report.json", "markdown": folder / "report.md", "chart": folder / "chart.png"}
    writers = [
        ("json", lambda p: p.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")),
        ("markdown", lambda p: p.write_text(markdown, encoding="utf-8")),
    ]
    if report["datasets"]:
        writers.append(("chart", lambda p: write_chart(report, p)))
    else:
        paths["chart"].unlink(missing_ok=True)
    for key, write in writers:
        with atomic_path(paths[key], keep_suffix=True) as tmp:  # savefig reads the format from the name
            write(tmp)
    return {**paths, "markdown_tables": tables}


def print_table(report: dict[str, Any]) -> None:
    from rich.table import Table

    from synthrank.console import table_console

    console = table_console()
    for name, ds in report["datasets"].items():
        table = Table(title=f"{name}: {ds['queries']} queries, {ds['pairs']} pairs")
        table.add_column("system")
        for m in METRICS:
            table.add_column(_HEAD[m], justify="right")
        table.add_column("pairs/s", justify="right")
        table.add_column(f"p vs {report['candidate']}" if report["candidate"] else "p", justify="right")
        for system, row in ds["systems"].items():
            comp = ds["comparisons"].get(system, {}).get("ndcg@10")
            table.add_row(
                system,
                *(_fmt(row[m]) for m in METRICS),
                _fmt(row["pairs_per_second"], 1),
                _fmt(comp["p_randomization"], 3) if comp else "",
            )
        console.print(table)
        for v in ds.get("verdicts", []):
            console.print(f"{name}: {verdict_line(v)}", markup=False, highlight=False)
    if not report["datasets"]:
        console.print("No evaluation: [evaluate] datasets is empty.", markup=False)


def fusion_card_text(record: dict[str, Any], row: str) -> str:
    """The card's note on serving the fused row `row`, whose weight evaluate recorded in the folder."""
    bi, weight, origin = record["bi_encoder"]["model"], record["weight"], weight_origin(record)
    return f"""
### Serving the fused ranker ({row})

Fused with its bi-encoder `{bi}` at weight {weight:g} ({origin}), as recorded
in `synthrank_fusion.json`: {record["formula"]}.

```python
from synthrank import FusedReranker

ranker = FusedReranker("PATH_TO_THIS_FOLDER")  # this model and the bi-encoder, with its prompts
ranked = ranker.rank("query", ["passage one", "passage two"])  # [(index, fused score), ...], best first
# cosines your first-stage search already returned save the bi-encoder pass: rank(query, docs, first=cosines)
```
"""


def set_card_evaluation(folder: Path, evaluation_md: str) -> bool:
    """Replace the evaluation section of an existing card; False if the folder has no synthrank card."""
    path = Path(folder) / "README.md"
    if not path.is_file():
        return False
    text = path.read_text(encoding="utf-8")
    if CARD_EVAL_START not in text or CARD_EVAL_END not in text:
        return False
    head, rest = text.split(CARD_EVAL_START, 1)
    _, tail = rest.split(CARD_EVAL_END, 1)
    path.write_text(f"{head}{CARD_EVAL_START}\n{evaluation_md}\n{CARD_EVAL_END}{tail}", encoding="utf-8")
    return True
