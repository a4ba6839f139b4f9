"""The commented `synthrank.toml` that `synthrank init` writes (the packaged template)."""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path

from synthrank.records import write_text_atomic

# The template's lines that `synthrank init --corpus/--base-url/--llm-model` fill in: (key, default).
_CORPUS_PATH = 'path = "corpus.jsonl"'
_BASE_URLS = "base_urls = []"
_LLM_MODEL = 'model = ""'


def template_text() -> str:
    return resources.files("synthrank").joinpath("templates/synthrank.toml").read_text(encoding="utf-8")


def _set(text: str, default: str, value: str) -> str:
    """Replace the template line that starts with `default` by `key = value`, its comment kept."""
    key = default.split(" = ", 1)[0]
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if line.startswith(default):
            new, comment = f"{key} = {value}", line[len(default) :].lstrip()
            column = len(line) - len(comment)  # where the comment starts: keep it there if it fits
            lines[i] = f"{new}{' ' * max(1, column - len(new))}{comment}" if comment else new
            return "\n".join(lines)
    raise RuntimeError(f"the packaged template has no line {default!r}")  # a packaging error


def filled_template(
    config_path: Path, corpus: Path | None = None, base_urls: tuple[str, ...] = (), llm_model: str = ""
) -> str:
    """The template with the corpus path, endpoints and model set.

    The path is written relative to the config's folder when the corpus is inside it (the pair can be
    moved together), else absolute.
    """
    text = template_text()
    if corpus is not None:
        where = os.path.relpath(corpus.resolve(), config_path.resolve().parent)
        if where.startswith(".."):
            where = str(corpus.resolve())
        text = _set(text, _CORPUS_PATH, json.dumps(Path(where).as_posix()))
    if base_urls:
        text = _set(text, _BASE_URLS, json.dumps(list(base_urls)))
    if llm_model:
        text = _set(text, _LLM_MODEL, json.dumps(llm_model))
    return text


def write_template(path: Path, text: str | None = None) -> None:
    write_text_atomic(path, template_text() if text is None else text)
