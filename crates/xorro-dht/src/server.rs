//! The server side: answering queries (BEP 5, 32, 33, 42, 43, 44, 51).
//!
//! Every response carries `ip`, the requester's address as we see it (BEP 42), and the
//! `nodes` / `nodes6` that `want` asks for (BEP 32; without `want`, the family the query came
//! on). Errors follow the BEPs: 203 for a bad token or bad arguments, 204 for an unknown
//! method without a target, 205–207 and 301–302 for BEP 44 puts.

use std::net::SocketAddr;
use std::time::Instant;

use xorro_wire::bep33::BloomFilter;
use xorro_wire::bep44;
use xorro_wire::{
    Body, ErrorBody, ErrorCode, Family, Message, NodeId, NodeInfo, Nodes, Peers, PublicKey,
    PutQuery, Query, QueryKind, RawValue, Response, Samples, Signature, TransactionId, Want,
};

use crate::event::Event;
use crate::node::Node;
use crate::routing::QueryOutcome;
use crate::store::{MutableItem, StoredItem};

/// Scratch space for one response, so that nothing in it borrows the node.
///
/// One per thread, not one per node: a reply is built and sent within one call, and a
/// process that holds many nodes (the simulator holds a million) would otherwise keep a
/// few hundred bytes of it in each of them.
#[derive(Debug, Default)]
struct ReplyBuffers {
    nodes4: Vec<NodeInfo>,
    nodes6: Vec<NodeInfo>,
}

thread_local! {
    static REPLY_BUFFERS: std::cell::Cell<ReplyBuffers> =
        std::cell::Cell::new(ReplyBuffers::default());
}

impl ReplyBuffers {
    /// The thread's buffers (empty ones if a reply being built holds them).
    fn take() -> Self {
        REPLY_BUFFERS.with(std::cell::Cell::take)
    }

    /// Gives the buffers back to the thread, for the next reply.
    fn put_back(self) {
        REPLY_BUFFERS.with(|b| b.set(self));
    }
}

impl Node {
    pub(crate) fn handle_query(
        &mut self,
        now: Instant,
        from: SocketAddr,
        msg: &Message<'_>,
        q: &Query<'_>,
    ) {
        let family = Family::of(&from);
        if let Some(r) = &mut self.reach
            && r[crate::node::family_index(family)].on_query(from)
        {
            tracing::info!(%from, "queried by a node we had not written to: reachable");
        }
        if self.acts_read_only_in(family) {
            self.stats.drops.read_only += 1;
            return;
        }
        if q.id == self.id {
            self.stats.drops.from_self += 1;
            return;
        }
        let querier = NodeInfo::new(q.id, from);
        if !msg.read_only
            && self.acceptable(&querier)
            && self.table_mut(family).on_query_from(querier, now) == QueryOutcome::PingToVerify
        {
            self.ping_node(now, querier);
        }

        let mut bufs = ReplyBuffers::take();
        let mut r = Response::new(self.id);
        let mut peers = Vec::new();
        let mut samples = Vec::new();
        let mut item: Option<StoredItem> = None;
        // The write token of a `get_peers` or `get` reply, which `r` borrows.
        let mut issued_token = None;
        // BEP 33 filters (512 bytes): made only for a scrape.
        let mut blooms: Option<(BloomFilter, BloomFilter)> = None;
        let tid = msg.transaction_id;
        // The target whose closest nodes the reply carries, and which families (`want`).
        let (target, want): (Option<NodeId>, Want) = match &q.kind {
            QueryKind::Ping => {
                self.stats.queries.ping += 1;
                (None, Want::UNSPECIFIED)
            }
            QueryKind::FindNode { target, want } => {
                self.stats.queries.find_node += 1;
                (Some(*target), *want)
            }
            QueryKind::GetPeers {
                info_hash,
                want,
                no_seed,
                scrape: s,
            } => {
                self.stats.queries.get_peers += 1;
                r.token = Some(
                    issued_token
                        .insert(self.tokens.issue(from.ip()))
                        .as_token_ref(),
                );
                let max = self.config.store.values_per_reply_max;
                peers = self
                    .peers
                    .peers(info_hash, family, *no_seed, max, &mut self.rng);
                if *s {
                    let (bf_seeds, bf_peers) =
                        blooms.insert((BloomFilter::new(), BloomFilter::new()));
                    for (ip, seed) in self.peers.scrape_sets(info_hash) {
                        if seed {
                            bf_seeds.insert(ip);
                        } else {
                            bf_peers.insert(ip);
                        }
                    }
                }
                (Some((*info_hash).into()), *want)
            }
            QueryKind::AnnouncePeer {
                info_hash,
                port,
                implied_port,
                token,
                seed,
            } => {
                self.stats.queries.announce_peer += 1;
                if !self.tokens.verify(from.ip(), &token.to_token()) {
                    bufs.put_back();
                    return self.send_error(from, tid, ErrorCode::PROTOCOL, Some("bad token"));
                }
                let port = if *implied_port { from.port() } else { *port };
                if port == 0 {
                    bufs.put_back();
                    return self.send_error(from, tid, ErrorCode::PROTOCOL, Some("invalid port"));
                }
                let peer = SocketAddr::new(from.ip(), port);
                if self.peers.announce(*info_hash, peer, *seed, now).is_err() {
                    bufs.put_back();
                    return self.send_error(from, tid, ErrorCode::SERVER, Some("peer store full"));
                }
                self.push_event(Event::PeerAnnounced {
                    info_hash: *info_hash,
                    peer,
                });
                (None, Want::UNSPECIFIED)
            }
            QueryKind::Get { target, seq, want } => {
                self.stats.queries.get += 1;
                r.token = Some(
                    issued_token
                        .insert(self.tokens.issue(from.ip()))
                        .as_token_ref(),
                );
                item = self.items.get(target, now).cloned();
                if let (Some(StoredItem::Mutable { seq: stored, .. }), Some(asked)) = (&item, seq)
                    && stored <= asked
                {
                    // BEP 44: the requester has this seq already; send the seq alone.
                    r.seq = Some(*stored);
                    item = None;
                }
                (Some(*target), *want)
            }
            QueryKind::Put(p) => {
                self.stats.queries.put += 1;
                if let Err((code, text)) = self.handle_put(now, from, p) {
                    bufs.put_back();
                    return self.send_error(from, tid, code, Some(text));
                }
                (None, Want::UNSPECIFIED)
            }
            QueryKind::SampleInfohashes { target, want } => {
                self.stats.queries.sample_infohashes += 1;
                samples = self
                    .peers
                    .sample(self.config.sample_infohashes_max, &mut self.rng);
                r.num = Some(self.peers.infohash_count() as u64);
                r.interval = Some(self.config.sample_infohashes_interval);
                (Some(*target), *want)
            }
            QueryKind::Unknown {
                target,
                info_hash,
                want,
                ..
            } => {
                self.stats.queries.unknown += 1;
                (target.or(info_hash.map(NodeId::from)), *want)
            }
        };

        let k = self.config.lookup_closest;
        // Whatever the query, the buffers hold this answer's nodes only (the pings of members
        // handed out, after the reply, read them).
        bufs.nodes4.clear();
        bufs.nodes6.clear();
        if let Some(target) = target {
            let (v4, v6) = if want.is_unspecified() {
                (family == Family::V4, family == Family::V6)
            } else {
                (want.v4, want.v6)
            };
            if v4 {
                self.table4
                    .closest_for_answer(&target, k, now, &mut bufs.nodes4);
                r.nodes = Some(Nodes::from_slice(&bufs.nodes4));
            }
            if v6 {
                self.table6
                    .closest_for_answer(&target, k, now, &mut bufs.nodes6);
                r.nodes6 = Some(Nodes::from_slice(&bufs.nodes6));
            }
        }
        if !peers.is_empty() {
            r.values = Some(Peers::from_slice(&peers));
        }
        if let Some((bf_seeds, bf_peers)) = &blooms {
            r.seeds_bloom = Some(bf_seeds.as_bytes());
            r.peers_bloom = Some(bf_peers.as_bytes());
        }
        if matches!(q.kind, QueryKind::SampleInfohashes { .. }) {
            r.samples = Some(Samples::from_slice(&samples));
        }
        match &item {
            Some(StoredItem::Immutable { value }) => r.value = RawValue::new(value).ok(),
            Some(StoredItem::Mutable {
                key,
                seq,
                signature,
                value,
                ..
            }) => {
                r.value = RawValue::new(value).ok();
                r.key = Some(&key.0);
                r.signature = Some(&signature.0);
                r.seq = Some(*seq);
            }
            None => {}
        }
        let version = self.config.version;
        let reply = Message {
            transaction_id: tid,
            version: version.as_ref().map(|v| &v[..]),
            requester_ip: Some(from.into()),
            read_only: false,
            body: Body::Response(r),
        };
        self.send(from, &reply);
        let mut due = Vec::new();
        self.table4.due_after_handout(&bufs.nodes4, now, &mut due);
        self.table6.due_after_handout(&bufs.nodes6, now, &mut due);
        for node in due {
            self.ping_node(now, node);
        }
        bufs.put_back();
    }

    /// BEP 44 `put`: checks sizes, token and signature, then stores.
    fn handle_put(
        &mut self,
        now: Instant,
        from: SocketAddr,
        p: &PutQuery<'_>,
    ) -> Result<(), (ErrorCode, &'static str)> {
        let value = p.value.as_bytes();
        if value.len() > bep44::MAX_VALUE_LEN {
            return Err((ErrorCode::VALUE_TOO_BIG, "v is over 1000 bytes"));
        }
        if let Some(m) = &p.mutable
            && m.salt.is_some_and(|s| s.len() > bep44::MAX_SALT_LEN)
        {
            return Err((ErrorCode::SALT_TOO_BIG, "salt is over 64 bytes"));
        }
        if !self.tokens.verify(from.ip(), &p.token.to_token()) {
            return Err((ErrorCode::PROTOCOL, "bad token"));
        }
        let target = match &p.mutable {
            None => {
                let target = bep44::immutable_target(&p.value);
                self.items
                    .put_immutable(target, value, now)
                    .map_err(|e| (e.code(), "not stored"))?;
                target
            }
            Some(m) => {
                if !bep44::verify(&m.key, &m.signature, m.salt, m.seq, &p.value) {
                    return Err((ErrorCode::INVALID_SIGNATURE, "invalid signature"));
                }
                let target = bep44::mutable_target(&m.key, m.salt);
                let item = MutableItem {
                    key: PublicKey(*m.key),
                    salt: m.salt.unwrap_or_default(),
                    seq: m.seq,
                    signature: Signature(*m.signature),
                    value,
                };
                self.items
                    .put_mutable(target, item, m.cas, now)
                    .map_err(|e| {
                        let text = match e.code() {
                            ErrorCode::CAS_MISMATCH => "cas mismatch",
                            ErrorCode::SEQ_TOO_LOW => "sequence number less than current",
                            _ => "not stored",
                        };
                        (e.code(), text)
                    })?;
                target
            }
        };
        self.push_event(Event::ItemStored { target });
        Ok(())
    }

    /// Sends a KRPC error.
    pub(crate) fn send_error(
        &mut self,
        to: SocketAddr,
        tid: TransactionId,
        code: ErrorCode,
        text: Option<&str>,
    ) {
        self.stats.errors_out += 1;
        let message = text.unwrap_or(code.default_message()).as_bytes();
        let version = self.config.version;
        let msg = Message {
            transaction_id: tid,
            version: version.as_ref().map(|v| &v[..]),
            requester_ip: Some(to.into()),
            read_only: false,
            body: Body::Error(ErrorBody { code, message }),
        };
        self.send(to, &msg);
    }
}
