"""An async client for OpenAI-compatible servers (vLLM, llama.cpp, Ollama, TGI, LM Studio, OpenAI).

Every call goes: request cache -> concurrency limit -> spending cap (the run folder's ledger plus
the calls in flight) -> rate limits -> the endpoint with the fewest requests outstanding -> retries.
A usable response is committed to the cache the moment it arrives, so it is never paid for twice,
and identical requests in flight at the same time share one call.

Retries wait max(Retry-After, exponential backoff) with jitter. A 429 pauses every worker on that
endpoint (one shared pause, not each worker in turn) and is bounded by time (`retry_budget_s`)
rather than by count; other failures are bounded by both. A reply that is empty, cut by
max_tokens or not in the asked format is not a result: it is asked again with a changed request
(a larger max_tokens, another seed, a repair turn) and the item fails if that does not help.

A stopped caller (Ctrl-C cancels the stage) does not drop its call: leaving the client gives the
calls in flight `interrupt_grace_s` to arrive and be cached, since they may already be paid for,
and sends no new one; a second Ctrl-C ends the wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from aiolimiter import AsyncLimiter

from synthrank.errors import BudgetExceededError, LLMError
from synthrank.llm.cache import ResponseCache, cache_key
from synthrank.llm.config import LLMConfig
from synthrank.llm.ledger import Ledger, TokenEstimator
from synthrank.llm.server_slots import server_slots

log = logging.getLogger(__name__)

PATHS = {"chat": "/chat/completions", "completion": "/completions"}
RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
MAX_RETRY_AFTER = 300.0
CONNECTIONS_PER_POOL = 8
REPAIR = "Reply again with only what was asked for, in exactly the format asked for, and nothing else."


class RetryableError(LLMError):
    """A failure worth another attempt; `retry_after` is the server's wish in seconds, if it said."""

    def __init__(self, message: str, retry_after: float | None = None, *, rate_limited: bool = False) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.rate_limited = rate_limited


class ReplyFormatError(LLMError):
    """The reply arrived but its content does not have the format the prompt asked for."""


class BadReplyError(LLMError):
    """Replies stayed empty, truncated or unparsable after changed requests: the item failed."""


class ClientStoppingError(LLMError):
    """The client is being left (Ctrl-C or an error): the call was not sent and nothing failed."""


@dataclass(frozen=True)
class Reply:
    content: str
    logprobs: list[dict[str, Any]] | None  # per generated token: token, logprob, top_logprobs
    usage: dict[str, Any] | None
    cached: bool
    response: dict[str, Any]
    finish_reason: str | None = None


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After is either seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def reply_from_response(kind: str, data: dict[str, Any], cached: bool) -> Reply:
    """Pull text and token logprobs out of a chat or completion response."""
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise RetryableError("response has no choices")
    choice = choices[0]
    if kind == "chat":
        message = choice.get("message") or {}
        content = message.get("content") if isinstance(message, dict) else None
    else:
        content = choice.get("text")
    if content is None:
        content = ""
    if not isinstance(content, str):
        raise RetryableError("response content is not text")
    raw_lp = choice.get("logprobs")
    logprobs = None
    if isinstance(raw_lp, dict) and isinstance(raw_lp.get("content"), list):
        logprobs = raw_lp["content"]
    elif isinstance(raw_lp, dict) and isinstance(raw_lp.get("tokens"), list):  # legacy completions format
        tops = raw_lp.get("top_logprobs") or [{}] * len(raw_lp["tokens"])
        logprobs = [
            {
                "token": t,
                "logprob": lp,
                "top_logprobs": [{"token": k, "logprob": v} for k, v in (top or {}).items()],
            }
            for t, lp, top in zip(raw_lp["tokens"], raw_lp.get("token_logprobs") or [], tops, strict=False)
        ]
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else None
    finish = choice.get("finish_reason")
    return Reply(
        content=content,
        logprobs=logprobs,
        usage=usage,
        cached=cached,
        response=data,
        finish_reason=finish if isinstance(finish, str) else None,
    )


def reply_problem(reply: Reply, validate: Callable[[Reply], object] | None) -> str | None:
    """Why a reply is not a result (empty, cut by max_tokens, wrong format), or None if it is one."""
    if not reply.content.strip():
        return "empty reply"
    if reply.finish_reason == "length":
        return "reply cut off by max_tokens (finish_reason 'length')"
    if validate is not None:
        try:
            validate(reply)
        except ReplyFormatError as exc:
            return f"reply not in the asked format: {exc}"
    return None


def changed_request(
    kind: str, body: dict[str, Any], reply: Reply, problem: str, attempt: int
) -> dict[str, Any]:
    """The request to send after a bad reply: resending it unchanged would likely repeat the reply."""
    body = dict(body)
    if problem.startswith("reply cut off"):
        used = int((reply.usage or {}).get("completion_tokens") or 0)
        body["max_tokens"] = 2 * max(int(body.get("max_tokens") or 0), used, 128)
    elif problem.startswith("reply not in the asked format") and kind == "chat":
        body["messages"] = [
            *body["messages"],
            {"role": "assistant", "content": reply.content},
            {"role": "user", "content": f"Your previous reply could not be used ({problem}). {REPAIR}"},
        ]
    else:  # empty (or a raw-text completion in the wrong format): another sample
        body["seed"] = int(body.get("seed") or 0) + 1000 * attempt
    return body


class Endpoint:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.outstanding = 0
        self.failures = 0  # consecutive
        self.rested_until = 0.0
        self.paused_until = 0.0  # after a 429: every worker waits, not only the one that got it
        self.slots: int | None = None  # requests it decodes at once, where it says (llm/server_slots.py)

    @property
    def ready_at(self) -> float:
        return max(self.rested_until, self.paused_until)


class EndpointPool:
    """Least-outstanding choice among endpoints; one that keeps failing rests, then gets a new try.

    An endpoint that reported its decoding slots gets at most that many requests at once: the rest
    wait here, where no timeout runs, rather than in the server's queue.
    """

    def __init__(self, base_urls: list[str], *, rest_after: int, rest_seconds: float) -> None:
        self.endpoints = [Endpoint(u) for u in base_urls]
        self.rest_after = rest_after
        self.rest_seconds = rest_seconds
        self._released = asyncio.Event()

    async def acquire(self) -> Endpoint:
        while True:
            now = time.monotonic()
            awake = [e for e in self.endpoints if e.ready_at <= now]
            free = [e for e in awake if e.slots is None or e.outstanding < e.slots]
            if free:
                endpoint = min(free, key=lambda e: e.outstanding)
                endpoint.outstanding += 1
                return endpoint
            asleep = [e.ready_at - now for e in self.endpoints if e.ready_at > now]
            if len(asleep) < len(self.endpoints):  # some are awake but full: wait for a release
                self._released.clear()
                with contextlib.suppress(asyncio.TimeoutError):  # a paused endpoint wakes up
                    await asyncio.wait_for(self._released.wait(), min(asleep, default=None))
                continue
            wait = min(asleep)
            # jitter, so that the workers of a shared pause do not all return in the same instant
            await asyncio.sleep(wait + random.uniform(0, 0.2 * wait))

    def pause(self, endpoint: Endpoint, seconds: float) -> None:
        endpoint.paused_until = max(endpoint.paused_until, time.monotonic() + seconds)

    def release(self, endpoint: Endpoint, ok: bool) -> None:
        endpoint.outstanding -= 1
        self._released.set()
        if ok:
            endpoint.failures = 0
            return
        endpoint.failures += 1
        # resting only helps when another endpoint can take the load; alone, backoff does the job
        resting = endpoint.rested_until > time.monotonic()
        if len(self.endpoints) > 1 and endpoint.failures >= self.rest_after and not resting:
            endpoint.rested_until = time.monotonic() + self.rest_seconds
            endpoint.failures = 0
            log.warning(
                "endpoint %s keeps failing; resting it for %.0fs", endpoint.base_url, self.rest_seconds
            )


class LLMClient:
    """Use as `async with LLMClient(cfg, cache=..., ledger=..., stage="generate") as client`."""

    def __init__(
        self,
        cfg: LLMConfig,
        *,
        cache: ResponseCache | None = None,
        ledger: Ledger | None = None,
        stage: str = "llm",
        ledger_path: Path | None = None,
    ) -> None:
        """`ledger_path`: the run folder's spending ledger, which makes max_cost a budget per run."""
        self.cfg = cfg.resolved()
        self.cache = cache
        self._own_ledger = ledger is None
        self.ledger = ledger or Ledger(
            price_prompt=self.cfg.price_prompt,
            price_completion=self.cfg.price_completion,
            max_cost=self.cfg.max_cost,
            estimator=TokenEstimator(self.cfg.tokenizer),
            path=ledger_path,
        )
        self.stage = stage
        self.pool = EndpointPool(
            self.cfg.base_urls, rest_after=self.cfg.rest_after, rest_seconds=self.cfg.rest_seconds
        )
        self._semaphore = asyncio.Semaphore(self.cfg.concurrency)
        self._rpm = AsyncLimiter(self.cfg.rpm, 60) if self.cfg.rpm else None
        self._tpm = AsyncLimiter(self.cfg.tpm, 60) if self.cfg.tpm else None
        self._pending: dict[str, asyncio.Task[Reply]] = {}
        self._http: list[httpx.AsyncClient] = []
        self._free_slots = list(range(self.cfg.concurrency))
        self._stopping = False
        self._slots_probe: asyncio.Future[None] | None = None
        self._sending: set[asyncio.Task[Any]] = set()  # calls whose request is out: maybe paid for

    async def __aenter__(self) -> LLMClient:
        headers = {"Authorization": f"Bearer {self.cfg.api_key}"} if self.cfg.api_key else {}
        # httpcore scans every connection of a pool on each request event (quadratic in the number in
        # flight), so the connections are split over small pools, one per CONNECTIONS_PER_POOL slots
        per_pool = min(self.cfg.concurrency, CONNECTIONS_PER_POOL)
        self._http = [
            httpx.AsyncClient(
                headers=headers,
                timeout=httpx.Timeout(self.cfg.timeout),
                limits=httpx.Limits(max_connections=per_pool, max_keepalive_connections=per_pool),
            )
            for _ in range(-(-self.cfg.concurrency // per_pool))
        ]
        return self

    async def _probe_slots(self) -> None:
        for endpoint in self.pool.endpoints:
            endpoint.slots = await server_slots(self._http[0], endpoint.base_url)
            if endpoint.slots is not None and endpoint.slots < self.cfg.concurrency:
                log.info(
                    "%s decodes %d request(s) at a time: at most that many in flight there (concurrency "
                    "%d); the others wait in the client, where no timeout runs",
                    endpoint.base_url,
                    endpoint.slots,
                    self.cfg.concurrency,
                )

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self._finish_in_flight()
        finally:
            for http in self._http:
                await http.aclose()
            self._http = []
            if self._own_ledger:
                self.ledger.close()

    async def _finish_in_flight(self) -> None:
        """Give sent calls whose callers were stopped `interrupt_grace_s` to arrive (and be cached)."""
        self._stopping = True  # from here on, no call is sent
        calls = [task for task in self._pending.values() if not task.done()]
        sent = [task for task in calls if task in self._sending]
        for task in calls:
            if task not in sent:  # queued, or waiting to retry: nothing is paid for yet
                task.cancel()
        grace = self.cfg.interrupt_grace_s
        if sent and grace > 0:
            log.warning(
                "stopping: waiting up to %gs for %d LLM call(s) in flight so that their replies are "
                "cached (Ctrl-C again to stop at once)",
                grace,
                len(sent),
            )
            await asyncio.wait(sent, timeout=grace)
        for task in sent:
            task.cancel()
        # collected here, so a late failure is not reported as "exception never retrieved"
        await asyncio.gather(*calls, return_exceptions=True)

    @property
    def model(self) -> str:
        return self.cfg.model

    async def chat(
        self,
        messages: list[dict[str, str]],
        *,
        template_version: str,
        validate: Callable[[Reply], object] | None = None,
        **params: Any,
    ) -> Reply:
        """POST /chat/completions; `validate` raising ReplyFormatError asks for a fresh reply."""
        body = {"model": self.cfg.model, "messages": messages, **params}
        return await self._request("chat", body, template_version, validate)

    async def complete(
        self,
        prompt: str,
        *,
        template_version: str,
        validate: Callable[[Reply], object] | None = None,
        **params: Any,
    ) -> Reply:
        """POST /completions, for prompts that need raw text rather than a chat template."""
        body = {"model": self.cfg.model, "prompt": prompt, **params}
        return await self._request("completion", body, template_version, validate)

    async def _request(
        self,
        kind: str,
        body: dict[str, Any],
        template_version: str,
        validate: Callable[[Reply], object] | None,
    ) -> Reply:
        key = cache_key(kind, body, template_version)
        if self.cache is not None and not self.cfg.refresh:
            hit = self.cache.get(key)
            if hit is not None:
                try:
                    reply: Reply | None = reply_from_response(kind, hit, cached=True)
                except RetryableError:
                    reply = None
                # a bad reply cached by an older version is not a result: it is asked again, except
                # when replaying offline, where the recorded run is reproduced as it was
                if reply is not None and (self.cfg.offline or reply_problem(reply, validate) is None):
                    self.ledger.record_cache_hit(self.stage, self.cfg.model)
                    return reply
        if self.cfg.offline:
            raise LLMError(
                f"offline: no cached reply for this {kind} request (template {template_version}); "
                "set [llm] offline = false and give a server to make the call"
            )
        if self._stopping:
            raise ClientStoppingError("the LLM client is stopping: no new call is sent")
        shared = self._pending.get(key)
        if shared is not None:
            return await asyncio.shield(shared)
        task = asyncio.ensure_future(self._fetch_valid(kind, body, key, validate))
        self._pending[key] = task
        task.add_done_callback(lambda _: self._pending.pop(key, None))  # also when its caller is gone
        try:
            # shielded: a cancelled caller leaves the call running for __aexit__'s grace period
            return await asyncio.shield(task)
        except LLMError as exc:
            if not isinstance(exc, BudgetExceededError | ClientStoppingError):  # not sent: nothing failed
                self.ledger.record_failure(self.stage, self.cfg.model)
            raise

    async def _fetch_valid(
        self, kind: str, body: dict[str, Any], key: str, validate: Callable[[Reply], object] | None
    ) -> Reply:
        """A usable reply, cached under the key of the request as the caller made it."""
        request = body
        attempts = self.cfg.bad_reply_retries + 1
        for attempt in range(1, attempts + 1):
            reply = await self._fetch(kind, request)
            problem = reply_problem(reply, validate)
            if problem is None and self.cache is not None:
                self.cache.put(key, kind, reply.response)  # first: what a kill -9 must not lose
            self.ledger.record_call(
                self.stage, self.cfg.model, reply.usage, _prompt_text(request), reply.content
            )
            if problem is None:
                return reply
            self.ledger.record_bad_reply(self.stage, self.cfg.model)
            log.info("%s; asking again with a changed request", problem)
            request = changed_request(kind, request, reply, problem, attempt)
        raise BadReplyError(f"{problem} in {attempts} attempt(s) with changed requests")

    def _delay(self, failures: int, exc: RetryableError) -> float:
        """max(Retry-After, exponential backoff), stretched by up to 25 % of jitter."""
        backoff = min(self.cfg.backoff_max, self.cfg.backoff_base * 2 ** (failures - 1))
        wait = max(min(exc.retry_after or 0.0, MAX_RETRY_AFTER), backoff)
        return wait * random.uniform(1.0, 1.25)

    async def _fetch(self, kind: str, body: dict[str, Any]) -> Reply:
        """One reply that arrived, after retries: 429s until retry_budget_s, others also `retries` times."""
        started = time.monotonic()
        attempts = errors = 0
        while True:
            try:
                data = await self._send(kind, body)
                reply = reply_from_response(kind, data, cached=False)
            except RetryableError as exc:
                attempts += 1
                errors += not exc.rate_limited
                delay = self._delay(attempts, exc)
                if errors > self.cfg.retries or time.monotonic() - started + delay > self.cfg.retry_budget_s:
                    raise
                self.ledger.record_retry(self.stage, self.cfg.model, rate_limited=exc.rate_limited)
                log.info("retrying %s in %.1fs after %s", kind, delay, exc)
                await asyncio.sleep(delay)
                continue
            return reply

    async def _send(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        assert self._http, "use LLMClient as an async context manager"
        async with self._semaphore:
            # reserved here, not before queueing, so calls already sent finish and are kept
            estimate = self.ledger.estimate(_prompt_text(body), body.get("max_tokens"))
            self.ledger.reserve(estimate)
            try:
                return await self._post(kind, body)
            finally:
                self.ledger.settle(estimate)

    async def _post(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        if self._rpm is not None:
            await self._rpm.acquire()
        if self._tpm is not None:
            estimate = self.ledger.estimator.count(_prompt_text(body)) + int(body.get("max_tokens") or 0)
            await self._tpm.acquire(min(float(estimate), self._tpm.max_rate))
        if self._slots_probe is None:  # once, before the first request: a replay sends nothing
            self._slots_probe = asyncio.ensure_future(self._probe_slots())
        await asyncio.shield(self._slots_probe)
        endpoint = await self.pool.acquire()
        slot = self._free_slots.pop()  # never empty: the semaphore admits `concurrency` requests
        ok = False
        url = endpoint.base_url + PATHS[kind]
        call = asyncio.current_task()
        try:
            if self._stopping:  # checked after the waits above, the last moment before paying
                raise ClientStoppingError("the LLM client is stopping: the call was not sent")
            if call is not None:
                self._sending.add(call)
            try:
                response = await self._http[slot // CONNECTIONS_PER_POOL].post(url, json=body)
            except httpx.TimeoutException as exc:
                raise RetryableError(f"{url}: timed out after {self.cfg.timeout:g}s") from exc
            except httpx.TransportError as exc:
                raise RetryableError(f"{url}: connection failed ({type(exc).__name__})") from exc
            finally:
                # from here to the cache write nothing awaits: a reply that came is not lost
                if call is not None:
                    self._sending.discard(call)
            if response.status_code in RETRY_STATUS:
                retry_after = parse_retry_after(response.headers.get("retry-after"))
                if response.status_code == 429:
                    # the server is saturated for everyone: every worker waits, not each in turn
                    self.pool.pause(endpoint, min(retry_after or self.cfg.backoff_base, MAX_RETRY_AFTER))
                raise RetryableError(
                    f"{url}: HTTP {response.status_code}",
                    retry_after,
                    rate_limited=response.status_code == 429,
                )
            if response.status_code >= 400:
                raise LLMError(f"{url}: HTTP {response.status_code}: {self._scrub(response.text[:300])}")
            try:
                data = response.json()
            except ValueError as exc:
                raise RetryableError(f"{url}: malformed JSON in the response") from exc
            if not isinstance(data, dict):
                raise RetryableError(f"{url}: response is not a JSON object")
            ok = True
            return data
        finally:
            self._free_slots.append(slot)
            self.pool.release(endpoint, ok)

    def _scrub(self, text: str) -> str:
        """Servers sometimes echo the request; the key must not reach a log or an exception."""
        key = self.cfg.api_key
        return text.replace(key, "***") if key else text


def _prompt_text(body: dict[str, Any]) -> str:
    if "messages" in body:
        return "\n".join(str(m.get("content", "")) for m in body["messages"])
    return str(body.get("prompt", ""))
