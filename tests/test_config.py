from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from synthrank.config import build, fingerprint, locate, read_toml
from synthrank.errors import ConfigError


@dataclass
class Opts:
    size: int = 3
    rate: float = 0.5
    mode: Literal["top", "random"] = "top"
    path: Path | None = None
    names: list[str] = field(default_factory=list)


TOML = """\
# comment
[run]
dir = "x"

[opts]
size = 4
rate = 1
mode = "random"
path = "~/data.jsonl"
names = ["a", "b"]
"""


def test_build_converts_values(tmp_path):
    cfg_path = tmp_path / "c.toml"
    cfg_path.write_text(TOML)
    data, text = read_toml(cfg_path)
    opts = build(Opts, data["opts"], section="opts", path=cfg_path, text=text)
    assert opts.size == 4
    assert opts.rate == 1.0 and isinstance(opts.rate, float)
    assert opts.mode == "random"
    assert opts.path == Path("~/data.jsonl").expanduser()
    assert opts.names == ["a", "b"]


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("size = 4", "sise = 4", "c.toml:6: [opts] sise: unknown key"),
        ("size = 4", 'size = "4"', "c.toml:6: [opts] size: expected int, got '4'"),
        ("size = 4", "size = true", "c.toml:6: [opts] size: expected int"),
        ('mode = "random"', 'mode = "best"', "c.toml:8: [opts] mode: expected one of 'top', 'random'"),
        ('names = ["a", "b"]', "names = [1]", "c.toml:10: [opts] names: expected"),
    ],
)
def test_build_names_key_and_line(tmp_path, old, new, message):
    cfg_path = tmp_path / "c.toml"
    cfg_path.write_text(TOML.replace(old, new))
    data, text = read_toml(cfg_path)
    with pytest.raises(ConfigError) as err:
        build(Opts, data["opts"], section="opts", path=cfg_path, text=text)
    assert message in str(err.value)


def test_read_toml_reports_syntax_error_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        read_toml(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[opts\nsize = 1\n")
    with pytest.raises(ConfigError, match=r"bad\.toml"):
        read_toml(bad)


def test_locate_and_fingerprint():
    assert locate(TOML, "opts") == 5
    assert locate(TOML, "opts", "rate") == 7
    assert locate(TOML, "run", "rate") is None
    assert fingerprint(Opts()) == fingerprint(Opts())
    assert fingerprint(Opts()) != fingerprint(Opts(size=5))
    assert fingerprint(Opts(names=["a"])) != fingerprint(Opts(names=["b"]))


@dataclass
class OptsNextRelease(Opts):
    """`Opts` after a release that added an option."""

    margin: float | None = None


def test_an_option_added_at_its_default_keeps_the_fingerprint():
    # existing runs are not re-run by an upgrade that only adds options
    assert fingerprint(OptsNextRelease(size=5)) == fingerprint(Opts(size=5))
    assert fingerprint(OptsNextRelease(size=5, margin=0.2)) != fingerprint(Opts(size=5))
    nested = {"outer": Opts(path=Path("a"))}
    assert fingerprint(nested) == fingerprint({"outer": OptsNextRelease(path=Path("a"))})
    assert fingerprint(nested) != fingerprint({"outer": Opts(path=Path("b"))})


def test_post_init_error_names_the_key_at_fault_and_its_line(tmp_path):
    from synthrank.stages.train.trainer import TrainConfig

    cfg_path = tmp_path / "c.toml"
    # max_length comes first and appears in max_query_tokens' message: the line must still be 4
    cfg_path.write_text("[run]\n[train]\nmax_length = 64\nmax_query_tokens = 64\n")
    data, text = read_toml(cfg_path)
    with pytest.raises(ConfigError) as err:
        build(TrainConfig, data["train"], section="train", path=cfg_path, text=text)
    assert (
        str(err.value)
        == f"{cfg_path}:4: [train] max_query_tokens: must be smaller than max_length (64), got 64"
    )
    assert (
        str(err.value.__cause__) == "[train] max_query_tokens: must be smaller than max_length (64), got 64"
    )
