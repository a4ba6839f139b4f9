"""Type stubs of the native core `synthrank._native` (Rust, PyO3); import it only through
`synthrank.native._backend`."""

from collections.abc import Sequence
from os import PathLike
from typing import final

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "Chunker",
    "NearDupIndex",
    "Reservoir",
    "build_profile",
    "char_shingles",
    "chunk_words",
    "exact_hashes",
    "fnv1a64",
    "length_mask",
    "lsh_params",
    "minhash_signatures",
    "near_duplicates",
    "normalize",
    "sample_stratified",
    "sample_uniform",
    "select_negatives",
    "word_shingles",
    "word_tokens",
]

def build_profile() -> str: ...
def normalize(texts: Sequence[str], threads: int | None = None) -> list[str]: ...
def word_tokens(texts: Sequence[str], threads: int | None = None) -> list[list[str]]: ...
def char_shingles(text: str, n: int) -> list[str]: ...
def word_shingles(text: str, n: int) -> list[str]: ...
def fnv1a64(texts: Sequence[str], threads: int | None = None) -> NDArray[np.uint64]: ...
def chunk_words(
    texts: Sequence[str], max_tokens: int, overlap: int, threads: int | None = None
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], NDArray[np.int32]]: ...

@final
class Chunker:
    """A `tokenizer.json` parsed once; `chunk` splits batches of texts into windows of its tokens."""

    def __new__(cls, tokenizer_path: str | PathLike[str]) -> Chunker: ...
    def chunk(
        self, texts: Sequence[str], max_tokens: int, overlap: int, threads: int | None = None
    ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], NDArray[np.int32]]: ...

def sample_uniform(
    n: int, k: int, seed: int, eligible: NDArray[np.bool_] | None = None
) -> NDArray[np.int64]: ...
def sample_stratified(
    strata: NDArray[np.int64],
    default_quota: int,
    quota_strata: NDArray[np.int64],
    quota_values: NDArray[np.int64],
    seed: int,
    eligible: NDArray[np.bool_] | None = None,
) -> NDArray[np.int64]: ...
def length_mask(
    lengths: NDArray[np.int64], min_length: int | None = None, max_length: int | None = None
) -> NDArray[np.bool_]: ...

@final
class Reservoir:
    """A streaming reservoir sampler: `extend` with batches of ids, then `result()`."""

    def __new__(cls, k: int, seed: int) -> Reservoir: ...
    def extend(self, ids: NDArray[np.int64]) -> None: ...
    def result(self) -> NDArray[np.int64]: ...

@final
class NearDupIndex:
    """Near-duplicate clusters of a corpus streamed in batches: `add` texts, then `clusters()`;
    `close()` removes the scratch file of the leaders' signatures."""

    def __new__(
        cls,
        threshold: float,
        num_perm: int,
        shingle_size: int,
        shingle: str,
        seed: int,
        scratch_path: str | PathLike[str],
    ) -> NearDupIndex: ...
    def add(self, texts: Sequence[str], threads: int | None = None) -> NDArray[np.uint64]: ...
    def clusters(self) -> NDArray[np.int64]: ...
    def leaders(self) -> int: ...
    def close(self) -> None: ...
    def __len__(self) -> int: ...

def exact_hashes(texts: Sequence[str], threads: int | None = None) -> NDArray[np.uint64]: ...
def minhash_signatures(
    texts: Sequence[str],
    num_perm: int,
    shingle_size: int,
    shingle: str,
    seed: int,
    threads: int | None = None,
) -> NDArray[np.uint64]: ...
def lsh_params(threshold: float, num_perm: int) -> tuple[int, int]: ...
def near_duplicates(
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
