"""Click commands, one module per stage; `synthrank.cli` registers their `COMMANDS`."""
