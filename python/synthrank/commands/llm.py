"""Click commands of this stage, registered by `synthrank.cli`."""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []
