"""Pseudo-queries as the dev set the fusion weight is picked on when the synthetic one is too small."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from synthrank.pseudo_queries import pseudo_query_sources, write_pseudo_query_sources
from synthrank.records import Passage, RunLayout, read_jsonl
from synthrank.stages.evaluate import pseudo_dev
from synthrank.stages.evaluate.pseudo_dev import load_pseudo_dev
from test_training_support import tiny_run


def test_pseudo_queries_are_cut_from_training_passages_the_warm_start_left(tmp_path: Path) -> None:
    layout = tiny_run(tmp_path / "run")
    passages = {p.passage_id: p for p in read_jsonl(layout.passages, Passage)}
    heldout = set(json.loads(layout.split.read_text())["heldout_doc_ids"])
    used = sorted(pid for pid, p in passages.items() if p.doc_id == "asthma")
    write_pseudo_query_sources(layout, used)
    assert pseudo_query_sources(layout) == set(used)

    ds = load_pseudo_dev(layout, top_k=10, n_queries=20, seed=0)
    assert len(ds.candidates) == 20 and ds.queries.keys() == ds.qrels.keys() == ds.candidates.keys()
    for qid, query in ds.queries.items():
        (own,) = ds.qrels[qid]
        assert own in ds.candidates[qid] and own not in used
        source = passages[own]
        assert query in source.text and query not in ds.passages[own]  # its sentence, cut out of it
        assert source.doc_id not in heldout
    assert not {passages[d].doc_id for d in ds.passages} & heldout  # test documents never enter
    again = load_pseudo_dev(layout, top_k=10, n_queries=20, seed=0)
    assert again.queries == ds.queries and again.candidates == ds.candidates


def test_no_sentence_to_cut_gives_an_empty_set(tmp_path: Path) -> None:
    layout = tiny_run(tmp_path / "run")
    write_pseudo_query_sources(layout, [p.passage_id for p in read_jsonl(layout.passages, Passage)])
    assert load_pseudo_dev(layout, top_k=10, n_queries=20, seed=0).candidates == {}


def test_a_large_corpus_is_ranked_over_a_sample(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    layout = tiny_run(tmp_path / "run")
    full = load_pseudo_dev(layout, top_k=60, n_queries=10, seed=0)
    monkeypatch.setattr(pseudo_dev, "MAX_PASSAGES", 20)
    sampled = load_pseudo_dev(layout, top_k=60, n_queries=10, seed=0)
    ranked = {d for c in sampled.candidates.values() for d in c}
    assert sampled.candidates and len(ranked) <= 20 < len({d for c in full.candidates.values() for d in c})


def test_a_run_without_a_corpus_has_no_pseudo_queries(tmp_path: Path) -> None:
    assert load_pseudo_dev(RunLayout(tmp_path / "empty"), top_k=10, n_queries=20, seed=0).candidates == {}
