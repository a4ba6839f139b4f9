"""Grade (query, passage) pairs 0-3 with the LLM, plus an expected grade from the grade tokens' logprobs.

The grade scale: 3 answers fully, 2 partly, 1 on topic but no answer, 0 unrelated. Labels keep the
raw grade; where "positive" and "hard negative" start is the mining stage's choice, so labels can
be re-thresholded without new calls.

Two modes: `pointwise` (the paper's: one call per pair, a single grade token) and `listwise` (one
JSON-schema-constrained call grades up to `list_size` passages of one query). Every prompt puts
what is the same across calls first (instructions, examples, then the query) and the passage(s)
last, so a server's prefix cache (llama.cpp, vLLM) only processes the passage tokens anew; on a
CPU server those are the cost, so `passage_max_tokens` cuts them for the judge, and `skip_margin`
leaves candidates the start model ranks far below the source passage unjudged. `source_first`
grades each query's source passage before its candidates and spends no call on the candidates of
a query whose own passage fails the positive threshold: mining would drop that query anyway.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from synthrank.config import at_least, within
from synthrank.errors import ConfigError, InputFormatError, InvalidArgumentError, LLMError
from synthrank.llm.cache import ResponseCache
from synthrank.llm.client import LLMClient, Reply, ReplyFormatError
from synthrank.llm.config import LLMConfig
from synthrank.llm.prompts import PromptTemplate, defuse, load_examples, load_template
from synthrank.llm.runner import Outcome, drain
from synthrank.records import JsonlAppender, Judgment, Passage, Query, RunLayout, read_jsonl, repair_tail

TEMPLATE = "judge_relevance"
EXAMPLES = "judge_examples.jsonl"
LIST_TEMPLATE = "judge_listwise"
LIST_EXAMPLES = "judge_list_examples.jsonl"
GRADES = ("0", "1", "2", "3")
_GRADE = re.compile(
    r"^[\s*_`\"'(\[]*(?:(?:grade|relevance|score|answer)\s*[:=]?\s*)?([0-3])(?![\d.])", re.IGNORECASE
)


@dataclass
class JudgeConfig:
    """top_m candidates per query are judged besides the source passage (deduplicated).

    few_shot graded examples (default file: the packaged `judge_examples.jsonl`, or
    `judge_list_examples.jsonl` in listwise mode) go before each pair as earlier conversation turns;
    servers with prefix caching evaluate them once.
    mode: pointwise (one call per pair) or listwise (one call per `list_size` passages of a query,
        the reply constrained by a JSON schema unless `list_schema` is off).
    passage_max_tokens: passage text shown to the judge cut to this many tokens of `[llm] tokenizer`
        (default: the start model's tokenizer); None = only `max_passage_chars`.
    skip_margin: candidates whose start-model cosine is more than this below the source passage's
        are not judged (they stay unjudged: easier negatives for `[mine] allow_unjudged`).
    ambiguous_first: judge the pairs closest to the source passage's cosine first, so a `max_cost`
        stop leaves the grades that decide least.
    source_first: grade every query's source passage first and leave the candidates of a query
        whose source grades below `source_min_grade` unjudged: with no graded candidate it has no
        positive, so mining drops it (as `source_judged_irrelevant`) even with `allow_unjudged`.
        Pointwise calls are the ungated ones, so cached replies are reused; in listwise mode each
        source is graded in a list of its own, so cached ungated lists are not.
    source_min_grade: the gate's threshold; None = `[mine] positive_min_grade` (filled in when the
        pipeline config is built; the `judge` command alone uses that key's default). Set above
        it, a gated query whose source still counts as a positive has only unjudged negatives.
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
    mode: Literal["pointwise", "listwise"] = "pointwise"
    list_size: int = 10
    list_schema: bool = True
    passage_max_tokens: int | None = None
    skip_margin: float | None = None
    ambiguous_first: bool = False
    source_first: bool = False
    source_min_grade: int | None = None

    def __post_init__(self) -> None:
        if self.source_first and not self.include_source:
            raise ConfigError(
                "needs include_source = true (the gate grades the source passage)",
                section="judge",
                key="source_first",
            )
        if self.source_min_grade is not None and not 1 <= self.source_min_grade <= 3:
            raise ConfigError(
                f"must be in [1, 3] when set (grades are 0-3), got {self.source_min_grade}",
                section="judge",
                key="source_min_grade",
            )
        if self.mode not in ("pointwise", "listwise"):
            raise ConfigError(
                f"must be 'pointwise' or 'listwise', got {self.mode!r}", section="judge", key="mode"
            )
        at_least(self, "judge", 1, "list_size", "max_tokens", "max_passage_chars")
        at_least(self, "judge", 1, "passage_max_tokens", "workers", optional=True)
        at_least(self, "judge", 0, "skip_margin", optional=True)
        at_least(self, "judge", 0, "top_m", "few_shot", "temperature")
        within(self, "judge", 0, 20, "top_logprobs")


@dataclass(frozen=True)
class JudgePair:
    query_id: str
    query: str
    passage: Passage
    gap: float = 0.0  # source passage's start-model cosine minus this passage's (0: the source itself)


@dataclass
class JudgeResult:
    judgments: list[Judgment | None]  # aligned with the pairs; None = not judged (failure or budget)
    outcome: Outcome  # counts calls: pairs in pointwise mode, lists in listwise mode
    failed_pairs: int = 0


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


@dataclass(frozen=True)
class ListPrompt:
    """The listwise template plus its examples (a query, its passages, one grade each)."""

    template: PromptTemplate
    examples: list[dict[str, Any]]

    @classmethod
    def load(cls, cfg: JudgeConfig) -> ListPrompt:
        template = load_template(LIST_TEMPLATE, cfg.prompts)
        required: dict[str, type] = {"query": str, "passages": list, "grades": list}
        examples = (
            load_examples(LIST_EXAMPLES, cfg.few_shot_file, cfg.prompts, required=required)
            if cfg.few_shot
            else []
        )
        for example in examples:
            texts, grades = example["passages"], example["grades"]
            if len(texts) != len(grades) or not all(isinstance(t, str) for t in texts):
                raise ConfigError(
                    f"listwise example {example['query']!r}: one passage text per grade expected",
                    section="judge",
                    key="few_shot_file",
                )
            if not all(isinstance(g, int) and 0 <= g <= 3 for g in grades):
                raise ConfigError(
                    f"listwise example {example['query']!r}: grades must be 0-3",
                    section="judge",
                    key="few_shot_file",
                )
        return cls(template, examples[: cfg.few_shot])

    def turn(self, query: str, passages: Sequence[str]) -> dict[str, str]:
        blocks = "\n".join(
            self.template.render("passage", number=i, passage=defuse(text))
            for i, text in enumerate(passages, start=1)
        )
        content = self.template.render("user", query=defuse(query), passages=blocks, n=len(passages))
        return {"role": "user", "content": content}

    def messages(self, query: str, passages: Sequence[Passage], max_chars: int) -> list[dict[str, str]]:
        messages = [{"role": "system", "content": self.template.render("system")}]
        for example in self.examples:
            messages += [
                self.turn(example["query"], example["passages"]),
                {"role": "assistant", "content": json.dumps({"grades": example["grades"]})},
            ]
        texts = [f"{p.title}\n{p.text[:max_chars]}" if p.title else p.text[:max_chars] for p in passages]
        messages.append(self.turn(query, texts))
        return messages


def grades_schema(n: int) -> dict[str, Any]:
    """response_format for exactly n grades 0-3, in the json_schema form llama.cpp, vLLM and OpenAI take."""
    grades = {
        "type": "array",
        "items": {"type": "integer", "enum": [0, 1, 2, 3]},
        "minItems": n,
        "maxItems": n,
    }
    schema = {
        "type": "object",
        "properties": {"grades": grades},
        "required": ["grades"],
        "additionalProperties": False,
    }
    return {"type": "json_schema", "json_schema": {"name": "grades", "strict": True, "schema": schema}}


def parse_grade_list(text: str, n: int) -> list[int | None] | None:
    """n grades from a listwise reply (`{"grades": [...]}` or a bare list, fenced or not); None when
    the reply holds no such list; a grade that is not 0-3, or is missing, is None."""
    match = re.search(r"[\[{].*[\]}]", text, re.DOTALL)
    try:
        data = json.loads(match.group(0)) if match else None
    except json.JSONDecodeError:
        return None
    if isinstance(data, dict):
        data = data.get("grades")
    if not isinstance(data, list):
        return None
    grades: list[int | None] = [
        g if isinstance(g, int) and not isinstance(g, bool) and 0 <= g <= 3 else None for g in data[:n]
    ]
    return grades + [None] * (n - len(grades))


def expected_grades(logprobs: list[dict[str, Any]] | None, grades: list[int | None]) -> list[float | None]:
    """Per grade of a listwise reply, the expected grade from the logprobs at its grade token; all
    None unless the reply's grade tokens line up one to one with the parsed grades."""
    positions = [p for p in logprobs or [] if str(p.get("token", "")).strip() in GRADES]
    if len(positions) != len(grades) or any(
        g is None or int(str(p["token"]).strip()) != g for p, g in zip(positions, grades, strict=True)
    ):
        return [None] * len(grades)
    return [expected_grade([p]) for p in positions]


async def judge_list(
    client: LLMClient, pairs: Sequence[JudgePair], cfg: JudgeConfig, prompt: ListPrompt
) -> list[Judgment]:
    """One call grading every pair of `pairs` (all of one query); the reply is stored in each `raw`."""
    n = len(pairs)
    # small models pretty-print JSON: a grade can cost 5 tokens with its comma and indent
    params: dict[str, Any] = {"temperature": cfg.temperature, "max_tokens": 16 + 6 * n}
    if cfg.list_schema:
        params["response_format"] = grades_schema(n)
    if cfg.logprobs:
        params.update(logprobs=True, top_logprobs=cfg.top_logprobs)

    def require_grades(reply: Reply) -> None:
        grades = parse_grade_list(reply.content, n)
        if grades is None or None in grades:
            raise ReplyFormatError(f"no list of {n} grades 0-3 in reply {reply.content[:80]!r}")

    reply = await client.chat(
        prompt.messages(pairs[0].query, [p.passage for p in pairs], cfg.max_passage_chars),
        template_version=prompt.template.version,
        validate=require_grades,
        **params,
    )
    grades = parse_grade_list(reply.content, n) or [None] * n
    expected = expected_grades(reply.logprobs, grades)
    return [
        Judgment(
            query_id=pair.query_id,
            passage_id=pair.passage.passage_id,
            doc_id=pair.passage.doc_id,
            grade=grade,
            expected_grade=exp,
            raw=reply.content,
            template_version=prompt.template.version,
            model=client.model,
        )
        for pair, grade, exp in zip(pairs, grades, expected, strict=True)
    ]


def group_lists(pairs: Sequence[JudgePair], size: int) -> list[list[int]]:
    """Indices of `pairs` per listwise call: each query's pairs, in the given order, in chunks of
    `size`; lists are ordered by their first pair's place, so an ambiguous-first order carries over."""
    by_query: dict[str, list[int]] = {}
    for index, pair in enumerate(pairs):
        by_query.setdefault(pair.query_id, []).append(index)
    lists = [rows[i : i + size] for rows in by_query.values() for i in range(0, len(rows), size)]
    return sorted(lists, key=lambda rows: rows[0])


async def judge_pairs(
    client: LLMClient,
    pairs: Sequence[JudgePair],
    cfg: JudgeConfig | None = None,
    *,
    on_judgment: Callable[[Judgment], None] | None = None,
    settled: int = 0,
) -> JudgeResult:
    """Judge `pairs` through `client` (cached, limited, retried); usable by other stages. `settled`:
    pairs of the same stage judged by earlier runs (they count in the share of failures)."""
    cfg = cfg or JudgeConfig()
    judgments: list[Judgment | None] = [None] * len(pairs)

    def on_result(index: int, judgment: Judgment) -> None:
        judgments[index] = judgment
        if on_judgment is not None:
            on_judgment(judgment)

    workers = cfg.workers or 2 * client.cfg.concurrency
    if cfg.mode == "listwise":
        list_prompt = ListPrompt.load(cfg)
        lists = group_lists(pairs, cfg.list_size)
        failed_pairs = 0

        async def work(rows: list[int]) -> list[Judgment]:
            nonlocal failed_pairs
            try:
                return await judge_list(client, [pairs[i] for i in rows], cfg, list_prompt)
            except LLMError:
                failed_pairs += len(rows)
                raise

        def on_list(rows: list[int], results: list[Judgment]) -> None:
            for index, judgment in zip(rows, results, strict=True):
                on_result(index, judgment)

        outcome = await drain(
            lists,
            work,
            on_list,
            workers=workers,
            total=len(lists),
            description="judge",
            max_failure_rate=client.cfg.max_failure_rate,
            settled=settled // cfg.list_size,  # the items here are lists: at most list_size pairs each
        )
        return JudgeResult(judgments, outcome, failed_pairs)

    prompt = JudgePrompt.load(cfg)
    outcome = await drain(
        range(len(pairs)),
        lambda i: judge_pair(client, pairs[i], cfg, prompt),
        on_result,
        workers=workers,
        total=len(pairs),
        description="judge",
        max_failure_rate=client.cfg.max_failure_rate,
        settled=settled,
    )
    return JudgeResult(judgments, outcome, outcome.failed)


async def judge_source_first(
    client: LLMClient,
    pairs: Sequence[JudgePair],
    cfg: JudgeConfig,
    sources: dict[str, str],
    known: dict[str, int | None],
    min_grade: int,
    *,
    on_judgment: Callable[[Judgment], None] | None = None,
    settled: int = 0,
) -> tuple[JudgeResult, set[str]]:
    """Judge the source pairs among `pairs` (`sources`: query_id -> its source passage_id) first,
    then the other pairs of each query whose source grade is not below `min_grade`.

    `known` holds source grades judged before (a resumed run). A source without a grade (its call
    failed, or the reply was unparsable) gates nothing: its query is judged as without the gate.
    The candidates are only judged when every source call is settled, so a `max_cost` stop or too
    many failures leave no query judged past a gate it may fail. Returns the results aligned with
    `pairs` (None for a pair left unjudged) and the ids of the gated queries.
    """
    first = [i for i, p in enumerate(pairs) if sources.get(p.query_id) == p.passage.passage_id]
    head = await judge_pairs(client, [pairs[i] for i in first], cfg, on_judgment=on_judgment, settled=settled)
    judgments: list[Judgment | None] = [None] * len(pairs)
    grades = dict(known)
    for index, judgment in zip(first, head.judgments, strict=True):
        judgments[index] = judgment
        if judgment is not None:
            grades[judgment.query_id] = judgment.grade
    gated = {qid for qid, grade in grades.items() if grade is not None and grade < min_grade}
    if not head.outcome.complete:
        return JudgeResult(judgments, head.outcome, head.failed_pairs), gated
    is_first = set(first)
    rest = [i for i, p in enumerate(pairs) if i not in is_first and p.query_id not in gated]
    tail = await judge_pairs(
        client,
        [pairs[i] for i in rest],
        cfg,
        on_judgment=on_judgment,
        settled=settled + sum(j is not None for j in head.judgments),
    )
    for index, judgment in zip(rest, tail.judgments, strict=True):
        judgments[index] = judgment
    outcome = tail.outcome
    outcome.done += head.outcome.done
    outcome.failed += head.outcome.failed
    return JudgeResult(judgments, outcome, head.failed_pairs + tail.failed_pairs), gated


def cut_passages(
    passages: Iterable[Passage], max_tokens: int, tokenizer: str | None
) -> tuple[dict[str, Passage], dict[str, int]]:
    """Each passage with its text cut after `max_tokens` tokens (on a token boundary), and counts:
    passages_budgeted, passages_cut, passage_tokens (before the cut), passage_tokens_judged (after)."""
    from tokenizers import Tokenizer

    from synthrank.models import DEFAULT_EMBEDDER, resolve_model
    from synthrank.native.chunking import tokenizer_file

    try:
        tok = Tokenizer.from_file(str(tokenizer_file(resolve_model(tokenizer or DEFAULT_EMBEDDER))))
    except Exception as exc:  # tokenizers raises a bare Exception for unreadable files
        raise ConfigError(
            f"cannot load the tokenizer that counts [judge] passage_max_tokens: {exc}",
            section="llm",
            key="tokenizer",
        ) from exc
    tok.no_padding()  # a tokenizer.json may pad or truncate for its model; here every token counts
    tok.no_truncation()
    items = list(passages)
    encodings = tok.encode_batch([p.text for p in items], add_special_tokens=False)
    cut: dict[str, Passage] = {}
    counts = {
        "passages_budgeted": len(items),
        "passages_cut": 0,
        "passage_tokens": 0,
        "passage_tokens_judged": 0,
    }
    for passage, encoding in zip(items, encodings, strict=True):
        n = len(encoding.ids)
        counts["passage_tokens"] += n
        counts["passage_tokens_judged"] += min(n, max_tokens)
        if n > max_tokens:
            counts["passages_cut"] += 1
            passage = dataclasses.replace(passage, text=passage.text[: encoding.offsets[max_tokens - 1][1]])
        cut[passage.passage_id] = passage
    return cut, counts


def source_similarities(
    embeddings: Path, query_ids: Sequence[str], source_rows: dict[str, int]
) -> dict[str, float]:
    """Start-model cosine of each query with its source passage, from retrieve's embeddings
    (`queries.npy` rows follow the candidates' query order; both are L2-normalised)."""
    try:
        queries = np.load(embeddings / "queries.npy", mmap_mode="r")
        passages = np.load(embeddings / "passages.npy", mmap_mode="r")
    except (OSError, ValueError) as exc:
        raise InputFormatError(
            embeddings, None, f"[judge] skip_margin / ambiguous_first need retrieve's embeddings: {exc}"
        ) from exc
    if len(queries) != len(query_ids):
        raise InputFormatError(embeddings / "queries.npy", None, "older than candidates.npz: re-run retrieve")
    return {
        qid: float(np.dot(queries[i], passages[source_rows[qid]]))
        for i, qid in enumerate(query_ids)
        if qid in source_rows
    }


def plan_pairs(
    queries: Iterable[Query],
    passages: Sequence[Passage],
    candidates: Path,
    cfg: JudgeConfig,
    *,
    counts: dict[str, int] | None = None,
) -> tuple[list[JudgePair], int]:
    """Source passage + top_m candidates per query, deduplicated; plus how many queries had no row.

    With `skip_margin` or `ambiguous_first`, each pair's gap is the source passage's start-model
    cosine (from the embeddings next to `candidates`) minus the candidate's (its retrieve score);
    `counts` receives `candidate_pairs` (before skipping) and `skipped_far_below`."""
    row_of = {p.passage_id: i for i, p in enumerate(passages)}
    use_gaps = cfg.skip_margin is not None or cfg.ambiguous_first
    try:
        with np.load(candidates, allow_pickle=False) as data:
            query_ids = [str(q) for q in data["query_ids"]]
            ids = np.asarray(data["ids"], dtype=np.int64)
            scores = np.asarray(data["scores"], dtype=np.float32) if use_gaps else np.zeros(ids.shape)
    except (OSError, KeyError, ValueError) as exc:
        raise InputFormatError(candidates, None, f"cannot read candidates (query_ids, ids): {exc}") from exc
    if ids.ndim != 2 or ids.shape[0] != len(query_ids):
        raise InputFormatError(candidates, None, f"ids has shape {ids.shape}, expected ({len(query_ids)}, k)")
    if scores.shape != ids.shape:
        raise InputFormatError(candidates, None, f"scores has shape {scores.shape}, ids {ids.shape}")
    queries = list(queries)
    source_sim: dict[str, float] = {}
    if use_gaps:
        sources = {q.query_id: row_of[q.passage_id] for q in queries if q.passage_id in row_of}
        source_sim = source_similarities(candidates.parent / "embeddings", query_ids, sources)
    cand_row = {qid: i for i, qid in enumerate(query_ids)}
    pairs: list[JudgePair] = []
    without = skipped = 0
    for query in queries:
        rows: list[int] = []
        if cfg.include_source:
            if query.passage_id not in row_of:
                raise InvalidArgumentError(
                    f"query {query.query_id}: source passage {query.passage_id!r} is not in the passages"
                )
            rows.append(row_of[query.passage_id])
        gaps = [0.0] * len(rows)
        if query.query_id in cand_row:
            i = cand_row[query.query_id]
            for row, score in zip(ids[i, : cfg.top_m].tolist(), scores[i, : cfg.top_m].tolist(), strict=True):
                if row < -1 or row >= len(passages):
                    raise InputFormatError(candidates, None, f"row {row} of {query.query_id} out of range")
                if row < 0 or row in rows:
                    continue
                gap = source_sim.get(query.query_id, score) - score if use_gaps else 0.0
                if cfg.skip_margin is not None and gap > cfg.skip_margin:
                    skipped += 1
                    continue
                rows.append(row)
                gaps.append(gap)
        else:
            without += 1
        pairs.extend(
            JudgePair(query.query_id, query.text, passages[r], g) for r, g in zip(rows, gaps, strict=True)
        )
    if cfg.ambiguous_first:  # a stable sort: pairs of one query stay in rank order within a gap
        pairs.sort(key=lambda p: abs(p.gap))
    if counts is not None:
        counts.update(candidate_pairs=len(pairs) + skipped, skipped_far_below=skipped)
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
    queries = list(read_jsonl(layout.queries, Query))
    plan_counts: dict[str, int] = {}
    pairs, without = plan_pairs(queries, passages, layout.candidates, cfg, counts=plan_counts)
    repair_tail(layout.judgments)
    done = (
        {(j.query_id, j.passage_id): j.grade for j in read_jsonl(layout.judgments, Judgment)}
        if layout.judgments.exists()
        else {}
    )
    pending = [p for p in pairs if (p.query_id, p.passage.passage_id) not in done]
    already = len(pairs) - len(pending)
    budget: dict[str, int] = {}
    if cfg.passage_max_tokens is not None and pending:
        unique = {p.passage.passage_id: p.passage for p in pending}
        cut, budget = cut_passages(unique.values(), cfg.passage_max_tokens, llm_cfg.tokenizer)
        pending = [dataclasses.replace(p, passage=cut[p.passage.passage_id]) for p in pending]
    sources = {q.query_id: q.passage_id for q in queries}
    known = {qid: done[qid, pid] for qid, pid in sources.items() if (qid, pid) in done}
    gated: set[str] = set()
    if cfg.source_min_grade is not None:
        min_grade = cfg.source_min_grade
    else:
        from synthrank.stages.mine import MineConfig

        min_grade = MineConfig.positive_min_grade
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

        async with LLMClient(llm_cfg, cache=cache, stage="judge", ledger_path=layout.llm_ledger) as client:
            if cfg.source_first:
                result, gated = await judge_source_first(
                    client, pending, cfg, sources, known, min_grade, on_judgment=on_judgment, settled=already
                )
            else:
                result = await judge_pairs(client, pending, cfg, on_judgment=on_judgment, settled=already)
            ledger = client.ledger
    if print_summary:
        ledger.print_table()
    # candidate pairs of gated queries that no run judged: left out by the gate, counted like skips
    gated_pairs = sum(
        p.query_id in gated
        and p.passage.passage_id != sources[p.query_id]
        and (p.query_id, p.passage.passage_id) not in done
        for p in pairs
    )
    gate_counts = (
        {"source_min_grade": min_grade, "source_gated_queries": len(gated), "source_gated_pairs": gated_pairs}
        if cfg.source_first
        else {}
    )
    return {
        "pairs": len(pairs),
        "already_judged": already,
        "judged": sum(j is not None for j in result.judgments),
        "failed": result.failed_pairs,
        "queries_without_candidates": without,
        "mode": cfg.mode,
        "top_m": cfg.top_m,  # what `plan` scales its measured pairs per query by
        **plan_counts,
        **gate_counts,
        "judged_share": round((len(pairs) - gated_pairs) / max(1, plan_counts["candidate_pairs"]), 4),
        **budget,
        "grades": dict(sorted(grades.items())),
        "complete": result.outcome.complete,
        "stop_reason": result.outcome.stop_reason,
        "seconds": round(time.monotonic() - started, 3),
        **ledger.summary("judge"),
    }
