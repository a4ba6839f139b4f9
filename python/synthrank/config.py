"""Load and validate `synthrank.toml`: every section maps onto one stage's options dataclass.

Validation happens before anything runs: an unknown key, a value of the wrong type or a missing
input file is reported with its `[section] key` and line in the file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import sys
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

from synthrank.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

T = TypeVar("T")


# Range checks for the options dataclasses: each raises ConfigError naming the first field out of
# range; with `optional`, None passes and the message says "when set". Each is written as "not in
# range", so NaN (which TOML allows: `learning_rate = nan`) is rejected too.
def at_least(options: object, section: str, minimum: float, *names: str, optional: bool = False) -> None:
    """Reject each named field below `minimum`: "must be >= minimum"."""
    _reject(options, section, names, lambda v: not v >= minimum, f">= {minimum}", optional)


def above(options: object, section: str, bound: float, *names: str, optional: bool = False) -> None:
    """Reject each named field not above `bound`: "must be > bound"."""
    _reject(options, section, names, lambda v: not v > bound, f"> {bound}", optional)


def within(
    options: object,
    section: str,
    low: float,
    high: float,
    *names: str,
    ends: Literal["[]", "[)", "(]"] = "[]",
    optional: bool = False,
) -> None:
    """Reject each named field outside `low`..`high`: "must be in [low, high]" (`ends` opens a side)."""

    def outside(v: Any) -> bool:
        return not ((low < v if ends[0] == "(" else low <= v) and (v < high if ends[1] == ")" else v <= high))

    _reject(options, section, names, outside, f"in {ends[0]}{low}, {high}{ends[1]}", optional)


def _reject(
    options: object,
    section: str,
    names: tuple[str, ...],
    fails: Callable[[Any], bool],
    rule: str,
    optional: bool,
) -> None:
    for name in names:
        value = getattr(options, name)
        if optional and value is None:
            continue
        if fails(value):
            when = " when set" if optional else ""
            raise ConfigError(f"must be {rule}{when}, got {value}", section=section, key=name)


def locate(text: str, section: str, key: str | None = None) -> int | None:
    """Line number of `[section]` (or of `key` inside it) in the TOML source, for error messages."""
    current = None
    for lineno, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        header = re.match(r"^\[([^\[\]]+)\]", stripped)
        if header:
            current = header.group(1).strip()
            if key is None and current == section:
                return lineno
            continue
        if key is not None and current == section and re.match(rf"^\"?{re.escape(key)}\"?\s*=", stripped):
            return lineno
    return None


def _where(path: Path | str, text: str, section: str, key: str | None = None) -> str:
    line = locate(text, section, key)
    name = f"[{section}]" + (f" {key}" if key else "")
    return f"{path}:{line}: {name}" if line else f"{path}: {name}"


def _matches(value: Any, annotation: Any) -> bool:
    """Whether a TOML value fits a dataclass field annotation (the subset of types configs use)."""
    origin = typing.get_origin(annotation)
    if annotation is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(annotation))
    if origin is typing.Literal:
        return value in typing.get_args(annotation)
    if annotation is type(None):
        return value is None
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is Path:
        return isinstance(value, str)
    if origin in (list, tuple):
        args = typing.get_args(annotation)
        return isinstance(value, list) and all(_matches(v, args[0]) for v in value) if args else True
    if origin is dict:
        key_t, val_t = typing.get_args(annotation) or (Any, Any)
        return isinstance(value, dict) and all(
            _matches(k, key_t) and _matches(v, val_t) for k, v in value.items()
        )
    if isinstance(annotation, type):
        return isinstance(value, annotation)
    return True


def _convert(value: Any, annotation: Any) -> Any:
    """TOML gives str for paths and list for tuples; turn them into what the dataclass declares."""
    if value is None:
        return None
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        annotation = args[0]
    if annotation is Path:
        return Path(value).expanduser()
    if annotation is float and isinstance(value, int):
        return float(value)
    if typing.get_origin(annotation) is tuple:
        return tuple(value)
    return value


def build(
    cls: type[T], table: dict[str, Any], *, section: str, path: Path | str = "<config>", text: str = ""
) -> T:
    """Instantiate the options dataclass `cls` from a TOML table, naming the key at fault."""
    if not isinstance(table, dict):
        raise ConfigError(f"{_where(path, text, section)}: expected a table")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs = {}
    for key, value in table.items():
        if key not in known:
            raise ConfigError(
                f"{_where(path, text, section, key)}: unknown key; known keys: {', '.join(sorted(known))}"
            )
        annotation = hints[key]
        if not _matches(value, annotation):
            if typing.get_origin(annotation) is typing.Literal:
                wanted = "one of " + ", ".join(map(repr, typing.get_args(annotation)))
            else:
                wanted = getattr(annotation, "__name__", str(annotation)).replace("typing.", "")
            raise ConfigError(f"{_where(path, text, section, key)}: expected {wanted}, got {value!r}")
        kwargs[key] = _convert(value, annotation)
    try:
        options = cls(**kwargs)
        # range checks that stages also repeat when they start: run here too, so a bad value fails
        # at load time, before any stage (and any LLM call) runs
        validate = getattr(options, "validate", None)
        if callable(validate):
            validate()
        return options
    except (TypeError, ValueError, ConfigError) as exc:
        if isinstance(exc, ConfigError) and exc.key:
            raise ConfigError(f"{_where(path, text, section, exc.key)}: {exc.detail}") from exc
        raise ConfigError(f"{_where(path, text, section)}: {exc}") from exc


def read_toml(path: Path | str) -> tuple[dict[str, Any], str]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    text = path.read_text(encoding="utf-8")
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def _field_default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def fingerprint(*parts: Any) -> str:
    """Stable hash of config values (dataclasses, dicts, paths) for stage manifests.

    A dataclass contributes only the fields set away from their defaults, so an option added in a
    later release, left at its default, does not re-run the stages of existing runs. The price: a
    release that changes a default does not re-run them either (manifests record what ran).
    """

    def default(obj: Any) -> Any:
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            return {
                f.name: value
                for f in dataclasses.fields(obj)
                if (value := getattr(obj, f.name)) != _field_default(f)
            }
        if isinstance(obj, Path):
            return str(obj)
        if isinstance(obj, (set, frozenset)):
            return sorted(obj)
        raise TypeError(f"cannot fingerprint {type(obj).__name__}")

    blob = json.dumps(parts, default=default, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
