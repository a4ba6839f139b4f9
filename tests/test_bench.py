"""`synthrank bench` and its parts: synthetic data, peers, measurement, the debug-build guard."""

from __future__ import annotations

import dataclasses
import json
import types
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from synthrank import bench
from synthrank.bench import data, measure, peers
from synthrank.cli import main

PEERS = {"dedup": {"datasketch", "rensa"}, "negatives": {"sentence-transformers"}}


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict]:
    out = tmp_path_factory.mktemp("bench") / "out.json"
    stages = [arg for stage in bench.STAGES for arg in ("--stage", stage)]
    result = CliRunner().invoke(
        main, ["bench", *stages, "--size", "200", "--repeat", "1", "--json", str(out), "--allow-debug-build"]
    )
    assert result.exit_code == 0, result.output
    return result.output, json.loads(out.read_text(encoding="utf-8"))


def test_cli_json_has_every_stage_and_implementation(cli_run: tuple[str, dict]) -> None:
    _, report = cli_run
    rows = report["results"]
    for stage in bench.STAGES:
        found = {row["implementation"] for row in rows if row["stage"] == stage}
        assert found == {"native", "python"} | PEERS.get(stage, set())
    for row in rows:
        assert row["size"] == 200 and row["measured_items"] == 200
        assert row["seconds"] > 0 and row["items_per_s"] > 0
        assert row["peak_mb"] is None or row["peak_mb"] >= 0
    assert report["environment"]["native_build"] in {"debug", "release"}
    assert report["environment"]["versions"]["numpy"]


def test_cli_native_matches_twin_and_peers_agree(cli_run: tuple[str, dict]) -> None:
    _, report = cli_run
    by_key = {(row["stage"], row["implementation"]): row for row in report["results"]}
    for stage in bench.STAGES:
        assert by_key[stage, "native"]["matches"] is True
        assert by_key[stage, "python"]["matches"] is None
    # Both sides apply the same filters to the same arrays: only float ties could differ.
    assert by_key["negatives", "sentence-transformers"]["matches"] >= 99.0
    for peer in ("datasketch", "rensa"):  # unverified LSH candidates: close to, not equal to, the twin
        assert 50.0 <= by_key["dedup", peer]["matches"] <= 100.0


def test_cli_table_lists_rows(cli_run: tuple[str, dict]) -> None:
    output, _ = cli_run
    for text in (
        "synthrank bench",
        "native",
        "python",
        "datasketch",
        "rensa",
        "sentence-transformers",
        "yes",
    ):
        assert text in output
    assert "NO" not in output


def test_cli_skips_a_missing_peer_with_an_install_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plain install has no datasketch: that peer is skipped with one line, the rest still runs."""
    dedup_peers = bench.STAGES["dedup"].peers
    missing = dataclasses.replace(dedup_peers["datasketch"], module="synthrank_test_no_such_module")
    monkeypatch.setitem(dedup_peers, "datasketch", missing)
    out = tmp_path / "out.json"
    args = ["bench", "--stage", "dedup", "--size", "200", "--repeat", "1", "--allow-debug-build"]
    result = CliRunner().invoke(main, [*args, "--json", str(out)])
    assert result.exit_code == 0, result.output
    hints = [line for line in result.output.splitlines() if "pip install 'synthrank[bench]'" in line]
    assert hints == ["dedup: skipping peer datasketch (not installed; pip install 'synthrank[bench]')"]
    rows = json.loads(out.read_text(encoding="utf-8"))["results"]
    assert {row["implementation"] for row in rows} == {"native", "python", "rensa"}
    assert bench.missing_peers(["sample", "negatives"]) == []


def test_cli_rejects_unknown_stage() -> None:
    result = CliRunner().invoke(main, ["bench", "--stage", "tokenize"])
    assert result.exit_code == 2
    assert "tokenize" in result.output


def test_cli_reports_unwritable_json(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir" / "out.json"
    result = CliRunner().invoke(
        main,
        [
            "bench",
            "--stage",
            "sample",
            "--size",
            "10",
            "--repeat",
            "1",
            "--json",
            str(missing),
            "--allow-debug-build",
        ],
    )
    assert result.exit_code == 2
    assert "--json" in result.output and "no-such-dir" in result.output


def test_cli_refuses_debug_build(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(measure, "native_build_profile", lambda module: "debug")
    result = CliRunner().invoke(main, ["bench", "--stage", "sample", "--size", "10"])
    assert result.exit_code == 2
    assert "debug build" in result.output and "--release" in result.output


def test_twin_above_sample_cap_is_extrapolated() -> None:
    results = bench.bench_stage(bench.STAGES["sample"], 3_000, sample_cap=1_000)
    native, python = results
    assert native.matches is True and native.measured_items == 3_000
    assert python.measured_items == 1_000 and python.label == "python (1k sample)"
    # seconds are for the full size, items/s for what ran
    assert python.items_per_s is not None
    assert python.items_per_s * python.seconds == pytest.approx(3_000)


def test_capped_runs_are_shared_by_larger_sizes() -> None:
    results = bench.run_bench(["sample"], [2_000, 3_000], sample_cap=1_000, allow_debug_build=True)
    first, second = (r for r in results if r.implementation == "python")
    assert first.items_per_s == second.items_per_s and second.seconds == pytest.approx(1.5 * first.seconds)
    assert [r.matches for r in results if r.implementation == "native"] == [True, True]


def test_native_in_blocks_still_checked_against_twin() -> None:
    stage = dataclasses.replace(bench.STAGES["negatives"], block_size=100)
    native, _, peer = bench.bench_stage(stage, 250, sample_cap=250)
    assert native.matches is True and native.measured_items == 250
    assert isinstance(peer.matches, float) and peer.matches >= 99.0


def test_release_guard_uses_build_profile() -> None:
    debug = types.SimpleNamespace(build_profile=lambda: "debug", __file__="x.so")
    release = types.SimpleNamespace(build_profile=lambda: "release", __file__="x.so")
    with pytest.raises(bench.DebugBuildError, match="debug build"):
        measure.require_release_build(debug)
    measure.require_release_build(release)


def test_build_profile_without_build_profile_reads_elf_sections(tmp_path: Path) -> None:
    not_elf = tmp_path / "lib.so"
    not_elf.write_bytes(b"not an ELF file")
    assert measure.native_build_profile(types.SimpleNamespace(__file__=str(not_elf))) == "release"
    native = bench.check_native(allow_debug_build=True)
    assert measure.native_build_profile(native) in {"debug", "release"}


def test_measure_sees_native_allocations() -> None:
    measured = measure.measure(lambda: np.ones(10_000_000))  # 80 MB allocated by NumPy, not Python
    assert measured.result.shape == (10_000_000,) and measured.seconds > 0
    if measured.peak_mb is not None:  # Linux
        assert measured.peak_mb >= 70


def test_texts_are_seeded_with_near_duplicates() -> None:
    texts = data.make_texts(400, seed=3)
    assert texts == data.make_texts(400, seed=3) and texts != data.make_texts(400, seed=4)
    clusters = peers.datasketch_near_duplicates(
        texts, threshold=0.8, num_perm=117, bands=9, rows=13, shingle_size=5
    )
    duplicated = int(np.sum(clusters != np.arange(400)))
    assert 20 <= duplicated <= 60  # about 10% injected


def test_candidates_look_like_retrieval_output() -> None:
    c = data.make_candidates(500, seed=1)
    assert c.cand_ids.shape == c.cand_scores.shape == c.labels.shape == (500, 100)
    assert np.all(np.diff(c.cand_scores, axis=1) <= 0)
    assert np.any(c.cand_ids == -1) and np.all(c.pos_ids[:, 0] >= 0)
    assert np.isnan(c.pos_scores[c.pos_ids < 0]).all()
    retrieved = (c.cand_ids == c.pos_ids[:, :1]).any(axis=1)
    assert 0.8 < retrieved.mean() < 0.97
    assert c.rows(10).cand_ids.shape == (10, 100)


def test_documents_include_blank_ones() -> None:
    docs = data.make_documents(300, seed=2)
    assert any(not doc.strip() for doc in docs)
    assert max(len(doc.split()) for doc in docs) > 200


def test_pair_agreement() -> None:
    same = np.array([0, 0, 2, 2])
    assert peers.pair_agreement(same, same) == 100.0
    assert peers.pair_agreement(np.array([0, 0, 2, 3]), same) == 50.0
    assert peers.pair_agreement(np.arange(3), np.arange(3)) == 100.0


def test_rensa_finds_exact_and_near_copies() -> None:
    base = "the patient was given a low dose of aspirin after the procedure"
    texts = [base, "an unrelated sentence about hospital parking fees", base.upper(), base + " today"]
    clusters = peers.rensa_near_duplicates(texts, threshold=0.8, num_perm=117, bands=9, shingle_size=5)
    assert clusters.tolist() == [0, 1, 0, 0]


def test_sentence_transformers_selection_known_answer() -> None:
    cand_ids = np.array([[5, 7, 9, -1, 11, 12]], dtype=np.int64)
    cand_scores = np.array([[0.9, 0.8, 0.78, 0.7, 0.5, 0.4]], dtype=np.float32)
    pos_ids = np.array([[7, -1]], dtype=np.int64)
    pos_scores = np.array([[0.8, np.nan]], dtype=np.float32)
    # 7 is the positive, -1 padding; margin 0.05 of 0.8 removes scores above 0.76 (5 and 9)
    chosen = peers.sentence_transformers_select_negatives(
        cand_ids, cand_scores, pos_ids, pos_scores, num_negatives=3, relative_margin=0.05
    )
    assert chosen.tolist() == [[11, 12, -1]]
    top = peers.sentence_transformers_select_negatives(
        cand_ids, cand_scores, pos_ids, pos_scores, num_negatives=2
    )
    assert top.tolist() == [[5, 9]]
    assert peers.row_agreement(chosen, chosen) == 100.0


def test_cli_stage_names_match_the_bench_package() -> None:
    from synthrank.cli.bench import BENCH_STAGES

    assert tuple(bench.STAGES) == BENCH_STAGES
