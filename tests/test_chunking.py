"""synthrank.native.chunking: windows, offsets, the real MiniLM tokenizer, and native == reference."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer

from synthrank.errors import InvalidArgumentError, TokenizerError
from synthrank.native import chunking

WORDY_TEXT = st.text(alphabet=st.sampled_from("ab é\u3000\n\t\u00a0.,—ﬁ🙂\u1680"), max_size=120)
ASSIGNED_TEXT = st.text(alphabet=st.characters(exclude_categories=("Cs", "Cn")), max_size=80)


def chunks_equal(left: chunking.Chunks, right: chunking.Chunks) -> bool:
    return all(
        np.array_equal(getattr(left, name), getattr(right, name))
        and getattr(left, name).dtype == getattr(right, name).dtype
        for name in ("doc_index", "start", "end", "n_tokens")
    )


def test_word_windows_overlap_and_stop_at_the_end() -> None:
    docs = ["one two three four five", "   ", "", "solo"]
    chunks = chunking.chunk_words(docs, max_tokens=3, overlap=1)
    assert chunks.texts(docs) == ["one two three", "three four five", "solo"]
    assert chunks.doc_index.tolist() == [0, 0, 3]
    assert chunks.n_tokens.tolist() == [3, 3, 1]
    assert chunks.doc_index.dtype == np.int64 and chunks.n_tokens.dtype == np.int32


def test_offsets_are_characters_not_bytes() -> None:
    docs = ["héllo wörld 🙂 end"]
    chunks = chunking.chunk_words(docs, max_tokens=2)
    assert chunks.texts(docs) == ["héllo wörld", "🙂 end"]


def test_token_chunks_of_real_answers_re_encode_within_budget(
    liveqa_answers: list[str], minilm_tokenizer: Path
) -> None:
    docs = liveqa_answers[:40]
    chunks = chunking.chunk_tokens(docs, tokenizer=minilm_tokenizer, max_tokens=64, overlap=16)
    tokenizer = Tokenizer.from_file(str(minilm_tokenizer))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    passages = chunks.texts(docs)
    assert len(passages) > len(docs)  # many answers exceed 64 tokens
    for passage, n_tokens in zip(passages, chunks.n_tokens.tolist(), strict=True):
        assert 1 <= n_tokens <= 64
        assert len(tokenizer.encode(passage, add_special_tokens=False).ids) <= 64
    first_doc = chunks.doc_index == 0
    assert chunks.start[first_doc][0] == len(docs[0]) - len(docs[0].lstrip())


def test_bad_windows_and_tokenizers_are_reported(tmp_path: Path, minilm_tokenizer: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="overlap"):
        chunking.chunk_words(["a b"], max_tokens=2, overlap=2)
    with pytest.raises(InvalidArgumentError, match="max_tokens"):
        chunking.chunk_words(["a b"], max_tokens=0)
    with pytest.raises(TokenizerError, match="nowhere"):
        chunking.chunk_tokens(["a"], tokenizer=tmp_path / "nowhere", max_tokens=8)
    corrupt = tmp_path / "tokenizer.json"
    corrupt.write_text('{"model": ')
    for backend in ("native", "python"):
        with pytest.raises(TokenizerError, match="tokenizer"):
            chunking.chunk_tokens(["a"], tokenizer=tmp_path, max_tokens=8, backend=backend)
    assert len(chunking.chunk_tokens(["a b"], tokenizer=minilm_tokenizer.parent, max_tokens=8)) == 1


@pytest.mark.native
@settings(max_examples=100, deadline=None)
@given(st.lists(WORDY_TEXT, max_size=6), st.integers(1, 6), st.data())
def test_parity_chunk_words(docs: list[str], max_tokens: int, data: st.DataObject) -> None:
    overlap = data.draw(st.integers(0, max_tokens - 1))
    native = chunking.chunk_words(docs, max_tokens=max_tokens, overlap=overlap, backend="native")
    python = chunking.chunk_words(docs, max_tokens=max_tokens, overlap=overlap, backend="python")
    assert chunks_equal(native, python)


@pytest.mark.native
@settings(max_examples=25, deadline=None)
@given(st.lists(st.one_of(WORDY_TEXT, ASSIGNED_TEXT), max_size=5), st.integers(1, 8), st.data())
def test_parity_chunk_tokens(
    minilm_tokenizer: Path, docs: list[str], max_tokens: int, data: st.DataObject
) -> None:
    overlap = data.draw(st.integers(0, max_tokens - 1))
    options: dict[str, Any] = {"tokenizer": minilm_tokenizer, "max_tokens": max_tokens, "overlap": overlap}
    native = chunking.chunk_tokens(docs, backend="native", **options)
    python = chunking.chunk_tokens(docs, backend="python", **options)
    assert chunks_equal(native, python)


@pytest.mark.native
def test_parity_on_long_real_documents(liveqa_answers: list[str], minilm_tokenizer: Path) -> None:
    docs = [" ".join(liveqa_answers[:60]), *liveqa_answers[60:100]]
    for max_tokens, overlap in ((128, 32), (7, 0)):
        options: dict[str, Any] = {
            "tokenizer": minilm_tokenizer,
            "max_tokens": max_tokens,
            "overlap": overlap,
        }
        assert chunks_equal(
            chunking.chunk_tokens(docs, backend="native", **options),
            chunking.chunk_tokens(docs, backend="python", **options),
        )
        assert chunks_equal(
            chunking.chunk_words(docs, max_tokens=max_tokens, overlap=overlap, backend="native"),
            chunking.chunk_words(docs, max_tokens=max_tokens, overlap=overlap, backend="python"),
        )
