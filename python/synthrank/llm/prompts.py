"""Versioned prompt templates: shipped in `synthrank/prompts/`, or a user's folder of the same shape.

A template file starts with `version: <string>` and holds `=== name ===` sections filled with
`string.Template` placeholders (`${document}`); the version is part of every cache key. Text from
the corpus is wrapped in tags and any tag-like text inside it is defused, so a document cannot
close its own delimiter and speak as the instructions.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

from synthrank.errors import ConfigError, InputFormatError, json_error

SECTION = re.compile(r"^=== *([\w:.-]+) *===[ \t]*$", re.MULTILINE)
DELIMITER_TAGS = ("document", "query", "passage")
_TAG_LIKE = re.compile(r"<(\s*/?\s*(?:" + "|".join(DELIMITER_TAGS) + r")\b)", re.IGNORECASE)


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    version: str
    sections: dict[str, str]
    path: Path

    def render(self, section: str, **values: object) -> str:
        if section not in self.sections:
            raise ConfigError(f"{self.path}: no '=== {section} ===' section")
        try:
            return Template(self.sections[section]).substitute({k: str(v) for k, v in values.items()})
        except (KeyError, ValueError) as exc:
            raise ConfigError(f"{self.path}: section {section!r} uses an unknown placeholder {exc}") from exc


def prompts_folder(folder: Path | str | None = None) -> Path:
    if folder is not None:
        path = Path(folder).expanduser()
        if not path.is_dir():
            raise ConfigError(f"prompts folder {path} does not exist")
        return path
    return Path(str(resources.files("synthrank") / "prompts"))


def load_template(name: str, folder: Path | str | None = None) -> PromptTemplate:
    """Read `<folder>/<name>.txt` (default: the packaged prompts)."""
    path = prompts_folder(folder) / f"{name}.txt"
    if not path.is_file():
        raise ConfigError(f"prompt template {path} not found")
    text = path.read_text(encoding="utf-8")
    first, _, rest = text.partition("\n")
    if not first.startswith("version:") or not first[len("version:") :].strip():
        raise InputFormatError(path, 1, "a template must start with 'version: <string>'")
    parts = SECTION.split(rest)
    sections = {parts[i]: parts[i + 1].strip("\n") for i in range(1, len(parts) - 1, 2)}
    if not sections:
        raise InputFormatError(path, None, "no '=== name ===' sections")
    return PromptTemplate(name=name, version=first[len("version:") :].strip(), sections=sections, path=path)


def load_examples(
    default_name: str,
    path: Path | str | None = None,
    folder: Path | str | None = None,
    *,
    required: dict[str, type],
) -> list[dict[str, Any]]:
    """Few-shot examples from JSONL (`path`, else `<folder>/<default_name>`), checking field types."""
    path = Path(path) if path is not None else prompts_folder(folder) / default_name
    if not path.is_file():
        raise ConfigError(f"few-shot example file {path} not found")
    examples = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            example = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputFormatError(path, lineno, f"invalid JSON: {json_error(exc)}") from exc
        if not isinstance(example, dict):
            raise InputFormatError(path, lineno, "expected a JSON object")
        for key, kind in required.items():
            if not isinstance(example.get(key), kind):
                raise InputFormatError(path, lineno, f"field {key!r} must be a {kind.__name__}")
        examples.append(example)
    return examples


def defuse(text: str) -> str:
    """Make tag-like text inside corpus data harmless: '</document>' becomes '‹/document>'."""
    return _TAG_LIKE.sub(r"‹\1", text)
