//! The iterative lookup (Kademlia, BEP 5): which node to ask next and when the search is done.
//!
//! A [`Leg`] is the search in one address family (BEP 32: the IPv4 and IPv6 DHTs are
//! separate): candidates sorted by XOR distance to the target, each new, in flight (maybe
//! slow), answered or failed. The node asks the closest new candidate among the `k` closest
//! live ones while fewer than α requests are in flight and not slow; a slow request (past its
//! soft timeout) lets one more go out. Once a few of the `k` closest live candidates have
//! answered (`burst_after`), the search has reached the target's neighbourhood and α no
//! longer holds back the others among them: they are all asked at once. Among equally close
//! new candidates (as many leading bits shared with the target) a user's lookup may ask the
//! fastest first, by the RTT our routing table knows (`by_rtt`). The leg is done
//! when the `k` closest live candidates have all answered, or nothing is left to ask. It has
//! converged once one of them answers naming no closer node (an announce then stores as
//! they answer), and it notes the candidates a near neighbour vouches for or passes over
//! (the vouched wait). This module decides; the node sends.

use std::net::SocketAddr;
use std::time::Duration;

use xorro_wire::{Distance, Family, NodeId, NodeInfo, Token};

/// Where a candidate stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// Not asked yet.
    New,
    /// Asked; `slow` once its soft timeout passed.
    InFlight { slow: bool },
    /// Answered.
    Responded,
    /// Timed out or answered with an error.
    Failed,
}

/// What our routing table knows of a contact when the lookup learns it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Hint {
    /// Smoothed RTT of its answers to us.
    pub rtt: Option<Duration>,
    /// Queries it failed since its last answer.
    pub failures: u8,
}

/// A node the lookup knows of.
#[derive(Debug, Clone)]
pub(crate) struct Candidate {
    pub node: NodeInfo,
    pub distance: Distance,
    pub state: State,
    /// Hops from us: 1 for nodes of our own table.
    pub hop: u32,
    /// RTT known from our routing table, to set the soft timeout.
    pub rtt: Option<Duration>,
    /// Queries our routing table saw it fail since its last answer (0 if not a member).
    pub failures: u8,
    /// Write token it gave us (get_peers / get). Boxed: a `Token` holds up to 64 bytes
    /// inline, and most candidates (all of a find_node lookup's) never get one; inline, it
    /// made a candidate 168 bytes instead of 104.
    pub token: Option<Box<Token>>,
    /// Requests sent to it by this lookup (the first and its retransmissions).
    pub attempts: u8,
    /// Of those, requests still waiting for an answer or their hard timeout.
    pub pending: u8,
    /// Named by one of its near neighbours (see `Config::lookup_vouched_wait`).
    pub vouched: bool,
    /// Passed over by one of its nearest neighbours: a full answer that names nodes farther
    /// from the target but not this one, from a node in whose deepest bucket it falls, so
    /// that neighbour does not hold it as good (it failed a ping there). Not waited for
    /// longer (see [`Leg::note_passed_over`]).
    pub disowned: bool,
    /// A request to it was sent with the vouched wait as its soft timeout: whether it
    /// answered feeds the node's count of late answers (`Config::lookup_vouched_wait`).
    pub waited: bool,
    /// Its first request went out a second time soon after, a copy against loss
    /// (`Config::lookup_resend_after`): one more request than `lookup_attempts` allows.
    pub copied: bool,
}

impl Candidate {
    /// Requests it may be sent: `attempts`, and one more when its first was copied.
    pub fn allowed(&self, attempts: u8) -> u8 {
        attempts.saturating_add(u8::from(self.copied))
    }

    /// Slow (its soft timeout passed) with an allowed request left: it may be asked again.
    fn slow_with_attempts_left(&self, attempts: u8) -> bool {
        self.state == State::InFlight { slow: true } && self.attempts < self.allowed(attempts)
    }

    /// It may be sent a request now: never asked, or slow with an attempt left.
    fn askable(&self, attempts: u8) -> bool {
        self.state == State::New || self.slow_with_attempts_left(attempts)
    }

    /// Still counted among the closest: not failed, and not slow on its last allowed attempt.
    fn is_live(&self, attempts: u8) -> bool {
        match self.state {
            State::Failed => false,
            State::InFlight { slow: true } => self.slow_with_attempts_left(attempts),
            _ => true,
        }
    }
}

/// The search in one address family.
#[derive(Debug, Clone)]
pub(crate) struct Leg {
    pub family: Family,
    target: NodeId,
    candidates: Vec<Candidate>,
    max: usize,
    /// A candidate among the `k` closest live ones answered without naming a node that
    /// would join them: the search has reached the target's nearest nodes (see
    /// [`Leg::note_answer`]).
    pub converged: bool,
}

impl Leg {
    /// Bytes of the candidate list and its tokens on the heap.
    pub fn heap_bytes(&self) -> usize {
        let tokens = self.candidates.iter().filter(|c| c.token.is_some()).count();
        self.candidates.capacity() * std::mem::size_of::<Candidate>()
            + tokens * std::mem::size_of::<Token>()
    }

    pub fn new(family: Family, target: NodeId, max: usize) -> Self {
        Leg {
            family,
            target,
            // Grown as candidates come: a leg with no contacts (the IPv6 leg of a bootstrap
            // from IPv4 seeds) costs nothing, and a finished lookup leaves fewer large holes
            // in the heap.
            candidates: Vec::new(),
            max: max.max(1),
            converged: false,
        }
    }

    /// Notes the answer of `from` naming `named`, before the named nodes are added: the leg
    /// has converged once one of the `k` closest live candidates answers naming no node
    /// that would join them. Near the target every node's nearest are the same few, so
    /// an answer there brings nothing new; on the way (hops 1 to 3 or 4) an answer brings
    /// closer nodes.
    pub fn note_answer(&mut self, from: &SocketAddr, named: &[NodeInfo], k: usize, attempts: u8) {
        if self.converged {
            return;
        }
        // One pass over the closest: whether `from` is among them, the farthest's distance,
        // and whether there are `k` of them.
        let (mut among, mut kth, mut count) = (false, None, 0);
        for (_, c) in self.closest_live(k, attempts) {
            among |= c.node.addr == *from;
            kth = Some(c.distance);
            count += 1;
        }
        let Some(kth) = kth.filter(|_| among) else {
            return;
        };
        let full = count >= k;
        let joins = named.iter().any(|n| {
            Family::of(&n.addr) == self.family
                && self.position(&n.addr).is_none()
                && (!full || n.id.distance(&self.target) < kth)
        });
        self.converged = !joins;
    }

    /// Notes the answer of `from` naming `named`: a candidate closer to the target than the
    /// farthest node of a full answer (`k` nodes of this family), not named in it, and
    /// sharing at least `bits` leading bits with `from` is disowned. The node passes the
    /// depth of its own table: a candidate that close falls in `from`'s deepest bucket,
    /// which is never full, so `from` would have named it had it held it as good.
    pub fn note_passed_over(&mut self, from: &NodeInfo, named: &[NodeInfo], k: usize, bits: u32) {
        let family = self.family;
        let ours = || named.iter().filter(|n| Family::of(&n.addr) == family);
        if ours().count() < k {
            return;
        }
        let Some(farthest) = ours().map(|n| n.id.distance(&self.target)).max() else {
            return;
        };
        for c in &mut self.candidates {
            if c.distance >= farthest {
                break;
            }
            if c.state == State::Responded
                || c.node.addr == from.addr
                || c.node.id.distance(&from.id).leading_zeros() < bits
                || ours().any(|n| n.addr == c.node.addr)
            {
                continue;
            }
            c.disowned = true;
        }
    }

    /// The `k` closest live candidates that answered, closest first.
    pub fn closest_live_responded(
        &self,
        k: usize,
        attempts: u8,
    ) -> impl Iterator<Item = &Candidate> {
        self.closest_live(k, attempts)
            .map(|(_, c)| c)
            .filter(|c| c.state == State::Responded)
    }

    /// Adds a node if it is new, of this family, and close enough to be kept.
    pub fn add(&mut self, node: NodeInfo, hop: u32, hint: Hint) {
        self.add_vouched(node, hop, hint, false);
    }

    /// [`add`](Self::add), and marks the candidate vouched for when `vouched`.
    pub fn add_vouched(&mut self, node: NodeInfo, hop: u32, hint: Hint, vouched: bool) {
        if Family::of(&node.addr) != self.family {
            return;
        }
        if let Some(i) = self.position(&node.addr) {
            self.candidates[i].vouched |= vouched;
            return;
        }
        let distance = node.id.distance(&self.target);
        let at = self.candidates.partition_point(|c| c.distance <= distance);
        if at >= self.max {
            return;
        }
        self.candidates.insert(
            at,
            Candidate {
                node,
                distance,
                state: State::New,
                hop,
                rtt: hint.rtt,
                failures: hint.failures,
                token: None,
                attempts: 0,
                pending: 0,
                vouched,
                disowned: false,
                waited: false,
                copied: false,
            },
        );
        if self.candidates.len() > self.max {
            // Drop the farthest candidate that is not waiting for an answer.
            if let Some(i) = self
                .candidates
                .iter()
                .rposition(|c| !matches!(c.state, State::InFlight { .. }))
            {
                self.candidates.remove(i);
            }
        }
    }

    fn position(&self, addr: &SocketAddr) -> Option<usize> {
        self.candidates.iter().position(|c| c.node.addr == *addr)
    }

    /// The candidate at `addr`.
    pub fn get_mut(&mut self, addr: &SocketAddr) -> Option<&mut Candidate> {
        self.position(addr).map(|i| &mut self.candidates[i])
    }

    /// The next candidate to ask, if the parallelism allows one more request: the closest new
    /// node among the `k` closest live ones, or a slow one there that has had fewer than
    /// `attempts` requests (a retransmission: with 20 % loss each way a single request goes
    /// unanswered 36 % of the time, and a lookup that gives up on a close node after one try
    /// misses it). Marks it in flight.
    ///
    /// Past α, when at least `burst_after` (> 0) of the `k` closest live candidates have
    /// answered: the search is among the target's neighbours, the `k` closest will change
    /// little, and each of them must answer before the lookup ends, so waiting for a slot
    /// only delays the end.
    ///
    /// With `by_rtt` set, among new candidates as close as the closest one (same shared
    /// prefix with the target) the one expected to answer first is asked; the value ranks a
    /// candidate of unknown RTT. `None`: by distance alone.
    pub fn next_to_query(
        &mut self,
        alpha: usize,
        k: usize,
        attempts: u8,
        burst_after: usize,
        by_rtt: Option<Duration>,
    ) -> Option<&Candidate> {
        let active = self
            .candidates
            .iter()
            .filter(|c| c.state == State::InFlight { slow: false })
            .count();
        if active >= alpha && burst_after == 0 {
            return None;
        }
        let mut pick = None;
        let mut answered = 0;
        for (i, c) in self.closest_live(k, attempts) {
            if c.state == State::Responded {
                answered += 1;
            } else if pick.is_none() && c.askable(attempts) {
                pick = Some(i);
            }
        }
        let mut i = pick?;
        if active >= alpha && answered < burst_after {
            return None;
        }
        if let Some(unknown) = by_rtt
            && self.candidates[i].state == State::New
        {
            i = self.fastest_in_band(i, k, attempts, unknown);
        }
        let c = &mut self.candidates[i];
        c.state = State::InFlight { slow: false };
        c.attempts = c.attempts.saturating_add(1);
        c.pending = c.pending.saturating_add(1);
        Some(&self.candidates[i])
    }

    /// Whether `burst_after` (at least one) of the `k` closest live candidates answered: the
    /// burst, where α no longer holds back new candidates (see [`Leg::next_to_query`]).
    pub fn in_burst(&self, k: usize, attempts: u8, burst_after: usize) -> bool {
        burst_after > 0
            && self
                .closest_live_responded(k, attempts)
                .nth(burst_after - 1)
                .is_some()
    }

    /// The `k` closest live candidates (not failed after `attempts`), with their positions.
    fn closest_live(&self, k: usize, attempts: u8) -> impl Iterator<Item = (usize, &Candidate)> {
        self.candidates
            .iter()
            .enumerate()
            .filter(move |(_, c)| c.is_live(attempts))
            .take(k)
    }

    /// Among the new candidates of the `k` closest live ones that share as many leading bits
    /// with the target as candidate `i` (the closest new one), the one with the fewest
    /// failures in our table, then the lowest RTT (`unknown` if none is known), then the
    /// closest. Within such a band the expected progress towards the target is the same
    /// (the remaining bits are random), the time to the answer is not.
    fn fastest_in_band(&self, i: usize, k: usize, attempts: u8, unknown: Duration) -> usize {
        let band = self.candidates[i].distance.leading_zeros();
        let mut best = (
            i,
            self.candidates[i].failures,
            self.candidates[i].rtt.unwrap_or(unknown),
        );
        for (j, c) in self.closest_live(k, attempts).skip_while(|(j, _)| *j <= i) {
            if c.distance.leading_zeros() != band {
                break;
            }
            if c.state != State::New {
                continue;
            }
            let key = (c.failures, c.rtt.unwrap_or(unknown));
            if key < (best.1, best.2) {
                best = (j, key.0, key.1);
            }
        }
        best.0
    }

    /// The request to `addr` got an answer after `rtt`; returns the candidate's hop count, or
    /// `None` when it is unknown or had answered already (a late answer to a retransmitted
    /// request). The measured RTT replaces the table's hint: the store phase times its
    /// queries to the node by it.
    pub fn on_response(
        &mut self,
        addr: &SocketAddr,
        token: Option<Token>,
        rtt: Duration,
    ) -> Option<u32> {
        let c = self.get_mut(addr)?;
        c.pending = c.pending.saturating_sub(1);
        if c.state == State::Responded {
            return None;
        }
        c.state = State::Responded;
        c.rtt = Some(rtt);
        if let Some(token) = token {
            c.token = Some(Box::new(token));
        }
        Some(c.hop)
    }

    /// The request to `addr` could not be sent: ask it again later.
    pub fn unsend(&mut self, addr: &SocketAddr) {
        if let Some(c) = self.get_mut(addr) {
            c.attempts = c.attempts.saturating_sub(1);
            c.pending = c.pending.saturating_sub(1);
            c.state = if c.pending > 0 {
                State::InFlight { slow: true }
            } else {
                State::New
            };
        }
    }

    /// A request to `addr` timed out. The candidate fails once none of its requests is still
    /// pending and it has had `attempts` of them; with attempts left it is asked again.
    pub fn on_timeout(&mut self, addr: &SocketAddr, attempts: u8) {
        if let Some(c) = self.get_mut(addr)
            && c.state != State::Responded
        {
            c.pending = c.pending.saturating_sub(1);
            if c.pending == 0 {
                c.state = if c.attempts < c.allowed(attempts) {
                    State::New
                } else {
                    State::Failed
                };
            }
        }
    }

    /// The request to `addr` failed for good (an error reply).
    pub fn on_failure(&mut self, addr: &SocketAddr) {
        if let Some(c) = self.get_mut(addr)
            && c.state != State::Responded
        {
            c.state = State::Failed;
        }
    }

    /// True when the candidate at `addr` answered.
    pub fn responded(&self, addr: &SocketAddr) -> bool {
        self.position(addr)
            .is_some_and(|i| self.candidates[i].state == State::Responded)
    }

    /// The request to `addr` passed its soft timeout: it no longer counts against α.
    pub fn on_slow(&mut self, addr: &SocketAddr) {
        if let Some(c) = self.get_mut(addr)
            && matches!(c.state, State::InFlight { .. })
        {
            c.state = State::InFlight { slow: true };
        }
    }

    /// True when the `k` closest live candidates all answered, or nothing is left to ask or
    /// wait for. A candidate whose last allowed attempt passed its soft timeout no longer
    /// holds the lookup up (a node that left the network would otherwise cost a hard timeout
    /// on every lookup near it); its late answer still counts while the lookup runs.
    pub fn is_done(&self, k: usize, attempts: u8) -> bool {
        let mut live = self.closest_live(k, attempts).map(|(_, c)| c).peekable();
        if live.peek().is_none() {
            return true;
        }
        live.all(|c| c.state == State::Responded)
            || !self
                .candidates
                .iter()
                .any(|c| c.askable(attempts) || c.state == State::InFlight { slow: false })
    }

    /// Requests still waiting for an answer.
    #[cfg(test)]
    pub fn in_flight(&self) -> impl Iterator<Item = &Candidate> {
        self.candidates
            .iter()
            .filter(|c| matches!(c.state, State::InFlight { .. }))
    }

    /// Every candidate, closest first.
    pub fn candidates(&self) -> impl Iterator<Item = &Candidate> {
        self.candidates.iter()
    }

    /// The `k` closest candidates that answered, closest first.
    pub fn closest_responded(&self, k: usize) -> impl Iterator<Item = &Candidate> {
        self.candidates
            .iter()
            .filter(|c| c.state == State::Responded)
            .take(k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn node(i: u8) -> NodeInfo {
        let mut id = [0u8; 20];
        id[0] = i;
        NodeInfo::new(NodeId(id), SocketAddr::from(([10, 0, 0, i], 1000)))
    }

    #[test]
    fn a_candidate_stays_vouched_for_once_a_near_neighbour_named_it() {
        let mut leg = Leg::new(Family::V4, NodeId::ZERO, 16);
        leg.add(node(1), 1, Hint::default());
        leg.add_vouched(node(2), 2, Hint::default(), true);
        let vouched = |leg: &mut Leg, i: u8| leg.get_mut(&node(i).addr).map(|c| c.vouched);
        assert_eq!(vouched(&mut leg, 1), Some(false));
        assert_eq!(vouched(&mut leg, 2), Some(true));
        // A later referral by a near neighbour counts; a later one by anyone else takes
        // nothing away.
        leg.add_vouched(node(1), 3, Hint::default(), true);
        leg.add_vouched(node(2), 3, Hint::default(), false);
        leg.add(node(2), 1, Hint::default());
        assert_eq!(vouched(&mut leg, 1), Some(true));
        assert_eq!(vouched(&mut leg, 2), Some(true));
        assert_eq!(leg.candidates.len(), 2, "no candidate twice");
    }

    #[test]
    fn asks_closest_first_and_respects_alpha() {
        let mut leg = Leg::new(Family::V4, NodeId::ZERO, 16);
        for i in (1..=10).rev() {
            leg.add(node(i), 1, Hint::default());
        }
        let first: Vec<u8> = (0..3)
            .filter_map(|_| leg.next_to_query(3, 8, 1, 0, None).map(|c| c.node.id.0[0]))
            .collect();
        assert_eq!(first, [1, 2, 3]);
        assert!(
            leg.next_to_query(3, 8, 1, 0, None).is_none(),
            "alpha reached"
        );
        leg.on_slow(&node(1).addr);
        assert_eq!(
            leg.next_to_query(3, 8, 1, 0, None).map(|c| c.node.id.0[0]),
            Some(4),
            "a slow request frees a slot"
        );
    }

    #[test]
    fn converged_once_one_of_the_closest_answers_with_nothing_closer() {
        let mut leg = Leg::new(Family::V4, NodeId::ZERO, 16);
        for i in [20, 30, 40] {
            leg.add(node(i), 1, Hint::default());
        }
        let answer = |leg: &mut Leg, from: u8, named: &[u8]| {
            leg.next_to_query(8, 2, 1, 0, None);
            leg.on_response(&node(from).addr, None, Duration::ZERO);
            let named: Vec<NodeInfo> = named.iter().map(|&i| node(i)).collect();
            leg.note_answer(&node(from).addr, &named, 2, 1);
            for n in named {
                leg.add(n, 2, Hint::default());
            }
        };
        // On the way: each answer names a node closer than the 2 closest live ones.
        answer(&mut leg, 20, &[10, 40]);
        assert!(!leg.converged);
        // Not among the 2 closest (10, 20): says nothing of the target's neighbourhood.
        answer(&mut leg, 30, &[]);
        assert!(!leg.converged);
        answer(&mut leg, 10, &[5]);
        assert!(!leg.converged, "5 joins the closest");
        // Among them, naming only nodes known already or farther than the 2nd closest.
        answer(&mut leg, 5, &[10, 20, 30, 50]);
        assert!(leg.converged);
        let stored: Vec<u8> = leg
            .closest_live_responded(2, 1)
            .map(|c| c.node.id.0[0])
            .collect();
        assert_eq!(stored, [5, 10]);
    }

    #[test]
    fn a_near_neighbour_passing_a_candidate_over_disowns_it() {
        let disowned = |leg: &mut Leg, i: u8| leg.get_mut(&node(i).addr).map(|c| c.disowned);
        let fresh = || {
            let mut leg = Leg::new(Family::V4, NodeId::ZERO, 16);
            for i in [1, 2, 3, 40] {
                leg.add(node(i), 1, Hint::default());
            }
            leg
        };
        let named: Vec<NodeInfo> = [4, 5, 6].iter().map(|&i| node(i)).collect();
        // Node 1 names 4, 5 and 6 but not 2 and 3, which are closer to the target and
        // share 6 leading bits with it; 40 is farther than all it named.
        let mut leg = fresh();
        leg.note_passed_over(&node(1), &named, 3, 6);
        assert_eq!(disowned(&mut leg, 2), Some(true));
        assert_eq!(disowned(&mut leg, 3), Some(true));
        assert_eq!(disowned(&mut leg, 40), Some(false));
        assert_eq!(disowned(&mut leg, 1), Some(false), "not by itself");
        // Not its near neighbours (7 bits asked), or an answer short of k: nothing said.
        let mut leg = fresh();
        leg.note_passed_over(&node(1), &named, 3, 7);
        leg.note_passed_over(&node(1), &named[..2], 3, 6);
        assert_eq!(disowned(&mut leg, 2), Some(false));
        // A candidate it names is not disowned.
        let mut leg = fresh();
        let with_2: Vec<NodeInfo> = [2, 5, 6].iter().map(|&i| node(i)).collect();
        leg.note_passed_over(&node(1), &with_2, 3, 6);
        assert_eq!(disowned(&mut leg, 2), Some(false));
        assert_eq!(disowned(&mut leg, 3), Some(true));
    }

    #[test]
    fn done_when_k_closest_answered() {
        let mut leg = Leg::new(Family::V4, NodeId::ZERO, 16);
        for i in 1..=4 {
            leg.add(node(i), 1, Hint::default());
        }
        assert!(!leg.is_done(2, 1));
        for i in 1..=2 {
            leg.next_to_query(2, 2, 1, 0, None);
            leg.on_response(&node(i).addr, None, Duration::ZERO);
        }
        assert!(leg.is_done(2, 1));
        // A closer node appears: not done until it answers.
        leg.add(
            NodeInfo::new(NodeId::ZERO, "10.1.1.1:1".parse().unwrap()),
            2,
            Hint::default(),
        );
        assert!(!leg.is_done(2, 1));
        leg.next_to_query(2, 2, 1, 0, None);
        leg.on_failure(&"10.1.1.1:1".parse().unwrap());
        assert!(leg.is_done(2, 1));
    }

    #[test]
    fn other_family_and_duplicates_are_ignored() {
        let mut leg = Leg::new(Family::V4, NodeId::ZERO, 4);
        leg.add(
            NodeInfo::new(NodeId::ZERO, "[::1]:1".parse().unwrap()),
            1,
            Hint::default(),
        );
        leg.add(node(1), 1, Hint::default());
        leg.add(node(1), 1, Hint::default());
        assert_eq!(leg.candidates.len(), 1);
        assert!(!leg.is_done(8, 1));
    }

    #[test]
    fn slow_close_node_is_retransmitted_then_fails_after_all_attempts() {
        let mut leg = Leg::new(Family::V4, NodeId::ZERO, 16);
        for i in 1..=3 {
            leg.add(node(i), 1, Hint::default());
        }
        let a = node(1).addr;
        assert_eq!(
            leg.next_to_query(1, 8, 3, 0, None).map(|c| c.node.addr),
            Some(a)
        );
        leg.on_slow(&a);
        // Node 1 is the closest: it is asked again before node 2.
        assert_eq!(
            leg.next_to_query(1, 8, 3, 0, None).map(|c| c.node.addr),
            Some(a)
        );
        leg.on_slow(&a);
        assert_eq!(
            leg.next_to_query(1, 8, 3, 0, None).map(|c| c.node.addr),
            Some(a)
        );
        leg.on_slow(&a);
        // Three attempts made: the slot goes to node 2.
        assert_eq!(
            leg.next_to_query(1, 8, 3, 0, None).map(|c| c.node.id.0[0]),
            Some(2)
        );
        leg.on_timeout(&a, 3);
        leg.on_timeout(&a, 3);
        assert!(
            leg.in_flight().any(|c| c.node.addr == a),
            "one request still pending"
        );
        leg.on_timeout(&a, 3);
        assert!(!leg.in_flight().any(|c| c.node.addr == a));
        assert!(!leg.responded(&a));
        // A late answer to a retransmission still counts, once.
        assert_eq!(leg.on_response(&a, None, Duration::ZERO), Some(1));
        assert_eq!(leg.on_response(&a, None, Duration::ZERO), None);
        // A timeout of a sibling request does not undo the answer.
        leg.on_timeout(&a, 3);
        assert!(leg.responded(&a));
    }

    #[test]
    fn a_copied_request_is_one_more_than_the_attempts() {
        let mut leg = Leg::new(Family::V4, NodeId::ZERO, 16);
        leg.add(node(1), 1, Hint::default());
        leg.add(node(2), 1, Hint::default());
        let a = node(1).addr;
        let ask = |leg: &mut Leg| leg.next_to_query(1, 8, 2, 0, None).map(|c| c.node.id.0[0]);
        assert_eq!(ask(&mut leg), Some(1));
        leg.get_mut(&a).expect("a candidate").copied = true;
        // The copy, then the two attempts.
        for _ in 0..2 {
            leg.on_slow(&a);
            assert_eq!(ask(&mut leg), Some(1));
        }
        leg.on_slow(&a);
        assert_eq!(
            ask(&mut leg),
            Some(2),
            "three requests: the slot goes to node 2"
        );
        for _ in 0..2 {
            leg.on_timeout(&a, 2);
            assert!(leg.in_flight().any(|c| c.node.addr == a));
        }
        leg.on_timeout(&a, 2);
        assert!(
            !leg.in_flight().any(|c| c.node.addr == a),
            "failed after all three"
        );
        assert!(!leg.responded(&a));
    }

    #[test]
    fn timed_out_node_with_attempts_left_is_asked_again() {
        let mut leg = Leg::new(Family::V4, NodeId::ZERO, 16);
        leg.add(node(1), 1, Hint::default());
        let a = node(1).addr;
        assert!(leg.next_to_query(3, 8, 2, 0, None).is_some());
        leg.on_timeout(&a, 2);
        assert!(!leg.is_done(8, 2));
        assert_eq!(
            leg.next_to_query(3, 8, 2, 0, None).map(|c| c.node.addr),
            Some(a)
        );
        leg.on_timeout(&a, 2);
        assert!(leg.is_done(8, 2), "failed after two attempts");
    }

    #[test]
    fn slow_on_last_attempt_does_not_hold_the_lookup_up() {
        let mut leg = Leg::new(Family::V4, NodeId::ZERO, 16);
        for i in 1..=3 {
            leg.add(node(i), 1, Hint::default());
        }
        // k = 2, two attempts: node 1 never answers.
        let a = node(1).addr;
        leg.next_to_query(3, 2, 2, 0, None);
        leg.next_to_query(3, 2, 2, 0, None);
        leg.on_response(&node(2).addr, None, Duration::ZERO);
        leg.on_slow(&a);
        assert_eq!(
            leg.next_to_query(3, 2, 2, 0, None).map(|c| c.node.addr),
            Some(a),
            "retransmitted"
        );
        leg.on_slow(&a);
        // Its last attempt is slow too: node 3 takes its place among the two closest.
        assert_eq!(
            leg.next_to_query(3, 2, 2, 0, None).map(|c| c.node.id.0[0]),
            Some(3)
        );
        assert!(!leg.is_done(2, 2));
        leg.on_response(&node(3).addr, None, Duration::ZERO);
        assert!(
            leg.is_done(2, 2),
            "done without waiting for node 1's hard timeout"
        );
        // Its late answer still counts.
        assert_eq!(leg.on_response(&a, None, Duration::ZERO), Some(1));
        assert_eq!(leg.closest_responded(2).count(), 2);
    }

    #[test]
    fn neighbourhood_reached_asks_the_rest_of_the_k_closest_at_once() {
        let mut leg = Leg::new(Family::V4, NodeId::ZERO, 16);
        for i in 1..=6 {
            leg.add(node(i), 1, Hint::default());
        }
        let ask = |leg: &mut Leg| leg.next_to_query(1, 4, 2, 2, None).map(|c| c.node.id.0[0]);
        // α = 1, k = 4: one request at a time while fewer than two of the four closest answered.
        assert_eq!(ask(&mut leg), Some(1));
        assert_eq!(ask(&mut leg), None);
        leg.on_response(&node(1).addr, None, Duration::ZERO);
        assert_eq!(ask(&mut leg), Some(2));
        assert_eq!(ask(&mut leg), None);
        leg.on_response(&node(2).addr, None, Duration::ZERO);
        // Two of the four closest answered: the other two go out together, past α.
        assert_eq!(ask(&mut leg), Some(3));
        assert_eq!(ask(&mut leg), Some(4));
        assert_eq!(ask(&mut leg), None, "only the k closest are asked past α");
        // Without the burst the second one waits for the slot.
        let mut plain = Leg::new(Family::V4, NodeId::ZERO, 16);
        for i in 1..=6 {
            plain.add(node(i), 1, Hint::default());
        }
        for i in 1..=2 {
            plain.next_to_query(1, 4, 2, 0, None);
            plain.on_response(&node(i).addr, None, Duration::ZERO);
        }
        assert!(plain.next_to_query(1, 4, 2, 0, None).is_some());
        assert!(plain.next_to_query(1, 4, 2, 0, None).is_none());
    }

    #[test]
    fn equally_close_candidates_are_asked_fastest_first() {
        // Targets 0: nodes 0x40..0x43 share one leading bit with it, node 0x20 two.
        let ms = |n: u64| Hint {
            rtt: Some(Duration::from_millis(n)),
            failures: 0,
        };
        let mk = |b: u8, i: u8| {
            let mut id = [0u8; 20];
            id[0] = b;
            NodeInfo::new(NodeId(id), SocketAddr::from(([10, 0, 1, i], 1000)))
        };
        let fill = |leg: &mut Leg| {
            leg.add(mk(0x20, 1), 1, ms(400));
            leg.add(mk(0x40, 2), 1, ms(300));
            leg.add(mk(0x41, 3), 1, Hint::default());
            leg.add(mk(0x42, 4), 1, ms(50));
            leg.add(
                mk(0x43, 5),
                1,
                Hint {
                    rtt: Some(Duration::from_millis(10)),
                    failures: 1,
                },
            );
        };
        let mut leg = Leg::new(Family::V4, NodeId::ZERO, 16);
        fill(&mut leg);
        let by_rtt = Some(Duration::from_millis(100));
        let order: Vec<u8> = (0..5)
            .filter_map(|_| {
                leg.next_to_query(5, 8, 1, 0, by_rtt)
                    .map(|c| c.node.id.0[0])
            })
            .collect();
        // The closest band (0x20) first whatever its RTT; in the next band the 50 ms one,
        // then the unknown one (ranked at 100 ms), then 300 ms; the one that failed last.
        assert_eq!(order, [0x20, 0x42, 0x41, 0x40, 0x43]);
        // Without the choice: by distance.
        let mut plain = Leg::new(Family::V4, NodeId::ZERO, 16);
        fill(&mut plain);
        let order: Vec<u8> = (0..5)
            .filter_map(|_| {
                plain
                    .next_to_query(5, 8, 1, 0, None)
                    .map(|c| c.node.id.0[0])
            })
            .collect();
        assert_eq!(order, [0x20, 0x40, 0x41, 0x42, 0x43]);
    }

    proptest! {
        /// Whatever the order of answers, timeouts, slow requests and error replies, a lookup
        /// ends: every step either sends a request or waits for one in flight, and the number
        /// of requests is bounded.
        #[test]
        fn lookup_terminates_on_any_response_script(
            ids in proptest::collection::vec(any::<[u8; 20]>(), 1..40),
            burst in 0usize..4,
            by_rtt in any::<bool>(),
            rtts in proptest::collection::vec(proptest::option::of(0u64..2000), 40),
            script in proptest::collection::vec((0u8..4, any::<proptest::sample::Index>(), proptest::collection::vec(any::<[u8; 20]>(), 0..8)), 0..200),
        ) {
            let mut leg = Leg::new(Family::V4, NodeId::ZERO, 32);
            let mut n = 0u32;
            let mut mk = |id: [u8; 20]| { n += 1; NodeInfo::new(NodeId(id), SocketAddr::from(([10, (n >> 16) as u8, (n >> 8) as u8, n as u8], 1))) };
            let by_rtt = by_rtt.then_some(Duration::from_millis(100));
            for (id, r) in ids.into_iter().zip(&rtts) {
                leg.add(mk(id), 1, Hint { rtt: r.map(Duration::from_millis), failures: (r.unwrap_or(0) % 3) as u8 });
            }
            let mut sent = 0;
            let mut steps = script.into_iter();
            loop {
                while let Some(c) = leg.next_to_query(3, 8, 3, burst, by_rtt) { let _ = c; sent += 1; }
                if leg.is_done(8, 3) { break; }
                let waiting: Vec<SocketAddr> = leg.in_flight().map(|c| c.node.addr).collect();
                prop_assert!(!waiting.is_empty(), "not done, nothing to ask and nothing in flight");
                let (op, at, more) = match steps.next() {
                    Some((op, pick, more)) => (op, pick.index(waiting.len()), more),
                    None => (1, 0, vec![]),
                };
                let addr = waiting[at];
                match op {
                    0 => {
                        leg.on_response(&addr, None, Duration::ZERO);
                        for id in more { leg.add(mk(id), 2, Hint::default()); }
                    }
                    1 => leg.on_timeout(&addr, 3),
                    2 => leg.on_slow(&addr),
                    _ => leg.on_failure(&addr),
                }
                prop_assert!(sent < 10_000);
            }
        }
    }
}
