//! Small byte strings of bounded length kept inline (no heap): transaction ids and tokens,
//! and the fixed-size ed25519 key and signature of BEP 44.

use std::fmt;

use crate::id::write_hex;

/// `bytes` (at most `N`) followed by zeros. Copies with two overlapping fixed-size moves
/// (the first and last `K` bytes) rather than a call to `memcpy` with a variable length.
#[inline(always)]
fn padded<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    match bytes.len() {
        0 => {}
        1 => copy_ends::<1>(&mut out, bytes),
        2..4 => copy_ends::<2>(&mut out, bytes),
        4..8 => copy_ends::<4>(&mut out, bytes),
        8..16 => copy_ends::<8>(&mut out, bytes),
        16..32 => copy_ends::<16>(&mut out, bytes),
        _ => copy_ends::<32>(&mut out, bytes),
    }
    out
}

/// Copies `bytes`, of `K` to `2K` bytes, to the start of `out`: its first `K` bytes, then its
/// last `K` bytes (which may overlap them). `out` is at least as long as `bytes`.
#[inline(always)]
fn copy_ends<const K: usize>(out: &mut [u8], bytes: &[u8]) {
    let n = bytes.len();
    if let (Some(head), Some(dst)) = (bytes.first_chunk::<K>(), out.first_chunk_mut::<K>()) {
        *dst = *head;
    }
    let dst_tail = n.checked_sub(K).and_then(|at| out.get_mut(at..n));
    if let (Some(tail), Some(dst)) = (bytes.last_chunk::<K>(), dst_tail) {
        dst.copy_from_slice(tail);
    }
}

macro_rules! inline_bytes {
    ($(#[$meta:meta])* $name:ident, $max:expr) => {
        $(#[$meta])*
        #[derive(Clone, Copy)]
        pub struct $name {
            len: u8,
            bytes: [u8; $max],
        }

        impl $name {
            /// The longest value accepted on the wire.
            pub const MAX_LEN: usize = $max;

            /// Copies `bytes`; `None` when empty or longer than [`Self::MAX_LEN`].
            pub fn new(bytes: &[u8]) -> Option<Self> {
                if bytes.is_empty() || bytes.len() > Self::MAX_LEN {
                    return None;
                }
                Some(Self { len: bytes.len() as u8, bytes: padded(bytes) })
            }

            /// Copies `bytes`, which the caller checked to be 1 to [`Self::MAX_LEN`] bytes
            /// long (more are cut). Two bytes, the usual length, are copied inline.
            #[inline(always)]
            pub(crate) fn from_checked(bytes: &[u8]) -> Self {
                if let Ok(&[a, b]) = <&[u8; 2]>::try_from(bytes) {
                    let mut out = [0u8; $max];
                    out[0] = a;
                    out[1] = b;
                    return Self { len: 2, bytes: out };
                }
                Self::from_checked_any(bytes)
            }

            #[inline(never)]
            fn from_checked_any(bytes: &[u8]) -> Self {
                let len = bytes.len().min($max);
                Self { len: len as u8, bytes: padded(bytes.get(..len).unwrap_or_default()) }
            }

            /// The bytes.
            pub fn as_bytes(&self) -> &[u8] {
                &self.bytes[..usize::from(self.len)]
            }

            /// The length in bytes (at least 1).
            #[allow(clippy::len_without_is_empty)]
            pub fn len(&self) -> usize {
                usize::from(self.len)
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                self.as_bytes() == other.as_bytes()
            }
        }
        impl Eq for $name {}

        impl std::hash::Hash for $name {
            fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
                self.as_bytes().hash(state)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}(", stringify!($name))?;
                write_hex(f, self.as_bytes())?;
                f.write_str(")")
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write_hex(f, self.as_bytes())
            }
        }
    };
}

inline_bytes!(
    /// KRPC `t`: chosen by the querier and echoed in the reply. BEP 5 says "typically 2
    /// characters"; clients use 1 to 8 bytes. Any length from 1 to 32 is accepted.
    TransactionId,
    32
);

inline_bytes!(
    /// The opaque write token returned by `get_peers` / BEP 44 `get` and echoed in
    /// `announce_peer` / `put` (libtorrent uses 4 bytes, others 8 or 20).
    Token,
    64
);

/// A [`Token`] borrowed from a datagram (or from an owned [`Token`] to be encoded): 1 to
/// [`Token::MAX_LEN`] bytes. Messages hold this rather than the 65-byte inline [`Token`], so
/// that they stay small; [`TokenRef::to_token`] copies it out when it must be kept.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenRef<'a>(&'a [u8]);

impl<'a> TokenRef<'a> {
    /// Borrows `bytes`; `None` when empty or longer than [`Token::MAX_LEN`].
    pub fn new(bytes: &'a [u8]) -> Option<Self> {
        (!bytes.is_empty() && bytes.len() <= Token::MAX_LEN).then_some(TokenRef(bytes))
    }

    /// Borrows `bytes`, which the caller checked to be 1 to [`Token::MAX_LEN`] bytes long.
    pub(crate) fn from_checked(bytes: &'a [u8]) -> Self {
        TokenRef(bytes)
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.0
    }

    /// The length in bytes (at least 1).
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// An owned copy.
    pub fn to_token(&self) -> Token {
        Token::from_checked(self.0)
    }
}

impl<'a> From<&'a Token> for TokenRef<'a> {
    fn from(t: &'a Token) -> Self {
        TokenRef(t.as_bytes())
    }
}

impl From<TokenRef<'_>> for Token {
    fn from(t: TokenRef<'_>) -> Self {
        t.to_token()
    }
}

impl AsRef<[u8]> for Token {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl AsRef<[u8]> for TokenRef<'_> {
    fn as_ref(&self) -> &[u8] {
        self.0
    }
}

impl PartialEq<Token> for TokenRef<'_> {
    fn eq(&self, other: &Token) -> bool {
        self.0 == other.as_bytes()
    }
}

impl PartialEq<TokenRef<'_>> for Token {
    fn eq(&self, other: &TokenRef<'_>) -> bool {
        self.as_bytes() == other.0
    }
}

impl fmt::Debug for TokenRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(")?;
        write_hex(f, self.0)?;
        f.write_str(")")
    }
}

impl fmt::Display for TokenRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, self.0)
    }
}

impl Token {
    /// Borrows the token, to put it in a message.
    pub fn as_token_ref(&self) -> TokenRef<'_> {
        TokenRef(self.as_bytes())
    }
}

impl TransactionId {
    /// A transaction id made of a 16-bit counter (the common two-byte form).
    pub fn from_u16(n: u16) -> Self {
        let b = n.to_be_bytes();
        Self::new(&b).expect("two bytes fit")
    }

    /// The id read as a big-endian integer when it is two bytes long.
    pub fn as_u16(&self) -> Option<u16> {
        <[u8; 2]>::try_from(self.as_bytes())
            .ok()
            .map(u16::from_be_bytes)
    }
}

/// BEP 44: an ed25519 public key (`k`), 32 bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PublicKey(pub [u8; 32]);

/// BEP 44: an ed25519 signature (`sig`), 64 bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature(pub [u8; 64]);

// The derived `Eq`, `Ord` and `Hash` are those of the bytes, as `Borrow` requires.
impl std::borrow::Borrow<[u8; 32]> for PublicKey {
    fn borrow(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::borrow::Borrow<[u8; 64]> for Signature {
    fn borrow(&self) -> &[u8; 64] {
        &self.0
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PublicKey(")?;
        write_hex(f, &self.0)?;
        f.write_str(")")
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Signature(")?;
        write_hex(f, &self.0)?;
        f.write_str(")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds() {
        assert!(TransactionId::new(b"").is_none());
        assert!(TransactionId::new(&[7; 33]).is_none());
        let t = TransactionId::new(&[7; 32]).unwrap();
        assert_eq!(t.len(), 32);
        assert_eq!(TransactionId::from_u16(0x6161).as_bytes(), b"aa");
        assert_eq!(TransactionId::from_u16(0x6161).as_u16(), Some(0x6161));
        assert_eq!(
            Token::new(b"aoeusnth").unwrap().to_string(),
            "616f6575736e7468"
        );
        assert_ne!(Token::new(b"ab"), Token::new(b"abc"));
        assert!(TokenRef::new(b"").is_none());
        assert!(TokenRef::new(&[7; 65]).is_none());
        let t = Token::new(b"tok").unwrap();
        assert_eq!(TokenRef::new(b"tok"), Some(t.as_token_ref()));
        assert_eq!(t.as_token_ref().to_token(), t);
        assert_eq!(format!("{:?}", t.as_token_ref()), format!("{t:?}"));
    }

    #[test]
    fn every_length_is_copied_exactly() {
        let all: Vec<u8> = (1..=64).collect();
        for n in 1..=64 {
            assert_eq!(Token::new(&all[..n]).unwrap().as_bytes(), &all[..n]);
            assert_eq!(Token::from_checked(&all[..n]).as_bytes(), &all[..n]);
            if n <= 32 {
                assert_eq!(TransactionId::new(&all[..n]).unwrap().as_bytes(), &all[..n]);
                assert_eq!(TransactionId::from_checked(&all[..n]).as_bytes(), &all[..n]);
            }
        }
    }
}
