//! The decoders' only `unsafe` code: SSE2 steps over sixteen bytes at a time, for the two byte
//! searches that run over every byte of a message.
//!
//! - [`special_marks`]: where a plain run of string content ends (a quote, a backslash or a
//!   control character). Most strings of a CDC row are found whole in one step.
//! - [`utf8`] and [`utf8_string`]: text that is all ASCII (nearly every CDC message) is known to
//!   be UTF-8 from one `movemask` per block; anything else goes to the standard library's check.
//!
//! What each saves, in instructions per event, is in the README's Performance section.
//!
//! SSE2 is part of x86-64 itself: there is no feature to detect, and no CPU that lacks it. Other
//! targets (the Lambda functions run on arm64) use the portable code: the `u64` search in
//! `scan.rs`, whose tests hold both searches to a byte loop, and std's checks here.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::{
    __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128,
    _mm_set1_epi8,
};

/// Bit `k` is set when byte `k` of `block` is a quote, a backslash or a control character.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn special_marks(block: &[u8; 16]) -> u32 {
    // SAFETY: the load reads exactly the sixteen bytes `block` borrows (`loadu` takes any
    // alignment), and every intrinsic here is SSE2, which every x86-64 CPU has.
    unsafe {
        let v = _mm_loadu_si128(block.as_ptr().cast::<__m128i>());
        let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
        let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
        // Unsigned `min(v, 0x1f) == v` is `v <= 0x1f`: a control character.
        let control = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1f)), v);
        _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), control)) as u32
    }
}

/// Whether every byte of `bytes` is ASCII.
#[inline]
fn is_ascii(bytes: &[u8]) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        let mut blocks = bytes.chunks_exact(16);
        let mut high = 0;
        for block in &mut blocks {
            // SAFETY: the load reads exactly the sixteen bytes of `block` (any alignment); SSE2
            // is part of x86-64.
            high |= unsafe { _mm_movemask_epi8(_mm_loadu_si128(block.as_ptr().cast::<__m128i>())) };
        }
        high == 0 && blocks.remainder().is_ascii()
    }
    #[cfg(not(target_arch = "x86_64"))]
    bytes.is_ascii()
}

/// `bytes` as text: `std::str::from_utf8`, with all-ASCII text recognized first.
pub(crate) fn utf8(bytes: &[u8]) -> Result<&str, std::str::Utf8Error> {
    if is_ascii(bytes) {
        // SAFETY: each byte below 0x80 is a whole UTF-8 character.
        return Ok(unsafe { std::str::from_utf8_unchecked(bytes) });
    }
    std::str::from_utf8(bytes)
}

/// `bytes` as a `String`: `String::from_utf8`, with all-ASCII text recognized first.
pub(crate) fn utf8_string(bytes: Vec<u8>) -> Result<String, std::string::FromUtf8Error> {
    if is_ascii(&bytes) {
        // SAFETY: each byte below 0x80 is a whole UTF-8 character.
        return Ok(unsafe { String::from_utf8_unchecked(bytes) });
    }
    String::from_utf8(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// The ASCII shortcut never changes an answer: the same text, or the same error at the
        /// same place, as the standard library's check.
        #[test]
        fn utf8_answers_as_std_does(
            bytes in prop_oneof![
                proptest::collection::vec(0u8..0x80, 0..70),
                "\\PC{0,40}".prop_map(String::into_bytes),
                proptest::collection::vec(any::<u8>(), 0..70),
            ],
        ) {
            prop_assert_eq!(is_ascii(&bytes), bytes.is_ascii());
            prop_assert_eq!(utf8(&bytes), std::str::from_utf8(&bytes));
            let expected = String::from_utf8(bytes.clone()).map_err(|e| e.utf8_error());
            prop_assert_eq!(utf8_string(bytes).map_err(|e| e.utf8_error()), expected);
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn each_special_byte_sets_its_own_bit() {
        let plain = *b"abcdefgh\xe9\x7f ~XYZ0";
        assert_eq!(special_marks(&plain), 0);
        for (at, special) in [(0, b'"'), (5, b'\\'), (9, 0x00), (15, 0x1f)] {
            let mut block = plain;
            block[at] = special;
            assert_eq!(special_marks(&block), 1 << at, "byte {special:#x} at {at}");
        }
    }
}
