//! Parsing user input (command-line arguments and API request fields) into the project's
//! newtypes, with messages that say which input is wrong and what is expected.
//!
//! The messages are shared by the CLI (exit code 2) and the HTTP API (status 400).

use std::net::SocketAddr;
use std::str::FromStr;

use xorro_wire::{ParseIdError, PublicKey, RawValue};

/// BEP 44: a value is at most 1000 bytes once bencoded.
pub const VALUE_MAX: usize = 1000;

/// BEP 44: a salt is at most 64 bytes.
pub const SALT_MAX: usize = 64;

/// A 160-bit id (`NodeId`, `InfoHash`) from 40 hex digits; `what` names the input.
pub fn id<T: FromStr<Err = ParseIdError>>(what: &str, s: &str) -> Result<T, String> {
    s.trim().parse().map_err(|e| match e {
        ParseIdError::Length(n) => format!("{what} must be 40 hex digits, got {n} characters"),
        ParseIdError::Digit(c) => format!("{what} must be 40 hex digits: '{c}' is not a hex digit"),
    })
}

/// Exactly `N` bytes from `2 × N` hex digits.
pub fn hex_array<const N: usize>(what: &str, s: &str) -> Result<[u8; N], String> {
    let s = s.trim();
    let expected = || {
        format!(
            "{what} must be {} hex digits, got {} characters",
            2 * N,
            s.chars().count()
        )
    };
    if s.len() != 2 * N {
        return Err(expected());
    }
    let bytes = hex_bytes(what, s)?;
    bytes.try_into().map_err(|_| expected())
}

/// Any number of bytes from hex digits.
pub fn hex_bytes(what: &str, s: &str) -> Result<Vec<u8>, String> {
    hex::decode(s.trim()).map_err(|e| match e {
        hex::FromHexError::OddLength => {
            format!("{what} must be hex digits in pairs, got an odd number")
        }
        hex::FromHexError::InvalidHexCharacter { c, .. } => {
            format!("{what} must be hex digits: '{c}' is not one")
        }
        hex::FromHexError::InvalidStringLength => format!("{what} has the wrong length"),
    })
}

/// An ed25519 public key from 64 hex digits.
pub fn public_key(what: &str, s: &str) -> Result<PublicKey, String> {
    hex_array::<32>(what, s).map(PublicKey)
}

/// A BEP 44 value given as bencoded bytes: one value, at most [`VALUE_MAX`] bytes.
pub fn bencoded(what: &str, bytes: Vec<u8>) -> Result<Vec<u8>, String> {
    if bytes.len() > VALUE_MAX {
        return Err(format!(
            "{what} is {} bytes bencoded; BEP 44 allows at most {VALUE_MAX}",
            bytes.len()
        ));
    }
    if RawValue::new(&bytes).is_err() {
        return Err(format!(
            "{what} must be exactly one bencoded value (e.g. 5:hello, i42e, l...e, d...e)"
        ));
    }
    Ok(bytes)
}

/// Bencodes `bytes` as one byte string (`<len>:<bytes>`), checking the size.
pub fn byte_string(what: &str, bytes: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = format!("{}:", bytes.len()).into_bytes();
    out.extend_from_slice(bytes);
    if out.len() > VALUE_MAX {
        return Err(format!(
            "{what} is {} bytes bencoded; BEP 44 allows at most {VALUE_MAX} (about {} bytes of text)",
            out.len(),
            VALUE_MAX - 4
        ));
    }
    Ok(out)
}

/// A salt: at most [`SALT_MAX`] bytes.
pub fn salt(what: &str, bytes: Vec<u8>) -> Result<Vec<u8>, String> {
    if bytes.len() > SALT_MAX {
        return Err(format!(
            "{what} is {} bytes; BEP 44 allows at most {SALT_MAX}",
            bytes.len()
        ));
    }
    Ok(bytes)
}

/// The text inside a bencoded byte string, when `value` is one and the bytes are UTF-8.
pub fn utf8_of(value: &[u8]) -> Option<String> {
    let colon = value.iter().position(|&b| b == b':')?;
    let len: usize = std::str::from_utf8(&value[..colon]).ok()?.parse().ok()?;
    let rest = &value[colon + 1..];
    if rest.len() != len {
        return None;
    }
    String::from_utf8(rest.to_vec()).ok()
}

/// A `host:port` address (not resolved): the host is not empty and the port is a number.
pub fn host_port(what: &str, s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.parse::<SocketAddr>().is_ok() {
        return Ok(s.to_owned());
    }
    match s.rsplit_once(':') {
        Some((host, port))
            if !host.is_empty() && !host.contains(':') && port.parse::<u16>().is_ok() =>
        {
            Ok(s.to_owned())
        }
        _ => Err(format!(
            "{what} must be host:port (e.g. 127.0.0.1:6881 or router.example.org:6881), got '{s}'"
        )),
    }
}

/// An `ip:port` socket address.
pub fn socket_addr(what: &str, s: &str) -> Result<SocketAddr, String> {
    s.trim().parse().map_err(|_| {
        format!(
            "{what} must be ip:port (e.g. 127.0.0.1:7881 or [::1]:7881), got '{}'",
            s.trim()
        )
    })
}

#[cfg(test)]
mod tests {
    use xorro_wire::InfoHash;

    use super::*;

    #[test]
    fn ids_say_what_is_expected() {
        let e = id::<InfoHash>("INFOHASH", "0123456789ab").unwrap_err();
        assert_eq!(e, "INFOHASH must be 40 hex digits, got 12 characters");
        let e = id::<InfoHash>("INFOHASH", &"g".repeat(40)).unwrap_err();
        assert!(e.contains("'g' is not a hex digit"), "{e}");
        assert!(id::<InfoHash>("INFOHASH", &"aB".repeat(20)).is_ok());
    }

    #[test]
    fn keys_and_values() {
        assert!(public_key("KEY", &"00".repeat(32)).is_ok());
        assert_eq!(
            public_key("KEY", "00").unwrap_err(),
            "KEY must be 64 hex digits, got 2 characters"
        );
        assert_eq!(byte_string("VALUE", b"hello").unwrap(), b"5:hello");
        assert!(byte_string("VALUE", &[b'x'; 996]).is_ok());
        assert!(byte_string("VALUE", &[b'x'; 997]).is_err());
        assert!(bencoded("VALUE", b"i42e".to_vec()).is_ok());
        assert!(bencoded("VALUE", b"i42".to_vec()).is_err());
        assert_eq!(utf8_of(b"5:hello").as_deref(), Some("hello"));
        assert_eq!(utf8_of(b"i42e"), None);
        assert_eq!(utf8_of(b"3:\xff\xfe\xfd"), None);
    }

    #[test]
    fn addresses() {
        assert!(host_port("ADDR", "127.0.0.1:6881").is_ok());
        assert!(host_port("ADDR", "[::1]:6881").is_ok());
        assert!(host_port("ADDR", "router.example.org:6881").is_ok());
        assert!(host_port("ADDR", "router.example.org").is_err());
        assert!(host_port("ADDR", ":6881").is_err());
        assert!(socket_addr("ADDR", "localhost:1").is_err());
    }
}
