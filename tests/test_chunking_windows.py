"""Long documents are chunked a slice at a time, with the same passages as the whole document."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from synthrank.errors import InvalidArgumentError
from synthrank.native import chunking


def same(left: chunking.Chunks, right: chunking.Chunks) -> None:
    for name in ("doc_index", "start", "end", "n_tokens"):
        a, b = getattr(left, name), getattr(right, name)
        assert a.dtype == b.dtype, name
        np.testing.assert_array_equal(a, b, err_msg=name)


# each slice is one native call: few slices keep this test fast
@pytest.mark.parametrize(("window_chars", "overlap"), [(700, 0), (2500, 16)])
def test_windowed_token_chunks_equal_whole_document_chunks(
    liveqa_answers: list[str], minilm_tokenizer: Path, window_chars: int, overlap: int
) -> None:
    # long documents made of real text (new lines, punctuation, repeats) between ordinary ones
    long_docs = ["\n".join(liveqa_answers[i : i + 8]) for i in range(0, 16, 8)]
    docs = [liveqa_answers[200], *long_docs, "", liveqa_answers[201], "   "]
    assert min(len(d) for d in long_docs) > 3 * window_chars
    whole = chunking.chunk_tokens(
        docs, tokenizer=minilm_tokenizer, max_tokens=64, overlap=overlap, window_chars=None
    )
    windowed = chunking.chunk_tokens(
        docs, tokenizer=minilm_tokenizer, max_tokens=64, overlap=overlap, window_chars=window_chars
    )
    same(windowed, whole)
    assert len(set(whole.doc_index.tolist())) == len(docs) - 2


def test_windowed_word_chunks_equal_whole_document_chunks(liveqa_answers: list[str]) -> None:
    docs = [" ".join(liveqa_answers[:60]), liveqa_answers[61]]
    whole = chunking.chunk_words(docs, max_tokens=50, overlap=10, window_chars=None)
    same(chunking.chunk_words(docs, max_tokens=50, overlap=10, window_chars=500), whole)


def test_normal_documents_are_not_sliced_by_default(
    liveqa_answers: list[str], minilm_tokenizer: Path
) -> None:
    docs = liveqa_answers[:50]
    assert max(map(len, docs)) < chunking.WINDOW_CHARS
    same(
        chunking.chunk_tokens(docs, tokenizer=minilm_tokenizer, max_tokens=64, overlap=8),
        chunking.chunk_tokens(docs, tokenizer=minilm_tokenizer, max_tokens=64, overlap=8, window_chars=None),
    )


def test_a_slice_too_small_for_two_passages_is_widened(minilm_tokenizer: Path) -> None:
    text = " ".join(f"word{i}" for i in range(400))
    whole = chunking.chunk_tokens([text], tokenizer=minilm_tokenizer, max_tokens=300, window_chars=None)
    assert len(whole) >= 3
    same(chunking.chunk_tokens([text], tokenizer=minilm_tokenizer, max_tokens=300, window_chars=512), whole)


def test_window_chars_is_checked() -> None:
    with pytest.raises(InvalidArgumentError, match="window_chars"):
        chunking.chunk_words(["a b"], max_tokens=2, window_chars=3)
