"""The mine stage: judge grades + retrieval candidates -> training groups without false negatives.

Positives are the passages the judge graded >= `positive_min_grade` (the source passage is not
assumed relevant: a query whose source was judged irrelevant and that has no other positive is
dropped and counted). Hard negatives come from `synthrank.native.negatives.select_negatives` over the
query's candidates, with the judge's grades as labels and the false-negative guard (never a positive,
its exact duplicate, its near-duplicate cluster, or anything judged relevant or ambiguous).
A seeded share of queries, held out by source document, becomes a synthetic dev set (BEIR layout,
qrels from the grades) instead of training groups. Withheld passages (held-out or excluded documents)
are never positives, negatives or dev passages.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from synthrank.config import at_least, within
from synthrank.errors import ConfigError, EmptyOutputError, InputFormatError
from synthrank.native import negatives
from synthrank.records import (
    Judgment,
    Passage,
    Query,
    RunLayout,
    TrainGroup,
    atomic_path,
    from_dict,
    read_jsonl,
    write_jsonl_atomic,
    write_text_atomic,
)
from synthrank.stages.retrieve import load_candidates, load_embeddings
from synthrank.stages.sample import load_passage_arrays

log = logging.getLogger(__name__)

# `adapt = "auto"`: a judge that grades fewer than this share of its pairs <= negative_max_grade
# leaves (almost) no judged negatives, as small local models do (Qwen 0.5B grades 1 or 3)
DEGENERATE_NEGATIVE_SHARE = 0.05
DROP_REASONS = (
    "not_in_candidates",
    "not_judged",
    "source_judged_irrelevant",
    "no_positive",
    "too_few_negatives",
)


@dataclass(frozen=True)
class MineConfig:
    """Options of the mine stage (section [mine] of synthrank.toml)."""

    positive_min_grade: int = 2
    negative_max_grade: int = 0  # 0 = unrelated only; 1 also takes "on topic, does not answer"
    max_positives: int = 3
    num_negatives: int = 7
    min_negatives: int | None = None  # None: num_negatives (the HF columns need a full row)
    range_min: int = 0
    range_max: int | None = None
    absolute_margin: float | None = None
    relative_margin: float | None = None
    max_score: float | None = None
    sampling: Literal["top", "random"] = "top"
    allow_unjudged: bool = False  # unjudged candidates as easier negatives, flagged in neg_judged
    dev_fraction: float = 0.05
    seed: int = 0
    # "auto": when the judge (almost) never grades <= negative_max_grade, switch to the weak-judge
    # recipe (see `adapt_to_judge`) and say so; "off": always the settings as written
    adapt: Literal["auto", "off"] = "auto"

    def validate(self) -> None:
        if not 1 <= self.positive_min_grade <= 3:
            raise ConfigError(
                f"must be in [1, 3] (grades are 0-3), got {self.positive_min_grade}",
                section="mine",
                key="positive_min_grade",
            )
        if not 0 <= self.negative_max_grade < self.positive_min_grade <= 3:
            raise ConfigError(
                "need 0 <= negative_max_grade < positive_min_grade <= 3, got "
                f"{self.negative_max_grade} and {self.positive_min_grade}",
                section="mine",
                key="negative_max_grade",
            )
        at_least(self, "mine", 1, "num_negatives", "max_positives")
        if self.min_negatives is not None and not 0 <= self.min_negatives <= self.num_negatives:
            raise ConfigError(
                f"must be in [0, num_negatives ({self.num_negatives})], got {self.min_negatives}",
                section="mine",
                key="min_negatives",
            )
        within(self, "mine", 0, 1, "dev_fraction", ends="[)")
        if self.range_min < 0 or (self.range_max is not None and self.range_max <= self.range_min):
            raise ConfigError(
                f"need 0 <= range_min < range_max, got {self.range_min} and {self.range_max}",
                section="mine",
                key="range_min" if self.range_min < 0 else "range_max",
            )
        within(self, "mine", 0, 1, "absolute_margin", "relative_margin", ends="[)", optional=True)
        if self.adapt not in ("auto", "off"):
            raise ConfigError(f"must be 'auto' or 'off', got {self.adapt!r}", section="mine", key="adapt")
        at_least(self, "mine", 0, "seed")


def adapt_to_judge(cfg: MineConfig, grades: Counter[str]) -> tuple[MineConfig, dict[str, Any]]:
    """The weak-judge recipe when the judge's grades leave no judged negatives (`adapt = "auto"`).

    Returns the settings to mine with and what changed ({} when nothing did). The recipe is the one
    measured in README's Quality section: grade <= 1 and unjudged candidates as negatives, drawn at
    random from the top 100 after a false-negative guard (nothing within 10 % of the positive's
    similarity). Options a user set away from their defaults are kept as written.
    """
    parsed = {int(g): n for g, n in grades.items() if g.isdigit()}
    total = sum(parsed.values())
    negatives = sum(n for g, n in parsed.items() if g <= cfg.negative_max_grade)
    if cfg.adapt == "off" or not total or negatives / total >= DEGENERATE_NEGATIVE_SHARE:
        return cfg, {}
    recipe: dict[str, Any] = {"allow_unjudged": True, "sampling": "random"}
    if cfg.negative_max_grade < 1 < cfg.positive_min_grade:
        recipe["negative_max_grade"] = 1
    if cfg.absolute_margin is None and cfg.relative_margin is None:
        recipe["relative_margin"] = 0.1
    if cfg.range_max is None:
        recipe["range_max"] = 100
    changes = {k: [getattr(cfg, k), v] for k, v in recipe.items() if getattr(cfg, k) != v}
    if not changes:
        return cfg, {}
    shown = ", ".join(f"{g}: {n}" for g, n in sorted(parsed.items()))
    return dataclasses.replace(cfg, **{k: new for k, (_, new) in changes.items()}), {
        "reason": f"the judge graded {negatives} of {total} pairs <= negative_max_grade "
        f"({cfg.negative_max_grade}); grades {shown}",
        "changes": changes,
    }


def yield_advice(stats: dict[str, Any]) -> list[str]:
    """What to change when mining yields few groups, one line per problem seen in its statistics."""
    cfg = stats["config"]
    advice: list[str] = []
    queries = max(1, stats["queries_in"])
    dropped = stats["dropped"]
    grades = {g: n for g, n in stats["grade_distribution"].items() if g.isdigit()}
    judged = sum(grades.values())
    if judged and not any(int(g) <= cfg["negative_max_grade"] for g, n in grades.items() if n):
        advice.append(
            f"the judge never grades <= {cfg['negative_max_grade']} (grades: "
            + ", ".join(f"{g}: {n}" for g, n in sorted(grades.items()))
            + '): set [mine] adapt = "auto" (or negative_max_grade = 1, allow_unjudged = true) '
            "or use a stronger [llm] model"
        )
    unparsable = stats["grade_distribution"].get("unparsable", 0)
    if unparsable > 0.1 * max(1, judged + unparsable):
        advice.append(
            f"{unparsable} judge replies had no grade: use a model that follows the format or raise "
            "[judge] max_tokens"
        )
    source = dropped.get("source_judged_irrelevant", 0)
    if source > 0.2 * queries:
        advice.append(
            f"{source / queries:.0%} of queries dropped because the judge graded their own source below "
            f"positive_min_grade ({cfg['positive_min_grade']}): the generator asks what its passage does "
            "not answer; use a stronger [llm] model, or (unless [judge] source_first gated them) raise "
            "[judge] top_m so another candidate can be the positive; with source_first they cost one "
            "call each"
        )
    few = dropped.get("too_few_negatives", 0)
    if few > 0.2 * queries:
        advice.append(
            f"{few / queries:.0%} of queries dropped with fewer than min_negatives negatives: set "
            "[mine] allow_unjudged = true, lower [mine] min_negatives (the trainer pads groups with "
            "random passages), or raise [retrieve] k and [judge] top_m"
        )
    dev = stats.get("dev_queries", 0)
    if dev and stats.get("train_groups", 0) < dev:
        advice.append(
            f"{dev} queries went to the synthetic dev set and fewer to training: lower [mine] "
            "dev_fraction or raise [sample] num_passages"
        )
    missing = dropped.get("not_judged", 0) + dropped.get("not_in_candidates", 0)
    if missing > 0.2 * queries:
        advice.append(f"{missing} queries have no judgments or candidates: re-run retrieve and judge")
    return advice


def in_dev(doc_id: str, cfg: MineConfig) -> bool:
    digest = hashlib.blake2b(f"dev\x00{cfg.seed}\x00{doc_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2.0**64 < cfg.dev_fraction


def _passage_rows(path: Path, wanted: set[str]) -> dict[str, int]:
    rows: dict[str, int] = {}
    with open(path, encoding="utf-8") as fh:
        for row, line in enumerate(fh):
            passage_id = json.loads(line)["passage_id"]
            if passage_id in wanted:
                rows[passage_id] = row
    return rows


def _passages_at(path: Path, rows: set[int]) -> dict[int, Passage]:
    found: dict[int, Passage] = {}
    with open(path, encoding="utf-8") as fh:
        for row, line in enumerate(fh):
            if row in rows:
                found[row] = from_dict(Passage, json.loads(line), path, row + 1)
    return found


def _judged_pairs(path: Path) -> Iterable[tuple[str, str, int | None]]:
    """(query_id, passage_id, grade) per judgment line.

    pyarrow parses millions of lines in C++; anything it rejects (a malformed or partial line, a
    missing id) is re-read with `read_jsonl`, whose error names the file and line.
    """
    import pyarrow as pa
    import pyarrow.json as paj

    schema = pa.schema([("query_id", pa.string()), ("passage_id", pa.string()), ("grade", pa.int64())])
    options = paj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
    try:
        table = paj.read_json(path, parse_options=options)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        table = None
    if table is None or table["query_id"].null_count or table["passage_id"].null_count:
        return ((j.query_id, j.passage_id, j.grade) for j in read_jsonl(path, Judgment))
    columns = (table[name].to_pylist() for name in ("query_id", "passage_id", "grade"))
    return zip(*columns, strict=True)


def _load_grades(path: Path) -> tuple[dict[str, dict[str, int | None]], Counter[str]]:
    """query_id -> passage_id -> grade (the last judgment of a pair wins); grade histogram."""
    if not path.is_file():
        raise InputFormatError(path, None, "missing: run `synthrank judge` first")
    grades: dict[str, dict[str, int | None]] = {}
    for query_id, passage_id, grade in _judged_pairs(path):
        grades.setdefault(query_id, {})[passage_id] = grade
    histogram: Counter[str] = Counter()
    for per_query in grades.values():
        histogram.update("unparsable" if g is None else str(g) for g in per_query.values())
    return grades, histogram


def _cosines(layout: RunLayout, query_rows: np.ndarray, passage_rows: np.ndarray) -> np.ndarray | None:
    """Cosine of each (query, passage) pair from the cached embeddings; None if they are absent."""
    q_path, p_path = layout.embeddings / "queries.npy", layout.embeddings / "passages.npy"
    if not (q_path.is_file() and p_path.is_file()):
        return None
    queries, passages = load_embeddings(layout, "queries"), load_embeddings(layout, "passages")
    out = np.full(passage_rows.shape, np.nan, dtype=np.float32)
    valid = passage_rows >= 0
    q = np.asarray(queries[query_rows], dtype=np.float32)
    for i in range(passage_rows.shape[1]):
        rows = np.where(valid[:, i], passage_rows[:, i], 0)
        out[:, i] = np.where(valid[:, i], np.einsum("ij,ij->i", q, passages[rows]), np.nan)
    return out


def _candidate_labels(
    kept: list[tuple[Query, list[int]]],
    grades: dict[str, dict[str, int | None]],
    row_of: dict[str, int],
    cand_ids: np.ndarray,
    n_passages: int,
) -> np.ndarray:
    """Judge grade of each candidate (NaN = not judged), matched by sorted (query, row) keys."""
    judged = [
        (i * n_passages + row_of[pid], grade)
        for i, (q, _) in enumerate(kept)
        for pid, grade in grades[q.query_id].items()
        if grade is not None and pid in row_of
    ]
    labels = np.full(cand_ids.shape, np.nan, dtype=np.float32)
    if not judged:
        return labels
    keys, values = (
        np.asarray([k for k, _ in judged], dtype=np.int64),
        np.asarray([g for _, g in judged], np.float32),
    )
    order = np.argsort(keys, kind="stable")
    keys, values = keys[order], values[order]
    wanted = np.arange(len(cand_ids), dtype=np.int64)[:, None] * n_passages + cand_ids
    at = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
    hit = (cand_ids >= 0) & (keys[at] == wanted)
    labels[hit] = values[at[hit]]
    return labels


def _summary(values: list[int]) -> dict[str, float]:
    if not values:
        return {"min": 0, "mean": 0.0, "max": 0}
    return {"min": min(values), "mean": round(float(np.mean(values)), 3), "max": max(values)}


def _write_dev(
    folder: Path,
    queries: list[Query],
    corpus: dict[int, Passage],
    qrels: list[tuple[str, str, int]],
) -> None:
    """A BEIR folder (corpus.jsonl, queries.jsonl, qrels/dev.tsv), written aside and swapped in."""
    with atomic_path(folder) as tmp:
        (tmp / "qrels").mkdir(parents=True)
        with open(tmp / "corpus.jsonl", "w", encoding="utf-8") as fh:
            for row in sorted(corpus):
                p = corpus[row]
                fh.write(
                    json.dumps({"_id": p.passage_id, "title": p.title, "text": p.text}, ensure_ascii=False)
                    + "\n"
                )
        with open(tmp / "queries.jsonl", "w", encoding="utf-8") as fh:
            for q in queries:
                fh.write(json.dumps({"_id": q.query_id, "text": q.text}, ensure_ascii=False) + "\n")
        with open(tmp / "qrels" / "dev.tsv", "w", encoding="utf-8") as fh:
            fh.write("query-id\tcorpus-id\tscore\n")
            fh.writelines(f"{q}\t{p}\t{s}\n" for q, p, s in qrels)


def _write_hf(folder: Path, groups: list[TrainGroup], num_negatives: int) -> None:
    """The groups as a `datasets` folder: query, positive (the best), negative_1..n."""
    import datasets
    from datasets import Dataset

    if not sys.stderr.isatty():  # like synthrank's own bars: quiet in logs and pipes
        datasets.disable_progress_bars()
    columns: dict[str, list[str]] = {
        "query": [g.query for g in groups],
        "positive": [g.pos[0] for g in groups],
    }
    for i in range(num_negatives):
        columns[f"negative_{i + 1}"] = [g.neg[i] for g in groups]
    with atomic_path(folder) as tmp:
        Dataset.from_dict(columns).save_to_disk(str(tmp))


def run_mine(layout: RunLayout, cfg: MineConfig) -> dict[str, Any]:
    """Build training groups and the dev set from judgments and candidates; return the statistics."""
    cfg.validate()
    queries = list(read_jsonl(layout.queries, Query))
    candidates = load_candidates(layout.candidates)
    arrays = load_passage_arrays(layout)
    grades, grade_histogram = _load_grades(layout.judgments)
    cfg, adapted = adapt_to_judge(cfg, grade_histogram)
    if adapted:
        log.warning(
            'mine: %s: weak-judge recipe applied (%s); set [mine] adapt = "off" to mine as configured',
            adapted["reason"],
            ", ".join(f"{k} = {new}" for k, (_, new) in adapted["changes"].items()),
        )
    withheld = arrays["heldout"]
    if candidates.ids.size and int(candidates.ids.max()) >= len(withheld):
        raise InputFormatError(layout.candidates, None, "passage rows beyond the corpus: re-run retrieve")

    judged_ids = {pid for per_query in grades.values() for pid in per_query}
    row_of = _passage_rows(layout.passages, judged_ids | {q.passage_id for q in queries})
    candidate_row = {str(qid): i for i, qid in enumerate(candidates.query_ids.tolist())}
    drops: Counter[str] = Counter()
    kept = _queries_with_positives(queries, grades, row_of, candidate_row, withheld, cfg, drops)

    pos_ids = _positive_rows(kept)
    crow = np.asarray([candidate_row[q.query_id] for q, _ in kept], dtype=np.int64)
    cand_ids = candidates.ids[crow] if kept else np.empty((0, candidates.ids.shape[1]), dtype=np.int64)
    cand_scores = candidates.scores[crow] if kept else np.empty(cand_ids.shape, dtype=np.float32)
    withheld_candidates = int(np.sum(withheld[cand_ids[cand_ids >= 0]]))
    cand_ids = np.where((cand_ids >= 0) & withheld[np.maximum(cand_ids, 0)], -1, cand_ids)
    query_row = {q.query_id: i for i, q in enumerate(queries)}
    selection = _select_negatives(
        layout, cfg, arrays, kept, pos_ids, cand_ids, cand_scores, grades, row_of, query_row
    )
    train, dev = _split_train_dev(kept, selection, cfg, drops)

    needed = {r for i in train for r in pos_ids[i, : cfg.max_positives].tolist() if r >= 0}
    needed |= {r for i in train for r in selection.neg_ids[i].tolist() if r >= 0}
    dev_rows = {r for i in dev for r in (*cand_ids[i].tolist(), *pos_ids[i].tolist()) if r >= 0}
    texts = _passages_at(layout.passages, needed | dev_rows)

    groups = [_train_group(kept[i][0], pos_ids[i], selection, i, texts, cfg) for i in train]
    write_jsonl_atomic(layout.train_groups, groups)
    full = [g for g in groups if len(g.neg) >= cfg.num_negatives]
    _write_hf(layout.train_groups_hf, full, cfg.num_negatives)

    qrels = [
        (kept[i][0].query_id, pid, grade - cfg.positive_min_grade + 1)
        for i in dev
        for pid, grade in grades[kept[i][0].query_id].items()
        if grade is not None and grade >= cfg.positive_min_grade and pid in row_of and row_of[pid] in dev_rows
    ]
    _write_dev(layout.dev, [kept[i][0] for i in dev], {r: texts[r] for r in dev_rows}, qrels)

    stats: dict[str, Any] = {
        "queries_in": len(queries),
        "train_groups": len(groups),
        "hf_rows": len(full),
        "dev_queries": len(dev),
        "dev_passages": len(dev_rows),
        "dropped": {reason: drops[reason] for reason in DROP_REASONS},
        "positives_per_query": _summary([len(g.pos) for g in groups]),
        "negatives_per_query": _summary([len(g.neg) for g in groups]),
        "unjudged_negatives": sum(g.neg_judged.count(False) for g in groups),
        "withheld_candidates_removed": withheld_candidates,
        "grade_distribution": dict(sorted(grade_histogram.items())),
        "negative_selection": selection.counts,
        "config": asdict(cfg),  # the settings mined with (after adaptation)
        "adapted": adapted,
        "warnings": [f"weak judge: {adapted['reason']}; mined with the weak-judge recipe"] if adapted else [],
    }
    write_text_atomic(layout.mining_stats, json.dumps(stats, indent=1) + "\n")
    if not groups:
        reasons = ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in stats["dropped"].items() if v)
        raise EmptyOutputError(
            f"mine: 0 training groups from {len(queries)} queries (dropped: {reasons or 'none'}; "
            f"{len(dev)} went to the dev set). " + (" ".join(yield_advice(stats)) or "See mining_stats.json.")
        )
    return stats


def _queries_with_positives(
    queries: list[Query],
    grades: dict[str, dict[str, int | None]],
    row_of: dict[str, int],
    candidate_row: dict[str, int],
    withheld: np.ndarray,
    cfg: MineConfig,
    drops: Counter[str],
) -> list[tuple[Query, list[int]]]:
    """Each query that has candidates and a positive, with its positive rows best first; the rest
    are counted in `drops` by reason."""
    kept: list[tuple[Query, list[int]]] = []
    for q in queries:
        if q.query_id not in candidate_row:
            drops["not_in_candidates"] += 1
            continue
        judged = grades.get(q.query_id)
        if not judged:
            drops["not_judged"] += 1
            continue
        positives = [
            (grade, pid != q.passage_id, row_of[pid])
            for pid, grade in judged.items()
            if grade is not None
            and grade >= cfg.positive_min_grade
            and pid in row_of
            and not withheld[row_of[pid]]
        ]
        if not positives:
            source_grade = judged.get(q.passage_id)
            drops["source_judged_irrelevant" if source_grade is not None else "no_positive"] += 1
            continue
        # best grade first, the source passage first among equals, then corpus order: never the
        # order replies happened to arrive in, so a replayed run mines the same groups
        positives.sort(key=lambda p: (-p[0], p[1], p[2]))
        kept.append((q, [row for _, _, row in positives]))
    return kept


def _positive_rows(kept: list[tuple[Query, list[int]]]) -> np.ndarray:
    """[queries, most positives] passage rows, padded with -1."""
    width = max((len(rows) for _, rows in kept), default=1)
    pos_ids = np.full((len(kept), width), -1, dtype=np.int64)
    for i, (_, rows) in enumerate(kept):
        pos_ids[i, : len(rows)] = rows
    return pos_ids


def _select_negatives(
    layout: RunLayout,
    cfg: MineConfig,
    arrays: dict[str, np.ndarray],
    kept: list[tuple[Query, list[int]]],
    pos_ids: np.ndarray,
    cand_ids: np.ndarray,
    cand_scores: np.ndarray,
    grades: dict[str, dict[str, int | None]],
    row_of: dict[str, int],
    query_row: dict[str, int],
) -> negatives.NegativeSelection:
    """The native selector over every kept query's candidates, with the judge's grades as labels
    and the positives' cosines for the margins."""
    labels = _candidate_labels(kept, grades, row_of, cand_ids, len(arrays["heldout"]))
    rows = np.asarray([query_row[q.query_id] for q, _ in kept], dtype=np.int64)
    pos_scores = _cosines(layout, rows, pos_ids)
    if pos_scores is not None:
        pos_scores = np.where(pos_ids >= 0, pos_scores, np.nan).astype(np.float32)
    return negatives.select_negatives(
        cand_ids,
        cand_scores.astype(np.float32),
        pos_ids,
        num_negatives=cfg.num_negatives,
        pos_scores=pos_scores,
        labels=labels,
        doc_hashes=arrays["exact_hash"],
        cluster_ids=arrays["cluster_id"],
        range_min=cfg.range_min,
        range_max=cfg.range_max,
        absolute_margin=cfg.absolute_margin,
        relative_margin=cfg.relative_margin,
        max_score=cfg.max_score,
        sampling=cfg.sampling,
        seed=cfg.seed,
        relevant_min_label=float(cfg.positive_min_grade),
        negative_max_label=float(cfg.negative_max_grade),
        allow_unjudged=cfg.allow_unjudged,
    )


def _split_train_dev(
    kept: list[tuple[Query, list[int]]],
    selection: negatives.NegativeSelection,
    cfg: MineConfig,
    drops: Counter[str],
) -> tuple[list[int], list[int]]:
    """Indices into `kept`: the dev set by source document, training groups with enough negatives."""
    min_negatives = cfg.num_negatives if cfg.min_negatives is None else cfg.min_negatives
    train: list[int] = []
    dev: list[int] = []
    for i, (q, _) in enumerate(kept):
        if in_dev(q.doc_id, cfg):
            dev.append(i)
        elif int(np.sum(selection.neg_ids[i] >= 0)) < min_negatives:
            drops["too_few_negatives"] += 1
        else:
            train.append(i)
    return train, dev


def _train_group(
    q: Query,
    pos_row: np.ndarray,
    selection: negatives.NegativeSelection,
    i: int,
    texts: dict[int, Passage],
    cfg: MineConfig,
) -> TrainGroup:
    pos = [r for r in pos_row[: cfg.max_positives].tolist() if r >= 0]
    chosen = selection.neg_ids[i] >= 0
    neg = selection.neg_ids[i][chosen].tolist()
    return TrainGroup(
        query=q.text,
        pos=[texts[r].reranker_text for r in pos],
        neg=[texts[r].reranker_text for r in neg],
        query_id=q.query_id,
        pos_ids=[texts[r].passage_id for r in pos],
        neg_ids=[texts[r].passage_id for r in neg],
        neg_judged=selection.neg_judged[i][chosen].tolist(),
    )


def stats_table(stats: dict[str, Any]) -> Any:
    """The mining statistics as a rich table for the terminal."""
    from rich.table import Table

    table = Table(title="mining", show_header=True)
    table.add_column("")
    table.add_column("value", justify="right")
    for key in ("queries_in", "train_groups", "hf_rows", "dev_queries", "unjudged_negatives"):
        table.add_row(key.replace("_", " "), str(stats[key]))
    for key in ("positives_per_query", "negatives_per_query"):
        s = stats[key]
        table.add_row(f"{key.replace('_', ' ')} (min/mean/max)", f"{s['min']} / {s['mean']} / {s['max']}")
    grades = ", ".join(f"{g}: {c}" for g, c in stats["grade_distribution"].items())
    table.add_row("grades", grades or "-")
    for reason, count in stats["dropped"].items():
        table.add_row(f"dropped: {reason.replace('_', ' ')}", str(count))
    for reason, count in stats["negative_selection"].items():
        table.add_row(f"candidates: {reason.replace('_', ' ')}", str(count))
    for key, (_, new) in (stats.get("adapted") or {}).get("changes", {}).items():
        table.add_row(f"adapted (weak judge): {key}", str(new))
    return table
