"""How many requests a server decodes at once, where it says so (llama.cpp's `GET /props`).

A request sent beyond that number waits in the server's queue, and its client timeout runs while it
waits: with `[llm] concurrency = 8` against a one-slot llama.cpp server on a CPU, the eighth request
waits for seven others and times out, is sent again and queues again, so the server works for
nobody. The client keeps at most `slots` requests in flight to such an endpoint instead.
"""

from __future__ import annotations

import logging

import httpx

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 5.0


def props_url(base_url: str) -> str:
    """llama.cpp serves /props beside the OpenAI routes, at the root, not under /v1."""
    root = base_url.rstrip("/")
    return (root[: -len("/v1")] if root.endswith("/v1") else root) + "/props"


async def server_slots(http: httpx.AsyncClient, base_url: str) -> int | None:
    """The server's decoding slots, or None when it does not say (vLLM, Ollama, hosted APIs)."""
    try:
        return _slots(await http.get(props_url(base_url), timeout=PROBE_TIMEOUT_S))
    except httpx.HTTPError:
        return None


def server_slots_now(base_url: str, headers: dict[str, str] | None = None) -> int | None:
    """`server_slots` without an event loop (for `synthrank plan`)."""
    try:
        return _slots(httpx.get(props_url(base_url), headers=headers, timeout=PROBE_TIMEOUT_S))
    except httpx.HTTPError:
        return None


def _slots(response: httpx.Response) -> int | None:
    try:
        slots = response.json().get("total_slots") if response.status_code == 200 else None
    except (ValueError, AttributeError):
        return None
    return slots if isinstance(slots, int) and not isinstance(slots, bool) and slots > 0 else None
