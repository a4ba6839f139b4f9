"""Inverse-Cloze pseudo-queries: a sentence cut out of a passage, relevant to the rest of it.

The warm start trains on them and the pseudo-dev set picks the fusion weight on others, so both
stages use this module (with it in either stage, `distill` and `evaluate` would import each other).
"""

from __future__ import annotations

import re

import numpy as np

from synthrank.records import RunLayout, write_text_atomic

MIN_SENTENCE_WORDS = 5
MAX_SENTENCE_WORDS = 32
SOURCES = "pseudo_query_passages.txt"  # in the warm-start folder: the passages distill cut from

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def cut_sentence(
    text: str,
    rng: np.random.Generator,
    min_words: int = MIN_SENTENCE_WORDS,
    max_words: int = MAX_SENTENCE_WORDS,
) -> tuple[str, str] | None:
    """(a sentence of `text` to use as the query, the text without it), or None if none fits."""
    sentences = _SENTENCE_END.split(text.strip())
    fits = [i for i, s in enumerate(sentences) if min_words <= len(s.split()) <= max_words]
    if len(sentences) < 2 or not fits:
        return None
    i = fits[int(rng.integers(len(fits)))]
    return sentences[i], " ".join(sentences[:i] + sentences[i + 1 :])


def write_pseudo_query_sources(layout: RunLayout, passage_ids: list[str]) -> None:
    layout.warm_start.mkdir(parents=True, exist_ok=True)
    write_text_atomic(layout.warm_start / SOURCES, "".join(f"{p}\n" for p in passage_ids))


def pseudo_query_sources(layout: RunLayout) -> set[str]:
    """The passages the run's warm start cut its pseudo-queries from (none before it ran)."""
    path = layout.warm_start / SOURCES
    return set(path.read_text(encoding="utf-8").split()) if path.is_file() else set()
