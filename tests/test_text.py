"""synthrank.native.text: known answers, and native == reference on generated and exhaustive input."""

from __future__ import annotations

import sys
import unicodedata

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synthrank.errors import InvalidArgumentError
from synthrank.native import _backend, text

# Unassigned code points (Cn) may differ: the native tables are newer than Python's database.
ASSIGNED_CHARS = st.characters(exclude_categories=("Cs", "Cn"))
TEXTS = st.lists(st.text(alphabet=ASSIGNED_CHARS, max_size=60), max_size=8)
SPACED_WORDS = st.lists(
    st.text(alphabet=st.sampled_from("aBç ÉΣς  ,.!-_1²ﬁ\u0301\u00a0\t\nİß"), max_size=80), max_size=6
)


def test_normalize_is_nfkc_then_casefold() -> None:
    samples = ["Straße", "ﬁne ＦＵＬＬ", "ΣΑΣ ς", "İstanbul", "Ⅻ ①", ""]
    expected = [unicodedata.normalize("NFKC", s).casefold() for s in samples]
    for backend in ("native", "python"):
        assert text.normalize(samples, backend=backend) == expected
    assert expected[0] == "strasse"


def test_word_tokens_keep_letters_marks_numbers_and_connectors() -> None:
    # NFKC composes e + U+0301 into é and splits ½ into 1, FRACTION SLASH, 2.
    assert text.word_tokens(["Hello, wörld_x 42! e\u0301té — ½"]) == [
        ["hello", "wörld_x", "42", "\u00e9t\u00e9", "1", "2"]
    ]
    assert text.word_tokens(["", "?!", "a"]) == [[], [], ["a"]]


def test_shingles_of_short_long_and_empty_text() -> None:
    assert text.char_shingles("ab, cd", 3) == ["ab ", "b c", " cd"]
    assert text.char_shingles("Ab", 5) == ["ab"]
    assert text.char_shingles("...", 5) == []
    assert text.word_shingles("A b, c d", 3) == ["a b c", "b c d"]
    assert text.word_shingles("a b", 3) == ["a b"]


def test_fnv1a64_known_vectors() -> None:
    hashes = text.fnv1a64(["", "a", "foobar"])
    assert hashes.dtype == np.uint64
    assert hashes.tolist() == [0xCBF29CE484222325, 0xAF63DC4C8601EC8C, 0x85944171F73967E8]


def test_bad_arguments_name_the_argument() -> None:
    with pytest.raises(InvalidArgumentError, match="texts"):
        text.normalize("not a list")
    with pytest.raises(InvalidArgumentError, match=r"texts\[1\]"):
        text.word_tokens(["ok", 3])  # type: ignore[list-item]
    with pytest.raises(InvalidArgumentError, match="n"):
        text.char_shingles("abc", 0)
    with pytest.raises(InvalidArgumentError, match="backend"):
        text.normalize(["a"], backend="gpu")


@pytest.mark.native
def test_every_assigned_character_matches() -> None:
    chars = [
        chr(code)
        for code in range(sys.maxunicode + 1)
        if not 0xD800 <= code < 0xE000 and unicodedata.category(chr(code)) != "Cn"
    ]
    assert text.normalize(chars, backend="native") == text.normalize(chars, backend="python")
    assert text.word_tokens(chars, backend="native") == text.word_tokens(chars, backend="python")


@pytest.mark.native
@settings(max_examples=100, deadline=None)
@given(TEXTS)
def test_parity_normalize_tokens_hashes(texts: list[str]) -> None:
    for function in (text.normalize, text.word_tokens):
        assert function(texts, backend="native") == function(texts, backend="python")
    assert np.array_equal(text.fnv1a64(texts, backend="native"), text.fnv1a64(texts, backend="python"))


@pytest.mark.native
@settings(max_examples=100, deadline=None)
@given(
    st.one_of(st.text(alphabet=ASSIGNED_CHARS, max_size=80), SPACED_WORDS.map(" ".join)), st.integers(1, 7)
)
def test_parity_shingles(sample: str, n: int) -> None:
    for function in (text.char_shingles, text.word_shingles):
        assert function(sample, n, backend="native") == function(sample, n, backend="python")


@pytest.mark.native
def test_parity_on_a_very_long_document(liveqa_answers: list[str]) -> None:
    document = " ".join(liveqa_answers[:120])
    assert len(document) > 50_000
    assert text.word_tokens([document], backend="native") == text.word_tokens([document], backend="python")
    assert text.char_shingles(document, 5, backend="native") == text.char_shingles(
        document, 5, backend="python"
    )


def test_backend_default_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(_backend.ENV_VAR, "python")
    assert _backend.get() is _backend.reference
    monkeypatch.setenv(_backend.ENV_VAR, "fortran")
    with pytest.raises(InvalidArgumentError, match=_backend.ENV_VAR):
        _backend.get()
