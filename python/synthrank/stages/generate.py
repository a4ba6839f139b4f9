"""Generate synthetic queries for the sampled passages: few-shot, n per passage, mixed styles.

By default a passage costs one request per style in its plan; `one_call` asks for all n queries of
a passage in one request, each line labelled with its style (on a CPU server the prompt, mostly the
passage, is what costs, so n queries per passage read cost about one). Each reply becomes `Query`
lines in `queries.raw.jsonl` with ids `q-<passage_id>-<slot>`; a slot the reply did not fill gets
an empty text, which the filter counts as unparsable (`empty_slots`). The file is append-only and a
re-run skips slots already written, while the request cache answers every call that completed
before a crash.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthrank.config import at_least, within
from synthrank.errors import InputFormatError
from synthrank.llm.cache import ResponseCache
from synthrank.llm.client import LLMClient
from synthrank.llm.config import LLMConfig
from synthrank.llm.prompts import PromptTemplate, defuse, load_examples, load_template
from synthrank.llm.runner import drain
from synthrank.records import JsonlAppender, Passage, Query, RunLayout, read_jsonl, repair_tail

STYLES = ("question", "keywords")
TEMPLATE = "generate_queries"
MIXED_TEMPLATE = "generate_queries_mixed"  # one_call: every style of a passage in one request
EXAMPLES = "query_examples.jsonl"
_LINE_PREFIX = re.compile(
    r"^\s*(?:[-*•]+|\(?\d{1,2}[.):]|(?:query|question|keywords?|keyword query)\s*\d*\s*[:.)])\s*",
    re.IGNORECASE,
)
_BULLET = re.compile(r"^\s*(?:[-*•]+|\(?\d{1,2}[.):])\s*")
_LABELLED = re.compile(r"^(question|keywords?|keyword query)\s*\d*\s*\**\s*[:.)-]\s*(.*)$", re.IGNORECASE)


@dataclass
class GenerateConfig:
    """n_queries per passage; keyword_ratio = share of keyword-style queries (the rest are questions).

    few_shot examples come from `few_shot_file` (default: the packaged `query_examples.jsonl`);
    `prompts` points at a folder of templates replacing the packaged ones. one_call: all n queries
    of a passage in one request (template `generate_queries_mixed`); off, one request per style.
    """

    n_queries: int = 3
    keyword_ratio: float = 0.3
    few_shot: int = 3
    few_shot_file: Path | None = None
    prompts: Path | None = None
    temperature: float = 0.7
    max_tokens: int = 200
    max_passage_chars: int = 4000
    seed: int = 0
    workers: int | None = None  # passages in progress at once (default: 2 x llm concurrency)
    one_call: bool = False

    def __post_init__(self) -> None:
        at_least(self, "generate", 1, "n_queries", "max_tokens", "max_passage_chars")
        at_least(self, "generate", 1, "workers", optional=True)
        at_least(self, "generate", 0, "few_shot", "temperature")
        within(self, "generate", 0, 1, "keyword_ratio")


def plan_styles(passage_id: str, n: int, keyword_ratio: float, seed: int) -> list[str]:
    """Style of each slot, drawn from a hash so every run (and resume) plans the same."""
    styles = []
    for slot in range(n):
        digest = hashlib.sha256(f"{seed}:{passage_id}:{slot}".encode()).digest()
        draw = int.from_bytes(digest[:8], "big") / 2**64
        styles.append("keywords" if draw < keyword_ratio else "question")
    return styles


def parse_queries(text: str) -> list[str]:
    """One query per line; numbering, bullets, labels, quotes and preamble lines are dropped."""
    queries = []
    for line in text.splitlines():
        line = _LINE_PREFIX.sub("", line).strip().strip("\"'“”`").strip()
        if not line or line.endswith(":") or line.startswith("<"):
            continue
        queries.append(line)
    return queries


def parse_labelled(text: str) -> list[tuple[str | None, str]]:
    """(style, query) per line of a one-call reply; style None where the line carries no label."""
    parsed: list[tuple[str | None, str]] = []
    for raw in text.splitlines():
        line = _BULLET.sub("", raw).strip().strip("*").strip()
        match = _LABELLED.match(line)
        label: str | None = None
        if match:
            label = "question" if match.group(1).lower() == "question" else "keywords"
            line = match.group(2)
        else:
            line = _LINE_PREFIX.sub("", line)
        line = line.strip(" \t\"'“”`*")
        if not line or line.startswith("<") or (label is None and line.endswith(":")):
            continue
        parsed.append((label, line))
    return parsed


def fill_slots(styles: list[str], parsed: list[tuple[str | None, str]]) -> list[tuple[str, str]]:
    """(style, text) per planned slot: a labelled line takes the next free slot of its style (or
    any free slot, keeping its own style), an unlabelled one the next free slot; lines beyond the
    plan are dropped and slots left over stay empty (the shortfall)."""
    slots = [(style, "") for style in styles]
    free = list(range(len(styles)))
    for label, text in parsed:
        if not free:
            break
        slot = next((s for s in free if styles[s] == label), free[0])
        free.remove(slot)
        slots[slot] = (label or styles[slot], text)
    return slots


def example_plan(index: int, n: int, keyword_ratio: float) -> list[str]:
    """Styles shown by few-shot example `index`: keyword lines spread evenly at keyword_ratio over
    all examples, the same for every passage, so a server's prefix cache keeps every example turn."""
    styles = []
    for slot in range(n):
        g = index * n + slot
        styles.append("keywords" if int((g + 1) * keyword_ratio) > int(g * keyword_ratio) else "question")
    return styles


def _mix(styles: list[str]) -> str:
    questions, keywords = styles.count("question"), styles.count("keywords")
    parts = [f"{questions} question{'s' if questions > 1 else ''}"] if questions else []
    if keywords:
        parts.append(f"{keywords} keyword {'queries' if keywords > 1 else 'query'}")
    return " and ".join(parts)


def build_mixed_messages(
    template: PromptTemplate,
    passage: Passage,
    styles: list[str],
    examples: list[dict[str, Any]],
    cfg: GenerateConfig,
) -> list[dict[str, str]]:
    """One request for every slot of a passage: system, example turns (the same for every
    passage), then the passage with the plan after it; each reply line starts with its style."""

    def user(document: str, plan: list[str]) -> dict[str, str]:
        layout = "\n".join(f"{style}: ..." for style in plan)
        content = template.render("user", n=len(plan), document=document, mix=_mix(plan), layout=layout)
        return {"role": "user", "content": content}

    messages = [{"role": "system", "content": template.render("system")}]
    for index, example in enumerate(examples[: cfg.few_shot]):
        plan = example_plan(index, len(styles), cfg.keyword_ratio)
        pools = {s: [q for q in example.get(s, []) if isinstance(q, str)] for s in STYLES}
        if any(len(pools[s]) < plan.count(s) for s in STYLES):
            continue
        lines = [f"{style}: {pools[style].pop(0)}" for style in plan]
        messages += [
            user(defuse(example["document"]), plan),
            {"role": "assistant", "content": "\n".join(lines)},
        ]
    text = passage.text[: cfg.max_passage_chars]
    messages.append(user(defuse(f"{passage.title}\n{text}" if passage.title else text), styles))
    return messages


def build_messages(
    template: PromptTemplate,
    passage: Passage,
    style: str,
    count: int,
    examples: list[dict[str, Any]],
    cfg: GenerateConfig,
) -> list[dict[str, str]]:
    style_values = {
        "style_description": template.render(f"style:{style}"),
        "style_rules": template.render(f"style_rules:{style}"),
        "style_name": template.render(f"style_name:{style}"),
    }
    messages = [{"role": "system", "content": template.render("system")}]
    # few-shot examples as earlier turns of the conversation: small models copy a turn's format
    # far more reliably than they follow examples pasted into one long message
    for example in examples[: cfg.few_shot]:
        queries = [q for q in example.get(style, []) if isinstance(q, str)][:count]
        if len(queries) == count:
            user = template.render("user", n=count, document=defuse(example["document"]), **style_values)
            messages += [
                {"role": "user", "content": user},
                {"role": "assistant", "content": "\n".join(queries)},
            ]
    text = passage.text[: cfg.max_passage_chars]
    document = defuse(f"{passage.title}\n{text}" if passage.title else text)
    messages.append(
        {"role": "user", "content": template.render("user", n=count, document=document, **style_values)}
    )
    return messages


def read_sampled(layout: RunLayout) -> tuple[list[str], dict[str, Passage]]:
    """The sampled passage ids in file order, and those passages (the corpus is streamed once)."""
    path = layout.sampled_ids
    if not path.is_file():
        raise InputFormatError(path, None, "sampled passage ids not found (run the sample stage first)")
    ids = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    wanted = set(ids)
    passages = {p.passage_id: p for p in read_jsonl(layout.passages, Passage) if p.passage_id in wanted}
    for lineno, pid in enumerate(ids, start=1):
        if pid not in passages:
            raise InputFormatError(path, lineno, f"passage_id {pid!r} is not in {layout.passages}")
    return list(dict.fromkeys(ids)), passages


def run_generate(
    layout: RunLayout, cfg: GenerateConfig, llm_cfg: LLMConfig, *, print_summary: bool = True
) -> dict[str, Any]:
    """Write queries for every sampled passage not done yet; returns counts (+ `complete`)."""
    return asyncio.run(_generate(layout, cfg, llm_cfg, print_summary))


async def _generate(
    layout: RunLayout, cfg: GenerateConfig, llm_cfg: LLMConfig, print_summary: bool
) -> dict[str, Any]:
    template = load_template(MIXED_TEMPLATE if cfg.one_call else TEMPLATE, cfg.prompts)
    examples = (
        load_examples(EXAMPLES, cfg.few_shot_file, cfg.prompts, required={"document": str})
        if cfg.few_shot
        else []
    )
    ids, passages = read_sampled(layout)
    repair_tail(layout.raw_queries)
    written = (
        {q.query_id for q in read_jsonl(layout.raw_queries, Query)} if layout.raw_queries.exists() else set()
    )
    plans = {pid: plan_styles(pid, cfg.n_queries, cfg.keyword_ratio, cfg.seed) for pid in ids}
    pending = [pid for pid in ids if any(f"q-{pid}-{s}" not in written for s in range(cfg.n_queries))]
    counts = {"passages": len(ids), "already_done": len(ids) - len(pending), "queries": 0, "empty_slots": 0}
    started = time.monotonic()

    with ResponseCache(llm_cfg.cache or layout.llm_cache) as cache, JsonlAppender(layout.raw_queries) as out:
        async with LLMClient(llm_cfg, cache=cache, stage="generate", ledger_path=layout.llm_ledger) as client:

            def query(pid: str, slot: int, style: str, text: str) -> Query:
                return Query(
                    query_id=f"q-{pid}-{slot}",
                    doc_id=passages[pid].doc_id,
                    passage_id=pid,
                    text=text,
                    style=style,
                    template_version=template.version,
                    model=client.model,
                )

            async def work_one_call(pid: str) -> list[Query]:
                reply = await client.chat(
                    build_mixed_messages(template, passages[pid], plans[pid], examples, cfg),
                    template_version=template.version,
                    temperature=cfg.temperature,
                    max_tokens=cfg.max_tokens,
                    seed=cfg.seed,
                )
                slots = fill_slots(plans[pid], parse_labelled(reply.content))
                return [query(pid, slot, style, text) for slot, (style, text) in enumerate(slots)]

            async def work(pid: str) -> list[Query]:
                passage, styles = passages[pid], plans[pid]
                queries: list[Query] = []
                for style in STYLES:
                    slots = [s for s, st in enumerate(styles) if st == style]
                    if not slots:
                        continue
                    reply = await client.chat(
                        build_messages(template, passage, style, len(slots), examples, cfg),
                        template_version=template.version,
                        temperature=cfg.temperature,
                        max_tokens=cfg.max_tokens,
                        seed=cfg.seed,
                    )
                    texts = parse_queries(reply.content)
                    for slot, text in zip(slots, texts + [""] * len(slots), strict=False):
                        queries.append(query(pid, slot, style, text))
                return sorted(queries, key=lambda q: q.query_id)

            last_flush = time.monotonic()

            def on_result(pid: str, queries: list[Query]) -> None:
                nonlocal last_flush
                fresh = [q for q in queries if q.query_id not in written]
                out.write_many(fresh)
                counts["queries"] += sum(1 for q in fresh if q.text)
                counts["empty_slots"] += sum(1 for q in fresh if not q.text)
                if time.monotonic() - last_flush > 1.0:
                    out.flush()
                    last_flush = time.monotonic()

            outcome = await drain(
                pending,
                work_one_call if cfg.one_call else work,
                on_result,
                workers=cfg.workers or 2 * client.cfg.concurrency,
                total=len(pending),
                description="generate",
                max_failure_rate=client.cfg.max_failure_rate,
                settled=counts["already_done"],
            )
            ledger = client.ledger
    if print_summary:
        ledger.print_table()
    return {
        **counts,
        "generated_passages": outcome.done,
        "failed_passages": outcome.failed,
        "complete": outcome.complete,
        "stop_reason": outcome.stop_reason,
        "seconds": round(time.monotonic() - started, 3),
        **ledger.summary("generate"),
    }
