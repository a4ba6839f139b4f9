"""A user's own corpus, as README's "Your own corpus" walkthrough runs it: `synthrank init --corpus
--base-url`, then `synthrank run` with every other option at its default, on a folder of text files
with no questions in it (tests/fixtures/python-docs), against the fault-injecting server playing a
judge that never grades 0, as small local models do."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from llm_support import FakeServer, fake_server_fixture, fake_server_process_fixture  # noqa: F401
from synthrank.records import RunLayout
from synthrank.stages.evaluate.datasets import KIND_SYNTHETIC
from test_pipeline import synthrank

FIXTURE = Path(__file__).parent / "fixtures" / "python-docs"
VERDICTS = ("better than", "worse than", "no significant difference")


def test_init_and_run_with_only_the_corpus_and_the_llm_url_set(
    tmp_path: Path, fake_server: FakeServer
) -> None:
    fake_server.control(judge_grades=[1, 3])
    docs = tmp_path / "docs"
    docs.mkdir()
    for path in sorted(FIXTURE.glob("*.txt"))[:12]:  # 12 of the 31 topics: the defaults, in minutes
        shutil.copy(path, docs / path.name)

    init = synthrank("init", "docs.toml", "--corpus", "docs", "--base-url", fake_server.url, cwd=tmp_path)
    assert init.returncode == 0, init.stderr
    assert "synthrank run docs.toml" in init.stdout
    run = synthrank("run", "docs.toml", cwd=tmp_path, timeout=1800)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    layout = RunLayout(tmp_path / "synthrank-run")
    assert (layout.model / "config.json").is_file() and (layout.model / "model.safetensors").is_file()
    # the weak judge was noticed and mine adapted, as the manifest and the report say
    stats = json.loads((layout.root / "mining_stats.json").read_text())
    assert stats["train_groups"] > 0 and stats["adapted"]["changes"]["negative_max_grade"] == [0, 1]
    # the corpus has no questions: the in-domain test set is synthetic, graded deeper than training
    testset = json.loads((layout.test / "testset.json").read_text())
    assert testset["kind"] == KIND_SYNTHETIC and testset["queries"] > 0
    qrels = (layout.test / "qrels" / "test.tsv").read_text().splitlines()[1:]
    assert len(qrels) > testset["queries"]  # more graded pairs than source passages
    report = (layout.root / "report.md").read_text()
    glance = report.split("## At a glance", 1)[1].split("\n## ", 1)[0]
    assert KIND_SYNTHETIC in glance
    assert any(f"ours: {verdict}" in glance for verdict in VERDICTS), glance
    assert "negative_max_grade" in report  # the adaptation is reported
    assert (layout.root / "report.html").is_file()
