"""One exception hierarchy for everything synthrank reports to a user.

Messages name the file, line, field or argument at fault, so the CLI can print them as they are.
"""

from __future__ import annotations

import json


class SynthrankError(Exception):
    """Base class of every error synthrank raises on purpose."""


class InvalidArgumentError(SynthrankError, ValueError):
    """An argument has the wrong type, shape, length or range; the message names it."""


class TokenizerError(SynthrankError):
    """A tokenizer file is missing or cannot be parsed."""


class InputFormatError(SynthrankError):
    """A data file is malformed; the message names the file and line."""

    def __init__(self, path: object, line: int | None, message: str) -> None:
        self.path = str(path)
        self.line = line
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


class ConfigError(SynthrankError):
    """Invalid configuration; `key` is the option at fault, `detail` the message without it."""

    def __init__(self, detail: str, *, section: str | None = None, key: str | None = None) -> None:
        self.section = section
        self.key = key
        self.detail = detail
        where = " ".join(part for part in (section and f"[{section}]", key and f"{key}:") if part)
        super().__init__(f"{where} {detail}" if where else detail)


class EmptyOutputError(SynthrankError):
    """A stage finished but left the next stage nothing to work on (0 queries, 0 training groups).

    Its outputs and statistics stay on disk; the message says why and which setting to change.
    The CLI exits 1 (the input was valid; the outcome is not usable).
    """


class LLMError(SynthrankError):
    """The LLM endpoint failed in a way retries could not fix."""


class BudgetExceededError(LLMError):
    """The stage's max_cost was reached; finished calls are kept, the stage is incomplete."""


class NativePanicError(SynthrankError):
    """The native core panicked; the input that caused it should be reported as a bug."""


# The CLI's exit codes, the same for `synthrank run` and every stage command (cli.py lists them).
EXIT_OK, EXIT_INCOMPLETE, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


def exit_code(exc: BaseException) -> int:
    """The exit code for an error that ends a command: the one mapping every command uses.

    1 when the input was valid but the work could not finish (an LLM failure, max_cost reached, a
    stage with nothing usable to pass on, or a bug); 2 for bad usage, configuration or input; 130
    for Ctrl-C.
    """
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(exc, (LLMError, EmptyOutputError)):
        return EXIT_INCOMPLETE
    if isinstance(exc, SynthrankError):
        return EXIT_BAD_INPUT
    return EXIT_INCOMPLETE


def json_error(exc: json.JSONDecodeError) -> str:
    """A JSON error as a phrase: json's "Invalid control character at" alone leaves the reader hanging."""
    return f"{exc.msg.removesuffix(' at')} at column {exc.colno}"
