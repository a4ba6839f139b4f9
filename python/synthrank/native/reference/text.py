"""Text normalisation, word tokens and shingles: the readable twin of `synthrank-core::text`.

Normalisation is NFKC then full case folding (`str.casefold`). A word token is a maximal run of
characters whose general category is a letter (L*), mark (M*), number (N*) or connector punctuation
(Pc), taken over the normalised text. Characters unassigned in Python's Unicode database (category
Cn) may differ from the native core, which ships newer tables; every assigned character matches.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

import numpy as np

from synthrank.native.reference.hash import fnv1a64_str


def normalize_one(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def is_word_char(char: str) -> bool:
    category = unicodedata.category(char)
    return category[0] in "LMN" or category == "Pc"


def tokens_of_normalized(normalized: str) -> list[str]:
    tokens: list[str] = []
    start = -1
    for position, char in enumerate(normalized):
        if is_word_char(char):
            if start < 0:
                start = position
        elif start >= 0:
            tokens.append(normalized[start:position])
            start = -1
    if start >= 0:
        tokens.append(normalized[start:])
    return tokens


def char_shingles_of_normalized(normalized: str, n: int) -> list[str]:
    # Shingles run over the tokens joined by one space, so punctuation and spacing do not matter.
    joined = " ".join(tokens_of_normalized(normalized))
    if not joined:
        return []
    if len(joined) <= n:
        return [joined]
    return [joined[i : i + n] for i in range(len(joined) - n + 1)]


def word_shingles_of_normalized(normalized: str, n: int) -> list[str]:
    tokens = tokens_of_normalized(normalized)
    if not tokens:
        return []
    if len(tokens) <= n:
        return [" ".join(tokens)]
    return [" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def normalize(texts: Sequence[str], threads: int | None = None) -> list[str]:
    return [normalize_one(text) for text in texts]


def word_tokens(texts: Sequence[str], threads: int | None = None) -> list[list[str]]:
    return [tokens_of_normalized(normalize_one(text)) for text in texts]


def char_shingles(text: str, n: int) -> list[str]:
    return char_shingles_of_normalized(normalize_one(text), n)


def word_shingles(text: str, n: int) -> list[str]:
    return word_shingles_of_normalized(normalize_one(text), n)


def fnv1a64(texts: Sequence[str], threads: int | None = None) -> np.ndarray:
    return np.array([fnv1a64_str(text) for text in texts], dtype=np.uint64)
