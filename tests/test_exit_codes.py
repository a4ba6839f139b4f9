"""One mapping from error type to exit code: a stage command and `synthrank run` agree."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import synthrank.run.runner as pipeline_runner
import synthrank.stages.sample
from synthrank.cli import main
from synthrank.errors import (
    BudgetExceededError,
    ConfigError,
    EmptyOutputError,
    InputFormatError,
    LLMError,
    exit_code,
)

ERRORS = [
    (LLMError("http://127.0.0.1:9/v1: 5 retries failed"), 1),
    (BudgetExceededError("max_cost 0.50 reached"), 1),
    (EmptyOutputError("0 training groups"), 1),
    (ConfigError("must be >= 1, got 0", section="retrieve", key="k"), 2),
    (InputFormatError("judgments.jsonl", 3, "invalid JSON"), 2),
    (KeyboardInterrupt(), 130),
]


def _raise(exc: BaseException) -> Any:
    def stage(*args: Any, **kwargs: Any) -> Any:
        raise exc

    return stage


@pytest.mark.parametrize(
    ("exc", "code"), ERRORS, ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else ""
)
def test_an_error_exits_alike_from_a_stage_command_and_from_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exc: BaseException, code: int
) -> None:
    assert exit_code(exc) == code

    monkeypatch.setattr(synthrank.stages.sample, "run_sample", _raise(exc))
    stage = CliRunner().invoke(main, ["sample", "--run", str(tmp_path / "stage-run")])
    assert stage.exit_code == code, stage.output
    assert "Traceback" not in stage.output

    config = tmp_path / "synthrank.toml"
    config.write_text(f'[run]\ndir = "{(tmp_path / "pipeline-run").as_posix()}"\n', encoding="utf-8")
    # the stage raises inside the pipeline, after the pre-flight checks (not under test here) pass
    monkeypatch.setattr(pipeline_runner, "prepare", lambda *args, **kwargs: [(None, True)])
    monkeypatch.setattr(pipeline_runner, "run_pipeline", _raise(exc))
    run = CliRunner().invoke(main, ["run", str(config), "--skip-llm-check"])
    assert run.exit_code == code, run.output
    assert "Traceback" not in run.output
