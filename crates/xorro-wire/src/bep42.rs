//! BEP 42 (DHT security extension): node ids tied to the node's external IP address.
//!
//! The first 21 bits of a secure id are the CRC32C of the masked IP combined with a 3-bit
//! random number `r`, which is stored in the low bits of the id's last byte so that anyone
//! can check the id against the address it is seen from:
//!
//! ```
//! use std::net::{IpAddr, Ipv4Addr};
//! use xorro_wire::bep42::{is_exempt, is_secure, secure_node_id};
//!
//! let ip = IpAddr::V4(Ipv4Addr::new(124, 31, 75, 21));
//! let random = [7u8; 20]; // from the caller's RNG
//! let id = secure_node_id(ip, random);
//! assert!(is_secure(&id, ip));
//! assert!(!is_secure(&id, IpAddr::V4(Ipv4Addr::new(124, 31, 75, 22))));
//! assert!(is_exempt(IpAddr::V4(Ipv4Addr::new(192, 168, 0, 10))));
//! ```
//!
//! IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) are treated as the IPv4 address they carry
//! everywhere in this module: that is the address the peer has on the IPv4 internet.
//!
//! <https://www.bittorrent.org/beps/bep_0042.html>

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::id::NodeId;

/// BEP 42: `crc32c((ip & 0x030f3fff) | (r << 29))`, the mask applied to an IPv4 address.
pub const IPV4_MASK: [u8; 4] = [0x03, 0x0f, 0x3f, 0xff];

/// BEP 42: `crc32c((ip & 0x0103070f1f3f7fff) | (r << 61))` "(`ip` is the high 64 bits of the
/// address)", the mask applied to the first 8 bytes of an IPv6 address.
pub const IPV6_MASK: [u8; 8] = [0x01, 0x03, 0x07, 0x0f, 0x1f, 0x3f, 0x7f, 0xff];

/// BEP 42: "The first (most significant) 21 bits of the node ID used in the DHT MUST match
/// the first 21 bits of the resulting hash."
pub const SECURE_PREFIX_BITS: u32 = 21;

/// A node id that is secure for `ip`, with every bit the BEP leaves free taken from `rand`.
///
/// BEP 42: "``r`` is a random number in the range [0, 7]" and "The last byte of the hash
/// MUST match the random number (``r``) used to generate the hash". As in the BEP's example
/// code, `rand[19]` becomes the id's last byte and its low 3 bits are `r`; the first 21 bits
/// are the CRC; the low 3 bits of byte 2 and bytes 3 to 18 are copied from `rand`. So
/// `secure_node_id(ip, id) == id` for any id that is secure for `ip`.
///
/// For an address [`is_exempt`] from verification any id will do, but this one works too.
pub fn secure_node_id(ip: IpAddr, rand: [u8; 20]) -> NodeId {
    let crc = ip_crc(ip, rand[19]).to_be_bytes();
    let mut id = rand;
    id[0] = crc[0];
    id[1] = crc[1];
    id[2] = (crc[2] & 0xf8) | (rand[2] & 0x07);
    NodeId(id)
}

/// True when `id` is a valid BEP 42 id for a node seen at `ip`: its first 21 bits match the
/// CRC32C of the masked `ip` with the `r` read from the id's last byte.
///
/// This is the formula only: a node at an address that [`is_exempt`] is not required to
/// pass it, so check both ("Any peer on a local network address is exempt from this node ID
/// verification").
pub fn is_secure(id: &NodeId, ip: IpAddr) -> bool {
    let crc = ip_crc(ip, id.0[19]).to_be_bytes();
    id.0[0] == crc[0] && id.0[1] == crc[1] && (id.0[2] ^ crc[2]) & 0xf8 == 0
}

/// True for an address exempt from node id verification.
///
/// BEP 42: "Any peer on a local network address is exempt from this node ID verification.
/// This includes the following IP blocks: 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16
/// (reserved for local networks), 169.254.0.0/16 (reserved for self-assigned IPs),
/// 127.0.0.0/8 (reserved for loopback)."
///
/// The BEP lists no IPv6 blocks; the equivalents exempted here are the loopback `::1`,
/// unique local addresses `fc00::/7` and link-local addresses `fe80::/10`.
pub fn is_exempt(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => is_exempt_v4(v4),
        IpAddr::V6(v6) => is_exempt_v6(v6),
    }
}

fn is_exempt_v4(ip: Ipv4Addr) -> bool {
    // private: 10/8, 172.16/12, 192.168/16; link_local: 169.254/16; loopback: 127/8.
    ip.is_private() || ip.is_link_local() || ip.is_loopback()
}

fn is_exempt_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    ip.is_loopback() || (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
}

/// The CRC32C of the masked address with `r = rand & 7` in its top 3 bits, as in the BEP's
/// example code: mask each octet, OR `r << 5` into the first, hash 4 (IPv4) or 8 (IPv6)
/// octets.
fn ip_crc(ip: IpAddr, rand: u8) -> u32 {
    let r = rand & 0x07;
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let mut octets = v4.octets();
            for (o, m) in octets.iter_mut().zip(IPV4_MASK) {
                *o &= m;
            }
            octets[0] |= r << 5;
            crc32c::crc32c(&octets)
        }
        IpAddr::V6(v6) => {
            let mut octets = [0u8; 8];
            octets.copy_from_slice(&v6.octets()[..8]);
            for (o, m) in octets.iter_mut().zip(IPV6_MASK) {
                *o &= m;
            }
            octets[0] |= r << 5;
            crc32c::crc32c(&octets)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The BEP's test vectors: IP, rand (decimal), example node id (hex). Only the first 21
    /// bits and the last byte are determined by the IP and rand; the rest is random.
    const BEP_VECTORS: [(Ipv4Addr, u8, &str); 5] = [
        (
            Ipv4Addr::new(124, 31, 75, 21),
            1,
            "5fbfbff10c5d6a4ec8a88e4c6ab4c28b95eee401",
        ),
        (
            Ipv4Addr::new(21, 75, 31, 124),
            86,
            "5a3ce9c14e7a08645677bbd1cfe7d8f956d53256",
        ),
        (
            Ipv4Addr::new(65, 23, 51, 170),
            22,
            "a5d43220bc8f112a3d426c84764f8c2a1150e616",
        ),
        (
            Ipv4Addr::new(84, 124, 73, 14),
            65,
            "1b0321dd1bb1fe518101ceef99462b947a01ff41",
        ),
        (
            Ipv4Addr::new(43, 213, 53, 83),
            90,
            "e56f6cbf5b7c4be0237986d5243b87aa6d51305a",
        ),
    ];

    fn bep_id(hex: &str) -> NodeId {
        hex.parse().unwrap()
    }

    /// The bitwise CRC32C (Castagnoli, reflected polynomial 0x82F63B78), to check the crate.
    fn crc32c_bitwise(data: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in data {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0x82f6_3b78
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    /// The BEP's expression form, as opposed to the byte-wise example code used above.
    fn expression_crc(ip: IpAddr, r: u8) -> u32 {
        match ip {
            IpAddr::V4(v4) => {
                let x = (u32::from(v4) & 0x030f_3fff) | (u32::from(r) << 29);
                crc32c_bitwise(&x.to_be_bytes())
            }
            IpAddr::V6(v6) => {
                let high = (u128::from(v6) >> 64) as u64;
                let x = (high & 0x0103_070f_1f3f_7fff) | (u64::from(r) << 61);
                crc32c_bitwise(&x.to_be_bytes())
            }
        }
    }

    #[test]
    fn bep42_vectors_derive() {
        for (ip, rand, hex) in BEP_VECTORS {
            let ip = IpAddr::V4(ip);
            let example = bep_id(hex);
            // The example id supplies the random bits: deriving reproduces it exactly.
            assert_eq!(secure_node_id(ip, example.0), example, "{ip}");
            // From other random bits, the bold parts still come out.
            let mut random = [0xa5u8; 20];
            random[19] = rand;
            let id = secure_node_id(ip, random);
            assert_eq!(id.0[..2], example.0[..2], "{ip}");
            assert_eq!(id.0[2] & 0xf8, example.0[2] & 0xf8, "{ip}");
            assert_eq!(id.0[2] & 0x07, 0xa5 & 0x07);
            assert_eq!(id.0[3..19], [0xa5; 16]);
            assert_eq!(id.0[19], rand, "{ip}");
        }
    }

    #[test]
    fn bep42_vectors_verify() {
        for (ip, rand, hex) in BEP_VECTORS {
            let example = bep_id(hex);
            assert_eq!(example.0[19], rand);
            assert!(is_secure(&example, IpAddr::V4(ip)), "{ip}");
            assert!(!is_exempt(IpAddr::V4(ip)), "{ip}");
            // As an IPv4-mapped IPv6 address it is the same node.
            assert!(is_secure(&example, IpAddr::V6(ip.to_ipv6_mapped())), "{ip}");
        }
    }

    #[test]
    fn wrong_ip_or_tampered_id_fails() {
        let (ip, _, hex) = BEP_VECTORS[0];
        let id = bep_id(hex);
        // 124.31.75.21 -> another address in the same /8 whose masked bits differ.
        assert!(!is_secure(&id, IpAddr::V4(Ipv4Addr::new(124, 31, 75, 22))));
        // Every other vector's IP rejects this id.
        for (other, _, _) in &BEP_VECTORS[1..] {
            assert!(!is_secure(&id, IpAddr::V4(*other)), "{other}");
        }
        // Flipping any of the 21 prefix bits, or r, breaks it; the free bits do not matter.
        for bit in 0..160 {
            let mut t = id;
            t.0[bit / 8] ^= 0x80 >> (bit % 8);
            let constrained = bit < SECURE_PREFIX_BITS as usize || bit >= 157;
            assert_eq!(is_secure(&t, IpAddr::V4(ip)), !constrained, "bit {bit}");
        }
        // Masked-out bits of the IP do not matter: 124.31.75.21 and 0.15.11.21 agree.
        assert!(is_secure(&id, IpAddr::V4(Ipv4Addr::new(0, 15, 11, 21))));
    }

    #[test]
    fn crate_crc_matches_the_bep_expression() {
        for (ip, rand, _) in BEP_VECTORS {
            for r in 0..8 {
                assert_eq!(
                    ip_crc(IpAddr::V4(ip), r | (rand & 0xf8)),
                    expression_crc(IpAddr::V4(ip), r)
                );
            }
        }
        // CRC-32C check value.
        assert_eq!(crc32c_bitwise(b"123456789"), 0xe306_9283);
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
    }

    #[test]
    fn ipv6() {
        let ip: IpAddr = "2001:db8:85a3:8d3:1319:8a2e:370:7348".parse().unwrap();
        for r in 0..=255u8 {
            let mut random = [0x3cu8; 20];
            random[19] = r;
            let id = secure_node_id(ip, random);
            let crc = expression_crc(ip, r & 7).to_be_bytes();
            assert_eq!(id.0[..2], crc[..2]);
            assert_eq!(id.0[2] & 0xf8, crc[2] & 0xf8);
            assert_eq!(id.0[19], r);
            assert!(is_secure(&id, ip));
            // Only the high 64 bits count: the interface identifier is free.
            let same_net: IpAddr = "2001:db8:85a3:8d3::1".parse().unwrap();
            assert!(is_secure(&id, same_net));
            let other_net: IpAddr = "2001:db9:85a3:8d3:1319:8a2e:370:7348".parse().unwrap();
            assert!(!is_secure(&id, other_net));
            // An IPv4 id is not an IPv6 id.
            assert!(!is_secure(&id, IpAddr::V4(Ipv4Addr::new(32, 1, 13, 184))));
        }
    }

    #[test]
    fn exempt_ranges() {
        let exempt = [
            "10.0.0.1",
            "10.255.255.255",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.3.4",
            "127.0.0.1",
            "127.255.0.9",
            "::1",
            "fc00::1",
            "fdff:ffff::1",
            "fe80::1",
            "febf::1",
            "::ffff:192.168.1.1",
        ];
        for ip in exempt {
            assert!(is_exempt(ip.parse().unwrap()), "{ip}");
        }
        let public = [
            "9.255.255.255",
            "11.0.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.167.255.255",
            "192.169.0.0",
            "169.253.0.1",
            "128.0.0.1",
            "124.31.75.21",
            "2001:db8::1",
            "fec0::1",
            "fbff::1",
            "::ffff:8.8.8.8",
        ];
        for ip in public {
            assert!(!is_exempt(ip.parse().unwrap()), "{ip}");
        }
    }
}
