"""Mining benchmarks: end-to-end mining from embeddings, and usearch vs exact search.

1. Mining, embedding excluded: Q queries over 2Q passages (dim 384, clustered like text embeddings),
   top-100 candidates and judge grades for the top 20 + the source. synthrank `run_mine` end to end
   (reads the run folder, selects with the native or the pure-Python selector, writes JSONL, the HF
   dataset, the dev set) vs sentence-transformers' selection logic on the same candidate arrays
   (`synthrank.bench.peers`), and ST's whole `mine_hard_negatives` (its exact search included) fed
   the very same embeddings through its `cache_folder`, at a smaller size (its search is O(Q x N)).
   ST has no judge labels, so its groups differ by design: the table compares time and memory.
2. Search: usearch (f32/f16/i8) vs exact blockwise search at 10k/100k/1M vectors of dim 384, 1,000
   queries: build and search seconds, recall@10 and @100 against exact, peak memory.

Script (prints one table): python benches/bench_mining.py [--queries 100000] [--search-sizes ...]
pytest-benchmark (small sizes): pytest benches/bench_mining.py --benchmark-enable
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from synthrank.bench.measure import measure
from synthrank.records import Judgment, Passage, Query, RunLayout, to_json
from synthrank.stages.mine import MineConfig, run_mine
from synthrank.stages.retrieve import (
    Candidates,
    ann_search,
    exact_search,
    recall_at_k,
    save_candidates,
)

DIM = 384
JUDGED_DEPTH = 20


def unit_vectors(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    v = rng.standard_normal((n, dim), dtype=np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v


def noisy_copies(rng: np.random.Generator, base: np.ndarray, noise: float) -> np.ndarray:
    v = base + noise * rng.standard_normal(base.shape, dtype=np.float32) / np.sqrt(base.shape[1])
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def topics(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, max(10, n // 100), size=n)


def clustered_vectors(
    rng: np.random.Generator, n: int, dim: int = DIM, topic: np.ndarray | None = None
) -> np.ndarray:
    """Unit vectors around n/100 topic centroids (within-topic cosine about 0.6), like text embeddings;
    uniform random vectors in 384 dimensions have no neighbourhood structure and flatter recall."""
    topic = topics(rng, n) if topic is None else topic
    centroids = unit_vectors(rng, int(topic.max()) + 1, dim)
    return noisy_copies(rng, centroids[topic], noise=0.8)


@dataclass
class MiningRun:
    """A synthetic run folder up to the judge stage, plus the texts ST needs."""

    layout: RunLayout
    passage_texts: list[str]
    query_texts: list[str]
    source_rows: np.ndarray
    topic: np.ndarray


def make_mining_run(root: Path, n_queries: int, *, seed: int = 0) -> MiningRun:
    """Q queries over 2Q passages; query i is a noisy copy of passage i (its source)."""
    rng = np.random.default_rng(seed)
    n_passages = 2 * n_queries
    layout = RunLayout(root)
    layout.passages.parent.mkdir(parents=True, exist_ok=True)
    layout.embeddings.mkdir(parents=True, exist_ok=True)
    passage_texts = [f"passage {i} about topic {i % 997}" for i in range(n_passages)]
    query_texts = [f"query {i}" for i in range(n_queries)]
    with open(layout.passages, "w", encoding="utf-8") as fh:
        for i, text in enumerate(passage_texts):
            fh.write(to_json(Passage(f"d{i}#0", f"d{i}", text)) + "\n")
    with open(layout.queries, "w", encoding="utf-8") as fh:
        for i, text in enumerate(query_texts):
            fh.write(to_json(Query(f"q{i}", f"d{i}", f"d{i}#0", text, "question", "v1", "bench")) + "\n")
    topic = topics(rng, n_passages)
    passages = clustered_vectors(rng, n_passages, topic=topic)
    queries = noisy_copies(rng, passages[:n_queries], noise=0.8)
    np.save(layout.embeddings / "passages.npy", passages)
    np.save(layout.embeddings / "queries.npy", queries)
    layout.embeddings_manifest.write_text(
        json.dumps({"passages": {"count": n_passages}, "queries": {"count": n_queries}})
    )
    hashes = np.arange(n_passages, dtype=np.uint64)
    clusters = np.arange(n_passages, dtype=np.int64)
    dup = rng.choice(n_passages, size=n_passages // 50, replace=False)  # 2% near-duplicate pairs
    clusters[dup] = clusters[(dup + 1) % n_passages]
    np.savez(
        layout.passage_arrays,
        exact_hash=hashes,
        cluster_id=clusters,
        n_tokens=np.full(n_passages, 100, dtype=np.int32),
        heldout=np.zeros(n_passages, dtype=bool),
    )
    return MiningRun(layout, passage_texts, query_texts, np.arange(n_queries), topic)


def topic_candidates(run: MiningRun, k: int, *, block: int = 4096) -> None:
    """Stand-in for the retrieve stage at any size: each query's k best passages by cosine among its
    source's topic (about 200 passages), so mining gets realistic candidates without a full search."""
    passages = np.load(run.layout.embeddings / "passages.npy", mmap_mode="r")
    queries = np.load(run.layout.embeddings / "queries.npy", mmap_mode="r")
    members = np.argsort(run.topic, kind="stable")
    starts = np.searchsorted(run.topic[members], np.arange(int(run.topic.max()) + 2))
    ids = np.full((len(queries), k), -1, dtype=np.int64)
    scores = np.zeros((len(queries), k), dtype=np.float32)
    for qi in range(len(queries)):
        t = run.topic[run.source_rows[qi]]
        pool = members[starts[t] : starts[t + 1]]
        cos = np.asarray(passages[pool]) @ np.asarray(queries[qi])
        top = np.argsort(-cos, kind="stable")[:k]
        ids[qi, : len(top)], scores[qi, : len(top)] = pool[top], cos[top]
    query_ids = np.asarray([f"q{i}" for i in range(len(queries))])
    save_candidates(run.layout.candidates, Candidates(query_ids, ids, scores))


def write_judgments(run: MiningRun, *, seed: int = 0) -> None:
    """The judge stage: the source graded 3 (5% graded 1), the top 20 mostly 0/1 with 5% relevant."""
    rng = np.random.default_rng(seed)
    with np.load(run.layout.candidates) as data:
        ids = data["ids"][:, :JUDGED_DEPTH]
    with open(run.layout.judgments, "w", encoding="utf-8") as fh:
        for qi, row in enumerate(ids.tolist()):
            source = int(run.source_rows[qi])
            grades = rng.choice([0, 1, 2, 3], p=[0.55, 0.40, 0.03, 0.02], size=len(row)).tolist()
            pairs = [(source, 3 if rng.random() > 0.05 else 1)]
            pairs += [(r, g) for r, g in zip(row, grades, strict=True) if r >= 0 and r != source]
            for r, g in pairs:
                j = Judgment(f"q{qi}", f"d{r}#0", f"d{r}", g, None, "", "v1", "bench")
                fh.write(to_json(j) + "\n")


def st_model() -> Any:
    """Only its name and device are used: the embeddings come from the cache."""
    from sentence_transformers import SentenceTransformer

    from synthrank.models import resolve_model

    return SentenceTransformer(resolve_model("sentence-transformers/all-MiniLM-L6-v2"), device="cpu")


def st_mine(run: MiningRun, model: Any, k: int, num_negatives: int) -> Any:
    """sentence-transformers' mine_hard_negatives on the same embeddings (through its cache)."""
    from datasets import Dataset
    from sentence_transformers.util import mine_hard_negatives

    cache = run.layout.root / "st_cache"
    cache.mkdir(exist_ok=True)
    name = model.model_card_data.base_model or ""
    positives = [run.passage_texts[i] for i in run.source_rows]
    corpus = list(dict.fromkeys(positives + run.passage_texts))  # what ST builds from positives + corpus
    order = {t: i for i, t in enumerate(run.passage_texts)}
    passages = np.load(run.layout.embeddings / "passages.npy")
    for kind, texts, vectors in (
        ("query", run.query_texts, np.load(run.layout.embeddings / "queries.npy")),
        ("corpus", corpus, passages[[order[t] for t in corpus]]),
    ):
        digest = hashlib.sha256(repr((name, None, None, texts)).encode(), usedforsecurity=False).hexdigest()
        np.save(cache / f"{kind}_embeddings_{digest}.npy", vectors)
    dataset = Dataset.from_dict({"anchor": run.query_texts, "positive": positives})
    return mine_hard_negatives(
        dataset,
        model,
        corpus=run.passage_texts,
        range_max=k,
        num_negatives=num_negatives,
        sampling_strategy="top",
        output_format="n-tuple",
        cache_folder=str(cache),
        batch_size=256,
        verbose=False,
    )


def bench_mining(
    n_queries: int, st_queries: int, k: int = 100, num_negatives: int = 7
) -> list[dict[str, Any]]:
    """run_mine (native / python selector) at n_queries; ST mine_hard_negatives at st_queries."""
    from synthrank.bench.peers import sentence_transformers_select_negatives

    rows: list[dict[str, Any]] = []
    label = f"mine {n_queries // 1000}k x {k}"
    with tempfile.TemporaryDirectory() as tmp:
        run = make_mining_run(Path(tmp) / "run", n_queries)
        topic_candidates(run, k)
        write_judgments(run)
        run_mine(run.layout, MineConfig(dev_fraction=0.0))  # warm-up: imports, page cache
        for backend in ("native", "python"):
            cfg = MineConfig(num_negatives=num_negatives, backend=backend, dev_fraction=0.0)
            mined = measure(lambda cfg=cfg: run_mine(run.layout, cfg))
            rows.append(
                {
                    "bench": label,
                    "impl": f"synthrank run_mine ({backend} selector)",
                    "seconds": mined.seconds,
                    "detail": f"{mined.result['train_groups']} groups; reads candidates + "
                    f"{n_queries * (JUDGED_DEPTH + 1) // 1000}k judgments, writes JSONL/HF/dev",
                    "peak_mb": mined.peak_mb,
                }
            )
        with np.load(run.layout.candidates) as data:
            cand_ids, cand_scores = data["ids"], data["scores"]
        pos_ids = run.source_rows.reshape(-1, 1).astype(np.int64)
        pos_scores = np.einsum(
            "ij,ij->i",
            np.load(run.layout.embeddings / "queries.npy"),
            np.load(run.layout.embeddings / "passages.npy", mmap_mode="r")[run.source_rows],
        ).reshape(-1, 1)
        sentence_transformers_select_negatives(  # warm-up: torch import and first-call setup
            cand_ids[:8], cand_scores[:8], pos_ids[:8], pos_scores[:8].astype(np.float32), num_negatives=1
        )
        st_select = measure(
            lambda: sentence_transformers_select_negatives(
                cand_ids, cand_scores, pos_ids, pos_scores.astype(np.float32), num_negatives=num_negatives
            )
        )
        rows.append(
            {
                "bench": label,
                "impl": "sentence-transformers selection logic",
                "seconds": st_select.seconds,
                "detail": "same candidates, its masking + topk only (no labels, no I/O)",
                "peak_mb": st_select.peak_mb,
            }
        )
    if st_queries:
        with tempfile.TemporaryDirectory() as tmp:
            run = make_mining_run(Path(tmp) / "run", st_queries)
            model = st_model()
            st = measure(lambda: st_mine(run, model, k, num_negatives))
            rows.append(
                {
                    "bench": f"mine {st_queries // 1000}k x {k}",
                    "impl": "sentence-transformers mine_hard_negatives",
                    "seconds": st.seconds,
                    "detail": f"same embeddings via its cache; exact search over {2 * st_queries // 1000}k "
                    "passages + selection + Dataset",
                    "peak_mb": st.peak_mb,
                }
            )
    return rows


def bench_search(
    n_vectors: int, dtypes: tuple[str, ...], n_queries: int = 1000, seed: int = 0
) -> list[dict[str, Any]]:
    from usearch.index import Index

    rng = np.random.default_rng(seed)
    passages = clustered_vectors(rng, n_vectors)
    queries = noisy_copies(rng, passages[rng.choice(n_vectors, n_queries, replace=False)], noise=0.8)
    exact = measure(lambda: exact_search(queries, passages, 100))
    truth = exact.result[0]
    label = f"search {n_vectors // 1000}k" if n_vectors < 1_000_000 else f"search {n_vectors // 1_000_000}M"
    rows = [
        {
            "bench": label,
            "impl": "exact (numpy blocks)",
            "seconds": exact.seconds,
            "detail": "recall 1.0",
            "peak_mb": exact.peak_mb,
        }
    ]
    for dtype in dtypes:
        index = Index(
            ndim=DIM, metric="cos", dtype=dtype, connectivity=16, expansion_add=128, expansion_search=128
        )
        built = measure(lambda index=index: index.add(np.arange(n_vectors), passages, threads=0))
        found = measure(lambda index=index: ann_search(index, queries, 100, threads=0))
        ids = found.result[0]
        rows.append(
            {
                "bench": label,
                "impl": f"usearch {dtype}",
                "seconds": found.seconds,
                "detail": f"build {built.seconds:.1f}s, "
                f"recall@10 {recall_at_k(ids[:, :10], truth[:, :10]):.3f}, "
                f"recall@100 {recall_at_k(ids, truth):.3f}, index {index.memory_usage / 2**20:.0f} MB",
                "peak_mb": max(built.peak_mb or 0, found.peak_mb or 0),
            }
        )
        del index
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"synthrank mining benchmarks ({os.cpu_count()} CPU cores)")
    for column in ("bench", "impl", "seconds", "peak MB", "detail"):
        table.add_column(column, justify="right" if column in ("seconds", "peak MB") else "left")
    for r in rows:
        peak = "-" if r["peak_mb"] is None else f"{r['peak_mb']:.0f}"
        table.add_row(r["bench"], r["impl"], f"{r['seconds']:.2f}", peak, r["detail"])
    Console(width=160).print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=100_000)
    parser.add_argument("--st-queries", type=int, default=10_000, help="size for ST's mine_hard_negatives")
    parser.add_argument("--search-sizes", type=int, nargs="*", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = bench_mining(args.queries, args.st_queries) if args.queries else []
    print_table(rows)
    for size in args.search_sizes:
        rows += bench_search(size, ("f16", "i8") if size >= 1_000_000 else ("f32", "f16"))
        print_table(rows)
    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


# --- pytest-benchmark (small sizes; `pytest benches/bench_mining.py --benchmark-enable`) -----------


@pytest.fixture(scope="module")
def judged_run(tmp_path_factory: pytest.TempPathFactory) -> MiningRun:
    run = make_mining_run(tmp_path_factory.mktemp("mining"), 2000)
    topic_candidates(run, 100)
    write_judgments(run)
    return run


@pytest.mark.parametrize("backend", ["native", "python"])
def test_bench_run_mine(benchmark: Any, judged_run: MiningRun, backend: str) -> None:
    benchmark.group = "mine 2k x 100"
    stats = benchmark(run_mine, judged_run.layout, MineConfig(backend=backend, dev_fraction=0.0))
    assert stats["train_groups"] > 1500


def test_bench_sentence_transformers_mine(benchmark: Any, judged_run: MiningRun) -> None:
    benchmark.group = "mine 2k x 100"
    result = benchmark(st_mine, judged_run, st_model(), 100, 7)
    assert len(result) == 2000


@pytest.mark.parametrize("impl", ["exact", "usearch"])
def test_bench_search_10k(benchmark: Any, impl: str) -> None:
    from usearch.index import Index

    rng = np.random.default_rng(0)
    passages = clustered_vectors(rng, 10_000)
    queries = noisy_copies(rng, passages[:200], noise=0.8)
    benchmark.group = "search 10k x 200 queries"
    if impl == "exact":
        ids, _ = benchmark(exact_search, queries, passages, 100)
    else:
        index = Index(
            ndim=DIM, metric="cos", dtype="f32", connectivity=16, expansion_add=128, expansion_search=128
        )
        index.add(np.arange(len(passages)), passages)
        ids, _ = benchmark(ann_search, index, queries, 100, 0)
        assert recall_at_k(ids, exact_search(queries, passages, 100)[0]) > 0.8
    assert ids.shape == (200, 100)


if __name__ == "__main__":
    main()
