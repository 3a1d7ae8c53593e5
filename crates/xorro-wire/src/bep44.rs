//! BEP 44 (storing arbitrary data in the DHT): item targets, the signing buffer of mutable
//! items, and ed25519 signing and verification.
//!
//! An immutable item is stored under the SHA-1 of its bencoded value; a mutable item under
//! the SHA-1 of its public key and salt, and carries a signature over its salt, sequence
//! number and value:
//!
//! ```
//! use xorro_wire::RawValue;
//! use xorro_wire::bep44::{Keypair, mutable_target, verify};
//!
//! let keypair = Keypair::from_seed([7; 32]); // the seed comes from the caller's RNG
//! let v = RawValue::new(b"12:Hello World!").unwrap();
//! let sig = keypair.sign(Some(b"foobar"), 1, &v);
//! let key = keypair.public_key();
//! assert!(verify(&key, &sig, Some(b"foobar"), 1, &v));
//! assert!(!verify(&key, &sig, Some(b"foobar"), 2, &v));
//! let target = mutable_target(&key, Some(b"foobar"));
//! # let _ = target;
//! ```
//!
//! Everything here works on the value's exact bytes ([`RawValue`]). BEP 44: "It is important
//! to use the verbatim bencoded representation as it appeared in the message. Decoding and
//! then re-encoding bencoded structures is not necessarily an identity operation."
//!
//! <https://www.bittorrent.org/beps/bep_0044.html>

use std::borrow::Borrow;
use std::fmt;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use sha1::{Digest, Sha1};

use crate::bytes::{PublicKey, Signature};
use crate::id::NodeId;
use crate::message::{PublicKeyBytes, RawValue, SignatureBytes};
use crate::value::{write_bytes, write_int};

/// BEP 44: "Storing nodes MAY reject ``put`` requests where the bencoded form of ``v`` is
/// longer than 1000 bytes. In other words, it's not safe to assume storing more than 1000
/// bytes will succeed." (error 205, "message (``v`` field) too big").
pub const MAX_VALUE_LEN: usize = 1000;

/// BEP 44: "The salt string MUST NOT be longer than 64 bytes." (error 207, "salt (``salt``
/// field) too big").
pub const MAX_SALT_LEN: usize = 64;

/// The target of an immutable item: the SHA-1 of its bencoded value.
///
/// BEP 44: "Immutable items are stored under their SHA-1 hash".
pub fn immutable_target(v: &RawValue<'_>) -> NodeId {
    NodeId(Sha1::digest(v.as_bytes()).into())
}

/// The target of a mutable item: the SHA-1 of the public key followed by the salt.
///
/// BEP 44: "When looking up a mutable item, the ``target`` field MUST be the SHA-1 hash of
/// this key concatenated with the ``salt``, if present." An empty salt is the same as none.
///
/// `key` is a [`PublicKey`] or the bytes a decoded message borrows.
pub fn mutable_target(key: &impl Borrow<PublicKeyBytes>, salt: Option<&[u8]>) -> NodeId {
    let mut h = Sha1::new();
    h.update(key.borrow());
    if let Some(salt) = salt {
        h.update(salt);
    }
    NodeId(h.finalize().into())
}

/// Writes the bytes a mutable item's signature covers into `out` (cleared first):
/// `4:salt<len>:<salt>3:seqi<seq>e1:v<v>`.
///
/// BEP 44: "Concatenate ("4:salt" *length-of-salt* ":" *salt*) "3:seqi" *seq* "e1:v" *len*
/// ":" and the encoded value. [...] The salt is in parenthesis because it is optional. It is
/// only prepended if a non-empty salt is specified in the ``put`` request." So `None` and
/// `Some(b"")` give the same buffer. `v` is copied verbatim.
pub fn signing_buffer(salt: Option<&[u8]>, seq: i64, v: &RawValue<'_>, out: &mut Vec<u8>) {
    out.clear();
    if let Some(salt) = salt.filter(|s| !s.is_empty()) {
        write_bytes(out, b"salt");
        write_bytes(out, salt);
    }
    write_bytes(out, b"seq");
    write_int(out, seq);
    write_bytes(out, b"v");
    out.extend_from_slice(v.as_bytes());
}

/// True when `sig` is `key`'s signature over the signing buffer of `salt`, `seq` and `v`.
///
/// False, never a panic, for a key that is not a valid curve point. Verification is strict
/// (`verify_strict`: no small-order keys, no non-canonical signatures), which every honest
/// ed25519 signer passes; a weak key could otherwise sign many values at once.
///
/// `key` and `sig` are a [`PublicKey`] and a [`Signature`] or the bytes a decoded message
/// borrows.
pub fn verify(
    key: &impl Borrow<PublicKeyBytes>,
    sig: &impl Borrow<SignatureBytes>,
    salt: Option<&[u8]>,
    seq: i64,
    v: &RawValue<'_>,
) -> bool {
    let Ok(key) = VerifyingKey::from_bytes(key.borrow()) else {
        return false;
    };
    let sig = ed25519_dalek::Signature::from_bytes(sig.borrow());
    let mut buf = Vec::with_capacity(MAX_SALT_LEN + MAX_VALUE_LEN + 48);
    signing_buffer(salt, seq, v, &mut buf);
    key.verify_strict(&buf, &sig).is_ok()
}

/// An ed25519 key pair that signs mutable items.
///
/// `Debug` prints the public key only.
#[derive(Clone)]
pub struct Keypair {
    signing: SigningKey,
}

impl Keypair {
    /// The key pair of a 32-byte secret seed (RFC 8032's private key), drawn by the caller.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Keypair {
            signing: SigningKey::from_bytes(&seed),
        }
    }

    /// The 32-byte secret seed, to store the key pair.
    pub fn to_seed(&self) -> [u8; 32] {
        self.signing.to_bytes()
    }

    /// The public key (`k`).
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.signing.verifying_key().to_bytes())
    }

    /// Signs the signing buffer of `salt`, `seq` and `v` (see [`signing_buffer`]).
    ///
    /// Limits are the storing node's to check: this signs a salt longer than
    /// [`MAX_SALT_LEN`] or a value longer than [`MAX_VALUE_LEN`] all the same.
    pub fn sign(&self, salt: Option<&[u8]>, seq: i64, v: &RawValue<'_>) -> Signature {
        let mut buf = Vec::new();
        signing_buffer(salt, seq, v, &mut buf);
        Signature(self.signing.sign(&buf).to_bytes())
    }
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keypair")
            .field("public_key", &self.public_key())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::hazmat::{ExpandedSecretKey, raw_sign};

    const HELLO: &[u8] = b"12:Hello World!";

    /// The BEP's public key for tests 1 and 2.
    const BEP_PUBLIC: &str = "77ff84905a91936367c01360803104f92432fcd904a43511876df5cdf3e7e548";
    /// The BEP's "private key": the 64-byte expanded form (clamped scalar, then the nonce
    /// prefix), as libtorrent and nightcracker's ed25519 store it, not an RFC 8032 seed.
    const BEP_PRIVATE: &str = "e06d3183d14159228433ed599221b80bd0a5ce8352e4bdf0262f76786ef1c74d\
                               b7e7a9fea2c0eb269d61e3b38e450a22e754941ac78479d6c54e1faf6037881d";

    fn hex<const N: usize>(s: &str) -> [u8; N] {
        hex::decode(s).unwrap().try_into().unwrap()
    }

    fn hello() -> RawValue<'static> {
        RawValue::new(HELLO).unwrap()
    }

    struct MutableVector {
        salt: Option<&'static [u8]>,
        buffer: &'static [u8],
        target: &'static str,
        signature: &'static str,
    }

    const TEST1: MutableVector = MutableVector {
        salt: None,
        buffer: b"3:seqi1e1:v12:Hello World!",
        target: "4a533d47ec9c7d95b1ad75f576cffc641853b750",
        signature: "305ac8aeb6c9c151fa120f120ea2cfb923564e11552d06a5d856091e5e853cff\
                    1260d3f39e4999684aa92eb73ffd136e6f4f3ecbfda0ce53a1608ecd7ae21f01",
    };

    const TEST2: MutableVector = MutableVector {
        salt: Some(b"foobar"),
        buffer: b"4:salt6:foobar3:seqi1e1:v12:Hello World!",
        target: "411eba73b6f087ca51a3795d9c8c938d365e32c1",
        signature: "6834284b6b24c3204eb2fea824d82f88883a3d95e8b4a21b8c0ded553d17d17d\
                    df9a8a7104b1258f30bed3787e6cb896fca78c58f8e03b5f18f14951a87d9a08",
    };

    fn check_mutable_vector(t: &MutableVector) {
        let key = PublicKey(hex(BEP_PUBLIC));
        let sig = Signature(hex(t.signature));
        let v = hello();

        let mut buf = b"stale".to_vec();
        signing_buffer(t.salt, 1, &v, &mut buf);
        assert_eq!(buf, t.buffer);

        assert_eq!(
            mutable_target(&key, t.salt),
            t.target.parse::<NodeId>().unwrap()
        );
        assert!(verify(&key, &sig, t.salt, 1, &v));

        // The BEP's private key gives the BEP's public key and (ed25519 is deterministic)
        // the BEP's signature.
        let esk = ExpandedSecretKey::from_bytes(&hex(BEP_PRIVATE));
        let vk = VerifyingKey::from(&esk);
        assert_eq!(vk.to_bytes(), key.0);
        let ours = raw_sign::<ed25519_dalek::Sha512>(&esk, t.buffer, &vk);
        assert_eq!(ours.to_bytes(), sig.0);
    }

    #[test]
    fn bep44_test1_mutable() {
        check_mutable_vector(&TEST1);
    }

    #[test]
    fn bep44_test2_mutable_with_salt() {
        check_mutable_vector(&TEST2);
        // The salt is signed: test 2's signature does not verify without it, nor test 1's
        // with it.
        let key = PublicKey(hex(BEP_PUBLIC));
        assert!(!verify(
            &key,
            &Signature(hex(TEST2.signature)),
            None,
            1,
            &hello()
        ));
        assert!(!verify(
            &key,
            &Signature(hex(TEST1.signature)),
            Some(b"foobar"),
            1,
            &hello()
        ));
    }

    #[test]
    fn bep44_test3_immutable() {
        let target: NodeId = "e5f96f6f38320f0f33959cb4d3d656452117aadb".parse().unwrap();
        assert_eq!(immutable_target(&hello()), target);
    }

    #[test]
    fn bep44_example_buffers() {
        // The prose examples of "Mutable Items" and "Signature Verification".
        let mut buf = Vec::new();
        let v = RawValue::new(b"12:Hello world!").unwrap();
        signing_buffer(None, 4, &v, &mut buf);
        assert_eq!(buf, b"3:seqi4e1:v12:Hello world!");
        signing_buffer(Some(b"foobar"), 4, &v, &mut buf);
        assert_eq!(buf, b"4:salt6:foobar3:seqi4e1:v12:Hello world!");
        signing_buffer(None, 1, &hello(), &mut buf);
        assert_eq!(buf, b"3:seqi1e1:v12:Hello World!");
    }

    #[test]
    fn empty_salt_is_no_salt() {
        // "if ``salt`` is specified and an empty string, it is as if it was not specified"
        let key = PublicKey(hex(BEP_PUBLIC));
        let (mut a, mut b) = (Vec::new(), Vec::new());
        signing_buffer(None, 1, &hello(), &mut a);
        signing_buffer(Some(b""), 1, &hello(), &mut b);
        assert_eq!(a, b);
        assert_eq!(mutable_target(&key, Some(b"")), mutable_target(&key, None));
        assert!(verify(
            &key,
            &Signature(hex(TEST1.signature)),
            Some(b""),
            1,
            &hello()
        ));
    }

    #[test]
    fn negative_and_extreme_seq() {
        let mut buf = Vec::new();
        let v = RawValue::new(b"i0e").unwrap();
        signing_buffer(None, -5, &v, &mut buf);
        assert_eq!(buf, b"3:seqi-5e1:vi0e");
        signing_buffer(None, i64::MAX, &v, &mut buf);
        assert_eq!(buf, b"3:seqi9223372036854775807e1:vi0e");
    }

    #[test]
    fn sign_then_verify() {
        let kp = Keypair::from_seed([0x42; 32]);
        assert_eq!(kp.to_seed(), [0x42; 32]);
        assert_eq!(
            Keypair::from_seed(kp.to_seed()).public_key(),
            kp.public_key()
        );
        let key = kp.public_key();
        let v = RawValue::new(b"d4:name5:xorroe").unwrap();
        for salt in [None, Some(&b"s"[..]), Some(&[0xff; MAX_SALT_LEN][..])] {
            for seq in [0, 1, -1, i64::MAX] {
                let sig = kp.sign(salt, seq, &v);
                assert!(verify(&key, &sig, salt, seq, &v));
                assert!(!verify(&key, &sig, salt, seq.wrapping_add(1), &v));
                let other = RawValue::new(b"d4:name5:xorrfe").unwrap();
                assert!(!verify(&key, &sig, salt, seq, &other));
                assert!(!verify(
                    &Keypair::from_seed([0x43; 32]).public_key(),
                    &sig,
                    salt,
                    seq,
                    &v
                ));
            }
        }
    }

    #[test]
    fn any_flipped_bit_fails() {
        let key = PublicKey(hex(BEP_PUBLIC));
        let sig = Signature(hex(TEST2.signature));
        let salt = TEST2.salt;
        for bit in 0..512 {
            let mut s = sig;
            s.0[bit / 8] ^= 1 << (bit % 8);
            assert!(!verify(&key, &s, salt, 1, &hello()), "signature bit {bit}");
        }
        for bit in 0..256 {
            let mut k = key;
            k.0[bit / 8] ^= 1 << (bit % 8);
            assert!(!verify(&k, &sig, salt, 1, &hello()), "key bit {bit}");
        }
        let mut value = HELLO.to_vec();
        value[5] ^= 0x01;
        assert!(!verify(
            &key,
            &sig,
            salt,
            1,
            &RawValue::new(&value).unwrap()
        ));
        assert!(!verify(&key, &sig, Some(b"foobas"), 1, &hello()));
    }

    #[test]
    fn invalid_and_weak_keys_are_rejected_without_panic() {
        let sig = Signature(hex(TEST1.signature));
        // Not a point on the curve (y = 2 has no x).
        let mut not_a_point = [0u8; 32];
        not_a_point[0] = 2;
        assert!(VerifyingKey::from_bytes(&not_a_point).is_err());
        assert!(!verify(&PublicKey(not_a_point), &sig, None, 1, &hello()));
        for key in [[0u8; 32], [0xff; 32]] {
            assert!(!verify(&PublicKey(key), &sig, None, 1, &hello()));
        }
        // The identity point is a valid encoding but a weak (small-order) key: with the
        // signature (R = identity, s = 0) it "signs" every message under plain verification.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let mut forged = [0u8; 64];
        forged[0] = 1;
        assert!(!verify(
            &PublicKey(identity),
            &Signature(forged),
            None,
            1,
            &hello()
        ));
        // A signature whose s is not reduced is rejected.
        let mut big_s = sig;
        big_s.0[32..].copy_from_slice(&[0xff; 32]);
        assert!(!verify(
            &PublicKey(hex(BEP_PUBLIC)),
            &big_s,
            None,
            1,
            &hello()
        ));
    }

    #[test]
    fn debug_hides_the_secret() {
        let kp = Keypair::from_seed([0xab; 32]);
        let shown = format!("{kp:?}");
        assert!(shown.contains(&kp.public_key().to_string()), "{shown}");
        assert!(!shown.contains("abababab"), "{shown}");
    }
}
