"""The `synthrank` command line: a Click group that registers each stage's commands.

Commands live beside the code they drive (`synthrank.cli.*`); none holds pipeline logic.
"""

from __future__ import annotations

import click

from synthrank.cli import bench, corpus, llm, pipeline, training

EXIT_CODES = """\b
Exit codes:
  0  success
  1  a stage failed or is incomplete (e.g. max_cost reached); finished work is kept
  2  bad usage, configuration or input (the message names the file, line or key)
  130 interrupted (Ctrl-C); finished work is kept
"""


@click.group(epilog=EXIT_CODES)
@click.version_option(package_name="synthrank")
def main() -> None:
    """synthrank: turn a domain corpus into a fine-tuned cross-encoder reranker, no human labels."""


for module in (corpus, llm, training, pipeline, bench):
    for command in module.COMMANDS:
        main.add_command(command)
