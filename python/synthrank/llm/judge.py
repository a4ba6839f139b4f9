"""Grade (query, passage) pairs 0-3 with the LLM, plus an expected grade from the grade tokens' logprobs.

The grade scale: 3 answers fully, 2 partly, 1 on topic but no answer, 0 unrelated. Labels keep the
raw grade; where "positive" and "hard negative" start is the mining stage's choice, so labels can
be re-thresholded without new calls.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from synthrank.errors import ConfigError, InputFormatError, InvalidArgumentError
from synthrank.llm.cache import ResponseCache
from synthrank.llm.client import LLMClient, Reply, ReplyFormatError
from synthrank.llm.config import LLMConfig
from synthrank.llm.prompts import PromptTemplate, defuse, load_examples, load_template
from synthrank.llm.runner import Outcome, drain
from synthrank.records import JsonlAppender, Judgment, Passage, Query, RunLayout, read_jsonl, repair_tail

TEMPLATE = "judge_relevance"
EXAMPLES = "judge_examples.jsonl"
GRADES = ("0", "1", "2", "3")
_GRADE = re.compile(
    r"^[\s*_`\"'(\[]*(?:(?:grade|relevance|score|answer)\s*[:=]?\s*)?([0-3])(?![\d.])", re.IGNORECASE
)


@dataclass
class JudgeConfig:
    """top_m candidates per query are judged besides the source passage (deduplicated).

    few_shot graded examples (default file: the packaged `judge_examples.jsonl`) go before each pair
    as earlier conversation turns; servers with prefix caching evaluate them once.
    """

    top_m: int = 20
    include_source: bool = True
    few_shot: int = 4
    few_shot_file: Path | None = None
    logprobs: bool = True
    top_logprobs: int = 10
    temperature: float = 0.0
    max_tokens: int = 8
    max_passage_chars: int = 4000
    prompts: Path | None = None
    workers: int | None = None  # pairs in progress at once (default: 2 x llm concurrency)

    def __post_init__(self) -> None:
        if self.top_m < 0:
            raise ConfigError(f"must be >= 0, got {self.top_m}", section="judge", key="top_m")
        if self.few_shot < 0:
            raise ConfigError(f"must be >= 0, got {self.few_shot}", section="judge", key="few_shot")
        if not 0 <= self.top_logprobs <= 20:
            raise ConfigError(
                f"must be in [0, 20], got {self.top_logprobs}", section="judge", key="top_logprobs"
            )


@dataclass(frozen=True)
class JudgePair:
    query_id: str
    query: str
    passage: Passage


@dataclass
class JudgeResult:
    judgments: list[Judgment | None]  # aligned with the pairs; None = not judged (failure or budget)
    outcome: Outcome


def parse_grade(text: str) -> int | None:
    match = _GRADE.match(text)
    return int(match.group(1)) if match else None


def expected_grade(logprobs: list[dict[str, Any]] | None) -> float | None:
    """Sum of grade x probability over the grade tokens offered where the reply's grade token stands."""
    if not logprobs:
        return None
    for position in logprobs:
        if str(position.get("token", "")).strip() not in GRADES:
            continue
        candidates = list(position.get("top_logprobs") or []) or [position]
        mass = dict.fromkeys(range(4), 0.0)
        for cand in candidates:
            token = str(cand.get("token", "")).strip()
            logprob = cand.get("logprob")
            if token in GRADES and isinstance(logprob, (int, float)):
                mass[int(token)] += math.exp(logprob)
        total = sum(mass.values())
        if total <= 0:
            return None
        return sum(g * p for g, p in mass.items()) / total
    return None


@dataclass(frozen=True)
class JudgePrompt:
    """The judge template plus its graded examples, rendered into chat messages per pair."""

    template: PromptTemplate
    examples: list[dict[str, Any]]

    @classmethod
    def load(cls, cfg: JudgeConfig) -> JudgePrompt:
        template = load_template(TEMPLATE, cfg.prompts)
        required = {"query": str, "passage": str, "grade": int}
        examples = (
            load_examples(EXAMPLES, cfg.few_shot_file, cfg.prompts, required=required) if cfg.few_shot else []
        )
        return cls(template, examples[: cfg.few_shot])

    def turn(self, query: str, passage: str) -> dict[str, str]:
        return {
            "role": "user",
            "content": self.template.render("user", query=defuse(query), passage=defuse(passage)),
        }

    def messages(self, query: str, passage: Passage, max_chars: int) -> list[dict[str, str]]:
        text = passage.text[:max_chars]
        messages = [{"role": "system", "content": self.template.render("system")}]
        for example in self.examples:
            messages += [
                self.turn(example["query"], example["passage"]),
                {"role": "assistant", "content": str(example["grade"])},
            ]
        messages.append(self.turn(query, f"{passage.title}\n{text}" if passage.title else text))
        return messages


def _require_grade(reply: Reply) -> None:
    if parse_grade(reply.content) is None:
        raise ReplyFormatError(f"no grade 0-3 in reply {reply.content[:80]!r}")


async def judge_pair(client: LLMClient, pair: JudgePair, cfg: JudgeConfig, prompt: JudgePrompt) -> Judgment:
    params: dict[str, Any] = {"temperature": cfg.temperature, "max_tokens": cfg.max_tokens}
    if cfg.logprobs:
        params.update(logprobs=True, top_logprobs=cfg.top_logprobs)
    reply = await client.chat(
        prompt.messages(pair.query, pair.passage, cfg.max_passage_chars),
        template_version=prompt.template.version,
        validate=_require_grade,
        **params,
    )
    return Judgment(
        query_id=pair.query_id,
        passage_id=pair.passage.passage_id,
        doc_id=pair.passage.doc_id,
        grade=parse_grade(reply.content),
        expected_grade=expected_grade(reply.logprobs),
        raw=reply.content,
        template_version=prompt.template.version,
        model=client.model,
    )


async def judge_pairs(
    client: LLMClient,
    pairs: Sequence[JudgePair],
    cfg: JudgeConfig | None = None,
    *,
    on_judgment: Callable[[Judgment], None] | None = None,
) -> JudgeResult:
    """Judge `pairs` through `client` (cached, limited, retried); usable by other stages."""
    cfg = cfg or JudgeConfig()
    prompt = JudgePrompt.load(cfg)
    judgments: list[Judgment | None] = [None] * len(pairs)

    def on_result(index: int, judgment: Judgment) -> None:
        judgments[index] = judgment
        if on_judgment is not None:
            on_judgment(judgment)

    outcome = await drain(
        range(len(pairs)),
        lambda i: judge_pair(client, pairs[i], cfg, prompt),
        on_result,
        workers=cfg.workers or 2 * client.cfg.concurrency,
        total=len(pairs),
        description="judge",
    )
    return JudgeResult(judgments, outcome)


def plan_pairs(
    queries: Iterable[Query], passages: Sequence[Passage], candidates: Path, cfg: JudgeConfig
) -> tuple[list[JudgePair], int]:
    """Source passage + top_m candidates per query, deduplicated; plus how many queries had no row."""
    row_of = {p.passage_id: i for i, p in enumerate(passages)}
    try:
        with np.load(candidates, allow_pickle=False) as data:
            query_ids = [str(q) for q in data["query_ids"]]
            ids = np.asarray(data["ids"], dtype=np.int64)
    except (OSError, KeyError, ValueError) as exc:
        raise InputFormatError(candidates, None, f"cannot read candidates (query_ids, ids): {exc}") from exc
    if ids.ndim != 2 or ids.shape[0] != len(query_ids):
        raise InputFormatError(candidates, None, f"ids has shape {ids.shape}, expected ({len(query_ids)}, k)")
    cand_row = {qid: i for i, qid in enumerate(query_ids)}
    pairs: list[JudgePair] = []
    without = 0
    for query in queries:
        rows: list[int] = []
        if cfg.include_source:
            if query.passage_id not in row_of:
                raise InvalidArgumentError(
                    f"query {query.query_id}: source passage {query.passage_id!r} is not in the passages"
                )
            rows.append(row_of[query.passage_id])
        if query.query_id in cand_row:
            for row in ids[cand_row[query.query_id], : cfg.top_m].tolist():
                if row < -1 or row >= len(passages):
                    raise InputFormatError(candidates, None, f"row {row} of {query.query_id} out of range")
                if row >= 0 and row not in rows:
                    rows.append(row)
        else:
            without += 1
        pairs.extend(JudgePair(query.query_id, query.text, passages[r]) for r in rows)
    return pairs, without


def run_judge(
    layout: RunLayout, cfg: JudgeConfig, llm_cfg: LLMConfig, *, print_summary: bool = True
) -> dict[str, Any]:
    """Judge every planned pair not yet in `judgments.jsonl`; returns counts (+ `complete`)."""
    return asyncio.run(_judge(layout, cfg, llm_cfg, print_summary))


async def _judge(
    layout: RunLayout, cfg: JudgeConfig, llm_cfg: LLMConfig, print_summary: bool
) -> dict[str, Any]:
    for path in (layout.queries, layout.passages, layout.candidates):
        if not path.is_file():
            raise InputFormatError(path, None, "not found (run the earlier stages first)")
    passages = list(read_jsonl(layout.passages, Passage))
    pairs, without = plan_pairs(read_jsonl(layout.queries, Query), passages, layout.candidates, cfg)
    repair_tail(layout.judgments)
    done = (
        {(j.query_id, j.passage_id) for j in read_jsonl(layout.judgments, Judgment)}
        if layout.judgments.exists()
        else set()
    )
    pending = [p for p in pairs if (p.query_id, p.passage.passage_id) not in done]
    grades: Counter[str] = Counter()
    started = time.monotonic()
    last_flush = time.monotonic()

    with ResponseCache(llm_cfg.cache or layout.llm_cache) as cache, JsonlAppender(layout.judgments) as out:

        def on_judgment(judgment: Judgment) -> None:
            nonlocal last_flush
            out.write(judgment)
            grades[str(judgment.grade) if judgment.grade is not None else "unparsable"] += 1
            if time.monotonic() - last_flush > 1.0:
                out.flush()
                last_flush = time.monotonic()

        async with LLMClient(llm_cfg, cache=cache, stage="judge") as client:
            result = await judge_pairs(client, pending, cfg, on_judgment=on_judgment)
            ledger = client.ledger
    if print_summary:
        ledger.print_table()
    return {
        "pairs": len(pairs),
        "already_judged": len(pairs) - len(pending),
        "judged": result.outcome.done,
        "failed": result.outcome.failed,
        "queries_without_candidates": without,
        "grades": dict(sorted(grades.items())),
        "complete": result.outcome.complete,
        "stop_reason": result.outcome.stop_reason,
        "seconds": round(time.monotonic() - started, 3),
        **ledger.summary("judge"),
    }
