//! BEP 33 (DHT scrapes): the 256-byte Bloom filters of seeds (`BFsd`) and peers (`BFpe`) a
//! node returns to `get_peers` with `scrape = 1`, and the swarm size estimated from them.
//!
//! ```
//! use std::net::{IpAddr, Ipv4Addr};
//! use xorro_wire::bep33::BloomFilter;
//!
//! let mut seeds = BloomFilter::new();
//! seeds.insert(IpAddr::V4(Ipv4Addr::new(192, 168, 1, 1)));
//! let mut union = BloomFilter::from_bytes(&[0; 256]);
//! union.union(&seeds);
//! assert!(union.contains(IpAddr::V4(Ipv4Addr::new(192, 168, 1, 1))));
//! assert!((union.estimate_count() - 1.0).abs() < 0.01);
//! ```
//!
//! <https://www.bittorrent.org/beps/bep_0033.html>

use std::fmt;
use std::net::IpAddr;

use sha1::{Digest, Sha1};

use crate::message::BloomBytes;

/// BEP 33: "Each field must be 256 bytes in size".
pub const BLOOM_LEN: usize = 256;

/// BEP 33: "m = 256*8", the number of bits in a filter.
pub const BLOOM_BITS: usize = BLOOM_LEN * 8;

/// BEP 33: "k = 2", the number of bits set per inserted address.
pub const BLOOM_HASHES: u32 = 2;

/// A BEP 33 Bloom filter of IP addresses: 2048 bits, two bits per address.
///
/// Bit `i` is bit `i % 8` (counted from the least significant) of byte `i / 8`, as in the
/// BEP's pseudocode, so [`BloomFilter::as_bytes`] is exactly what goes on the wire.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct BloomFilter {
    bits: BloomBytes,
}

impl BloomFilter {
    /// An empty filter.
    pub const fn new() -> Self {
        BloomFilter {
            bits: [0; BLOOM_LEN],
        }
    }

    /// The filter carried by a `BFsd` or `BFpe` value.
    pub const fn from_bytes(bytes: &BloomBytes) -> Self {
        BloomFilter { bits: *bytes }
    }

    /// The 256 bytes to send as `BFsd` or `BFpe`.
    pub const fn as_bytes(&self) -> &BloomBytes {
        &self.bits
    }

    /// Adds an address. BEP 33: "Only IP addresses (v4 or v6) may be inserted into the bloom
    /// filters. Port numbers or host names are not allowed."
    ///
    /// An IPv4 address is hashed as its 4 bytes, an IPv6 address as its 16. An IPv4-mapped
    /// IPv6 address (`::ffff:a.b.c.d`, as a dual-stack socket reports an IPv4 peer) is the
    /// IPv4 peer it stands for and is hashed as 4 bytes.
    pub fn insert(&mut self, ip: IpAddr) {
        for i in indexes(ip) {
            self.bits[i / 8] |= 1 << (i % 8);
        }
    }

    /// True when both of the address's bits are set: it was probably inserted (a Bloom filter
    /// has false positives, never false negatives). The BEP suggests this as a sanity check of
    /// returned filters against returned `values`.
    pub fn contains(&self, ip: IpAddr) -> bool {
        indexes(ip)
            .into_iter()
            .all(|i| self.bits[i / 8] & (1 << (i % 8)) != 0)
    }

    /// Adds every address of `other`. BEP 33: "The same equation can be used to estimate the
    /// size of a union of sets represented by bloom filters simply by ORing the bits of each
    /// filter."
    pub fn union(&mut self, other: &BloomFilter) {
        for (a, b) in self.bits.iter_mut().zip(other.bits.iter()) {
            *a |= b;
        }
    }

    /// How many of the 2048 bits are clear.
    pub fn zero_bits(&self) -> u32 {
        self.bits.iter().map(|b| b.count_zeros()).sum()
    }

    /// True when no bit is set.
    pub fn is_empty(&self) -> bool {
        self.bits.iter().all(|&b| b == 0)
    }

    /// The number of distinct addresses inserted, estimated with the BEP's equation:
    ///
    /// ```text
    /// c = min(m-1, countZeroBits(bloom))
    /// size = log(c / m) / (k * log(1 - 1/m))
    /// ```
    ///
    /// As written the equation divides by zero on a saturated filter (every bit set, `c = 0`);
    /// `c` is then taken as 1, which gives the largest estimate the filter can express,
    /// [`BloomFilter::MAX_ESTIMATE`] (about 7806). BEP 33: "With the chosen parameters the
    /// false error rate approaches one around 8000 inserted values, at this point the size
    /// estimation breaks down." An empty filter estimates 0.5 (the `min(m-1, ..)` clamp), as
    /// in libtorrent; callers usually round.
    pub fn estimate_count(&self) -> f64 {
        estimate(self.zero_bits())
    }

    /// The estimate of a saturated filter, `log(1/m) / (k * log(1 - 1/m))`: the largest
    /// [`BloomFilter::estimate_count`] returns.
    pub const MAX_ESTIMATE: f64 = 7_805.703_531_919_529;
}

impl Default for BloomFilter {
    fn default() -> Self {
        BloomFilter::new()
    }
}

impl From<BloomBytes> for BloomFilter {
    fn from(bits: BloomBytes) -> Self {
        BloomFilter { bits }
    }
}

impl fmt::Debug for BloomFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BloomFilter")
            .field("bits_set", &(BLOOM_BITS as u32 - self.zero_bits()))
            .field("estimate", &self.estimate_count())
            .finish()
    }
}

/// The BEP's estimate for a filter with `zeros` clear bits.
fn estimate(zeros: u32) -> f64 {
    let m = BLOOM_BITS as f64;
    let c = f64::from(zeros.clamp(1, BLOOM_BITS as u32 - 1));
    (c / m).ln() / (f64::from(BLOOM_HASHES) * (-1.0 / m).ln_1p())
}

/// The two bit indexes of an address: the first four bytes of its SHA-1, read as two
/// little-endian 16-bit integers, each truncated to `m`.
fn indexes(ip: IpAddr) -> [usize; 2] {
    let hash = match ip.to_canonical() {
        IpAddr::V4(v4) => Sha1::digest(v4.octets()),
        IpAddr::V6(v6) => Sha1::digest(v6.octets()),
    };
    let index1 = usize::from(u16::from_le_bytes([hash[0], hash[1]])) % BLOOM_BITS;
    let index2 = usize::from(u16::from_le_bytes([hash[2], hash[3]])) % BLOOM_BITS;
    [index1, index2]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// BEP 33 test vector: the filter after inserting 192.0.2.0 - 192.0.2.255 and
    /// 2001:DB8:: - 2001:DB8::3E7.
    const BEP_FILTER: &str = "
        F6C3F5EA A07FFD91 BDE89F77 7F26FB2B FF37BDB8 FB2BBAA2 FD3DDDE7 BACFFF75 EE7CCBAE
        FE5EEDB1 FBFAFF67 F6ABFF5E 43DDBCA3 FD9B9FFD F4FFD3E9 DFF12D1B DF59DB53 DBE9FA5B
        7FF3B8FD FCDE1AFB 8BEDD7BE 2F3EE71E BBBFE93B CDEEFE14 8246C2BC 5DBFF7E7 EFDCF24F
        D8DC7ADF FD8FFFDF DDFFF7A4 BBEEDF5C B95CE81F C7FCFF1F F4FFFFDF E5F7FDCB B7FD79B3
        FA1FC77B FE07FFF9 05B7B7FF C7FEFEFF E0B8370B B0CD3F5B 7F2BD93F EB4386CF DD6F7FD5
        BFAF2E9E BFFFFEEC D67ADBF7 C67F17EF D5D75EBA 6FFEBA7F FF47A91E B1BFBB53 E8ABFB57
        62ABE8FF 237279BF EFBFEEF5 FFC5FEBF DFE5ADFF ADFEE1FB 737FFFFB FD9F6AEF FEEE76B6
        FD8F72EF";

    fn bep_addresses() -> impl Iterator<Item = IpAddr> {
        let v4 = (0..=255u8).map(|i| IpAddr::V4(Ipv4Addr::new(192, 0, 2, i)));
        let base = u128::from(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0));
        let v6 = (0..=0x3e7u128).map(move |i| IpAddr::V6(Ipv6Addr::from(base + i)));
        v4.chain(v6)
    }

    fn bep_filter() -> BloomBytes {
        let digits: String = BEP_FILTER.split_whitespace().collect();
        hex::decode(digits).unwrap().try_into().unwrap()
    }

    #[test]
    fn bep33_test_vector() {
        let mut f = BloomFilter::new();
        let mut inserted = 0;
        for ip in bep_addresses() {
            f.insert(ip);
            inserted += 1;
        }
        assert_eq!(inserted, 1256, "the BEP inserts 1256 values");
        assert_eq!(f.as_bytes(), &bep_filter());
        // "For the 1256 inserted values the calculated estimate should be 1224.9308": the
        // exact value is 1224.93089.., which the BEP truncates to four decimals.
        let estimate = f.estimate_count();
        assert_eq!(
            (estimate * 1e4).trunc(),
            12_249_308.0,
            "estimate {estimate}"
        );
        assert!(
            (estimate - 1_224.930_89).abs() < 1e-5,
            "estimate {estimate}"
        );
        assert!(bep_addresses().all(|ip| f.contains(ip)));
    }

    #[test]
    fn union_of_halves_is_the_whole() {
        let (mut a, mut b) = (BloomFilter::new(), BloomFilter::new());
        for (n, ip) in bep_addresses().enumerate() {
            if n % 2 == 0 {
                a.insert(ip)
            } else {
                b.insert(ip)
            }
        }
        a.union(&b);
        assert_eq!(a.as_bytes(), &bep_filter());
        // Union is idempotent: counting the same peers twice does not change the estimate.
        let before = a;
        a.union(&before);
        assert_eq!(a, before);
    }

    #[test]
    fn bep_pseudocode_example() {
        // "insert IP 192.168.1.1 into the filter": two bits (or one, if they collide).
        let mut f = BloomFilter::new();
        let ip = IpAddr::V4(Ipv4Addr::new(192, 168, 1, 1));
        f.insert(ip);
        let set = BLOOM_BITS as u32 - f.zero_bits();
        assert!((1..=2).contains(&set));
        assert!(f.contains(ip));
        assert!(!f.contains(IpAddr::V4(Ipv4Addr::new(192, 168, 1, 2))) || set == 2);
        let from_wire = BloomFilter::from_bytes(f.as_bytes());
        assert_eq!(from_wire, f);
        assert_eq!(BloomFilter::from(*f.as_bytes()), f);
    }

    #[test]
    fn mapped_ipv4_counts_as_ipv4() {
        let v4 = Ipv4Addr::new(198, 51, 100, 7);
        let (mut a, mut b) = (BloomFilter::new(), BloomFilter::new());
        a.insert(IpAddr::V4(v4));
        b.insert(IpAddr::V6(v4.to_ipv6_mapped()));
        assert_eq!(a, b);
    }

    #[test]
    fn estimate_extremes() {
        let empty = BloomFilter::new();
        assert!(empty.is_empty());
        assert_eq!(empty.zero_bits(), 2048);
        assert!((empty.estimate_count() - 0.5).abs() < 1e-9);
        let full = BloomFilter::from_bytes(&[0xff; BLOOM_LEN]);
        assert!(!full.is_empty());
        let max = full.estimate_count();
        assert!(max.is_finite());
        assert!((max - BloomFilter::MAX_ESTIMATE).abs() < 1e-6, "max {max}");
        // One clear bit left: the same estimate as saturated.
        let mut one_left = [0xff; BLOOM_LEN];
        one_left[17] = 0xfe;
        assert_eq!(BloomFilter::from_bytes(&one_left).estimate_count(), max);
        assert!(format!("{full:?}").contains("bits_set: 2048"));
    }

    #[test]
    fn estimate_grows_with_insertions() {
        let mut f = BloomFilter::new();
        let mut last = f.estimate_count();
        for ip in bep_addresses().take(300) {
            f.insert(ip);
            let now = f.estimate_count();
            assert!(now >= last);
            last = now;
        }
        assert!((250.0..350.0).contains(&last), "estimate {last}");
    }
}
