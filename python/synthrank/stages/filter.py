"""Filter generated queries before any retrieval: drop and count what would poison training.

Checks, in order (a query is counted under the first it fails): empty/unparsable, too short, too
long, wrong format (markup, URLs, a leftover label), instruction echo (the model talking about
itself or obeying an injected instruction: "I have been PWNED", "As an AI..."), wrong script (not
the passage's writing system), copied from the passage (share of its words covered by word n-grams
of the passage), off topic (not one content word in common with its passage), exact duplicate,
near duplicate (MinHash over word shingles, the native finder). The first query of
a duplicate cluster is kept.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from rich.table import Table

from synthrank.config import at_least, within
from synthrank.console import table_console
from synthrank.errors import ConfigError, EmptyOutputError, InputFormatError
from synthrank.native.dedup import near_duplicates
from synthrank.native.text import word_tokens
from synthrank.records import Passage, Query, RunLayout, read_jsonl, write_jsonl_atomic

REASONS = (
    "empty_or_unparsable",
    "too_short",
    "too_long",
    "wrong_format",
    "instruction_echo",
    "wrong_script",
    "copied_from_passage",
    "off_topic",
    "exact_duplicate",
    "near_duplicate",
)
FORMAT_MARKERS = ("http://", "https://", "<", ">", "{", "}", "```", "\\n")
# replies about the model or the task, not a searcher's query; the usual echoes of an injection
INSTRUCTION_ECHO = re.compile(
    r"\b(?:i have been pwned|ignore (?:all |the )?(?:previous|above|prior) instructions|as an ai\b|"
    r"i (?:cannot|can't|am unable)|i'?m sorry|sorry, (?:but )?i|here (?:are|is) (?:the |some |\d+ )?"
    r"(?:queries|questions|keywords))",
    re.IGNORECASE,
)
# words too common to tie a query to a passage (English; other languages keep more words, which is safe)
STOPWORDS = frozenset(
    {
        "a",
        "an",
        "the",
        "and",
        "or",
        "but",
        "if",
        "of",
        "to",
        "in",
        "on",
        "at",
        "by",
        "for",
        "with",
        "from",
        "as",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "do",
        "does",
        "did",
        "how",
        "what",
        "when",
        "where",
        "which",
        "who",
        "whom",
        "why",
        "whose",
        "can",
        "could",
        "should",
        "would",
        "may",
        "might",
        "must",
        "will",
        "shall",
        "this",
        "that",
        "these",
        "those",
        "it",
        "its",
        "there",
        "their",
        "they",
        "them",
        "we",
        "you",
        "your",
        "i",
        "me",
        "my",
        "our",
        "he",
        "she",
        "his",
        "her",
        "not",
        "no",
        "about",
        "into",
        "than",
        "then",
        "so",
        "such",
        "any",
        "some",
        "all",
        "more",
        "most",
        "other",
        "also",
        "very",
        "just",
        "only",
    }
)


@dataclass
class FilterConfig:
    """copy_ngram/copy_overlap: a query whose words are covered >= copy_overlap by word n-grams
    (n = copy_ngram) that also occur in its passage counts as copied."""

    min_words: int = 3
    max_words: int = 64
    copy_ngram: int = 4
    copy_overlap: float = 0.8
    near_duplicate_threshold: float = 0.8
    shingle_size: int = 2
    check_script: bool = True
    require_shared_word: bool = True  # drop a query without one content word of its passage (off_topic)

    def __post_init__(self) -> None:
        if not 1 <= self.min_words <= self.max_words:
            raise ConfigError(
                f"need 1 <= min_words <= max_words, got {self.min_words} and {self.max_words}",
                section="filter",
                key="min_words" if self.min_words < 1 else "max_words",
            )
        at_least(self, "filter", 1, "copy_ngram", "shingle_size")
        within(self, "filter", 0, 1, "copy_overlap", "near_duplicate_threshold", ends="(]")


def dominant_script(text: str) -> str | None:
    """The writing system most letters belong to (first word of their Unicode name: LATIN, CJK...)."""
    scripts: Counter[str] = Counter()
    for char in text:
        if char.isalpha():
            name = unicodedata.name(char, "")
            if name:
                scripts[name.split(" ", 1)[0]] += 1
    return scripts.most_common(1)[0][0] if scripts else None


def copied_share(query_tokens: list[str], passage_ngrams: set[tuple[str, ...]], n: int) -> float:
    """Share of the query's tokens inside some n-gram that also occurs in the passage."""
    if len(query_tokens) < n:
        return 0.0  # too short to tell copying from sharing the topic's terms
    covered = [False] * len(query_tokens)
    for i in range(len(query_tokens) - n + 1):
        if tuple(query_tokens[i : i + n]) in passage_ngrams:
            covered[i : i + n] = [True] * n
    return sum(covered) / len(query_tokens)


def _stem(word: str) -> str:
    """A crude stem, so "diabetic" meets "diabetes": the first five characters of longer words."""
    return word[:5]


def content_stems(tokens: list[str]) -> set[str]:
    return {_stem(t) for t in tokens if len(t) > 2 and t not in STOPWORDS and not t.isdigit()}


def _ngrams(tokens: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


def filter_queries(
    queries: list[Query], passages: dict[str, Passage], cfg: FilterConfig
) -> tuple[list[Query], Counter[str]]:
    """The kept queries in input order and the count of drops per reason."""
    dropped: Counter[str] = Counter()
    tokens = word_tokens([q.text for q in queries])
    survivors: list[int] = []
    passage_cache: dict[str, tuple[set[tuple[str, ...]], str | None, set[str]]] = {}
    for i, query in enumerate(queries):
        words = tokens[i]
        text = query.text.strip()
        reason = None
        if not text or not words:
            reason = "empty_or_unparsable"
        elif len(words) < cfg.min_words:
            reason = "too_short"
        elif len(words) > cfg.max_words:
            reason = "too_long"
        elif any(m in text.lower() for m in FORMAT_MARKERS) or text.endswith(":"):
            reason = "wrong_format"
        elif INSTRUCTION_ECHO.search(text):
            reason = "instruction_echo"
        else:
            passage = passages.get(query.passage_id)
            if passage is not None:
                if query.passage_id not in passage_cache:
                    ptoks, ttoks = word_tokens([passage.text, passage.title])
                    passage_cache[query.passage_id] = (
                        _ngrams(ptoks, cfg.copy_ngram),
                        dominant_script(passage.text),
                        content_stems(ptoks + ttoks),
                    )
                grams, script, stems = passage_cache[query.passage_id]
                if cfg.check_script and script is not None and dominant_script(text) not in (script, None):
                    reason = "wrong_script"
                elif copied_share(words, grams, cfg.copy_ngram) >= cfg.copy_overlap:
                    reason = "copied_from_passage"
                elif cfg.require_shared_word and not content_stems(words) & stems:
                    reason = "off_topic"
        if reason:
            dropped[reason] += 1
        else:
            survivors.append(i)

    seen: set[str] = set()
    unique: list[int] = []
    for i in survivors:
        key = " ".join(tokens[i])
        if key in seen:
            dropped["exact_duplicate"] += 1
        else:
            seen.add(key)
            unique.append(i)
    kept = unique
    if len(unique) > 1:
        clusters = near_duplicates(
            [" ".join(tokens[i]) for i in unique],
            threshold=cfg.near_duplicate_threshold,
            shingle="word",
            shingle_size=cfg.shingle_size,
        )
        kept = [i for j, i in enumerate(unique) if int(clusters[j]) == j]
        dropped["near_duplicate"] += len(unique) - len(kept)
    return [queries[i] for i in kept], dropped


def run_filter(layout: RunLayout, cfg: FilterConfig, *, print_summary: bool = True) -> dict[str, Any]:
    """Read raw queries + passages, write `queries.jsonl` (atomically) and `filter_stats.json`."""
    if not layout.raw_queries.is_file():
        raise InputFormatError(layout.raw_queries, None, "not found (run `synthrank generate` first)")
    # replies arrive in completion order; sorting makes every later stage independent of it
    queries = sorted(read_jsonl(layout.raw_queries, Query), key=lambda q: q.query_id)
    wanted = {q.passage_id for q in queries}
    passages = {p.passage_id: p for p in read_jsonl(layout.passages, Passage) if p.passage_id in wanted}
    kept, dropped = filter_queries(queries, passages, cfg)
    write_jsonl_atomic(layout.queries, kept)
    drops = {reason: dropped.get(reason, 0) for reason in REASONS}
    stats = {"raw": len(queries), "kept": len(kept), "dropped": drops, "config": asdict(cfg)}
    stats_path = layout.root / "filter_stats.json"
    tmp = stats_path.with_name(stats_path.name + ".tmp")
    tmp.write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    tmp.replace(stats_path)
    if print_summary:
        table_console(stderr=True).print(stats_table(stats))
    if not kept:
        raise EmptyOutputError(empty_advice(stats))
    return {
        "raw": stats["raw"],
        "kept": stats["kept"],
        **{f"dropped_{k}": v for k, v in drops.items()},
    }


# what to change when a drop reason takes most queries
_DROP_ADVICE = {
    "empty": "the LLM's replies had no parsable query: check [llm] model and [generate] max_tokens",
    "too_short": "lower [filter] min_words",
    "too_long": "raise [filter] max_words",
    "wrong_format": "the LLM answers in markup/JSON: use an instruction-tuned [llm] model",
    "instruction_echo": "the LLM talks about itself or obeys the passages' text: use a stronger [llm] model",
    "off_topic": "queries share no word with their passage: set [filter] require_shared_word = false "
    "for paraphrase-style or cross-lingual queries",
    "wrong_script": "set [filter] check_script = false for multilingual corpora",
    "copied_from_passage": "raise [filter] copy_overlap (e.g. 0.95) or copy_ngram",
    "exact_duplicate": "raise [generate] temperature or lower [generate] n_queries",
    "near_duplicate": "raise [filter] near_duplicate_threshold (e.g. 0.9)",
}


def empty_advice(stats: dict[str, Any]) -> str:
    """Why the filter kept nothing, and the setting to change (names the biggest drop reason)."""
    if not stats["raw"]:
        return "filter: no raw queries to filter: generate wrote none (check the [llm] server and model)"
    reason, count = max(stats["dropped"].items(), key=lambda kv: kv[1])
    return (
        f"filter kept 0 of {stats['raw']} queries ({count} dropped as {reason.replace('_', ' ')}): "
        f"{_DROP_ADVICE.get(reason, 'see filter_stats.json')}"
    )


def stats_table(stats: dict[str, Any]) -> Table:
    table = Table(title="Query filter")
    table.add_column("outcome")
    table.add_column("queries", justify="right")
    table.add_column("share", justify="right")
    total = max(1, stats["raw"])
    table.add_row("kept", str(stats["kept"]), f"{stats['kept'] / total:.1%}")
    for reason, count in stats["dropped"].items():
        table.add_row(f"dropped: {reason.replace('_', ' ')}", str(count), f"{count / total:.1%}")
    table.add_row("raw total", str(stats["raw"]), "100%")
    return table
