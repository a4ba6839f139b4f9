//! Seeded reservoir sampling (Algorithm R) over item indices.

use std::collections::HashMap;

use crate::rng::{derive_seed, SplitMix64};

/// A uniform sample of `k` ids from a stream of any length; the same seed and stream give the
/// same sample however the stream is split into `extend` calls.
#[derive(Clone, Debug)]
pub struct Reservoir {
    k: usize,
    rng: SplitMix64,
    seen: u64,
    items: Vec<i64>,
}

impl Reservoir {
    pub fn new(k: usize, seed: u64) -> Self {
        Self {
            k,
            rng: SplitMix64::new(seed),
            seen: 0,
            items: Vec::new(),
        }
    }

    pub fn push(&mut self, item: i64) {
        if self.k == 0 {
            return;
        }
        if (self.seen as usize) < self.k {
            self.items.push(item);
        } else {
            let slot = self.rng.below(self.seen + 1);
            if slot < self.k as u64 {
                self.items[slot as usize] = item;
            }
        }
        self.seen += 1;
    }

    pub fn extend(&mut self, items: &[i64]) {
        for &item in items {
            self.push(item);
        }
    }

    /// The sample, sorted ascending.
    pub fn result(&self) -> Vec<i64> {
        let mut sorted = self.items.clone();
        sorted.sort_unstable();
        sorted
    }
}

fn eligible_ids(n: usize, eligible: Option<&[bool]>) -> impl Iterator<Item = usize> + '_ {
    (0..n).filter(move |&i| eligible.is_none_or(|mask| mask[i]))
}

/// `k` of the eligible indices in `[0, n)` (all of them if fewer), sorted ascending.
pub fn sample_uniform(n: usize, k: usize, seed: u64, eligible: Option<&[bool]>) -> Vec<i64> {
    let mut reservoir = Reservoir::new(k, seed);
    for item in eligible_ids(n, eligible) {
        reservoir.push(item as i64);
    }
    reservoir.result()
}

/// Up to `quotas[s]` (else `default_quota`) eligible indices of each stratum `s`, sorted ascending;
/// stratum `s` samples with its own seed derived from `(seed, s)`.
pub fn sample_stratified(
    strata: &[i64],
    default_quota: usize,
    quotas: &HashMap<i64, usize>,
    seed: u64,
    eligible: Option<&[bool]>,
) -> Vec<i64> {
    let mut reservoirs: HashMap<i64, Reservoir> = HashMap::new();
    for item in eligible_ids(strata.len(), eligible) {
        let stratum = strata[item];
        reservoirs
            .entry(stratum)
            .or_insert_with(|| {
                let quota = quotas.get(&stratum).copied().unwrap_or(default_quota);
                Reservoir::new(quota, derive_seed(seed, stratum as u64))
            })
            .push(item as i64);
    }
    let mut chosen: Vec<i64> = reservoirs
        .values()
        .flat_map(|r| r.items.iter().copied())
        .collect();
    chosen.sort_unstable();
    chosen
}

/// True where `min_length <= length <= max_length`; a missing bound is open.
pub fn length_mask(lengths: &[i64], min_length: Option<i64>, max_length: Option<i64>) -> Vec<bool> {
    lengths
        .iter()
        .map(|&length| {
            min_length.is_none_or(|low| length >= low)
                && max_length.is_none_or(|high| length <= high)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_everything_when_k_is_large() {
        assert_eq!(sample_uniform(4, 10, 1, None), vec![0, 1, 2, 3]);
        let mask = [true, false, true, false];
        assert_eq!(sample_uniform(4, 10, 1, Some(&mask)), vec![0, 2]);
    }

    #[test]
    fn streaming_equals_one_shot() {
        let ids: Vec<i64> = (0..1000).collect();
        let mut reservoir = Reservoir::new(10, 42);
        reservoir.extend(&ids[..300]);
        reservoir.extend(&ids[300..]);
        assert_eq!(reservoir.result(), sample_uniform(1000, 10, 42, None));
        assert_eq!(reservoir.result().len(), 10);
    }

    #[test]
    fn stratified_respects_quotas() {
        let strata: Vec<i64> = (0..100).map(|i| i % 3).collect();
        let quotas = HashMap::from([(1, 5)]);
        let chosen = sample_stratified(&strata, 2, &quotas, 9, None);
        let per_stratum = |s: i64| chosen.iter().filter(|&&i| strata[i as usize] == s).count();
        assert_eq!((per_stratum(0), per_stratum(1), per_stratum(2)), (2, 5, 2));
    }

    #[test]
    fn length_mask_bounds_are_inclusive() {
        assert_eq!(
            length_mask(&[1, 5, 10], Some(5), Some(10)),
            vec![false, true, true]
        );
        assert_eq!(length_mask(&[1], None, None), vec![true]);
    }
}
