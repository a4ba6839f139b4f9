//! Hard-negative selection from retrieval candidates, with every drop counted by reason.
//!
//! Each candidate is dropped for the first reason that applies, in [`COUNT_NAMES`] order; the
//! eligible rest is taken from the top, or sampled without replacement by a partial Fisher-Yates
//! shuffle on the query's own SplitMix64 stream and put back in rank order. Output rows are padded
//! with id -1, score NaN and judged `false`.

use rayon::prelude::*;

use crate::error::{invalid, Result};
use crate::rng::{derive_seed, SplitMix64};

/// Names of the counters, in the order of [`NegativeSelection::counts`]: the drop reasons in the
/// order they are tested, then `not_selected`, `selected` and `queries_short`.
pub const COUNT_NAMES: [&str; 13] = [
    "invalid_id",
    "positive",
    "duplicate_of_positive",
    "near_duplicate_of_positive",
    "judged_relevant",
    "judged_ambiguous",
    "unjudged",
    "outside_rank_window",
    "above_max_score",
    "margin",
    "not_selected",
    "selected",
    "queries_short",
];
/// Far more than any training group needs; bounds the output allocation.
pub const MAX_NEGATIVES: usize = 65_536;
const NOT_SELECTED: usize = 10;
const SELECTED: usize = 11;
const QUERIES_SHORT: usize = 12;

type Counts = [u64; 13];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sampling {
    Top,
    Random,
}

/// Row-major candidate and positive tables of `n_queries` rows; optional tables may be absent.
#[derive(Clone, Copy, Debug)]
pub struct Candidates<'a> {
    pub n_queries: usize,
    pub cand_ids: &'a [i64],
    pub cand_scores: &'a [f32],
    pub pos_ids: &'a [i64],
    pub pos_scores: Option<&'a [f32]>,
    pub labels: Option<&'a [f32]>,
    pub doc_hashes: Option<&'a [u64]>,
    pub cluster_ids: Option<&'a [i64]>,
}

#[derive(Clone, Debug)]
pub struct NegativeOptions {
    pub num_negatives: usize,
    pub range_min: usize,
    pub range_max: Option<usize>,
    pub absolute_margin: Option<f64>,
    pub relative_margin: Option<f64>,
    pub max_score: Option<f64>,
    pub sampling: Sampling,
    pub seed: u64,
    pub relevant_min_label: f64,
    pub negative_max_label: f64,
    pub allow_unjudged: bool,
}

/// Row-major `n_queries x num_negatives` outputs and the counters named by [`COUNT_NAMES`].
#[derive(Clone, Debug, PartialEq)]
pub struct NegativeSelection {
    pub neg_ids: Vec<i64>,
    pub neg_scores: Vec<f32>,
    pub neg_judged: Vec<bool>,
    pub counts: Counts,
}

/// One query's view of the inputs.
struct QueryRow<'a> {
    ids: &'a [i64],
    scores: &'a [f32],
    labels: Option<&'a [f32]>,
    positives: Vec<i64>,
    positive_hashes: Vec<u64>,
    positive_clusters: Vec<i64>,
    weakest: Option<f64>,
}

fn check(candidates: &Candidates, options: &NegativeOptions) -> Result<(usize, usize)> {
    let q = candidates.n_queries;
    let rows_of = |len: usize, name: &'static str| -> Result<usize> {
        if q == 0 {
            return Ok(0);
        }
        if len % q != 0 {
            return Err(invalid(
                name,
                format!("length {len} is not a multiple of {q} queries"),
            ));
        }
        Ok(len / q)
    };
    let k = rows_of(candidates.cand_ids.len(), "cand_ids")?;
    let p = rows_of(candidates.pos_ids.len(), "pos_ids")?;
    if candidates.cand_scores.len() != candidates.cand_ids.len() {
        return Err(invalid("cand_scores", "shape does not match cand_ids"));
    }
    if candidates
        .labels
        .is_some_and(|l| l.len() != candidates.cand_ids.len())
    {
        return Err(invalid("labels", "shape does not match cand_ids"));
    }
    if candidates
        .pos_scores
        .is_some_and(|s| s.len() != candidates.pos_ids.len())
    {
        return Err(invalid("pos_scores", "shape does not match pos_ids"));
    }
    let largest_id = candidates
        .cand_ids
        .iter()
        .chain(candidates.pos_ids)
        .copied()
        .max()
        .unwrap_or(-1);
    for (name, len) in [
        ("doc_hashes", candidates.doc_hashes.map(<[u64]>::len)),
        ("cluster_ids", candidates.cluster_ids.map(<[i64]>::len)),
    ] {
        if len.is_some_and(|len| largest_id >= 0 && largest_id as usize >= len) {
            let message = format!("id {largest_id} in cand_ids or pos_ids is out of range");
            return Err(invalid(name, message));
        }
    }
    if options
        .relative_margin
        .is_some_and(|m| !(0.0..1.0).contains(&m))
    {
        return Err(invalid("relative_margin", "must be in [0, 1)"));
    }
    if options.num_negatives > MAX_NEGATIVES {
        let message = format!("must be <= {MAX_NEGATIVES}, got {}", options.num_negatives);
        return Err(invalid("num_negatives", message));
    }
    Ok((k, p))
}

/// Python's `min` over a list: keep the first, replace it by anything smaller.
fn python_min(values: impl Iterator<Item = f64>) -> Option<f64> {
    values.fold(None, |best, value| match best {
        Some(current) if value < current => Some(value),
        Some(current) => Some(current),
        None => Some(value),
    })
}

fn query_row<'a>(candidates: &Candidates<'a>, query: usize, k: usize, p: usize) -> QueryRow<'a> {
    let ids = &candidates.cand_ids[query * k..(query + 1) * k];
    let scores = &candidates.cand_scores[query * k..(query + 1) * k];
    let pos_row = &candidates.pos_ids[query * p..(query + 1) * p];
    let mut positives: Vec<i64> = pos_row.iter().copied().filter(|&id| id >= 0).collect();
    positives.sort_unstable();
    positives.dedup();
    let positive_hashes = candidates.doc_hashes.map_or_else(Vec::new, |hashes| {
        positives.iter().map(|&id| hashes[id as usize]).collect()
    });
    let positive_clusters = candidates.cluster_ids.map_or_else(Vec::new, |clusters| {
        positives.iter().map(|&id| clusters[id as usize]).collect()
    });
    let weakest = match candidates.pos_scores {
        Some(pos_scores) => python_min(
            pos_scores[query * p..(query + 1) * p]
                .iter()
                .zip(pos_row)
                .filter(|&(score, &id)| id >= 0 && !score.is_nan())
                .map(|(&score, _)| f64::from(score)),
        ),
        None => python_min(
            ids.iter()
                .zip(scores)
                .filter(|&(id, _)| positives.contains(id))
                .map(|(_, &score)| f64::from(score)),
        ),
    };
    QueryRow {
        ids,
        scores,
        labels: candidates
            .labels
            .map(|labels| &labels[query * k..(query + 1) * k]),
        positives,
        positive_hashes,
        positive_clusters,
        weakest,
    }
}

/// Index into [`COUNT_NAMES`] of the reason candidate `rank` is dropped, or `None` if eligible.
fn drop_reason(
    row: &QueryRow,
    rank: usize,
    range_max: usize,
    candidates: &Candidates,
    options: &NegativeOptions,
) -> Option<usize> {
    let id = row.ids[rank];
    let score = f64::from(row.scores[rank]);
    let label = row
        .labels
        .map_or(f64::NAN, |labels| f64::from(labels[rank]));
    if id < 0 {
        return Some(0);
    }
    if row.positives.contains(&id) {
        return Some(1);
    }
    if candidates
        .doc_hashes
        .is_some_and(|hashes| row.positive_hashes.contains(&hashes[id as usize]))
    {
        return Some(2);
    }
    if candidates
        .cluster_ids
        .is_some_and(|clusters| row.positive_clusters.contains(&clusters[id as usize]))
    {
        return Some(3);
    }
    if label >= options.relevant_min_label {
        return Some(4);
    }
    if options.negative_max_label < label && label < options.relevant_min_label {
        return Some(5);
    }
    if label.is_nan() && !options.allow_unjudged {
        return Some(6);
    }
    if rank < options.range_min || rank >= range_max {
        return Some(7);
    }
    if options.max_score.is_some_and(|max| score > max) {
        return Some(8);
    }
    if let Some(weakest) = row.weakest {
        let below_absolute = options.absolute_margin.is_some_and(|m| score > weakest - m);
        let below_relative = options
            .relative_margin
            .is_some_and(|m| score > weakest * (1.0 - m));
        if below_absolute || below_relative {
            return Some(9);
        }
    }
    None
}

/// Buffers reused across the queries one worker handles.
#[derive(Default)]
struct Scratch {
    eligible: Vec<usize>,
    order: Vec<usize>,
}

/// Positions in `scratch.eligible` of the chosen negatives, ascending, left in `scratch.order`.
fn choose(scratch: &mut Scratch, options: &NegativeOptions, query: usize) {
    let (eligible, order) = (&scratch.eligible, &mut scratch.order);
    let n = options.num_negatives;
    order.clear();
    order.extend(0..eligible.len());
    if eligible.len() <= n || options.sampling == Sampling::Top {
        order.truncate(n);
        return;
    }
    let mut rng = SplitMix64::new(derive_seed(options.seed, query as u64));
    for i in 0..n {
        let j = i + rng.below((eligible.len() - i) as u64) as usize;
        order.swap(i, j);
    }
    order.truncate(n);
    order.sort_unstable();
}

/// Fills one query's output row and returns its counters.
#[allow(clippy::too_many_arguments)]
fn select_row(
    candidates: &Candidates,
    options: &NegativeOptions,
    query: usize,
    k: usize,
    p: usize,
    scratch: &mut Scratch,
    out_ids: &mut [i64],
    out_scores: &mut [f32],
    out_judged: &mut [bool],
) -> Counts {
    let row = query_row(candidates, query, k, p);
    let range_max = options.range_max.unwrap_or(k);
    let mut counts = [0u64; 13];
    scratch.eligible.clear();
    for rank in 0..k {
        match drop_reason(&row, rank, range_max, candidates, options) {
            Some(reason) => counts[reason] += 1,
            None => scratch.eligible.push(rank),
        }
    }
    choose(scratch, options, query);
    for (slot, &position) in scratch.order.iter().enumerate() {
        let rank = scratch.eligible[position];
        out_ids[slot] = row.ids[rank];
        out_scores[slot] = row.scores[rank];
        out_judged[slot] = row.labels.is_some_and(|labels| !labels[rank].is_nan());
    }
    let chosen = scratch.order.len();
    counts[NOT_SELECTED] = (scratch.eligible.len() - chosen) as u64;
    counts[SELECTED] = chosen as u64;
    counts[QUERIES_SHORT] = u64::from(chosen < options.num_negatives);
    counts
}

fn add_counts(mut left: Counts, right: Counts) -> Counts {
    for (total, value) in left.iter_mut().zip(right) {
        *total += value;
    }
    left
}

/// Up to `num_negatives` hard negatives per query (parallel over queries).
pub fn select_negatives(
    candidates: &Candidates,
    options: &NegativeOptions,
) -> Result<NegativeSelection> {
    let (k, p) = check(candidates, options)?;
    let (q, n) = (candidates.n_queries, options.num_negatives);
    let mut neg_ids = vec![-1i64; q * n];
    let mut neg_scores = vec![f32::NAN; q * n];
    let mut neg_judged = vec![false; q * n];
    let counts = if n == 0 {
        (0..q)
            .into_par_iter()
            .map_init(Scratch::default, |scratch, query| {
                select_row(
                    candidates,
                    options,
                    query,
                    k,
                    p,
                    scratch,
                    &mut [],
                    &mut [],
                    &mut [],
                )
            })
            .reduce(|| [0; 13], add_counts)
    } else {
        neg_ids
            .par_chunks_mut(n)
            .zip(neg_scores.par_chunks_mut(n))
            .zip(neg_judged.par_chunks_mut(n))
            .enumerate()
            .map_init(
                Scratch::default,
                |scratch, (query, ((ids, scores), judged))| {
                    select_row(
                        candidates, options, query, k, p, scratch, ids, scores, judged,
                    )
                },
            )
            .reduce(|| [0; 13], add_counts)
    };
    Ok(NegativeSelection {
        neg_ids,
        neg_scores,
        neg_judged,
        counts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(num_negatives: usize) -> NegativeOptions {
        NegativeOptions {
            num_negatives,
            range_min: 0,
            range_max: None,
            absolute_margin: None,
            relative_margin: None,
            max_score: None,
            sampling: Sampling::Top,
            seed: 0,
            relevant_min_label: 2.0,
            negative_max_label: 0.0,
            allow_unjudged: true,
        }
    }

    #[test]
    fn drops_positives_duplicates_and_padding() {
        let hashes = [10u64, 11, 10, 12, 13];
        let clusters = [0i64, 1, 2, 1, 4];
        let candidates = Candidates {
            n_queries: 1,
            cand_ids: &[0, 2, 3, -1, 4],
            cand_scores: &[0.9, 0.8, 0.7, 0.0, 0.5],
            pos_ids: &[0, 1],
            pos_scores: None,
            labels: None,
            doc_hashes: Some(&hashes),
            cluster_ids: Some(&clusters),
        };
        let selection = select_negatives(&candidates, &options(2)).unwrap();
        assert_eq!(selection.neg_ids, vec![4, -1]);
        assert_eq!(&selection.counts[..4], &[1, 1, 1, 1]);
        assert_eq!(selection.counts[SELECTED], 1);
        assert_eq!(selection.counts[QUERIES_SHORT], 1);
    }

    #[test]
    fn margin_uses_weakest_positive() {
        let candidates = Candidates {
            n_queries: 1,
            cand_ids: &[5, 6, 7],
            cand_scores: &[0.95, 0.85, 0.5],
            pos_ids: &[9],
            pos_scores: Some(&[0.9]),
            labels: None,
            doc_hashes: None,
            cluster_ids: None,
        };
        let mut opts = options(3);
        opts.absolute_margin = Some(0.1);
        let selection = select_negatives(&candidates, &opts).unwrap();
        assert_eq!(selection.neg_ids, vec![7, -1, -1]);
        assert_eq!(selection.counts[9], 2);
    }

    #[test]
    fn random_sampling_is_seeded_and_in_rank_order() {
        let ids: Vec<i64> = (0..50).collect();
        let scores: Vec<f32> = (0..50).map(|i| 1.0 - i as f32 / 100.0).collect();
        let candidates = Candidates {
            n_queries: 1,
            cand_ids: &ids,
            cand_scores: &scores,
            pos_ids: &[-1],
            pos_scores: None,
            labels: None,
            doc_hashes: None,
            cluster_ids: None,
        };
        let mut opts = options(5);
        opts.sampling = Sampling::Random;
        let first = select_negatives(&candidates, &opts).unwrap();
        let again = select_negatives(&candidates, &opts).unwrap();
        assert_eq!(first, again);
        assert!(first.neg_ids.windows(2).all(|pair| pair[0] < pair[1]));
        assert_ne!(first.neg_ids, vec![0, 1, 2, 3, 4]);
    }
}
