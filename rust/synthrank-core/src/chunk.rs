//! Fixed-size, overlapping windows over word or tokenizer tokens.
//!
//! A window holds up to `max_tokens` tokens and the next starts `overlap` tokens before its end;
//! the window that reaches the end of the document is the last, so no window only repeats overlap.
//! Tokenizer windows end and start on word boundaries (the tokenizer's word ids): a window that
//! would cut a word ends before it, and an overlap that would start inside a word starts at the
//! next word.
//! Spans are character (not byte) offsets into the original text, from the first token's start to
//! the last token's end.

use std::path::Path;

use rayon::prelude::*;
use tokenizers::Tokenizer;

use crate::error::{invalid, CoreError, Result};

/// Passages as parallel columns; `start`/`end` are character offsets into document `doc_index`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Chunks {
    pub doc_index: Vec<i64>,
    pub start: Vec<i64>,
    pub end: Vec<i64>,
    pub n_tokens: Vec<i32>,
}

fn check_window(max_tokens: usize, overlap: usize) -> Result<()> {
    if max_tokens == 0 {
        return Err(invalid("max_tokens", "must be >= 1, got 0"));
    }
    if overlap >= max_tokens {
        return Err(invalid(
            "overlap",
            format!("must be < max_tokens ({max_tokens}), got {overlap}"),
        ));
    }
    Ok(())
}

/// `[first, last)` token ranges of the windows over tokens whose word starts are `word_starts`.
///
/// Windows end and (overlapping) start on word boundaries so that a passage re-encodes to the same
/// tokens; only a single word longer than `max_tokens` is cut inside.
pub fn windows(word_starts: &[bool], max_tokens: usize, overlap: usize) -> Vec<(usize, usize)> {
    let n_tokens = word_starts.len();
    let mut result = Vec::new();
    let mut first = 0;
    while first < n_tokens {
        let mut last = first.saturating_add(max_tokens).min(n_tokens);
        if last < n_tokens && !word_starts[last] {
            let mut boundary = last - 1;
            while boundary > first && !word_starts[boundary] {
                boundary -= 1;
            }
            if boundary > first {
                last = boundary;
            }
        }
        result.push((first, last));
        if last == n_tokens {
            break;
        }
        // Step back `overlap` tokens, but always forward from `first`, and onto a word start.
        let mut following = last.saturating_sub(overlap).max(first + 1);
        while following < last && !word_starts[following] {
            following += 1;
        }
        first = following;
    }
    result
}

/// True where a token starts a new pre-tokenizer word (a token without a word is its own word).
pub fn word_starts_of(word_ids: &[Option<u32>]) -> Vec<bool> {
    word_ids
        .iter()
        .enumerate()
        .map(|(position, &word)| position == 0 || word.is_none() || word != word_ids[position - 1])
        .collect()
}

/// The Unicode White_Space property, which `char::is_whitespace` implements.
pub fn word_spans(text: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut start: Option<usize> = None;
    let mut position = 0;
    for c in text.chars() {
        match (c.is_whitespace(), start) {
            (true, Some(begin)) => {
                spans.push((begin, position));
                start = None;
            }
            (false, None) => start = Some(position),
            _ => {}
        }
        position += 1;
    }
    if let Some(begin) = start {
        spans.push((begin, position));
    }
    spans
}

/// A document's token spans and which tokens start a word.
type TokenSpans = (Vec<(usize, usize)>, Vec<bool>);

fn collect_chunks(docs: Vec<TokenSpans>, max_tokens: usize, overlap: usize) -> Chunks {
    let mut chunks = Chunks::default();
    for (doc, (spans, word_starts)) in docs.iter().enumerate() {
        for (first, last) in windows(word_starts, max_tokens, overlap) {
            chunks.doc_index.push(doc as i64);
            chunks.start.push(spans[first].0 as i64);
            chunks.end.push(spans[last - 1].1 as i64);
            chunks.n_tokens.push((last - first) as i32);
        }
    }
    chunks
}

/// Windows of `max_tokens` runs of non-white-space characters.
pub fn chunk_words(texts: &[&str], max_tokens: usize, overlap: usize) -> Result<Chunks> {
    check_window(max_tokens, overlap)?;
    let docs = texts
        .par_iter()
        .map(|text| {
            let spans = word_spans(text);
            let starts = vec![true; spans.len()];
            (spans, starts)
        })
        .collect();
    Ok(collect_chunks(docs, max_tokens, overlap))
}

/// A parsed `tokenizer.json`, loaded once and reused for every batch of texts it chunks.
#[derive(Debug, Clone)]
pub struct Chunker {
    tokenizer: Tokenizer,
}

impl Chunker {
    /// Loads a `tokenizer.json` with truncation and padding switched off, so every token is counted.
    pub fn from_file(path: &Path) -> Result<Self> {
        let shown = path.display().to_string();
        if !path.is_file() {
            return Err(CoreError::TokenizerNotFound { path: shown });
        }
        let mut tokenizer = Tokenizer::from_file(path).map_err(|error| CoreError::Tokenizer {
            path: shown.clone(),
            message: error.to_string(),
        })?;
        tokenizer
            .with_truncation(None)
            .map_err(|error| CoreError::Tokenizer {
                path: shown,
                message: error.to_string(),
            })?;
        tokenizer.with_padding(None);
        Ok(Self { tokenizer })
    }

    /// Windows of `max_tokens` tokens of the tokenizer, special tokens excluded.
    pub fn chunk(&self, texts: &[&str], max_tokens: usize, overlap: usize) -> Result<Chunks> {
        check_window(max_tokens, overlap)?;
        let docs = texts
            .par_iter()
            .enumerate()
            .map(|(doc, text)| {
                self.tokenizer
                    .encode_char_offsets(*text, false)
                    .map(|encoding| {
                        let starts = word_starts_of(encoding.get_word_ids());
                        (encoding.get_offsets().to_vec(), starts)
                    })
                    .map_err(|error| CoreError::Tokenizer {
                        path: format!("texts[{doc}]"),
                        message: error.to_string(),
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(collect_chunks(docs, max_tokens, overlap))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_stop_at_the_end() {
        let all = |n: usize| vec![true; n];
        assert_eq!(windows(&all(5), 2, 1), vec![(0, 2), (1, 3), (2, 4), (3, 5)]);
        assert_eq!(windows(&all(4), 3, 1), vec![(0, 3), (2, 4)]);
        assert_eq!(windows(&all(3), 3, 1), vec![(0, 3)]);
        assert!(windows(&[], 3, 0).is_empty());
    }

    #[test]
    fn windows_do_not_cut_words() {
        // words: [0], [1, 2, 3], [4], [5, 6]
        let starts = [true, true, false, false, true, true, false];
        assert_eq!(windows(&starts, 3, 0), vec![(0, 1), (1, 4), (4, 7)]);
        assert_eq!(windows(&starts, 4, 1), vec![(0, 4), (4, 7)]);
        // a word longer than a window is cut
        assert_eq!(windows(&[true, false, false], 2, 0), vec![(0, 2), (2, 3)]);
        // a window shortened below the overlap still moves forward
        let starts = [true, true, true, true, true, false, false];
        assert_eq!(windows(&starts, 6, 5), vec![(0, 4), (1, 7)]);
    }

    #[test]
    fn word_chunks_use_character_offsets() {
        let chunks = chunk_words(&["é b c", "  ", "x"], 2, 0).unwrap();
        assert_eq!(chunks.doc_index, vec![0, 0, 2]);
        assert_eq!(chunks.start, vec![0, 4, 0]);
        assert_eq!(chunks.end, vec![3, 5, 1]);
        assert_eq!(chunks.n_tokens, vec![2, 1, 1]);
    }

    #[test]
    fn overlap_must_be_below_max_tokens() {
        assert!(matches!(
            chunk_words(&["a"], 2, 2),
            Err(CoreError::InvalidArgument {
                argument: "overlap",
                ..
            })
        ));
    }

    #[test]
    fn missing_tokenizer_is_reported() {
        assert!(matches!(
            Chunker::from_file(Path::new("/nonexistent/tokenizer.json")),
            Err(CoreError::TokenizerNotFound { .. })
        ));
    }
}
