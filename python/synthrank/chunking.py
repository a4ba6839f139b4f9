"""Split documents into passages of at most `max_tokens` tokens, with optional overlap.

Windows hold up to `max_tokens` tokens and the next starts `overlap` tokens before the previous
one's end; the window that reaches the end of a document is its last, and a document with no token
yields no passage. `chunk_words` counts runs of non-white-space characters (Unicode White_Space);
`chunk_tokens` counts a Hugging Face tokenizer's tokens, special tokens excluded, with the
tokenizer's own truncation and padding switched off, and keeps windows on word boundaries (the
tokenizer's word ids) so that every passage re-encodes to at most `max_tokens` tokens; only a single
word longer than a window is cut inside. Offsets are character offsets into the original text:
passage = text[start:end].
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from synthrank import _backend, _checks
from synthrank.errors import InvalidArgumentError, TokenizerError


@dataclass(frozen=True, eq=False)  # arrays have no single truth value to compare by
class Chunks:
    """Passages as parallel arrays: doc_index (int64), start and end (int64), n_tokens (int32)."""

    doc_index: np.ndarray
    start: np.ndarray
    end: np.ndarray
    n_tokens: np.ndarray

    def __len__(self) -> int:
        return len(self.doc_index)

    def texts(self, docs: Sequence[str]) -> list[str]:
        """The passage strings, given the documents that were chunked."""
        return [
            docs[d][s:e]
            for d, s, e in zip(self.doc_index.tolist(), self.start.tolist(), self.end.tolist(), strict=True)
        ]


def _window(max_tokens: int, overlap: int) -> tuple[int, int]:
    max_tokens = _checks.integer("max_tokens", max_tokens, minimum=1)
    overlap = _checks.integer("overlap", overlap, minimum=0)
    if overlap >= max_tokens:
        raise InvalidArgumentError(f"overlap: must be < max_tokens ({max_tokens}), got {overlap}")
    return max_tokens, overlap


def tokenizer_file(tokenizer: str | Path) -> Path:
    """The tokenizer.json that `tokenizer` names: the file itself or a folder holding one."""
    path = Path(tokenizer).expanduser()
    if path.is_dir():
        path = path / "tokenizer.json"
    if not path.is_file():
        raise TokenizerError(f"tokenizer: no tokenizer file at {path}")
    return path


def chunk_words(
    texts: Sequence[str],
    *,
    max_tokens: int,
    overlap: int = 0,
    backend: str | None = None,
    threads: int | None = None,
) -> Chunks:
    """Windows of `max_tokens` white-space separated words."""
    items = _checks.texts_list("texts", texts)
    max_tokens, overlap = _window(max_tokens, overlap)
    arrays = _backend.call(
        backend, "chunk_words", items, max_tokens, overlap, threads=_checks.threads(threads)
    )
    return Chunks(*arrays)


def chunk_tokens(
    texts: Sequence[str],
    *,
    tokenizer: str | Path,
    max_tokens: int,
    overlap: int = 0,
    backend: str | None = None,
    threads: int | None = None,
) -> Chunks:
    """Windows of `max_tokens` tokens of the tokenizer in `tokenizer` (tokenizer.json or its folder)."""
    items = _checks.texts_list("texts", texts)
    max_tokens, overlap = _window(max_tokens, overlap)
    path = str(tokenizer_file(tokenizer))
    arrays = _backend.call(
        backend, "chunk_tokens", items, path, max_tokens, overlap, threads=_checks.threads(threads)
    )
    return Chunks(*arrays)
