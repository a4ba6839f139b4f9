"""The Python API (`synthrank.load_config`, `Pipeline`): README's example run as written,
against the fake LLM server on a tiny corpus, stopping at mine; the example configs in examples/
and the quality recipes in benches/quality/."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import synthrank
from llm_support import FakeServer, fake_server_fixture, fake_server_process_fixture  # noqa: F401
from synthrank.run.pipeline import STAGE_NAMES
from test_pipeline import write_config, write_corpus

ROOT = Path(__file__).resolve().parent.parent
MINE_AND_BEFORE = list(STAGE_NAMES[: STAGE_NAMES.index("mine") + 1])


def readme_example() -> str:
    """The python block that follows `<!-- api-example -->` in README.md."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(r"<!-- api-example -->\n```python\n(.*?)\n```", text, re.DOTALL)
    assert found, "README.md lost its <!-- api-example --> python block"
    return found.group(1)


@pytest.fixture
def domain_folder(tmp_path: Path, fake_server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder as the README example expects it: my-domain.toml and its corpus, as the cwd."""
    write_corpus(tmp_path / "corpus.jsonl")
    # train and evaluate are not run here: the start model is never loaded
    write_config(tmp_path, fake_server.url, tmp_path / "unused-model").rename(tmp_path / "my-domain.toml")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_readme_example_runs_to_mine(domain_folder: Path, fake_server: FakeServer, capsys) -> None:
    namespace: dict[str, object] = {}
    exec(compile(readme_example(), "README.md:api-example", "exec"), namespace)

    result = namespace["result"]
    assert isinstance(result, synthrank.RunResult)
    assert [r.stage for r in result.stages] == MINE_AND_BEFORE
    assert result.ran == MINE_AND_BEFORE and result.complete
    assert result["mine"].counts["train_groups"] > 0
    assert result.layout.root == (domain_folder / "synthrank-run").resolve()
    groups = list(result.train_groups())
    assert groups and all(g.pos and len(g.neg) == 3 for g in groups)
    queries = list(result.queries())
    assert {g.query_id for g in groups} <= {q.query_id for q in queries}
    assert namespace["again"].action == "ran"
    assert namespace["again"].counts["train_groups"] == result["mine"].counts["train_groups"]
    calls = fake_server.stats()["hits"]
    assert calls > 0

    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("{'ingest': True") and "'train': " not in printed[0]
    assert printed[1] == str(MINE_AND_BEFORE)

    # A second run does no work and makes no LLM call; the plan says so before running.
    pipeline = namespace["pipeline"]
    assert isinstance(pipeline, synthrank.Pipeline)
    assert not any(pipeline.plan(stop="mine").values())
    second = pipeline.run(stop="mine")
    assert second.ran == [] and [r.action for r in second.stages] == ["skipped"] * len(MINE_AND_BEFORE)
    assert fake_server.stats()["hits"] == calls
    states = {row["stage"]: row["state"] for row in pipeline.status()}
    assert all(states[name] == "done" for name in MINE_AND_BEFORE) and states["train"] == "pending"


def test_errors_are_raised_not_exit_codes(domain_folder: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[sample]\nnum_passages = 'many'\n", encoding="utf-8")
    with pytest.raises(synthrank.ConfigError, match=r"\[sample\] num_passages"):
        synthrank.load_config(bad)
    pipeline = synthrank.Pipeline(domain_folder / "my-domain.toml")
    with pytest.raises(synthrank.SynthrankError, match="unknown stage 'tokenize'"):
        pipeline.run(stop="tokenize")
    from synthrank.run.lock import RunLock, RunLockedError

    with RunLock(pipeline.config.run.dir, command="another synthrank run"), pytest.raises(RunLockedError):
        pipeline.run(stop="ingest")
    missing = pipeline.with_run_dir(tmp_path / "elsewhere")
    with pytest.raises(synthrank.SynthrankError, match="run the filter stage first"):
        next(synthrank.RunResult(missing.layout, ()).queries())


def test_run_stage_runs_unfinished_stages_before_it(domain_folder: Path) -> None:
    config = synthrank.load_config("my-domain.toml", overrides={"sample": {"num_passages": 5}})
    result = synthrank.Pipeline(config).with_run_dir(domain_folder / "other-run").run_stage("sample")
    assert result.stage == "sample" and result.action == "ran"
    layout = synthrank.Pipeline(config).with_run_dir(domain_folder / "other-run").layout
    assert layout.passages.is_file()
    assert len(layout.sampled_ids.read_text().split()) == 5


def test_run_stage_refuses_an_unknown_stage(domain_folder: Path) -> None:
    with pytest.raises(synthrank.SynthrankError, match="unknown stage 'tokenize'; stages: ingest"):
        synthrank.Pipeline("my-domain.toml").run_stage("tokenize")


@pytest.mark.parametrize("name", ["vllm", "ollama", "llamacpp", "openai"])
def test_example_configs_load(name: str) -> None:
    config = synthrank.load_config(ROOT / "examples" / f"{name}.toml")
    assert config.llm.base_urls and config.llm.model
    assert config.corpus.path == ROOT / "examples" / "corpus.jsonl"


@pytest.mark.parametrize("name", ["medquad", "medquad-full"])
def test_quality_recipes_load(name: str) -> None:
    """The recipes in benches/quality are checked as any config is, before hours of LLM calls."""
    config = synthrank.load_config(ROOT / "benches" / "quality" / f"{name}.toml")
    assert config.corpus.format == "medquad" and config.corpus.heldout_group == "focus"


def test_import_stays_light() -> None:
    """`import synthrank` (what every CLI call pays) pulls in neither torch nor the pipeline."""
    heavy = ("torch", "synthrank.run.pipeline")
    code = f"import sys, synthrank; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    assert "Pipeline" in synthrank.__all__ and "load_config" in dir(synthrank)
