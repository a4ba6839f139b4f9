//! Exact and near-duplicate detection: one-permutation MinHash, LSH banding and union-find.
//!
//! - Shingles of the normalised text (see [`crate::text`]) are hashed with FNV-1a 64, straight from
//!   the text's bytes.
//! - Signatures use one-permutation hashing with optimal densification (Shrivastava 2017,
//!   "Optimal Densification for Fast and Accurate Minwise Hashing"). `SplitMix64(seed)` draws a
//!   mixing key then a probe key. Each shingle hash `h` is mixed once, `m = mix64(h ^ mix_key)`
//!   (SplitMix64's finaliser); its bin is `(m * num_perm) >> 64` (multiply-shift on the high
//!   bits) and its value `m >> 1`; each bin keeps its smallest value. An empty bin `i` then copies
//!   the value of the first originally non-empty bin on its probe sequence: the successive draws
//!   `(x * num_perm) >> 64` of `SplitMix64(probe_key ^ i)`. Values stay below 2^63.
//! - A text with no shingle has the all-max signature and takes part in no band.
//! - A band's key chains `key = mix64(key ^ value)` over its values, starting from
//!   `0xcbf29ce484222325`; buckets are found by sorting `(key, index)`, and each member is paired with its bucket's smallest index only
//!   (linear and deterministic). With `verify` a pair is joined only when the Jaccard similarity of
//!   the two shingle-hash sets reaches the threshold.
//! - Exact duplicates (equal hash of the normalised text) always share a cluster; a cluster is
//!   named by its smallest index.
//! - [`NearDupIndex`] clusters a corpus streamed in batches (ingest) with little memory per
//!   passage, each member verified against its cluster's leader (see its documentation).

mod index;

pub use index::NearDupIndex;

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, PoisonError};

use rayon::prelude::*;

use crate::error::{invalid, Result};
use crate::hash::fnv1a64;
use crate::rng::{mix64, SplitMix64};
use crate::text::{for_each_shingle_hash, normalize_one, shingle_hash_set, ShingleKind};

pub const EMPTY_SLOT: u64 = u64::MAX;
/// More permutations buy no accuracy worth the time, and bound the `lsh_params` search.
pub const MAX_PERMUTATIONS: usize = 4096;
const INTEGRATION_STEPS: usize = 100;
const BAND_KEY_START: u64 = 0xcbf2_9ce4_8422_2325;

/// `(threshold bits, num_perm) -> (bands, rows)`.
type LshParamsCache = HashMap<(u64, usize), (usize, usize)>;

/// The settings shared by signatures and near-duplicate search.
#[derive(Clone, Copy, Debug)]
pub struct MinHashConfig {
    pub num_perm: usize,
    pub shingle_size: usize,
    pub shingle: ShingleKind,
    pub seed: u64,
}

impl MinHashConfig {
    /// 128 permutations of 5-character shingles, seed 0: the fixture of this module's tests.
    #[cfg(test)]
    pub(crate) fn for_tests() -> Self {
        Self {
            num_perm: 128,
            shingle_size: 5,
            shingle: ShingleKind::Char,
            seed: 0,
        }
    }

    fn check(&self) -> Result<()> {
        check_num_perm(self.num_perm)?;
        if self.shingle_size == 0 {
            return Err(invalid("shingle_size", "must be >= 1, got 0"));
        }
        Ok(())
    }
}

fn check_num_perm(num_perm: usize) -> Result<()> {
    if num_perm == 0 || num_perm > MAX_PERMUTATIONS {
        return Err(invalid(
            "num_perm",
            format!("must be in [1, {MAX_PERMUTATIONS}], got {num_perm}"),
        ));
    }
    Ok(())
}

fn check_threshold(threshold: f64) -> Result<()> {
    if threshold > 0.0 && threshold <= 1.0 {
        Ok(())
    } else {
        Err(invalid(
            "threshold",
            format!("must be in (0, 1], got {threshold}"),
        ))
    }
}

/// FNV-1a 64 of each normalised text.
pub fn exact_hashes(texts: &[&str]) -> Vec<u64> {
    texts
        .par_iter()
        .map(|text| fnv1a64(normalize_one(text).as_bytes()))
        .collect()
}

/// The two keys of the one-permutation scheme, drawn in this order from `SplitMix64(seed)`.
#[derive(Clone, Copy, Debug)]
struct OnePermutation {
    num_perm: usize,
    mix_key: u64,
    probe_key: u64,
}

impl OnePermutation {
    fn new(num_perm: usize, seed: u64) -> Self {
        let mut rng = SplitMix64::new(seed);
        let mix_key = rng.next_u64();
        let probe_key = rng.next_u64();
        Self {
            num_perm,
            mix_key,
            probe_key,
        }
    }

    /// `x * num_perm >> 64`: a bin in `[0, num_perm)` from the high bits of `x`.
    #[inline]
    fn bin_of(&self, x: u64) -> usize {
        ((u128::from(x) * self.num_perm as u128) >> 64) as usize
    }

    /// Writes the signature of `normalized` into `out` (`num_perm` slots); false when the text has
    /// no shingle (then `out` is all [`EMPTY_SLOT`]).
    fn signature_into(&self, normalized: &str, config: &MinHashConfig, out: &mut [u64]) -> bool {
        out.fill(EMPTY_SLOT);
        let mut any = false;
        for_each_shingle_hash(normalized, config.shingle_size, config.shingle, |hash| {
            let mixed = mix64(hash ^ self.mix_key);
            let slot = &mut out[self.bin_of(mixed)];
            *slot = (*slot).min(mixed >> 1);
            any = true;
        });
        if any {
            self.densify(out);
        }
        any
    }

    /// Optimal densification: each empty bin copies the first originally filled bin on its own
    /// probe sequence (the same sequence for every text, which keeps collisions unbiased).
    /// Filled values are below 2^63, so copies are tagged with the top bit (as the empty marker
    /// is) until every bin is done: a tagged bin is never a source.
    fn densify(&self, out: &mut [u64]) {
        const TAG: u64 = 1 << 63;
        // The empty bins as a bit set, built without branches, then visited in increasing order.
        let mut empty = [0u64; MAX_PERMUTATIONS / 64];
        for (bin, &value) in out.iter().enumerate() {
            empty[bin / 64] |= u64::from(value == EMPTY_SLOT) << (bin % 64);
        }
        let words = &empty[..out.len().div_ceil(64)];
        if words.iter().all(|&word| word == 0) {
            return;
        }
        for (word_index, &word) in words.iter().enumerate() {
            let mut remaining = word;
            while remaining != 0 {
                let bin = word_index * 64 + remaining.trailing_zeros() as usize;
                remaining &= remaining - 1;
                let mut probe = SplitMix64::new(self.probe_key ^ bin as u64);
                loop {
                    let source = out[self.bin_of(probe.next_u64())];
                    if source & TAG == 0 {
                        out[bin] = source | TAG;
                        break;
                    }
                }
            }
        }
        out.iter_mut().for_each(|value| *value &= !TAG);
    }
}

/// Row-major `len(texts) x num_perm` signatures.
pub fn minhash_signatures(texts: &[&str], config: &MinHashConfig) -> Result<Vec<u64>> {
    config.check()?;
    let scheme = OnePermutation::new(config.num_perm, config.seed);
    let mut signatures = vec![0u64; texts.len() * config.num_perm];
    signatures
        .par_chunks_mut(config.num_perm)
        .zip(texts.par_iter())
        .for_each(|(out, text)| {
            scheme.signature_into(&normalize_one(text), config, out);
        });
    Ok(signatures)
}

/// Midpoint rule; the Python twin sums the same terms in the same order.
fn integrate(function: impl Fn(f64) -> f64, low: f64, high: f64) -> f64 {
    let width = (high - low) / INTEGRATION_STEPS as f64;
    let mut total = 0.0;
    for step in 0..INTEGRATION_STEPS {
        total += function(low + (step as f64 + 0.5) * width);
    }
    total * width
}

/// `(bands, rows)` with `bands * rows <= num_perm` minimising the equally weighted areas of
/// false positives and false negatives (datasketch's `_optimal_param`, with a fixed quadrature).
/// Results are cached per `(threshold, num_perm)`: the search costs milliseconds, a dedup call on
/// a small batch often less.
pub fn lsh_params(threshold: f64, num_perm: usize) -> Result<(usize, usize)> {
    check_threshold(threshold)?;
    check_num_perm(num_perm)?;
    static CACHE: OnceLock<Mutex<LshParamsCache>> = OnceLock::new();
    let cache = CACHE.get_or_init(Mutex::default);
    let key = (threshold.to_bits(), num_perm);
    if let Some(&params) = cache
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&key)
    {
        return Ok(params);
    }
    let params = search_lsh_params(threshold, num_perm);
    cache
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(key, params);
    Ok(params)
}

fn search_lsh_params(threshold: f64, num_perm: usize) -> (usize, usize) {
    let mut best_error = f64::INFINITY;
    let mut best = (0, 0);
    for bands in 1..=num_perm {
        for rows in 1..=num_perm / bands {
            let (b, r) = (bands as f64, rows as f64);
            let false_positive = integrate(|s| 1.0 - (1.0 - s.powf(r)).powf(b), 0.0, threshold);
            let false_negative =
                integrate(|s| 1.0 - (1.0 - (1.0 - s.powf(r)).powf(b)), threshold, 1.0);
            let error = false_positive * 0.5 + false_negative * 0.5;
            if error < best_error {
                best_error = error;
                best = (bands, rows);
            }
        }
    }
    best
}

/// A band's bucket key: `key = mix64(key ^ value)` over its values, from FNV's offset basis (one
/// mix per value, where byte-wise FNV would take eight multiplies).
fn band_key(values: &[u64]) -> u64 {
    values
        .iter()
        .fold(BAND_KEY_START, |key, &value| mix64(key ^ value))
}

/// Jaccard similarity of two sorted, distinct hash lists.
fn jaccard(left: &[u64], right: &[u64]) -> f64 {
    let (mut i, mut j, mut shared) = (0, 0, 0usize);
    while i < left.len() && j < right.len() {
        match left[i].cmp(&right[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                shared += 1;
                i += 1;
                j += 1;
            }
        }
    }
    shared as f64 / (left.len() + right.len() - shared) as f64
}

/// Disjoint sets whose root is always the smallest member.
pub struct UnionFind {
    parent: Vec<usize>,
}

impl UnionFind {
    pub fn new(n: usize) -> Self {
        Self {
            parent: (0..n).collect(),
        }
    }

    pub fn find(&mut self, item: usize) -> usize {
        let mut root = item;
        while self.parent[root] != root {
            root = self.parent[root];
        }
        let mut node = item;
        while self.parent[node] != root {
            let next = self.parent[node];
            self.parent[node] = root;
            node = next;
        }
        root
    }

    pub fn union(&mut self, left: usize, right: usize) {
        let (left, right) = (self.find(left), self.find(right));
        if left != right {
            self.parent[left.max(right)] = left.min(right);
        }
    }
}

/// `(first, other)` pairs of every bucket with two or more members, sorted and distinct.
fn bucket_pairs(keys: &[u64], has_shingles: &[bool], bands: usize) -> Vec<(usize, usize)> {
    let mut pairs: Vec<(usize, usize)> = (0..bands)
        .into_par_iter()
        .flat_map_iter(|band| {
            let mut entries: Vec<(u64, usize)> = (0..has_shingles.len())
                .filter(|&i| has_shingles[i])
                .map(|i| (keys[i * bands + band], i))
                .collect();
            entries.sort_unstable();
            let mut band_pairs = Vec::new();
            for bucket in entries.chunk_by(|x, y| x.0 == y.0) {
                let first = bucket[0].1;
                band_pairs.extend(bucket[1..].iter().map(|&(_, other)| (first, other)));
            }
            band_pairs
        })
        .collect();
    pairs.par_sort_unstable();
    pairs.dedup();
    pairs
}

/// The pairs whose shingle sets reach `threshold`; each text's set is computed once, and only for
/// texts in some pair.
fn verified_pairs(
    texts: &[&str],
    pairs: &[(usize, usize)],
    config: &MinHashConfig,
    threshold: f64,
) -> Vec<(usize, usize)> {
    let mut members: Vec<usize> = pairs.iter().flat_map(|&(a, b)| [a, b]).collect();
    members.par_sort_unstable();
    members.dedup();
    let sets: Vec<Vec<u64>> = members
        .par_iter()
        .map(|&i| shingle_hash_set(texts[i], config.shingle_size, config.shingle))
        .collect();
    let set_of = |i: usize| {
        &sets[members
            .binary_search(&i)
            .expect("every paired text has a set")]
    };
    pairs
        .par_iter()
        .filter(|&&(left, right)| jaccard(set_of(left), set_of(right)) >= threshold)
        .copied()
        .collect()
}

/// Cluster id per text: the smallest index of the texts it is a (near-)duplicate of.
pub fn near_duplicates(
    texts: &[&str],
    threshold: f64,
    config: &MinHashConfig,
    verify: bool,
) -> Result<Vec<i64>> {
    config.check()?;
    let (bands, rows) = lsh_params(threshold, config.num_perm)?;
    let n = texts.len();
    let mut clusters = UnionFind::new(n);

    let scheme = OnePermutation::new(config.num_perm, config.seed);
    let mut keys = vec![0u64; n * bands];
    let mut has_shingles = vec![false; n];
    let mut by_hash: Vec<(u64, usize)> = vec![(0, 0); n];
    keys.par_chunks_mut(bands)
        .zip(has_shingles.par_iter_mut())
        .zip(by_hash.par_iter_mut())
        .zip(texts.par_iter())
        .enumerate()
        .for_each_init(
            || vec![0u64; config.num_perm],
            |signature, (index, (((text_keys, has), exact), text))| {
                let normalized = normalize_one(text);
                *exact = (fnv1a64(normalized.as_bytes()), index);
                *has = scheme.signature_into(&normalized, config, signature);
                for (key, band) in text_keys.iter_mut().zip(signature.chunks_exact(rows)) {
                    *key = band_key(band);
                }
            },
        );

    by_hash.par_sort_unstable();
    for run in by_hash.chunk_by(|x, y| x.0 == y.0) {
        for &(_, other) in &run[1..] {
            clusters.union(run[0].1, other);
        }
    }

    // Pairs of exact duplicates are already joined: skip them (and their Jaccard) here.
    let mut pairs = bucket_pairs(&keys, &has_shingles, bands);
    pairs.retain(|&(left, right)| clusters.find(left) != clusters.find(right));
    let joined = if verify {
        verified_pairs(texts, &pairs, config, threshold)
    } else {
        pairs
    };
    for (left, right) in joined {
        clusters.union(left, right);
    }
    Ok((0..n).map(|i| clusters.find(i) as i64).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> MinHashConfig {
        MinHashConfig::for_tests()
    }

    #[test]
    fn densified_signature_is_full_and_matches_known_values() {
        // A single shingle fills one bin; densification copies it into every other bin.
        let signatures = minhash_signatures(&["ab"], &config()).unwrap();
        assert!(signatures
            .iter()
            .all(|&v| v == signatures[0] && v < 1 << 63));
        let scheme = OnePermutation::new(128, 0);
        let mixed = mix64(fnv1a64(b"ab") ^ scheme.mix_key);
        assert_eq!(signatures[0], mixed >> 1);
    }

    #[test]
    fn similar_texts_agree_on_about_their_jaccard_share_of_bins() {
        let config = MinHashConfig {
            num_perm: 1024,
            ..config()
        };
        let base = "the patient presented with acute fever, cough and a rash on both arms";
        let edited = "the patient presented with acute fever, cough and a rash on the left arm";
        let signatures = minhash_signatures(&[base, edited], &config).unwrap();
        let (left, right) = signatures.split_at(1024);
        let agree = left.iter().zip(right).filter(|(a, b)| a == b).count() as f64 / 1024.0;
        let truth = jaccard(
            &shingle_hash_set(base, 5, ShingleKind::Char),
            &shingle_hash_set(edited, 5, ShingleKind::Char),
        );
        assert!(
            (agree - truth).abs() < 0.1,
            "agree {agree}, jaccard {truth}"
        );
    }

    #[test]
    fn lsh_params_fit_num_perm() {
        let (bands, rows) = lsh_params(0.8, 128).unwrap();
        assert!(bands * rows <= 128 && bands > 1 && rows > 1);
        assert!(lsh_params(0.0, 128).is_err());
        assert!(lsh_params(1.5, 128).is_err());
    }

    #[test]
    fn finds_near_and_exact_duplicates() {
        let texts = [
            "the quick brown fox jumps over the lazy dog",
            "something else entirely here",
            "The quick brown fox jumps over the lazy dog!",
            "the quick brown fox jumped over the lazy dog",
            "",
            "",
        ];
        let clusters = near_duplicates(&texts, 0.5, &config(), true).unwrap();
        assert_eq!(clusters, vec![0, 1, 0, 0, 4, 4]);
    }

    #[test]
    fn empty_text_signature_is_all_max() {
        let signatures = minhash_signatures(&["", "abc"], &config()).unwrap();
        assert!(signatures[..128].iter().all(|&v| v == EMPTY_SLOT));
        assert!(signatures[128..].iter().all(|&v| v < 1 << 63));
    }
}
