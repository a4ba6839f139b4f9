//! `synthrank._native`: Python bindings of synthrank-core. Each stage lives in its own file; this
//! file only declares the module. Import it through `synthrank._backend`, never directly.

mod chunk;
mod dedup;
mod errors;
mod negatives;
mod pool;
mod sample;
mod text;

#[pyo3::pymodule]
mod _native {
    use pyo3::prelude::*;

    /// "release" or "debug": how this extension was compiled (benchmarks refuse debug builds).
    #[pyfunction]
    fn build_profile() -> &'static str {
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    }

    #[pymodule_export]
    use crate::chunk::{chunk_words, Chunker};
    #[pymodule_export]
    use crate::dedup::{
        exact_hashes, lsh_params, minhash_signatures, near_duplicates, NearDupIndex,
    };
    #[pymodule_export]
    use crate::negatives::select_negatives;
    #[pymodule_export]
    use crate::sample::{length_mask, sample_stratified, sample_uniform, Reservoir};
    #[pymodule_export]
    use crate::text::{char_shingles, fnv1a64, normalize, word_shingles, word_tokens};
}
