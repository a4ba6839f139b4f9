"""What an LLM bill relies on, against the fault-injecting server: one budget per run folder, one
writer per run folder, bad replies retried and never stored, 429 storms absorbed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import synthrank
from llm_support import (  # noqa: F401
    PASSAGES,
    FakeServer,
    cli,
    fake_server_fixture,
    fake_server_process_fixture,
    make_run,
    read_lines,
)
from synthrank.errors import InputFormatError
from synthrank.llm.cache import ResponseCache
from synthrank.llm.config import LLMConfig
from synthrank.llm.ledger import read_spend
from synthrank.records import Passage, RunLayout
from synthrank.run.lock import RunLock, RunLockedError, read_holder
from synthrank.stages.filter import FilterConfig, run_filter
from synthrank.stages.generate import GenerateConfig, run_generate
from synthrank.stages.judge import JudgeConfig, run_judge

FAST: dict[str, Any] = {"backoff_base": 0.01, "backoff_max": 0.05, "timeout": 5.0}
# the fake server bills every call 1000 prompt tokens: 0.001 at price_prompt 1.0 per 1M
PRICED: dict[str, Any] = {"price_prompt": 1.0}
ONE_QUERY = GenerateConfig(n_queries=1, keyword_ratio=0.0)
ONE_AT_A_TIME = GenerateConfig(n_queries=1, keyword_ratio=0.0, workers=1)  # faults meet items in order


def llm(server: FakeServer, **overrides: object) -> LLMConfig:
    return LLMConfig(base_urls=[server.url], model="fake", **{**FAST, **overrides})  # type: ignore[arg-type]


def many_passages(n: int) -> list[Passage]:
    return [
        Passage(f"m{i}", f"dm{i}", f"{PASSAGES[i % 5].text} Record {i} covers variant{i}.") for i in range(n)
    ]


def generate_args(layout: RunLayout, server: FakeServer, *extra: str) -> list[str]:
    return ["generate", "--run", str(layout.root), "--base-url", server.url, "--model", "fake",
            "--n-queries", "1", "--keyword-ratio", "0", *extra]  # fmt: skip


# 1. max_cost is one budget per run folder


def test_max_cost_is_one_budget_over_re_runs_and_stages(fake_server: FakeServer, tmp_path: Path) -> None:
    fake_server.control(usage={"prompt_tokens": 1000, "completion_tokens": 0})
    layout = make_run(tmp_path / "run", many_passages(20))
    capped = llm(fake_server, concurrency=2, max_cost=0.0055, **PRICED)
    spends = []
    for _ in range(3):
        counts = run_generate(layout, ONE_QUERY, capped, print_summary=False)
        spends.append(counts["cost"])
        assert not counts["complete"] and counts["stop_reason"].startswith("max_cost reached: spent")
        assert counts["failures"] == 0  # refused calls are not failures
    total = sum(read_spend(layout.llm_ledger).values())
    # the first run stops before a call would cross the cap; the re-runs find it spent and call nobody
    assert spends[0] == pytest.approx(total) and spends[1:] == [0.0, 0.0]
    assert total <= 0.0055 and fake_server.stats()["hits"] == round(total / 0.001)

    run_filter(layout, FilterConfig(), print_summary=False)
    # another stage draws on the same budget: with generate's spend on the ledger, judge gets nothing
    from test_llm_stages import write_candidates

    write_candidates(layout, [q["query_id"] for q in read_lines(layout.queries)], 20)
    judge = run_judge(layout, JudgeConfig(top_m=1), capped, print_summary=False)
    assert not judge["complete"] and judge["calls"] == 0 and "max_cost reached" in judge["stop_reason"]
    more = run_judge(
        layout, JudgeConfig(top_m=1), llm(fake_server, max_cost=0.0085, **PRICED), print_summary=False
    )
    spend = read_spend(layout.llm_ledger)
    assert more["calls"] == 3 and spend["judge"] == pytest.approx(0.003) and sum(spend.values()) <= 0.0085


def test_cli_says_max_cost_reached_and_status_shows_the_run_spend(
    fake_server: FakeServer, tmp_path: Path
) -> None:
    fake_server.control(usage={"prompt_tokens": 1000, "completion_tokens": 0})
    layout = make_run(tmp_path / "run")
    args = generate_args(
        layout, fake_server, "--price-prompt", "1", "--max-cost", "0.0025", "--concurrency", "1"
    )
    for _ in range(2):
        proc = cli(args)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 1 and "Traceback" not in err
        assert "max_cost reached: spent 0.0020 of 0.0025" in err
    status = cli(["status", str(layout.root)])
    out, err = status.communicate(timeout=60)
    assert status.returncode == 0, err
    assert "re-runs" in out and out.count("0.0020") >= 2  # the generate row and the run's total


# 2. one writer per run folder; duplicate ids refused


def test_a_second_writer_is_refused_and_no_request_is_sent_twice(
    fake_server: FakeServer, tmp_path: Path
) -> None:
    layout = make_run(tmp_path / "run", many_passages(12))
    fake_server.control(delay=0.3)  # ~2 s of work: longer than the two processes' start-up differs
    procs = [cli(generate_args(layout, fake_server, "--concurrency", "2")) for _ in range(2)]
    results = [(proc, *proc.communicate(timeout=120)) for proc in procs]
    (holder, _, err1), (second, _, err2) = sorted(results, key=lambda r: r[0].returncode)
    assert holder.returncode == 0, err1
    assert second.returncode == 2 and f"pid {holder.pid}" in err2 and "synthrank generate" in err2
    assert "Traceback" not in err2
    assert all(n == 1 for n in fake_server.stats()["bodies"].values())  # 0 requests repeated
    assert len(read_lines(layout.raw_queries)) == 12


def test_a_lock_left_by_a_killed_process_is_taken_over(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    code = (
        "import sys, time; from synthrank.run.lock import RunLock; RunLock(sys.argv[1], 'holder').acquire(); "
        "print('locked', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    with pytest.raises(RunLockedError, match=f"pid {holder.pid} \\(`holder`"):
        RunLock(tmp_path).acquire()
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with RunLock(tmp_path, "next"):
        assert read_holder(tmp_path / ".synthrank.lock")["pid"] == os.getpid()
    assert (
        f"taking over the lock left by pid {holder.pid}" in caplog.text and "no longer running" in caplog.text
    )
    assert read_holder(tmp_path / ".synthrank.lock") == {}  # released


def test_readers_need_no_lock(tmp_path: Path) -> None:
    layout = make_run(tmp_path / "run")
    with RunLock(layout.root):
        status = cli(["status", str(layout.root)])
        _, err = status.communicate(timeout=60)
    assert status.returncode == 0, err


def test_a_file_with_duplicate_ids_is_refused_naming_file_and_line(
    fake_server: FakeServer, tmp_path: Path
) -> None:
    layout = make_run(tmp_path / "run")
    run_generate(layout, ONE_QUERY, llm(fake_server), print_summary=False)
    lines = layout.raw_queries.read_text().splitlines()
    layout.raw_queries.write_text("\n".join([*lines, lines[1]]) + "\n")  # as a second writer would
    repeated = json.loads(lines[1])["query_id"]
    with pytest.raises(
        InputFormatError, match=rf"queries.raw.jsonl:6: duplicate query_id '{repeated}' \(first on line 2\)"
    ):
        run_filter(layout, FilterConfig(), print_summary=False)
    proc = cli(["filter-queries", "--run", str(layout.root)])
    _, err = proc.communicate(timeout=60)
    assert (
        proc.returncode == 2 and "queries.raw.jsonl:6: duplicate query_id" in err and "Traceback" not in err
    )


# 3. bad replies are not results


def test_empty_replies_are_asked_again_not_stored(fake_server: FakeServer, tmp_path: Path) -> None:
    layout = make_run(tmp_path / "run", many_passages(20))
    fake_server.control(faults=["empty", "ok", "ok"] * 7)  # 30 % of the first replies are empty
    counts = run_generate(layout, ONE_AT_A_TIME, llm(fake_server, concurrency=1), print_summary=False)
    raw = read_lines(layout.raw_queries)
    assert (
        counts["complete"] and counts["empty_slots"] == 0 and len(raw) == 20 and all(q["text"] for q in raw)
    )
    assert counts["bad_replies"] == 7 and counts["calls"] == 27 and counts["failed_passages"] == 0


def test_truncated_replies_are_asked_again_with_more_tokens(fake_server: FakeServer, tmp_path: Path) -> None:
    layout = make_run(tmp_path / "run")
    fake_server.control(faults=["length", "ok"] * 5)  # every first reply is cut short
    counts = run_generate(layout, ONE_AT_A_TIME, llm(fake_server, concurrency=1), print_summary=False)
    assert counts["complete"] and counts["bad_replies"] == 5
    max_tokens = sorted(json.loads(body)["max_tokens"] for body in fake_server.stats()["bodies"])
    assert max_tokens == [200] * 5 + [400] * 5
    assert all(q["text"].endswith("?") for q in read_lines(layout.raw_queries))  # no fragments kept


def test_unparsable_judge_replies_fail_the_stage_and_a_re_run_retries_them(
    fake_server: FakeServer, tmp_path: Path
) -> None:
    from test_llm_stages import write_candidates

    layout = make_run(tmp_path / "run")
    run_generate(layout, ONE_QUERY, llm(fake_server), print_summary=False)
    run_filter(layout, FilterConfig(), print_summary=False)
    kept = [q["query_id"] for q in read_lines(layout.queries)]
    write_candidates(layout, kept, len(PASSAGES), k=1)
    fake_server.reset()
    fake_server.control(fail_all="nograde")
    counts = run_judge(layout, JudgeConfig(top_m=0), llm(fake_server), print_summary=False)
    assert not counts["complete"] and "max_failure_rate" in counts["stop_reason"]
    assert counts["failed"] == len(kept) and counts["bad_replies"] == 3 * len(kept) and counts["judged"] == 0
    assert not layout.judgments.exists() or not read_lines(layout.judgments)
    # each retry changed the request (a repair turn), none resent the identical body
    assert all(n == 1 for n in fake_server.stats()["bodies"].values())
    fake_server.reset()
    again = run_judge(layout, JudgeConfig(top_m=0), llm(fake_server), print_summary=False)
    assert again["complete"] and again["judged"] == len(kept) and again["calls"] == len(kept)


def test_failures_within_max_failure_rate_complete_the_stage(fake_server: FakeServer, tmp_path: Path) -> None:
    layout = make_run(tmp_path / "run", many_passages(20))
    fake_server.control(faults=["empty"] * 3)  # one passage gets three empty replies in a row
    lenient = run_generate(
        layout, ONE_AT_A_TIME, llm(fake_server, concurrency=1, max_failure_rate=0.1), print_summary=False
    )
    assert lenient["complete"] and lenient["failed_passages"] == 1 and lenient["failures"] == 1
    assert len(read_lines(layout.raw_queries)) == 19
    retried = run_generate(layout, ONE_QUERY, llm(fake_server), print_summary=False)
    assert retried["complete"] and retried["generated_passages"] == 1 and retried["already_done"] == 19


def test_an_item_that_always_fails_does_not_fail_the_resumed_stage(
    fake_server: FakeServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # the share of failures is over the stage's items, not over the one item a re-run tries
    layout = make_run(tmp_path / "run", many_passages(20))
    cfg = llm(fake_server, concurrency=1, max_failure_rate=0.1)
    fake_server.control(faults=["empty"] * 3)
    assert run_generate(layout, ONE_AT_A_TIME, cfg, print_summary=False)["complete"]
    fake_server.control(faults=["empty"] * 3)
    again = run_generate(layout, ONE_AT_A_TIME, cfg, print_summary=False)
    assert again["complete"] and again["stop_reason"] is None
    assert again["already_done"] == 19 and again["failed_passages"] == 1
    assert "1 of 20 item(s) failed" in caplog.text
    fake_server.control(faults=["empty"] * 3)
    strict = run_generate(layout, ONE_AT_A_TIME, llm(fake_server, max_failure_rate=0.01), print_summary=False)
    assert not strict["complete"] and "1 of 20 item(s) failed" in strict["stop_reason"]  # 5 % > 1 %


# 4. 429 storms


def test_a_storm_of_100_429s_fails_no_item_and_is_counted(fake_server: FakeServer, tmp_path: Path) -> None:
    layout = make_run(tmp_path / "run", many_passages(20))
    fake_server.control(faults=["429:0.2"] * 100)
    counts = run_generate(layout, ONE_QUERY, llm(fake_server, concurrency=8), print_summary=False)
    assert counts["complete"] and counts["failed_passages"] == 0 and len(read_lines(layout.raw_queries)) == 20
    assert counts["http_429"] == 100 and counts["retries"] == 100 and counts["failures"] == 0


# 6. Ctrl-C keeps the replies in flight


GRACE_NOTICE = "stopping: waiting up to"


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} after {timeout:g}s")
        time.sleep(0.05)


def interrupt_with_calls_held(
    server: FakeServer, layout: RunLayout, err: Path, *extra: str
) -> subprocess.Popen[str]:
    """`synthrank generate` with 3 requests held by the server, sent SIGINT; returns once it said it waits."""
    server.control(hold=True)
    proc = cli(generate_args(layout, server, "--concurrency", "3", *extra), stderr=err)
    wait_for(lambda: server.stats()["in_flight"] == 3, "3 requests in flight")
    proc.send_signal(signal.SIGINT)
    wait_for(lambda: GRACE_NOTICE in err.read_text(), "notice of the grace period")
    return proc


def cached_replies(layout: RunLayout) -> int:
    with ResponseCache(layout.llm_cache) as cache:
        return len(cache)


def test_ctrl_c_keeps_the_replies_in_flight_and_a_re_run_does_not_pay_for_them(
    fake_server: FakeServer, tmp_path: Path
) -> None:
    layout = make_run(tmp_path / "run", many_passages(12))
    err = tmp_path / "stderr.txt"
    # a long grace, so that replies released after the notice arrive within it however slow the host
    proc = interrupt_with_calls_held(fake_server, layout, err, "--interrupt-grace", "60")
    fake_server.control(hold=False)
    assert proc.wait(timeout=60) == 130, err.read_text()
    assert "waiting up to 60s for 3 LLM call(s) in flight" in err.read_text()
    assert "interrupted; finished work is kept" in err.read_text() and "Traceback" not in err.read_text()
    # the 3 replies that arrived after Ctrl-C are cached, and no further call was sent meanwhile
    assert fake_server.stats()["hits"] == 3 and fake_server.stats()["requests"] == 3
    assert cached_replies(layout) == 3

    rerun = cli(generate_args(layout, fake_server, "--concurrency", "3"))
    _, rerun_err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, rerun_err
    assert all(n == 1 for n in fake_server.stats()["bodies"].values())  # none of the 3 was paid twice
    assert fake_server.stats()["hits"] == 12 and len(read_lines(layout.raw_queries)) == 12


def test_ctrl_c_gives_up_replies_slower_than_the_grace(fake_server: FakeServer, tmp_path: Path) -> None:
    layout = make_run(tmp_path / "run", many_passages(6))
    err = tmp_path / "stderr.txt"
    proc = interrupt_with_calls_held(fake_server, layout, err)  # the default grace: 2 s
    # the server never answers: the process ends on its own once the grace period is over
    assert proc.wait(timeout=60) == 130, err.read_text()
    assert "waiting up to 2s for 3 LLM call(s)" in err.read_text() and "Traceback" not in err.read_text()
    assert fake_server.stats()["hits"] == 0 and cached_replies(layout) == 0


def test_a_second_ctrl_c_stops_at_once(fake_server: FakeServer, tmp_path: Path) -> None:
    layout = make_run(tmp_path / "run", many_passages(6))
    err = tmp_path / "stderr.txt"
    proc = interrupt_with_calls_held(fake_server, layout, err, "--interrupt-grace", "600")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130, err.read_text()  # long before the 600 s grace ends
    assert "interrupted; finished work is kept" in err.read_text() and "Traceback" not in err.read_text()
    assert fake_server.stats()["hits"] == 0


# 7. smaller checks: the pre-flight probe, config and JSON messages


def write_config(tmp_path: Path, base_url: str, model: str = "fake") -> Path:
    path = tmp_path / "synthrank.toml"
    path.write_text(f'[run]\ndir = "run"\n\n[llm]\nbase_urls = ["{base_url}"]\nmodel = "{model}"\n')
    return path


@pytest.mark.parametrize(
    ("control", "model", "message"),
    [
        ({"models_status": 401}, "fake", "the server refused the key \\(HTTP 401"),
        ({"models_status": 403}, "fake", "the server refused the key \\(HTTP 403"),
        ({"models_status": 404}, "fake", "HTTP 404, no OpenAI-compatible API there"),
        ({"models": ["qwen", "llama"]}, "fake", "no such model 'fake' .*it serves qwen, llama"),
        ({"models": ["qwen"]}, "fake", None),  # one model served: llama.cpp answers to any name
        ({"models": ["qwen", "llama"]}, "", "model is not set and .* serves several \\(qwen, llama\\)"),
        ({"models": ["qwen"]}, "", None),  # warned: cached as 'default'
        ({}, "fake", None),
    ],
)
def test_the_pre_flight_probe_checks_key_and_model(
    fake_server: FakeServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    control: dict[str, Any],
    model: str,
    message: str | None,
) -> None:
    from synthrank.errors import ConfigError
    from synthrank.run.runner import check_llm_endpoints
    from synthrank.run.settings import load_config

    fake_server.control(**control)
    config = load_config(write_config(tmp_path, fake_server.url, model))
    if message is None:
        check_llm_endpoints(config)
        assert ("cached as 'default'" in capsys.readouterr().err) == (model == "")
    else:
        with pytest.raises(ConfigError, match=message):
            check_llm_endpoints(config)


def test_a_bad_base_url_scheme_names_the_file_and_key(tmp_path: Path) -> None:
    from synthrank.errors import ConfigError
    from synthrank.run.settings import load_config

    path = write_config(tmp_path, "ftp://gpu1:8000/v1")
    with pytest.raises(
        ConfigError, match=r"synthrank.toml:\d+.*base_urls.*'ftp://gpu1:8000/v1' is not an http"
    ):
        load_config(path)


def test_a_json_error_message_ends_in_its_position(tmp_path: Path) -> None:
    from synthrank.records import read_jsonl

    path = tmp_path / "queries.jsonl"
    path.write_text('{"query_id": "q1\tx"}\n')
    with pytest.raises(InputFormatError) as info:
        list(read_jsonl(path, synthrank.records.Query))
    assert str(info.value).endswith("queries.jsonl:1: invalid JSON: Invalid control character at column 17")
