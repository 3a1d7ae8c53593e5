//! Bounded, zero-copy decoding of KRPC datagrams.
//!
//! The decoder is hand-written for speed (see `docs/BENCHMARKS.md`) and for hostile input:
//! it never panics, never allocates (every string in a [`Message`] borrows the datagram),
//! limits nesting to [`MAX_DEPTH`], ignores keys it does not know, and tolerates what real
//! clients send (unsorted keys, `v` of any type). Errors say what a server should answer:
//! [`DecodeError::reply`].

use std::time::Duration;

use crate::bytes::{Token, TokenRef, TransactionId};
use crate::compact::{CompactAddr, Family, Nodes, PEER_V4_LEN, PEER_V6_LEN, Peers, Samples};
use crate::id::{ID_LEN, InfoHash, NodeId};
use crate::message::{
    Body, ErrorBody, ErrorCode, Message, MutablePut, PutQuery, Query, QueryKind, RawValue,
    Response, Want,
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

/// The keys of `r`, read straight into the [`Response`] they make (all but `id`, which
/// must be present). A key whose (last) value has the wrong type or length sets its bit in
/// `invalid`: the error is reported only once the whole datagram has been read and `y` says
/// this is a response, lowest bit first.
struct ResponseFields<'a> {
    invalid: u16,
    id: Option<&'a [u8; ID_LEN]>,
    /// Every key but `id`.
    r: Response<'a>,
}

impl Default for ResponseFields<'_> {
    #[inline(always)]
    fn default() -> Self {
        ResponseFields {
            invalid: 0,
            id: None,
            r: Response::new(NodeId::ZERO),
        }
    }
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

/// A position in a datagram: what is left to read (`rest`) and the whole (`buf`), for error
/// offsets and spans.
struct Cursor<'a> {
    buf: &'a [u8],
    rest: &'a [u8],
}

/// Three bytes as the low bytes of a little-endian word.
const fn word3(k: &[u8; 3]) -> u32 {
    u32::from_le_bytes([k[0], k[1], k[2], 0])
}

/// Seven bytes as the low bytes of a little-endian word.
const fn word7(k: &[u8; 7]) -> u64 {
    u64::from_le_bytes([k[0], k[1], k[2], k[3], k[4], k[5], k[6], 0])
}

/// A top-level key.
#[derive(Clone, Copy)]
enum TopKey {
    T,
    Y,
    Q,
    A,
    R,
    E,
    V,
    Ip,
    Ro,
    Other,
}

/// A key of `r`.
#[derive(Clone, Copy)]
enum ResponseKey {
    Id,
    Nodes,
    Nodes6,
    Token,
    Values,
    SeedsBloom,
    PeersBloom,
    V,
    K,
    Sig,
    Seq,
    Samples,
    Num,
    Interval,
    Other,
}

// The hot methods are `#[inline(always)]` and keep the cursor in registers; whatever runs
// out of line (skipping, integers, long or malformed strings) runs on a copy of the cursor
// (`detached`), so that the caller's cursor never has its address taken.
impl<'a> Cursor<'a> {
    /// At offset `pos` of `buf`.
    fn at(buf: &'a [u8], pos: usize) -> Self {
        Cursor {
            buf,
            rest: buf.get(pos..).unwrap_or_default(),
        }
    }

    /// Moves past `prefix` if the rest starts with it.
    #[inline(always)]
    fn eat<const N: usize>(&mut self, prefix: &[u8; N]) -> bool {
        match self.rest.split_first_chunk::<N>() {
            Some((head, tail)) if head == prefix => {
                self.rest = tail;
                true
            }
            _ => false,
        }
    }

    /// The offset in the datagram.
    #[inline(always)]
    fn pos(&self) -> usize {
        self.buf.len() - self.rest.len()
    }

    /// Moves `n` bytes on (to the end if fewer are left).
    #[inline(always)]
    fn advance(&mut self, n: usize) {
        self.rest = self.rest.get(n..).unwrap_or_default();
    }

    #[inline(always)]
    fn peek(&self) -> Result<u8> {
        match self.rest.first() {
            Some(&b) => Ok(b),
            None => self.syntax(),
        }
    }

    #[cold]
    #[inline(never)]
    fn syntax<T>(&self) -> Result<T> {
        err(DecodeErrorKind::Syntax(self.pos()))
    }

    /// Runs `f` on a copy of the cursor and moves to where the copy ended.
    #[inline(always)]
    fn detached<T>(&mut self, f: impl FnOnce(&mut Cursor<'a>) -> Result<T>) -> Result<T> {
        let mut c = Cursor {
            buf: self.buf,
            rest: self.rest,
        };
        let out = f(&mut c);
        self.rest = c.rest;
        out
    }

    /// `<len>:<bytes>` when the length has one to three digits and the bytes are all there;
    /// `None` (the cursor unmoved) for anything else: longer, truncated or malformed.
    #[inline(always)]
    fn bytes_fast(&mut self) -> Option<&'a [u8]> {
        let digit = |c: u8| c.wrapping_sub(b'0') < 10;
        let value = |c: u8| usize::from(c.wrapping_sub(b'0'));
        let (len, tail) = match *self.rest {
            [a, b':', ref tail @ ..] if digit(a) => (value(a), tail),
            [a, b, b':', ref tail @ ..] if digit(a) && digit(b) => (value(a) * 10 + value(b), tail),
            [a, b, c, b':', ref tail @ ..] if digit(a) && digit(b) && digit(c) => {
                (value(a) * 100 + value(b) * 10 + value(c), tail)
            }
            _ => return None,
        };
        let (out, tail) = tail.split_at_checked(len)?;
        self.rest = tail;
        Some(out)
    }

    /// `<len>:<bytes>`.
    #[inline(always)]
    fn bytes(&mut self) -> Result<&'a [u8]> {
        match self.bytes_fast() {
            Some(out) => Ok(out),
            None => self.detached(Cursor::bytes_slow),
        }
    }

    #[cold]
    #[inline(never)]
    fn bytes_slow(&mut self) -> Result<&'a [u8]> {
        let buf = self.buf;
        let mut pos = self.pos();
        let start = pos;
        let mut len: usize = 0;
        let fail = |pos| err(DecodeErrorKind::Syntax(pos));
        loop {
            let Some(&c) = buf.get(pos) else {
                return fail(pos);
            };
            match c {
                b'0'..=b'9' => {
                    len = match len
                        .checked_mul(10)
                        .and_then(|l| l.checked_add(usize::from(c - b'0')))
                    {
                        Some(l) if l <= buf.len() => l,
                        _ => return fail(pos),
                    };
                    pos += 1;
                }
                b':' if pos > start => {
                    pos += 1;
                    break;
                }
                _ => return fail(pos),
            }
        }
        let end = match pos.checked_add(len) {
            Some(e) if e <= buf.len() => e,
            _ => return fail(pos),
        };
        match (buf.get(pos..end), buf.get(end..)) {
            (Some(out), Some(rest)) => {
                self.rest = rest;
                Ok(out)
            }
            _ => fail(pos),
        }
    }

    /// `i<int>e`; `Ok(None)` for a well-formed integer that does not fit i64.
    #[inline(always)]
    fn int(&mut self) -> Result<Option<i64>> {
        self.detached(Cursor::int_value)
    }

    #[inline(never)]
    fn int_value(&mut self) -> Result<Option<i64>> {
        if self.peek()? != b'i' {
            return self.syntax();
        }
        self.advance(1);
        let negative = self.peek()? == b'-';
        if negative {
            self.advance(1);
        }
        let start = self.rest.len();
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
                    self.advance(1);
                }
                b'e' if self.rest.len() < start => {
                    self.advance(1);
                    return Ok(value);
                }
                _ => return self.syntax(),
            }
        }
    }

    /// Skips one value of any type, nesting at most `MAX_DEPTH - depth` more levels.
    #[inline(always)]
    fn skip(&mut self, depth: usize) -> Result<()> {
        self.detached(|c| c.skip_value(depth))
    }

    #[inline(never)]
    fn skip_value(&mut self, depth: usize) -> Result<()> {
        match self.peek()? {
            b'0'..=b'9' => self.bytes().map(drop),
            b'i' => self.int().map(drop),
            c @ (b'l' | b'd') => {
                if depth >= MAX_DEPTH {
                    return err(DecodeErrorKind::TooDeep);
                }
                self.advance(1);
                while self.peek()? != b'e' {
                    if c == b'd' {
                        self.bytes()?;
                    }
                    self.skip_value(depth + 1)?;
                }
                self.advance(1);
                Ok(())
            }
            _ => self.syntax(),
        }
    }

    /// Skips one value at `depth` and returns its encoding.
    #[inline(always)]
    fn span(&mut self, depth: usize) -> Result<&'a [u8]> {
        let start = self.pos();
        self.skip(depth)?;
        match self.buf.get(start..self.pos()) {
            Some(s) => Ok(s),
            None => self.syntax(),
        }
    }

    /// A string at `depth`, or `None` (skipped) for a value of another type.
    #[inline(always)]
    fn bytes_or_skip(&mut self, depth: usize) -> Result<Option<&'a [u8]>> {
        match self.bytes_fast() {
            Some(out) => Ok(Some(out)),
            None => self.detached(|c| c.bytes_or_skip_slow(depth)),
        }
    }

    #[inline(never)]
    fn bytes_or_skip_slow(&mut self, depth: usize) -> Result<Option<&'a [u8]>> {
        if self.peek()?.is_ascii_digit() {
            self.bytes_slow().map(Some)
        } else {
            self.skip_value(depth).map(|()| None)
        }
    }

    /// A 20-byte string at depth 2 (`20:` is read here), or `None` (skipped) for any other
    /// value.
    #[inline(always)]
    fn id_or_skip(&mut self) -> Result<Option<&'a [u8; ID_LEN]>> {
        if let [b'2', b'0', b':', ref rest @ ..] = *self.rest
            && let Some((id, rest)) = rest.split_first_chunk::<ID_LEN>()
        {
            self.rest = rest;
            return Ok(Some(id));
        }
        Ok(self.bytes_or_skip(2)?.and_then(|b| b.try_into().ok()))
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
    #[inline(always)]
    fn val(&mut self, depth: usize) -> Result<Val<'a>> {
        let start = self.pos();
        Ok(match self.peek()? {
            b'0'..=b'9' => Val::Bytes(self.bytes()?),
            b'i' => self.int()?.map_or(Val::BigInt, Val::Int),
            b'l' => {
                self.skip(depth)?;
                match self.buf.get(start..self.pos()) {
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

    /// A key of the top-level dictionary. The common ones are recognized with their length
    /// prefix in one step.
    #[inline(always)]
    fn top_key(&mut self) -> Result<TopKey> {
        if let Some(w) = self.rest.first_chunk::<4>() {
            // Compared as little-endian words: `1:t` and the first byte of its value, ...
            const MASK3: u32 = 0x00ff_ffff;
            const T: u32 = word3(b"1:t");
            const Y: u32 = word3(b"1:y");
            const R: u32 = word3(b"1:r");
            const A: u32 = word3(b"1:a");
            const Q: u32 = word3(b"1:q");
            const V: u32 = word3(b"1:v");
            const IP: u32 = u32::from_le_bytes(*b"2:ip");
            let w = u32::from_le_bytes(*w);
            let known = match w & MASK3 {
                T => Some((TopKey::T, 3)),
                Y => Some((TopKey::Y, 3)),
                R => Some((TopKey::R, 3)),
                A => Some((TopKey::A, 3)),
                Q => Some((TopKey::Q, 3)),
                V => Some((TopKey::V, 3)),
                _ if w == IP => Some((TopKey::Ip, 4)),
                _ => None,
            };
            if let Some((key, n)) = known {
                self.advance(n);
                return Ok(key);
            }
        }
        Ok(match self.bytes()? {
            b"t" => TopKey::T,
            b"y" => TopKey::Y,
            b"q" => TopKey::Q,
            b"a" => TopKey::A,
            b"r" => TopKey::R,
            b"e" => TopKey::E,
            b"v" => TopKey::V,
            b"ip" => TopKey::Ip,
            b"ro" => TopKey::Ro,
            _ => TopKey::Other,
        })
    }

    /// A key of `r`. The common ones are recognized with their length prefix in one step.
    #[inline(always)]
    fn response_key(&mut self) -> Result<ResponseKey> {
        if let Some(w) = self.rest.first_chunk::<8>() {
            // Compared as little-endian words, as in `top_key`.
            const MASK4: u64 = 0xffff_ffff;
            const MASK7: u64 = 0x00ff_ffff_ffff_ffff;
            const ID: u64 = u32::from_le_bytes(*b"2:id") as u64;
            const NODES: u64 = word7(b"5:nodes");
            const TOKEN: u64 = word7(b"5:token");
            const NODES6: u64 = u64::from_le_bytes(*b"6:nodes6");
            const VALUES: u64 = u64::from_le_bytes(*b"6:values");
            let w = u64::from_le_bytes(*w);
            let known = match w & MASK7 {
                NODES => Some((ResponseKey::Nodes, 7)),
                TOKEN => Some((ResponseKey::Token, 7)),
                _ if w & MASK4 == ID => Some((ResponseKey::Id, 4)),
                _ if w == NODES6 => Some((ResponseKey::Nodes6, 8)),
                _ if w == VALUES => Some((ResponseKey::Values, 8)),
                _ => None,
            };
            if let Some((key, n)) = known {
                self.advance(n);
                return Ok(key);
            }
        }
        Ok(match self.bytes()? {
            b"id" => ResponseKey::Id,
            b"nodes" => ResponseKey::Nodes,
            b"nodes6" => ResponseKey::Nodes6,
            b"token" => ResponseKey::Token,
            b"values" => ResponseKey::Values,
            b"BFsd" => ResponseKey::SeedsBloom,
            b"BFpe" => ResponseKey::PeersBloom,
            b"v" => ResponseKey::V,
            b"k" => ResponseKey::K,
            b"sig" => ResponseKey::Sig,
            b"seq" => ResponseKey::Seq,
            b"samples" => ResponseKey::Samples,
            b"num" => ResponseKey::Num,
            b"interval" => ResponseKey::Interval,
            _ => ResponseKey::Other,
        })
    }

    /// `key` (with its length prefix) followed by a 20-byte string, read in one step; `None`
    /// (the cursor unmoved) for anything else.
    #[inline(always)]
    fn keyed_id(&mut self, key: &[u8]) -> Option<&'a [u8]> {
        let rest = self.rest.strip_prefix(key)?.strip_prefix(b"20:")?;
        let (id, rest) = rest.split_at_checked(ID_LEN)?;
        self.rest = rest;
        Some(id)
    }

    /// Scans the `a` dictionary (the cursor is on its `d`) at depth 1.
    #[inline(never)]
    fn query_fields(&mut self, f: &mut QueryFields<'a>) -> Result<()> {
        self.advance(1);
        while self.peek()? != b'e' {
            // The key every query has, and those of find_node, get and get_peers, with their
            // usual 20-byte values, in one step each.
            if let Some(id) = self.keyed_id(b"2:id") {
                f.id = Some(Val::Bytes(id));
                continue;
            }
            if let Some(target) = self.keyed_id(b"6:target") {
                f.target = Some(Val::Bytes(target));
                continue;
            }
            if let Some(info_hash) = self.keyed_id(b"9:info_hash") {
                f.info_hash = Some(Val::Bytes(info_hash));
                continue;
            }
            let key = self.bytes()?;
            if key == b"v" {
                f.v = Some(self.span(2)?);
                continue;
            }
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
                _ => {
                    self.skip(2)?;
                    continue;
                }
            };
            *slot = Some(self.val(2)?);
        }
        self.advance(1);
        Ok(())
    }

    /// Scans the `r` dictionary (the cursor is on its `d`) at depth 1, typing each key.
    #[inline(always)]
    fn response_fields(&mut self, f: &mut ResponseFields<'a>) -> Result<()> {
        self.advance(1);
        while self.peek()? != b'e' {
            match self.response_key()? {
                ResponseKey::Id => {
                    let v = self.id_or_skip()?;
                    f.id = f.check(bit::ID, v);
                }
                ResponseKey::Nodes => {
                    let v = self.bytes_or_skip(2)?;
                    let v = v.and_then(|b| Nodes::from_compact(b, Family::V4));
                    f.r.nodes = f.check(bit::NODES, v);
                }
                ResponseKey::Nodes6 => {
                    let v = self.bytes_or_skip(2)?;
                    let v = v.and_then(|b| Nodes::from_compact(b, Family::V6));
                    f.r.nodes6 = f.check(bit::NODES6, v);
                }
                ResponseKey::Token => {
                    let v = self.bytes_or_skip(2)?;
                    let v = v.filter(|b| !b.is_empty() && b.len() <= Token::MAX_LEN);
                    f.r.token = f.check(bit::TOKEN, v.map(TokenRef::from_checked));
                }
                ResponseKey::Values => {
                    let v = self.detached(Cursor::peers)?;
                    f.r.values = f.check(bit::VALUES, v);
                }
                ResponseKey::SeedsBloom => {
                    let v = self.bytes_or_skip(2)?.and_then(|b| b.try_into().ok());
                    f.r.seeds_bloom = f.check(bit::BF_SEEDS, v);
                }
                ResponseKey::PeersBloom => {
                    let v = self.bytes_or_skip(2)?.and_then(|b| b.try_into().ok());
                    f.r.peers_bloom = f.check(bit::BF_PEERS, v);
                }
                ResponseKey::V => f.r.value = Some(RawValue::from_checked(self.span(2)?)),
                ResponseKey::K => {
                    let v = self.bytes_or_skip(2)?.and_then(|b| b.try_into().ok());
                    f.r.key = f.check(bit::K, v);
                }
                ResponseKey::Sig => {
                    let v = self.bytes_or_skip(2)?.and_then(|b| b.try_into().ok());
                    f.r.signature = f.check(bit::SIG, v);
                }
                ResponseKey::Seq => {
                    let v = self.int_or_skip(2)?;
                    f.r.seq = f.check(bit::SEQ, v);
                }
                ResponseKey::Samples => {
                    let v = self.bytes_or_skip(2)?.and_then(Samples::from_compact);
                    f.r.samples = f.check(bit::SAMPLES, v);
                }
                ResponseKey::Num => {
                    let v = self.int_or_skip(2)?.and_then(|i| u64::try_from(i).ok());
                    f.r.num = f.check(bit::NUM, v);
                }
                ResponseKey::Interval => {
                    let v = self.int_or_skip(2)?.and_then(|i| u64::try_from(i).ok());
                    f.r.interval = f.check(bit::INTERVAL, v.map(Duration::from_secs));
                }
                ResponseKey::Other => self.skip(2)?,
            }
        }
        self.advance(1);
        Ok(())
    }

    /// `values` at depth 2: a list of 6- or 18-byte strings written `6:` / `18:` (no leading
    /// zeros), or `None` for any other value (skipped).
    #[inline(never)]
    fn peers(&mut self) -> Result<Option<Peers<'a>>> {
        if self.peek()? != b'l' {
            return self.skip_value(2).map(|()| None);
        }
        self.advance(1);
        let items = self.rest;
        let mut rest = items;
        let mut count = 0;
        loop {
            // The common case: a run of IPv4 peers.
            while let Some((item, tail)) = rest.split_first_chunk::<{ 2 + PEER_V4_LEN }>()
                && item[..2] == *b"6:"
            {
                rest = tail;
                count += 1;
            }
            match *rest {
                [b'e', ref tail @ ..] => {
                    self.rest = tail;
                    let len = items.len() - rest.len();
                    return Ok(items
                        .get(..len)
                        .map(|items| Peers::from_bencoded(items, count)));
                }
                [b'1', b'8', b':', ref tail @ ..] if tail.len() >= PEER_V6_LEN => {
                    rest = tail.get(PEER_V6_LEN..).unwrap_or_default();
                    count += 1;
                }
                _ => break,
            }
        }
        // Not a list of compact peers: scan the rest as any list would be.
        self.rest = rest;
        while self.peek()? != b'e' {
            self.skip_value(3)?;
        }
        self.advance(1);
        Ok(None)
    }
}

/// Checks that `bytes` are exactly one well-formed bencoded value (used for BEP 44 `v`).
pub(crate) fn check_value(bytes: &[u8]) -> Result<()> {
    let mut c = Cursor::at(bytes, 0);
    c.skip_value(0)?;
    if c.rest.is_empty() {
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

/// Adds what is known of the datagram to an error: `t` and whether it came from a querier
/// (from `y`).
#[cold]
#[inline(never)]
fn with_context(mut e: DecodeError, t: Option<&[u8]>, y: Option<&[u8]>) -> DecodeError {
    e.transaction_id = t.and_then(TransactionId::new);
    e.from_querier = !matches!(y, Some(b"r" | b"e"));
    e
}

impl<'a> Scan<'a> {
    /// Reads the top-level dictionary after its `d`, up to the end of the datagram.
    #[inline(always)]
    fn scan(&mut self, c: &mut Cursor<'a>) -> Result<()> {
        while c.peek()? != b'e' {
            match c.top_key()? {
                TopKey::T => match c.bytes_or_skip(1)? {
                    Some(b) => {
                        let ok = !b.is_empty() && b.len() <= TransactionId::MAX_LEN;
                        self.t = ok.then_some(b);
                        self.bad_t = !ok;
                    }
                    None => self.bad_t = true,
                },
                TopKey::Y => match c.bytes_or_skip(1)? {
                    Some(b) => self.y = Some(b),
                    None => return err(DecodeErrorKind::InvalidValue("y")),
                },
                TopKey::Q => match c.bytes_or_skip(1)? {
                    Some(b) => self.q = Some(b),
                    None => return err(DecodeErrorKind::InvalidValue("q")),
                },
                key @ (TopKey::A | TopKey::R) => {
                    let is_r = matches!(key, TopKey::R);
                    if c.peek()? != b'd' {
                        c.skip(1)?;
                        return err(DecodeErrorKind::InvalidValue(if is_r { "r" } else { "a" }));
                    }
                    self.args = Some(Args {
                        start: c.pos(),
                        is_r,
                    });
                    if is_r {
                        c.response_fields(self.response.insert(ResponseFields::default()))?;
                    } else {
                        let f = self.query.insert(QueryFields::default());
                        c.detached(|c| c.query_fields(f))?;
                    }
                }
                TopKey::E => self.e = Some(c.detached(error_list)?),
                TopKey::V => {
                    if let Some(b) = c.bytes_or_skip(1)? {
                        self.version = Some(b);
                    }
                }
                TopKey::Ip => {
                    if let Some(b) = c.bytes_or_skip(1)? {
                        self.ip = Some(b);
                    }
                }
                TopKey::Ro => {
                    if let Some(i) = c.int_or_skip(1)? {
                        self.read_only = i != 0;
                    }
                }
                TopKey::Other => c.skip(1)?,
            }
        }
        c.advance(1);
        if !c.rest.is_empty() {
            return err(DecodeErrorKind::TrailingBytes);
        }
        Ok(())
    }

    /// The last `a` or `r` read as query arguments.
    #[inline(always)]
    fn query_fields(&mut self, buf: &'a [u8]) -> Result<Option<&QueryFields<'a>>> {
        let Some(args) = self.args else {
            return Ok(None);
        };
        if args.is_r {
            // `r` in a query: read it again, the way `a` is read.
            let mut c = Cursor::at(buf, args.start);
            c.query_fields(self.query.insert(QueryFields::default()))?;
        }
        Ok(self.query.as_ref())
    }

    /// The last `a` or `r` read as return values.
    #[inline(always)]
    fn response_fields(&mut self, buf: &'a [u8]) -> Result<Option<&ResponseFields<'a>>> {
        let Some(args) = self.args else {
            return Ok(None);
        };
        if !args.is_r {
            // `a` in a response: read it again, the way `r` is read.
            let mut f = ResponseFields::default();
            reread_response(buf, args.start, &mut f)?;
            self.response = Some(f);
        }
        Ok(self.response.as_ref())
    }
}

/// Reads the dictionary at `start` as `r`.
#[cold]
#[inline(never)]
fn reread_response<'a>(buf: &'a [u8], start: usize, f: &mut ResponseFields<'a>) -> Result<()> {
    Cursor::at(buf, start).response_fields(f)
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
    decode_canonical_or(buf, decode_any)
}

/// The fast path of [`decode`], for the datagram a node receives most: a response with its
/// keys in canonical (sorted) order, `r` holding only `id` and any of `nodes`, `nodes6`,
/// `p` (libtorrent), `token` and `values`, every value well-formed and every length written in at most three
/// digits. Anything else is left to `or` ([`decode_any`]) as soon as it is seen; when the
/// fast path returns a message, it is the one [`decode_any`] returns (checked by the tests
/// below). The message is built where it is returned: an `Option` returned first and then
/// turned into a `Result` would be copied once more.
#[inline(always)]
fn decode_canonical_or<'a>(
    buf: &'a [u8],
    or: impl FnOnce(&'a [u8]) -> Result<Message<'a>>,
) -> Result<Message<'a>> {
    macro_rules! need {
        ($e:expr) => {
            match $e {
                Some(v) => v,
                None => return or(buf),
            }
        };
    }

    let mut c = Cursor::at(buf, 1);
    let requester_ip = if c.eat(b"2:ip") {
        CompactAddr::from_compact(need!(c.bytes_fast()))
    } else {
        None
    };
    if !c.eat(b"1:rd2:id20:") {
        return or(buf);
    }
    let (id, rest) = need!(c.rest.split_first_chunk::<ID_LEN>());
    c.rest = rest;
    let nodes = if c.eat(b"5:nodes") {
        Some(need!(Nodes::from_compact(
            need!(c.bytes_fast()),
            Family::V4
        )))
    } else {
        None
    };
    // The common order first: `r` ends after `nodes`, `t` follows it.
    let (mut nodes6, mut token, mut values) = (None, None, None);
    if !c.eat(b"e") {
        if c.eat(b"6:nodes6") {
            nodes6 = Some(need!(Nodes::from_compact(
                need!(c.bytes_fast()),
                Family::V6
            )));
        }
        // libtorrent's `p` (the port it saw the query come from), which `r` does not keep:
        // a non-negative integer, skipped.
        if c.eat(b"1:pi") {
            let digits = c.rest.iter().take_while(|b| b.is_ascii_digit()).count();
            if digits == 0 {
                return or(buf);
            }
            c.advance(digits);
            if !c.eat(b"e") {
                return or(buf);
            }
        }
        if c.eat(b"5:token") {
            let b = need!(c.bytes_fast());
            if b.is_empty() || b.len() > Token::MAX_LEN {
                return or(buf);
            }
            token = Some(TokenRef::from_checked(b));
        }
        if c.eat(b"6:values") {
            values = Some(need!(c.detached(Cursor::peers).ok().flatten()));
        }
        if !c.eat(b"e") {
            return or(buf);
        }
    }
    let mut read_only = false;
    if !c.eat(b"1:t") {
        if !c.eat(b"2:ro") {
            return or(buf);
        }
        read_only = if c.eat(b"i0e") {
            false
        } else if c.eat(b"i1e") {
            true
        } else {
            return or(buf);
        };
        if !c.eat(b"1:t") {
            return or(buf);
        }
    }
    let t = need!(c.bytes_fast());
    if t.is_empty() || t.len() > TransactionId::MAX_LEN {
        return or(buf);
    }
    let version = if c.eat(b"1:v") {
        Some(need!(c.bytes_fast()))
    } else {
        None
    };
    if !c.eat(b"1:y1:re") || !c.rest.is_empty() {
        return or(buf);
    }
    Ok(Message {
        transaction_id: TransactionId::from_checked(t),
        version,
        requester_ip,
        read_only,
        body: Body::Response(Response {
            nodes,
            nodes6,
            token,
            values,
            ..Response::new(NodeId(*id))
        }),
    })
}

/// [`decode`] of any datagram (after its first byte was checked to be `d`).
#[inline(never)]
fn decode_any(buf: &[u8]) -> Result<Message<'_>> {
    let mut c = Cursor::at(buf, 1);
    let mut s = Scan {
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
    if let Err(e) = s.scan(&mut c) {
        return Err(with_context(e, s.t, s.y));
    }
    let (t, y) = (s.t, s.y);
    let fail = |kind| Err(with_context(DecodeError::new(kind), t, y));
    let Some(t_bytes) = t else {
        return fail(if s.bad_t {
            DecodeErrorKind::InvalidValue("t")
        } else {
            DecodeErrorKind::MissingKey("t")
        });
    };
    // Built in each arm, where it is used.
    let (version, ip, read_only) = (s.version, s.ip, s.read_only);
    let head = || Head {
        transaction_id: TransactionId::from_checked(t_bytes),
        version,
        requester_ip: ip.and_then(CompactAddr::from_compact),
        read_only,
    };
    // Each arm builds the whole message where it is returned (no large moves).
    match y {
        Some(b"r") => {
            let r = match s.response_fields(buf) {
                Ok(Some(r)) => r,
                Ok(None) => return fail(DecodeErrorKind::MissingKey("r")),
                Err(e) => return Err(with_context(e, t, y)),
            };
            if let Some(e) = response_error(r) {
                return Err(with_context(e, t, y));
            }
            let id = NodeId(r.id.copied().unwrap_or_default());
            Ok(head().message(Body::Response(response(r, id))))
        }
        Some(b"q") => {
            let Some(method) = s.q else {
                return fail(DecodeErrorKind::MissingKey("q"));
            };
            match s.query_fields(buf) {
                Ok(Some(a)) => match query_message(method, a, head()) {
                    Ok(m) => Ok(m),
                    Err(e) => Err(with_context(e, t, y)),
                },
                Ok(None) => fail(DecodeErrorKind::MissingKey("a")),
                Err(e) => Err(with_context(e, t, y)),
            }
        }
        Some(b"e") => match s.e {
            Some(e) => Ok(head().message(Body::Error(e))),
            None => fail(DecodeErrorKind::MissingKey("e")),
        },
        Some(_) => fail(DecodeErrorKind::UnknownType),
        None => fail(DecodeErrorKind::MissingKey("y")),
    }
}

/// The top-level keys other than `y` and the body.
struct Head<'a> {
    transaction_id: TransactionId,
    version: Option<&'a [u8]>,
    requester_ip: Option<CompactAddr>,
    read_only: bool,
}

impl<'a> Head<'a> {
    #[inline(always)]
    fn message(self, body: Body<'a>) -> Message<'a> {
        Message {
            transaction_id: self.transaction_id,
            version: self.version,
            requester_ip: self.requester_ip,
            read_only: self.read_only,
            body,
        }
    }
}

/// `e`: `[code, message]`. Tolerates a missing message and extra items.
fn error_list<'a>(c: &mut Cursor<'a>) -> Result<ErrorBody<'a>> {
    if c.peek()? != b'l' {
        c.skip(1)?;
        return err(DecodeErrorKind::InvalidValue("e"));
    }
    c.advance(1);
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
    c.advance(1);
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

fn token<'a>(v: Option<Val<'a>>) -> Result<TokenRef<'a>> {
    let b = v
        .ok_or(DecodeError::new(DecodeErrorKind::MissingKey("token")))?
        .bytes("token")?;
    TokenRef::new(b).ok_or(DecodeError::new(DecodeErrorKind::InvalidValue("token")))
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
    let mut c = Cursor::at(raw, 1);
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

fn query_message<'a>(method: &'a [u8], a: &QueryFields<'a>, head: Head<'a>) -> Result<Message<'a>> {
    let id = node_id(a.id, "id")?;
    // Each arm returns the whole message (no copy of a `QueryKind` built for any method).
    macro_rules! message {
        ($kind:expr) => {
            return Ok(head.message(Body::Query(Query { id, kind: $kind })))
        };
    }
    match method {
        b"ping" => message!(QueryKind::Ping),
        b"find_node" => message!(QueryKind::FindNode {
            target: node_id(a.target, "target")?,
            want: want(a.want)?,
        }),
        b"get_peers" => message!(QueryKind::GetPeers {
            info_hash: node_id(a.info_hash, "info_hash")?.into(),
            want: want(a.want)?,
            no_seed: flag(a.noseed, "noseed")?,
            scrape: flag(a.scrape, "scrape")?,
        }),
        b"announce_peer" => {
            let implied_port = flag(a.implied_port, "implied_port")?;
            let port = match (opt_int(a.port, "port")?, implied_port) {
                (Some(p), _) => u16::try_from(p)
                    .map_err(|_| DecodeError::new(DecodeErrorKind::InvalidValue("port")))?,
                (None, true) => 0,
                (None, false) => return err(DecodeErrorKind::MissingKey("port")),
            };
            message!(QueryKind::AnnouncePeer {
                info_hash: node_id(a.info_hash, "info_hash")?.into(),
                port,
                implied_port,
                token: token(a.token)?,
                seed: flag(a.seed, "seed")?,
            })
        }
        b"get" => message!(QueryKind::Get {
            target: node_id(a.target, "target")?,
            seq: opt_int(a.seq, "seq")?,
            want: want(a.want)?,
        }),
        b"put" => message!(QueryKind::Put(put(a)?)),
        b"sample_infohashes" => message!(QueryKind::SampleInfohashes {
            target: node_id(a.target, "target")?,
            want: want(a.want)?,
        }),
        _ => {
            let target = opt_node_id(a.target);
            let info_hash = opt_node_id(a.info_hash).map(InfoHash::from);
            if target.is_none() && info_hash.is_none() {
                return err(DecodeErrorKind::UnknownMethod);
            }
            message!(QueryKind::Unknown {
                method,
                target,
                info_hash,
                want: want(a.want).unwrap_or_default(),
            })
        }
    }
}

fn put<'a>(a: &QueryFields<'a>) -> Result<PutQuery<'a>> {
    let token = token(a.token)?;
    let value =
        RawValue::from_checked(a.v.ok_or(DecodeError::new(DecodeErrorKind::MissingKey("v")))?);
    let mutable = match a.k {
        None => None,
        Some(k) => {
            let key = fixed(k, "k")?;
            let sig = a
                .sig
                .ok_or(DecodeError::new(DecodeErrorKind::MissingKey("sig")))?;
            let seq = opt_int(a.seq, "seq")?
                .ok_or(DecodeError::new(DecodeErrorKind::MissingKey("seq")))?;
            let salt = a.salt.map(|s| s.bytes("salt")).transpose()?;
            Some(MutablePut {
                key,
                signature: fixed(sig, "sig")?,
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

fn fixed<'a, const N: usize>(v: Val<'a>, key: &'static str) -> Result<&'a [u8; N]> {
    <&[u8; N]>::try_from(v.bytes(key)?)
        .map_err(|_| DecodeError::new(DecodeErrorKind::InvalidValue(key)))
}

/// The first error of `r`, in the order: `samples`, `interval`, `id`, then the other keys
/// as they appear in [`Response`].
#[inline(always)]
fn response_error(r: &ResponseFields<'_>) -> Option<DecodeError> {
    if r.id.is_none() {
        Some(first_response_error(
            r.invalid | bit::ID,
            r.invalid & bit::ID == 0,
        ))
    } else if r.invalid != 0 {
        Some(first_response_error(r.invalid, false))
    } else {
        None
    }
}

/// The response of `r` (checked by [`response_error`]).
#[inline(always)]
fn response<'a>(r: &ResponseFields<'a>, id: NodeId) -> Response<'a> {
    Response { id, ..r.r }
}

/// The error for the lowest bit of `invalid`; `missing_id` when the `id` bit stands for an
/// absent key rather than a bad value.
#[cold]
fn first_response_error(invalid: u16, missing_id: bool) -> DecodeError {
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

    const ID: &str = "20:abcdefghij0123456789";

    fn response(r: &str) -> Result<Message<'static>> {
        let bytes = format!("d1:rd{r}e1:t2:aa1:y1:re").into_bytes();
        decode(bytes.leak())
    }

    #[test]
    fn duplicate_keys_keep_the_last_value() {
        let Body::Response(r) = response(&format!("2:id3:abc2:id{ID}")).unwrap().body else {
            panic!("not a response")
        };
        assert_eq!(r.id.as_bytes(), b"abcdefghij0123456789");
        let e = response(&format!("2:id{ID}2:id3:abc")).unwrap_err();
        assert_eq!(e.kind, DecodeErrorKind::InvalidValue("id"));
        let e = response(&format!("2:id{ID}5:nodes3:abc5:nodes0:")).unwrap();
        let Body::Response(r) = e.body else {
            panic!("not a response")
        };
        assert_eq!(r.nodes.map(|n| n.len()), Some(0));
    }

    #[test]
    fn response_errors_come_in_a_fixed_order() {
        // `samples` and `interval` are checked before `id`, the rest after it.
        let e = response("5:nodes1:x7:samples1:x").unwrap_err();
        assert_eq!(e.kind, DecodeErrorKind::InvalidValue("samples"));
        let e = response("5:nodes1:x8:intervali-1e").unwrap_err();
        assert_eq!(e.kind, DecodeErrorKind::InvalidValue("interval"));
        let e = response("5:nodes1:x").unwrap_err();
        assert_eq!(e.kind, DecodeErrorKind::MissingKey("id"));
        let e = response(&format!("3:numi-1e5:nodes1:x2:id{ID}")).unwrap_err();
        assert_eq!(e.kind, DecodeErrorKind::InvalidValue("nodes"));
        let e = response(&format!("2:id{ID}6:valuesl5:abcdee")).unwrap_err();
        assert_eq!(e.kind, DecodeErrorKind::InvalidValue("values"));
        let e = response(&format!("2:id{ID}6:valuesl06:abcdefe")).unwrap_err();
        assert_eq!(e.kind, DecodeErrorKind::InvalidValue("values"));
        assert!(response(&format!("2:id{ID}6:valuesl6:abcdef18:abcdefghijklmnopqre")).is_ok());
    }

    /// The fast path alone.
    fn canonical_response(buf: &[u8]) -> Option<Message<'_>> {
        decode_canonical_or(buf, |_| err(DecodeErrorKind::NotADict)).ok()
    }

    /// Responses the fast path reads, in canonical form.
    fn canonical_responses() -> Vec<Vec<u8>> {
        let node = |i: u8| {
            format!(
                "{}{}",
                "n".repeat(20),
                char::from(b'a' + i).to_string().repeat(6)
            )
        };
        let nodes: String = (0..8).map(node).collect();
        let node6 = format!("{}{}", "m".repeat(20), "6".repeat(18));
        let peers = "l6:abcdef6:ghijkl18:abcdefghijklmnopqre";
        let tok = "x".repeat(64);
        [
            format!("d2:ip6:abcdef1:rd2:id{ID}5:nodes208:{nodes}e1:t2:aa1:v4:XO011:y1:re"),
            format!("d1:rd2:id{ID}5:nodes0:e1:t1:a1:y1:re"),
            format!("d2:ip6:abcdef1:rd2:id{ID}1:pi57022ee1:t3:xyz1:v4:LT..1:y1:re"),
            format!("d1:rd2:id{ID}5:nodes26:{}1:pi0e5:token4:abcde1:t2:aa1:y1:re", node(2)),
            format!("d2:ip18:abcdefghijklmnopqr1:rd2:id{ID}6:nodes638:{node6}e2:roi1e1:t2:aa1:y1:re"),
            format!("d1:rd2:id{ID}5:token8:tok123456:values{peers}e2:roi0e1:t4:abcd1:v0:1:y1:re"),
            format!("d2:ip5:abcde1:rd2:id{ID}5:nodes26:{}6:nodes638:{node6}5:token64:{tok}6:valueslee1:t32:{}1:y1:re", node(1), "t".repeat(32)),
        ]
        .into_iter()
        .map(String::into_bytes)
        .collect()
    }

    /// Where the fast path returns a message, the general decoder returns the same one: for
    /// canonical responses, and for every truncation and every one-byte change, insertion or
    /// removal of them.
    #[test]
    fn fast_path_agrees_with_the_general_decoder() {
        let check = |m: &[u8]| {
            if let Some(fast) = canonical_response(m) {
                assert_eq!(decode_any(m), Ok(fast), "{}", m.escape_ascii());
            }
        };
        let mut fast = 0;
        for m in canonical_responses() {
            assert_eq!(canonical_response(&m), Some(decode_any(&m).unwrap()));
            for end in 0..m.len() {
                check(&m[..end]);
            }
            for i in 0..m.len() {
                let original = m[i];
                let mut changed = m.clone();
                for b in [
                    0, 1, b'0', b'1', b'2', b'5', b'9', b':', b'a', b'd', b'e', b'i', b'l', b'r',
                    b'x', 0xff,
                ]
                .into_iter()
                .chain([original.wrapping_add(1), original.wrapping_sub(1)])
                {
                    changed[i] = b;
                    check(&changed);
                    fast += usize::from(canonical_response(&changed).is_some());
                    let mut inserted = m.clone();
                    inserted.insert(i, b);
                    check(&inserted);
                }
                let mut removed = m.clone();
                removed.remove(i);
                check(&removed);
            }
        }
        // The changes inside values (ids, addresses, the transaction id) keep the fast path.
        assert!(fast > 1000, "{fast}");
    }

    #[test]
    fn a_and_r_are_read_by_what_y_says() {
        // `r` in a query and `a` in a response are tolerated, as before.
        let q = format!("d1:rd2:id{ID}e1:q4:ping1:t2:aa1:y1:qe");
        assert!(matches!(decode(q.as_bytes()).unwrap().body, Body::Query(_)));
        let r = format!("d1:ad2:id{ID}5:nodes0:e1:t2:aa1:y1:re");
        let Body::Response(r) = decode(r.as_bytes()).unwrap().body else {
            panic!("not a response")
        };
        assert_eq!(r.nodes.map(|n| n.len()), Some(0));
    }

    #[test]
    fn any_length_prefix_and_unsorted_keys() {
        // Leading zeros, four-digit lengths, keys out of order, `v` of any type.
        let v = "x".repeat(1000);
        let m = format!("d1:y1:q1:t02:aa1:vli1ee1:q4:ping1:ad2:id{ID}1:x1000:{v}ee");
        let m = decode(m.as_bytes()).unwrap();
        assert_eq!(m.transaction_id.as_bytes(), b"aa");
        assert_eq!(m.version, None);
        // Truncated at every byte: an error, never a panic.
        let full = format!("d1:ad2:id{ID}e1:q4:ping1:t2:aa1:y1:qe");
        for end in 0..full.len() {
            assert!(decode(&full.as_bytes()[..end]).is_err());
        }
    }
}
