//! 160-bit identifiers of the Kademlia keyspace and the XOR metric (BEP 5).
//!
//! [`NodeId`] names a node and is also the key of every lookup target; [`InfoHash`] names a
//! torrent or a stored item; [`Distance`] is the XOR of two ids, ordered as a big-endian
//! unsigned integer. `Display` prints lowercase hex; `FromStr` parses 40 hex digits.

use std::fmt;
use std::str::FromStr;

/// BEP 5: node ids and info-hashes are 160-bit (20-byte) strings.
pub const ID_LEN: usize = 20;

/// Why a hex string is not a 160-bit id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseIdError {
    /// The string does not have exactly 40 characters.
    #[error("expected 40 hex digits, got {0} characters")]
    Length(usize),
    /// A character is not a hex digit.
    #[error("'{0}' is not a hex digit")]
    Digit(char),
}

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name(pub [u8; ID_LEN]);

        impl $name {
            /// The id whose 160 bits are all zero.
            pub const ZERO: Self = Self([0; ID_LEN]);

            /// Wraps 20 raw bytes.
            pub const fn from_bytes(bytes: [u8; ID_LEN]) -> Self {
                Self(bytes)
            }

            /// Reads an id from a slice of exactly 20 bytes.
            pub fn from_slice(bytes: &[u8]) -> Option<Self> {
                <[u8; ID_LEN]>::try_from(bytes).ok().map(Self)
            }

            /// The raw bytes.
            pub const fn as_bytes(&self) -> &[u8; ID_LEN] {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write_hex(f, &self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}(", stringify!($name))?;
                write_hex(f, &self.0)?;
                f.write_str(")")
            }
        }

        impl FromStr for $name {
            type Err = ParseIdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                parse_hex(s).map(Self)
            }
        }

        impl From<[u8; ID_LEN]> for $name {
            fn from(bytes: [u8; ID_LEN]) -> Self {
                Self(bytes)
            }
        }

        impl AsRef<[u8]> for $name {
            fn as_ref(&self) -> &[u8] {
                &self.0
            }
        }
    };
}

id_type!(
    /// A node's identity and a point of the keyspace (lookup targets are `NodeId`s too).
    NodeId
);
id_type!(
    /// The 20-byte name of a torrent (BEP 5) or of a BEP 44 item (its target).
    InfoHash
);
id_type!(
    /// The XOR distance between two ids; smaller is closer (BEP 5).
    Distance
);

impl NodeId {
    /// The XOR distance to `other`.
    pub fn distance(&self, other: &NodeId) -> Distance {
        let mut out = [0u8; ID_LEN];
        for (o, (a, b)) in out.iter_mut().zip(self.0.iter().zip(other.0.iter())) {
            *o = a ^ b;
        }
        Distance(out)
    }

    /// The `i`-th bit counted from the most significant (bit 0 is the top bit of byte 0).
    pub fn bit(&self, i: usize) -> bool {
        debug_assert!(i < ID_LEN * 8);
        self.0[i / 8] & (0x80 >> (i % 8)) != 0
    }

    /// Sets the `i`-th bit, counted as in [`bit`](Self::bit), to `value`.
    pub fn set_bit(&mut self, i: usize, value: bool) {
        debug_assert!(i < ID_LEN * 8);
        let mask = 0x80 >> (i % 8);
        if value {
            self.0[i / 8] |= mask;
        } else {
            self.0[i / 8] &= !mask;
        }
    }
}

impl Distance {
    /// Number of leading zero bits: 160 for the zero distance. Two ids at distance `d` share
    /// exactly `d.leading_zeros()` leading bits.
    pub fn leading_zeros(&self) -> u32 {
        let mut n = 0;
        for b in self.0 {
            if b == 0 {
                n += 8;
            } else {
                return n + b.leading_zeros();
            }
        }
        n
    }
}

impl From<InfoHash> for NodeId {
    fn from(h: InfoHash) -> Self {
        NodeId(h.0)
    }
}

impl From<NodeId> for InfoHash {
    fn from(id: NodeId) -> Self {
        InfoHash(id.0)
    }
}

pub(crate) fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        let pair = [HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]];
        f.write_str(std::str::from_utf8(&pair).map_err(|_| fmt::Error)?)?;
    }
    Ok(())
}

fn parse_hex(s: &str) -> Result<[u8; ID_LEN], ParseIdError> {
    let chars = s.as_bytes();
    if chars.len() != ID_LEN * 2 {
        return Err(ParseIdError::Length(s.chars().count()));
    }
    let digit = |c: u8| -> Result<u8, ParseIdError> {
        match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'a'..=b'f' => Ok(c - b'a' + 10),
            b'A'..=b'F' => Ok(c - b'A' + 10),
            _ => Err(ParseIdError::Digit(char::from(c))),
        }
    };
    let mut out = [0u8; ID_LEN];
    for (o, pair) in out.iter_mut().zip(chars.chunks_exact(2)) {
        *o = (digit(pair[0])? << 4) | digit(pair[1])?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let s = "0123456789abcdef0123456789abcdef01234567";
        let id: NodeId = s.parse().unwrap();
        assert_eq!(id.to_string(), s);
        assert_eq!(id.0[0], 0x01);
        assert_eq!(
            "ABCDEF0123456789ABCDEF0123456789ABCDEF01"
                .parse::<InfoHash>()
                .unwrap()
                .to_string(),
            "abcdef0123456789abcdef0123456789abcdef01"
        );
    }

    #[test]
    fn hex_errors() {
        assert_eq!("abc".parse::<NodeId>(), Err(ParseIdError::Length(3)));
        let bad = "g".repeat(40);
        assert_eq!(bad.parse::<NodeId>(), Err(ParseIdError::Digit('g')));
        // A multi-byte character must not be split.
        let s = format!("{}é", "0".repeat(38));
        assert!(s.parse::<NodeId>().is_err());
    }

    #[test]
    fn distance_and_bits() {
        let a = NodeId::ZERO;
        let mut b = [0u8; 20];
        b[2] = 0x10;
        let b = NodeId(b);
        let d = a.distance(&b);
        assert_eq!(d.leading_zeros(), 19);
        assert_eq!(a.distance(&a).leading_zeros(), 160);
        assert!(b.bit(19));
        assert!(!b.bit(18));
        assert_eq!(a.distance(&b), b.distance(&a));
        let mut c = a;
        c.set_bit(19, true);
        assert_eq!(c, b);
        c.set_bit(19, false);
        c.set_bit(0, true);
        assert_eq!(c.0[0], 0x80);
        assert_eq!(c.0[2], 0);
    }
}
