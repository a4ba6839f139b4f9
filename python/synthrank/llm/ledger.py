"""Tokens, cost and call counts per stage and model, and the spending cap of a run folder.

Tokens come from the server's `usage`; when a server leaves it out they are estimated with a
tokenizer (the configured one, else the packaged MiniLM WordPiece vocabulary, else ~4 characters
per token), and the row says how many calls were estimated.

Every paid call is also committed to `RUN/llm_ledger.sqlite` the moment it arrives, so `max_cost`
is one budget for the whole run folder: all stages, all processes and re-runs add up, and a call is
refused when the spend so far plus the estimated cost of the calls in flight would cross it.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from synthrank.console import table_console
from synthrank.errors import BudgetExceededError, LLMError
from synthrank.llm.config import token_cost

log = logging.getLogger(__name__)


@dataclass
class LedgerRow:
    calls: int = 0
    cache_hits: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    estimated_calls: int = 0
    cost: float = 0.0
    retries: int = 0
    rate_limited: int = 0  # HTTP 429 replies
    bad_replies: int = 0  # empty, cut by the token limit, or not in the asked format: asked again
    started: float = field(default_factory=time.monotonic)
    seconds: float = 0.0

    @property
    def tokens_per_second(self) -> float:
        return self.completion_tokens / self.seconds if self.seconds > 0 else 0.0


class TokenEstimator:
    """Counts tokens of text a server did not count for us."""

    def __init__(self, tokenizer: str | None = None) -> None:
        self._source = tokenizer

    @cached_property
    def _tokenizer(self) -> Any:
        from tokenizers import Tokenizer

        from synthrank.models import DEFAULT_EMBEDDER, resolve_model

        path = Path(resolve_model(self._source or DEFAULT_EMBEDDER))
        if path.is_dir():
            path = path / "tokenizer.json"
        try:
            return Tokenizer.from_file(str(path))
        except Exception as exc:  # any unreadable tokenizer falls back to the character heuristic
            log.warning("token estimates use ~4 characters per token (%s unreadable: %s)", path, exc)
            return None

    def count(self, text: str) -> int:
        if not text:
            return 0
        if self._tokenizer is None:
            return max(1, len(text) // 4)
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)


class SpendStore:
    """The run folder's record of paid calls (SQLite, WAL, one committed row per call)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS calls (stage TEXT NOT NULL, model TEXT NOT NULL, "
                "prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, "
                "cost REAL NOT NULL, created REAL NOT NULL)"
            )
        except (OSError, sqlite3.DatabaseError) as exc:
            raise LLMError(f"{self.path}: cannot open the LLM spending ledger: {exc}") from exc

    def add(self, stage: str, model: str, prompt_tokens: int, completion_tokens: int, cost: float) -> None:
        self._db.execute(
            "INSERT INTO calls VALUES (?, ?, ?, ?, ?, ?)",
            (stage, model, prompt_tokens, completion_tokens, cost, time.time()),
        )

    def totals(self) -> tuple[int, float]:
        """(calls, cost) over every process that used this run folder."""
        calls, cost = self._db.execute("SELECT COUNT(*), SUM(cost) FROM calls").fetchone()
        return int(calls), float(cost or 0.0)

    def close(self) -> None:
        self._db.close()


def read_spend(path: Path | str) -> dict[str, float]:
    """Cost per stage recorded in a ledger file (empty when there is none); read-only."""
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        with sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30) as db:
            rows = db.execute("SELECT stage, SUM(cost) FROM calls GROUP BY stage ORDER BY stage").fetchall()
    except sqlite3.DatabaseError as exc:
        raise LLMError(f"{path}: cannot read the LLM spending ledger: {exc}") from exc
    return {str(stage): float(cost or 0.0) for stage, cost in rows}


class Ledger:
    """Accounts for every call; with `path`, spend is shared by every stage and process of a run.

    `reserve` admits a call only if the spend so far plus what calls in flight may still cost stays
    within max_cost, so the cap holds up to the error of the cost estimate of calls in flight.
    """

    def __init__(
        self,
        *,
        price_prompt: float = 0.0,
        price_completion: float = 0.0,
        max_cost: float | None = None,
        estimator: TokenEstimator | None = None,
        path: Path | str | None = None,
    ) -> None:
        self.price_prompt = price_prompt
        self.price_completion = price_completion
        self.max_cost = max_cost
        self.estimator = estimator or TokenEstimator()
        self.rows: dict[tuple[str, str], LedgerRow] = {}
        self._store = SpendStore(path) if path is not None else None
        self.calls_before, self.spent_before = self._store.totals() if self._store else (0, 0.0)
        self.reserved = 0.0

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def row(self, stage: str, model: str) -> LedgerRow:
        key = (stage, model)
        if key not in self.rows:
            self.rows[key] = LedgerRow()
        return self.rows[key]

    @property
    def cost(self) -> float:
        """What this process spent."""
        return sum(r.cost for r in self.rows.values())

    @property
    def run_cost(self) -> float:
        """What the run folder spent, earlier processes included."""
        return self.spent_before + self.cost

    def estimate(self, prompt_text: str, max_tokens: int | None) -> float:
        """An upper-end guess of a call's cost: its prompt, and max_tokens (else the mean so far)."""
        if not self.price_prompt and not self.price_completion:
            return 0.0
        calls = sum(r.calls for r in self.rows.values())
        mean_completion = sum(r.completion_tokens for r in self.rows.values()) / calls if calls else 0.0
        completion = max_tokens if max_tokens else mean_completion
        guess = token_cost(
            self.estimator.count(prompt_text), completion, self.price_prompt, self.price_completion
        )
        # a server's tokenizer can count more than ours: never guess below the run's mean call so far
        all_calls = self.calls_before + calls
        return max(guess, self.run_cost / all_calls if all_calls else 0.0)

    def _exceeded(self) -> BudgetExceededError:
        return BudgetExceededError(
            f"max_cost reached: spent {self.run_cost:.4f} of {self.max_cost:g} in this run folder "
            f"({self.cost:.4f} by this process); finished calls are kept, "
            "raise max_cost and run again to continue"
        )

    def reserve(self, estimate: float) -> None:
        """Admit a call expected to cost `estimate`, or raise BudgetExceededError; see `settle`."""
        if self.max_cost is not None and self.run_cost + self.reserved + estimate > self.max_cost:
            raise self._exceeded()
        self.reserved += estimate

    def settle(self, estimate: float) -> None:
        """Release a reservation once its call was recorded (or failed)."""
        self.reserved = max(0.0, self.reserved - estimate)

    def record_call(
        self, stage: str, model: str, usage: dict[str, Any] | None, prompt_text: str, reply_text: str
    ) -> None:
        row = self.row(stage, model)
        row.calls += 1
        prompt = usage.get("prompt_tokens") if usage else None
        completion = usage.get("completion_tokens") if usage else None
        if not isinstance(prompt, int) or not isinstance(completion, int):
            row.estimated_calls += 1
            prompt = self.estimator.count(prompt_text)
            completion = self.estimator.count(reply_text)
        row.prompt_tokens += prompt
        row.completion_tokens += completion
        cost = token_cost(prompt, completion, self.price_prompt, self.price_completion)
        row.cost += cost
        row.seconds = time.monotonic() - row.started
        if self._store is not None:
            self._store.add(stage, model, prompt, completion, cost)

    def record_cache_hit(self, stage: str, model: str) -> None:
        self.row(stage, model).cache_hits += 1

    def record_failure(self, stage: str, model: str) -> None:
        self.row(stage, model).failures += 1

    def record_retry(self, stage: str, model: str, *, rate_limited: bool) -> None:
        row = self.row(stage, model)
        row.retries += 1
        row.rate_limited += rate_limited

    def record_bad_reply(self, stage: str, model: str) -> None:
        self.row(stage, model).bad_replies += 1

    def summary(self, stage: str | None = None) -> dict[str, Any]:
        rows = [r for (s, _), r in self.rows.items() if stage is None or s == stage]
        return {
            "calls": sum(r.calls for r in rows),
            "cache_hits": sum(r.cache_hits for r in rows),
            "failures": sum(r.failures for r in rows),
            "retries": sum(r.retries for r in rows),
            "http_429": sum(r.rate_limited for r in rows),
            "bad_replies": sum(r.bad_replies for r in rows),
            "prompt_tokens": sum(r.prompt_tokens for r in rows),
            "completion_tokens": sum(r.completion_tokens for r in rows),
            "estimated_calls": sum(r.estimated_calls for r in rows),
            "cost": round(sum(r.cost for r in rows), 6),
            "run_cost": round(self.run_cost, 6),
        }

    def table(self) -> Table:
        table = Table(title="LLM usage")
        columns = ("stage", "model", "calls", "cache hits", "retries", "429s", "bad replies", "failures")
        for name in (*columns, "prompt tok", "completion tok"):
            table.add_column(name, justify="left" if name in ("stage", "model") else "right")
        table.add_column("cost", justify="right")
        table.add_column("tok/s", justify="right")
        for (stage, model), r in sorted(self.rows.items()):
            table.add_row(
                stage,
                model,
                str(r.calls),
                str(r.cache_hits),
                str(r.retries),
                str(r.rate_limited),
                str(r.bad_replies),
                str(r.failures),
                f"{r.prompt_tokens}" + ("*" if r.estimated_calls else ""),
                f"{r.completion_tokens}" + ("*" if r.estimated_calls else ""),
                f"{r.cost:.4f}",
                f"{r.tokens_per_second:.1f}",
            )
        notes = []
        if any(r.estimated_calls for r in self.rows.values()):
            notes.append("* includes tokens estimated with a tokenizer (server sent no usage)")
        if self._store is not None:
            cap = f" of max_cost {self.max_cost:g}" if self.max_cost is not None else ""
            notes.append(f"run folder spend, all stages: {self.run_cost:.4f}{cap}")
        table.caption = "\n".join(notes) or None
        return table

    def print_table(self, console: Console | None = None) -> None:
        (console or table_console(stderr=True)).print(self.table())
