"""Choose the implementation behind the public functions: the native core or the Python twin.

This is the only module that imports `synthrank._native`. The default comes from the environment
variable SYNTHRANK_BACKEND ("native" unless set); when the extension is missing, "native" falls back
to the twin with one warning. A panic inside the native core reaches Python as PyO3's
PanicException (a BaseException); `guarded` turns it into `NativePanicError` so callers can catch it.
A text with a lone surrogate becomes InvalidArgumentError (the twin may accept it where UTF-8 is
not needed; the native core never can).

`Core` is the one typed surface of both: `get(backend)` returns it, mypy checks the native module
(through `_native.pyi`, which stubtest holds to the binary) and the twin package against it, and
tests/test_native_backend.py checks their parameter names at run time. Wrappers call a core function
as `guarded(get(backend).name, ...)`, typed end to end.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import ParamSpec, Protocol, TypeVar

import numpy as np
from numpy.typing import NDArray

from synthrank.errors import InvalidArgumentError, NativePanicError
from synthrank.native import reference

BACKENDS = ("native", "python")
ENV_VAR = "SYNTHRANK_BACKEND"

P = ParamSpec("P")
R = TypeVar("R")

# doc_index, start, end (int64) and n_tokens (int32) of each passage
ChunkArrays = tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], NDArray[np.int32]]


class CoreChunker(Protocol):
    def chunk(
        self, texts: Sequence[str], max_tokens: int, overlap: int, threads: int | None = None
    ) -> ChunkArrays: ...


class CoreChunkerClass(Protocol):
    def __call__(self, tokenizer_path: str) -> CoreChunker: ...


class CoreReservoir(Protocol):
    def extend(self, ids: NDArray[np.int64]) -> None: ...
    def result(self) -> NDArray[np.int64]: ...


class CoreReservoirClass(Protocol):
    def __call__(self, k: int, seed: int) -> CoreReservoir: ...


class CoreNearDupIndex(Protocol):
    def add(self, texts: Sequence[str], threads: int | None = None) -> NDArray[np.uint64]: ...
    def clusters(self) -> NDArray[np.int64]: ...
    def leaders(self) -> int: ...
    def close(self) -> None: ...
    def __len__(self) -> int: ...


class CoreNearDupIndexClass(Protocol):
    def __call__(
        self, threshold: float, num_perm: int, shingle_size: int, shingle: str, seed: int, scratch_path: str
    ) -> CoreNearDupIndex: ...


class Core(Protocol):
    """What `synthrank._native` and its twin `reference` both provide, with `_native.pyi`'s signatures.

    Parameter names are part of the contract (wrappers pass `threads=` by keyword), so a member
    added here must be added to the native module, its stub and the twin with the same names.
    """

    @property
    def Chunker(self) -> CoreChunkerClass: ...
    @property
    def NearDupIndex(self) -> CoreNearDupIndexClass: ...
    @property
    def Reservoir(self) -> CoreReservoirClass: ...
    def normalize(self, texts: Sequence[str], threads: int | None = None) -> list[str]: ...
    def word_tokens(self, texts: Sequence[str], threads: int | None = None) -> list[list[str]]: ...
    def char_shingles(self, text: str, n: int) -> list[str]: ...
    def word_shingles(self, text: str, n: int) -> list[str]: ...
    def fnv1a64(self, texts: Sequence[str], threads: int | None = None) -> NDArray[np.uint64]: ...
    def chunk_words(
        self, texts: Sequence[str], max_tokens: int, overlap: int, threads: int | None = None
    ) -> ChunkArrays: ...
    def sample_uniform(
        self, n: int, k: int, seed: int, eligible: NDArray[np.bool_] | None = None
    ) -> NDArray[np.int64]: ...
    def sample_stratified(
        self,
        strata: NDArray[np.int64],
        default_quota: int,
        quota_strata: NDArray[np.int64],
        quota_values: NDArray[np.int64],
        seed: int,
        eligible: NDArray[np.bool_] | None = None,
    ) -> NDArray[np.int64]: ...
    def length_mask(
        self, lengths: NDArray[np.int64], min_length: int | None = None, max_length: int | None = None
    ) -> NDArray[np.bool_]: ...
    def exact_hashes(self, texts: Sequence[str], threads: int | None = None) -> NDArray[np.uint64]: ...
    def minhash_signatures(
        self,
        texts: Sequence[str],
        num_perm: int,
        shingle_size: int,
        shingle: str,
        seed: int,
        threads: int | None = None,
    ) -> NDArray[np.uint64]: ...
    def lsh_params(self, threshold: float, num_perm: int) -> tuple[int, int]: ...
    def near_duplicates(
        self,
        texts: Sequence[str],
        threshold: float,
        num_perm: int,
        shingle_size: int,
        shingle: str,
        seed: int,
        verify: bool,
        threads: int | None = None,
    ) -> NDArray[np.int64]: ...
    def select_negatives(
        self,
        cand_ids: NDArray[np.int64],
        cand_scores: NDArray[np.float32],
        pos_ids: NDArray[np.int64],
        num_negatives: int,
        pos_scores: NDArray[np.float32] | None,
        labels: NDArray[np.float32] | None,
        doc_hashes: NDArray[np.uint64] | None,
        cluster_ids: NDArray[np.int64] | None,
        range_min: int,
        range_max: int | None,
        absolute_margin: float | None,
        relative_margin: float | None,
        max_score: float | None,
        sampling: str,
        seed: int,
        relevant_min_label: float,
        negative_max_label: float,
        allow_unjudged: bool,
        threads: int | None = None,
    ) -> tuple[NDArray[np.int64], NDArray[np.float32], NDArray[np.bool_], list[tuple[str, int]]]: ...


@functools.cache
def _native_module() -> Core | None:
    try:
        from synthrank import _native
    except ImportError:
        warnings.warn(
            "synthrank._native is not built; using the slower pure-Python backend "
            "(build it with `maturin develop --release`)",
            RuntimeWarning,
            stacklevel=3,
        )
        return None
    return _native


def native_available() -> bool:
    return _native_module() is not None


def get(backend: str | None = None) -> Core:
    """The core implementing `backend` ("native" or "python"; None: $SYNTHRANK_BACKEND or native)."""
    if backend is None:
        name = _checked(os.environ.get(ENV_VAR, "native"), ENV_VAR)
    else:
        name = _checked(backend, "backend")
    if name == "native":
        native = _native_module()
        if native is not None:
            return native
    return reference


@contextmanager
def selected(backend: str | None) -> Iterator[None]:
    """`backend` for every native-core call inside (as SYNTHRANK_BACKEND), restored afterwards; None
    leaves the environment's choice. `synthrank run` and `Pipeline.run` apply `[run] backend` so."""
    if backend is None:
        yield
        return
    saved = os.environ.get(ENV_VAR)
    os.environ[ENV_VAR] = _checked(backend, "backend")
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(ENV_VAR, None)
        else:
            os.environ[ENV_VAR] = saved


def _checked(name: str, source: str) -> str:
    if name not in BACKENDS:
        raise InvalidArgumentError(f"{source}: expected one of {', '.join(BACKENDS)}, got {name!r}")
    return name


def is_panic(error: BaseException) -> bool:
    return type(error).__name__ == "PanicException"


def guarded(implementation: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
    """`implementation(*args, **kwargs)`, with a native panic as NativePanicError and a lone
    surrogate as InvalidArgumentError."""
    try:
        return implementation(*args, **kwargs)
    except UnicodeEncodeError as error:
        # Python strings may hold lone surrogates; UTF-8 (and so the native core) cannot.
        bad = error.object[error.start : error.end]
        raise InvalidArgumentError(f"texts: lone surrogate {bad!r} cannot be encoded as UTF-8") from error
    except BaseException as error:
        if is_panic(error):
            name = getattr(implementation, "__qualname__", repr(implementation))
            raise NativePanicError(
                f"the native core panicked in {name}: {error}; please report it"
            ) from error
        raise
