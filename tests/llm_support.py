"""Helpers for the LLM tests: the fake OpenAI server in a subprocess, and tiny run folders."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import synthrank
from synthrank.records import Passage, RunLayout, write_jsonl_atomic

SERVER_SCRIPT = Path(__file__).with_name("llm_fake_server.py")


def cli(
    args: list[str], env: dict[str, str] | None = None, stderr: Path | None = None, debug: bool = False
) -> subprocess.Popen[str]:
    """The real `synthrank` CLI in a subprocess; `stderr`: a file to write it to, which a test can
    poll; `debug`: debug logging on."""
    source = str(Path(synthrank.__file__).parents[1])
    full_env = {
        **os.environ,
        **(env or {}),
        "PYTHONPATH": os.pathsep.join([source, os.environ.get("PYTHONPATH", "")]),
    }
    logging = "import logging; logging.basicConfig(level=logging.DEBUG); " if debug else ""
    return subprocess.Popen(
        [sys.executable, "-c", f"{logging}from synthrank.cli import main; main()", *args],
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE if stderr is None else stderr.open("w"),
        text=True,
        # a test suite started in the background (`cmd &` in a script) ignores SIGINT, and children
        # inherit that: the Ctrl-C tests need the child to get it as a terminal would deliver it
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


PASSAGES = [
    Passage(
        "p0",
        "d0",
        "Diabetes is a disease in which blood glucose levels are too high. Insulin helps glucose "
        "enter cells. Treatment includes diet, exercise and medicines such as metformin.",
    ),
    Passage(
        "p1",
        "d1",
        "Asthma narrows the airways of the lungs, causing wheezing and shortness of breath. "
        "Inhalers with corticosteroids reduce inflammation and prevent attacks.",
    ),
    Passage(
        "p2",
        "d2",
        "Migraine headaches cause throbbing pain, nausea and sensitivity to light. Triggers "
        "include stress, missed meals and hormonal changes; triptans relieve attacks.",
    ),
    Passage(
        "p3",
        "d3",
        "Osteoporosis weakens bones so they break easily. Calcium, vitamin D and weight-bearing "
        "exercise help keep bones strong in older adults.",
    ),
    Passage(
        "p4",
        "d4",
        "Hypertension means persistently raised blood pressure. Reducing salt, losing weight "
        "and medicines like diuretics lower pressure and stroke risk.",
    ),
]


class FakeServer:
    """The fake LLM server as a real process on a free 127.0.0.1 port."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(SERVER_SCRIPT), "--port", "0"], stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.startswith("PORT "), line
        self.port = int(line.split()[1])
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self._http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=10)

    def control(self, **settings: Any) -> None:
        self._http.post("/_control", json=settings).raise_for_status()

    def reset(self) -> None:
        self._http.post("/_reset").raise_for_status()

    def stats(self) -> dict[str, Any]:
        return self._http.get("/_stats").json()

    def close(self) -> None:
        self._http.close()
        self.proc.kill()
        self.proc.wait()


@pytest.fixture(scope="session", name="fake_server_process")
def fake_server_process_fixture() -> Iterator[FakeServer]:
    server = FakeServer()
    yield server
    server.close()


@pytest.fixture(name="fake_server")
def fake_server_fixture(fake_server_process: FakeServer) -> FakeServer:
    """A running fake server with counters and faults reset for each test (import both fixtures)."""
    fake_server_process.reset()
    return fake_server_process


def make_run(root: Path, passages: list[Passage] = PASSAGES, sampled: list[str] | None = None) -> RunLayout:
    layout = RunLayout(root)
    write_jsonl_atomic(layout.passages, passages)
    ids = sampled if sampled is not None else [p.passage_id for p in passages]
    layout.sampled_ids.write_text("".join(f"{pid}\n" for pid in ids), encoding="utf-8")
    return layout


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
