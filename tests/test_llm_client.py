"""The LLM client against a real HTTP server on 127.0.0.1 (tests/llm_fake_server.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from llm_support import FakeServer, fake_server_fixture, fake_server_process_fixture  # noqa: F401
from synthrank.errors import BudgetExceededError, LLMError
from synthrank.llm.cache import ResponseCache
from synthrank.llm.client import BadReplyError, LLMClient, Reply, ReplyFormatError, parse_retry_after
from synthrank.llm.config import LLMConfig, normalize_base_url

FAST: dict[str, Any] = {"backoff_base": 0.01, "backoff_max": 0.05, "timeout": 5.0}


def config(server: FakeServer, **overrides: object) -> LLMConfig:
    return LLMConfig(base_urls=[server.url], model="fake", **{**FAST, **overrides})  # type: ignore[arg-type]


def ask(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"<document>\nquestion number {i} about glucose levels\n</document>"}]


async def ask_many(cfg: LLMConfig, n: int, cache: ResponseCache | None = None, **params: Any) -> list[Reply]:
    async with LLMClient(cfg, cache=cache) as client:
        return await asyncio.gather(*(client.chat(ask(i), template_version="t1", **params) for i in range(n)))


def test_concurrency_never_exceeds_the_limit(fake_server: FakeServer) -> None:
    fake_server.control(delay=0.05)
    replies = asyncio.run(ask_many(config(fake_server, concurrency=3), 12))
    stats = fake_server.stats()
    assert len(replies) == 12 and stats["hits"] == 12
    assert stats["max_in_flight"] == 3


def test_a_server_with_fewer_slots_gets_no_more_requests_than_it_decodes(fake_server: FakeServer) -> None:
    # llama.cpp's /props says how many requests it decodes at once; more would wait in its queue
    # while their client timeout runs (0.5 s here: 6 queued 0.2 s replies would time out)
    fake_server.control(delay=0.2, total_slots=2)
    replies = asyncio.run(ask_many(config(fake_server, concurrency=6, timeout=0.5), 6))
    stats = fake_server.stats()
    assert len(replies) == 6 and stats["requests"] == 6 and stats["max_in_flight"] == 2


def test_a_server_that_does_not_report_slots_gets_the_configured_concurrency(fake_server: FakeServer) -> None:
    fake_server.control(delay=0.2)  # no /props: vLLM, Ollama, hosted APIs
    asyncio.run(ask_many(config(fake_server, concurrency=6), 6))
    assert fake_server.stats()["max_in_flight"] == 6


def test_a_cached_replay_sends_not_even_the_slot_probe(fake_server: FakeServer, tmp_path: Path) -> None:
    from synthrank.llm.server_slots import props_url

    assert props_url("http://h:8080/v1/") == props_url("http://h:8080") == "http://h:8080/props"
    with ResponseCache(tmp_path / "c.sqlite") as cache:
        asyncio.run(ask_many(config(fake_server), 2, cache=cache))
        assert fake_server.stats()["props_requests"] == 1  # one probe per client, before its first call
        asyncio.run(ask_many(config(fake_server), 2, cache=cache))  # all cached: nothing is sent
    stats = fake_server.stats()
    assert stats["requests"] == 2 and stats["props_requests"] == 1


def test_retry_after_is_honoured(fake_server: FakeServer) -> None:
    fake_server.control(faults=["429:1"])
    (reply,) = asyncio.run(ask_many(config(fake_server), 1))
    arrivals = fake_server.stats()["arrivals"]
    assert reply.content and len(arrivals) == 2
    assert arrivals[1] - arrivals[0] >= 0.95  # backoff alone would have waited <= 0.05 s


def test_server_errors_drops_malformed_and_slow_replies_are_retried(fake_server: FakeServer) -> None:
    fake_server.control(faults=["500", "drop", "malformed", "slow:2"])
    (reply,) = asyncio.run(ask_many(config(fake_server, timeout=0.5), 1))
    stats = fake_server.stats()
    assert stats["requests"] == 5 and stats["hits"] == 1
    assert "?" in reply.content and reply.usage is not None


def test_retries_exhausted_raise_llm_error(fake_server: FakeServer) -> None:
    fake_server.control(fail_all="500")
    with pytest.raises(LLMError, match="HTTP 500"):
        asyncio.run(ask_many(config(fake_server, retries=2), 1))
    assert fake_server.stats()["requests"] == 3


def test_cache_answers_repeats_and_refresh_ignores_it(fake_server: FakeServer, tmp_path: Path) -> None:
    with ResponseCache(tmp_path / "cache.sqlite") as cache:
        first = asyncio.run(ask_many(config(fake_server), 4, cache))
        again = asyncio.run(ask_many(config(fake_server), 4, cache))
        assert fake_server.stats()["hits"] == 4
        assert [r.content for r in again] == [r.content for r in first]
        assert all(r.cached for r in again) and not any(r.cached for r in first)
        asyncio.run(ask_many(config(fake_server, refresh=True), 4, cache))
        assert fake_server.stats()["hits"] == 8
        # a different sampling parameter is a different request
        asyncio.run(ask_many(config(fake_server), 1, cache, temperature=0.3))
        assert fake_server.stats()["hits"] == 9
    with ResponseCache(tmp_path / "cache.sqlite") as reopened:  # committed, readable by a new process
        assert len(reopened) == 5


def test_identical_requests_in_flight_share_one_call(fake_server: FakeServer) -> None:
    fake_server.control(delay=0.1)

    async def twice() -> list[Reply]:
        async with LLMClient(config(fake_server)) as client:
            return await asyncio.gather(*(client.chat(ask(0), template_version="t1") for _ in range(5)))

    replies = asyncio.run(twice())
    assert len({r.content for r in replies}) == 1
    assert fake_server.stats()["hits"] == 1


def test_unparsable_reply_is_asked_again_with_a_repair_turn_then_fails(
    fake_server: FakeServer, tmp_path: Path
) -> None:
    def needs_digit(reply: Reply) -> None:
        if not reply.content[:1].isdigit():
            raise ReplyFormatError("no digit")

    judge = [
        {"role": "system", "content": "You are a strict relevance judge."},
        {
            "role": "user",
            "content": "<query>\nglucose levels\n</query>\n<passage>\nglucose levels\n</passage>",
        },
    ]

    async def one(cache: ResponseCache) -> Reply:
        async with LLMClient(config(fake_server), cache=cache) as client:
            return await client.chat(judge, template_version="t1", validate=needs_digit)

    with ResponseCache(tmp_path / "c.sqlite") as cache:
        fake_server.control(faults=["nograde", "nograde", "nograde"])
        with pytest.raises(BadReplyError, match="not in the asked format"):
            asyncio.run(one(cache))
        assert fake_server.stats()["hits"] == 3 and len(cache) == 0  # a bad reply is not a result
        fake_server.reset()
        fake_server.control(faults=["nograde"])
        assert asyncio.run(one(cache)).content == "2"
        second = [json.loads(body) for body in fake_server.stats()["bodies"]][-1]
        assert second["messages"][-1]["content"].startswith("Your previous reply could not be used")
        assert len(cache) == 1 and asyncio.run(one(cache)).cached  # kept under the request as asked


@pytest.mark.parametrize(
    ("fault", "changed"),
    [("empty", lambda body: body["seed"] != 0), ("length", lambda body: body["max_tokens"] == 400)],
)
def test_empty_and_truncated_replies_are_asked_again_with_a_changed_request(
    fake_server: FakeServer, tmp_path: Path, fault: str, changed: Callable[[dict[str, Any]], bool]
) -> None:
    async def one(cache: ResponseCache) -> tuple[Reply, dict[str, Any]]:
        async with LLMClient(config(fake_server), cache=cache) as client:
            reply = await client.chat(ask(1), template_version="t1", max_tokens=200, seed=0)
            return reply, client.ledger.summary()

    with ResponseCache(tmp_path / "c.sqlite") as cache:
        fake_server.control(faults=[fault])
        reply, summary = asyncio.run(one(cache))
        assert reply.content.endswith("?") and reply.finish_reason == "stop"
        assert summary["bad_replies"] == 1 and summary["calls"] == 2 and summary["failures"] == 0
        bodies = [json.loads(body) for body in fake_server.stats()["bodies"]]
        assert len(bodies) == 2 and not changed(bodies[0]) and changed(bodies[1])
        fake_server.reset()
        fake_server.control(fail_all=fault)
        with ResponseCache(tmp_path / "other.sqlite") as fresh, pytest.raises(BadReplyError):
            asyncio.run(one(fresh))
        assert fake_server.stats()["hits"] == 3


def test_max_cost_stops_new_calls_and_in_flight_ones_finish(fake_server: FakeServer, tmp_path: Path) -> None:
    fake_server.control(delay=0.02, usage={"prompt_tokens": 1000, "completion_tokens": 0})
    cfg = config(fake_server, concurrency=2, price_prompt=1.0, max_cost=0.0045)  # 0.001 per call

    async def run(cache: ResponseCache) -> tuple[int, bool]:
        done, stopped = 0, False
        async with LLMClient(cfg, cache=cache) as client:
            for outcome in await asyncio.gather(
                *(client.chat(ask(i), template_version="t1") for i in range(20)), return_exceptions=True
            ):
                if isinstance(outcome, BudgetExceededError):
                    stopped = True
                else:
                    assert isinstance(outcome, Reply)
                    done += 1
        return done, stopped

    with ResponseCache(tmp_path / "c.sqlite") as cache:
        done, stopped = asyncio.run(run(cache))
        hits = fake_server.stats()["hits"]
        # a call is admitted only while spend + calls in flight (each estimated at the mean call so far,
        # 0.001) stay within 0.0045: the 5th would cross it, so the spend ends at 0.004, under the cap
        assert stopped and hits == 4 and done == hits == len(cache)


def test_api_key_is_sent_but_never_shown(fake_server: FakeServer, caplog: pytest.LogCaptureFixture) -> None:
    secret = "sk-test-VERY-SECRET-1234"
    fake_server.control(expect_key=secret)
    cfg = config(fake_server, api_key=secret)
    assert secret not in repr(cfg) and secret not in str(cfg.public_dict())
    caplog.set_level("DEBUG")
    (reply,) = asyncio.run(ask_many(cfg, 1))
    assert reply.content
    fake_server.control(faults=["401"])  # the server echoes the Authorization header in its error
    with pytest.raises(LLMError) as info:
        asyncio.run(ask_many(cfg, 1))
    assert "HTTP 401" in str(info.value) and secret not in str(info.value)
    assert secret not in caplog.text


def test_key_and_urls_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://a:1/v1, http://b:2")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai")
    monkeypatch.setenv("SYNTHRANK_LLM_API_KEY", "sk-synthrank")
    cfg = LLMConfig().resolved()
    assert cfg.base_urls == ["http://a:1/v1", "http://b:2/v1"]
    assert cfg.api_key == "sk-synthrank"
    assert normalize_base_url("https://api.openai.com/v1/") == "https://api.openai.com/v1"


def test_retry_after_parses_seconds_and_dates() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert parse_retry_after("soon") is None


def test_failing_endpoint_is_rested_and_load_goes_elsewhere(fake_server: FakeServer) -> None:
    broken = FakeServer()
    try:
        broken.control(fail_all="500")
        fake_server.control(delay=0.01)
        cfg = LLMConfig(
            base_urls=[broken.url, fake_server.url],
            model="fake",
            concurrency=4,
            rest_after=2,
            rest_seconds=60,
            **FAST,
        )
        replies = asyncio.run(ask_many(cfg, 20))
        assert len(replies) == 20
        assert fake_server.stats()["hits"] == 20
        assert broken.stats()["requests"] <= 4  # only the first wave: rested after two failures in a row
    finally:
        broken.close()


def test_least_outstanding_spreads_requests(fake_server: FakeServer) -> None:
    other = FakeServer()
    try:
        for server in (fake_server, other):
            server.control(delay=0.05)
        cfg = LLMConfig(base_urls=[fake_server.url, other.url], model="fake", concurrency=4, **FAST)
        asyncio.run(ask_many(cfg, 16))
        assert fake_server.stats()["hits"] == other.stats()["hits"] == 8
    finally:
        other.close()


def test_missing_usage_is_estimated_with_a_tokenizer(fake_server: FakeServer) -> None:
    fake_server.control(omit_usage=True)

    async def one() -> dict[str, object]:
        async with LLMClient(config(fake_server)) as client:
            await client.chat(ask(0), template_version="t1")
            return client.ledger.summary()

    summary = asyncio.run(one())
    assert summary["estimated_calls"] == 1
    assert summary["prompt_tokens"] > 5 and summary["completion_tokens"] > 3  # type: ignore[operator]


def test_offline_replays_the_cache_and_never_calls_the_server(
    fake_server: FakeServer, tmp_path: Path
) -> None:
    with ResponseCache(tmp_path / "cache.sqlite") as cache:
        recorded = asyncio.run(ask_many(config(fake_server), 2, cache))
        replayed = asyncio.run(ask_many(config(fake_server, offline=True), 2, cache))
        assert [r.content for r in replayed] == [r.content for r in recorded]
        with pytest.raises(LLMError, match="offline"):
            asyncio.run(ask_many(config(fake_server, offline=True), 3, cache))
    assert fake_server.stats()["requests"] == 2


def test_raw_text_completions_go_through_the_same_cache(fake_server: FakeServer, tmp_path: Path) -> None:
    async def complete(cfg: LLMConfig, cache: ResponseCache) -> Reply:
        async with LLMClient(cfg, cache=cache) as client:
            prompt = "Write 2 questions.\n<document>\nglucose insulin levels\n</document>"
            return await client.complete(prompt, template_version="raw-1", max_tokens=32)

    with ResponseCache(tmp_path / "cache.sqlite") as cache:
        first = asyncio.run(complete(config(fake_server), cache))
        again = asyncio.run(complete(config(fake_server), cache))
    assert first.content.count("?") == 2 and again.cached and again.content == first.content
    assert fake_server.stats()["hits"] == 1


def test_a_429_storm_fails_no_item_and_pauses_every_worker(fake_server: FakeServer) -> None:
    fake_server.control(faults=["429:0.2"] * 100)

    async def run() -> tuple[list[Reply], dict[str, Any]]:
        async with LLMClient(config(fake_server, concurrency=8, retries=2)) as client:
            replies = await asyncio.gather(*(client.chat(ask(i), template_version="t1") for i in range(20)))
            return list(replies), client.ledger.summary()

    replies, summary = asyncio.run(run())
    stats = fake_server.stats()
    # 100 429s are far more than 20 items x 2 retries: the count limit does not apply to them
    assert len(replies) == 20 and stats["rate_limited"] == 100 and stats["hits"] == 20
    assert summary["http_429"] == summary["retries"] == 100 and summary["failures"] == 0
    # the first wave's 429s pause all 8 workers for Retry-After: nobody knocks again meanwhile
    first = min(stats["arrivals"])
    assert not [t for t in stats["arrivals"] if first + 0.05 < t < first + 0.19]


def test_429s_are_bounded_by_the_retry_time_budget(fake_server: FakeServer) -> None:
    import time

    fake_server.control(fail_all="429:0.1")
    started = time.monotonic()
    with pytest.raises(LLMError, match="HTTP 429"):
        asyncio.run(ask_many(config(fake_server, retries=1, retry_budget_s=1.0), 1))
    # given up about when the 1 s budget ran out (plus start-up on a busy machine), not after 2 tries
    assert time.monotonic() - started < 4.0 and fake_server.stats()["requests"] >= 5


def test_backoff_wins_over_a_shorter_retry_after(fake_server: FakeServer) -> None:
    fake_server.control(faults=["429:0.01"])
    asyncio.run(ask_many(config(fake_server, backoff_base=0.3, backoff_max=1.0), 1))
    first, second = fake_server.stats()["arrivals"]
    assert second - first >= 0.3  # max(Retry-After 0.01, backoff 0.3), plus jitter


def test_a_bad_cached_reply_is_asked_again_online_and_replayed_offline(
    fake_server: FakeServer, tmp_path: Path
) -> None:
    from synthrank.llm.cache import cache_key

    body = {"model": "fake", "messages": ask(1), "max_tokens": 200}
    cut = {"choices": [{"message": {"role": "assistant", "content": "frag"}, "finish_reason": "length"}]}

    async def one(cfg: LLMConfig, cache: ResponseCache) -> Reply:
        async with LLMClient(cfg, cache=cache) as client:
            return await client.chat(ask(1), template_version="t1", max_tokens=200)

    with ResponseCache(tmp_path / "c.sqlite") as cache:
        cache.put(cache_key("chat", body, "t1"), "chat", cut)  # as an older version cached it
        replayed = asyncio.run(one(config(fake_server, offline=True), cache))
        assert replayed.content == "frag" and replayed.cached and fake_server.stats()["requests"] == 0
        fresh = asyncio.run(one(config(fake_server), cache))
        assert fresh.content.endswith("?") and not fresh.cached and fake_server.stats()["hits"] == 1
        assert asyncio.run(one(config(fake_server), cache)).cached  # the good reply replaced it


def test_the_usage_table_keeps_its_columns_in_a_log_file(capsys: pytest.CaptureFixture[str]) -> None:
    """`synthrank run > run.log`: rich would lay tables out in 80 columns and cut every cell short."""
    from synthrank.llm.ledger import Ledger

    ledger = Ledger()
    row = ledger.row("judge", "qwen2.5-coder-0.5b-instruct")
    row.calls, row.prompt_tokens = 351, 225_118
    ledger.print_table()
    err = capsys.readouterr().err
    for text in ("cache hits", "bad replies", "completion tok", "qwen2.5-coder-0.5b-instruct", "225118"):
        assert text in err, text
