"""Tokens, cost and call counts per stage and model, and the spending cap that stops a stage.

Tokens come from the server's `usage`; when a server leaves it out they are estimated with a
tokenizer (the configured one, else the packaged MiniLM WordPiece vocabulary, else ~4 characters
per token), and the row says how many calls were estimated.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from rich.console import Console
from rich.table import Table

from synthrank.errors import BudgetExceededError

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
        from pathlib import Path

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


class Ledger:
    """Accounts for every call of a process; `check_budget` raises once max_cost is spent."""

    def __init__(
        self,
        *,
        price_prompt: float = 0.0,
        price_completion: float = 0.0,
        max_cost: float | None = None,
        estimator: TokenEstimator | None = None,
    ) -> None:
        self.price_prompt = price_prompt
        self.price_completion = price_completion
        self.max_cost = max_cost
        self.estimator = estimator or TokenEstimator()
        self.rows: dict[tuple[str, str], LedgerRow] = {}

    def row(self, stage: str, model: str) -> LedgerRow:
        key = (stage, model)
        if key not in self.rows:
            self.rows[key] = LedgerRow()
        return self.rows[key]

    @property
    def cost(self) -> float:
        return sum(r.cost for r in self.rows.values())

    def check_budget(self) -> None:
        if self.max_cost is not None and self.cost >= self.max_cost:
            raise BudgetExceededError(
                f"max_cost {self.max_cost:g} reached (spent {self.cost:.4f}); "
                "finished calls are cached, re-run with a higher --max-cost to continue"
            )

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
        row.cost += (prompt * self.price_prompt + completion * self.price_completion) / 1e6
        row.seconds = time.monotonic() - row.started

    def record_cache_hit(self, stage: str, model: str) -> None:
        self.row(stage, model).cache_hits += 1

    def record_failure(self, stage: str, model: str) -> None:
        self.row(stage, model).failures += 1

    def summary(self, stage: str | None = None) -> dict[str, Any]:
        rows = [r for (s, _), r in self.rows.items() if stage is None or s == stage]
        return {
            "calls": sum(r.calls for r in rows),
            "cache_hits": sum(r.cache_hits for r in rows),
            "failures": sum(r.failures for r in rows),
            "prompt_tokens": sum(r.prompt_tokens for r in rows),
            "completion_tokens": sum(r.completion_tokens for r in rows),
            "estimated_calls": sum(r.estimated_calls for r in rows),
            "cost": round(sum(r.cost for r in rows), 6),
        }

    def table(self) -> Table:
        table = Table(title="LLM usage")
        for name in ("stage", "model", "calls", "cache hits", "failures", "prompt tok", "completion tok"):
            table.add_column(name, justify="left" if name in ("stage", "model") else "right")
        table.add_column("cost", justify="right")
        table.add_column("tok/s", justify="right")
        for (stage, model), r in sorted(self.rows.items()):
            table.add_row(
                stage,
                model,
                str(r.calls),
                str(r.cache_hits),
                str(r.failures),
                f"{r.prompt_tokens}" + ("*" if r.estimated_calls else ""),
                f"{r.completion_tokens}" + ("*" if r.estimated_calls else ""),
                f"{r.cost:.4f}",
                f"{r.tokens_per_second:.1f}",
            )
        if any(r.estimated_calls for r in self.rows.values()):
            table.caption = "* includes tokens estimated with a tokenizer (server sent no usage)"
        return table

    def print_table(self, console: Console | None = None) -> None:
        (console or Console(stderr=True)).print(self.table())
