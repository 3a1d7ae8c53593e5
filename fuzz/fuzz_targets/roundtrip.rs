//! decode → encode → decode gives the same message.
//!
//! Whenever the first `decode` succeeds:
//!
//! 1. without a size limit, `encode` succeeds and its output decodes to the same message, and
//!    is a fixed point (encoding that again gives the same bytes: the output is canonical);
//! 2. with the default limit ([`MAX_DATAGRAM_LEN`]), when `encode` succeeds the datagram fits
//!    and decodes to the same message, except that `values` and `samples` may have been
//!    trimmed to a prefix (BEP 32's 1024-byte limit, by design).

#![no_main]

use libfuzzer_sys::fuzz_target;
use xorro_wire::{Body, MAX_DATAGRAM_LEN, Message, decode, encode, encode_with_limit};

fuzz_target!(|data: &[u8]| {
    let Ok(m) = decode(data) else { return };

    let mut unlimited = Vec::new();
    encode_with_limit(&m, &mut unlimited, usize::MAX).expect("no limit, no error");
    let again = decode(&unlimited).expect("our own encoding decodes");
    assert_eq!(again, m, "decode(encode(m)) != m");
    let mut twice = Vec::new();
    encode_with_limit(&again, &mut twice, usize::MAX).expect("no limit, no error");
    assert_eq!(twice, unlimited, "encoding is not a fixed point");

    let mut limited = Vec::new();
    if encode(&m, &mut limited).is_ok() {
        assert!(limited.len() <= MAX_DATAGRAM_LEN, "{} bytes", limited.len());
        let trimmed = decode(&limited).expect("our own encoding decodes");
        assert_eq!(
            trimmed,
            untrimmed_as(&m, &trimmed),
            "encode changed more than values/samples"
        );
    }
});

/// `m` with its `values` and `samples` replaced by `trimmed`'s, after checking that those are
/// prefixes of `m`'s.
fn untrimmed_as<'a>(m: &Message<'a>, trimmed: &Message<'a>) -> Message<'a> {
    let mut expected = m.clone();
    if let (Body::Response(full), Body::Response(cut), Body::Response(out)) =
        (&m.body, &trimmed.body, &mut expected.body)
    {
        match (full.values, cut.values) {
            (Some(full), Some(cut)) => {
                assert!(
                    full.iter().take(cut.len()).eq(cut.iter()),
                    "values: not a prefix"
                );
                out.values = Some(cut);
            }
            (full, cut) => assert_eq!(full.is_some(), cut.is_some(), "values dropped"),
        }
        match (full.samples, cut.samples) {
            (Some(full), Some(cut)) => {
                assert!(
                    full.iter().take(cut.len()).eq(cut.iter()),
                    "samples: not a prefix"
                );
                out.samples = Some(cut);
            }
            (full, cut) => assert_eq!(full.is_some(), cut.is_some(), "samples dropped"),
        }
    }
    expected
}
