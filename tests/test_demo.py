"""The demo's recorded LLM replies cover every call the demo makes: it runs with no LLM at all."""

from __future__ import annotations

from pathlib import Path

from synthrank.cli.demo import DEMO_MODEL, demo_file, run_demo
from synthrank.records import Judgment, Query, RunLayout, read_jsonl
from synthrank.run.manifest import read_manifest


def test_demo_replays_every_llm_call_offline(tmp_path: Path) -> None:
    assert demo_file("replies.sqlite").is_file()
    run_dir = tmp_path / "demo"
    assert run_demo(run_dir, live=False, force=False, verbose=False, stop="judge") == 0
    layout = RunLayout(run_dir)
    for stage in ("generate", "judge"):
        manifest = read_manifest(layout, stage)
        assert manifest is not None and manifest.status == "done", stage
        assert manifest.counts["calls"] == 0  # nothing was sent: every reply came from the recording
        assert manifest.counts["failures"] == 0
        assert manifest.counts["cache_hits"] > 0
    queries = list(read_jsonl(layout.queries, Query))
    judgments = list(read_jsonl(layout.judgments, Judgment))
    assert len(queries) >= 70 and {q.model for q in queries} == {DEMO_MODEL}
    assert len(judgments) >= 4 * len(queries)
    assert all(j.grade is not None and j.expected_grade is not None for j in judgments)
