//! Our requests in flight: transaction ids, what each request is for, and its deadlines.
//!
//! A response is matched by transaction id *and* source address, so a spoofer must guess
//! both. Deadlines sit in an ordered set; a request that finishes takes its deadlines out
//! with it. (They used to stay until they came due: every answered request left two entries
//! for up to `request_timeout`, and the node was woken at each of them for nothing, a third
//! of the simulator's events at 10^4 nodes.)

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Instant;

use xorro_wire::{NodeId, TransactionId};

use crate::event::CommandId;

/// Why we sent a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// A query of a lookup's search phase, to a candidate of leg `leg`.
    Search { lookup: CommandId, leg: u8 },
    /// A bootstrap find_node to an address whose id we do not know.
    Seed { lookup: CommandId },
    /// announce_peer / put of a lookup's store phase, to its store target `target`.
    Store { lookup: CommandId, target: u16 },
    /// A ping: maintenance (`command` None) or a user's ping command.
    Ping { command: Option<CommandId> },
}

impl Purpose {
    /// The lookup the request belongs to, if any.
    pub fn lookup(&self) -> Option<CommandId> {
        match *self {
            Purpose::Search { lookup, .. }
            | Purpose::Seed { lookup }
            | Purpose::Store { lookup, .. } => Some(lookup),
            Purpose::Ping { .. } => None,
        }
    }
}

/// One request in flight.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Request {
    pub to: SocketAddr,
    /// The id we expect to answer, when we know it.
    pub node_id: Option<NodeId>,
    pub sent: Instant,
    pub purpose: Purpose,
}

/// Which deadline of a request came due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Deadline {
    /// The soft timeout: the lookup may send one more request.
    Soft,
    /// The hard timeout: the request failed.
    Hard,
}

/// A request in flight and its deadlines (the keys of its entries in `deadlines`).
#[derive(Debug, Clone, Copy)]
struct InFlight {
    req: Request,
    soft: Option<Instant>,
    hard: Instant,
}

#[derive(Debug)]
pub(crate) struct Requests {
    next_tid: u32,
    in_flight: BTreeMap<u32, InFlight>,
    deadlines: BTreeSet<(Instant, u32, Deadline)>,
}

impl Requests {
    pub fn new(first_tid: u32) -> Self {
        Requests {
            next_tid: first_tid,
            in_flight: BTreeMap::new(),
            deadlines: BTreeSet::new(),
        }
    }

    /// About how many bytes the requests in flight hold (B-tree node overhead not counted).
    pub fn heap_bytes(&self) -> usize {
        self.in_flight.len()
            * (std::mem::size_of::<(u32, InFlight)>()
                + 2 * std::mem::size_of::<(Instant, u32, Deadline)>())
    }

    pub fn len(&self) -> usize {
        self.in_flight.len()
    }

    /// Records a request and returns its transaction id (4 bytes).
    pub fn insert(&mut self, req: Request, soft: Option<Instant>, hard: Instant) -> TransactionId {
        let mut tid = self.next_tid;
        while self.in_flight.contains_key(&tid) {
            tid = tid.wrapping_add(1);
        }
        self.next_tid = tid.wrapping_add(1);
        let soft = soft.filter(|s| *s < hard);
        self.in_flight.insert(tid, InFlight { req, soft, hard });
        if let Some(soft) = soft {
            self.deadlines.insert((soft, tid, Deadline::Soft));
        }
        self.deadlines.insert((hard, tid, Deadline::Hard));
        TransactionId::new(&tid.to_be_bytes()).expect("four bytes fit")
    }

    /// Takes the request a response from `from` with `tid` answers, if any.
    pub fn take(&mut self, tid: &TransactionId, from: SocketAddr) -> Option<Request> {
        let key = u32::from_be_bytes(tid.as_bytes().try_into().ok()?);
        if self.in_flight.get(&key)?.req.to != from {
            return None;
        }
        let req = self.in_flight.remove(&key).map(|f| {
            forget(&mut self.deadlines, key, &f);
            f.req
        });
        self.give_back_room();
        req
    }

    /// Removes every request for which `f` is true (a cancelled lookup's).
    pub fn remove_where(&mut self, mut f: impl FnMut(&Request) -> bool) {
        let deadlines = &mut self.deadlines;
        self.in_flight.retain(|tid, r| {
            let gone = f(&r.req);
            if gone {
                forget(deadlines, *tid, r);
            }
            !gone
        });
        self.give_back_room();
    }

    /// An emptied B-tree keeps its root node (over a kilobyte here) until it is dropped: a
    /// node between bursts of requests holds none.
    fn give_back_room(&mut self) {
        if self.in_flight.is_empty() {
            self.in_flight = BTreeMap::new();
        }
        if self.deadlines.is_empty() {
            self.deadlines = BTreeSet::new();
        }
    }

    /// The next deadline of a request in flight.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|d| d.0)
    }

    /// Pops the next deadline due at `now`. A hard deadline removes the request.
    pub fn pop_due(&mut self, now: Instant) -> Option<(Deadline, Request)> {
        while let Some(&(at, tid, kind)) = self.deadlines.first() {
            if at > now {
                return None;
            }
            self.deadlines.pop_first();
            let found = match kind {
                Deadline::Soft => self.in_flight.get(&tid).map(|f| f.req),
                Deadline::Hard => self.in_flight.remove(&tid).map(|f| f.req),
            };
            self.give_back_room();
            if let Some(req) = found {
                return Some((kind, req));
            }
        }
        None
    }
}

/// Takes the deadlines of a request that left `in_flight` (its soft one may be gone already).
fn forget(deadlines: &mut BTreeSet<(Instant, u32, Deadline)>, tid: u32, f: &InFlight) {
    if let Some(soft) = f.soft {
        deadlines.remove(&(soft, tid, Deadline::Soft));
    }
    deadlines.remove(&(f.hard, tid, Deadline::Hard));
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[allow(clippy::disallowed_methods)] // one real instant; every other time derives from it
    fn t0() -> Instant {
        Instant::now()
    }

    #[test]
    fn match_needs_tid_and_address() {
        let now = t0();
        let mut r = Requests::new(7);
        let to: SocketAddr = "10.0.0.1:1".parse().unwrap();
        let req = Request {
            to,
            node_id: None,
            sent: now,
            purpose: Purpose::Ping { command: None },
        };
        let tid = r.insert(req, None, now + Duration::from_secs(1));
        assert!(r.take(&tid, "10.0.0.2:1".parse().unwrap()).is_none());
        assert!(r.take(&TransactionId::new(b"ab").unwrap(), to).is_none());
        assert!(r.take(&tid, to).is_some());
        assert!(r.take(&tid, to).is_none());
        // A finished request leaves no deadline behind.
        assert_eq!(r.next_deadline(), None);
        assert!(r.pop_due(now + Duration::from_secs(2)).is_none());
    }

    #[test]
    fn finished_requests_take_their_deadlines() {
        let now = t0();
        let mut r = Requests::new(0);
        let req = |i: u8, purpose| Request {
            to: SocketAddr::from(([10, 0, 0, i], 1)),
            node_id: None,
            sent: now,
            purpose,
        };
        let lookup = CommandId(3);
        let soft = Some(now + Duration::from_millis(100));
        let hard = now + Duration::from_secs(1);
        let a = r.insert(req(1, Purpose::Ping { command: None }), soft, hard);
        r.insert(req(2, Purpose::Seed { lookup }), soft, hard);
        let c = r.insert(req(3, Purpose::Ping { command: None }), None, hard);
        assert_eq!(r.deadlines.len(), 5);
        // Answered after its soft deadline: only the hard one was left.
        assert_eq!(
            r.pop_due(now + Duration::from_millis(100)).map(|d| d.0),
            Some(Deadline::Soft)
        );
        assert!(r.take(&a, SocketAddr::from(([10, 0, 0, 1], 1))).is_some());
        r.remove_where(|q| q.purpose.lookup() == Some(lookup));
        assert_eq!(r.deadlines.len(), 1);
        assert!(r.take(&c, SocketAddr::from(([10, 0, 0, 3], 1))).is_some());
        assert!(r.deadlines.is_empty() && r.in_flight.is_empty());
    }

    #[test]
    fn soft_then_hard() {
        let now = t0();
        let mut r = Requests::new(0);
        let to: SocketAddr = "10.0.0.1:1".parse().unwrap();
        let req = Request {
            to,
            node_id: None,
            sent: now,
            purpose: Purpose::Ping { command: None },
        };
        r.insert(
            req,
            Some(now + Duration::from_millis(100)),
            now + Duration::from_secs(1),
        );
        assert_eq!(r.next_deadline(), Some(now + Duration::from_millis(100)));
        assert!(r.pop_due(now).is_none());
        assert_eq!(
            r.pop_due(now + Duration::from_secs(5)).map(|d| d.0),
            Some(Deadline::Soft)
        );
        assert_eq!(
            r.pop_due(now + Duration::from_secs(5)).map(|d| d.0),
            Some(Deadline::Hard)
        );
        assert_eq!(r.len(), 0);
    }
}
