//! An owned bencode value, for building and reading the contents of BEP 44 items (`v`).
//!
//! The wire codec keeps `v` as its exact bytes ([`RawValue`]) so that signatures verify; a
//! [`Value`] is what an application builds before signing and reads after verifying:
//!
//! ```
//! use std::collections::BTreeMap;
//! use xorro_wire::RawValue;
//! use xorro_wire::value::Value;
//!
//! let v = Value::Dict(BTreeMap::from([
//!     (b"name".to_vec(), Value::from("xorro")),
//!     (b"port".to_vec(), Value::from(6881)),
//! ]));
//! let bytes = v.to_bytes();
//! assert_eq!(bytes, b"d4:name5:xorro4:porti6881ee");
//! assert_eq!(Value::parse(&RawValue::new(&bytes).unwrap()).unwrap(), v);
//! assert_eq!(v.to_string(), r#"{"name": "xorro", "port": 6881}"#);
//! ```
//!
//! Encoding is canonical: dictionary keys in sorted order (a [`BTreeMap`] holds them so),
//! integers without leading zeros. Parsing accepts what the decoder accepts (unsorted keys,
//! leading zeros); a key repeated in a dictionary keeps its last value. Re-encoding a parsed
//! value therefore need not give back the same bytes: sign and hash the bytes, not the
//! [`Value`].

use std::collections::BTreeMap;
use std::fmt;

use crate::decode::MAX_DEPTH;
use crate::id::write_hex;
use crate::message::RawValue;

/// A bencoded value: an integer, a byte string, a list or a dictionary.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Value {
    /// `i<n>e`.
    Int(i64),
    /// `<len>:<bytes>`.
    Bytes(Vec<u8>),
    /// `l<values>e`.
    List(Vec<Value>),
    /// `d<key><value>...e`, keys sorted as raw bytes.
    Dict(BTreeMap<Vec<u8>, Value>),
}

/// Why a [`RawValue`] could not be read into a [`Value`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// The bytes are not well-formed bencode at this offset (a [`RawValue`] made by
    /// [`RawValue::new`] or the decoder never is).
    #[error("invalid bencode at byte {offset}")]
    Syntax {
        /// Where parsing stopped.
        offset: usize,
    },
    /// A well-formed integer that does not fit an `i64` (bencode integers are unbounded).
    #[error("integer at byte {offset} does not fit 64 bits")]
    IntegerOverflow {
        /// Where the integer starts (its `i`).
        offset: usize,
    },
    /// Lists and dictionaries nest deeper than [`MAX_DEPTH`].
    #[error("nesting deeper than {MAX_DEPTH}")]
    TooDeep,
    /// Bytes follow the value.
    #[error("trailing bytes after the value")]
    TrailingBytes,
}

impl Value {
    /// Reads `raw` into an owned value.
    ///
    /// Never panics, whatever the bytes. Fails on an integer that does not fit an `i64`, which
    /// [`RawValue::new`] accepts.
    pub fn parse(raw: &RawValue<'_>) -> Result<Value, ValueError> {
        let mut p = Parser {
            buf: raw.as_bytes(),
            pos: 0,
        };
        let v = p.value(0)?;
        if p.pos == p.buf.len() {
            Ok(v)
        } else {
            Err(ValueError::TrailingBytes)
        }
    }

    /// Appends the canonical encoding of `self` to `out` (which is not cleared).
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Value::Int(i) => write_int(out, *i),
            Value::Bytes(b) => write_bytes(out, b),
            Value::List(items) => {
                out.push(b'l');
                for item in items {
                    item.encode(out);
                }
                out.push(b'e');
            }
            Value::Dict(map) => {
                out.push(b'd');
                for (k, v) in map {
                    write_bytes(out, k);
                    v.encode(out);
                }
                out.push(b'e');
            }
        }
    }

    /// The canonical encoding of `self` in a new buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    /// The integer, if this is one.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The byte string, if this is one.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The byte string as text, if this is a byte string holding valid UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        self.as_bytes().and_then(|b| std::str::from_utf8(b).ok())
    }

    /// The items, if this is a list.
    pub fn as_list(&self) -> Option<&[Value]> {
        match self {
            Value::List(items) => Some(items),
            _ => None,
        }
    }

    /// The entries, if this is a dictionary.
    pub fn as_dict(&self) -> Option<&BTreeMap<Vec<u8>, Value>> {
        match self {
            Value::Dict(map) => Some(map),
            _ => None,
        }
    }

    /// The value under `key`, if this is a dictionary that has it.
    pub fn get(&self, key: &[u8]) -> Option<&Value> {
        self.as_dict().and_then(|map| map.get(key))
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Bytes(s.as_bytes().to_vec())
    }
}

impl From<&[u8]> for Value {
    fn from(b: &[u8]) -> Self {
        Value::Bytes(b.to_vec())
    }
}

impl From<Vec<u8>> for Value {
    fn from(b: Vec<u8>) -> Self {
        Value::Bytes(b)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}

impl From<Vec<Value>> for Value {
    fn from(items: Vec<Value>) -> Self {
        Value::List(items)
    }
}

impl From<BTreeMap<Vec<u8>, Value>> for Value {
    fn from(map: BTreeMap<Vec<u8>, Value>) -> Self {
        Value::Dict(map)
    }
}

/// JSON-like, for humans: byte strings print as quoted, escaped text when they are valid
/// UTF-8 and as `0x`-prefixed hex otherwise (so `"0x00"` is text and `0x00` is one byte);
/// dictionary keys print the same way.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(i) => write!(f, "{i}"),
            Value::Bytes(b) => display_bytes(f, b),
            Value::List(items) => {
                f.write_str("[")?;
                for (n, item) in items.iter().enumerate() {
                    if n > 0 {
                        f.write_str(", ")?;
                    }
                    fmt::Display::fmt(item, f)?;
                }
                f.write_str("]")
            }
            Value::Dict(map) => {
                f.write_str("{")?;
                for (n, (k, v)) in map.iter().enumerate() {
                    if n > 0 {
                        f.write_str(", ")?;
                    }
                    display_bytes(f, k)?;
                    f.write_str(": ")?;
                    fmt::Display::fmt(v, f)?;
                }
                f.write_str("}")
            }
        }
    }
}

fn display_bytes(f: &mut fmt::Formatter<'_>, b: &[u8]) -> fmt::Result {
    let Ok(s) = std::str::from_utf8(b) else {
        f.write_str("0x")?;
        return write_hex(f, b);
    };
    f.write_str("\"")?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            c if c.is_control() => write!(f, "\\u{:04x}", u32::from(c))?,
            c => write!(f, "{c}")?,
        }
    }
    f.write_str("\"")
}

/// Appends `<len>:<bytes>`.
pub(crate) fn write_bytes(out: &mut Vec<u8>, b: &[u8]) {
    write_decimal(out, b.len() as u64);
    out.push(b':');
    out.extend_from_slice(b);
}

/// Appends `i<n>e` (no leading zeros, no `-0`).
pub(crate) fn write_int(out: &mut Vec<u8>, i: i64) {
    out.push(b'i');
    if i < 0 {
        out.push(b'-');
    }
    write_decimal(out, i.unsigned_abs());
    out.push(b'e');
}

fn write_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// A recursive-descent reader; recursion is bounded by [`MAX_DEPTH`].
struct Parser<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn syntax<T>(&self) -> Result<T, ValueError> {
        Err(ValueError::Syntax { offset: self.pos })
    }

    fn peek(&self) -> Result<u8, ValueError> {
        match self.buf.get(self.pos) {
            Some(&b) => Ok(b),
            None => self.syntax(),
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, ValueError> {
        match self.peek()? {
            b'0'..=b'9' => self.bytes().map(|b| Value::Bytes(b.to_vec())),
            b'i' => self.int().map(Value::Int),
            c @ (b'l' | b'd') => {
                if depth >= MAX_DEPTH {
                    return Err(ValueError::TooDeep);
                }
                self.pos += 1;
                if c == b'l' {
                    let mut items = Vec::new();
                    while self.peek()? != b'e' {
                        items.push(self.value(depth + 1)?);
                    }
                    self.pos += 1;
                    Ok(Value::List(items))
                } else {
                    let mut map = BTreeMap::new();
                    while self.peek()? != b'e' {
                        let key = self.bytes()?.to_vec();
                        // A repeated key keeps its last value.
                        map.insert(key, self.value(depth + 1)?);
                    }
                    self.pos += 1;
                    Ok(Value::Dict(map))
                }
            }
            _ => self.syntax(),
        }
    }

    /// `<len>:<bytes>`
    fn bytes(&mut self) -> Result<&[u8], ValueError> {
        let start = self.pos;
        let mut len: usize = 0;
        loop {
            match self.peek()? {
                c @ b'0'..=b'9' => {
                    len = match len
                        .checked_mul(10)
                        .and_then(|l| l.checked_add(usize::from(c - b'0')))
                    {
                        Some(l) if l <= self.buf.len() => l,
                        _ => return self.syntax(),
                    };
                    self.pos += 1;
                }
                b':' if self.pos > start => {
                    self.pos += 1;
                    break;
                }
                _ => return self.syntax(),
            }
        }
        let end = match self.pos.checked_add(len) {
            Some(end) if end <= self.buf.len() => end,
            _ => return self.syntax(),
        };
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    /// `i<int>e`
    fn int(&mut self) -> Result<i64, ValueError> {
        let offset = self.pos;
        self.pos += 1; // the `i`, seen by the caller
        let negative = self.peek()? == b'-';
        if negative {
            self.pos += 1;
        }
        let digits = self.pos;
        let mut value: Option<i64> = Some(0);
        loop {
            match self.peek()? {
                c @ b'0'..=b'9' => {
                    let d = i64::from(c - b'0');
                    value = value.and_then(|v| v.checked_mul(10)).and_then(|v| {
                        if negative {
                            v.checked_sub(d)
                        } else {
                            v.checked_add(d)
                        }
                    });
                    self.pos += 1;
                }
                b'e' if self.pos > digits => {
                    self.pos += 1;
                    return value.ok_or(ValueError::IntegerOverflow { offset });
                }
                _ => return self.syntax(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(bytes: &[u8]) -> Result<Value, ValueError> {
        Value::parse(&RawValue::new(bytes).expect("well-formed bencode"))
    }

    fn dict<const N: usize>(entries: [(&str, Value); N]) -> Value {
        Value::Dict(
            entries
                .into_iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v))
                .collect(),
        )
    }

    /// Walks an encoding and checks that every dictionary's keys are strictly increasing;
    /// returns the offset after the value.
    fn assert_sorted_keys(buf: &[u8], mut pos: usize) -> usize {
        fn string(buf: &[u8], pos: usize) -> (&[u8], usize) {
            let colon = pos + buf[pos..].iter().position(|&b| b == b':').unwrap();
            let len: usize = std::str::from_utf8(&buf[pos..colon])
                .unwrap()
                .parse()
                .unwrap();
            (&buf[colon + 1..colon + 1 + len], colon + 1 + len)
        }
        match buf[pos] {
            b'i' => pos + buf[pos..].iter().position(|&b| b == b'e').unwrap() + 1,
            b'l' => {
                pos += 1;
                while buf[pos] != b'e' {
                    pos = assert_sorted_keys(buf, pos);
                }
                pos + 1
            }
            b'd' => {
                pos += 1;
                let mut last: Option<&[u8]> = None;
                while buf[pos] != b'e' {
                    let (key, next) = string(buf, pos);
                    assert!(last.is_none_or(|l| l < key), "keys out of order in {buf:?}");
                    last = Some(key);
                    pos = assert_sorted_keys(buf, next);
                }
                pos + 1
            }
            _ => string(buf, pos).1,
        }
    }

    #[test]
    fn encodes_every_kind() {
        assert_eq!(Value::from(0).to_bytes(), b"i0e");
        assert_eq!(Value::from(-42).to_bytes(), b"i-42e");
        assert_eq!(Value::from(i64::MIN).to_bytes(), b"i-9223372036854775808e");
        assert_eq!(Value::from(i64::MAX).to_bytes(), b"i9223372036854775807e");
        assert_eq!(Value::from("").to_bytes(), b"0:");
        assert_eq!(Value::from("Hello World!").to_bytes(), b"12:Hello World!");
        assert_eq!(Value::List(vec![]).to_bytes(), b"le");
        assert_eq!(Value::Dict(BTreeMap::new()).to_bytes(), b"de");
        let v = dict([
            ("z", Value::from(1)),
            (
                "a",
                Value::List(vec![Value::from("x"), Value::from(vec![0xff_u8])]),
            ),
        ]);
        assert_eq!(v.to_bytes(), b"d1:al1:x1:\xffe1:zi1ee");
    }

    #[test]
    fn encode_appends() {
        let mut out = b"prefix".to_vec();
        Value::from(7).encode(&mut out);
        assert_eq!(out, b"prefixi7e");
    }

    #[test]
    fn parses_what_the_decoder_accepts() {
        assert_eq!(parse(b"i-0e"), Ok(Value::Int(0)));
        assert_eq!(parse(b"i007e"), Ok(Value::Int(7)));
        assert_eq!(parse(b"03:abc"), Ok(Value::from("abc")));
        // Unsorted keys are read; a repeated key keeps its last value.
        assert_eq!(
            parse(b"d1:bi1e1:ai2e1:bi3ee"),
            Ok(dict([("a", Value::from(2)), ("b", Value::from(3))]))
        );
        assert_eq!(parse(b"i9223372036854775807e"), Ok(Value::Int(i64::MAX)));
        assert_eq!(parse(b"i-9223372036854775808e"), Ok(Value::Int(i64::MIN)));
    }

    #[test]
    fn integer_overflow_is_an_error() {
        assert_eq!(
            parse(b"i9223372036854775808e"),
            Err(ValueError::IntegerOverflow { offset: 0 })
        );
        assert_eq!(
            parse(b"li1ei-99999999999999999999ee"),
            Err(ValueError::IntegerOverflow { offset: 4 })
        );
    }

    #[test]
    fn deepest_accepted_nesting_parses() {
        let deep = [vec![b'l'; MAX_DEPTH], vec![b'e'; MAX_DEPTH]].concat();
        let mut v = parse(&deep).unwrap();
        let mut levels = 1;
        while let Value::List(mut items) = v {
            match items.pop() {
                Some(inner) => {
                    v = inner;
                    levels += 1;
                }
                None => break,
            }
        }
        assert_eq!(levels, MAX_DEPTH);
        let too_deep = [vec![b'l'; MAX_DEPTH + 1], vec![b'e'; MAX_DEPTH + 1]].concat();
        assert!(RawValue::new(&too_deep).is_err());
    }

    #[test]
    fn accessors() {
        let v = dict([
            ("n", Value::from(5)),
            ("s", Value::from("hi")),
            ("l", Value::List(vec![])),
        ]);
        assert_eq!(v.get(b"n").and_then(Value::as_int), Some(5));
        assert_eq!(v.get(b"s").and_then(Value::as_str), Some("hi"));
        assert_eq!(v.get(b"s").and_then(Value::as_bytes), Some(&b"hi"[..]));
        assert_eq!(v.get(b"l").and_then(Value::as_list), Some(&[][..]));
        assert_eq!(v.get(b"missing"), None);
        assert_eq!(Value::from(vec![0xff_u8]).as_str(), None);
        assert_eq!(Value::from(1).get(b"n"), None);
        assert_eq!(v.as_dict().map(BTreeMap::len), Some(3));
    }

    #[test]
    fn display_is_json_like() {
        let v = dict([
            ("bin", Value::from(vec![0x00_u8, 0xff])),
            (
                "list",
                Value::List(vec![Value::from(-1), Value::from("a\"b\\c\n\u{1}")]),
            ),
            ("empty", Value::from("")),
        ]);
        assert_eq!(
            v.to_string(),
            r#"{"bin": 0x00ff, "empty": "", "list": [-1, "a\"b\\c\n\u0001"]}"#
        );
        let mut non_utf8_key = BTreeMap::new();
        non_utf8_key.insert(vec![0xc3_u8], Value::List(vec![]));
        assert_eq!(Value::Dict(non_utf8_key).to_string(), "{0xc3: []}");
    }

    fn arb_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            any::<i64>().prop_map(Value::Int),
            prop::collection::vec(any::<u8>(), 0..12).prop_map(Value::Bytes),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::List),
                prop::collection::btree_map(prop::collection::vec(any::<u8>(), 0..6), inner, 0..6)
                    .prop_map(Value::Dict),
            ]
        })
    }

    proptest! {
        #[test]
        fn round_trip_with_sorted_keys(v in arb_value()) {
            let bytes = v.to_bytes();
            let raw = RawValue::new(&bytes).expect("our encoding is well-formed");
            prop_assert_eq!(Value::parse(&raw), Ok(v.clone()));
            prop_assert_eq!(assert_sorted_keys(&bytes, 0), bytes.len());
        }

        /// Any damage that still passes `RawValue::new` parses without panicking, and the
        /// canonical re-encoding of what was read is a fixed point.
        #[test]
        fn damaged_encodings_never_panic(
            v in arb_value(),
            edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        ) {
            let mut bytes = v.to_bytes();
            for (at, b) in edits {
                let i = at.index(bytes.len());
                bytes[i] = b;
            }
            if let Ok(raw) = RawValue::new(&bytes)
                && let Ok(read) = Value::parse(&raw)
            {
                let again = read.to_bytes();
                let raw = RawValue::new(&again).expect("our encoding is well-formed");
                prop_assert_eq!(Value::parse(&raw), Ok(read));
            }
        }
    }
}
