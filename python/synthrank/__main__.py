"""`python -m synthrank` runs the CLI."""

from synthrank.cli import main

main()
