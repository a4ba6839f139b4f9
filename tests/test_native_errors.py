"""The native core turns bad input into named Python errors, never a panic or a crash.

These call `synthrank._native` directly, past the Python-side checks, to prove the core checks too.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from synthrank.errors import InvalidArgumentError, NativePanicError, TokenizerError
from synthrank.native import _backend, dedup, text

pytestmark = pytest.mark.native


@pytest.fixture(scope="module")
def native() -> ModuleType:
    from synthrank import _native  # the module itself: these tests pass wrong types on purpose

    return _native


def test_core_checks_windows_shingles_and_thresholds(native: ModuleType) -> None:
    with pytest.raises(InvalidArgumentError, match="overlap"):
        native.chunk_words(["a b"], 2, 2)
    with pytest.raises(InvalidArgumentError, match="max_tokens"):
        native.chunk_words(["a b"], 0, 0)
    with pytest.raises(InvalidArgumentError, match="n"):
        native.word_shingles("a b", 0)
    with pytest.raises(InvalidArgumentError, match="threshold"):
        native.lsh_params(0.0, 128)
    with pytest.raises(InvalidArgumentError, match="num_perm"):
        native.near_duplicates(["a"], 0.5, 0, 5, "char", 0, True)
    with pytest.raises(InvalidArgumentError, match="shingle"):
        native.minhash_signatures(["a"], 8, 5, "line", 0)


def test_core_checks_tokenizer_files(native: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(TokenizerError, match=r"missing\.json"):
        native.Chunker(str(tmp_path / "missing.json"))
    corrupt = tmp_path / "tokenizer.json"
    corrupt.write_text("not json at all")
    with pytest.raises(TokenizerError, match=r"tokenizer\.json"):
        native.Chunker(str(corrupt))


def test_core_checks_negative_tables(native: ModuleType) -> None:
    ids = np.array([[0, 5]], dtype=np.int64)
    scores = np.zeros((1, 2), dtype=np.float32)
    pos = np.array([[1]], dtype=np.int64)
    # pos_scores, labels, doc_hashes, cluster_ids, range_min, range_max, absolute_margin,
    # relative_margin, max_score, sampling, seed, relevant_min_label, negative_max_label, allow_unjudged
    defaults = (None, None, None, None, 0, None, None, None, None, "top", 0, 2.0, 0.0, True)
    with pytest.raises(InvalidArgumentError, match="doc_hashes"):
        native.select_negatives(ids, scores, pos, 1, None, None, np.zeros(3, dtype=np.uint64), *defaults[3:])
    with pytest.raises(InvalidArgumentError, match="pos_ids"):
        native.select_negatives(ids, scores, np.zeros((2, 1), dtype=np.int64), 1, *defaults)
    with pytest.raises(InvalidArgumentError, match="sampling"):
        native.select_negatives(ids, scores, pos, 1, *defaults[:9], "best", *defaults[10:])
    with pytest.raises(InvalidArgumentError, match="eligible"):
        native.sample_uniform(5, 2, 0, np.ones(4, dtype=bool))
    with pytest.raises(InvalidArgumentError, match="num_negatives"):
        native.select_negatives(ids, scores, pos, 10**9, *defaults)
    with pytest.raises(InvalidArgumentError, match="num_perm"):
        native.lsh_params(0.5, 10**7)


def test_wrong_dtypes_raise_type_errors_not_crashes(native: ModuleType) -> None:
    with pytest.raises(TypeError):
        native.length_mask(np.zeros(3, dtype=np.float64))
    with pytest.raises(TypeError):
        native.normalize([1, 2])
    with pytest.raises(OverflowError):
        native.sample_uniform(-1, 2, 0)


def test_lone_surrogates_are_bad_input() -> None:
    for backend in ("native", "python"):
        with pytest.raises(InvalidArgumentError, match="surrogate"):
            text.fnv1a64(["ok", "bad \ud800"], backend=backend)
    with pytest.raises(InvalidArgumentError, match="surrogate"):
        dedup.near_duplicates(["bad \udfff"], backend="native")


def test_thread_count_does_not_change_results(liveqa_answers: list[str]) -> None:
    texts = liveqa_answers[:200]
    one, two = (dedup.near_duplicates(texts, threshold=0.5, threads=t) for t in (1, 2))
    assert one.tolist() == two.tolist()
    assert text.word_tokens(texts, threads=1) == text.word_tokens(texts, threads=0)


def test_a_panic_becomes_native_panic_error() -> None:
    class PanicException(BaseException):  # stands in for pyo3_runtime.PanicException
        pass

    def explode() -> None:
        raise PanicException("index out of bounds")

    with pytest.raises(NativePanicError, match="index out of bounds"):
        _backend.guarded(explode)
    with pytest.raises(KeyboardInterrupt):
        _backend.guarded(lambda: (_ for _ in ()).throw(KeyboardInterrupt()))


def test_missing_extension_falls_back_with_one_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_native(name: str, *args: Any, **kwargs: Any) -> Any:
        fromlist = args[2] if len(args) > 2 else kwargs.get("fromlist")
        if fromlist and "_native" in fromlist:
            raise ImportError("no extension")
        return real_import(name, *args, **kwargs)

    _backend._native_module.cache_clear()
    monkeypatch.setattr(builtins, "__import__", no_native)
    try:
        with pytest.warns(RuntimeWarning, match="pure-Python"):
            assert _backend.get("native") is _backend.reference
        assert _backend.get() is _backend.reference  # cached: no second warning
    finally:
        monkeypatch.undo()
        _backend._native_module.cache_clear()
    assert _backend.native_available()
