//! Text normalisation, word tokens and shingles.
//!
//! Normalisation is NFKC then full case folding, like Python's
//! `unicodedata.normalize("NFKC", s).casefold()`. A word token is a maximal run of characters of
//! general category L*, M*, N* or Pc in the normalised text. Character shingles run over the tokens
//! joined by single spaces, word shingles over consecutive tokens; a text shorter than one shingle
//! is one shingle. The Unicode tables here are newer than Python's; both agree on every code point
//! Python's database assigns.

use std::borrow::Cow;

use caseless::Caseless;
use rayon::prelude::*;
use unicode_general_category::{get_general_category, GeneralCategory as Gc};
use unicode_normalization::{is_nfkc_quick, IsNormalized, UnicodeNormalization};

use crate::error::{invalid, Result};
use crate::hash::{fnv1a64, Fnv1a64};

/// Which shingles a text is cut into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShingleKind {
    Char,
    Word,
}

pub fn normalize_one(text: &str) -> String {
    // NFKC leaves ASCII unchanged and case folding of ASCII is lowercasing: the common fast path.
    if text.is_ascii() {
        return text.to_ascii_lowercase();
    }
    // Every ASCII character is a normalisation boundary (a starter that never decomposes and is
    // never the second half of a composition), so NFKC can run on each maximal non-ASCII run plus
    // the one character before it (a base its marks may compose with) and leave the rest alone.
    let bytes = text.as_bytes();
    let mut folded = String::with_capacity(text.len());
    let mut done = 0;
    while let Some(offset) = bytes[done..].iter().position(|byte| !byte.is_ascii()) {
        let run_start = done + offset;
        let segment_start = if run_start > done {
            run_start - 1
        } else {
            run_start
        };
        let run_end = bytes[run_start..]
            .iter()
            .position(u8::is_ascii)
            .map_or(bytes.len(), |length| run_start + length);
        let run = &text[run_start..run_end];
        if run
            .chars()
            .all(|c| in_latin1_upper_half(c) || latin_ligature(c).is_some())
        {
            push_ascii_lowercase(&mut folded, &text[done..run_start]);
            push_latin1_case_folded(&mut folded, run);
        } else {
            push_ascii_lowercase(&mut folded, &text[done..segment_start]);
            push_nfkc_case_folded(&mut folded, &text[segment_start..run_end]);
        }
        done = run_end;
    }
    push_ascii_lowercase(&mut folded, &text[done..]);
    folded
}

/// U+00C0..=U+00FF (the Latin-1 letters, plus "×" and "÷"): starters that NFKC keeps and nothing
/// composes onto, so a run of them needs only case folding.
fn in_latin1_upper_half(c: char) -> bool {
    ('\u{C0}'..='\u{FF}').contains(&c)
}

/// The NFKC (and case-folded) form of the Latin ligatures U+FB00..=U+FB06, which PDF text
/// extraction often leaves in: lowercase ASCII starters that compose with nothing.
fn latin_ligature(c: char) -> Option<&'static str> {
    const FORMS: [&str; 7] = ["ff", "fi", "fl", "ffi", "ffl", "st", "st"];
    let index = (c as u32).checked_sub(0xFB00)?;
    FORMS.get(index as usize).copied()
}

/// NFKC then full case folding of a run of [`in_latin1_upper_half`] and [`latin_ligature`]
/// characters: "ß" folds to "ss", the capitals (all but U+00D7, "×") to their small letters 0x20
/// above, a ligature to its letters, the rest to themselves.
fn push_latin1_case_folded(out: &mut String, run: &str) {
    for c in run.chars() {
        if let Some(letters) = latin_ligature(c) {
            out.push_str(letters);
            continue;
        }
        match c {
            '\u{DF}' => out.push_str("ss"),
            '\u{C0}'..='\u{DE}' if c != '\u{D7}' => {
                out.push(char::from_u32(c as u32 + 0x20).unwrap_or(c));
            }
            _ => out.push(c),
        }
    }
}

fn push_ascii_lowercase(out: &mut String, ascii: &str) {
    let start = out.len();
    out.push_str(ascii);
    out[start..].make_ascii_lowercase();
}

/// NFKC then full case folding of `segment`, appended to `out`; the quick check answers from the
/// same tables as `nfkc()`, and skips it for text that is already NFKC.
fn push_nfkc_case_folded(out: &mut String, segment: &str) {
    let composed: Cow<str> = match is_nfkc_quick(segment.chars()) {
        IsNormalized::Yes => Cow::Borrowed(segment),
        _ => Cow::Owned(segment.nfkc().collect()),
    };
    out.extend(composed.chars().default_case_fold());
}

pub fn is_word_char(c: char) -> bool {
    // In ASCII the categories L*, N* and Pc are exactly the letters, the digits and '_'.
    if c.is_ascii() {
        return c.is_ascii_alphanumeric() || c == '_';
    }
    // U+00C0..=U+00FF are letters (Lu, Ll) except the signs U+00D7 and U+00F7 (Sm).
    if in_latin1_upper_half(c) {
        return c != '\u{D7}' && c != '\u{F7}';
    }
    matches!(
        get_general_category(c),
        Gc::UppercaseLetter
            | Gc::LowercaseLetter
            | Gc::TitlecaseLetter
            | Gc::ModifierLetter
            | Gc::OtherLetter
            | Gc::NonspacingMark
            | Gc::SpacingMark
            | Gc::EnclosingMark
            | Gc::DecimalNumber
            | Gc::LetterNumber
            | Gc::OtherNumber
            | Gc::ConnectorPunctuation
    )
}

/// The word tokens of an already normalised text, as slices of it.
pub fn tokens_of_normalized(normalized: &str) -> Vec<&str> {
    let mut tokens = Vec::new();
    let mut start: Option<usize> = None;
    for (offset, c) in normalized.char_indices() {
        match (is_word_char(c), start) {
            (true, None) => start = Some(offset),
            (false, Some(begin)) => {
                tokens.push(&normalized[begin..offset]);
                start = None;
            }
            _ => {}
        }
    }
    if let Some(begin) = start {
        tokens.push(&normalized[begin..]);
    }
    tokens
}

/// The word tokens of an already normalised text joined by single spaces, built in one pass
/// (ASCII bytes are classified without decoding; each token is copied as one slice).
fn tokens_joined(normalized: &str) -> String {
    let bytes = normalized.as_bytes();
    let mut joined = String::with_capacity(normalized.len());
    let mut token_start: Option<usize> = None;
    let mut offset = 0;
    while offset < bytes.len() {
        let (is_word, width) = if bytes[offset].is_ascii() {
            let byte = bytes[offset];
            (byte.is_ascii_alphanumeric() || byte == b'_', 1)
        } else {
            let c = normalized[offset..].chars().next().unwrap_or_default();
            (is_word_char(c), c.len_utf8())
        };
        match (is_word, token_start) {
            (true, None) => token_start = Some(offset),
            (false, Some(begin)) => {
                push_token(&mut joined, &normalized[begin..offset]);
                token_start = None;
            }
            _ => {}
        }
        offset += width;
    }
    if let Some(begin) = token_start {
        push_token(&mut joined, &normalized[begin..]);
    }
    joined
}

fn push_token(joined: &mut String, token: &str) {
    if !joined.is_empty() {
        joined.push(' ');
    }
    joined.push_str(token);
}

/// Calls `emit` with the bytes of each shingle, as pieces (a word shingle is its tokens and the
/// separating spaces), in order, so callers can hash without building the strings.
fn for_each_shingle(normalized: &str, n: usize, kind: ShingleKind, mut emit: impl FnMut(&[&str])) {
    match kind {
        ShingleKind::Char => {
            let joined = tokens_joined(normalized);
            if joined.is_empty() {
                return;
            }
            if joined.is_ascii() {
                // One byte per character: windows of bytes are the shingles, no offsets needed.
                if joined.len() <= n {
                    emit(&[&joined]);
                    return;
                }
                for first in 0..=joined.len() - n {
                    emit(&[&joined[first..first + n]]);
                }
                return;
            }
            // Two cursors n characters apart; with n or fewer characters the only window is the
            // whole text (the end cursor starts at the text's end).
            let offsets = || joined.char_indices().map(|(offset, _)| offset);
            let ends = offsets().skip(n).chain(std::iter::once(joined.len()));
            for (start, end) in offsets().zip(ends) {
                emit(&[&joined[start..end]]);
            }
        }
        ShingleKind::Word => {
            let tokens = tokens_of_normalized(normalized);
            if tokens.is_empty() {
                return;
            }
            let width = n.min(tokens.len());
            let mut pieces: Vec<&str> = Vec::with_capacity(2 * width);
            for window in tokens.windows(width) {
                pieces.clear();
                for (position, token) in window.iter().enumerate() {
                    if position > 0 {
                        pieces.push(" ");
                    }
                    pieces.push(token);
                }
                emit(&pieces);
            }
        }
    }
}

/// The shingles of `text` (normalised here) as strings; `n >= 1`.
fn shingles(text: &str, n: usize, kind: ShingleKind) -> Vec<String> {
    let mut result = Vec::new();
    for_each_shingle(&normalize_one(text), n, kind, |pieces| {
        result.push(pieces.concat())
    });
    result
}

/// Calls `emit` with the FNV-1a 64 hash of each shingle of an already normalised text, in order
/// and with repeats, hashing straight from the text (no shingle strings).
pub(crate) fn for_each_shingle_hash(
    normalized: &str,
    n: usize,
    kind: ShingleKind,
    mut emit: impl FnMut(u64),
) {
    for_each_shingle(normalized, n, kind, |pieces| {
        let mut hasher = Fnv1a64::default();
        for piece in pieces {
            hasher.write(piece.as_bytes());
        }
        emit(hasher.finish());
    });
}

/// The sorted, distinct FNV-1a 64 hashes of the shingles of `text` (normalised here); `n >= 1`.
pub(crate) fn shingle_hash_set(text: &str, n: usize, kind: ShingleKind) -> Vec<u64> {
    let mut hashes = Vec::new();
    for_each_shingle_hash(&normalize_one(text), n, kind, |hash| hashes.push(hash));
    hashes.sort_unstable();
    hashes.dedup();
    hashes
}

pub fn normalize(texts: &[&str]) -> Vec<String> {
    texts.par_iter().map(|text| normalize_one(text)).collect()
}

pub fn word_tokens(texts: &[&str]) -> Vec<Vec<String>> {
    texts
        .par_iter()
        .map(|text| {
            let normalized = normalize_one(text);
            tokens_of_normalized(&normalized)
                .into_iter()
                .map(str::to_owned)
                .collect()
        })
        .collect()
}

fn check_shingle_size(n: usize) -> Result<()> {
    if n == 0 {
        return Err(invalid("n", "must be >= 1, got 0"));
    }
    Ok(())
}

pub fn char_shingles(text: &str, n: usize) -> Result<Vec<String>> {
    check_shingle_size(n)?;
    Ok(shingles(text, n, ShingleKind::Char))
}

pub fn word_shingles(text: &str, n: usize) -> Result<Vec<String>> {
    check_shingle_size(n)?;
    Ok(shingles(text, n, ShingleKind::Word))
}

/// FNV-1a 64 of the UTF-8 bytes of each text, as given.
pub fn fnv1a64_texts(texts: &[&str]) -> Vec<u64> {
    texts
        .par_iter()
        .map(|text| fnv1a64(text.as_bytes()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latin1_letters_fold_like_the_general_path() {
        for c in ('\u{C0}'..='\u{FF}').chain('\u{FB00}'..='\u{FB06}') {
            let (mut fast, mut general) = (String::new(), String::new());
            push_latin1_case_folded(&mut fast, &format!("{c}{c}"));
            push_nfkc_case_folded(&mut general, &format!("{c}{c}"));
            assert_eq!(fast, general, "{c:?}");
        }
    }

    #[test]
    fn latin1_word_chars_match_their_categories() {
        for c in '\u{C0}'..='\u{FF}' {
            let letter = matches!(
                get_general_category(c),
                Gc::UppercaseLetter | Gc::LowercaseLetter
            );
            assert_eq!(is_word_char(c), letter, "{c:?}");
        }
    }

    #[test]
    fn normalizes_like_python() {
        assert_eq!(normalize_one("Straße ﬁ ΣΑΣ"), "strasse fi σασ");
        // A combining mark composes with the ASCII letter before it, at the start, middle and end.
        assert_eq!(
            normalize_one("E\u{301}x caf\u{E9}s e\u{301}"),
            "\u{E9}x caf\u{E9}s \u{E9}"
        );
        assert_eq!(normalize_one("\u{301}A\u{FB01}B"), "\u{301}afib");
        assert_eq!(normalize_one("\u{FB03}\u{301}x"), "ff\u{ED}x");
        assert_eq!(normalize_one("Ｆｕｌｌ"), "full");
    }

    #[test]
    fn tokens_keep_marks_numbers_and_underscore() {
        let normalized = normalize_one("Hello, wörld_x 42! café");
        assert_eq!(
            tokens_of_normalized(&normalized),
            vec!["hello", "wörld_x", "42", "café"]
        );
    }

    #[test]
    fn shingles_of_short_and_long_texts() {
        assert_eq!(
            char_shingles("ab, cd", 3).unwrap(),
            vec!["ab ", "b c", " cd"]
        );
        assert_eq!(char_shingles("ab", 5).unwrap(), vec!["ab"]);
        assert!(char_shingles("?!", 5).unwrap().is_empty());
        assert_eq!(word_shingles("a b c", 2).unwrap(), vec!["a b", "b c"]);
        assert_eq!(word_shingles("a b", 3).unwrap(), vec!["a b"]);
        assert!(word_shingles("a b", 0).is_err());
    }

    #[test]
    fn hash_set_matches_hashed_strings() {
        let mut expected: Vec<u64> = word_shingles("a b a b", 2)
            .unwrap()
            .iter()
            .map(|s| fnv1a64(s.as_bytes()))
            .collect();
        expected.sort_unstable();
        expected.dedup();
        assert_eq!(shingle_hash_set("a b a b", 2, ShingleKind::Word), expected);
    }
}
