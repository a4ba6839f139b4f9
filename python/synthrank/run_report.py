"""`report.md` and `report.html` of a run: every stage's numbers, readable by someone who did not run it."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

from synthrank.manifest import read_manifest
from synthrank.records import Judgment, RunLayout, read_jsonl


def _load_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def grade_distribution(layout: RunLayout) -> Counter[str]:
    grades: Counter[str] = Counter()
    if layout.judgments.is_file():
        for judgment in read_jsonl(layout.judgments, Judgment):
            grades["unparsable" if judgment.grade is None else str(judgment.grade)] += 1
    return grades


def training_curve(layout: RunLayout, path: Path) -> bool:
    """Plot loss (and dev nDCG@10 where logged) per optimizer step; False when there is no log."""
    log_path = layout.model / "training_log.jsonl"  # written by the trainer: loss per step, dev nDCG@10
    if not log_path.is_file():
        return False
    rows = [json.loads(line) for line in log_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    losses = [(r["step"], r["loss"]) for r in rows if "loss" in r]
    devs = [(r["step"], r["dev_ndcg@10"]) for r in rows if "dev_ndcg@10" in r]
    if not losses:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(*zip(*losses, strict=True), label="training loss", color="tab:blue")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    if devs:
        dev_ax = ax.twinx()
        dev_ax.plot(*zip(*devs, strict=True), "o-", label="dev nDCG@10", color="tab:orange")
        dev_ax.set_ylabel("dev nDCG@10")
    ax.set_title("Training curve")
    fig.tight_layout()
    tmp = path.with_name("tmp." + path.name)
    fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    os.replace(tmp, path)
    return True


def build_markdown(layout: RunLayout, stage_names: tuple[str, ...]) -> str:
    manifests = {name: read_manifest(layout, name) for name in stage_names}
    parts = [f"# synthrank run report\n\nRun folder: `{layout.root}`\n"]

    ingest = manifests.get("ingest")
    if ingest:
        c = ingest.counts
        parts.append("## Corpus\n")
        parts.append(
            _table(["what", "count"], [[k.replace("_", " "), v] for k, v in c.items() if _scalar(v)])
        )

    filter_stats = _load_json(layout.root / "filter_stats.json")
    if filter_stats:
        parts.append("## Synthetic queries\n")
        rows = [["generated", filter_stats.get("raw", 0)], ["kept", filter_stats.get("kept", 0)]]
        rows += [[f"dropped: {k}", v] for k, v in filter_stats.get("dropped", {}).items()]
        parts.append(_table(["queries", "count"], rows))

    grades = grade_distribution(layout)
    if grades:
        parts.append("## Judge grades\n")
        total = sum(grades.values())
        rows = [[g, n, f"{100 * n / total:.1f} %"] for g, n in sorted(grades.items())]
        parts.append(_table(["grade", "pairs", "share"], rows))

    mining = _load_json(layout.mining_stats)
    if mining:
        parts.append("## Mining\n")
        flat = [[k.replace("_", " "), v] for k, v in _flatten(mining).items()]
        parts.append(_table(["what", "value"], flat))

    llm_rows = []
    for name in ("generate", "judge"):
        m = manifests.get(name)
        if m:
            c = m.counts
            llm_rows.append(
                [
                    name,
                    c.get("calls", 0),
                    c.get("cache_hits", 0),
                    c.get("prompt_tokens", 0),
                    c.get("completion_tokens", 0),
                    c.get("cost", 0.0),
                ]
            )
    if llm_rows:
        parts.append("## LLM usage\n")
        parts.append(
            _table(["stage", "calls", "cache hits", "prompt tokens", "completion tokens", "cost"], llm_rows)
        )

    train = manifests.get("train")
    if train:
        parts.append("## Training\n")
        parts.append(
            _table(
                ["what", "value"], [[k.replace("_", " "), v] for k, v in train.counts.items() if _scalar(v)]
            )
        )
        curve = layout.root / "training_curve.png"
        if training_curve(layout, curve):
            parts.append("![training curve](training_curve.png)\n")

    eval_md = layout.eval / "report.md"
    if eval_md.is_file():
        parts.append("## Evaluation\n")
        body = eval_md.read_text(encoding="utf-8").split("\n", 1)[-1]
        parts.append(body.replace("\n### ", "\n### ").strip() + "\n")
        if (layout.eval / "chart.png").is_file():
            parts.append("\n![evaluation chart](eval/chart.png)\n")

    timing_rows = [[name, m.status, f"{m.seconds:.1f}"] for name, m in manifests.items() if m is not None]
    if timing_rows:
        parts.append("## Stage timings\n")
        parts.append(_table(["stage", "status", "seconds"], timing_rows))
    return "\n".join(parts)


def _scalar(value: Any) -> bool:
    return isinstance(value, (int, float, str)) and not isinstance(value, bool)


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + " / "))
        elif _scalar(value):
            flat[name] = value
    return flat


def write_run_report(layout: RunLayout, stage_names: tuple[str, ...]) -> dict[str, Any]:
    """Write report.md and report.html (tables, charts linked beside them) into the run folder."""
    from markdown_it import MarkdownIt

    markdown = build_markdown(layout, stage_names)
    html_body = MarkdownIt("commonmark").enable("table").render(markdown)
    html = (
        "<!doctype html><html><head><meta charset='utf-8'><title>synthrank run report</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}"
        "table{border-collapse:collapse;margin:0.5rem 0 1.5rem}"
        "td,th{border:1px solid #ccc;padding:0.2rem 0.6rem}"
        "td:not(:first-child){text-align:right}img{max-width:100%}</style></head><body>"
        f"{html_body}</body></html>\n"
    )
    for name, text in (("report.md", markdown), ("report.html", html)):
        tmp = layout.root / f"tmp.{name}"
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, layout.root / name)
    return {"markdown": str(layout.root / "report.md"), "html": str(layout.root / "report.html")}
