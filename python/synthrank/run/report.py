"""`report.md` and `report.html` of a run: every stage's numbers, readable by someone who did not run it."""

from __future__ import annotations

import base64
import json
import math
import re
from collections import Counter
from pathlib import Path
from typing import Any

from synthrank.records import Judgment, RunLayout, atomic_path, read_jsonl, write_text_atomic
from synthrank.run.manifest import read_manifest
from synthrank.stages.evaluate.report import verdict_line, weight_origin


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


NEAR_CHANCE = 0.9  # a final loss above this share of the chance loss counts as "learned little"


def chance_loss(loss: str, group_size: int) -> float | None:
    """The loss of a model that cannot tell a group's positive from its negatives.

    LCE: equal scores give ln(group_size). BCE: the best constant prediction (1 / group_size)
    gives the binary entropy of one positive among group_size texts.
    """
    if group_size < 2:
        return None
    if loss == "lce":
        return math.log(group_size)
    p = 1.0 / group_size
    return -(p * math.log(p) + (1 - p) * math.log(1 - p))


def training_summary(layout: RunLayout) -> dict[str, Any] | None:
    """Loss and dev curves from the trainer's log, the chance loss and whether the end stayed near it."""
    log_path = layout.model / "training_log.jsonl"  # written by the trainer: loss per step, dev nDCG@10
    if not log_path.is_file():
        return None
    rows = [json.loads(line) for line in log_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    losses = [(r["step"], r["loss"]) for r in rows if "loss" in r]
    if not losses:
        return None
    training = _load_json(layout.model / "synthrank_training.json") or {}
    config = training.get("config") or {}
    loss_name, group_size = str(config.get("loss", "lce")), int(config.get("group_size", 0) or 0)
    chance = chance_loss(loss_name, group_size)
    tail = [v for _, v in losses[-max(5, len(losses) // 10) :]]  # the last tenth, at least 5 steps
    final = sum(tail) / len(tail)
    return {
        "losses": losses,
        "devs": [(r["step"], r["dev_ndcg@10"]) for r in rows if "dev_ndcg@10" in r],
        "loss": loss_name,
        "group_size": group_size,
        "chance": chance,
        "final": final,
        "near_chance": chance is not None and final >= NEAR_CHANCE * chance,
    }


def chance_warning(summary: dict[str, Any]) -> str | None:
    if not summary["near_chance"]:
        return None
    g = summary["group_size"]
    formula = f"ln({g})" if summary["loss"] == "lce" else f"H(1/{g})"
    return (
        f"Warning: the training loss stayed near chance: it ended at {summary['final']:.3f} against "
        f"{formula} = {summary['chance']:.3f} for a model that cannot tell a positive from its {g - 1} "
        "negatives, so the model learned little. Look at the mining statistics (few groups, negatives "
        "that really answer the query), or train longer or faster ([train] epochs, learning_rate, "
        "head_learning_rate)."
    )


def training_curve(layout: RunLayout, path: Path, summary: dict[str, Any] | None = None) -> bool:
    """Plot loss (and dev nDCG@10 where logged) per optimizer step, with the chance loss as a line;
    False when there is no log."""
    summary = summary or training_summary(layout)
    if summary is None:
        return False
    losses, devs = summary["losses"], summary["devs"]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(*zip(*losses, strict=True), label="training loss", color="tab:blue")
    if summary["chance"] is not None:
        g = summary["group_size"]
        name = f"ln({g})" if summary["loss"] == "lce" else f"H(1/{g})"
        ax.axhline(
            summary["chance"],
            color="tab:red",
            linestyle="--",
            label=f"chance: {name} = {summary['chance']:.2f}",
        )
        top = max(max(v for _, v in losses), summary["chance"])
        ax.set_ylim(0, 1.15 * top)  # the chance line is never the frame's edge
    ax.legend(loc="lower left", fontsize="small")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    if devs:
        dev_ax = ax.twinx()
        dev_ax.plot(*zip(*devs, strict=True), "o-", label="dev nDCG@10", color="tab:orange")
        dev_ax.set_ylabel("dev nDCG@10")
    ax.set_title("Training curve")
    fig.tight_layout()
    with atomic_path(path, keep_suffix=True) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return True


def build_markdown(layout: RunLayout, stage_names: tuple[str, ...]) -> str:
    manifests = {name: read_manifest(layout, name) for name in stage_names}
    parts = [f"# synthrank run report\n\nRun folder: `{layout.root}`\n"]
    summary = training_summary(layout) if manifests.get("train") else None
    glance = at_a_glance(layout, summary)
    if glance:
        parts.append("## At a glance\n")
        parts.append("\n".join(glance) + "\n")

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

    testset = manifests.get("testset")
    if testset and testset.counts.get("kind") not in (None, "none"):
        parts.append("## In-domain test set\n")
        rows = [[k.replace("_", " "), v] for k, v in testset.counts.items() if _scalar(v)]
        rows += [[f"qrels grade {g}", n] for g, n in (testset.counts.get("qrels_grades") or {}).items()]
        parts.append(_table(["what", "value"], rows))

    llm_rows = []
    for name in ("generate", "judge", "testset"):
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
        if summary is not None and training_curve(layout, curve, summary):
            parts.append("![training curve](training_curve.png)\n")
            warning = chance_warning(summary)
            if warning:
                parts.append(f"**{warning}**\n")

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


def at_a_glance(layout: RunLayout, summary: dict[str, Any] | None) -> list[str]:
    """Markdown list items: each evaluated data set with its verdicts, and the training warning."""
    lines = []
    report = _load_json(layout.eval / "report.json")
    if report is not None and not report.get("datasets"):
        lines.append("- No evaluation: `[evaluate] datasets` is empty.")
    for name, ds in (report or {}).get("datasets", {}).items():
        kind = f"; {ds['kind']}" if ds.get("kind") else ""
        lines.append(f"- **{name}** ({ds['queries']} queries{kind})")
        lines += [f"  - {verdict_line(v)}" for v in ds.get("verdicts", [])]
    from synthrank.fusion import FUSION_FILE  # numpy: not for `status`, which imports this module

    fusion = _load_json(layout.model / FUSION_FILE)
    if fusion:
        lines.append(
            f'- **To serve**: `synthrank.FusedReranker("{layout.model}")`, the fused ranker (weight '
            f"{fusion['weight']:g}, {weight_origin(fusion)}); the cross-encoder alone loads as any "
            "sentence-transformers `CrossEncoder`."
        )
    warning = chance_warning(summary) if summary else None
    if warning:
        lines.append(f"- **{warning}**")
    return lines


def embed_images(html: str, root: Path) -> str:
    """Inline the PNGs an HTML page links to as base64 data URIs, so the page is one file."""

    def inline(match: re.Match[str]) -> str:
        path = root / match.group(1)
        if not path.is_file():
            return match.group(0)
        return f'src="data:image/png;base64,{base64.b64encode(path.read_bytes()).decode("ascii")}"'

    return re.sub(r'src="([^":]+\.png)"', inline, html)


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
    """Write report.md (charts linked beside it) and report.html (one file: charts embedded)."""
    from markdown_it import MarkdownIt

    markdown = build_markdown(layout, stage_names)
    html_body = embed_images(MarkdownIt("commonmark").enable("table").render(markdown), layout.root)
    html = (
        "<!doctype html><html><head><meta charset='utf-8'><title>synthrank run report</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}"
        "table{border-collapse:collapse;margin:0.5rem 0 1.5rem}"
        "td,th{border:1px solid #ccc;padding:0.2rem 0.6rem}"
        "td:not(:first-child){text-align:right}img{max-width:100%}</style></head><body>"
        f"{html_body}</body></html>\n"
    )
    for name, text in (("report.md", markdown), ("report.html", html)):
        write_text_atomic(layout.root / name, text)
    return {"markdown": str(layout.root / "report.md"), "html": str(layout.root / "report.html")}
