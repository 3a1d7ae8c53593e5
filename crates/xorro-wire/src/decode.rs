//! Bounded, zero-copy decoding of KRPC datagrams.
//!
//! The decoder is hand-written for speed (see `docs/BENCHMARKS.md`) and for hostile input:
//! it never panics, never allocates (every string in a [`Message`] borrows the datagram),
//! limits nesting to [`MAX_DEPTH`], ignores keys it does not know, and tolerates what real
//! clients send (unsorted keys, `v` of any type). Errors say what a server should answer:
//! [`DecodeError::reply`].

use std::time::Duration;

use crate::bytes::{PublicKey, Signature, Token, TransactionId};
use crate::compact::{Family, Nodes, PEER_V4_LEN, PEER_V6_LEN, Peers, Samples, decode_peer};
use crate::id::{ID_LEN, InfoHash, NodeId};
use crate::message::{
    BloomBytes, Body, ErrorBody, ErrorCode, Message, MutablePut, PutQuery, Query, QueryKind,
    RawValue, Response, Want,
};

/// Deepest nesting of lists and dictionaries accepted (a KRPC message needs 3; BEP 44 values
/// may nest further).
pub const MAX_DEPTH: usize = 32;

/// Why a datagram is not a KRPC message the codec accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeErrorKind {
    /// The bytes are not well-formed bencode at this offset.
    #[error("invalid bencode at byte {0}")]
    Syntax(usize),
    /// Lists and dictionaries nest deeper than [`MAX_DEPTH`].
    #[error("nesting deeper than {MAX_DEPTH}")]
    TooDeep,
    /// Bytes follow the message.
    #[error("trailing bytes after the message")]
    TrailingBytes,
    /// The top level is not a dictionary.
    #[error("the message is not a dictionary")]
    NotADict,
    /// A required key is absent.
    #[error("missing key `{0}`")]
    MissingKey(&'static str),
    /// A key holds a value of the wrong type or length.
    #[error("invalid value for `{0}`")]
    InvalidValue(&'static str),
    /// `y` is neither `q`, `r` nor `e`.
    #[error("unknown message type `y`")]
    UnknownType,
    /// `q` names a method we do not know and there is no `target` or `info_hash` to answer.
    #[error("unknown method")]
    UnknownMethod,
}

/// A datagram that could not be decoded, with what a server should do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{kind}")]
pub struct DecodeError {
    /// What is wrong.
    pub kind: DecodeErrorKind,
    /// `t`, when it could be read.
    pub transaction_id: Option<TransactionId>,
    /// False when the datagram said it was a response or an error (`y` = `r` or `e`), which
    /// are never answered.
    pub from_querier: bool,
}

impl DecodeError {
    fn new(kind: DecodeErrorKind) -> Self {
        DecodeError {
            kind,
            transaction_id: None,
            from_querier: true,
        }
    }

    /// The KRPC error a server should send back, and the transaction id to send it with:
    /// 204 for an unknown method, 203 for anything malformed. `None` when the datagram must
    /// be dropped silently (no transaction id, or it was not a query).
    pub fn reply(&self) -> Option<(TransactionId, ErrorCode)> {
        if !self.from_querier {
            return None;
        }
        let code = match self.kind {
            DecodeErrorKind::UnknownMethod => ErrorCode::METHOD_UNKNOWN,
            _ => ErrorCode::PROTOCOL,
        };
        self.transaction_id.map(|t| (t, code))
    }
}

type Result<T> = std::result::Result<T, DecodeError>;

#[cold]
fn err<T>(kind: DecodeErrorKind) -> Result<T> {
    Err(DecodeError::new(kind))
}

/// A value inside `a` (or `e`), scanned but not yet interpreted.
#[derive(Clone, Copy)]
enum Val<'a> {
    Bytes(&'a [u8]),
    Int(i64),
    /// An integer that does not fit i64.
    BigInt,
    /// The whole encoded list, `l` … `e`.
    List(&'a [u8]),
    /// A dictionary (never a valid argument or return value in itself).
    Dict,
}

impl<'a> Val<'a> {
    fn bytes(self, key: &'static str) -> Result<&'a [u8]> {
        match self {
            Val::Bytes(b) => Ok(b),
            _ => err(DecodeErrorKind::InvalidValue(key)),
        }
    }

    fn int(self, key: &'static str) -> Result<i64> {
        match self {
            Val::Int(i) => Ok(i),
            _ => err(DecodeErrorKind::InvalidValue(key)),
        }
    }

    fn flag(self, key: &'static str) -> Result<bool> {
        self.int(key).map(|i| i != 0)
    }
}

/// The keys of `a` that some method reads. Which ones matter, and in what order they are
/// checked, is known only once `q` has been read (it usually follows `a`).
#[derive(Default)]
struct QueryFields<'a> {
    id: Option<Val<'a>>,
    target: Option<Val<'a>>,
    info_hash: Option<Val<'a>>,
    token: Option<Val<'a>>,
    port: Option<Val<'a>>,
    implied_port: Option<Val<'a>>,
    seed: Option<Val<'a>>,
    noseed: Option<Val<'a>>,
    scrape: Option<Val<'a>>,
    want: Option<Val<'a>>,
    /// `v` with the span of its encoding.
    v: Option<&'a [u8]>,
    k: Option<Val<'a>>,
    sig: Option<Val<'a>>,
    seq: Option<Val<'a>>,
    cas: Option<Val<'a>>,
    salt: Option<Val<'a>>,
}

/// The keys of `r`, read straight into their types. A key whose (last) value has the wrong
/// type or length sets its bit in `invalid`: the error is reported only once the whole
/// datagram has been read and `y` says this is a response, lowest bit first.
#[derive(Default)]
struct ResponseFields<'a> {
    invalid: u16,
    id: Option<&'a [u8; ID_LEN]>,
    nodes: Option<Nodes<'a>>,
    nodes6: Option<Nodes<'a>>,
    token: Option<&'a [u8]>,
    values: Option<Peers<'a>>,
    seeds_bloom: Option<&'a BloomBytes>,
    peers_bloom: Option<&'a BloomBytes>,
    value: Option<&'a [u8]>,
    key: Option<&'a [u8; 32]>,
    signature: Option<&'a [u8; 64]>,
    seq: Option<i64>,
    samples: Option<Samples<'a>>,
    num: Option<u64>,
    interval: Option<u64>,
}

/// Bits of [`ResponseFields::invalid`], in the order the errors are reported.
mod bit {
    pub const SAMPLES: u16 = 1 << 0;
    pub const INTERVAL: u16 = 1 << 1;
    pub const ID: u16 = 1 << 2;
    pub const NODES: u16 = 1 << 3;
    pub const NODES6: u16 = 1 << 4;
    pub const TOKEN: u16 = 1 << 5;
    pub const VALUES: u16 = 1 << 6;
    pub const BF_SEEDS: u16 = 1 << 7;
    pub const BF_PEERS: u16 = 1 << 8;
    pub const K: u16 = 1 << 9;
    pub const SIG: u16 = 1 << 10;
    pub const SEQ: u16 = 1 << 11;
    pub const NUM: u16 = 1 << 12;
    /// The key of each bit.
    pub const NAMES: [&str; 13] = [
        "samples", "interval", "id", "nodes", "nodes6", "token", "values", "BFsd", "BFpe", "k",
        "sig", "seq", "num",
    ];
}

impl<'a> ResponseFields<'a> {
    #[inline(always)]
    fn check<T>(&mut self, bit: u16, v: Option<T>) -> Option<T> {
        if v.is_some() {
            self.invalid &= !bit;
        } else {
            self.invalid |= bit;
        }
        v
    }
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    #[inline(always)]
    fn peek(&self) -> Result<u8> {
        match self.buf.get(self.pos) {
            Some(&b) => Ok(b),
            None => self.syntax(),
        }
    }

    #[cold]
    #[inline(never)]
    fn syntax<T>(&self) -> Result<T> {
        err(DecodeErrorKind::Syntax(self.pos))
    }

    fn expect(&mut self, b: u8) -> Result<()> {
        if self.peek()? == b {
            self.pos += 1;
            Ok(())
        } else {
            self.syntax()
        }
    }

    /// `<len>:<bytes>`. Lengths of one to three digits whose bytes are all there are read
    /// here; anything else (longer, truncated or malformed) by [`Self::bytes_slow`].
    #[inline(always)]
    fn bytes(&mut self) -> Result<&'a [u8]> {
        let buf = self.buf;
        let p = self.pos;
        if let Some(&[a, b, c, d]) = buf.get(p..).and_then(|s| s.first_chunk::<4>()) {
            let d0 = usize::from(a.wrapping_sub(b'0'));
            let d1 = usize::from(b.wrapping_sub(b'0'));
            let d2 = usize::from(c.wrapping_sub(b'0'));
            let head = if d0 >= 10 {
                None
            } else if b == b':' {
                Some((d0, p + 2))
            } else if d1 >= 10 {
                None
            } else if c == b':' {
                Some((d0 * 10 + d1, p + 3))
            } else if d2 < 10 && d == b':' {
                Some((d0 * 100 + d1 * 10 + d2, p + 4))
            } else {
                None
            };
            if let Some((len, start)) = head
                && let Some(out) = buf.get(start..start + len)
            {
                self.pos = start + len;
                return Ok(out);
            }
        }
        self.bytes_slow()
    }

    #[cold]
    #[inline(never)]
    fn bytes_slow(&mut self) -> Result<&'a [u8]> {
        let mut len: usize = 0;
        let start = self.pos;
        loop {
            let c = self.peek()?;
            match c {
                b'0'..=b'9' => {
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
            Some(e) if e <= self.buf.len() => e,
            _ => return self.syntax(),
        };
        match self.buf.get(self.pos..end) {
            Some(out) => {
                self.pos = end;
                Ok(out)
            }
            None => self.syntax(),
        }
    }

    /// `i<int>e`; `Ok(None)` for a well-formed integer that does not fit i64.
    fn int(&mut self) -> Result<Option<i64>> {
        self.expect(b'i')?;
        let negative = self.peek()? == b'-';
        if negative {
            self.pos += 1;
        }
        let start = self.pos;
        let mut value: Option<i64> = Some(0);
        loop {
            let c = self.peek()?;
            match c {
                b'0'..=b'9' => {
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
                b'e' if self.pos > start => {
                    self.pos += 1;
                    return Ok(value);
                }
                _ => return self.syntax(),
            }
        }
    }

    /// Skips one value of any type, nesting at most `MAX_DEPTH - depth` more levels.
    fn skip(&mut self, depth: usize) -> Result<()> {
        match self.peek()? {
            b'0'..=b'9' => self.bytes().map(drop),
            b'i' => self.int().map(drop),
            c @ (b'l' | b'd') => {
                if depth >= MAX_DEPTH {
                    return err(DecodeErrorKind::TooDeep);
                }
                self.pos += 1;
                while self.peek()? != b'e' {
                    if c == b'd' {
                        self.bytes()?;
                    }
                    self.skip(depth + 1)?;
                }
                self.pos += 1;
                Ok(())
            }
            _ => self.syntax(),
        }
    }

    /// Skips one value at `depth` and returns its encoding.
    fn span(&mut self, depth: usize) -> Result<&'a [u8]> {
        let start = self.pos;
        self.skip(depth)?;
        match self.buf.get(start..self.pos) {
            Some(s) => Ok(s),
            None => self.syntax(),
        }
    }

    /// A string at `depth`, or `None` (skipped) for a value of another type.
    #[inline(always)]
    fn bytes_or_skip(&mut self, depth: usize) -> Result<Option<&'a [u8]>> {
        if self.peek()?.is_ascii_digit() {
            self.bytes().map(Some)
        } else {
            self.skip(depth).map(|()| None)
        }
    }

    /// An integer at `depth` that fits i64, or `None` (skipped) for anything else.
    #[inline(always)]
    fn int_or_skip(&mut self, depth: usize) -> Result<Option<i64>> {
        if self.peek()? == b'i' {
            self.int()
        } else {
            self.skip(depth).map(|()| None)
        }
    }

    /// Scans one value at `depth` into a [`Val`].
    fn val(&mut self, depth: usize) -> Result<Val<'a>> {
        let start = self.pos;
        Ok(match self.peek()? {
            b'0'..=b'9' => Val::Bytes(self.bytes()?),
            b'i' => self.int()?.map_or(Val::BigInt, Val::Int),
            b'l' => {
                self.skip(depth)?;
                match self.buf.get(start..self.pos) {
                    Some(raw) => Val::List(raw),
                    None => return self.syntax(),
                }
            }
            b'd' => {
                self.skip(depth)?;
                Val::Dict
            }
            _ => return self.syntax(),
        })
    }

    /// Scans the `a` dictionary (the cursor is on its `d`) at depth 1.
    fn query_fields(&mut self, f: &mut QueryFields<'a>) -> Result<()> {
        self.pos += 1;
        while self.peek()? != b'e' {
            let key = self.bytes()?;
            let slot = match key {
                b"id" => &mut f.id,
                b"target" => &mut f.target,
                b"info_hash" => &mut f.info_hash,
                b"token" => &mut f.token,
                b"port" => &mut f.port,
                b"implied_port" => &mut f.implied_port,
                b"seed" => &mut f.seed,
                b"noseed" => &mut f.noseed,
                b"scrape" => &mut f.scrape,
                b"want" => &mut f.want,
                b"k" => &mut f.k,
                b"sig" => &mut f.sig,
                b"seq" => &mut f.seq,
                b"cas" => &mut f.cas,
                b"salt" => &mut f.salt,
                b"v" => {
                    f.v = Some(self.span(2)?);
                    continue;
                }
                _ => {
                    self.skip(2)?;
                    continue;
                }
            };
            *slot = Some(self.val(2)?);
        }
        self.pos += 1;
        Ok(())
    }

    /// Scans the `r` dictionary (the cursor is on its `d`) at depth 1, typing each key.
    fn response_fields(&mut self, f: &mut ResponseFields<'a>) -> Result<()> {
        self.pos += 1;
        while self.peek()? != b'e' {
            let key = self.bytes()?;
            match key {
                b"id" => {
                    let v = self.bytes_or_skip(2)?.and_then(|b| b.try_into().ok());
                    f.id = f.check(bit::ID, v);
                }
                b"nodes" => {
                    let v = self.bytes_or_skip(2)?;
                    let v = v.and_then(|b| Nodes::from_compact(b, Family::V4));
                    f.nodes = f.check(bit::NODES, v);
                }
                b"nodes6" => {
                    let v = self.bytes_or_skip(2)?;
                    let v = v.and_then(|b| Nodes::from_compact(b, Family::V6));
                    f.nodes6 = f.check(bit::NODES6, v);
                }
                b"token" => {
                    let v = self.bytes_or_skip(2)?;
                    let v = v.filter(|b| !b.is_empty() && b.len() <= Token::MAX_LEN);
                    f.token = f.check(bit::TOKEN, v);
                }
                b"values" => {
                    let v = self.peers()?;
                    f.values = f.check(bit::VALUES, v);
                }
                b"BFsd" => {
                    let v = self.bytes_or_skip(2)?.and_then(|b| b.try_into().ok());
                    f.seeds_bloom = f.check(bit::BF_SEEDS, v);
                }
                b"BFpe" => {
                    let v = self.bytes_or_skip(2)?.and_then(|b| b.try_into().ok());
                    f.peers_bloom = f.check(bit::BF_PEERS, v);
                }
                b"v" => f.value = Some(self.span(2)?),
                b"k" => {
                    let v = self.bytes_or_skip(2)?.and_then(|b| b.try_into().ok());
                    f.key = f.check(bit::K, v);
                }
                b"sig" => {
                    let v = self.bytes_or_skip(2)?.and_then(|b| b.try_into().ok());
                    f.signature = f.check(bit::SIG, v);
                }
                b"seq" => {
                    let v = self.int_or_skip(2)?;
                    f.seq = f.check(bit::SEQ, v);
                }
                b"samples" => {
                    let v = self.bytes_or_skip(2)?.and_then(Samples::from_compact);
                    f.samples = f.check(bit::SAMPLES, v);
                }
                b"num" => {
                    let v = self.int_or_skip(2)?.and_then(|i| u64::try_from(i).ok());
                    f.num = f.check(bit::NUM, v);
                }
                b"interval" => {
                    let v = self.int_or_skip(2)?.and_then(|i| u64::try_from(i).ok());
                    f.interval = f.check(bit::INTERVAL, v);
                }
                _ => self.skip(2)?,
            }
        }
        self.pos += 1;
        Ok(())
    }

    /// `values` at depth 2: a list of 6- or 18-byte strings written `6:` / `18:` (no leading
    /// zeros), or `None` for any other value (skipped).
    fn peers(&mut self) -> Result<Option<Peers<'a>>> {
        if self.peek()? != b'l' {
            return self.skip(2).map(|()| None);
        }
        let buf = self.buf;
        let start = self.pos + 1;
        let mut p = start;
        let mut count = 0;
        loop {
            match buf.get(p..) {
                Some([b'e', ..]) => {
                    self.pos = p + 1;
                    return Ok(buf
                        .get(start..p)
                        .map(|items| Peers::from_bencoded(items, count)));
                }
                Some([b'6', b':', rest @ ..]) if rest.len() >= PEER_V4_LEN => {
                    p += 2 + PEER_V4_LEN;
                }
                Some([b'1', b'8', b':', rest @ ..]) if rest.len() >= PEER_V6_LEN => {
                    p += 3 + PEER_V6_LEN;
                }
                _ => break,
            }
            count += 1;
        }
        // Not a list of compact peers: scan the rest as any list would be.
        self.pos = p;
        while self.peek()? != b'e' {
            self.skip(3)?;
        }
        self.pos += 1;
        Ok(None)
    }
}

/// Checks that `bytes` are exactly one well-formed bencoded value (used for BEP 44 `v`).
pub(crate) fn check_value(bytes: &[u8]) -> Result<()> {
    let mut c = Cursor { buf: bytes, pos: 0 };
    c.skip(0)?;
    if c.pos == bytes.len() {
        Ok(())
    } else {
        err(DecodeErrorKind::TrailingBytes)
    }
}

/// Where the last `a` or `r` dictionary was read (both fill the same role: `y` decides how
/// it is read) and which of the two it was.
#[derive(Clone, Copy)]
struct Args {
    start: usize,
    is_r: bool,
}

/// What the top-level scan has found so far.
struct Scan<'a> {
    c: Cursor<'a>,
    /// `t`, when its last string value is a valid transaction id.
    t: Option<&'a [u8]>,
    /// `t` was present with an invalid value.
    bad_t: bool,
    y: Option<&'a [u8]>,
    q: Option<&'a [u8]>,
    args: Option<Args>,
    query: Option<QueryFields<'a>>,
    response: Option<ResponseFields<'a>>,
    e: Option<ErrorBody<'a>>,
    version: Option<&'a [u8]>,
    ip: Option<&'a [u8]>,
    read_only: bool,
}

impl<'a> Scan<'a> {
    /// Reads the top-level dictionary after its `d`, up to the end of the datagram.
    fn scan(&mut self) -> Result<()> {
        let c = &mut self.c;
        while c.peek()? != b'e' {
            let key = c.bytes()?;
            match key {
                b"t" => match c.bytes_or_skip(1)? {
                    Some(b) => {
                        let ok = !b.is_empty() && b.len() <= TransactionId::MAX_LEN;
                        self.t = ok.then_some(b);
                        self.bad_t = !ok;
                    }
                    None => self.bad_t = true,
                },
                b"y" => match c.bytes_or_skip(1)? {
                    Some(b) => self.y = Some(b),
                    None => return err(DecodeErrorKind::InvalidValue("y")),
                },
                b"q" => match c.bytes_or_skip(1)? {
                    Some(b) => self.q = Some(b),
                    None => return err(DecodeErrorKind::InvalidValue("q")),
                },
                b"a" | b"r" => {
                    let is_r = key == b"r";
                    if c.peek()? != b'd' {
                        c.skip(1)?;
                        return err(DecodeErrorKind::InvalidValue(if is_r { "r" } else { "a" }));
                    }
                    self.args = Some(Args { start: c.pos, is_r });
                    if is_r {
                        c.response_fields(self.response.insert(ResponseFields::default()))?;
                    } else {
                        c.query_fields(self.query.insert(QueryFields::default()))?;
                    }
                }
                b"e" => self.e = Some(error_list(c)?),
                b"v" => {
                    if let Some(b) = c.bytes_or_skip(1)? {
                        self.version = Some(b);
                    }
                }
                b"ip" => {
                    if let Some(b) = c.bytes_or_skip(1)? {
                        self.ip = Some(b);
                    }
                }
                b"ro" => {
                    if let Some(i) = c.int_or_skip(1)? {
                        self.read_only = i != 0;
                    }
                }
                _ => c.skip(1)?,
            }
        }
        c.pos += 1;
        if c.pos != c.buf.len() {
            return err(DecodeErrorKind::TrailingBytes);
        }
        Ok(())
    }

    /// The last `a` or `r` read as query arguments.
    fn query_fields(&mut self) -> Result<Option<&QueryFields<'a>>> {
        let Some(args) = self.args else {
            return Ok(None);
        };
        if args.is_r {
            // `r` in a query: read it again, the way `a` is read.
            let mut c = Cursor {
                buf: self.c.buf,
                pos: args.start,
            };
            c.query_fields(self.query.insert(QueryFields::default()))?;
        }
        Ok(self.query.as_ref())
    }

    /// The last `a` or `r` read as return values.
    fn response_fields(&mut self) -> Result<Option<&ResponseFields<'a>>> {
        let Some(args) = self.args else {
            return Ok(None);
        };
        if !args.is_r {
            // `a` in a response: read it again, the way `r` is read.
            let mut c = Cursor {
                buf: self.c.buf,
                pos: args.start,
            };
            c.response_fields(self.response.insert(ResponseFields::default()))?;
        }
        Ok(self.response.as_ref())
    }
}

/// Decodes one datagram.
///
/// ```
/// let m = xorro_wire::decode(b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe").unwrap();
/// assert!(matches!(m.body, xorro_wire::Body::Query(_)));
/// ```
pub fn decode(buf: &[u8]) -> Result<Message<'_>> {
    if buf.first() != Some(&b'd') {
        return err(DecodeErrorKind::NotADict);
    }
    let mut s = Scan {
        c: Cursor { buf, pos: 1 },
        t: None,
        bad_t: false,
        y: None,
        q: None,
        args: None,
        query: None,
        response: None,
        e: None,
        version: None,
        ip: None,
        read_only: false,
    };
    let scanned = s.scan();
    let from_querier = !matches!(s.y, Some(b"r" | b"e"));
    let t = s.t.and_then(TransactionId::new);
    let with_context = |mut e: DecodeError| {
        e.transaction_id = t;
        e.from_querier = from_querier;
        e
    };
    if let Err(e) = scanned {
        return Err(with_context(e));
    }
    let Some(transaction_id) = t else {
        let kind = if s.bad_t {
            DecodeErrorKind::InvalidValue("t")
        } else {
            DecodeErrorKind::MissingKey("t")
        };
        return Err(with_context(DecodeError::new(kind)));
    };
    let body = match s.y {
        Some(b"q") => {
            let Some(method) = s.q else {
                return Err(with_context(DecodeError::new(DecodeErrorKind::MissingKey(
                    "q",
                ))));
            };
            match s.query_fields() {
                Ok(Some(a)) => query(method, a).map(Body::Query),
                Ok(None) => err(DecodeErrorKind::MissingKey("a")),
                Err(e) => Err(e),
            }
        }
        Some(b"r") => match s.response_fields() {
            Ok(Some(r)) => response(r).map(Body::Response),
            Ok(None) => err(DecodeErrorKind::MissingKey("r")),
            Err(e) => Err(e),
        },
        Some(b"e") => match s.e {
            Some(e) => Ok(Body::Error(e)),
            None => err(DecodeErrorKind::MissingKey("e")),
        },
        Some(_) => err(DecodeErrorKind::UnknownType),
        None => err(DecodeErrorKind::MissingKey("y")),
    };
    match body {
        Ok(body) => Ok(Message {
            transaction_id,
            version: s.version,
            requester_ip: s.ip.and_then(decode_peer),
            read_only: s.read_only,
            body,
        }),
        Err(e) => Err(with_context(e)),
    }
}

/// `e`: `[code, message]`. Tolerates a missing message and extra items.
fn error_list<'a>(c: &mut Cursor<'a>) -> Result<ErrorBody<'a>> {
    if c.peek()? != b'l' {
        c.skip(1)?;
        return err(DecodeErrorKind::InvalidValue("e"));
    }
    c.pos += 1;
    let mut code = None;
    let mut message: &[u8] = b"";
    let mut index = 0;
    while c.peek()? != b'e' {
        match (index, c.val(2)?) {
            (0, Val::Int(i)) => code = Some(i),
            (1, Val::Bytes(b)) => message = b,
            // A code of the wrong type leaves `code` unset: reported once the list is read.
            _ => {}
        }
        index += 1;
    }
    c.pos += 1;
    match code {
        Some(i) => Ok(ErrorBody {
            code: ErrorCode(i),
            message,
        }),
        None => err(DecodeErrorKind::InvalidValue("e")),
    }
}

fn node_id(v: Option<Val<'_>>, key: &'static str) -> Result<NodeId> {
    let b = v
        .ok_or(DecodeError::new(DecodeErrorKind::MissingKey(key)))?
        .bytes(key)?;
    NodeId::from_slice(b).ok_or(DecodeError::new(DecodeErrorKind::InvalidValue(key)))
}

fn opt_node_id(v: Option<Val<'_>>) -> Option<NodeId> {
    match v {
        Some(Val::Bytes(b)) => NodeId::from_slice(b),
        _ => None,
    }
}

fn token(v: Option<Val<'_>>) -> Result<Token> {
    let b = v
        .ok_or(DecodeError::new(DecodeErrorKind::MissingKey("token")))?
        .bytes("token")?;
    Token::new(b).ok_or(DecodeError::new(DecodeErrorKind::InvalidValue("token")))
}

fn flag(v: Option<Val<'_>>, key: &'static str) -> Result<bool> {
    v.map_or(Ok(false), |v| v.flag(key))
}

fn opt_int(v: Option<Val<'_>>, key: &'static str) -> Result<Option<i64>> {
    v.map(|v| v.int(key)).transpose()
}

fn want(v: Option<Val<'_>>) -> Result<Want> {
    let Some(v) = v else {
        return Ok(Want::UNSPECIFIED);
    };
    let Val::List(raw) = v else {
        return err(DecodeErrorKind::InvalidValue("want"));
    };
    let mut c = Cursor { buf: raw, pos: 1 };
    let mut w = Want::UNSPECIFIED;
    while c.peek()? != b'e' {
        match c.val(3)? {
            Val::Bytes(b"n4") => w.v4 = true,
            Val::Bytes(b"n6") => w.v6 = true,
            Val::Bytes(_) => {}
            _ => return err(DecodeErrorKind::InvalidValue("want")),
        }
    }
    Ok(w)
}

fn query<'a>(method: &'a [u8], a: &QueryFields<'a>) -> Result<Query<'a>> {
    let id = node_id(a.id, "id")?;
    let kind = match method {
        b"ping" => QueryKind::Ping,
        b"find_node" => QueryKind::FindNode {
            target: node_id(a.target, "target")?,
            want: want(a.want)?,
        },
        b"get_peers" => QueryKind::GetPeers {
            info_hash: node_id(a.info_hash, "info_hash")?.into(),
            want: want(a.want)?,
            no_seed: flag(a.noseed, "noseed")?,
            scrape: flag(a.scrape, "scrape")?,
        },
        b"announce_peer" => {
            let implied_port = flag(a.implied_port, "implied_port")?;
            let port = match (opt_int(a.port, "port")?, implied_port) {
                (Some(p), _) => u16::try_from(p)
                    .map_err(|_| DecodeError::new(DecodeErrorKind::InvalidValue("port")))?,
                (None, true) => 0,
                (None, false) => return err(DecodeErrorKind::MissingKey("port")),
            };
            QueryKind::AnnouncePeer {
                info_hash: node_id(a.info_hash, "info_hash")?.into(),
                port,
                implied_port,
                token: token(a.token)?,
                seed: flag(a.seed, "seed")?,
            }
        }
        b"get" => QueryKind::Get {
            target: node_id(a.target, "target")?,
            seq: opt_int(a.seq, "seq")?,
            want: want(a.want)?,
        },
        b"put" => QueryKind::Put(put(a)?),
        b"sample_infohashes" => QueryKind::SampleInfohashes {
            target: node_id(a.target, "target")?,
            want: want(a.want)?,
        },
        _ => {
            let target = opt_node_id(a.target);
            let info_hash = opt_node_id(a.info_hash).map(InfoHash::from);
            if target.is_none() && info_hash.is_none() {
                return err(DecodeErrorKind::UnknownMethod);
            }
            QueryKind::Unknown {
                method,
                target,
                info_hash,
                want: want(a.want).unwrap_or_default(),
            }
        }
    };
    Ok(Query { id, kind })
}

fn put<'a>(a: &QueryFields<'a>) -> Result<PutQuery<'a>> {
    let token = token(a.token)?;
    let value =
        RawValue::from_checked(a.v.ok_or(DecodeError::new(DecodeErrorKind::MissingKey("v")))?);
    let mutable = match a.k {
        None => None,
        Some(k) => {
            let key = PublicKey(fixed(k, "k")?);
            let sig = a
                .sig
                .ok_or(DecodeError::new(DecodeErrorKind::MissingKey("sig")))?;
            let seq = opt_int(a.seq, "seq")?
                .ok_or(DecodeError::new(DecodeErrorKind::MissingKey("seq")))?;
            let salt = a.salt.map(|s| s.bytes("salt")).transpose()?;
            Some(MutablePut {
                key,
                signature: Signature(fixed(sig, "sig")?),
                seq,
                salt,
                cas: opt_int(a.cas, "cas")?,
            })
        }
    };
    Ok(PutQuery {
        token,
        value,
        mutable,
    })
}

fn fixed<const N: usize>(v: Val<'_>, key: &'static str) -> Result<[u8; N]> {
    <[u8; N]>::try_from(v.bytes(key)?)
        .map_err(|_| DecodeError::new(DecodeErrorKind::InvalidValue(key)))
}

/// The return values, or the first error in the order: `samples`, `interval`, `id`, then
/// the other keys as they appear in [`Response`].
#[inline(always)]
fn response<'a>(r: &ResponseFields<'a>) -> Result<Response<'a>> {
    let Some(id) = r.id else {
        return Err(response_error(
            r.invalid | bit::ID,
            r.invalid & bit::ID == 0,
        ));
    };
    if r.invalid != 0 {
        return Err(response_error(r.invalid, false));
    }
    Ok(Response {
        id: NodeId(*id),
        nodes: r.nodes,
        nodes6: r.nodes6,
        token: r.token.and_then(Token::new),
        values: r.values,
        seeds_bloom: r.seeds_bloom,
        peers_bloom: r.peers_bloom,
        value: r.value.map(RawValue::from_checked),
        key: r.key.map(|k| PublicKey(*k)),
        signature: r.signature.map(|s| Signature(*s)),
        seq: r.seq,
        samples: r.samples,
        num: r.num,
        interval: r.interval.map(Duration::from_secs),
    })
}

/// The error for the lowest bit of `invalid`; `missing_id` when the `id` bit stands for an
/// absent key rather than a bad value.
#[cold]
fn response_error(invalid: u16, missing_id: bool) -> DecodeError {
    let first = invalid.trailing_zeros() as usize;
    if missing_id && 1 << first == bit::ID {
        return DecodeError::new(DecodeErrorKind::MissingKey("id"));
    }
    let key = bit::NAMES.get(first).copied().unwrap_or("r");
    DecodeError::new(DecodeErrorKind::InvalidValue(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(bytes: &[u8]) -> DecodeErrorKind {
        decode(bytes).unwrap_err().kind
    }

    #[test]
    fn bep5_ping_query() {
        let m = decode(b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe").unwrap();
        assert_eq!(m.transaction_id.as_bytes(), b"aa");
        let Body::Query(q) = m.body else {
            panic!("not a query")
        };
        assert_eq!(q.id.as_bytes(), b"abcdefghij0123456789");
        assert_eq!(q.kind, QueryKind::Ping);
    }

    #[test]
    fn errors_carry_reply() {
        // 203 with the transaction id when it could be read.
        let e = decode(b"d1:ad2:id3:abce1:q4:ping1:t2:aa1:y1:qe").unwrap_err();
        assert_eq!(e.kind, DecodeErrorKind::InvalidValue("id"));
        assert_eq!(
            e.reply(),
            Some((TransactionId::new(b"aa").unwrap(), ErrorCode::PROTOCOL))
        );
        // 204 for an unknown method without a target.
        let e = decode(b"d1:ad2:id20:abcdefghij0123456789e1:q3:foo1:t2:aa1:y1:qe").unwrap_err();
        assert_eq!(e.reply().map(|r| r.1), Some(ErrorCode::METHOD_UNKNOWN));
        // Responses are never answered.
        let e = decode(b"d1:rd2:id3:abce1:t2:aa1:y1:re").unwrap_err();
        assert_eq!(e.reply(), None);
        // No transaction id: drop.
        assert_eq!(decode(b"d1:y1:qe").unwrap_err().reply(), None);
        assert_eq!(kind(b""), DecodeErrorKind::NotADict);
        assert_eq!(kind(b"d1:t2:aa1:y1:qee"), DecodeErrorKind::TrailingBytes);
        assert!(matches!(kind(b"d1:t99:aa"), DecodeErrorKind::Syntax(_)));
    }

    #[test]
    fn depth_is_bounded() {
        let mut deep = b"d1:t2:aa1:y1:q1:xl".to_vec();
        deep.extend(std::iter::repeat_n(b'l', 10_000));
        deep.extend(std::iter::repeat_n(b'e', 10_001));
        deep.push(b'e');
        assert_eq!(kind(&deep), DecodeErrorKind::TooDeep);
    }

    #[test]
    fn huge_lengths_and_ints_do_not_overflow() {
        assert!(matches!(
            kind(b"d1:t99999999999999999999999:aae"),
            DecodeErrorKind::Syntax(_)
        ));
        let m = b"d1:ad2:id20:abcdefghij01234567894:porti99999999999999999999e5:token1:x9:info_hash20:abcdefghij0123456789e1:q13:announce_peer1:t2:aa1:y1:qe";
        assert_eq!(kind(m), DecodeErrorKind::InvalidValue("port"));
    }
}
