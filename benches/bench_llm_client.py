"""LLM client overhead against a local instant server: requests/s and client CPU per request.

Cases: cache miss with 1 and 64 requests in flight (every miss is committed to SQLite), and a
cache hit. The fake server runs in its own process, so the CPU time measured is the client's.
Run: `pytest benches/bench_llm_client.py --benchmark-enable`, or `python benches/bench_llm_client.py`
for a plain table. Targets: >= 1,000 requests/s from one core, a cache hit < 0.2 ms.
"""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from synthrank.llm.cache import ResponseCache
from synthrank.llm.client import LLMClient
from synthrank.llm.config import LLMConfig

SERVER = Path(__file__).resolve().parents[1] / "tests" / "llm_fake_server.py"
_unique = itertools.count()


def start_server() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, str(SERVER), "--port", "0"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    port = int(proc.stdout.readline().split()[1])
    return proc, f"http://127.0.0.1:{port}/v1"


def messages(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"<document>\nbench request {i} about insulin\n</document>"}]


async def _batch(url: str, cache: ResponseCache, ids: list[int], concurrency: int) -> None:
    cfg = LLMConfig(base_urls=[url], model="bench", concurrency=concurrency)
    async with LLMClient(cfg, cache=cache) as client:
        queue = iter(ids)

        async def worker() -> None:
            for i in queue:
                await client.chat(messages(i), template_version="bench", max_tokens=16)

        await asyncio.gather(*(worker() for _ in range(concurrency)))


def measure(url: str, cache: ResponseCache, n: int, concurrency: int, *, hits: bool) -> dict[str, float]:
    """Wall and client CPU per request; `hits` replays ids already in the cache."""
    ids = [next(_unique) for _ in range(n)]
    if hits:
        asyncio.run(_batch(url, cache, ids, 64))  # fill the cache first
    wall, cpu = time.perf_counter(), time.process_time()
    asyncio.run(_batch(url, cache, ids, concurrency))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "requests_per_s": n / wall,
        "cpu_ms_per_request": 1000 * cpu / n,
        "wall_ms_per_request": 1000 * wall / n,
    }


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    proc, url = start_server()
    yield url
    proc.kill()
    proc.wait()


CASES = {
    "miss, 1 in flight": (200, 1, False),
    "miss, 64 in flight": (2000, 64, False),
    "hit": (5000, 1, True),
}


@pytest.mark.parametrize("case", list(CASES))
def test_llm_client_overhead(benchmark: Any, server_url: str, tmp_path: Path, case: str) -> None:
    n, concurrency, hits = CASES[case]
    with ResponseCache(tmp_path / "cache.sqlite") as cache:
        result = benchmark.pedantic(
            measure, args=(server_url, cache, n, concurrency), kwargs={"hits": hits}, rounds=3
        )
    benchmark.extra_info.update(result)
    assert result["requests_per_s"] > 0


def main() -> None:
    import tempfile

    proc, url = start_server()
    try:
        with tempfile.TemporaryDirectory() as tmp, ResponseCache(Path(tmp) / "cache.sqlite") as cache:
            measure(url, cache, 200, 8, hits=False)  # warm-up: imports, connections, tokenizer-free path
            print(f"{'case':<22}{'requests/s':>12}{'client CPU ms/req':>20}{'wall ms/req':>14}")
            for case, (n, concurrency, hits) in CASES.items():
                r = measure(url, cache, n, concurrency, hits=hits)
                print(
                    f"{case:<22}{r['requests_per_s']:>12.0f}{r['cpu_ms_per_request']:>20.3f}"
                    f"{r['wall_ms_per_request']:>14.3f}"
                )
    finally:
        proc.kill()
        proc.wait()


if __name__ == "__main__":
    main()
