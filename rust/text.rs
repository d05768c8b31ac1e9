//! Featurizer: text -> sparse, signed, hashed n-gram vector.
//!
//! Specification (surrogate version 1):
//! * Tokens: the text is lowercased char by char (Unicode `to_lowercase`). Word tokens are maximal runs
//!   of alphanumeric characters, combining marks, joiners and variation selectors (so accented letters
//!   written with combining marks, Indic vowel signs and emoji ZWJ sequences stay whole). Every other
//!   non-whitespace character (punctuation, symbols, emoji) is a token of its own; whitespace separates.
//! * Features: word unigrams and bigrams (group "word"), and character 3-, 4- and 5-grams of each token
//!   padded with one space on each side (group "char", like scikit-learn's `char_wb`).
//! * Each feature is hashed with `hash64` over `[namespace, kind] ++ utf8 bytes` (a bigram joins its
//!   words with 0x1F). A namespace keeps the two sides of a text pair and model outputs apart.
//! * Term frequency is sublinear (1 + ln tf) per distinct feature; each group is L2-normalised so that
//!   the many character n-grams do not drown the words; the feature's sign is the hash's lowest bit and
//!   its bucket the top `hash_bits` bits; colliding buckets add; the row is L2-normalised at the end.
//! * An empty text (or one of whitespace only) has no features: its row is empty.

use crate::hash::{fmix64, fnv1a_extend, FNV_OFFSET};
use crate::simd::{
    self,
    scalar::{CLASS_PUNCT, CLASS_WORD},
};

/// Namespace of the first (or only) text of an input.
pub const NS_TEXT: u8 = 0;
/// Namespace of the second text of an input pair.
pub const NS_TEXT_PAIR: u8 = 1;
/// Namespace of model / dataset outputs featurized as text (`text` mode).
pub const NS_OUTPUT: u8 = 2;

const KIND_UNIGRAM: u8 = 1;
const KIND_BIGRAM: u8 = 2;
const KIND_CHAR: u8 = 3;
const BIGRAM_JOIN: u8 = 0x1f;
const CHAR_MIN: usize = 3;
const CHAR_MAX: usize = 5;

/// A sparse row: strictly increasing bucket indices and their values.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SparseRow {
    pub indices: Vec<u32>,
    pub values: Vec<f32>,
}

/// Reusable buffers so that a batch does not allocate per text.
#[derive(Default)]
pub struct Scratch {
    /// Each token's lowercased bytes padded with one space on each side (" tok "), back to back,
    /// then `simd::WINDOW_SLACK` zero bytes (the window kernel reads past the end).
    lower: Vec<u8>,
    /// Byte ranges of the tokens (without their padding) in `lower`.
    spans: Vec<(usize, usize)>,
    /// The ASCII fast path's lowercased text and byte classes.
    folded: Vec<u8>,
    class: Vec<u8>,
    /// Hashes of the 3-, 4- and 5-byte windows starting at each byte of `lower`.
    windows: [Vec<u64>; 3],
    /// Char boundaries of one padded non-ASCII token.
    offsets: Vec<usize>,
    word: Vec<u64>,
    chars: Vec<u64>,
    entries: Vec<(u32, f32)>,
    counter: Counter,
}

fn is_word_char(c: char) -> bool {
    if c.is_alphanumeric() {
        return true;
    }
    let u = c as u32;
    matches!(u,
        0x0300..=0x036F      // combining diacritical marks
        | 0x0483..=0x0489    // Cyrillic combining marks
        | 0x0591..=0x05BD    // Hebrew points
        | 0x0610..=0x061A | 0x064B..=0x065F | 0x0670 // Arabic marks
        | 0x0900..=0x0903 | 0x093A..=0x094F | 0x0951..=0x0957 | 0x0962..=0x0963 // Devanagari signs
        | 0x1AB0..=0x1AFF | 0x1DC0..=0x1DFF | 0x20D0..=0x20FF
        | 0x200C | 0x200D    // zero-width non-joiner / joiner
        | 0xFE00..=0xFE0F    // variation selectors
        | 0xFE20..=0xFE2F
        | 0x1F3FB..=0x1F3FF  // emoji skin-tone modifiers
    )
}

fn push_lower(c: char, out: &mut Vec<u8>) {
    if c.is_ascii() {
        out.push(c.to_ascii_lowercase() as u8);
    } else {
        let mut buf = [0u8; 4];
        for l in c.to_lowercase() {
            out.extend_from_slice(l.encode_utf8(&mut buf).as_bytes());
        }
    }
}

/// Appends `tok` to `lower` as " tok " and records its span.
#[inline]
fn push_token(tok: &[u8], lower: &mut Vec<u8>, spans: &mut Vec<(usize, usize)>) {
    lower.push(b' ');
    let a = lower.len();
    lower.extend_from_slice(tok);
    spans.push((a, lower.len()));
    lower.push(b' ');
}

/// Splits `text` into lowercased tokens (see the module docs) into `s.lower` and `s.spans`, and pads
/// `s.lower` with `WINDOW_SLACK` zero bytes. Returns true when the text is pure ASCII.
///
/// ASCII text (the common case) is lowercased and classified by the SIMD kernel and cut into tokens
/// by byte class; any other text takes the Unicode path, which gives the same tokens for ASCII.
fn tokenize(text: &str, s: &mut Scratch) -> bool {
    s.lower.clear();
    s.spans.clear();
    let src = text.as_bytes();
    s.folded.resize(src.len(), 0);
    s.class.resize(src.len(), 0);
    let ascii = simd::classify(src, &mut s.folded, &mut s.class);
    if ascii {
        let (folded, class) = (&s.folded[..src.len()], &s.class[..src.len()]);
        let mut i = 0;
        while i < folded.len() {
            match class[i] {
                CLASS_WORD => {
                    let start = i;
                    i += 1;
                    while i < class.len() && class[i] == CLASS_WORD {
                        i += 1;
                    }
                    push_token(&folded[start..i], &mut s.lower, &mut s.spans);
                }
                CLASS_PUNCT => {
                    push_token(&folded[i..i + 1], &mut s.lower, &mut s.spans);
                    i += 1;
                }
                _ => i += 1,
            }
        }
    } else {
        tokenize_unicode(text, &mut s.lower, &mut s.spans);
    }
    s.lower.resize(s.lower.len() + simd::WINDOW_SLACK, 0);
    ascii
}

/// The Unicode tokenizer (char by char): same output layout as `tokenize`, without the slack.
fn tokenize_unicode(text: &str, lower: &mut Vec<u8>, spans: &mut Vec<(usize, usize)>) {
    let mut start: Option<usize> = None;
    for c in text.chars() {
        if is_word_char(c) {
            if start.is_none() {
                lower.push(b' ');
                start = Some(lower.len());
            }
            push_lower(c, lower);
        } else {
            if let Some(a) = start.take() {
                spans.push((a, lower.len()));
                lower.push(b' ');
            }
            if !c.is_whitespace() && !c.is_control() {
                lower.push(b' ');
                let a = lower.len();
                push_lower(c, lower);
                spans.push((a, lower.len()));
                lower.push(b' ');
            }
        }
    }
    if let Some(a) = start {
        spans.push((a, lower.len()));
        lower.push(b' ');
    }
}

#[inline]
fn seed_state(ns: u8, kind: u8) -> u64 {
    fnv1a_extend(FNV_OFFSET, &[ns, kind])
}

/// Appends the char n-grams of the padded ASCII token starting at `p` (m bytes, m ≥ 3) from the
/// window hashes, in the specified order: by start, then 3-, 4-, 5-gram.
#[inline]
fn push_windows(w: &[Vec<u64>; 3], p: usize, m: usize, out: &mut Vec<u64>) {
    let [w3, w4, w5] = w;
    for q in p..p + m.saturating_sub(4) {
        out.extend_from_slice(&[w3[q], w4[q], w5[q]]);
    }
    if m >= 4 {
        out.extend_from_slice(&[w3[p + m - 4], w4[p + m - 4]]);
    }
    out.push(w3[p + m - 3]);
}

/// Char n-grams of one padded token whose chars may span several bytes: `padded` is " tok ".
fn push_char_ngrams(seed: u64, padded: &[u8], offsets: &mut Vec<usize>, out: &mut Vec<u64>) {
    offsets.clear();
    // A char starts at every byte that is not a UTF-8 continuation byte.
    offsets.extend((0..padded.len()).filter(|&j| padded[j] & 0xC0 != 0x80));
    offsets.push(padded.len());
    let n_chars = offsets.len() - 1;
    for start in 0..n_chars.saturating_sub(CHAR_MIN - 1) {
        let mut st = fnv1a_extend(seed, &padded[offsets[start]..offsets[start + CHAR_MIN]]);
        out.push(fmix64(st));
        for k in start + CHAR_MIN..(start + CHAR_MAX).min(n_chars) {
            st = fnv1a_extend(st, &padded[offsets[k]..offsets[k + 1]]);
            out.push(fmix64(st));
        }
    }
}

/// Pushes the raw (unfinalized) hashes of one text's features into `word` and `chars`.
///
/// Char n-grams of ASCII tokens come from one pass of the window kernel over all tokens (each
/// window's hash is computed once, for all three lengths); tokens with non-ASCII chars are hashed
/// char by char. Either way the hashes and their order are those of the specification.
fn hash_features(text: &str, ns: u8, s: &mut Scratch) {
    let ascii = tokenize(text, s);
    let n = s.lower.len() - simd::WINDOW_SLACK;
    let bytes = &s.lower[..];
    let uni = seed_state(ns, KIND_UNIGRAM);
    let bi = seed_state(ns, KIND_BIGRAM);
    let ch = seed_state(ns, KIND_CHAR);
    for (i, &(a, b)) in s.spans.iter().enumerate() {
        let tok = &bytes[a..b];
        s.word.push(fmix64(fnv1a_extend(uni, tok)));
        if let Some(&(c, d)) = s.spans.get(i + 1) {
            let st = fnv1a_extend(fnv1a_extend(bi, tok), &[BIGRAM_JOIN]);
            s.word.push(fmix64(fnv1a_extend(st, &bytes[c..d])));
        }
    }
    // The kernel pays off unless most token bytes are non-ASCII.
    let use_windows = ascii || {
        let ascii_bytes: usize = s
            .spans
            .iter()
            .filter(|&&(a, b)| bytes[a..b].is_ascii())
            .map(|&(a, b)| b - a + 2)
            .sum();
        2 * ascii_bytes >= n
    };
    if use_windows {
        for w in &mut s.windows {
            w.resize(n + simd::WINDOW_OUT_SLACK, 0);
        }
        let [w3, w4, w5] = &mut s.windows;
        simd::ngram_windows(ch, bytes, n, [w3, w4, w5]);
    }
    for &(a, b) in &s.spans {
        let padded = &bytes[a - 1..b + 1];
        if use_windows && (ascii || padded.is_ascii()) {
            push_windows(&s.windows, a - 1, padded.len(), &mut s.chars);
        } else {
            push_char_ngrams(ch, padded, &mut s.offsets, &mut s.chars);
        }
    }
}

/// Counts equal hashes without sorting: an open-addressing table sized to twice the input, emptied
/// after each use by walking the slots it filled. Distinct hashes come out in first-occurrence order,
/// which is deterministic.
#[derive(Default)]
struct Counter {
    /// (hash, count) per slot; count 0 marks an empty slot. Only the first `mask + 1` slots are used
    /// for one input, so a long text seen earlier does not make later lookups miss the cache.
    slots: Vec<(u64, u32)>,
    mask: usize,
    filled: Vec<u32>,
}

impl Counter {
    fn count(&mut self, hashes: &[u64]) {
        let cap = (2 * hashes.len()).next_power_of_two().max(64);
        if self.slots.len() < cap {
            self.slots = vec![(0, 0); cap];
        }
        self.mask = cap - 1;
        self.filled.clear();
        for &h in hashes {
            let mut slot = (h as usize) & self.mask;
            loop {
                let entry = &mut self.slots[slot];
                if entry.1 == 0 {
                    *entry = (h, 1);
                    self.filled.push(slot as u32);
                    break;
                }
                if entry.0 == h {
                    entry.1 += 1;
                    break;
                }
                slot = (slot + 1) & self.mask;
            }
        }
    }
}

const SUBLINEAR_TABLE: usize = 256;

/// 1 + ln(tf) for tf < `SUBLINEAR_TABLE`, computed once with the same `ln` as the general case.
fn sublinear_table() -> &'static [f64; SUBLINEAR_TABLE] {
    static TABLE: std::sync::OnceLock<[f64; SUBLINEAR_TABLE]> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| std::array::from_fn(|t| 1.0 + (t as f64).ln()))
}

/// Turns a group's hashes into (bucket, value) entries with sublinear tf and unit group norm.
fn push_group(
    hashes: &[u64],
    hash_bits: u32,
    counter: &mut Counter,
    entries: &mut Vec<(u32, f32)>,
) {
    if hashes.is_empty() {
        return;
    }
    counter.count(hashes);
    let start = entries.len();
    let mut sq = 0.0f64;
    for &slot in &counter.filled {
        let (h, tf) = std::mem::take(&mut counter.slots[slot as usize]);
        // 1 + ln(1) = 1 exactly: skip the logarithm for the (most common) single occurrence; small
        // counts read the same f64 values from a table.
        let w = match tf {
            1 => 1.0,
            t if (t as usize) < SUBLINEAR_TABLE => sublinear_table()[t as usize],
            t => 1.0 + f64::from(t).ln(),
        };
        sq += w * w;
        let sign = if h & 1 == 1 { -1.0 } else { 1.0 };
        let bucket = (h >> (64 - hash_bits)) as u32;
        entries.push((bucket, (sign * w) as f32));
    }
    let inv = (1.0 / sq.sqrt()) as f32;
    for e in &mut entries[start..] {
        e.1 *= inv;
    }
}

/// Computes one input's (bucket, value) entries into `s.entries`: each group unit-norm, in a
/// deterministic order, groups (and the two sides of a pair) not yet merged. The encoder projects these
/// directly (projection is linear and its output is normalised, so merging first would not change
/// it); `featurize_into` merges them into a sparse row.
pub fn featurize_entries<'a>(
    text: &str,
    pair: Option<&str>,
    ns: u8,
    hash_bits: u32,
    s: &'a mut Scratch,
) -> &'a [(u32, f32)] {
    s.entries.clear();
    let sides: [(Option<&str>, u8); 2] = [(Some(text), ns), (pair, NS_TEXT_PAIR)];
    for (side, side_ns) in sides {
        let Some(t) = side else { continue };
        s.word.clear();
        s.chars.clear();
        hash_features(t, side_ns, s);
        push_group(&s.word, hash_bits, &mut s.counter, &mut s.entries);
        push_group(&s.chars, hash_bits, &mut s.counter, &mut s.entries);
    }
    &s.entries
}

/// Featurizes one input (a text, or a text pair) into a sparse row; `ns` is the namespace of `text`.
pub fn featurize_into(
    text: &str,
    pair: Option<&str>,
    ns: u8,
    hash_bits: u32,
    s: &mut Scratch,
    out: &mut SparseRow,
) {
    featurize_entries(text, pair, ns, hash_bits, s);
    s.entries.sort_unstable_by_key(|e| e.0);
    out.indices.clear();
    out.values.clear();
    for &(b, v) in &s.entries {
        match (out.indices.last(), out.values.last_mut()) {
            (Some(&last), Some(acc)) if last == b => *acc += v,
            _ => {
                out.indices.push(b);
                out.values.push(v);
            }
        }
    }
    let sq: f64 = out
        .values
        .iter()
        .map(|v| f64::from(*v) * f64::from(*v))
        .sum();
    if sq > 0.0 {
        let inv = (1.0 / sq.sqrt()) as f32;
        for v in &mut out.values {
            *v *= inv;
        }
    }
}

/// Featurizes one input; convenience wrapper around `featurize_into`.
pub fn featurize(text: &str, pair: Option<&str>, ns: u8, hash_bits: u32) -> SparseRow {
    let mut s = Scratch::default();
    let mut row = SparseRow::default();
    featurize_into(text, pair, ns, hash_bits, &mut s, &mut row);
    row
}

/// The limit-style baseline of the featurization benchmark (`benches/bench_featurize.py`): one scan
/// over each text that hashes every 4-byte window (a multiply-shift of its little-endian u32 into
/// 2^20 buckets) and folds the buckets into a checksum, with no tokens, n-grams, counting or
/// output. Featurization cannot be faster than this; it is not used by the surrogate.
pub fn scan_windows4(texts: &[&str]) -> u64 {
    let mut acc = 0u64;
    for t in texts {
        for w in t.as_bytes().windows(4) {
            let x = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
            acc = acc.wrapping_add(u64::from(x.wrapping_mul(0x9e37_79b1) >> 12));
        }
    }
    acc
}

/// Lowercased tokens of a text, as the featurizer sees them (for inspection and tests).
pub fn tokens(text: &str) -> Vec<String> {
    let mut s = Scratch::default();
    tokenize(text, &mut s);
    s.spans
        .iter()
        .map(|&(a, b)| String::from_utf8_lossy(&s.lower[a..b]).into_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::hash64;

    fn norm(r: &SparseRow) -> f64 {
        r.values
            .iter()
            .map(|v| f64::from(*v).powi(2))
            .sum::<f64>()
            .sqrt()
    }

    /// The featurizer as first written (char by char, one n-gram at a time): the reference the
    /// fast path must match hash for hash, in order.
    fn reference_hash_features(text: &str, ns: u8) -> (Vec<u64>, Vec<u64>, Vec<String>) {
        let mut lower = String::new();
        let mut spans: Vec<(usize, usize)> = Vec::new();
        let mut start: Option<usize> = None;
        let push = |c: char, out: &mut String| {
            if c.is_ascii() {
                out.push(c.to_ascii_lowercase());
            } else {
                out.extend(c.to_lowercase());
            }
        };
        for c in text.chars() {
            if is_word_char(c) {
                if start.is_none() {
                    start = Some(lower.len());
                }
                push(c, &mut lower);
            } else {
                if let Some(s) = start.take() {
                    spans.push((s, lower.len()));
                }
                if !c.is_whitespace() && !c.is_control() {
                    let s = lower.len();
                    push(c, &mut lower);
                    spans.push((s, lower.len()));
                }
            }
        }
        if let Some(s) = start {
            spans.push((s, lower.len()));
        }
        let bytes = lower.as_bytes();
        let (uni, bi, ch) = (
            seed_state(ns, KIND_UNIGRAM),
            seed_state(ns, KIND_BIGRAM),
            seed_state(ns, KIND_CHAR),
        );
        let (mut word, mut chars) = (Vec::new(), Vec::new());
        for (i, &(a, b)) in spans.iter().enumerate() {
            let tok = &bytes[a..b];
            word.push(fmix64(fnv1a_extend(uni, tok)));
            if let Some(&(c, d)) = spans.get(i + 1) {
                let st = fnv1a_extend(fnv1a_extend(bi, tok), &[BIGRAM_JOIN]);
                word.push(fmix64(fnv1a_extend(st, &bytes[c..d])));
            }
            let mut offsets = vec![0];
            for (off, _) in lower[a..b].char_indices() {
                offsets.push(1 + off);
            }
            offsets.push(1 + tok.len());
            offsets.push(2 + tok.len());
            let n_chars = offsets.len() - 1;
            let piece = |k: usize| -> &[u8] {
                if k == 0 || k == n_chars - 1 {
                    b" "
                } else {
                    &tok[offsets[k] - 1..offsets[k + 1] - 1]
                }
            };
            for start in 0..n_chars {
                if start + CHAR_MIN > n_chars {
                    break;
                }
                let mut st = ch;
                for k in start..start + CHAR_MIN {
                    st = fnv1a_extend(st, piece(k));
                }
                chars.push(fmix64(st));
                for k in start + CHAR_MIN..(start + CHAR_MAX).min(n_chars) {
                    st = fnv1a_extend(st, piece(k));
                    chars.push(fmix64(st));
                }
            }
        }
        let toks = spans
            .iter()
            .map(|&(a, b)| lower[a..b].to_string())
            .collect();
        (word, chars, toks)
    }

    fn random_texts() -> Vec<String> {
        let pieces = [
            "a",
            "Ab",
            "the",
            "MOVIE",
            "wonderful",
            "x",
            "2024",
            " ",
            "  ",
            "\t",
            "\n",
            ",",
            "!",
            "...",
            "\u{0}",
            "\u{7f}",
            "é",
            "café",
            "cafe\u{301}",
            "日本語",
            "🙂",
            "👍🏽",
            "İ",
            "ß",
            "Σ",
            "שלום",
            "नमस्ते",
            "\u{200d}",
            "a-b",
            "don't",
            "x\u{85}y",
            "\u{a0}",
            "supercalifragilistic",
        ];
        let mut r = crate::hash::SplitMix64::new(5);
        let mut out: Vec<String> = vec![String::new(), " ".into(), "a".into(), "ab".into()];
        for len in 0..400 {
            let k = len % 40;
            let ascii_only = len % 3 == 0;
            let t: String = (0..k)
                .map(|_| {
                    let mut p = pieces[r.below(pieces.len() as u64) as usize];
                    while ascii_only && !p.is_ascii() {
                        p = pieces[r.below(pieces.len() as u64) as usize];
                    }
                    p
                })
                .collect();
            out.push(t);
        }
        out
    }

    #[test]
    fn fast_featurizer_matches_the_reference_hash_for_hash() {
        let mut s = Scratch::default();
        for text in random_texts() {
            for ns in [NS_TEXT, NS_TEXT_PAIR, NS_OUTPUT] {
                let (word, chars, toks) = reference_hash_features(&text, ns);
                s.word.clear();
                s.chars.clear();
                hash_features(&text, ns, &mut s);
                assert_eq!(s.word, word, "{text:?}");
                assert_eq!(s.chars, chars, "{text:?}");
                assert_eq!(tokens(&text), toks, "{text:?}");
            }
        }
    }

    #[test]
    fn tokenizer_splits_words_punctuation_and_emoji() {
        assert_eq!(tokens("Hello, World!"), ["hello", ",", "world", "!"]);
        assert_eq!(tokens("  "), Vec::<String>::new());
        assert_eq!(tokens("ÉCOLE café"), ["école", "café"]);
        // e + combining acute stays one token
        assert_eq!(tokens("cafe\u{301} ok"), ["cafe\u{301}", "ok"]);
        assert_eq!(tokens("good🙂bad"), ["good", "🙂", "bad"]);
        assert_eq!(tokens("日本語のテキスト"), ["日本語のテキスト"]);
        assert_eq!(tokens("שלום עולם"), ["שלום", "עולם"]);
    }

    #[test]
    fn char_ngrams_use_padded_tokens() {
        // " ab " has 4 chars: 3-grams " ab", "ab " and one 4-gram " ab ".
        let mut s = Scratch::default();
        hash_features("ab", NS_TEXT, &mut s);
        let ch = seed_state(NS_TEXT, KIND_CHAR);
        let expect: Vec<u64> = [" ab", " ab ", "ab "]
            .iter()
            .map(|g| fmix64(fnv1a_extend(ch, g.as_bytes())))
            .collect();
        assert_eq!(s.chars, expect);
        assert_eq!(
            s.word,
            vec![fmix64(fnv1a_extend(
                seed_state(NS_TEXT, KIND_UNIGRAM),
                b"ab"
            ))]
        );
    }

    #[test]
    fn feature_hash_is_hash64_of_namespaced_bytes() {
        let mut s = Scratch::default();
        hash_features("x y", NS_TEXT, &mut s);
        assert_eq!(s.word[0], hash64(&[NS_TEXT, KIND_UNIGRAM, b'x']));
        assert_eq!(
            s.word[1],
            hash64(&[NS_TEXT, KIND_BIGRAM, b'x', BIGRAM_JOIN, b'y'])
        );
    }

    #[test]
    fn rows_are_sorted_unit_norm_and_deterministic() {
        for text in [
            "The movie was great, really great!",
            "a",
            "日本語",
            "🙂🙂🙂",
            "x\u{301}",
        ] {
            let r = featurize(text, None, NS_TEXT, 20);
            assert!(!r.indices.is_empty(), "{text}");
            assert!(r.indices.windows(2).all(|w| w[0] < w[1]));
            assert!(r.indices.iter().all(|&i| i < (1 << 20)));
            assert!((norm(&r) - 1.0).abs() < 1e-5);
            assert_eq!(r, featurize(text, None, NS_TEXT, 20));
        }
    }

    #[test]
    fn empty_and_whitespace_texts_have_no_features() {
        for text in ["", "   \t\n", "\u{0}\u{1}"] {
            let r = featurize(text, None, NS_TEXT, 20);
            assert!(r.indices.is_empty() && r.values.is_empty());
        }
    }

    #[test]
    fn window_scan_baseline_sums_every_window() {
        assert_eq!(scan_windows4(&["abc", ""]), 0);
        let one = u64::from(u32::from_le_bytes(*b"abcd").wrapping_mul(0x9e37_79b1) >> 12);
        assert_eq!(scan_windows4(&["abcd"]), one);
        assert_eq!(scan_windows4(&["abcd", "abcd"]), 2 * one);
        assert!(scan_windows4(&["abcde"]) > one);
    }

    #[test]
    fn case_is_folded() {
        assert_eq!(
            featurize("Great MOVIE", None, 0, 18),
            featurize("great movie", None, 0, 18)
        );
    }

    #[test]
    fn pairs_and_outputs_use_their_own_namespaces() {
        let a = featurize("same words", None, NS_TEXT, 20);
        let o = featurize("same words", None, NS_OUTPUT, 20);
        assert!(a.indices.iter().filter(|i| o.indices.contains(i)).count() < a.indices.len() / 4);
        let p = featurize("same words", Some("same words"), NS_TEXT, 20);
        assert!(a.indices.iter().all(|i| p.indices.contains(i)));
        assert!(p.indices.len() > a.indices.len() + a.indices.len() / 2);
        let swapped = featurize("other", Some("same words"), NS_TEXT, 20);
        let straight = featurize("same words", Some("other"), NS_TEXT, 20);
        assert_ne!(swapped, straight);
    }

    #[test]
    fn sublinear_tf_and_sign() {
        let once = featurize("spam", None, NS_TEXT, 20);
        let thrice = featurize("spam spam spam", None, NS_TEXT, 20);
        assert_ne!(once, thrice);
        assert!(thrice.values.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn very_long_text_works() {
        let text = "word ".repeat(200_000) + &"日本".repeat(100_000);
        let r = featurize(&text, None, NS_TEXT, 20);
        assert!((norm(&r) - 1.0).abs() < 1e-4);
        let one_token = "a".repeat(1 << 20);
        let r = featurize(&one_token, None, NS_TEXT, 20);
        assert!((norm(&r) - 1.0).abs() < 1e-4);
    }

    #[test]
    fn small_hash_bits_collide_but_stay_valid() {
        let r = featurize(
            "many different words in this one sentence",
            None,
            NS_TEXT,
            1,
        );
        assert!(r.indices.len() <= 2);
        assert!(r.values.iter().all(|v| v.is_finite()));
    }
}
