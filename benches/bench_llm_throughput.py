"""LLM supervision per minute against a real local server: kept queries and graded pairs, before vs after.

Before: the quality recipe's settings (one query per passage; the pointwise judge on full passages).
After: three queries per passage in one call (`[generate] n_queries = 3`, `one_call = true`), and the
judge on passages cut to `--passage-tokens` with the prefix-friendly prompts, pointwise and listwise.
Every configuration gets its own run folder and request cache, so nothing is answered from a cache;
the judge configurations grade the very same (query, passage) pairs: each query's source passage
and its BM25 top-m over the corpus (BM25 rather than the bi-encoder keeps torch out of the bench).
The filter's keep rate, the grade distribution and the agreement with the full-passage pointwise
grades are printed beside the rates, with the load average (the rates are only comparable within
one run on a shared machine), and the work that decides the time on a CPU server: prompt tokens the
server evaluated (llama.cpp's `timings.prompt_n`: what its prefix cache did not cover) and tokens
it generated, with the rate they give at `--idle-rates` (this project's 2 idle cores: 155 prompt
and 47 generated tokens per second).

`--count-judge WORKDIR` sends no generation request: it renders each judge configuration's
requests for a finished run's pairs, tokenizes them with the server's own chat template
(`/apply-template`, `/tokenize`), and counts the tokens a one-slot prefix cache leaves to evaluate
(listwise replies counted as compact JSON); budgets to try are given with `--passage-tokens`.

    synthrank serve-llm --model qwen0.5b --port 8089 &
    python benches/bench_llm_throughput.py --base-url http://127.0.0.1:8089/v1

Sized for 2 busy CPU cores: under 12 minutes with the defaults (24 passages, 10 queries x 4 pairs).
Targets (issue 16): >= 2.5x kept queries per minute, >= 1.5x graded pairs per minute.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sqlite3
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from synthrank.llm.config import LLMConfig
from synthrank.records import Judgment, Passage, Query, RunLayout, read_jsonl, write_jsonl_atomic
from synthrank.stages.evaluate.datasets import bm25_candidates
from synthrank.stages.filter import FilterConfig, run_filter
from synthrank.stages.generate import GenerateConfig, run_generate
from synthrank.stages.ingest.ingest import IngestConfig, run_ingest
from synthrank.stages.judge import JudgeConfig, run_judge
from synthrank.stages.sample import SampleConfig, run_sample

SLICE = Path(__file__).resolve().parents[1] / "python" / "synthrank" / "demo" / "medquad-slice.tar.gz"
BEFORE_GENERATE = GenerateConfig(n_queries=1, keyword_ratio=0.3, max_tokens=64, temperature=0.0)
AFTER_GENERATE = GenerateConfig(
    n_queries=3, keyword_ratio=0.3, max_tokens=160, temperature=0.0, one_call=True
)


def copy_corpus(base: RunLayout, root: Path) -> RunLayout:
    layout = RunLayout(root)
    for path in (base.passages, base.passage_arrays, base.split, base.sampled_ids):
        target = layout.root / path.relative_to(base.root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    return layout


def token_work(layout: RunLayout) -> tuple[int, int]:
    """Prompt tokens evaluated and tokens generated over the run's replies (llama.cpp `timings`)."""
    with sqlite3.connect(layout.llm_cache) as db:
        replies = [json.loads(row[0]) for row in db.execute("SELECT response FROM responses")]
    timings = [r.get("timings") or {} for r in replies]
    return sum(int(t.get("prompt_n", 0)) for t in timings), sum(int(t.get("predicted_n", 0)) for t in timings)


def idle_rate(units: int, tokens: tuple[int, int], rates: tuple[float, float]) -> float:
    """Units per minute if only the (evaluated prompt, generated) tokens took time, at `rates`."""
    seconds = tokens[0] / rates[0] + tokens[1] / rates[1]
    return round(60 * units / seconds, 2) if seconds else 0.0


def generate(base: RunLayout, root: Path, cfg: GenerateConfig, llm: LLMConfig) -> dict[str, Any]:
    layout = copy_corpus(base, root)
    counts = run_generate(layout, cfg, llm, print_summary=False)
    filtered = run_filter(layout, FilterConfig(), print_summary=False)
    raw = counts["queries"] + counts["empty_slots"]
    return {
        "calls": counts["calls"],
        "seconds": counts["seconds"],
        "raw_queries": raw,
        "kept": filtered["kept"],
        "keep_rate": round(filtered["kept"] / max(1, raw), 3),
        "kept_per_minute": round(60 * filtered["kept"] / counts["seconds"], 2),
        "tokens": token_work(layout),
        "layout": layout,
    }


def write_candidates(layout: RunLayout, queries: list[Query], passages: list[Passage], k: int) -> None:
    """BM25 top-k over the whole corpus per query, in retrieve's `candidates.npz` format."""
    texts = {p.passage_id: p.reranker_text for p in passages}
    found = bm25_candidates({q.query_id: q.text for q in queries}, texts, k)
    row_of = {p.passage_id: i for i, p in enumerate(passages)}
    ids = np.full((len(queries), k), -1, dtype=np.int64)
    for i, query in enumerate(queries):
        rows = [row_of[pid] for pid in found[query.query_id]]
        ids[i, : len(rows)] = rows
    np.savez(
        layout.candidates,
        query_ids=np.array([q.query_id for q in queries]),
        ids=ids,
        scores=np.zeros(ids.shape, dtype=np.float32),
    )


def judge(base: RunLayout, root: Path, cfg: JudgeConfig, llm: LLMConfig) -> dict[str, Any]:
    layout = RunLayout(root)
    shutil.copytree(base.root, root, ignore=shutil.ignore_patterns("llm_cache.sqlite*", "judgments.jsonl"))
    counts = run_judge(layout, cfg, llm, print_summary=False)
    grades = {(j.query_id, j.passage_id): j.grade for j in read_jsonl(layout.judgments, Judgment)}
    graded = sum(g is not None for g in grades.values())
    return {
        "calls": counts["calls"],
        "seconds": counts["seconds"],
        "graded": graded,
        "graded_per_minute": round(60 * graded / counts["seconds"], 2),
        "grades": dict(sorted(Counter(str(g) for g in grades.values()).items())),
        "prompt_tokens": counts["prompt_tokens"],
        "passages_cut": counts.get("passages_cut", 0),
        "tokens": token_work(layout),
        "by_pair": grades,
    }


def count_judge(
    work: Path, configs: dict[str, JudgeConfig], base_url: str, rates: tuple[float, float]
) -> None:
    """Tokens each judge configuration would make a one-slot llama.cpp server evaluate and generate."""
    import httpx

    from synthrank.stages.judge import JudgePrompt, ListPrompt, cut_passages, group_lists, plan_pairs

    base = RunLayout(work / "judge-base")
    passages = list(read_jsonl(base.passages, Passage))
    queries = list(read_jsonl(base.queries, Query))
    server = httpx.Client(base_url=base_url.removesuffix("/v1"), timeout=60)

    def tokenize(text: str) -> list[int]:
        return list(server.post("/tokenize", json={"content": text}).json()["tokens"])

    def prompt_tokens(messages: list[dict[str, str]]) -> list[int]:
        return tokenize(server.post("/apply-template", json={"messages": messages}).json()["prompt"])

    header = f"{'calls':>5} {'pairs':>5} {'evaluated':>9} {'generated':>9} {'idle/min':>8}"
    print(f"\n{'judge (counted, not sent)':44} {header}")
    for name, cfg in configs.items():
        pairs, _ = plan_pairs(queries, passages, base.candidates, cfg)
        if cfg.passage_max_tokens is not None:
            cut, _ = cut_passages(
                {p.passage.passage_id: p.passage for p in pairs}.values(), cfg.passage_max_tokens, None
            )
            pairs = [dataclasses.replace(p, passage=cut[p.passage.passage_id]) for p in pairs]
        if cfg.mode == "pointwise":
            prompt = JudgePrompt.load(cfg)
            requests = [
                prompt_tokens(prompt.messages(p.query, p.passage, cfg.max_passage_chars)) for p in pairs
            ]
            generated = 2 * len(requests)  # the grade and the end of turn
        else:
            lists = group_lists(pairs, cfg.list_size)
            listwise = ListPrompt.load(cfg)
            requests = [
                prompt_tokens(
                    listwise.messages(pairs[r[0]].query, [pairs[i].passage for i in r], cfg.max_passage_chars)
                )
                for r in lists
            ]
            generated = sum(len(tokenize(json.dumps({"grades": [0] * len(r)}))) + 1 for r in lists)
        evaluated, previous = 0, list[int]()
        for tokens in requests:  # a one-slot cache keeps the longest prefix shared with the last prompt
            shared = next(
                (i for i, (a, b) in enumerate(zip(previous, tokens, strict=False)) if a != b),
                min(len(previous), len(tokens)),
            )
            evaluated += len(tokens) - min(shared, len(tokens) - 1)
            previous = tokens
        rate = idle_rate(len(pairs), (evaluated, generated), rates)
        print(f"{name:44} {len(requests):5} {len(pairs):5} {evaluated:9} {generated:9} {rate:8.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base-url", default="http://127.0.0.1:8089/v1")
    parser.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    parser.add_argument("--passages", type=int, default=24, help="sampled passages (fixed by the seed)")
    parser.add_argument(
        "--judge-queries", type=int, default=10, help="queries whose pairs every judge grades"
    )
    parser.add_argument("--top-m", type=int, default=3, help="candidates per query besides the source")
    parser.add_argument(
        "--passage-tokens", type=int, nargs="+", default=[128], help="the judge's passage budget(s) (after)"
    )
    parser.add_argument(
        "--idle-rates",
        type=float,
        nargs=2,
        default=[155.0, 47.0],
        help="prompt, generated tokens/s when idle",
    )
    parser.add_argument("--count-judge", action="store_true", help="count an earlier run's judge tokens only")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, help="keep the run folders here (default: a temp folder)")
    parser.add_argument("--out", type=Path, help="also write the results as JSON")
    args = parser.parse_args()
    rates = (args.idle_rates[0], args.idle_rates[1])
    before = JudgeConfig(top_m=args.top_m)
    configs = {"before: pointwise, full passage": before}
    for tokens in args.passage_tokens:
        budget = replace(before, passage_max_tokens=tokens)
        configs[f"after: pointwise, {tokens}-token passage"] = budget
        configs[f"after: listwise, {tokens}-token passage"] = replace(
            budget, mode="listwise", list_size=args.top_m + 1
        )
    if args.count_judge:
        if args.workdir is None:
            parser.error("--count-judge needs the --workdir of a finished run")
        count_judge(args.workdir, configs, args.base_url, rates)
        return

    work = args.workdir or Path(tempfile.mkdtemp(prefix="synthrank-llm-bench-"))
    llm = LLMConfig(base_urls=[args.base_url], model=args.model, concurrency=args.concurrency, timeout=300.0)
    base = RunLayout(work / "corpus")
    started = time.monotonic()
    load_start = round(os.getloadavg()[0], 2)
    for stale in [*work.glob("gen-*"), *work.glob("judge-*")]:  # their caches would answer the calls
        shutil.rmtree(stale)
    if not (base.passages.is_file() and base.passage_arrays.is_file() and base.split.is_file()):
        run_ingest(base, IngestConfig(format="medquad", heldout_fraction=0.2, heldout_group="focus"), SLICE)
    run_sample(base, SampleConfig(num_passages=args.passages, seed=args.seed))

    results: dict[str, Any] = {"generate": {}, "judge": {}}
    gen = results["generate"]
    gen["before"] = generate(base, work / "gen-before", BEFORE_GENERATE, llm)
    gen["after"] = generate(base, work / "gen-after", AFTER_GENERATE, llm)
    print(f"\nLLM throughput, {args.model} at {args.base_url}, {args.passages} passages (seed {args.seed})")
    header = f"{'calls':>5} {'s':>7} {'raw':>4} {'kept':>4} {'keep':>5} {'kept/min':>9}"
    print(f"{'generate':44} {header} tokens, idle/min")
    for name, row in gen.items():
        line = f"{name:44} {row['calls']:5} {row['seconds']:7.1f} {row['raw_queries']:4} {row['kept']:4}"
        idle = idle_rate(row["kept"], row["tokens"], rates)
        print(f"{line} {row['keep_rate']:5.2f} {row['kept_per_minute']:9.2f} {row['tokens']}, {idle}")
    gain = gen["after"]["kept_per_minute"] / gen["before"]["kept_per_minute"]
    print(f"kept queries per minute: {gain:.2f}x", flush=True)

    passages = list(read_jsonl(base.passages, Passage))
    queries = list(read_jsonl(gen["before"]["layout"].queries, Query))[: args.judge_queries]
    pairs_base = copy_corpus(base, work / "judge-base")
    write_jsonl_atomic(pairs_base.queries, queries)
    write_candidates(pairs_base, queries, passages, args.top_m)

    header = f"{'calls':>5} {'s':>7} {'pairs':>5} {'pairs/min':>9} {'agree':>5}"
    print(f"\n{'judge':44} {header}  grades; tokens, idle/min")
    reference: dict[tuple[str, str], int | None] = {}
    for index, (name, cfg) in enumerate(configs.items()):
        row = results["judge"][name] = judge(pairs_base, work / f"judge-{index}", cfg, llm)
        reference = reference or row["by_pair"]
        same = [row["by_pair"].get(pair) == grade for pair, grade in reference.items() if grade is not None]
        row["agreement_with_before"] = agree = round(sum(same) / max(1, len(same)), 3)
        rate = row["graded_per_minute"]
        line = f"{name:44} {row['calls']:5} {row['seconds']:7.1f} {row['graded']:5} {rate:9.2f} {agree:5.2f}"
        idle = idle_rate(row["graded"], row["tokens"], rates)
        print(f"{line}  {row['grades']}; {row['tokens']}, {idle}", flush=True)
    base_rate = results["judge"]["before: pointwise, full passage"]["graded_per_minute"]
    for name, row in list(results["judge"].items())[1:]:
        print(f"graded pairs per minute, {name}: {row['graded_per_minute'] / base_rate:.2f}x")
    results["seconds_total"] = round(time.monotonic() - started, 1)
    results["load_average_1m"] = {"start": load_start, "end": round(os.getloadavg()[0], 2)}
    load = results["load_average_1m"]
    print(f"total {results['seconds_total']:.0f} s; load average {load['start']} -> {load['end']}; in {work}")
    if args.out:
        for row in [*gen.values(), *results["judge"].values()]:
            row.pop("layout", None)
            row.pop("by_pair", None)
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
