"""Fixed-size, overlapping windows over word or tokenizer tokens: the twin of `synthrank-core::chunk`.

A window holds up to `max_tokens` tokens and the next one starts `overlap` tokens before its end;
the window that reaches the end of the document is the last one, so no window only repeats overlap.
Tokenizer windows end and start on word boundaries (the tokenizer's word ids): a window that would
cut a word ends before it, and an overlap that would start inside a word starts at its next word.
Spans are character offsets into the original text, from the first token's start to the last
token's end.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from synthrank.errors import TokenizerError

# The Unicode White_Space property (what Rust's `char::is_whitespace` tests), spelled out because
# Python's `str.isspace` uses a different definition.
WHITE_SPACE = frozenset(
    "\t\n\x0b\x0c\r \x85\xa0\u1680"
    + "".join(chr(code) for code in range(0x2000, 0x200B))
    + "\u2028\u2029\u202f\u205f\u3000"
)

ChunkArrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def word_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) character offsets of the maximal runs of non-white-space characters."""
    spans: list[tuple[int, int]] = []
    start = -1
    for position, char in enumerate(text):
        if char in WHITE_SPACE:
            if start >= 0:
                spans.append((start, position))
                start = -1
        elif start < 0:
            start = position
    if start >= 0:
        spans.append((start, len(text)))
    return spans


def windows(word_starts: Sequence[bool], max_tokens: int, overlap: int) -> list[tuple[int, int]]:
    """[first, last) token ranges of the windows over tokens whose word starts are `word_starts`.

    Windows end and (overlapping) start on word boundaries so that a passage re-encodes to the same
    tokens; only a single word longer than `max_tokens` is cut inside.
    """
    n_tokens = len(word_starts)
    result: list[tuple[int, int]] = []
    first = 0
    while first < n_tokens:
        last = min(first + max_tokens, n_tokens)
        if last < n_tokens and not word_starts[last]:
            boundary = last - 1
            while boundary > first and not word_starts[boundary]:
                boundary -= 1
            if boundary > first:
                last = boundary
        result.append((first, last))
        if last == n_tokens:
            break
        # Step back `overlap` tokens, but always forward from `first`, and onto a word start.
        following = max(last - overlap, first + 1)
        while following < last and not word_starts[following]:
            following += 1
        first = following
    return result


def word_starts_of(word_ids: Sequence[int | None]) -> list[bool]:
    """True where a token starts a new pre-tokenizer word (a token without a word is its own word)."""
    return [
        position == 0 or word_id is None or word_id != word_ids[position - 1]
        for position, word_id in enumerate(word_ids)
    ]


def chunk_spans(
    docs: Sequence[tuple[Sequence[tuple[int, int]], Sequence[bool]]], max_tokens: int, overlap: int
) -> ChunkArrays:
    """Chunk columns for documents given as (token spans, token word starts)."""
    doc_index: list[int] = []
    starts: list[int] = []
    ends: list[int] = []
    counts: list[int] = []
    for doc, (spans, word_starts) in enumerate(docs):
        for first, last in windows(word_starts, max_tokens, overlap):
            doc_index.append(doc)
            starts.append(spans[first][0])
            ends.append(spans[last - 1][1])
            counts.append(last - first)
    return (
        np.array(doc_index, dtype=np.int64),
        np.array(starts, dtype=np.int64),
        np.array(ends, dtype=np.int64),
        np.array(counts, dtype=np.int32),
    )


def chunk_words(
    texts: Sequence[str], max_tokens: int, overlap: int, threads: int | None = None
) -> ChunkArrays:
    docs = [(spans, [True] * len(spans)) for spans in map(word_spans, texts)]
    return chunk_spans(docs, max_tokens, overlap)


class Chunker:
    """A `tokenizer.json` parsed once; `chunk` splits batches of texts into windows of its tokens."""

    def __init__(self, tokenizer_path: str) -> None:
        from tokenizers import Tokenizer

        try:
            tokenizer = Tokenizer.from_file(tokenizer_path)
        except Exception as error:  # the tokenizers package raises a bare Exception on bad JSON
            raise TokenizerError(f"tokenizer: cannot load {tokenizer_path}: {error}") from error
        # A saved tokenizer may truncate or pad (MiniLM's pads to 128); chunking needs every real token.
        tokenizer.no_truncation()
        tokenizer.no_padding()
        self._tokenizer = tokenizer

    def chunk(
        self, texts: Sequence[str], max_tokens: int, overlap: int, threads: int | None = None
    ) -> ChunkArrays:
        """Windows of `max_tokens` tokens of the tokenizer, special tokens excluded."""
        encodings = self._tokenizer.encode_batch(list(texts), add_special_tokens=False)
        docs = [(encoding.offsets, word_starts_of(encoding.word_ids)) for encoding in encodings]
        return chunk_spans(docs, max_tokens, overlap)
