//! [`NearDupIndex`]: near-duplicate clusters of a corpus streamed in batches (ingest), verified
//! against the threshold, with about 135 bytes of memory per distinct passage (4 per duplicate).
//!
//! Passages are numbered in the order they are added and assigned one at a time, so the result
//! does not depend on how the stream is cut into batches:
//! 1. a passage without shingles (nothing but punctuation or spaces) joins the cluster of an
//!    earlier passage with the same exact hash, else starts its own;
//! 2. otherwise it joins the cluster of the earliest *leader* that shares one of its band keys and
//!    agrees with its signature on at least `threshold` of the `num_perm` values (the estimated
//!    Jaccard similarity);
//! 3. otherwise it starts a cluster and becomes its leader.
//!
//! A cluster's id is its leader's index, its smallest. Every member reaches the threshold with its
//! leader, so clusters never chain: in A ~ B ~ C with A ~ C below the threshold, B joins A and C
//! (compared with A alone, the leader) starts its own cluster. An exact copy has the same
//! signature and band keys as its original, so it meets the same leaders and joins the same
//! cluster (a copy of a leader joins that leader).
//!
//! Only leaders are indexed. Memory per passage: its cluster id (4 bytes); per leader, its index
//! (4 bytes) and one entry per band (32-bit key -> leader slot, ~14 bytes with the table's spare
//! room). A band key is the high 32 bits of [`super::band_key`]: a false match only adds a
//! candidate that verification turns down. Leaders with the same key in a band (verification
//! failed between them, which is rare) are listed in one small side table. The leaders'
//! signatures (the low 32 bits of each value: unequal values agree on them with probability
//! 2^-32) go to a scratch file, and are read back, one positional read each, only for candidates;
//! the newest ones wait in a write buffer, from which they are read directly.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::hash::{BuildHasherDefault, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::{band_key, lsh_params, MinHashConfig, OnePermutation};
use crate::error::{invalid, CoreError, Result};
use crate::hash::fnv1a64;
use crate::text::normalize_one;

/// Signatures of new leaders kept in memory before they are appended to the scratch file.
const WRITE_BUFFER_BYTES: usize = 1 << 20;
const FINGERPRINT_BYTES: usize = 4;

/// A hasher for keys that are already hashes: one multiply (the table reads the high bits too),
/// instead of SipHash's rounds.
#[derive(Default)]
pub struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }

    fn write_u32(&mut self, value: u32) {
        self.write_u64(u64::from(value));
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = (self.0.rotate_left(29) ^ value).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type KeyMap<K, V> = HashMap<K, V, BuildHasherDefault<KeyHasher>>;

fn io_error(path: &Path, action: &str, error: std::io::Error) -> CoreError {
    CoreError::Io {
        path: path.display().to_string(),
        message: format!("{action}: {error}"),
    }
}

/// The leaders' signature fingerprints, `width` u32 each (little-endian), in a scratch file plus
/// a write buffer. On Unix the file is unlinked as soon as it is open, so nothing is left behind
/// even if the process is killed; elsewhere it is removed on drop.
struct SignatureStore {
    path: PathBuf,
    file: File,
    width: usize,
    /// Signatures in the file; those after them are in `buffer`.
    flushed: usize,
    buffer: Vec<u8>,
    read: Vec<u8>,
}

impl SignatureStore {
    fn create(path: &Path, width: usize) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(|error| io_error(path, "cannot create the scratch file", error))?;
        #[cfg(unix)]
        std::fs::remove_file(path)
            .map_err(|error| io_error(path, "cannot unlink the scratch file", error))?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
            width,
            flushed: 0,
            buffer: Vec::new(),
            read: vec![0; width * FINGERPRINT_BYTES],
        })
    }

    fn push(&mut self, fingerprints: &[u32]) -> Result<()> {
        self.buffer
            .extend(fingerprints.iter().flat_map(|value| value.to_le_bytes()));
        if self.buffer.len() >= WRITE_BUFFER_BYTES {
            self.file
                .write_all(&self.buffer)
                .map_err(|error| io_error(&self.path, "cannot write the scratch file", error))?;
            self.flushed += self.buffer.len() / (self.width * FINGERPRINT_BYTES);
            self.buffer.clear();
        }
        Ok(())
    }

    /// How many of `slot`'s stored fingerprints equal `fingerprints`'.
    fn equal_values(&mut self, slot: usize, fingerprints: &[u32]) -> Result<usize> {
        let size = self.width * FINGERPRINT_BYTES;
        let stored = if slot >= self.flushed {
            let start = (slot - self.flushed) * size;
            &self.buffer[start..start + size]
        } else {
            read_at(&self.file, &mut self.read, (slot * size) as u64)
                .map_err(|error| io_error(&self.path, "cannot read the scratch file", error))?;
            &self.read[..]
        };
        Ok(stored
            .chunks_exact(FINGERPRINT_BYTES)
            .zip(fingerprints)
            .filter(|&(bytes, value)| *bytes == value.to_le_bytes())
            .count())
    }
}

#[cfg(unix)]
fn read_at(file: &File, out: &mut [u8], offset: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.read_exact_at(out, offset)
}

#[cfg(not(unix))]
fn read_at(mut file: &File, out: &mut [u8], offset: u64) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    file.seek(SeekFrom::Start(offset))?;
    file.read_exact(out)?;
    file.seek(SeekFrom::End(0)).map(|_| ())
}

impl Drop for SignatureStore {
    fn drop(&mut self) {
        if cfg!(not(unix)) {
            // best effort: a file that cannot be removed is left, never a panic in drop
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Work on one passage done in parallel before the sequential assignment.
struct Prepared {
    exact_hash: u64,
    has_shingles: bool,
}

/// Near-duplicate clusters of a corpus streamed in batches; see the module documentation.
pub struct NearDupIndex {
    config: MinHashConfig,
    scheme: OnePermutation,
    bands: usize,
    rows: usize,
    /// The fewest equal signature values that reach the threshold.
    min_equal: usize,
    /// Cluster id per passage.
    clusters: Vec<u32>,
    /// Passage index per leader slot.
    leaders: Vec<u32>,
    /// Per band: 32-bit band key -> the first leader slot with it.
    first_leader: Vec<KeyMap<u32, u32>>,
    /// (band, key) -> the later leader slots with it, in slot order.
    more_leaders: KeyMap<(u32, u32), Vec<u32>>,
    /// Exact hash -> cluster, for passages without shingles.
    without_shingles: KeyMap<u64, u32>,
    /// None once closed.
    store: Option<SignatureStore>,
    candidates: Vec<u32>,
}

impl NearDupIndex {
    /// An empty index whose leaders' signatures go to a new scratch file at `scratch_path`.
    pub fn new(threshold: f64, config: MinHashConfig, scratch_path: &Path) -> Result<Self> {
        config.check()?;
        let (bands, rows) = lsh_params(threshold, config.num_perm)?;
        let num_perm = config.num_perm;
        // the same comparison as the twin's, so both round alike
        let min_equal = (0..=num_perm)
            .find(|&equal| equal as f64 / num_perm as f64 >= threshold)
            .unwrap_or(num_perm);
        Ok(Self {
            config,
            scheme: OnePermutation::new(num_perm, config.seed),
            bands,
            rows,
            min_equal,
            clusters: Vec::new(),
            leaders: Vec::new(),
            first_leader: vec![KeyMap::default(); bands],
            more_leaders: KeyMap::default(),
            without_shingles: KeyMap::default(),
            store: Some(SignatureStore::create(scratch_path, num_perm)?),
            candidates: Vec::new(),
        })
    }

    /// Passages added so far.
    pub fn len(&self) -> usize {
        self.clusters.len()
    }

    pub fn is_empty(&self) -> bool {
        self.clusters.is_empty()
    }

    /// Cluster leaders so far (the signatures in the scratch file).
    pub fn leaders(&self) -> usize {
        self.leaders.len()
    }

    /// Cluster id per passage added so far: the smallest index of its cluster.
    pub fn clusters(&self) -> Vec<i64> {
        self.clusters.iter().map(|&id| i64::from(id)).collect()
    }

    /// Removes the scratch file; `clusters` still answers, `add` no longer does.
    pub fn close(&mut self) {
        self.store = None;
    }

    /// Adds `texts` as the next passages; returns their exact hashes (those of
    /// [`super::exact_hashes`]). Signatures are computed in parallel, passages assigned in order.
    pub fn add(&mut self, texts: &[&str]) -> Result<Vec<u64>> {
        if self.store.is_none() {
            return Err(invalid("index", "closed: its scratch file is gone"));
        }
        let total = self.clusters.len() + texts.len();
        if total > u32::MAX as usize {
            return Err(invalid(
                "texts",
                format!("at most {} passages per index, got {total}", u32::MAX),
            ));
        }
        let (num_perm, bands, rows) = (self.config.num_perm, self.bands, self.rows);
        let (config, scheme) = (&self.config, &self.scheme);
        let mut fingerprints = vec![0u32; texts.len() * num_perm];
        let mut keys = vec![0u32; texts.len() * bands];
        let prepared: Vec<Prepared> = fingerprints
            .par_chunks_mut(num_perm)
            .zip(keys.par_chunks_mut(bands))
            .zip(texts.par_iter())
            .map_init(
                || vec![0u64; num_perm],
                |signature, ((text_fingerprints, text_keys), text)| {
                    let normalized = normalize_one(text);
                    let has_shingles = scheme.signature_into(&normalized, config, signature);
                    for (fingerprint, &value) in text_fingerprints.iter_mut().zip(signature.iter())
                    {
                        *fingerprint = value as u32; // the low 32 bits
                    }
                    for (key, band) in text_keys.iter_mut().zip(signature.chunks_exact(rows)) {
                        *key = (band_key(band) >> 32) as u32;
                    }
                    Prepared {
                        exact_hash: fnv1a64(normalized.as_bytes()),
                        has_shingles,
                    }
                },
            )
            .collect();

        for (offset, passage) in prepared.iter().enumerate() {
            let index = self.clusters.len() as u32;
            let cluster = if passage.has_shingles {
                self.assign(
                    index,
                    &keys[offset * bands..(offset + 1) * bands],
                    &fingerprints[offset * num_perm..(offset + 1) * num_perm],
                )?
            } else {
                *self
                    .without_shingles
                    .entry(passage.exact_hash)
                    .or_insert(index)
            };
            self.clusters.push(cluster);
        }
        Ok(prepared.iter().map(|passage| passage.exact_hash).collect())
    }

    /// The cluster of passage `index`: the earliest verified leader sharing a band key, or
    /// `index` itself after entering it as a leader.
    fn assign(&mut self, index: u32, keys: &[u32], fingerprints: &[u32]) -> Result<u32> {
        self.candidates.clear();
        for (band, key) in keys.iter().enumerate() {
            if let Some(&slot) = self.first_leader[band].get(key) {
                self.candidates.push(slot);
                if let Some(more) = self.more_leaders.get(&(band as u32, *key)) {
                    self.candidates.extend_from_slice(more);
                }
            }
        }
        self.candidates.sort_unstable();
        self.candidates.dedup();
        let store = self.store.as_mut().expect("add checked the index is open");
        for &slot in &self.candidates {
            if store.equal_values(slot as usize, fingerprints)? >= self.min_equal {
                return Ok(self.leaders[slot as usize]);
            }
        }

        let slot = self.leaders.len() as u32;
        store.push(fingerprints)?;
        self.leaders.push(index);
        for (band, &key) in keys.iter().enumerate() {
            match self.first_leader[band].entry(key) {
                Entry::Vacant(entry) => {
                    entry.insert(slot);
                }
                Entry::Occupied(_) => self
                    .more_leaders
                    .entry((band as u32, key))
                    .or_default()
                    .push(slot),
            }
        }
        Ok(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dedup::minhash_signatures;

    fn config() -> MinHashConfig {
        MinHashConfig::for_tests()
    }

    fn scratch(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("synthrank-index-{}-{name}", std::process::id()))
    }

    fn index(threshold: f64, name: &str) -> NearDupIndex {
        NearDupIndex::new(threshold, config(), &scratch(name)).unwrap()
    }

    fn words(range: std::ops::Range<usize>) -> String {
        range
            .map(|i| format!("word{i}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn agreement(left: &str, right: &str) -> f64 {
        let signatures = minhash_signatures(&[left, right], &config()).unwrap();
        let (a, b) = signatures.split_at(128);
        a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / 128.0
    }

    #[test]
    fn joins_exact_and_near_copies_and_hashes_like_exact_hashes() {
        let texts = [
            "the quick brown fox jumps over the lazy dog",
            "something else entirely here",
            "The quick brown fox jumps over the lazy dog!",
            "the quick brown fox jumped over the lazy dog",
        ];
        let mut index = index(0.5, "exact");
        let hashes = index.add(&texts).unwrap();
        assert_eq!(hashes, crate::dedup::exact_hashes(&texts));
        assert_eq!(index.clusters(), vec![0, 1, 0, 0]);
        assert_eq!((index.len(), index.leaders()), (4, 2));
    }

    #[test]
    fn does_not_depend_on_batches_or_the_write_buffer() {
        let texts: Vec<String> = (0..3000)
            .map(|i| words((i % 97) * 3..(i % 97) * 3 + 12 + i % 5))
            .collect();
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        let mut whole = index(0.6, "whole");
        whole.add(&texts).unwrap();
        let mut streamed = index(0.6, "streamed");
        for batch in texts.chunks(7) {
            streamed.add(batch).unwrap();
        }
        streamed.add(&[]).unwrap();
        assert_eq!(whole.clusters(), streamed.clusters());
        assert!(whole.leaders() < 97 * 5); // the repeats joined their first occurrence
    }

    #[test]
    fn flushed_signatures_read_back_equal() {
        let width = 128;
        let mut store = SignatureStore::create(&scratch("store"), width).unwrap();
        let per_signature = width * FINGERPRINT_BYTES;
        let count = WRITE_BUFFER_BYTES / per_signature + 10;
        for slot in 0..count {
            let values: Vec<u32> = (0..width as u32).map(|v| v * 7 + slot as u32).collect();
            store.push(&values).unwrap();
        }
        assert!(store.flushed > 0 && store.flushed < count);
        for slot in [0, store.flushed - 1, store.flushed, count - 1] {
            let values: Vec<u32> = (0..width as u32).map(|v| v * 7 + slot as u32).collect();
            assert_eq!(store.equal_values(slot, &values).unwrap(), width);
        }
    }

    #[test]
    fn clusters_do_not_chain_below_the_threshold() {
        // A ~ B and B ~ C reach the threshold, A ~ C does not: C leads its own cluster.
        let (a, b, c) = (words(0..30), words(6..36), words(12..42));
        let threshold = 0.5;
        assert!(agreement(&a, &b) >= threshold);
        assert!(agreement(&b, &c) >= threshold);
        assert!(agreement(&a, &c) < threshold);
        let mut index = index(threshold, "chain");
        index.add(&[&a, &b, &c, &c]).unwrap();
        assert_eq!(index.clusters(), vec![0, 0, 2, 2]);
    }

    #[test]
    fn passages_without_shingles_join_only_exact_copies() {
        let mut index = index(0.8, "empty");
        index.add(&["", "!!!", ""]).unwrap();
        index.add(&["???", "...", "!!!"]).unwrap();
        assert_eq!(index.clusters(), vec![0, 1, 0, 3, 4, 1]);
    }

    #[test]
    fn scratch_file_is_gone_and_closed_index_refuses_to_add() {
        let path = scratch("gone");
        let mut index = NearDupIndex::new(0.8, config(), &path).unwrap();
        index.add(&["some text to index"]).unwrap();
        if cfg!(unix) {
            assert!(!path.exists());
        }
        index.close();
        assert!(!path.exists());
        assert_eq!(index.clusters(), vec![0]);
        assert!(index.add(&["more"]).is_err());
    }

    #[test]
    fn rejects_bad_settings_and_paths() {
        assert!(NearDupIndex::new(0.0, config(), &scratch("bad")).is_err());
        let bad = MinHashConfig {
            num_perm: 0,
            ..config()
        };
        assert!(NearDupIndex::new(0.8, bad, &scratch("bad")).is_err());
        let missing = std::env::temp_dir().join("synthrank-no-such-folder/x/scratch");
        let error = NearDupIndex::new(0.8, config(), &missing).err().unwrap();
        assert!(error.to_string().contains("scratch"), "{error}");
    }
}
