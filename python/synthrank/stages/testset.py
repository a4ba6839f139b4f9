"""The testset stage: the in-domain test set, from real held-out questions or built by the LLM.

Real questions (a held-out passage's `meta.question`, as in MedQuAD) are the stronger test: when
the corpus has them this stage does nothing and evaluate uses them. Otherwise it builds a synthetic
test set on the held-out documents, which no training query, candidate, negative or dev passage
ever came from:

1. passages: `[evaluate] synthetic_queries` held-out passages within `[sample]`'s length bounds,
   one per near-duplicate cluster, spread over documents (every document gives one before any
   gives two), in a seeded hash order of passage ids;
2. queries: one per passage, written by the generate stage's own code (prompt, few-shot examples,
   styles, LLM client, cache and spending ledger) and kept or dropped by the filter stage's checks;
3. pool: per kept query, its source passage plus the bi-encoder's and BM25's top
   `synthetic_judge_top_m` over the held-out passages, every pair graded by the judge stage's code;
4. `test/`, a BEIR folder: qrels hold every grade (gain = grade; the binary metrics count grade >= 2,
   "answers at least partly", as relevant, as TREC DL does and as mine does for positives: grade 1
   is "on topic, does not answer", which a weak judge gives to nearly every pooled passage). The
   source passage counts at least `SOURCE_MIN_GRADE` (2): the query was written for it, so it
   answers it at least partly; the judge can raise it to 3, never lower it, because a
   small judge often under-grades and a query without a relevant passage measures nothing (the
   count of such disagreements is reported). `candidates.tsv` is the pool in BM25 order, so every
   system reranks lists whose every passage is graded and none is penalised for ranking an
   unjudged passage high; BM25 and the bi-encoder each contribute the same depth, so neither
   first stage's favourites dominate the pool.

Real questions stay the stronger test: LLM-written queries tend to reuse their passage's words
(which favours BM25 even after the filter's copy check), and LLM grades are not human judgments.

The LLM work runs in a small run folder (`testset/`) through `run_generate`, `run_filter` and
`run_judge`, so it is cached, resumable and counted against `[llm] max_cost` exactly as those
stages are; `test/` is swapped in whole at the end.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from synthrank.config import fingerprint
from synthrank.errors import EmptyOutputError, InputFormatError
from synthrank.records import (
    Judgment,
    Passage,
    Query,
    RunLayout,
    atomic_open,
    atomic_path,
    read_jsonl,
    write_jsonl_atomic,
)
from synthrank.stages.evaluate.datasets import (
    KIND_REAL,
    KIND_SYNTHETIC,
    TESTSET_INFO,
    bm25_candidates,
    has_real_questions,
    heldout_doc_ids,
)

if TYPE_CHECKING:
    from synthrank.run.settings import PipelineConfig

log = logging.getLogger(__name__)

SOURCE_MIN_GRADE = 2
RELEVANCE_LEVEL = 2  # binary metrics: grade >= 2 (answers at least partly) is relevant
BM25_DEPTH = 1000  # pool passages beyond BM25's top 1000 follow in bi-encoder order
LLM_COUNTS = ("calls", "cache_hits", "failures", "prompt_tokens", "completion_tokens", "cost")


class _WorkLayout(RunLayout):
    """The test set's LLM work folder: its own queries and judgments, but the run's LLM cache and
    spending ledger, so replies are shared with the other stages and max_cost covers the whole run."""

    def __init__(self, run: RunLayout) -> None:
        super().__init__(run.test_work)
        object.__setattr__(self, "run", run)

    @property
    def llm_cache(self) -> Path:
        return self.run.llm_cache  # type: ignore[attr-defined,no-any-return]

    @property
    def llm_ledger(self) -> Path:
        return self.run.llm_ledger  # type: ignore[attr-defined,no-any-return]


def _order_key(seed: int, passage_id: str) -> bytes:
    return hashlib.blake2b(f"test\x00{seed}\x00{passage_id}".encode(), digest_size=8).digest()


def pick_passages(
    passages: list[Passage],
    rows: list[int],
    n_tokens: np.ndarray,
    clusters: np.ndarray,
    count: int,
    *,
    min_tokens: int | None,
    max_tokens: int | None,
    seed: int,
) -> list[int]:
    """`count` of the held-out `rows`: within the length bounds, one per near-duplicate cluster,
    documents taken in turns, each in a seeded hash order of passage ids."""
    fitting = [
        r
        for r in rows
        if (min_tokens is None or n_tokens[r] >= min_tokens)
        and (max_tokens is None or n_tokens[r] <= max_tokens)
    ]
    fitting.sort(key=lambda r: _order_key(seed, passages[r].passage_id))
    seen_clusters: set[int] = set()
    turn: Counter[str] = Counter()
    ranked: list[tuple[int, int, int]] = []
    for position, row in enumerate(fitting):
        cluster = int(clusters[row])
        if cluster in seen_clusters:
            continue
        seen_clusters.add(cluster)
        doc = passages[row].doc_id
        ranked.append((turn[doc], position, row))
        turn[doc] += 1
    ranked.sort()
    return [row for _, _, row in ranked[:count]]


def _prepare_work(work: RunLayout, heldout: list[Passage], sampled: list[str], settings: str) -> None:
    """(Re)create the work folder; a folder built under other settings is cleared first (its LLM
    replies stay in the run's cache, so rebuilding it costs no new calls)."""
    stamp = work.root / "settings.json"
    if stamp.is_file() and json.loads(stamp.read_text(encoding="utf-8")).get("fingerprint") == settings:
        return
    shutil.rmtree(work.root, ignore_errors=True)
    write_jsonl_atomic(work.passages, heldout)
    work.sampled_ids.write_text("".join(f"{pid}\n" for pid in sampled), encoding="utf-8")
    stamp.write_text(json.dumps({"fingerprint": settings}) + "\n", encoding="utf-8")


def _embed_queries(texts: list[str], embed_cfg: Any) -> np.ndarray:
    from synthrank.stages.retrieve import load_model

    model = load_model(embed_cfg)
    vectors = model.encode(
        texts,
        batch_size=embed_cfg.batch_size,
        prompt=embed_cfg.query_prompt or None,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    return np.asarray(vectors, dtype=np.float32)


def build_pools(
    layout: RunLayout,
    config: PipelineConfig,
    passages: list[Passage],
    rows: list[int],
    queries: list[Query],
    depth: int,
) -> tuple[dict[str, list[int]], dict[str, dict[int, float]]]:
    """Per query: the pooled rows of `rows` (indices into it) in BM25 order, and their cosines."""
    from synthrank.stages.retrieve import exact_search, load_embeddings

    vectors = load_embeddings(layout, "passages")
    if len(vectors) != len(passages):
        raise InputFormatError(layout.embeddings, None, "passages.npy is older than the corpus: re-run embed")
    row_array = np.asarray(rows, dtype=np.int64)
    query_vectors = _embed_queries([q.text for q in queries], config.embed)
    bi_ids, _ = exact_search(query_vectors, vectors, min(depth, len(rows)), rows=row_array)
    local = {row: i for i, row in enumerate(rows)}
    texts = {str(i): passages[row].reranker_text for i, row in enumerate(rows)}
    bm25 = bm25_candidates({q.query_id: q.text for q in queries}, texts, min(BM25_DEPTH, len(rows)))
    source_row = {p.passage_id: i for i, p in enumerate(passages[r] for r in rows)}
    pools: dict[str, list[int]] = {}
    cosines: dict[str, dict[int, float]] = {}
    for qi, query in enumerate(queries):
        bm25_order = [int(d) for d in bm25[query.query_id]]
        bi_order = [local[int(r)] for r in bi_ids[qi] if r >= 0]
        pooled = {source_row[query.passage_id], *bm25_order[:depth], *bi_order}
        rank = {d: i for i, d in enumerate(bm25_order)}
        rank.update({d: len(bm25_order) + i for i, d in enumerate(bi_order) if d not in rank})
        order = sorted(pooled, key=lambda d: (rank.get(d, len(rank) + len(rows)), d))
        pools[query.query_id] = order
        scores = np.asarray(vectors[row_array[order]], dtype=np.float32) @ query_vectors[qi]
        cosines[query.query_id] = {d: float(s) for d, s in zip(order, scores, strict=True)}
    return pools, cosines


def _write_candidates(
    work: RunLayout, queries: list[Query], pools: dict[str, list[int]], cosines: dict[str, dict[int, float]]
) -> int:
    """The pools as the judge stage's `candidates.npz` (rows of the work folder's passages)."""
    width = max(len(pools[q.query_id]) for q in queries)
    ids = np.full((len(queries), width), -1, dtype=np.int64)
    scores = np.zeros((len(queries), width), dtype=np.float32)
    for i, query in enumerate(queries):
        pool = pools[query.query_id]
        ids[i, : len(pool)] = pool
        scores[i, : len(pool)] = [cosines[query.query_id][d] for d in pool]
    with atomic_open(work.candidates, "wb") as fh:
        np.savez(fh, query_ids=np.asarray([q.query_id for q in queries], dtype=str), ids=ids, scores=scores)
    return width


def write_beir(
    folder: Path,
    heldout: list[Passage],
    queries: list[Query],
    pools: dict[str, list[int]],
    grades: dict[tuple[str, str], int],
    info: dict[str, Any],
) -> dict[str, Any]:
    """Write the BEIR folder beside `folder` and swap it in; returns the qrels statistics."""
    with atomic_path(folder) as tmp:
        (tmp / "qrels").mkdir(parents=True)
        with open(tmp / "corpus.jsonl", "w", encoding="utf-8") as fh:
            for p in heldout:
                fh.write(
                    json.dumps({"_id": p.passage_id, "title": p.title, "text": p.text}, ensure_ascii=False)
                    + "\n"
                )
        with open(tmp / "queries.jsonl", "w", encoding="utf-8") as fh:
            for q in queries:
                row = {"_id": q.query_id, "text": q.text, "source_passage": q.passage_id, "style": q.style}
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        relevant, unjudged, source_raised = [], 0, 0
        histogram: Counter[str] = Counter()
        with (
            open(tmp / "qrels" / "test.tsv", "w", encoding="utf-8") as qrels,
            open(tmp / "candidates.tsv", "w", encoding="utf-8") as cands,
        ):
            qrels.write("query-id\tcorpus-id\tscore\n")
            cands.write("query-id\tcorpus-id\trank\n")
            for q in queries:
                rank, n_relevant = 0, 0
                for d in pools[q.query_id]:
                    pid = heldout[d].passage_id
                    grade = grades.get((q.query_id, pid))
                    if grade is None:  # unparsable or not judged: left out, so every candidate is graded
                        unjudged += 1
                        continue
                    if pid == q.passage_id and grade < SOURCE_MIN_GRADE:
                        source_raised += 1
                        grade = SOURCE_MIN_GRADE
                    histogram[str(grade)] += 1
                    n_relevant += grade >= RELEVANCE_LEVEL
                    rank += 1
                    qrels.write(f"{q.query_id}\t{pid}\t{grade}\n")
                    cands.write(f"{q.query_id}\t{pid}\t{rank}\n")
                relevant.append(n_relevant)
        stats = {
            "queries": len(queries),
            "corpus_passages": len(heldout),
            "graded_pairs": sum(histogram.values()),
            "unjudged_pairs_left_out": unjudged,
            "relevant_per_query": round(float(np.mean(relevant)), 2) if relevant else 0.0,
            "source_graded_below_2": source_raised,
            "qrels_grades": dict(sorted(histogram.items())),
        }
        (tmp / TESTSET_INFO).write_text(json.dumps({**info, **stats}, indent=1) + "\n", encoding="utf-8")
    return stats


def _llm_totals(*stage_counts: dict[str, Any]) -> dict[str, Any]:
    totals = {key: sum(c.get(key, 0) or 0 for c in stage_counts) for key in LLM_COUNTS}
    totals["cost"] = round(float(totals["cost"]), 6)
    return totals


def run_testset(layout: RunLayout, config: PipelineConfig) -> dict[str, Any]:
    """Build `test/` when the in-domain set needs it; returns counts (+ `complete`)."""
    from synthrank.stages.filter import run_filter
    from synthrank.stages.generate import run_generate
    from synthrank.stages.judge import run_judge
    from synthrank.stages.sample import load_passage_arrays

    cfg = config.evaluate
    if "indomain" not in cfg.datasets:
        return {"kind": "none", "reason": "indomain is not in [evaluate] datasets"}
    if has_real_questions(layout):
        return {"kind": KIND_REAL}
    if cfg.synthetic_queries == 0:
        raise EmptyOutputError(
            f"{layout.passages}: no held-out passage carries a real question (meta.question) and "
            "[evaluate] synthetic_queries = 0: set it > 0 for a synthetic in-domain test set, give a "
            "BEIR folder in [evaluate] datasets, or remove indomain from it"
        )
    passages = list(read_jsonl(layout.passages, Passage))
    heldout_docs = heldout_doc_ids(layout)
    rows = [i for i, p in enumerate(passages) if p.doc_id in heldout_docs]
    if not rows:
        raise EmptyOutputError(
            f"{layout.split}: no held-out document to build the in-domain test set from: set [corpus] "
            "heldout_fraction > 0, give a BEIR folder in [evaluate] datasets, or remove indomain from it"
        )
    arrays = load_passage_arrays(layout)
    chosen = pick_passages(
        passages,
        rows,
        arrays["n_tokens"],
        arrays["cluster_id"],
        cfg.synthetic_queries,
        min_tokens=config.sample.min_tokens,
        max_tokens=config.sample.max_tokens,
        seed=cfg.seed,
    )
    if not chosen:
        raise EmptyOutputError(
            f"none of the {len(rows)} held-out passages is within [sample] min_tokens..max_tokens "
            f"({config.sample.min_tokens}..{config.sample.max_tokens}): widen them or hold out more documents"
        )
    heldout = [passages[r] for r in rows]
    generate_cfg = dataclasses.replace(config.generate, n_queries=1)  # one query each: more passages
    depth = cfg.synthetic_judge_top_m
    work = _WorkLayout(layout)
    from synthrank.stages.retrieve import file_fingerprint

    settings = fingerprint(
        [passages[r].passage_id for r in chosen],
        file_fingerprint(layout.passages),  # the texts the queries are written for
        sorted(heldout_docs),
        generate_cfg,
        config.filter,
        config.judge,
        config.embed,
        config.llm.model,
        depth,
    )
    _prepare_work(work, heldout, [passages[r].passage_id for r in chosen], settings)

    generated = run_generate(work, generate_cfg, config.llm)
    counts: dict[str, Any] = {"kind": KIND_SYNTHETIC, "passages": len(chosen)}
    if not generated.get("complete", True):
        return {
            **counts,
            **_llm_totals(generated),
            "complete": False,
            "stop_reason": generated.get("stop_reason"),
        }
    filtered = run_filter(work, config.filter)
    queries = list(read_jsonl(work.queries, Query))
    counts.update(generated_queries=filtered["raw"], kept_queries=len(queries))
    if not queries:
        raise EmptyOutputError(
            f"the query filter kept none of the {filtered['raw']} synthetic test queries (reasons in "
            f"{work.root / 'filter_stats.json'}): loosen [filter], raise [evaluate] synthetic_queries, or "
            "use a stronger LLM"
        )
    pools, cosines = build_pools(layout, config, passages, rows, queries, depth)
    width = _write_candidates(work, queries, pools, cosines)
    # every pooled pair is graded: the training judge's options to skip candidates are off here
    judge_cfg = dataclasses.replace(
        config.judge, top_m=width, include_source=True, skip_margin=None, source_first=False
    )
    judged = run_judge(work, judge_cfg, config.llm)
    counts.update(_llm_totals(generated, judged))
    counts["pool_per_query"] = round(float(np.mean([len(pool) for pool in pools.values()])), 2)
    if not judged.get("complete", True):
        return {**counts, "complete": False, "stop_reason": judged.get("stop_reason")}
    grades = {
        (j.query_id, j.passage_id): j.grade
        for j in read_jsonl(work.judgments, Judgment)
        if j.grade is not None
    }
    info = {
        "kind": KIND_SYNTHETIC,
        "first_stage": "bm25 (graded pool)",
        "pool": f"the source passage + the bi-encoder's and BM25's top {depth} over the held-out passages",
        "relevance_level": RELEVANCE_LEVEL,
        "source_min_grade": SOURCE_MIN_GRADE,
        "model": config.llm.model,
        "judge_top_m": depth,
    }
    counts.update(write_beir(layout.test, heldout, queries, pools, grades, info))
    return counts


def needs_llm(config: PipelineConfig, *, ingested: bool) -> bool:
    """Whether the testset stage will call the LLM: the in-domain set is asked for and the corpus
    has (or, before ingest, may have) no real held-out questions."""
    if "indomain" not in config.evaluate.datasets or config.evaluate.synthetic_queries == 0:
        return False
    layout = RunLayout(config.run.dir)
    if ingested and layout.passages.is_file() and layout.split.is_file():
        return not has_real_questions(layout)
    return True
