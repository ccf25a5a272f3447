//! Wire tags and token dictionaries: byte → string for the decoder, string → token for the encoder.
//!
//! Contract: [`lookup`] returns the token the reference encoder (Baileys `TOKEN_MAP`) uses for a
//! string, or `None`; [`single_code`], [`double_code`] and [`by_code`] map token bytes to words. The
//! string → token index is an open-addressing hash table built at compile time (`const fn`), so
//! a lookup hashes the string once and compares at most a couple of candidates; nothing is built
//! per call or at start-up.
//!
//! The dictionaries themselves (dictionary version 3) live in `token_data.rs`. No string occurs
//! twice across them, so "first match" and "last match" (Baileys' `TOKEN_MAP` keeps the last
//! entry) agree; a unit test checks that.

use super::token_data::{DOUBLE_BYTE, SINGLE_BYTE};

/// Empty list; as a string it reads as `""`; as a JID user it means "no user".
pub(crate) const LIST_EMPTY: u8 = 0;
/// First double-byte dictionary tag; `DICTIONARY_0 + n` selects dictionary `n` (0..=3).
pub(crate) const DICTIONARY_0: u8 = 236;
/// Last double-byte dictionary tag.
pub(crate) const DICTIONARY_3: u8 = 239;
/// `user(string) device(u16 BE) integrator(u16 BE) server(string)`.
pub(crate) const INTEROP_JID: u8 = 245;
/// `user(string) device(u16 BE) server(string)`.
pub(crate) const FB_JID: u8 = 246;
/// `domain(u8) device(u8) user(string)`.
pub(crate) const AD_JID: u8 = 247;
/// List with a one-byte length.
pub(crate) const LIST_8: u8 = 248;
/// List with a two-byte big-endian length.
pub(crate) const LIST_16: u8 = 249;
/// `user(string or LIST_EMPTY) server(string)`.
pub(crate) const JID_PAIR: u8 = 250;
/// Packed upper-case hex string.
pub(crate) const HEX_8: u8 = 251;
/// Raw bytes with a one-byte length.
pub(crate) const BINARY_8: u8 = 252;
/// Raw bytes with a 20-bit length in three bytes.
pub(crate) const BINARY_20: u8 = 253;
/// Raw bytes with a four-byte big-endian length.
pub(crate) const BINARY_32: u8 = 254;
/// Packed nibble string (`0-9`, `-`, `.`).
pub(crate) const NIBBLE_8: u8 = 255;
/// Longest string (in characters) the packed forms carry.
pub(crate) const PACKED_MAX: usize = 127;

/// How a dictionary word is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Token {
    /// One byte, 1..=235.
    Single(u8),
    /// `DICTIONARY_0 + dict`, then `index`.
    Double { dict: u8, index: u8 },
}

/// A compact name for a dictionary word: `0` is the empty string, `1..=235` the single-byte
/// tokens, `236 + 256 * dict + index` the double-byte ones.
pub(crate) type WordCode = u16;

/// The code of single-byte token `byte`, if it is one (1..=235).
#[inline]
pub(crate) fn single_code(byte: u8) -> Option<WordCode> {
    (1..SINGLE_COUNT as u8)
        .contains(&byte)
        .then_some(WordCode::from(byte))
}

/// The code of double-byte token `index` of dictionary `dict`, if `dict` is 0..=3.
#[inline]
pub(crate) fn double_code(dict: u8, index: u8) -> Option<WordCode> {
    (dict < 4).then(|| (SINGLE_COUNT + 256 * usize::from(dict) + usize::from(index)) as WordCode)
}

/// The word a code stands for (`""` for codes that name no word, which the decoder never makes).
#[inline]
pub(crate) fn by_code(code: WordCode) -> &'static str {
    let code = usize::from(code);
    if code < SINGLE_COUNT {
        SINGLE_BYTE[code]
    } else {
        let rest = code - SINGLE_COUNT;
        DOUBLE_BYTE.get(rest / 256).map_or("", |d| d[rest % 256])
    }
}

/// The token for `s`, if `s` is a dictionary word. The empty string is never a token.
#[inline]
pub(crate) fn lookup(s: &str) -> Option<Token> {
    let bytes = s.as_bytes();
    if bytes.is_empty() || bytes.len() > MAX_TOKEN_LEN {
        return None;
    }
    let mut slot = (hash(bytes) as usize) & (TABLE_SIZE - 1);
    loop {
        let entry = TABLE[slot];
        if entry == 0 {
            return None;
        }
        let code = entry - 1;
        let (word, token) = decode_code(code);
        if word.as_bytes() == bytes {
            return Some(token);
        }
        slot = (slot + 1) & (TABLE_SIZE - 1);
    }
}

/// Table slots: a power of two, a bit over three times the 1259 words (load ≈ 0.3).
const TABLE_SIZE: usize = 4096;
const SINGLE_COUNT: usize = SINGLE_BYTE.len();
const WORD_COUNT: usize = SINGLE_COUNT + 4 * 256;
const MAX_TOKEN_LEN: usize = max_token_len();

/// Slot value 0 is empty; otherwise `code + 1`, where `code < 236` is a single-byte token and
/// `236 + 256 * dict + index` a double-byte one.
static TABLE: [u16; TABLE_SIZE] = build_table();

#[inline]
fn decode_code(code: u16) -> (&'static str, Token) {
    let code = usize::from(code);
    if code < SINGLE_COUNT {
        // `code < 236` fits a byte.
        (SINGLE_BYTE[code], Token::Single(code as u8))
    } else {
        let rest = code - SINGLE_COUNT;
        let (dict, index) = (rest / 256, rest % 256);
        // `dict < 4` and `index < 256` fit a byte.
        (
            DOUBLE_BYTE[dict][index],
            Token::Double {
                dict: dict as u8,
                index: index as u8,
            },
        )
    }
}

/// FNV-1a, 32-bit: cheap, and good enough to spread ~1.3k short ASCII words over 4096 slots.
#[inline]
const fn hash(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    let mut i = 0;
    while i < bytes.len() {
        h ^= bytes[i] as u32;
        h = h.wrapping_mul(0x0100_0193);
        i += 1;
    }
    h
}

const fn word(code: usize) -> &'static str {
    if code < SINGLE_COUNT {
        SINGLE_BYTE[code]
    } else {
        let rest = code - SINGLE_COUNT;
        DOUBLE_BYTE[rest / 256][rest % 256]
    }
}

const fn max_token_len() -> usize {
    let mut max = 0;
    let mut code = 1;
    while code < WORD_COUNT {
        let len = word(code).len();
        if len > max {
            max = len;
        }
        code += 1;
    }
    max
}

const fn build_table() -> [u16; TABLE_SIZE] {
    let mut table = [0u16; TABLE_SIZE];
    // Code 0 is the empty string at single-byte index 0, which is not a token.
    let mut code = 1;
    while code < WORD_COUNT {
        let mut slot = (hash(word(code).as_bytes()) as usize) & (TABLE_SIZE - 1);
        while table[slot] != 0 {
            slot = (slot + 1) & (TABLE_SIZE - 1);
        }
        table[slot] = (code + 1) as u16;
        code += 1;
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn dictionary_shape_and_known_entries() {
        assert_eq!(SINGLE_BYTE.len(), 236);
        assert_eq!(single_code(1).map(by_code), Some("xmlstreamstart"));
        assert_eq!(single_code(2).map(by_code), Some("xmlstreamend"));
        assert_eq!(single_code(3).map(by_code), Some("s.whatsapp.net"));
        assert_eq!(single_code(4).map(by_code), Some("type"));
        assert_eq!(single_code(25).map(by_code), Some("iq"));
        assert_eq!(single_code(118).map(by_code), Some("lid"));
        assert_eq!(single_code(235).map(by_code), Some("screen_height"));
        assert_eq!(single_code(0).map(by_code), None);
        assert_eq!(single_code(236).map(by_code), None);
        assert_eq!(double_code(0, 0).map(by_code), Some("read-self"));
        assert_eq!(double_code(0, 2).map(by_code), Some("fbns"));
        assert_eq!(double_code(1, 0).map(by_code), Some("reject"));
        assert_eq!(double_code(2, 0).map(by_code), Some("64"));
        assert_eq!(
            double_code(2, 1).map(by_code),
            Some("ptt_playback_speed_enabled")
        );
        assert_eq!(double_code(3, 0).map(by_code), Some("1724"));
        assert_eq!(double_code(3, 1).map(by_code), Some("profile_picture"));
        assert_eq!(double_code(4, 0).map(by_code), None);
        assert_eq!(by_code(0), "");
        assert_eq!(single_code(25).map(by_code), Some("iq"));
        assert_eq!(single_code(0), None);
        assert_eq!(single_code(236), None);
        assert_eq!(double_code(3, 1).map(by_code), Some("profile_picture"));
        assert_eq!(double_code(4, 1), None);
    }

    #[test]
    fn every_word_is_unique_and_found_at_its_own_index() {
        let mut seen = HashMap::new();
        for code in 1..WORD_COUNT {
            let w = word(code);
            assert!(seen.insert(w, code).is_none(), "{w:?} occurs twice");
            let expected = decode_code(code as u16).1;
            assert_eq!(lookup(w), Some(expected), "{w:?}");
        }
        assert_eq!(seen.len(), 235 + 1024);
    }

    #[test]
    fn non_words_are_not_found() {
        for s in [
            "",
            "IQ",
            "iq ",
            "s.whatsapp.ne",
            "xmlstreamstartx",
            "3EB0C0FFEE",
            "a".repeat(49).as_str(),
        ] {
            assert_eq!(lookup(s), None, "{s:?}");
        }
    }

    #[test]
    fn probe_chains_stay_short() {
        // The longest run of occupied slots bounds the work of an unsuccessful lookup.
        let mut longest = 0;
        let mut run = 0;
        for slot in 0..2 * TABLE_SIZE {
            if TABLE[slot % TABLE_SIZE] == 0 {
                run = 0;
            } else {
                run += 1;
                longest = longest.max(run);
            }
        }
        assert!(longest < 16, "longest occupied run {longest}");
    }
}
