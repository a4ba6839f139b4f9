"""`synthrank init | run | status` as a user runs them: real subprocesses, a real HTTP LLM (the fake
server), the real bi-encoder, a tiny cross-encoder; resume, skip and config errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llm_support import FakeServer, fake_server_fixture, fake_server_process_fixture  # noqa: F401
from synthrank.cli.init_config import template_text
from synthrank.records import RunLayout
from synthrank.run.manifest import read_manifest
from synthrank.run.pipeline import STAGE_NAMES
from synthrank.run.settings import load_config
from test_training_support import ASPECTS, TOPICS, tiny_model

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}


def synthrank(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "synthrank", *args],
        cwd=cwd,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


WORDS = [
    "fever",
    "cough",
    "rash",
    "fatigue",
    "nausea",
    "swelling",
    "bleeding",
    "dizziness",
    "insomnia",
    "anxiety",
    "tremor",
    "cramps",
    "antibiotics",
    "surgery",
    "therapy",
    "vaccine",
    "diet",
    "exercise",
    "inhaler",
    "insulin",
    "steroids",
    "dialysis",
    "transplant",
    "children",
    "adults",
    "pregnancy",
    "elderly",
    "genetics",
    "infection",
    "immune",
    "liver",
    "kidney",
    "lungs",
    "heart",
    "brain",
    "skin",
    "bones",
    "joints",
    "blood",
    "nerves",
    "muscles",
    "eyes",
    "ears",
    "diagnosis",
    "screening",
    "prevention",
    "outlook",
    "complications",
]


def write_corpus(path: Path) -> None:
    """Short documents of distinct vocabulary, one question each (kept in meta for the in-domain set)."""
    import random

    rng = random.Random(7)
    with open(path, "w", encoding="utf-8") as fh:
        for t in TOPICS:
            for a in ASPECTS:
                words = " ".join(rng.sample(WORDS, 12))
                text = (
                    f"The {a} of {t} involve {words}. Patients with {t} should ask about {rng.choice(WORDS)}."
                )
                row = {"id": f"{t}-{a}", "text": text, "question": f"What are the {a} of {t} ?"}
                fh.write(json.dumps(row) + "\n")


def write_config(folder: Path, server_url: str, model: Path, **edits: str) -> Path:
    text = template_text()
    replacements = {
        'path = "corpus.jsonl"': 'path = "corpus.jsonl"\nmeta_fields = ["question"]',
        "meta_fields = []": "",
        "heldout_fraction = 0.1": "heldout_fraction = 0.25",
        "num_passages = 1000": "num_passages = 20",
        "base_urls = []": f'base_urls = ["{server_url}"]',
        'model = ""': 'model = "fake"',
        "n_queries = 3": "n_queries = 1",
        "top_m = 20": "top_m = 5",
        "allow_unjudged = false": "allow_unjudged = true",
        "num_negatives = 7": "num_negatives = 3",
        'model = "sentence-transformers/all-MiniLM-L6-v2"  # start': f'model = "{model}"  # start',
        "group_size = 8": "group_size = 4",
        "batch_size = 16": "batch_size = 4",
        "max_length = 256": "max_length = 96",
        "checkpoint_every = 200": "checkpoint_every = 0",
        "dev_top_k = 20": "dev_top_k = 5",
        "max_length = 512": "max_length = 96",
        'bi_encoder = "embed"': 'bi_encoder = ""',
        "recall_sample = 200": "recall_sample = 0",
        **edits,
    }
    for old, new in replacements.items():
        assert old in text, old
        text = text.replace(old, new, 1)
    path = folder / "synthrank.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tiny_reranker(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model(tmp_path_factory.mktemp("model") / "tiny")


def finished_times(layout: RunLayout) -> dict[str, float]:
    return {name: m.finished for name in STAGE_NAMES if (m := read_manifest(layout, name)) is not None}


def test_template_is_valid_and_documents_every_option(tmp_path: Path) -> None:
    config_path = tmp_path / "synthrank.toml"
    config_path.write_text(template_text())
    config = load_config(config_path)
    text = template_text()
    import dataclasses

    from synthrank.run.settings import SECTIONS, section_class

    for section in SECTIONS:
        for field in dataclasses.fields(section_class(section)):
            if field.name == "api_key":
                assert "api_key" not in text  # the key only ever comes from the environment
                continue
            assert f"\n{field.name} = " in text or f"# {field.name} = " in text, f"[{section}] {field.name}"
    assert config.mine.negative_max_grade == 0 and config.mine.positive_min_grade == 2


def test_run_resume_skip_and_rerun_affected_stages(
    tmp_path: Path, fake_server: FakeServer, tiny_reranker: Path
) -> None:
    write_corpus(tmp_path / "corpus.jsonl")
    config = write_config(tmp_path, fake_server.url, tiny_reranker)

    first = synthrank("run", str(config), cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    # written to a pipe, as to a log file: no progress bars, no third-party DEBUG lines
    assert "Loading weights" not in first.stderr and " DEBUG " not in first.stderr
    layout = RunLayout(tmp_path / "synthrank-run")
    for name in STAGE_NAMES:
        manifest = read_manifest(layout, name)
        assert manifest is not None and manifest.status == "done", name
    groups = [json.loads(line) for line in layout.train_groups.read_text().splitlines()]
    assert groups and all(len(g["neg"]) == 3 and g["pos"] for g in groups)
    assert (layout.model / "config.json").is_file()
    report = (layout.root / "report.md").read_text()
    assert "## Evaluation" in report and "## Judge grades" in report
    assert (layout.root / "report.html").read_text().startswith("<!doctype html>")
    calls = fake_server.stats()["hits"]
    assert calls > 0

    before = finished_times(layout)
    second = synthrank("run", str(config), cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "Nothing to do" in second.stderr
    assert finished_times(layout) == before
    assert fake_server.stats()["hits"] == calls  # no LLM call repeated

    # a training setting changes: train, evaluate and report re-run; nothing upstream does
    write_config(tmp_path, fake_server.url, tiny_reranker, **{"learning_rate = 2e-5": "learning_rate = 3e-5"})
    third = synthrank("run", str(config), cwd=tmp_path)
    assert third.returncode == 0, third.stderr
    after = finished_times(layout)
    rerun = {name for name in STAGE_NAMES if after[name] != before[name]}
    assert rerun == {"train", "evaluate", "report"}
    assert fake_server.stats()["hits"] == calls

    status = synthrank("status", str(layout.root), cwd=tmp_path)
    assert status.returncode == 0
    for name in STAGE_NAMES:
        assert name in status.stdout
    assert "pending" not in status.stdout

    # replaying the recorded replies offline (what `synthrank demo` does) needs no server at all
    replay = tmp_path / "replay"
    replay.mkdir()
    (replay / "corpus.jsonl").write_bytes((tmp_path / "corpus.jsonl").read_bytes())
    offline = {
        "offline = false": 'offline = true\ncache = "../synthrank-run/llm_cache.sqlite"',
        "refresh = false": "refresh = false",
    }
    replay_config = write_config(replay, "http://127.0.0.1:9/v1", tiny_reranker, **offline)
    replayed = synthrank("run", str(replay_config), "--skip-llm-check", cwd=replay)
    assert replayed.returncode == 0, replayed.stderr
    assert fake_server.stats()["hits"] == calls
    replay_groups = (replay / "synthrank-run" / "train_groups.jsonl").read_text()
    assert replay_groups == layout.train_groups.read_text()


def test_kill_during_generate_loses_nothing(
    tmp_path: Path, fake_server: FakeServer, tiny_reranker: Path
) -> None:
    write_corpus(tmp_path / "corpus.jsonl")
    config = write_config(tmp_path, fake_server.url, tiny_reranker, **{"concurrency = 8": "concurrency = 1"})
    fake_server.control(delay=0.3)
    proc = subprocess.Popen(
        [sys.executable, "-m", "synthrank", "run", str(config), "--to", "filter"],
        cwd=tmp_path,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    layout = RunLayout(tmp_path / "synthrank-run")
    deadline = time.time() + 300
    while time.time() < deadline and fake_server.stats()["hits"] < 4:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    ingest_done = read_manifest(layout, "ingest")
    assert ingest_done is not None and ingest_done.status == "done"
    assert read_manifest(layout, "filter") is None

    fake_server.control(delay=0.0)
    resumed = synthrank("run", str(config), "--to", "filter", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert read_manifest(layout, "ingest").finished == ingest_done.finished  # type: ignore[union-attr]
    repeated = sum(n - 1 for n in fake_server.stats()["bodies"].values())
    assert repeated <= 1  # only the one call in flight at the kill (concurrency 1) is sent again
    assert layout.queries.is_file()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"epochs = 1": "epoch = 1"}, "[train] epoch: unknown key"),
        ({"epochs = 1": 'epochs = "one"'}, "[train] epochs: expected int"),
        ({'path = "corpus.jsonl"': 'path = "missing.jsonl"'}, "[corpus] path: "),
    ],
)
def test_config_errors_name_key_and_start_nothing(
    tmp_path: Path, edit: dict[str, str], message: str, tiny_reranker: Path
) -> None:
    write_corpus(tmp_path / "corpus.jsonl")
    config = write_config(tmp_path, "http://127.0.0.1:9/v1", tiny_reranker, **edit)
    result = synthrank("run", str(config), cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "synthrank-run" / "manifests").exists()


def test_unreachable_llm_endpoint_is_reported_before_llm_stages(tmp_path: Path, tiny_reranker: Path) -> None:
    write_corpus(tmp_path / "corpus.jsonl")
    config = write_config(tmp_path, "http://127.0.0.1:9/v1", tiny_reranker)
    result = synthrank("run", str(config), cwd=tmp_path)
    assert result.returncode == 2
    assert "[llm] base_urls: http://127.0.0.1:9/v1 is unreachable" in result.stderr
    assert not (tmp_path / "synthrank-run" / "manifests").exists()


def test_init_writes_template_and_refuses_to_overwrite(tmp_path: Path) -> None:
    result = synthrank("init", "my.toml", cwd=tmp_path)
    assert result.returncode == 0
    assert (tmp_path / "my.toml").read_text() == template_text()
    again = synthrank("init", "my.toml", cwd=tmp_path)
    assert again.returncode == 2 and "--force" in again.stderr


def test_init_fills_in_the_corpus_the_server_and_the_model(tmp_path: Path) -> None:
    from synthrank.cli.init_config import filled_template

    (tmp_path / "project" / "docs").mkdir(parents=True)
    outside = tmp_path / "elsewhere.jsonl"
    outside.write_text("")
    inside = tmp_path / "project" / "docs.toml"
    urls = ("http://gpu1:8000/v1", "http://gpu2:8000/v1")
    text = filled_template(inside, tmp_path / "project" / "docs", urls, "my-llm")
    inside.write_text(text)
    config = load_config(inside)
    assert config.corpus.path == (tmp_path / "project" / "docs").resolve()
    assert 'path = "docs"' in text  # beside the config: relative, so the pair can move together
    assert config.llm.base_urls == list(urls) and config.llm.model == "my-llm"
    assert text.count("\n") == template_text().count("\n")  # every comment kept
    far = filled_template(inside, outside)
    assert f'path = "{outside.resolve().as_posix()}"' in far and 'model = ""' in far

    missing = synthrank("init", "x.toml", "--corpus", "no-such-folder", cwd=tmp_path)
    assert missing.returncode == 2 and "no-such-folder" in missing.stderr
    assert not (tmp_path / "x.toml").exists()
