"""Before paying for a run: `synthrank plan` (what it will do and cost) and `run --pilot N` (its yield).

The plan renders the real prompt templates with the sampled passages (or, before ingest, with
passages of the full token budget), counts their tokens, and prices them at the `[llm]` prices.
Times use the seconds per call measured by earlier runs of the same folder (its pilot included),
else `DEFAULT_SECONDS_PER_CALL`, and say which. Nothing is called and nothing is trained.

The pilot runs generate → filter → embed → index → retrieve → judge → mine on N of the run's
sampled passages in `RUN/pilot/`, sharing the run's LLM cache (the full run pays for none of those
calls again), and reports the yield with the setting to change when it is low.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from synthrank.console import table_console
from synthrank.errors import EmptyOutputError
from synthrank.llm.config import token_cost
from synthrank.records import Passage, Query, RunLayout, count_lines, read_jsonl, write_text_atomic
from synthrank.run.manifest import Manifest, output_sizes, read_manifest, write_manifest
from synthrank.run.pipeline import STAGES, plan, run_pipeline, stage_fingerprints
from synthrank.run.settings import PipelineConfig

if TYPE_CHECKING:
    from synthrank.stages.generate import GenerateConfig
    from synthrank.stages.judge import JudgeConfig

# A local 0.5B model on llama.cpp (2 CPU cores) answers a generate call in seconds and a one-token
# judge call in about one; a GPU server is 10-100x faster. Replaced by measured rates when known.
DEFAULT_SECONDS_PER_CALL = {"generate": 4.0, "judge": 1.0}
DEFAULT_QUERY_TOKENS = 16  # completion tokens per generated query (measured replies replace it)
DEFAULT_JUDGE_COMPLETION = 2  # a grade and an end token
DEFAULT_FILTER_KEEP = 0.9  # share of generated queries the filter keeps (measured replaces it)
SMALL_CORPUS_BYTES = 64 << 20  # below this, plan bounds the passage count by the corpus's size on disk
CHAT_OVERHEAD_TOKENS = 4  # role markers per chat message that the rendered text does not show
MAX_RENDERED = 300  # passages rendered for the token count; more are extrapolated from them
LLM_STAGES = ("generate", "judge")


@dataclass
class Estimate:
    stage: str
    runs: bool
    summary: str
    calls: float = 0.0
    prompt_tokens: float = 0.0
    completion_tokens: float = 0.0
    cost: float = 0.0
    seconds: float | None = None
    rate: str = ""  # where the seconds per call come from


def _measured(layout: RunLayout, stage: str) -> dict[str, Any] | None:
    """Counts of the stage's last finished run in this folder or its pilot, if it made calls."""
    for root in (layout.root, layout.root / "pilot"):
        manifest = read_manifest(RunLayout(root), stage)
        if manifest is not None and manifest.status == "done" and manifest.counts.get("calls"):
            return manifest.counts
    return None


def _sample_passages(config: PipelineConfig, steps: dict[str, bool]) -> tuple[int, list[Passage], str]:
    """(passages that get queries, a few of them to render, how that was known)."""
    layout = RunLayout(config.run.dir)
    wanted = config.sample.num_passages
    if not steps["sample"] and layout.sampled_ids.is_file():
        ids = [x for x in layout.sampled_ids.read_text(encoding="utf-8").split() if x]
        keep = set(random.Random(0).sample(ids, min(len(ids), MAX_RENDERED)))
        shown = [p for p in read_jsonl(layout.passages, Passage) if p.passage_id in keep]
        return len(ids), shown, f"the {len(ids)} sampled passages"
    if not steps["ingest"] and layout.passages.is_file():
        with open(layout.passages, "rb") as fh:
            total = sum(1 for _ in fh)
        rows = set(random.Random(0).sample(range(total), min(total, MAX_RENDERED)))
        shown = [p for i, p in enumerate(read_jsonl(layout.passages, Passage)) if i in rows]
        n = min(wanted, total)
        return n, shown, f"after ingest: {n} of {total} passages (at most; sampling not run yet)"
    # before ingest: passages of the full token budget, an upper bound on their length
    budget = config.corpus.passage_tokens
    text = " ".join(["passage"] * budget)
    how = f"before ingest: {wanted} passages of at most {budget} tokens each (an upper bound)"
    bound = _passages_on_disk(config)
    if bound is not None and bound[0] < wanted:
        wanted = bound[0]
        how = (
            f"before ingest: about {wanted} training passages, estimated from the corpus's {bound[1]} "
            f"on disk, of at most {budget} tokens each (an upper bound)"
        )
    shown = [Passage(f"estimate-{i}", "doc", text) for i in range(min(wanted, 50))]
    return wanted, shown, how


def _passages_on_disk(config: PipelineConfig) -> tuple[int, str] | None:
    """(training passages a small plain-text corpus can give at most, its size), or None when its
    size on disk says nothing (compressed or binary formats), it is large, or it cannot be read."""
    from synthrank.errors import SynthrankError
    from synthrank.stages.ingest.ingest import resolve_format
    from synthrank.stages.ingest.readers import text_files

    path, corpus = config.corpus.path, config.corpus
    if path is None:
        return None
    try:
        fmt = resolve_format(path, corpus)
        if fmt in ("jsonl", "csv", "tsv"):
            files = [path]
        elif fmt == "text":
            files = text_files(path)
        elif fmt == "beir":
            files = [path / "corpus.jsonl"]
        else:
            return None
        size = sum(f.stat().st_size for f in files)
        if size > SMALL_CORPUS_BYTES:  # one read pass to count documents is not worth it: no bound
            return None
        documents = len(files) if fmt == "text" else sum(count_lines(f) for f in files)
    except (OSError, SynthrankError):
        return None
    # a WordPiece token takes >= ~3 bytes of text; a document of t tokens gives at most
    # t / stride + 1 passages (consecutive ones share `overlap` tokens)
    stride = max(1, corpus.passage_tokens - corpus.overlap)
    passages = size // (3 * stride) + documents
    train = max(1, round(passages * (1 - corpus.heldout_fraction)))
    return train, f"{size / 1e6:.2f} MB" if size >= 1e5 else f"{size / 1e3:.0f} KB"


def _generate_estimate(
    config: PipelineConfig, passages: list[Passage], n: int, count: Any, cfg: GenerateConfig | None = None
) -> tuple[float, ...]:
    """(calls, prompt tokens, completion tokens) for n passages, from the rendered `passages`."""
    from synthrank.llm.prompts import load_examples, load_template
    from synthrank.stages import generate as g

    cfg = cfg or config.generate
    one_call = bool(getattr(cfg, "one_call", False))
    template = load_template(g.MIXED_TEMPLATE if one_call else g.TEMPLATE, cfg.prompts)
    examples = (
        load_examples(g.EXAMPLES, cfg.few_shot_file, cfg.prompts, required={"document": str})
        if cfg.few_shot
        else []
    )
    calls = prompt = 0
    for passage in passages:
        styles = g.plan_styles(passage.passage_id, cfg.n_queries, cfg.keyword_ratio, cfg.seed)
        if one_call:
            requests = [g.build_mixed_messages(template, passage, styles, examples, cfg)]
        else:
            requests = [
                g.build_messages(template, passage, style, styles.count(style), examples, cfg)
                for style in g.STYLES
                if style in styles
            ]
        calls += len(requests)
        prompt += sum(count(m["content"]) + CHAT_OVERHEAD_TOKENS for r in requests for m in r)
    scale = n / max(1, len(passages))
    measured = _measured(RunLayout(config.run.dir), "generate")
    if measured:
        per_call = measured["completion_tokens"] / measured["calls"]
    else:
        per_call = min(
            cfg.max_tokens, DEFAULT_QUERY_TOKENS * cfg.n_queries / max(1.0, calls / max(1, len(passages)))
        )
    return calls * scale, prompt * scale, calls * scale * per_call


def _judge_estimate(
    config: PipelineConfig, passages: list[Passage], queries: float, count: Any, pairs: float | None = None
) -> tuple[float, ...]:
    """(calls, prompt tokens, completion tokens) for grading `queries` queries' candidates: `pairs`
    per query, else as measured, else the most top_m allows."""
    from synthrank.stages.judge import JudgePrompt

    cfg = config.judge
    layout = RunLayout(config.run.dir)
    pairs_per_query = pairs if pairs is not None else _measured_pairs_per_query(layout, cfg)
    if pairs_per_query is None:  # at most: the source is often among the top_m
        pairs_per_query = cfg.top_m + (1 if cfg.include_source else 0)
    query_text = "what are the common symptoms and treatments of this condition"  # ~16 tokens
    if layout.queries.is_file():
        texts = [q.text for _, q in zip(range(MAX_RENDERED), read_jsonl(layout.queries, Query), strict=False)]
        query_text = max(texts, key=len) if texts else query_text
    prompt_obj = JudgePrompt.load(cfg)
    tokens = [
        sum(
            count(m["content"]) + CHAT_OVERHEAD_TOKENS
            for m in prompt_obj.messages(query_text, p, cfg.max_passage_chars)
        )
        for p in passages[:100]
    ]
    per_pair = sum(tokens) / max(1, len(tokens))
    measured = _measured(layout, "judge")
    completion = measured["completion_tokens"] / measured["calls"] if measured else DEFAULT_JUDGE_COMPLETION
    calls = queries * pairs_per_query
    return calls, calls * per_pair, calls * completion


def estimate(
    config: PipelineConfig, *, start: str | None = None, stop: str | None = None, force: bool = False
) -> tuple[list[Estimate], list[str]]:
    """Per stage: whether it runs, and for the LLM stages calls, tokens, cost and time; plus notes."""
    from synthrank.llm.ledger import TokenEstimator

    steps = plan(config, start=start, stop=stop, force=force)
    runs = {stage.name: will for stage, will in steps}
    runs = {s.name: runs.get(s.name, False) for s in STAGES}
    layout = RunLayout(config.run.dir)
    estimator = TokenEstimator(config.llm.tokenizer)
    notes: list[str] = []
    out = [Estimate(stage.name, runs[stage.name], stage.summary) for stage in STAGES]
    by_name = {e.stage: e for e in out}
    from synthrank.stages.testset import needs_llm

    test = by_name["testset"]
    test_llm = runs["testset"] and needs_llm(config, ingested=not runs["ingest"])
    on_disk = not runs["filter"] and layout.queries.is_file()
    kept_on_disk = float(count_lines(layout.queries)) if on_disk else None
    if not (runs["generate"] or runs["judge"] or test_llm):
        notes.append("no LLM stage runs: no LLM cost")
        _time_training(config, runs, by_name, notes, kept_on_disk)
        return out, notes
    n, shown, basis = _sample_passages(config, runs)
    notes.append(f"passages: {basis}")
    notes.append(
        "tokens: the real prompt templates rendered and counted with "
        + (config.llm.tokenizer or "the MiniLM WordPiece tokenizer (set [llm] tokenizer for the LLM's own)")
    )
    gen = by_name["generate"]
    if gen.runs:
        gen.calls, gen.prompt_tokens, gen.completion_tokens = _generate_estimate(
            config, shown, n, estimator.count
        )
    judge = by_name["judge"]
    if kept_on_disk is not None:
        queries = kept_on_disk
        notes.append(f"queries: the {int(queries)} the filter kept")
    else:
        kept = _measured_keep(layout)
        queries = n * config.generate.n_queries * (kept if kept is not None else DEFAULT_FILTER_KEEP)
        share = f"{kept:.0%} (measured)" if kept is not None else f"{DEFAULT_FILTER_KEEP:.0%} (default)"
        notes.append(f"queries: {config.generate.n_queries} per passage, {share} kept by the filter")
    if judge.runs:
        judge.calls, judge.prompt_tokens, judge.completion_tokens = _judge_estimate(
            config, shown, queries, estimator.count
        )
        measured_pairs = _measured_pairs_per_query(layout, config.judge)
        gate = ", only the source where it fails [judge] source_first" if config.judge.source_first else ""
        notes.append(
            f"judge pairs: {measured_pairs:.1f} per query (measured by an earlier run, scaled to top_m)"
            if measured_pairs is not None
            else f"judge pairs: at most {config.judge.top_m} candidates + the source per query "
            f"(fewer when the source is among them{gate})"
        )
    parallel, why = _parallel_calls(config)
    rates = {stage: _seconds_per_call(layout, stage, parallel, why) for stage in LLM_STAGES}
    prices = config.llm.price_prompt, config.llm.price_completion
    for e in (gen, judge):
        if not e.runs:
            continue
        e.cost = token_cost(e.prompt_tokens, e.completion_tokens, *prices)
        per_call, e.rate = rates[e.stage]
        e.seconds = e.calls * per_call
    if test_llm:
        depth, wanted = config.evaluate.synthetic_judge_top_m, config.evaluate.synthetic_queries
        written = _generate_estimate(
            config, shown, wanted, estimator.count, replace(config.generate, n_queries=1)
        )
        kept = wanted * (_measured_keep(layout) or DEFAULT_FILTER_KEEP)
        # the source plus the BM25 and bi-encoder top `depth` over held-out passages: at most
        graded = _judge_estimate(config, shown, kept, estimator.count, pairs=1 + 2 * depth)
        test.calls, test.prompt_tokens, test.completion_tokens = (
            a + b for a, b in zip(written, graded, strict=True)
        )
        test.cost = token_cost(test.prompt_tokens, test.completion_tokens, *prices)
        test.seconds = written[0] * rates["generate"][0] + graded[0] * rates["judge"][0]
        unless = "unless ingest finds real questions" if runs["ingest"] else "no real questions in the corpus"
        notes.append(
            f"testset: {wanted} LLM-written test queries on held-out passages ({unless}), each graded "
            f"against its source and the BM25 and bi-encoder top {depth} (at most)"
        )
    notes.append("calls already in the LLM cache (an earlier run or pilot) are free and instant")
    _time_training(config, runs, by_name, notes, queries)
    return out, notes


def _time_training(
    config: PipelineConfig,
    runs: dict[str, bool],
    by_name: dict[str, Estimate],
    notes: list[str],
    queries: float | None,
) -> None:
    """Time of the embedding, and steps and time of the warm start and LCE, where they run (see
    `compute_time`)."""
    from synthrank.run.compute_time import embed_time, training_estimates

    if runs["embed"]:
        e, t = by_name["embed"], embed_time(config)
        if t is None:
            notes.append("embed: timed once ingest has counted the passages (`synthrank run --to ingest`)")
        else:
            e.seconds, e.rate = t.seconds, t.rate
    if not (runs["distill"] or runs["train"]):
        return
    for stage, t in training_estimates(config, queries).items():
        e = by_name[stage]
        if not e.runs:
            continue
        e.seconds, e.rate = t.seconds, t.rate
        steps = f"{t.steps:,} optimizer steps" if t.steps else "steps known after mine"
        notes.append(f"{stage}: {steps}")


def _seconds_per_call(layout: RunLayout, stage: str, parallel: int, why: str) -> tuple[float, str]:
    """Seconds per call of `stage` and how that was known: measured by an earlier run, else default."""
    measured = _measured(layout, stage)
    if measured and measured.get("seconds"):
        per_call = measured["seconds"] / measured["calls"]
        return per_call, f"{per_call:.2f} s/call measured ({int(measured['calls'])} calls)"
    per_call = DEFAULT_SECONDS_PER_CALL[stage] / parallel
    return per_call, (
        f"{per_call:.2f} s/call default ({DEFAULT_SECONDS_PER_CALL[stage]:g} s a call, {parallel} "
        f"at a time: {why}; `--pilot N` measures it)"
    )


def _parallel_calls(config: PipelineConfig) -> tuple[int, str]:
    """Calls in flight at once: `concurrency`, or fewer where servers say they decode fewer."""
    from synthrank.llm.server_slots import server_slots_now

    llm = config.llm.resolved()
    if llm.offline:
        return llm.concurrency, f"concurrency {llm.concurrency}"
    headers = {"Authorization": f"Bearer {llm.api_key}"} if llm.api_key else None
    slots = [server_slots_now(url, headers) for url in llm.base_urls]
    if all(s is None for s in slots):
        return llm.concurrency, f"concurrency {llm.concurrency}"
    total = sum(s if s is not None else llm.concurrency for s in slots)
    if total >= llm.concurrency:
        return llm.concurrency, f"concurrency {llm.concurrency}"
    servers = "the server decodes" if len(slots) == 1 else "the servers decode"
    return total, f"concurrency {llm.concurrency}, but {servers} {total} at once (/props)"


def _measured_pairs_per_query(layout: RunLayout, cfg: JudgeConfig) -> float | None:
    """Judged pairs per kept query in an earlier judge run of this folder or its pilot, scaled to
    `cfg.top_m` where that run graded another number of candidates per query, and never above the
    most `cfg` can judge."""
    for root in (layout.root, layout.root / "pilot"):
        manifest = read_manifest(RunLayout(root), "judge")
        stats_path = root / "filter_stats.json"
        if manifest is None or manifest.status != "done" or not stats_path.is_file():
            continue
        kept = json.loads(stats_path.read_text(encoding="utf-8")).get("kept")
        if kept and manifest.counts.get("pairs"):
            # pairs the source gate left unjudged cost no call
            judged = manifest.counts["pairs"] - manifest.counts.get("source_gated_pairs", 0)
            then = manifest.counts.get("top_m") or cfg.top_m
            most = cfg.top_m + (1 if cfg.include_source else 0)
            return min(float(judged) / float(kept) * cfg.top_m / then, float(most))
    return None


def _measured_keep(layout: RunLayout) -> float | None:
    for root in (layout.root, layout.root / "pilot"):
        path = root / "filter_stats.json"
        if path.is_file():
            stats = json.loads(path.read_text(encoding="utf-8"))
            if stats.get("raw"):
                return float(stats["kept"]) / float(stats["raw"])
    return None


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def print_plan(
    config: PipelineConfig, *, start: str | None = None, stop: str | None = None, force: bool = False
) -> None:
    """The plan as a table on stdout (what `synthrank plan` and `run --dry-run` print)."""
    estimates, notes = estimate(config, start=start, stop=stop, force=force)
    layout = RunLayout(config.run.dir)
    table = Table(title=f"synthrank plan: {config.source or 'config'} → {layout.root}")
    for column in (
        "stage",
        "action",
        "LLM calls",
        "prompt tokens",
        "completion tokens",
        "cost",
        "time",
        "what",
    ):
        table.add_column(column, justify="left" if column in ("stage", "action", "what") else "right")
    total = Estimate("total", True, "")
    total.seconds = 0.0
    for e in estimates:
        llm = e.runs and (e.stage in LLM_STAGES or e.calls > 0)  # testset: only where it calls the LLM
        table.add_row(
            e.stage,
            "run" if e.runs else "skip (done)",
            f"{e.calls:,.0f}" if llm else "",
            f"{e.prompt_tokens:,.0f}" if llm else "",
            f"{e.completion_tokens:,.0f}" if llm else "",
            f"{e.cost:.4f}" if llm else "",
            _duration(e.seconds) if e.runs else "",
            e.summary,
        )
        if llm:
            total.calls += e.calls
            total.prompt_tokens += e.prompt_tokens
            total.completion_tokens += e.completion_tokens
            total.cost += e.cost
        if e.runs:
            total.seconds += e.seconds or 0.0
    table.add_row(
        "total",
        "all timed",
        f"{total.calls:,.0f}",
        f"{total.prompt_tokens:,.0f}",
        f"{total.completion_tokens:,.0f}",
        f"{total.cost:.4f}",
        _duration(total.seconds),
        "",
    )
    console = table_console(min_width=150)
    console.print(table)
    prices = (
        f"[llm] price_prompt {config.llm.price_prompt:g}, "
        f"price_completion {config.llm.price_completion:g} per 1M tokens"
    )
    notes.insert(
        0, f"cost: {prices}" + (f"; max_cost {config.llm.max_cost:g}" if config.llm.max_cost else "")
    )
    for e in estimates:
        if e.rate and e.runs:
            notes.append(f"time of {e.stage}: {e.rate}")
    notes.append("time: LLM calls, embedding and training steps; evaluation and checkpoints come on top")
    for note in notes:
        console.print(f"- {note}", markup=False, highlight=False, soft_wrap=True)


# --- the pilot ------------------------------------------------------------------------------------


def _link(src: Path, dst: Path) -> None:
    """dst as a hard link of src (a copy across file systems); the run's files are never changed."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.unlink(missing_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def pilot_config(config: PipelineConfig, n: int) -> PipelineConfig:
    """The run's config aimed at RUN/pilot with N passages and the run's LLM cache."""
    layout = RunLayout(config.run.dir)
    return config.with_changes(
        run=replace(config.run, dir=layout.root / "pilot"),
        sample=replace(config.sample, num_passages=n),
        llm=replace(config.llm, cache=config.llm.cache or layout.llm_cache),
    )


def prepare_pilot(config: PipelineConfig, n: int) -> PipelineConfig:
    """Run ingest and sample for the run itself (no LLM; the full run reuses them), then set up
    RUN/pilot with the run's corpus files and a seeded N of its sampled passages."""
    run_pipeline(config, stop="sample")
    main, pilot = RunLayout(config.run.dir), pilot_config(config, n)
    layout = RunLayout(pilot.run.dir)
    for src in (main.passages, main.passage_arrays, main.split):
        if not (layout.root / src.relative_to(main.root)).exists() or _changed(
            src, layout.root / src.relative_to(main.root)
        ):
            _link(src, layout.root / src.relative_to(main.root))
    ingest = read_manifest(main, "ingest")
    if ingest is not None:
        write_manifest(layout, ingest)
    ids = [x for x in main.sampled_ids.read_text(encoding="utf-8").split() if x]
    chosen = sorted(random.Random(config.sample.seed).sample(ids, min(n, len(ids))), key=ids.index)
    text = "".join(f"{pid}\n" for pid in chosen)
    prints = stage_fingerprints(pilot)
    sample = read_manifest(layout, "sample")
    current = layout.sampled_ids.read_text(encoding="utf-8") if layout.sampled_ids.is_file() else None
    stale = (
        sample is None
        or sample.fingerprint != prints["sample"]
        or (ingest is not None and sample.started < ingest.finished)
    )
    if current != text or stale:
        layout.sampled_ids.write_text(text, encoding="utf-8")
        now = time.time()
        write_manifest(
            layout,
            Manifest(
                stage="sample",
                status="done",
                fingerprint=prints["sample"],
                started=now,
                finished=now,
                seconds=0.0,
                counts={"sampled": len(chosen), "of_run_sample": len(ids)},
                outputs=output_sizes(layout, [layout.sampled_ids]),
            ),
        )
    _reuse_passage_embeddings(main, layout)
    return pilot


def _changed(a: Path, b: Path) -> bool:
    return a.stat().st_size != b.stat().st_size or a.stat().st_mtime != b.stat().st_mtime


def _reuse_passage_embeddings(source: RunLayout, target: RunLayout) -> None:
    """Passage embeddings one of a run and its pilot has spare the other embedding the whole corpus
    again (the pilot links the run's corpus files; embed re-checks the content hash either way)."""
    src = source.embeddings_manifest
    if not src.is_file() or not (source.embeddings / "passages.npy").is_file():
        return
    manifest = json.loads(src.read_text(encoding="utf-8"))
    dst = target.embeddings_manifest
    theirs = json.loads(dst.read_text(encoding="utf-8")) if dst.is_file() else {}
    if theirs.get("passages") == manifest.get("passages") and (target.embeddings / "passages.npy").is_file():
        return
    _link(source.embeddings / "passages.npy", target.embeddings / "passages.npy")
    keep = {k: v for k, v in manifest.items() if k != "queries"}
    write_text_atomic(dst, json.dumps(keep, indent=1) + "\n")


def pilot_report(pilot: PipelineConfig, full_passages: int) -> tuple[list[str], list[str], int]:
    """(yield lines, advice lines, training groups) from the pilot's filter and mining statistics."""
    from synthrank.stages.filter import empty_advice
    from synthrank.stages.mine import yield_advice

    layout = RunLayout(pilot.run.dir)
    lines: list[str] = []
    advice: list[str] = []
    filter_path = layout.root / "filter_stats.json"
    if not filter_path.is_file():
        return ["the pilot stopped before the filter: see the error above"], [], 0
    fstats = json.loads(filter_path.read_text(encoding="utf-8"))
    raw, kept = fstats["raw"], fstats["kept"]
    n = pilot.sample.num_passages
    lines.append(
        f"queries: {raw} generated for {n} passages, {kept} kept by the filter ({kept / max(1, raw):.0%})"
    )
    if raw and kept < 0.5 * raw:
        advice.append(
            empty_advice({**fstats, "kept": 0}).replace("filter kept 0 of", f"filter dropped {raw - kept} of")
        )
    mine, filtered = read_manifest(layout, "mine"), read_manifest(layout, "filter")
    if (
        mine is None
        or filtered is None
        or mine.started < filtered.finished
        or not layout.mining_stats.is_file()
    ):
        return lines, advice, 0  # mine did not run after this filter: its statistics are an older pilot's
    stats = json.loads(layout.mining_stats.read_text(encoding="utf-8"))
    dropped = stats["dropped"]
    queries = max(1, stats["queries_in"])
    without = (
        dropped["source_judged_irrelevant"]
        + dropped["no_positive"]
        + dropped["not_judged"]
        + dropped["not_in_candidates"]
    )
    grades = ", ".join(f"{g}: {c}" for g, c in stats["grade_distribution"].items())
    lines += [
        f"judge grades: {grades or 'none'}",
        f"queries with a positive: {stats['queries_in'] - without} of {stats['queries_in']} "
        f"({1 - without / queries:.0%})",
        f"training groups: {stats['train_groups']} (+ {stats['dev_queries']} dev queries); "
        f"dropped for too few negatives: {dropped['too_few_negatives']}",
        f"positives per query (min/mean/max): {_triple(stats['positives_per_query'])}",
        f"negatives per query (min/mean/max): {_triple(stats['negatives_per_query'])}"
        f" (num_negatives {stats['config']['num_negatives']})",
    ]
    if stats.get("adapted"):
        changes = ", ".join(f"{k} = {json.dumps(v[1])}" for k, v in stats["adapted"]["changes"].items())
        lines.append(f'mine adapted to a weak judge ([mine] adapt = "auto"): {changes}')
    for stage in LLM_STAGES:
        manifest = read_manifest(layout, stage)
        if manifest is not None and manifest.status == "done":
            c = manifest.counts
            lines.append(
                f"LLM {stage}: {c.get('calls', 0)} calls paid, {c.get('cache_hits', 0)} from the cache, "
                f"cost {float(c.get('cost') or 0):.4f}, {manifest.seconds:.0f} s"
            )
    if stats["train_groups"]:
        projected = stats["train_groups"] * full_passages / max(1, n)
        lines.append(
            f"projected for the full run ({full_passages} passages): about {projected:,.0f} training groups"
        )
    advice += yield_advice(stats)
    return lines, advice, int(stats["train_groups"])


def _triple(s: dict[str, Any]) -> str:
    return f"{s['min']} / {s['mean']} / {s['max']}"


def run_pilot(config: PipelineConfig, n: int) -> int:
    """Run the pilot and print its yield; 0 when it makes training groups, 1 when it makes none."""
    say = Console(stderr=True)
    pilot = prepare_pilot(config, n)
    full = _full_sample_size(config)
    failure: str | None = None
    try:
        results = run_pipeline(
            pilot,
            stop="mine",
            on_stage=lambda stage, state: say.rule(f"pilot {stage.name}") if state == "running" else None,
        )
        if results and results[-1].action == "partial":
            failure = f"stage {results[-1].stage} is incomplete (failed LLM calls): run the pilot again"
    except EmptyOutputError as exc:
        failure = str(exc)
    finally:  # the full run's embed stage then embeds only its queries
        _reuse_passage_embeddings(RunLayout(pilot.run.dir), RunLayout(config.run.dir))
    lines, advice, groups = pilot_report(pilot, full)
    out = table_console(min_width=100)
    out.rule(f"pilot yield: {pilot.sample.num_passages} passages in {pilot.run.dir}")
    for line in lines:
        out.print(f"- {line}", markup=False, highlight=False, soft_wrap=True)
    if failure:
        out.print(f"stopped: {failure}", markup=False, highlight=False, soft_wrap=True)
    for line in advice:
        out.print(f"to change: {line}", markup=False, highlight=False, soft_wrap=True)
    if groups:
        out.print("verdict: usable; the full run gets the pilot's calls from the LLM cache.", markup=False)
        return 0
    out.print("verdict: no training groups; change the settings above and run the pilot again.", markup=False)
    return 1


def _full_sample_size(config: PipelineConfig) -> int:
    layout = RunLayout(config.run.dir)
    if layout.sampled_ids.is_file():
        return sum(1 for x in layout.sampled_ids.read_text(encoding="utf-8").split() if x)
    return config.sample.num_passages
