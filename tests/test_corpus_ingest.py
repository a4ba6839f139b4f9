"""Ingest: chunk budget in reranker tokens, dedup clusters, held-out split, exclusions, streaming."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer

from synthrank.errors import ConfigError, InputFormatError
from synthrank.models import resolve_model
from synthrank.records import Passage, RunLayout, read_jsonl
from synthrank.stages.ingest import IngestConfig, run_ingest

WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "zeta",
    "eta",
    "theta",
    "iota",
    "kappa",
    "lambda",
    "mu",
    "nu",
    "xi",
    "omicron",
    "pi",
    "rho",
    "sigma",
    "tau",
]


def sentence(seed: int, n: int = 40) -> str:
    rng = np.random.default_rng(seed)
    return " ".join(rng.choice(WORDS, size=n)) + "."


def write_corpus(path: Path, docs: list[tuple[str, str]]) -> Path:
    path.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in docs), encoding="utf-8")
    return path


def test_long_document_chunked_within_the_reranker_budget(tmp_path: Path) -> None:
    long_text = " ".join(sentence(i) for i in range(30))
    source = write_corpus(tmp_path / "c.jsonl", [("long", long_text), ("short", "A short note.")])
    layout = RunLayout(tmp_path / "run")
    cfg = IngestConfig(max_length=128, query_budget=32, special_tokens=3, overlap=8, heldout_fraction=0.0)
    counts = run_ingest(layout, cfg, source)
    passages = list(read_jsonl(layout.passages, Passage))
    tokenizer = Tokenizer.from_file(str(Path(resolve_model(cfg.tokenizer)) / "tokenizer.json"))
    tokenizer.no_truncation()  # MiniLM's file pads and truncates to 128
    tokenizer.no_padding()
    long_parts = [p for p in passages if p.doc_id == "long"]
    assert len(long_parts) > 5 and counts["passages"] == len(passages)
    assert [p.passage_id for p in long_parts] == [f"long#{i}" for i in range(len(long_parts))]
    for p in long_parts:
        assert p.text == long_text[p.start : p.end]
        assert len(tokenizer.encode(p.text, add_special_tokens=False).ids) <= cfg.passage_tokens == 93
    with np.load(layout.passage_arrays) as arrays:
        assert arrays["n_tokens"].dtype == np.int32 and len(arrays["n_tokens"]) == len(passages)
        assert arrays["n_tokens"].max() <= 93


def test_exact_and_near_duplicates_share_a_cluster(tmp_path: Path) -> None:
    base = " ".join(sentence(i, 30) for i in range(4))
    near = base.replace("alpha", "alpha,", 1) + " omega"
    docs = [("a", base), ("b", sentence(99, 120)), ("c", base), ("d", near), ("e", sentence(7, 120))]
    layout = RunLayout(tmp_path / "run")
    counts = run_ingest(layout, IngestConfig(heldout_fraction=0.0), write_corpus(tmp_path / "c.jsonl", docs))
    with np.load(layout.passage_arrays) as arrays:
        clusters, hashes = arrays["cluster_id"], arrays["exact_hash"]
    assert clusters.dtype == np.int64 and hashes.dtype == np.uint64
    assert hashes[0] == hashes[2] and hashes[0] != hashes[3]
    assert clusters.tolist() == [0, 1, 0, 0, 4]
    assert counts["exact_duplicate_passages"] == 1 and counts["near_duplicate_clusters"] == 3


def test_passages_without_shingles_join_only_their_exact_copies(tmp_path: Path) -> None:
    docs = [("a", "!!!"), ("b", "???"), ("c", "!!!"), ("d", "..."), ("e", sentence(1, 40))]
    layout = RunLayout(tmp_path / "run")
    cfg = IngestConfig(heldout_fraction=0.0, batch_size=2)  # across batches too
    counts = run_ingest(layout, cfg, write_corpus(tmp_path / "c.jsonl", docs))
    with np.load(layout.passage_arrays) as arrays:
        assert arrays["cluster_id"].tolist() == [0, 1, 0, 3, 4]
    assert counts["near_duplicate_clusters"] == 4 and counts["passages_in_shared_clusters"] == 2


def test_failed_ingest_leaves_no_scratch_or_temporary_file(tmp_path: Path) -> None:
    source = write_corpus(tmp_path / "c.jsonl", [("a", sentence(1, 60)), ("a", sentence(2, 60))])
    layout = RunLayout(tmp_path / "run")
    with pytest.raises(InputFormatError, match="duplicate id"):
        run_ingest(layout, IngestConfig(heldout_fraction=0.0), source)
    assert list(layout.passages.parent.iterdir()) == []
    run_ingest(layout, IngestConfig(heldout_fraction=0.0, on_error="skip"), source)
    assert sorted(p.name for p in layout.passages.parent.iterdir()) == sorted(
        p.name for p in (layout.passages, layout.passage_arrays, layout.split)
    )


def test_heldout_split_is_by_document_and_seeded(tmp_path: Path) -> None:
    docs = [(f"d{i}", " ".join(sentence(i * 10 + j, 200) for j in range(3))) for i in range(40)]
    source = write_corpus(tmp_path / "c.jsonl", docs)

    def split(seed: int, run: str) -> tuple[list[str], np.ndarray, list[Passage]]:
        layout = RunLayout(tmp_path / run)
        run_ingest(layout, IngestConfig(heldout_fraction=0.25, seed=seed), source)
        with np.load(layout.passage_arrays) as arrays:
            heldout = arrays["heldout"]
        return (
            json.loads(layout.split.read_text())["heldout_doc_ids"],
            heldout,
            list(read_jsonl(layout.passages, Passage)),
        )

    ids, heldout, passages = split(1, "r1")
    assert 2 <= len(ids) <= 20
    assert [p.doc_id in set(ids) for p in passages] == heldout.tolist()  # every passage of a doc together
    assert split(1, "r2")[0] == ids and split(2, "r3")[0] != ids


def test_exclude_docs_are_withheld_and_listed(tmp_path: Path) -> None:
    docs = [(f"d{i}", sentence(i, 60)) for i in range(6)]
    exclude = tmp_path / "exclude.txt"
    exclude.write_text("d1\nd4\n\nnot-in-corpus\n", encoding="utf-8")
    layout = RunLayout(tmp_path / "run")
    cfg = IngestConfig(heldout_fraction=0.0, exclude_docs=exclude)
    counts = run_ingest(layout, cfg, write_corpus(tmp_path / "c.jsonl", docs))
    split = json.loads(layout.split.read_text())
    assert split["excluded_doc_ids"] == ["d1", "d4"] and split["heldout_doc_ids"] == []
    with np.load(layout.passage_arrays) as arrays:
        assert arrays["heldout"].tolist() == [False, True, False, False, True, False]
    assert counts["excluded_documents"] == 2


def test_config_errors_name_the_option(tmp_path: Path) -> None:
    source = write_corpus(tmp_path / "c.jsonl", [("a", "text")])
    with pytest.raises(ConfigError, match="overlap"):
        run_ingest(RunLayout(tmp_path / "run"), IngestConfig(overlap=500), source)
    with pytest.raises(ConfigError, match="max_length"):
        run_ingest(RunLayout(tmp_path / "run"), IngestConfig(max_length=40, query_budget=40), source)


PEAK_SCRIPT = """
import json, resource, sys
from synthrank.stages.ingest import IngestConfig, run_ingest
from synthrank.records import RunLayout
run_ingest(RunLayout(sys.argv[2]), IngestConfig(batch_size=500), sys.argv[1])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


@pytest.mark.slow
def test_memory_stays_flat_as_the_corpus_grows(tmp_path: Path) -> None:
    """Peak RSS for a 10x larger corpus grows by far less than the corpus itself (streaming)."""
    peaks = []
    for n in (4_000, 40_000):
        source = tmp_path / f"c{n}.jsonl"
        with open(source, "w", encoding="utf-8") as fh:
            for i in range(n):
                fh.write(json.dumps({"id": i, "text": sentence(i, 300)}) + "\n")
        out = subprocess.run(
            [sys.executable, "-c", PEAK_SCRIPT, str(source), str(tmp_path / f"run{n}")],
            capture_output=True,
            text=True,
            check=True,
        )
        peaks.append(int(out.stdout.split()[-1]) * 1024)
    grown = peaks[1] - peaks[0]
    corpus_growth = (tmp_path / "c40000.jsonl").stat().st_size - (tmp_path / "c4000.jsonl").stat().st_size
    assert grown < corpus_growth / 4, (peaks, corpus_growth)
