"""Text normalisation, word tokens, shingles and hashes shared by chunking, dedup and mining.

`normalize` is NFKC then full case folding (Python's `unicodedata.normalize("NFKC", s).casefold()`);
a word token is a maximal run of letters, marks, numbers and connector punctuation (categories L*,
M*, N*, Pc) of the normalised text. Shingles are taken over the normalised tokens: character
shingles over the tokens joined by single spaces, word shingles over consecutive tokens; a text
shorter than one shingle is one shingle. Both backends agree on every character that Python's
Unicode database assigns; unassigned code points (category Cn) may differ.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from synthrank.native import _backend, _checks


def normalize(texts: Sequence[str], *, backend: str | None = None, threads: int | None = None) -> list[str]:
    """NFKC + case folding of each text."""
    items = _checks.texts_list("texts", texts)
    return _backend.guarded(_backend.get(backend).normalize, items, threads=_checks.threads(threads))


def word_tokens(
    texts: Sequence[str], *, backend: str | None = None, threads: int | None = None
) -> list[list[str]]:
    """The word tokens of each normalised text."""
    items = _checks.texts_list("texts", texts)
    return _backend.guarded(_backend.get(backend).word_tokens, items, threads=_checks.threads(threads))


def char_shingles(text: str, n: int, *, backend: str | None = None) -> list[str]:
    """Every run of `n` characters of the normalised tokens joined by spaces, in order."""
    (item,) = _checks.texts_list("text", [text])
    return _backend.guarded(_backend.get(backend).char_shingles, item, _checks.integer("n", n, minimum=1))


def word_shingles(text: str, n: int, *, backend: str | None = None) -> list[str]:
    """Every run of `n` consecutive normalised tokens joined by a space, in order."""
    (item,) = _checks.texts_list("text", [text])
    return _backend.guarded(_backend.get(backend).word_shingles, item, _checks.integer("n", n, minimum=1))


def fnv1a64(texts: Sequence[str], *, backend: str | None = None, threads: int | None = None) -> np.ndarray:
    """FNV-1a 64 of the UTF-8 bytes of each text (not normalised), as uint64."""
    items = _checks.texts_list("texts", texts)
    return _backend.guarded(_backend.get(backend).fnv1a64, items, threads=_checks.threads(threads))
