"""The commented `synthrank.toml` that `synthrank init` writes (the packaged template)."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path


def template_text() -> str:
    return resources.files("synthrank").joinpath("templates/synthrank.toml").read_text(encoding="utf-8")


def write_template(path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(template_text(), encoding="utf-8")
    os.replace(tmp, path)
