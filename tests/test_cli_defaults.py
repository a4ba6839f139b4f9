"""CLI option defaults are the config dataclasses' defaults, never copies that can drift from them."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from typing import Any

import click
import pytest
from click.testing import CliRunner

from synthrank.cli import main
from synthrank.cli.common import ConfigOption, config_class, default_of

# each stage command and the config dataclasses its options fill
COMMAND_CONFIGS = {
    "ingest": ["synthrank.stages.ingest:IngestConfig"],
    "sample": ["synthrank.stages.sample:SampleConfig"],
    "embed": ["synthrank.stages.retrieve:EmbedConfig"],
    "index": ["synthrank.stages.retrieve:IndexConfig"],
    "retrieve": [
        "synthrank.stages.retrieve:RetrieveConfig",
        "synthrank.stages.retrieve:EmbedConfig",
        "synthrank.stages.retrieve:IndexConfig",
    ],
    "mine": ["synthrank.stages.mine:MineConfig"],
    "generate": ["synthrank.stages.generate:GenerateConfig", "synthrank.llm.config:LLMConfig"],
    "filter-queries": ["synthrank.stages.filter:FilterConfig"],
    "judge": ["synthrank.stages.judge:JudgeConfig", "synthrank.llm.config:LLMConfig"],
    "serve-llm": ["synthrank.llm.local_server:ServerOptions"],
    "distill": ["synthrank.stages.distill:DistillConfig"],
    "train": ["synthrank.stages.train.trainer:TrainConfig"],
    "evaluate": ["synthrank.stages.evaluate.evaluator:EvalConfig"],
}
# options of their own, no stage config
NO_CONFIG = {"init", "plan", "run", "status", "demo", "bench", "cache"}


def _field_names(paths: list[str]) -> set[str]:
    return {f.name for path in paths for f in dataclasses.fields(config_class(path))}


def _shown(value: Any) -> str:
    """How Click's `--help` writes a default."""
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return '""' if value == "" else str(value)


def test_every_command_is_covered() -> None:
    assert set(main.commands) == set(COMMAND_CONFIGS) | NO_CONFIG


@pytest.mark.parametrize("name", sorted(COMMAND_CONFIGS))
def test_options_named_like_a_config_field_take_its_default(name: str) -> None:
    """Each option named like a field of the command's configs is a ConfigOption (its default, shown
    in --help, is the field's; None when the command takes it from the run's config) or has no
    default of its own (None, or () for a repeatable one)."""
    command = main.commands[name]
    ctx = click.Context(command, info_name=name)
    fields = _field_names(COMMAND_CONFIGS[name])
    checked = 0
    for param in command.params:
        if not isinstance(param, click.Option):
            continue
        if isinstance(param, ConfigOption):
            assert param.config in COMMAND_CONFIGS[name], param.name
            expected = default_of(config_class(param.config), param.field)
            assert param.config_default() == (tuple(expected) if param.multiple else expected)
            assert param.get_default(ctx) == (None if param.from_config else param.config_default())
            record = param.get_help_record(ctx)
            assert record is not None
            if param.show_default is not False and not isinstance(expected, bool) and expected is not None:
                assert f"default: {_shown(expected)}" in record[1], (param.name, record[1])
            if param.is_bool_flag and param.secondary_opts:
                on, off = (o.lstrip("-") for o in (param.opts[0], param.secondary_opts[0]))
                assert f"default: {on if expected else off}" in record[1], (param.name, record[1])
            checked += 1
        elif param.name in fields:
            default = param.to_info_dict()["default"]  # Click's "unset" comes back as None
            assert default in (None, ()), f"--{param.name}: a default copied by hand"
    assert checked > 0


def test_every_config_option_names_a_field() -> None:
    for command in main.commands.values():
        for param in command.params:
            if isinstance(param, ConfigOption):
                default_of(config_class(param.config), param.field)  # raises for a missing field


def test_default_of_reads_defaults_and_factories() -> None:
    @dataclasses.dataclass
    class Example:
        plain: int = 3
        listed: list[str] = dataclasses.field(default_factory=lambda: ["a"])

    assert default_of(Example, "plain") == 3 and default_of(Example, "listed") == ["a"]
    with pytest.raises(TypeError, match="no field 'missing'"):
        default_of(Example, "missing")


def test_a_default_is_the_one_the_stage_gets(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """Not given on the command line, an option reaches the stage as the dataclass default."""
    import synthrank.stages.filter as query_filter

    seen = {}

    def fake_filter(layout: Any, cfg: Any) -> dict[str, Any]:
        seen["cfg"] = cfg
        return {"kept": 0}

    monkeypatch.setattr(query_filter, "run_filter", fake_filter)
    result = CliRunner().invoke(main, ["filter-queries", "--run", str(tmp_path), "--max-words", "40"])
    assert result.exit_code == 0, result.output
    assert seen["cfg"] == query_filter.FilterConfig(max_words=40)


def test_help_of_a_stage_command_loads_no_stage_module() -> None:
    """The defaults are read only for the command asked about: `--help` of the group imports none."""
    code = (
        "import sys; from click.testing import CliRunner; from synthrank.cli import main; "
        "r = CliRunner().invoke(main, ['--help']); assert r.exit_code == 0, r.output; "
        "print(sorted(m for m in ('numpy', 'torch', 'synthrank.stages.retrieve', 'synthrank.llm.config') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
