"""Split documents into passages of at most `max_tokens` tokens, with optional overlap.

Windows hold up to `max_tokens` tokens and the next starts `overlap` tokens before the previous
one's end; the window that reaches the end of a document is its last, and a document with no token
yields no passage. `chunk_words` counts runs of non-white-space characters (Unicode White_Space);
`TokenChunker` (and `chunk_tokens`, its one-call form) counts a Hugging Face tokenizer's tokens,
special tokens excluded, with the tokenizer's own truncation and padding switched off, and keeps
windows on word boundaries (the tokenizer's word ids) so that every passage re-encodes to at most
`max_tokens` tokens; only a single word longer than a window is cut inside. Offsets are character
offsets into the original text: passage = text[start:end].

A document longer than `window_chars` characters is chunked a slice at a time, so memory stays
bounded (a tokenizer holds ~150 bytes per character of what it encodes at once), on one thread (a
slice is one text, so more threads would add only their allocators' memory). Slices are cut at
white space; each slice's passages are kept except its last, which the cut may have shortened, and
the next slice starts where that last passage starts. Since a passage depends only on the text from
its start to one token past its end, the passages are the same as from the whole document at once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from synthrank.errors import InvalidArgumentError, TokenizerError
from synthrank.native import _backend, _checks


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


# characters of one document chunked at once: ~55 MB of tokenizer memory over a 10 MB document on
# one thread (measured; 1 << 18 took ~95 MB)
WINDOW_CHARS = 1 << 17
_WHITE_SPACE = (" ", "\n", "\t", "\r", "\u3000", "\u00a0")

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
ChunkBatch = Callable[[list[str], int | None], Arrays]  # (texts, threads) -> arrays


def _cut(text: str, start: int, limit: int) -> int:
    """The last white space in the second half of text[start:limit] (else limit): where a slice ends."""
    low = start + (limit - start) // 2
    cut = max(text.rfind(space, low, limit) for space in _WHITE_SPACE)
    return cut if cut > low else limit


def _chunk_long(text: str, chunk: ChunkBatch, window_chars: int) -> Arrays:
    """Passages of one long document, chunked a slice of about `window_chars` characters at a time."""
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    start, size = 0, window_chars
    while start < len(text):
        end = len(text) if start + size >= len(text) else _cut(text, start, start + size)
        _, starts, ends, n_tokens = chunk([text[start:end]], 1)
        if end == len(text):
            parts.append((starts + start, ends + start, n_tokens))
            break
        if len(starts) < 2:  # no passage is sure to be whole yet: take a wider slice
            size *= 2
            continue
        parts.append((starts[:-1] + start, ends[:-1] + start, n_tokens[:-1]))
        start, size = start + int(starts[-1]), window_chars
    starts = np.concatenate([p[0] for p in parts]).astype(np.int64) if parts else np.empty(0, np.int64)
    ends = np.concatenate([p[1] for p in parts]).astype(np.int64) if parts else np.empty(0, np.int64)
    n_tokens = np.concatenate([p[2] for p in parts]).astype(np.int32) if parts else np.empty(0, np.int32)
    return np.zeros(len(starts), dtype=np.int64), starts, ends, n_tokens


def _chunk_windowed(
    items: list[str], chunk: ChunkBatch, threads: int | None, window_chars: int | None
) -> Chunks:
    """`chunk` over all items at once, except documents over `window_chars`, which go slice by slice."""
    long = [i for i, text in enumerate(items) if window_chars is not None and len(text) > window_chars]
    if not long:
        return Chunks(*chunk(items, threads))
    assert window_chars is not None
    short = [i for i, text in enumerate(items) if len(text) <= window_chars]
    parts: list[Arrays] = []
    if short:
        doc_index, starts, ends, n_tokens = chunk([items[i] for i in short], threads)
        parts.append((np.asarray(short, dtype=np.int64)[doc_index], starts, ends, n_tokens))
    for i in long:
        doc_index, starts, ends, n_tokens = _chunk_long(items[i], chunk, window_chars)
        parts.append((doc_index + i, starts, ends, n_tokens))
    doc_index = np.concatenate([p[0] for p in parts])
    order = np.argsort(doc_index, kind="stable")  # document order, each document's passages in order
    return Chunks(*(np.concatenate([p[k] for p in parts])[order] for k in range(4)))


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
    window_chars: int | None = WINDOW_CHARS,
) -> Chunks:
    """Windows of `max_tokens` white-space separated words (`window_chars`: see the module doc)."""
    items = _checks.texts_list("texts", texts)
    max_tokens, overlap = _window(max_tokens, overlap)
    n_threads = _checks.threads(threads)

    def chunk(batch: list[str], threads: int | None) -> Arrays:
        return _backend.guarded(
            _backend.get(backend).chunk_words, batch, max_tokens, overlap, threads=threads
        )

    return _chunk_windowed(items, chunk, n_threads, _window_chars(window_chars))


class TokenChunker:
    """Chunks batches of documents into windows of `max_tokens` tokens of one tokenizer.

    The tokenizer (tokenizer.json or its folder) is parsed once, here, and reused by every call, so
    a stage that chunks batch by batch builds one TokenChunker. `window_chars`: documents longer
    than this are tokenized a slice at a time (None: whole).
    """

    def __init__(
        self,
        tokenizer: str | Path,
        *,
        max_tokens: int,
        overlap: int = 0,
        backend: str | None = None,
        threads: int | None = None,
        window_chars: int | None = WINDOW_CHARS,
    ) -> None:
        self._max_tokens, self._overlap = _window(max_tokens, overlap)
        self._threads = _checks.threads(threads)
        self._window_chars = _window_chars(window_chars)
        path = str(tokenizer_file(tokenizer))
        self._impl = _backend.guarded(_backend.get(backend).Chunker, path)

    def __call__(self, texts: Sequence[str]) -> Chunks:
        items = _checks.texts_list("texts", texts)
        return _chunk_windowed(items, self._chunk, self._threads, self._window_chars)

    def _chunk(self, batch: list[str], threads: int | None) -> Arrays:
        return _backend.guarded(self._impl.chunk, batch, self._max_tokens, self._overlap, threads=threads)


def chunk_tokens(
    texts: Sequence[str],
    *,
    tokenizer: str | Path,
    max_tokens: int,
    overlap: int = 0,
    backend: str | None = None,
    threads: int | None = None,
    window_chars: int | None = WINDOW_CHARS,
) -> Chunks:
    """Windows of `max_tokens` tokens of the tokenizer in `tokenizer` (tokenizer.json or its folder).

    One call, one tokenizer load: to chunk many batches, build a `TokenChunker` once instead.
    `window_chars`: documents longer than this are tokenized a slice at a time (None: whole).
    """
    chunker = TokenChunker(
        tokenizer,
        max_tokens=max_tokens,
        overlap=overlap,
        backend=backend,
        threads=threads,
        window_chars=window_chars,
    )
    return chunker(texts)


def _window_chars(window_chars: int | None) -> int | None:
    return None if window_chars is None else _checks.integer("window_chars", window_chars, minimum=64)
