"""Options of the LLM client: endpoints, model, limits, retries, prices and the spending cap.

The API key is read from the environment when not given and is kept out of `repr`, so printing a
config (or a stage manifest built from it) never shows it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from synthrank.config import above, at_least, within
from synthrank.errors import ConfigError

BASE_URL_ENV = ("SYNTHRANK_LLM_BASE_URL", "OPENAI_BASE_URL")
API_KEY_ENV = ("SYNTHRANK_LLM_API_KEY", "OPENAI_API_KEY")
MODEL_ENV = ("SYNTHRANK_LLM_MODEL",)
DEFAULT_BASE_URL = "http://127.0.0.1:8080/v1"


def _first_env(names: tuple[str, ...]) -> str | None:
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


@dataclass
class LLMConfig:
    """How to reach the LLM and how hard to push it.

    base_urls: one or more OpenAI-compatible base URLs (".../v1"); empty = from the environment
        (comma-separated `SYNTHRANK_LLM_BASE_URL` or `OPENAI_BASE_URL`), else the llama.cpp default.
    concurrency: requests in flight at once, over all endpoints.
    rpm, tpm: requests / tokens per minute (None = unlimited); tokens are estimated before sending.
    retries: extra attempts after a retryable failure (5xx, dropped connection, timeout, malformed
        body); each waits max(Retry-After, exponential backoff) with jitter. A 429 pauses every
        worker of that endpoint and is retried until `retry_budget_s` per call is spent.
    bad_reply_retries: changed requests sent after an empty, truncated or unparsable reply.
    max_failure_rate: a stage whose share of failed items passes this exits incomplete.
    price_prompt, price_completion: cost per 1M tokens; max_cost: the run folder's budget, over
        every LLM stage and re-run (read from RUN/llm_ledger.sqlite).
    rest_after, rest_seconds: an endpoint failing `rest_after` times in a row rests that long.
    interrupt_grace_s: after Ctrl-C, calls in flight get this long to arrive and be cached (they
        may already be paid for); no new call is sent, and a second Ctrl-C stops at once.
    cache: SQLite request cache (None = the run folder's `llm_cache.sqlite`); refresh ignores it.
    offline: answer only from the cache (replaying a recorded run); a miss fails that call.
    """

    base_urls: list[str] = field(default_factory=list)
    model: str = ""
    api_key: str | None = field(default=None, repr=False)
    concurrency: int = 8
    rpm: float | None = None
    tpm: float | None = None
    timeout: float = 120.0
    retries: int = 6
    retry_budget_s: float = 600.0
    bad_reply_retries: int = 2
    max_failure_rate: float = 0.05
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    price_prompt: float = 0.0
    price_completion: float = 0.0
    max_cost: float | None = None
    rest_after: int = 3
    rest_seconds: float = 30.0
    interrupt_grace_s: float = 2.0
    cache: Path | None = None
    refresh: bool = False
    offline: bool = False  # replay cached replies only: a cache miss is an error, nothing is sent
    tokenizer: str | None = None  # tokenizer.json / folder used to estimate tokens a server did not report

    def __post_init__(self) -> None:
        at_least(self, "llm", 1, "concurrency", "rest_after")
        above(self, "llm", 0, "timeout", "backoff_base", "backoff_max", "rest_seconds", "retry_budget_s")
        above(self, "llm", 0, "rpm", "tpm", "max_cost", optional=True)
        at_least(
            self,
            "llm",
            0,
            "retries",
            "bad_reply_retries",
            "price_prompt",
            "price_completion",
            "interrupt_grace_s",
        )
        # checked here, not only in resolved(), so that a config file's error names its file and line
        _check_urls(self.base_urls, "base_urls")
        within(self, "llm", 0, 1, "max_failure_rate")
        if self.offline and self.refresh:
            raise ConfigError(
                "offline and refresh exclude each other (refresh asks the server again)",
                section="llm",
                key="offline",
            )

    def resolved(self) -> LLMConfig:
        """A copy with base URLs, model and key filled in from the environment where unset."""
        urls = list(self.base_urls)
        if not urls:
            env = _first_env(BASE_URL_ENV)
            urls = [u.strip() for u in env.split(",") if u.strip()] if env else [DEFAULT_BASE_URL]
            _check_urls(urls, f"base_urls (from ${' or $'.join(BASE_URL_ENV)})")
        model = self.model or _first_env(MODEL_ENV) or "default"
        api_key = self.api_key if self.api_key is not None else _first_env(API_KEY_ENV)
        return replace(self, base_urls=[normalize_base_url(u) for u in urls], model=model, api_key=api_key)

    def public_dict(self) -> dict[str, object]:
        """The options without the API key, for manifests and fingerprints."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "api_key"}


def token_cost(
    prompt_tokens: float, completion_tokens: float, price_prompt: float, price_completion: float
) -> float:
    """What tokens cost at prices per 1M tokens (`[llm] price_prompt` / `price_completion`)."""
    return (prompt_tokens * price_prompt + completion_tokens * price_completion) / 1e6


def _check_urls(urls: list[str], key: str) -> None:
    for url in urls:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigError(
                f"{url!r} is not an http(s) URL (e.g. http://127.0.0.1:8080/v1)", section="llm", key=key
            )


def normalize_base_url(url: str) -> str:
    """'http://host:8080' and 'http://host:8080/v1/' both mean 'http://host:8080/v1'."""
    url = url.rstrip("/")
    scheme_sep = url.index("//") + 2
    if "/" not in url[scheme_sep:]:
        url += "/v1"
    return url
