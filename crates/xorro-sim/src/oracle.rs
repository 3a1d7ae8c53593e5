//! The oracle: the simulator knows every live node, so it knows the true answer of a lookup.

use std::collections::BTreeMap;

use xorro_wire::NodeId;

/// The ids of every node that a lookup should be able to find (online, reachable, honest).
#[derive(Debug, Clone, Default)]
pub struct Oracle {
    ids: BTreeMap<NodeId, u32>,
}

impl Oracle {
    /// An empty oracle.
    pub fn new() -> Self {
        Oracle::default()
    }

    /// Node `index` with `id` is findable.
    pub fn insert(&mut self, id: NodeId, index: u32) {
        self.ids.insert(id, index);
    }

    /// Node with `id` is no longer findable.
    pub fn remove(&mut self, id: &NodeId) {
        self.ids.remove(id);
    }

    /// Bytes of one entry (B-tree nodes add about half as much again, not counted).
    pub fn bytes_per_entry(&self) -> f64 {
        std::mem::size_of::<(NodeId, u32)>() as f64
    }

    /// The host index of the findable node with `id`.
    pub fn host(&self, id: &NodeId) -> Option<u32> {
        self.ids.get(id).copied()
    }

    /// Every findable node (id, host index), by id.
    pub fn iter(&self) -> impl Iterator<Item = (NodeId, u32)> + '_ {
        self.ids.iter().map(|(id, i)| (*id, *i))
    }

    /// Findable nodes.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True when no node is findable.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The `k` findable nodes closest to `target` other than `exclude`, closest first.
    ///
    /// The nodes sharing the longest prefix with the target form one contiguous range of
    /// ids; the smallest such range holding k + 1 nodes contains the answer, since any node
    /// outside it is farther than every node inside.
    pub fn closest(&self, target: &NodeId, k: usize, exclude: Option<&NodeId>) -> Vec<NodeId> {
        let need = k + 1;
        for prefix in (0..=160usize).rev() {
            let (lo, hi) = prefix_range(target, prefix);
            let count = self.ids.range(lo..=hi).take(need).count();
            if count >= need || prefix == 0 {
                let mut found: Vec<NodeId> = self
                    .ids
                    .range(lo..=hi)
                    .map(|(id, _)| *id)
                    .filter(|id| Some(id) != exclude)
                    .collect();
                found.sort_by_key(|id| id.distance(target));
                found.truncate(k);
                return found;
            }
        }
        Vec::new()
    }
}

/// The lowest and highest ids sharing the first `prefix` bits with `target`.
fn prefix_range(target: &NodeId, prefix: usize) -> (NodeId, NodeId) {
    let mut lo = target.0;
    let mut hi = target.0;
    for bit in prefix..160 {
        let (byte, mask) = (bit / 8, 0x80u8 >> (bit % 8));
        lo[byte] &= !mask;
        hi[byte] |= mask;
    }
    (NodeId(lo), NodeId(hi))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn closest_matches_brute_force() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut o = Oracle::new();
        let ids: Vec<NodeId> = (0..3000).map(|_| NodeId(rng.r#gen())).collect();
        for (i, id) in ids.iter().enumerate() {
            o.insert(*id, i as u32);
        }
        for _ in 0..200 {
            let t = NodeId(rng.r#gen());
            let ex = ids[rng.gen_range(0..ids.len())];
            let mut brute: Vec<NodeId> = ids.iter().copied().filter(|i| *i != ex).collect();
            brute.sort_by_key(|i| i.distance(&t));
            brute.truncate(8);
            assert_eq!(o.closest(&t, 8, Some(&ex)), brute);
        }
        // Near the target exactly, and with fewer nodes than k.
        assert_eq!(o.closest(&ids[0], 1, None), vec![ids[0]]);
        let mut small = Oracle::new();
        small.insert(ids[1], 1);
        assert_eq!(small.closest(&ids[0], 8, None), vec![ids[1]]);
    }
}
