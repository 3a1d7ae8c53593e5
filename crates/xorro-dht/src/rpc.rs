//! Our requests in flight: transaction ids, what each request is for, and its deadlines.
//!
//! A response is matched by transaction id *and* source address, so a spoofer must guess
//! both. A request lives in a slot of a slab, and its transaction id names the slot and the
//! slot's generation (XORed with a per-node key), so a response finds its request in one
//! step and a late response to a slot used again does not match. Deadlines sit in a sorted
//! list; a request that finishes takes its deadlines out with it. (They used to stay until
//! they came due: every answered request left two entries for up to `request_timeout`, and
//! the node was woken at each of them for nothing, a third of the simulator's events at
//! 10^4 nodes.) Both give their room back when the last request leaves: most nodes of a
//! large network are idle most of the time. (B-trees kept these before 5 Dec 2026; their
//! inserts, removals and the allocation of a root node whenever an idle node sent a
//! request were ~10 % of the simulator's profile.)

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
    /// Its place in the order of sending: deadlines of the same instant come due in it.
    seq: u32,
}

/// A place in the slab: its request, if any, and how many times it was used.
#[derive(Debug, Clone, Copy)]
struct Slot {
    generation: u16,
    f: Option<InFlight>,
}

/// Requests in flight at most: a slot number is 16 bits of the transaction id.
pub(crate) const MAX_IN_FLIGHT: usize = 1 << 16;

/// A deadline: when, the request's place in the order of sending, which, and its
/// transaction id.
type Due = (Instant, u32, Deadline, u32);

#[derive(Debug)]
pub(crate) struct Requests {
    /// XORed into every transaction id, so the id on the wire does not show the slot and
    /// generation (small numbers a spoofer could otherwise guess).
    key: u32,
    /// The requests by slot; a transaction id is `(slot << 16 | generation) ^ key`.
    slots: Vec<Slot>,
    /// Empty slots.
    free: Vec<u16>,
    /// Requests in `slots`.
    len: usize,
    /// The generation a new slot starts with. Never reset, so that slots made again after
    /// the slab gave its room back do not repeat the ids of the ones before.
    next_generation: u16,
    /// The next request's place in the order of sending.
    next_seq: u32,
    /// Every deadline, latest first (the next one due is the last).
    deadlines: Vec<Due>,
}

impl Requests {
    pub fn new(key: u32) -> Self {
        Requests {
            key,
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
            next_generation: 0,
            next_seq: 0,
            deadlines: Vec::new(),
        }
    }

    /// About how many bytes the requests in flight hold.
    pub fn heap_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Slot>()
            + self.free.capacity() * std::mem::size_of::<u16>()
            + self.deadlines.capacity() * std::mem::size_of::<Due>()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Records a request and returns its transaction id (4 bytes); `None` when
    /// [`MAX_IN_FLIGHT`] requests are in flight already.
    pub fn insert(
        &mut self,
        req: Request,
        soft: Option<Instant>,
        hard: Instant,
    ) -> Option<TransactionId> {
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                let slot = u16::try_from(self.slots.len()).ok()?;
                self.slots.push(Slot {
                    generation: self.next_generation,
                    f: None,
                });
                self.next_generation = self.next_generation.wrapping_add(1);
                slot
            }
        };
        let place = &mut self.slots[usize::from(slot)];
        let generation = place.generation;
        let soft = soft.filter(|s| *s < hard);
        let seq = self.next_seq;
        self.next_seq = seq.wrapping_add(1);
        place.f = Some(InFlight {
            req,
            soft,
            hard,
            seq,
        });
        self.len += 1;
        let tid = self.tid(usize::from(slot), generation);
        if let Some(soft) = soft {
            add(&mut self.deadlines, (soft, seq, Deadline::Soft, tid));
        }
        add(&mut self.deadlines, (hard, seq, Deadline::Hard, tid));
        TransactionId::new(&tid.to_be_bytes())
    }

    /// The transaction id of a slot's request (see `slots`).
    fn tid(&self, slot: usize, generation: u16) -> u32 {
        // A slot number fits 16 bits (`insert` makes no more slots).
        #[allow(clippy::cast_possible_truncation)]
        let slot = slot as u32;
        (slot << 16 | u32::from(generation)) ^ self.key
    }

    /// The slot a transaction id names, if its generation is the slot's.
    fn slot_of(&self, tid: u32) -> Option<usize> {
        let plain = tid ^ self.key;
        let slot = usize::try_from(plain >> 16).ok()?;
        let place = self.slots.get(slot)?;
        (u32::from(place.generation) == plain & 0xffff && place.f.is_some()).then_some(slot)
    }

    /// Empties a slot (its generation moves on, so its id is dead) and returns its request.
    fn release(&mut self, slot: usize) -> Option<InFlight> {
        let place = self.slots.get_mut(slot)?;
        let f = place.f.take()?;
        place.generation = place.generation.wrapping_add(1);
        self.len -= 1;
        // The slot came from a u16.
        #[allow(clippy::cast_possible_truncation)]
        self.free.push(slot as u16);
        Some(f)
    }

    /// Takes the request a response from `from` with `tid` answers, if any.
    pub fn take(&mut self, tid: &TransactionId, from: SocketAddr) -> Option<Request> {
        let key = u32::from_be_bytes(tid.as_bytes().try_into().ok()?);
        let slot = self.slot_of(key)?;
        if self.slots[slot].f.is_none_or(|f| f.req.to != from) {
            return None;
        }
        let f = self.release(slot)?;
        forget(&mut self.deadlines, key, &f);
        self.give_back_room();
        Some(f.req)
    }

    /// Removes every request for which `f` is true (a cancelled lookup's).
    pub fn remove_where(&mut self, mut f: impl FnMut(&Request) -> bool) {
        for slot in 0..self.slots.len() {
            let place = self.slots[slot];
            let Some(flight) = place.f.filter(|fl| f(&fl.req)) else {
                continue;
            };
            let tid = self.tid(slot, place.generation);
            self.release(slot);
            forget(&mut self.deadlines, tid, &flight);
        }
        self.give_back_room();
    }

    /// A node between bursts of requests holds no room for them.
    fn give_back_room(&mut self) {
        if self.len == 0 {
            self.slots = Vec::new();
            self.free = Vec::new();
            self.deadlines = Vec::new();
        }
    }

    /// The next deadline of a request in flight.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.last().map(|d| d.0)
    }

    /// Pops the next deadline due at `now`. A hard deadline removes the request.
    pub fn pop_due(&mut self, now: Instant) -> Option<(Deadline, Request)> {
        while let Some(&(at, _, kind, tid)) = self.deadlines.last() {
            if at > now {
                return None;
            }
            self.deadlines.pop();
            let found = self.slot_of(tid).and_then(|slot| match kind {
                Deadline::Soft => self.slots[slot].f.map(|f| f.req),
                Deadline::Hard => self.release(slot).map(|f| f.req),
            });
            self.give_back_room();
            if let Some(req) = found {
                return Some((kind, req));
            }
        }
        None
    }
}

/// Adds a deadline, keeping the list latest first.
fn add(deadlines: &mut Vec<Due>, due: Due) {
    let at = deadlines.partition_point(|d| *d > due);
    deadlines.insert(at, due);
}

/// Takes the deadlines of a request that left the slab (its soft one may be gone already).
fn forget(deadlines: &mut Vec<Due>, tid: u32, f: &InFlight) {
    let mut remove = |due: Due| {
        let at = deadlines.partition_point(|d| *d > due);
        if deadlines.get(at) == Some(&due) {
            deadlines.remove(at);
        }
    };
    if let Some(soft) = f.soft {
        remove((soft, f.seq, Deadline::Soft, tid));
    }
    remove((f.hard, f.seq, Deadline::Hard, tid));
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[allow(clippy::disallowed_methods)] // one real instant; every other time derives from it
    fn t0() -> Instant {
        Instant::now()
    }

    /// A maintenance ping to `to`, sent at `now`.
    fn ping(to: SocketAddr, now: Instant) -> Request {
        Request {
            to,
            node_id: None,
            sent: now,
            purpose: Purpose::Ping { command: None },
        }
    }

    #[test]
    fn match_needs_tid_and_address() {
        let now = t0();
        let mut r = Requests::new(7);
        let to: SocketAddr = "10.0.0.1:1".parse().unwrap();
        let req = ping(to, now);
        let tid = r
            .insert(req, None, now + Duration::from_secs(1))
            .expect("room");
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
        let a = r
            .insert(req(1, Purpose::Ping { command: None }), soft, hard)
            .expect("room");
        r.insert(req(2, Purpose::Seed { lookup }), soft, hard);
        let c = r
            .insert(req(3, Purpose::Ping { command: None }), None, hard)
            .expect("room");
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
        assert!(r.deadlines.is_empty() && r.len() == 0);
        assert_eq!(r.heap_bytes(), 0, "an idle node holds no room");
    }

    #[test]
    fn a_slot_used_again_does_not_take_the_old_id() {
        let now = t0();
        let mut r = Requests::new(0x5eed_f00d);
        let to: SocketAddr = "10.0.0.1:1".parse().unwrap();
        let req = ping(to, now);
        let hard = now + Duration::from_secs(1);
        let keep = r.insert(req, None, hard).expect("room");
        let old = r.insert(req, None, hard).expect("room");
        assert!(r.take(&old, to).is_some());
        // The freed slot serves the next request, under another id.
        let new = r.insert(req, None, hard).expect("room");
        assert_ne!(new, old);
        assert!(
            r.take(&old, to).is_none(),
            "a late answer to the old request"
        );
        assert!(r.take(&new, to).is_some());
        // Even after the slab gave its room back, ids are not repeated.
        assert!(r.take(&keep, to).is_some());
        assert_eq!(r.heap_bytes(), 0);
        let again = r.insert(req, None, hard).expect("room");
        assert!(![keep, old, new].contains(&again));
    }

    #[test]
    fn deadlines_of_one_instant_come_due_in_the_order_sent() {
        let now = t0();
        let mut r = Requests::new(0xffff_0000);
        let hard = now + Duration::from_secs(1);
        for i in 1..=20u8 {
            let req = ping(SocketAddr::from(([10, 0, 0, i], 1)), now);
            r.insert(req, None, hard).expect("room");
        }
        let order: Vec<u8> = std::iter::from_fn(|| r.pop_due(hard))
            .map(|(kind, req)| {
                assert_eq!(kind, Deadline::Hard);
                match req.to.ip() {
                    std::net::IpAddr::V4(ip) => ip.octets()[3],
                    std::net::IpAddr::V6(_) => 0,
                }
            })
            .collect();
        assert_eq!(order, (1..=20).collect::<Vec<u8>>());
        assert_eq!(r.len(), 0);
    }

    #[test]
    fn soft_then_hard() {
        let now = t0();
        let mut r = Requests::new(0);
        let to: SocketAddr = "10.0.0.1:1".parse().unwrap();
        let req = ping(to, now);
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
