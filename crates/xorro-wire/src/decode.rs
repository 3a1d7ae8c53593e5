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
use crate::id::{InfoHash, NodeId};
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

fn err<T>(kind: DecodeErrorKind) -> Result<T> {
    Err(DecodeError::new(kind))
}

/// A value inside `a` or `r`, scanned but not yet interpreted.
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

/// Every key the BEPs define inside `a` (arguments) or `r` (return values).
#[derive(Default)]
struct Fields<'a> {
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
    nodes: Option<Val<'a>>,
    nodes6: Option<Val<'a>>,
    values: Option<Val<'a>>,
    bf_seeds: Option<Val<'a>>,
    bf_peers: Option<Val<'a>>,
    /// `v` with the span of its encoding.
    v: Option<&'a [u8]>,
    k: Option<Val<'a>>,
    sig: Option<Val<'a>>,
    seq: Option<Val<'a>>,
    cas: Option<Val<'a>>,
    salt: Option<Val<'a>>,
    samples: Option<Val<'a>>,
    num: Option<Val<'a>>,
    interval: Option<Val<'a>>,
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Result<u8> {
        match self.buf.get(self.pos) {
            Some(&b) => Ok(b),
            None => err(DecodeErrorKind::Syntax(self.pos)),
        }
    }

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

    /// `<len>:<bytes>`
    fn bytes(&mut self) -> Result<&'a [u8]> {
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
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
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

    /// Scans one value at `depth` into a [`Val`].
    fn val(&mut self, depth: usize) -> Result<Val<'a>> {
        let start = self.pos;
        Ok(match self.peek()? {
            b'0'..=b'9' => Val::Bytes(self.bytes()?),
            b'i' => self.int()?.map_or(Val::BigInt, Val::Int),
            b'l' => {
                self.skip(depth)?;
                Val::List(&self.buf[start..self.pos])
            }
            b'd' => {
                self.skip(depth)?;
                Val::Dict
            }
            _ => return self.syntax(),
        })
    }

    /// Scans the `a` or `r` dictionary.
    fn fields(&mut self, depth: usize) -> Result<Fields<'a>> {
        if self.peek()? != b'd' {
            // Caller maps this to InvalidValue("a"/"r").
            return self.syntax();
        }
        self.pos += 1;
        let mut f = Fields::default();
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
                b"nodes" => &mut f.nodes,
                b"nodes6" => &mut f.nodes6,
                b"values" => &mut f.values,
                b"BFsd" => &mut f.bf_seeds,
                b"BFpe" => &mut f.bf_peers,
                b"k" => &mut f.k,
                b"sig" => &mut f.sig,
                b"seq" => &mut f.seq,
                b"cas" => &mut f.cas,
                b"salt" => &mut f.salt,
                b"samples" => &mut f.samples,
                b"num" => &mut f.num,
                b"interval" => &mut f.interval,
                b"v" => {
                    let start = self.pos;
                    self.skip(depth + 1)?;
                    f.v = Some(&self.buf[start..self.pos]);
                    continue;
                }
                _ => {
                    self.skip(depth + 1)?;
                    continue;
                }
            };
            *slot = Some(self.val(depth + 1)?);
        }
        self.pos += 1;
        Ok(f)
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

/// Decodes one datagram.
///
/// ```
/// let m = xorro_wire::decode(b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe").unwrap();
/// assert!(matches!(m.body, xorro_wire::Body::Query(_)));
/// ```
pub fn decode(buf: &[u8]) -> Result<Message<'_>> {
    let mut c = Cursor { buf, pos: 0 };
    if buf.first() != Some(&b'd') {
        return err(DecodeErrorKind::NotADict);
    }
    c.pos = 1;
    let mut t: Option<TransactionId> = None;
    let mut y: Option<&[u8]> = None;
    let mut q: Option<&[u8]> = None;
    let mut args: Option<Fields<'_>> = None;
    let mut e: Option<ErrorBody<'_>> = None;
    let mut version = None;
    let mut ip = None;
    let mut read_only = false;
    let mut bad_t = false;

    let scanned: Result<()> = (|| {
        while c.peek()? != b'e' {
            let key = c.bytes()?;
            match key {
                b"t" => match c.val(1)? {
                    Val::Bytes(b) => {
                        t = TransactionId::new(b);
                        bad_t = t.is_none();
                    }
                    _ => bad_t = true,
                },
                b"y" => y = Some(c.val(1)?.bytes("y")?),
                b"q" => q = Some(c.val(1)?.bytes("q")?),
                b"a" | b"r" => {
                    let what = if key == b"a" { "a" } else { "r" };
                    if c.peek()? != b'd' {
                        c.skip(1)?;
                        return err(DecodeErrorKind::InvalidValue(what));
                    }
                    args = Some(c.fields(1)?);
                }
                b"e" => e = Some(error_list(&mut c)?),
                b"v" => {
                    if let Val::Bytes(b) = c.val(1)? {
                        version = Some(b);
                    }
                }
                b"ip" => {
                    if let Val::Bytes(b) = c.val(1)? {
                        ip = decode_peer(b);
                    }
                }
                b"ro" => {
                    if let Val::Int(i) = c.val(1)? {
                        read_only = i != 0;
                    }
                }
                _ => c.skip(1)?,
            }
        }
        c.pos += 1;
        if c.pos != buf.len() {
            return err(DecodeErrorKind::TrailingBytes);
        }
        Ok(())
    })();

    let from_querier = !matches!(y, Some(b"r" | b"e"));
    let with_context = |mut e: DecodeError| {
        e.transaction_id = t;
        e.from_querier = from_querier;
        e
    };
    scanned.map_err(with_context)?;
    let transaction_id = match t {
        Some(t) => t,
        None if bad_t => {
            return Err(with_context(DecodeError::new(
                DecodeErrorKind::InvalidValue("t"),
            )));
        }
        None => {
            return Err(with_context(DecodeError::new(DecodeErrorKind::MissingKey(
                "t",
            ))));
        }
    };

    let body = match y {
        Some(b"q") => {
            let method = q.ok_or(DecodeError::new(DecodeErrorKind::MissingKey("q")));
            let args = args.ok_or(DecodeError::new(DecodeErrorKind::MissingKey("a")));
            method
                .and_then(|m| args.and_then(|a| query(m, &a)))
                .map(Body::Query)
        }
        Some(b"r") => args
            .ok_or(DecodeError::new(DecodeErrorKind::MissingKey("r")))
            .and_then(|r| response(&r))
            .map(Body::Response),
        Some(b"e") => e
            .ok_or(DecodeError::new(DecodeErrorKind::MissingKey("e")))
            .map(Body::Error),
        Some(_) => err(DecodeErrorKind::UnknownType),
        None => err(DecodeErrorKind::MissingKey("y")),
    }
    .map_err(with_context)?;

    Ok(Message {
        transaction_id,
        version,
        requester_ip: ip,
        read_only,
        body,
    })
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

fn opt_unsigned(v: Option<Val<'_>>, key: &'static str) -> Result<Option<u64>> {
    opt_int(v, key)?
        .map(|i| u64::try_from(i).map_err(|_| DecodeError::new(DecodeErrorKind::InvalidValue(key))))
        .transpose()
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

fn query<'a>(method: &'a [u8], a: &Fields<'a>) -> Result<Query<'a>> {
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

fn put<'a>(a: &Fields<'a>) -> Result<PutQuery<'a>> {
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

fn bloom<'a>(v: Option<Val<'a>>, key: &'static str) -> Result<Option<&'a BloomBytes>> {
    v.map(|v| {
        <&BloomBytes>::try_from(v.bytes(key)?)
            .map_err(|_| DecodeError::new(DecodeErrorKind::InvalidValue(key)))
    })
    .transpose()
}

fn nodes<'a>(v: Option<Val<'a>>, family: Family, key: &'static str) -> Result<Option<Nodes<'a>>> {
    v.map(|v| {
        Nodes::from_compact(v.bytes(key)?, family)
            .ok_or(DecodeError::new(DecodeErrorKind::InvalidValue(key)))
    })
    .transpose()
}

/// `values`: a list of 6- or 18-byte strings, written `6:` / `18:` (no leading zeros).
fn values<'a>(v: Option<Val<'a>>) -> Result<Option<Peers<'a>>> {
    let Some(v) = v else { return Ok(None) };
    let Val::List(raw) = v else {
        return err(DecodeErrorKind::InvalidValue("values"));
    };
    let inner = &raw[1..raw.len() - 1];
    let mut rest = inner;
    let mut count = 0;
    while !rest.is_empty() {
        let (skip, len) = if rest.starts_with(b"6:") {
            (2, PEER_V4_LEN)
        } else if rest.starts_with(b"18:") {
            (3, PEER_V6_LEN)
        } else {
            return err(DecodeErrorKind::InvalidValue("values"));
        };
        rest = rest
            .get(skip + len..)
            .ok_or(DecodeError::new(DecodeErrorKind::InvalidValue("values")))?;
        count += 1;
    }
    Ok(Some(Peers::from_bencoded(inner, count)))
}

fn response<'a>(r: &Fields<'a>) -> Result<Response<'a>> {
    let samples = r
        .samples
        .map(|v| {
            Samples::from_compact(v.bytes("samples")?)
                .ok_or(DecodeError::new(DecodeErrorKind::InvalidValue("samples")))
        })
        .transpose()?;
    let interval = opt_unsigned(r.interval, "interval")?.map(Duration::from_secs);
    Ok(Response {
        id: node_id(r.id, "id")?,
        nodes: nodes(r.nodes, Family::V4, "nodes")?,
        nodes6: nodes(r.nodes6, Family::V6, "nodes6")?,
        token: r.token.map(|t| token(Some(t))).transpose()?,
        values: values(r.values)?,
        seeds_bloom: bloom(r.bf_seeds, "BFsd")?,
        peers_bloom: bloom(r.bf_peers, "BFpe")?,
        value: r.v.map(RawValue::from_checked),
        key: r.k.map(|k| fixed(k, "k").map(PublicKey)).transpose()?,
        signature: r.sig.map(|s| fixed(s, "sig").map(Signature)).transpose()?,
        seq: opt_int(r.seq, "seq")?,
        samples,
        num: opt_unsigned(r.num, "num")?,
        interval,
    })
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
