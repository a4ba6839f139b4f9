"""synthrank.native.chunking: windows, offsets, the real MiniLM tokenizer, and native == reference."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer

from synthrank.errors import InvalidArgumentError, TokenizerError
from synthrank.native import _backend, chunking

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


@pytest.mark.native
def test_token_chunker_parses_once_and_matches_the_twin_batch_by_batch(
    liveqa_answers: list[str], minilm_tokenizer: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    native_module = _backend.get("native")
    real_chunker = native_module.Chunker
    loads: list[str] = []

    def counting_chunker(path: str) -> Any:
        loads.append(path)
        return real_chunker(path)

    options: dict[str, Any] = {"max_tokens": 48, "overlap": 8, "window_chars": 1500}
    python = chunking.TokenChunker(minilm_tokenizer, backend="python", **options)
    monkeypatch.setattr(native_module, "Chunker", counting_chunker)
    native = chunking.TokenChunker(minilm_tokenizer, backend="native", **options)
    # batches as ingest sends them, the last with a document long enough to go slice by slice
    batches = [liveqa_answers[i : i + 25] for i in range(0, 100, 25)]
    batches.append([*liveqa_answers[100:103], "\n".join(liveqa_answers[103:113])])
    for batch in batches:
        assert chunks_equal(native(batch), python(batch))
    assert loads == [str(minilm_tokenizer)]


@pytest.mark.native
def test_thread_count_does_not_change_token_chunks(liveqa_answers: list[str], minilm_tokenizer: Path) -> None:
    docs = liveqa_answers[:120]
    options: dict[str, Any] = {"tokenizer": minilm_tokenizer, "max_tokens": 64, "overlap": 16}
    one, two, default = (chunking.chunk_tokens(docs, threads=t, **options) for t in (1, 2, None))
    assert len(one) > len(docs) and chunks_equal(one, two) and chunks_equal(one, default)


@pytest.mark.native
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads through Linux /proc")
def test_a_thread_count_starts_its_pool_once(liveqa_answers: list[str]) -> None:
    def pool_threads() -> set[str]:
        """Ids of the threads of the 3-thread pool (a new thread takes its name once it runs)."""
        for _ in range(200):
            tasks = Path("/proc/self/task").iterdir()
            ids = {t.name for t in tasks if (t / "comm").read_text().startswith("synthrank-3-")}
            if len(ids) == 3:
                return ids
            time.sleep(0.05)
        raise AssertionError(f"expected 3 pool threads, found {len(ids)}")

    chunking.chunk_words(liveqa_answers[:50], max_tokens=16, threads=3)
    first = pool_threads()
    for _ in range(5):
        chunking.chunk_words(liveqa_answers[:50], max_tokens=16, threads=3)
    assert pool_threads() == first  # the same threads: no pool was built again


def test_token_chunker_names_a_bad_tokenizer_path(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model" / "tokenizer.json"
    for backend in ("native", "python"):
        with pytest.raises(TokenizerError, match="no-such-model"):
            chunking.TokenChunker(missing, max_tokens=8, backend=backend)
        with pytest.raises(TokenizerError, match=str(tmp_path)):
            chunking.TokenChunker(tmp_path, max_tokens=8, backend=backend)  # a folder without one
    corrupt = tmp_path / "tokenizer.json"
    corrupt.write_text('{"model": ')
    for backend in ("native", "python"):
        with pytest.raises(TokenizerError, match=r"tokenizer\.json"):
            chunking.TokenChunker(corrupt, max_tokens=8, backend=backend)
    with pytest.raises(TokenizerError, match="no-such-model"):
        _backend.get("native").Chunker(str(missing))  # the core checks too, past the Python checks
