"""Embeddings with the real MiniLM, cache reuse, exact vs usearch search, candidates file."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from synthrank.cli import main
from synthrank.errors import InputFormatError
from synthrank.records import Passage, Query, RunLayout, to_json, write_jsonl_atomic
from synthrank.stages.retrieve import (
    EmbedConfig,
    IndexConfig,
    RetrieveConfig,
    ann_search,
    exact_search,
    load_candidates,
    recall_at_k,
    run_embed,
    run_index,
    run_retrieve,
)

TOPICS = {
    "asthma": "Asthma inflames and narrows the airways, causing wheezing and shortness of breath.",
    "gout": "Gout is arthritis caused by uric acid crystals that build up in a joint, often the big toe.",
    "flu": "Influenza is a viral infection of the nose, throat and lungs that spreads by droplets.",
    "diabetes": "Type 2 diabetes is high blood sugar because the body resists or lacks insulin.",
    "migraine": "A migraine is a throbbing headache, often with nausea and sensitivity to light.",
    "anemia": "Anemia means too few healthy red blood cells to carry oxygen through the body.",
}
QUESTIONS = {
    "asthma": "why do my airways wheeze",
    "gout": "uric acid crystals in the big toe",
    "flu": "how does the flu virus spread",
    "diabetes": "insulin resistance and blood sugar",
    "migraine": "headache with light sensitivity",
    "anemia": "not enough red blood cells",
}


def make_run(root: Path, heldout: set[str] = frozenset()) -> RunLayout:  # type: ignore[assignment]
    """Passages: each topic's text plus filler variants (a few dozen in all); one query per topic."""
    layout = RunLayout(root)
    layout.passages.parent.mkdir(parents=True)
    passages, withheld = [], []
    for topic, text in TOPICS.items():
        for i, filler in enumerate(
            ["", " See a doctor.", " It is common.", " Treatment helps.", " Ask a nurse."]
        ):
            passages.append(Passage(f"{topic}#{i}", topic, text + filler, title=topic))
            withheld.append(topic in heldout)
    layout.passages.write_text("".join(to_json(p) + "\n" for p in passages), encoding="utf-8")
    n = len(passages)
    np.savez(
        layout.passage_arrays,
        exact_hash=np.arange(n, dtype=np.uint64),
        cluster_id=np.arange(n, dtype=np.int64),
        n_tokens=np.full(n, 20, dtype=np.int32),
        heldout=np.asarray(withheld),
    )
    queries = [Query(f"q-{t}", t, f"{t}#0", q, "question", "v1", "test") for t, q in QUESTIONS.items()]
    write_jsonl_atomic(layout.queries, queries)
    return layout


@pytest.fixture(scope="module")
def embedded_run(tmp_path_factory: pytest.TempPathFactory) -> RunLayout:
    layout = make_run(tmp_path_factory.mktemp("run"), heldout={"anemia"})
    counts = run_embed(layout, EmbedConfig(batch_size=16))
    rate = counts.pop("passages_per_second")  # what `plan` times the next embedding at
    assert counts == {"passages_embedded": 30, "queries_embedded": 6} and isinstance(rate, float) and rate > 0
    return layout


def test_embeddings_are_normalised_float32_with_a_manifest(embedded_run: RunLayout) -> None:
    passages = np.load(embedded_run.embeddings / "passages.npy", mmap_mode="r")
    assert passages.dtype == np.float32 and passages.shape == (30, 384)
    np.testing.assert_allclose(np.linalg.norm(passages, axis=1), 1.0, atol=1e-5)
    manifest = json.loads(embedded_run.embeddings_manifest.read_text())
    assert manifest["settings"]["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert manifest["settings"]["normalized"] == "l2" and manifest["dim"] == 384
    assert manifest["passages"]["count"] == 30 and len(manifest["passages"]["fingerprint"]) == 32


def test_rerun_reuses_cached_embeddings_until_input_changes(embedded_run: RunLayout) -> None:
    assert run_embed(embedded_run, EmbedConfig()) == {"passages_reused": 30, "queries_reused": 6}
    queries = np.load(embedded_run.embeddings / "queries.npy")
    with open(embedded_run.queries, "a", encoding="utf-8") as fh:
        fh.write(to_json(Query("q-extra", "flu", "flu#0", "flu shot", "keywords", "v1", "test")) + "\n")
    assert run_embed(embedded_run, EmbedConfig()) == {"passages_reused": 30, "queries_embedded": 7}
    np.testing.assert_allclose(np.load(embedded_run.embeddings / "queries.npy")[:6], queries, atol=1e-5)


def test_retrieve_finds_the_source_topic_and_never_withheld_passages(embedded_run: RunLayout) -> None:
    counts = run_retrieve(embedded_run, RetrieveConfig(k=10), EmbedConfig())
    assert counts["search"] == "exact" and counts["ann_recall_at_k"] == 1.0
    candidates = load_candidates(embedded_run.candidates)
    assert candidates.ids.dtype == np.int64 and candidates.scores.dtype == np.float32
    assert candidates.ids.shape == (7, 10) and candidates.query_ids[0] == "q-asthma"
    topics = list(TOPICS)
    for qi, topic in enumerate(topics[:5]):
        assert candidates.ids[qi, 0] // 5 == topics.index(topic)  # its own topic ranks first
    withheld_rows = set(range(25, 30))  # anemia is held out
    assert not withheld_rows & set(candidates.ids.ravel().tolist())
    assert np.all(np.diff(candidates.scores, axis=1) <= 1e-6)  # sorted by cosine


def test_ann_search_through_the_cli(embedded_run: RunLayout) -> None:
    result = CliRunner().invoke(
        main,
        ["retrieve", "--run", str(embedded_run.root), "-k", "5", "--ann", "--dtype", "f16", "--threads", "1"],
    )
    assert result.exit_code == 0, result.output
    assert "ANN recall@5 vs exact search" in result.output
    counts = json.loads(result.output.strip().splitlines()[-1])
    assert counts["search"] == "ann" and counts["ann_recall_at_k"] >= 0.8
    assert load_candidates(embedded_run.candidates).ids.shape == (7, 5)


def test_exact_search_matches_brute_force_and_pads_missing() -> None:
    rng = np.random.default_rng(0)
    passages = rng.normal(size=(300, 16)).astype(np.float32)
    queries = rng.normal(size=(12, 16)).astype(np.float32)
    ids, scores = exact_search(queries, passages, 7, block=64)
    brute = np.argsort(-(queries @ passages.T), axis=1)[:, :7]
    np.testing.assert_array_equal(ids, brute)
    np.testing.assert_allclose(scores, np.take_along_axis(queries @ passages.T, brute, axis=1), rtol=1e-5)
    few_ids, few_scores = exact_search(queries, passages, 5, rows=np.array([3, 9]))
    assert (
        set(few_ids[0, :2].tolist()) == {3, 9}
        and (few_ids[:, 2:] == -1).all()
        and (few_scores[:, 2:] == 0).all()
    )


def test_usearch_recall_against_exact_search() -> None:
    from usearch.index import Index

    rng = np.random.default_rng(1)
    passages = rng.normal(size=(5000, 32)).astype(np.float32)
    passages /= np.linalg.norm(passages, axis=1, keepdims=True)
    queries = passages[:100] + 0.1 * rng.normal(size=(100, 32)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    index = Index(
        ndim=32, metric="cos", dtype="f32", connectivity=16, expansion_add=128, expansion_search=128
    )
    index.add(np.arange(5000), passages, threads=1)
    ann_ids, ann_scores = ann_search(index, queries, 10, threads=1)
    exact_ids, exact_scores = exact_search(queries, passages, 10)
    assert recall_at_k(ann_ids, exact_ids) >= 0.95
    np.testing.assert_allclose(ann_scores[:, 0], exact_scores[:, 0], atol=1e-4)


def test_ann_search_on_fewer_vectors_than_k_pads_without_warnings() -> None:
    from usearch.index import Index

    rng = np.random.default_rng(2)
    passages = rng.normal(size=(7, 16)).astype(np.float32)
    passages /= np.linalg.norm(passages, axis=1, keepdims=True)
    index = Index(ndim=16, metric="cos", dtype="f32")
    index.add(np.arange(7), passages, threads=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the undefined distances of missing hits are never computed on
        ids, scores = ann_search(index, passages[:3], 20, threads=1)
    assert ids.shape == scores.shape == (3, 20)
    assert (ids[:, 7:] == -1).all() and (scores[:, 7:] == 0.0).all() and np.isfinite(scores).all()
    assert sorted(ids[0, :7].tolist()) == list(range(7)) and ids[0, 0] == 0
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-5)


def test_missing_inputs_are_reported(tmp_path: Path) -> None:
    layout = RunLayout(tmp_path)
    with pytest.raises(InputFormatError, match="run `synthrank ingest` first"):
        run_embed(layout, EmbedConfig())
    with pytest.raises(InputFormatError, match="run `synthrank embed` first"):
        run_index(layout, IndexConfig())
    result = CliRunner().invoke(main, ["retrieve", "--run", str(tmp_path)])
    assert result.exit_code == 2 and "queries.jsonl" in result.output and "Traceback" not in result.output


@pytest.mark.slow
def test_multi_process_pool_gives_the_same_embeddings(tmp_path: Path) -> None:
    """Two CPU workers stand in for several GPUs (sentence-transformers' multi-process pool)."""
    layout = make_run(tmp_path / "pool")
    run_embed(layout, EmbedConfig(devices=("cpu", "cpu"), chunk_size=8))
    pooled = np.load(layout.embeddings / "passages.npy")
    layout.embeddings_manifest.unlink()
    counts = run_embed(layout, EmbedConfig())
    assert {k: counts[k] for k in ("passages_embedded", "queries_embedded")} == {
        "passages_embedded": 30,
        "queries_embedded": 6,
    }
    np.testing.assert_allclose(np.load(layout.embeddings / "passages.npy"), pooled, atol=1e-5)
