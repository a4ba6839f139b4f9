"""The sample stage: never withheld passages or their near-duplicates, one per cluster, seeded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from synthrank.errors import ConfigError, EmptyOutputError, InputFormatError
from synthrank.records import Passage, RunLayout, to_json
from synthrank.stages.sample import SampleConfig, run_sample


def make_corpus(root: Path, qtypes: list[str], heldout: list[bool], clusters: list[int]) -> RunLayout:
    """A corpus folder as ingest writes it, with hand-set clusters and held-out flags."""
    layout = RunLayout(root)
    layout.passages.parent.mkdir(parents=True)
    n = len(qtypes)
    with open(layout.passages, "w", encoding="utf-8") as fh:
        for i, qtype in enumerate(qtypes):
            fh.write(to_json(Passage(f"d{i}#0", f"d{i}", f"text {i}", meta={"qtype": qtype})) + "\n")
    np.savez(
        layout.passage_arrays,
        exact_hash=np.arange(n, dtype=np.uint64),
        cluster_id=np.asarray(clusters, dtype=np.int64),
        n_tokens=np.full(n, 50, dtype=np.int32),
        heldout=np.asarray(heldout, dtype=bool),
    )
    return layout


def sampled(layout: RunLayout) -> list[str]:
    return layout.sampled_ids.read_text(encoding="utf-8").split()


def test_withheld_and_their_near_duplicates_are_never_sampled(tmp_path: Path) -> None:
    # rows 0-1 one cluster; row 2 held out and row 3 its near-duplicate; rows 4-5 distinct
    layout = make_corpus(tmp_path, ["a"] * 6, [False, False, True, False, False, False], [0, 0, 2, 2, 4, 5])
    counts = run_sample(layout, SampleConfig(num_passages=100))
    assert sampled(layout) == ["d0#0", "d4#0", "d5#0"]
    assert counts == {"passages": 6, "eligible": 3, "withheld": 1, "sampled": 3}
    run_sample(layout, SampleConfig(num_passages=100, one_per_cluster=False))
    assert sampled(layout) == ["d0#0", "d1#0", "d4#0", "d5#0"]


def test_uniform_sample_is_seeded(tmp_path: Path) -> None:
    n = 200
    layout = make_corpus(tmp_path, ["a"] * n, [False] * n, list(range(n)))
    run_sample(layout, SampleConfig(num_passages=20, seed=1))
    first = sampled(layout)
    run_sample(layout, SampleConfig(num_passages=20, seed=1))
    assert sampled(layout) == first and len(first) == 20
    run_sample(layout, SampleConfig(num_passages=20, seed=2))
    assert sampled(layout) != first


def test_hash_sample_keeps_its_picks_when_other_documents_are_withheld(tmp_path: Path) -> None:
    n = 200
    layout = make_corpus(tmp_path / "all", ["a"] * n, [False] * n, list(range(n)))
    run_sample(layout, SampleConfig(num_passages=30, strategy="hash"))
    first = sampled(layout)
    withheld = [i % 7 == 0 for i in range(n)]  # e.g. documents a replay excludes
    fewer = make_corpus(tmp_path / "fewer", ["a"] * n, withheld, list(range(n)))
    run_sample(fewer, SampleConfig(num_passages=30, strategy="hash"))
    again = sampled(fewer)
    kept = [pid for pid in first if not withheld[int(pid[1:].split("#")[0])]]
    assert len(first) == len(again) == 30 and set(kept) <= set(again)
    run_sample(layout, SampleConfig(num_passages=30, strategy="hash", seed=1))
    assert sampled(layout) != first


def test_stratified_gives_equal_quotas_and_redistributes(tmp_path: Path) -> None:
    qtypes = ["rare"] * 3 + ["common"] * 60 + ["medium"] * 30
    layout = make_corpus(tmp_path, qtypes, [False] * len(qtypes), list(range(len(qtypes))))
    run_sample(layout, SampleConfig(num_passages=30, strategy="stratified", stratify_by="qtype"))
    picked = [qtypes[int(pid[1:].split("#")[0])] for pid in sampled(layout)]
    assert len(picked) == 30
    assert picked.count("rare") == 3 and picked.count("medium") == 14 and picked.count("common") == 13


def test_length_filter(tmp_path: Path) -> None:
    layout = make_corpus(tmp_path, ["a"] * 3, [False] * 3, [0, 1, 2])
    with np.load(layout.passage_arrays) as data:
        arrays = dict(data)
    arrays["n_tokens"] = np.asarray([5, 50, 500], dtype=np.int32)
    np.savez(layout.passage_arrays, **arrays)
    run_sample(layout, SampleConfig(num_passages=10, min_tokens=10, max_tokens=100))
    assert sampled(layout) == ["d1#0"]


def test_bad_config_and_missing_corpus(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="stratify_by"):
        run_sample(RunLayout(tmp_path), SampleConfig(strategy="stratified"))
    with pytest.raises(InputFormatError, match="run `synthrank ingest` first"):
        run_sample(RunLayout(tmp_path), SampleConfig())
    assert not RunLayout(tmp_path).sampled_ids.exists()


def test_listed_passage_ids_are_sampled_exactly_when_eligible(tmp_path: Path) -> None:
    # rows 0-1 one cluster (row 1 is not its first member); row 2 held out; rows 3-4 distinct
    layout = make_corpus(tmp_path, ["a"] * 5, [False, False, True, False, False], [0, 0, 2, 3, 4])
    listed = tmp_path / "ids.txt"
    listed.write_text("d4#0\nd0#0\n\nd1#0\nd2#0\nnot-a-passage\n", encoding="utf-8")
    counts = run_sample(layout, SampleConfig(num_passages=1, passage_ids=listed))
    assert sampled(layout) == ["d0#0", "d4#0"]  # num_passages and the draw do not apply; corpus order
    assert counts["sampled"] == 2 and counts["listed"] == 5
    assert counts["listed_not_found"] == 1 and counts["listed_not_eligible"] == 2


def test_listed_passage_ids_none_eligible_or_unreadable(tmp_path: Path) -> None:
    layout = make_corpus(tmp_path, ["a"] * 3, [True, False, False], [0, 1, 2])
    listed = tmp_path / "ids.txt"
    listed.write_text("d0#0\nnope\n", encoding="utf-8")
    with pytest.raises(EmptyOutputError, match=r"\[sample\] passage_ids: none of the 2 ids"):
        run_sample(layout, SampleConfig(passage_ids=listed))
    assert not layout.sampled_ids.exists()  # nothing half-done for generate to pick up
    with pytest.raises(ConfigError, match="passage_ids"):
        run_sample(layout, SampleConfig(passage_ids=tmp_path / "missing.txt"))


def test_a_missing_passage_ids_file_fails_at_load(tmp_path: Path) -> None:
    from synthrank.run.settings import check_inputs, load_config

    (tmp_path / "corpus.jsonl").write_text('{"id": "a", "text": "x"}\n', encoding="utf-8")
    config_file = tmp_path / "c.toml"
    config_file.write_text(
        '[corpus]\npath = "corpus.jsonl"\n[sample]\npassage_ids = "picked.txt"\n', encoding="utf-8"
    )
    config = load_config(config_file)
    assert config.sample.passage_ids == tmp_path / "picked.txt"  # relative to the config file
    with pytest.raises(ConfigError, match=r"\[sample\] passage_ids: .*picked.txt does not exist"):
        check_inputs(config)
