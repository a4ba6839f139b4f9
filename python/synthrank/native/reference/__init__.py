"""Pure-Python twins of the native core, function for function, as readable as possible.

Same module names as `synthrank-core` (text, chunk, sample, dedup, negatives, rng, hash) and the same
flat function names and signatures as `synthrank._native`, so `synthrank.native._backend` can hand out either.
Both use FNV-1a 64 and SplitMix64, so outputs are bit-identical; the parity tests hold them to it.
"""

from synthrank.native.reference.chunk import Chunker, chunk_words
from synthrank.native.reference.dedup import (
    NearDupIndex,
    exact_hashes,
    lsh_params,
    minhash_signatures,
    near_duplicates,
)
from synthrank.native.reference.negatives import select_negatives
from synthrank.native.reference.sample import Reservoir, length_mask, sample_stratified, sample_uniform
from synthrank.native.reference.text import char_shingles, fnv1a64, normalize, word_shingles, word_tokens

__all__ = [
    "Chunker",
    "NearDupIndex",
    "Reservoir",
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
