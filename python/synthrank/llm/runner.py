"""Shared plumbing of the LLM stages: bounded workers over items, budget stop, periodic flushing."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

from synthrank.errors import BudgetExceededError, LLMError
from synthrank.llm.client import ClientStoppingError
from synthrank.progress import Bar, progress_bar

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")


class Outcome:
    """How a drain ended: `complete` is False when the budget or a dead endpoint stopped it."""

    def __init__(self) -> None:
        self.done = 0
        self.failed = 0
        self.complete = True
        self.stop_reason: str | None = None


async def drain(
    items: Iterable[T],
    work: Callable[[T], Awaitable[R]],
    on_result: Callable[[T, R], None],
    *,
    workers: int,
    total: int | None = None,
    description: str = "LLM",
    max_consecutive_failures: int = 50,
    max_failure_rate: float = 0.0,
    settled: int = 0,
) -> Outcome:
    """Run `work` over `items` with `workers` tasks.

    A failed item (retries exhausted, or replies that stayed unusable) is counted and skipped, so a
    re-run tries it again; the drain is incomplete when failures pass `max_failure_rate` of the
    stage's items: those tried plus the `settled` ones earlier runs finished, so that one item that
    always fails does not fail every resumed run. The spending cap stops new items while calls in
    flight finish; so does a long run of failures in a row (the endpoint is down), so a dead server
    fails the stage instead of grinding on for hours.
    """
    outcome = Outcome()
    iterator = iter(items)
    consecutive = 0
    stop = asyncio.Event()

    async def worker(bar: Bar) -> None:
        nonlocal consecutive
        while not stop.is_set():
            try:
                item = next(iterator)
            except StopIteration:
                return
            try:
                result = await work(item)
            except BudgetExceededError as exc:
                outcome.complete = False
                outcome.stop_reason = str(exc)
                stop.set()
                return
            except ClientStoppingError as exc:  # the stage is being left: the item is not a failure
                outcome.complete = False
                outcome.stop_reason = outcome.stop_reason or str(exc)
                stop.set()
                return
            except LLMError as exc:
                outcome.failed += 1
                consecutive += 1
                log.warning("%s: %s", description, exc)
                if consecutive >= max_consecutive_failures:
                    outcome.complete = False
                    outcome.stop_reason = f"{consecutive} calls in a row failed; last error: {exc}"
                    stop.set()
                continue
            consecutive = 0
            outcome.done += 1
            on_result(item, result)
            bar.advance()

    with progress_bar(description, total=total) as bar:
        await asyncio.gather(*(worker(bar) for _ in range(workers)))
    items_total = settled + outcome.done + outcome.failed
    if outcome.failed and outcome.complete:
        share = outcome.failed / items_total
        message = f"{outcome.failed} of {items_total} item(s) failed after retries"
        if share > max_failure_rate:
            outcome.complete = False
            outcome.stop_reason = (
                f"{message} ({share:.1%} > max_failure_rate {max_failure_rate:.1%}); re-run to try them again"
            )
        else:
            log.warning("%s: %s (within max_failure_rate); re-run to try them again", description, message)
    return outcome
