//! Write tokens for `announce_peer` (BEP 5) and `put` (BEP 44).
//!
//! BEP 5: "the token value should be a SHA1 hash of the IP address concatenated onto a
//! secret that changes every five minutes and tokens up to ten minutes old are accepted."
//! A token here is the first [`TokenConfig::token_len`] bytes of SHA-1(secret ‖ IP). Two
//! secrets are kept, the current one and the one before it, so a token issued just before a
//! rotation stays valid for one more interval (between one and two intervals in all).
//!
//! The requester's IP is taken in canonical form: an IPv4-mapped IPv6 address
//! (`::ffff:a.b.c.d`) is the IPv4 address, so a dual-stack socket does not break tokens.
//! The port is not part of the token (BEP 5 ties the token to the IP address only).
//!
//! Sans-IO: time comes in as `now`, new secrets come from the caller's RNG in
//! [`Tokens::handle_timeout`]. The node calls that at [`Tokens::next_rotation`].

use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use rand::Rng;
use sha1::{Digest, Sha1};
use xorro_wire::Token;

/// BEP 5: the token secret "changes every five minutes".
pub const TOKEN_ROTATION_INTERVAL: Duration = Duration::from_secs(5 * 60);

/// Default token length: 8 bytes of the SHA-1 (libtorrent sends 4, others 8 or 20; 64 bits
/// make guessing a token hopeless while keeping replies small).
pub const TOKEN_LEN: usize = 8;

/// Length of a SHA-1 digest, the longest token we can issue.
const SHA1_LEN: usize = 20;

/// How write tokens are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenConfig {
    /// How often the secret changes ([`TOKEN_ROTATION_INTERVAL`], BEP 5: five minutes).
    /// Zero rotates at every [`Tokens::handle_timeout`] and so accepts only fresh tokens.
    pub rotation_interval: Duration,
    /// Bytes of the SHA-1 kept in a token ([`TOKEN_LEN`]); clamped to 1..=20.
    pub token_len: usize,
}

impl Default for TokenConfig {
    fn default() -> Self {
        Self {
            rotation_interval: TOKEN_ROTATION_INTERVAL,
            token_len: TOKEN_LEN,
        }
    }
}

/// The secrets behind the tokens, to persist across restarts (see [`Tokens::restore`]).
///
/// `Debug` does not print the secrets.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TokenSecrets {
    /// The secret tokens are issued with now.
    pub current: [u8; SHA1_LEN],
    /// The secret before the last rotation, still accepted; `None` right after start or after
    /// a gap of more than one interval.
    pub previous: Option<[u8; SHA1_LEN]>,
}

impl fmt::Debug for TokenSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSecrets")
            .field("current", &"<redacted>")
            .field("previous", &self.previous.map(|_| "<redacted>"))
            .finish()
    }
}

/// Issues and checks write tokens; rotates its secret on a timer.
///
/// `Debug` does not print the secrets.
#[derive(Clone)]
pub struct Tokens {
    config: TokenConfig,
    secrets: TokenSecrets,
    next_rotation: Instant,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens")
            .field("config", &self.config)
            .field("secrets", &self.secrets)
            .field("next_rotation", &self.next_rotation)
            .finish()
    }
}

impl Tokens {
    /// Starts with `secret` (draw it from the node's RNG); the first rotation is one interval
    /// after `now`.
    pub fn new(config: TokenConfig, secret: [u8; SHA1_LEN], now: Instant) -> Self {
        Self::restore(
            config,
            TokenSecrets {
                current: secret,
                previous: None,
            },
            now,
        )
    }

    /// Starts from persisted secrets; the next rotation is one interval after `now`.
    ///
    /// Tokens handed out before a restart keep working for up to two intervals after it. If
    /// the node was down for longer than an interval, pass `previous: None` (or new secrets)
    /// to be strict.
    pub fn restore(config: TokenConfig, secrets: TokenSecrets, now: Instant) -> Self {
        let config = TokenConfig {
            token_len: config.token_len.clamp(1, SHA1_LEN),
            ..config
        };
        let next_rotation = later(now, config.rotation_interval);
        Self {
            config,
            secrets,
            next_rotation,
        }
    }

    /// The secrets, to persist.
    pub fn secrets(&self) -> TokenSecrets {
        self.secrets
    }

    /// The configuration in force (`token_len` clamped).
    pub fn config(&self) -> &TokenConfig {
        &self.config
    }

    /// The token for a requester at `ip`, to put in a `get_peers` or `get` reply.
    pub fn issue(&self, ip: IpAddr) -> Token {
        self.make(&self.secrets.current, ip)
    }

    /// True when `token` was issued to `ip` with the current or the previous secret.
    ///
    /// The comparison does not stop at the first differing byte.
    pub fn verify(&self, ip: IpAddr, token: &Token) -> bool {
        let current = ct_eq(
            self.make(&self.secrets.current, ip).as_bytes(),
            token.as_bytes(),
        );
        let previous = self
            .secrets
            .previous
            .is_some_and(|p| ct_eq(self.make(&p, ip).as_bytes(), token.as_bytes()));
        current | previous
    }

    /// When [`Tokens::handle_timeout`] next has work to do.
    pub fn next_rotation(&self) -> Instant {
        self.next_rotation
    }

    /// Rotates the secret when due: the current secret becomes the previous one and a new one
    /// is drawn from `rng`. When more than a whole interval was missed (the node slept), the
    /// previous secret is dropped too: its tokens are older than BEP 5 allows. Returns true if
    /// it rotated.
    pub fn handle_timeout(&mut self, now: Instant, rng: &mut impl Rng) -> bool {
        if now < self.next_rotation {
            return false;
        }
        let overdue = now.saturating_duration_since(self.next_rotation);
        let missed_one = overdue >= self.config.rotation_interval;
        self.secrets.previous = if missed_one {
            None
        } else {
            Some(self.secrets.current)
        };
        self.secrets.current = rng.r#gen();
        self.next_rotation = later(now, self.config.rotation_interval);
        tracing::debug!(missed_one, "token secret rotated");
        true
    }

    fn make(&self, secret: &[u8; SHA1_LEN], ip: IpAddr) -> Token {
        let mut hasher = Sha1::new();
        hasher.update(secret);
        match ip.to_canonical() {
            IpAddr::V4(v4) => hasher.update(v4.octets()),
            IpAddr::V6(v6) => hasher.update(v6.octets()),
        }
        let digest = hasher.finalize();
        Token::new(&digest[..self.config.token_len]).expect("token_len is clamped to 1..=20")
    }
}

/// `now + d`, with `d` clamped to a year so it cannot overflow.
fn later(now: Instant, d: Duration) -> Instant {
    now.checked_add(d.min(Duration::from_secs(365 * 24 * 3600)))
        .unwrap_or(now)
}

/// Compares two byte strings without an early exit on the first difference.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// A fixed origin for virtual time; every other instant is derived from it.
    #[allow(clippy::disallowed_methods)]
    fn t0() -> Instant {
        Instant::now()
    }

    const MIN5: Duration = Duration::from_secs(300);

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn verifies_from_same_ip_only() {
        let t = Tokens::new(TokenConfig::default(), [7; 20], t0());
        let a = ip("192.0.2.1");
        let token = t.issue(a);
        assert_eq!(token.len(), TOKEN_LEN);
        assert!(t.verify(a, &token));
        assert!(!t.verify(ip("192.0.2.2"), &token));
        assert!(!t.verify(ip("2001:db8::1"), &token));
        let wrong = Token::new(b"12345678").unwrap();
        assert!(!t.verify(a, &wrong));
        // A prefix of a valid token is not valid.
        let short = Token::new(&token.as_bytes()[..4]).unwrap();
        assert!(!t.verify(a, &short));
    }

    #[test]
    fn ipv4_mapped_is_ipv4() {
        let t = Tokens::new(TokenConfig::default(), [7; 20], t0());
        let v4 = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));
        let mapped = IpAddr::V6(Ipv4Addr::new(198, 51, 100, 7).to_ipv6_mapped());
        assert_eq!(t.issue(v4), t.issue(mapped));
        assert!(t.verify(mapped, &t.issue(v4)));
    }

    #[test]
    fn valid_after_one_rotation_invalid_after_two() {
        let start = t0();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut t = Tokens::new(TokenConfig::default(), [1; 20], start);
        let a = ip("203.0.113.9");
        let token = t.issue(a);

        assert!(!t.handle_timeout(start + MIN5 - Duration::from_millis(1), &mut rng));
        assert!(t.verify(a, &token));

        assert_eq!(t.next_rotation(), start + MIN5);
        assert!(t.handle_timeout(start + MIN5, &mut rng));
        assert!(t.verify(a, &token), "previous secret still accepted");
        assert_ne!(t.issue(a), token, "new tokens come from the new secret");

        assert!(t.handle_timeout(t.next_rotation(), &mut rng));
        assert!(
            !t.verify(a, &token),
            "two rotations later the token is stale"
        );
    }

    #[test]
    fn long_sleep_drops_previous_secret() {
        let start = t0();
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let mut t = Tokens::new(TokenConfig::default(), [1; 20], start);
        let a = ip("203.0.113.9");
        let token = t.issue(a);
        // Woken 12 minutes later: one rotation is made, but the token is 12 minutes old.
        assert!(t.handle_timeout(start + Duration::from_secs(12 * 60), &mut rng));
        assert!(!t.verify(a, &token));
        assert_eq!(t.secrets().previous, None);
        assert_eq!(t.next_rotation(), start + Duration::from_secs(17 * 60));
    }

    #[test]
    fn deterministic_given_secret_and_seed() {
        let start = t0();
        let run = || {
            let mut rng = ChaCha8Rng::seed_from_u64(42);
            let mut t = Tokens::new(TokenConfig::default(), [9; 20], start);
            let mut out = vec![t.issue(ip("192.0.2.1"))];
            for i in 1..4 {
                t.handle_timeout(start + MIN5 * i, &mut rng);
                out.push(t.issue(ip("192.0.2.1")));
            }
            (out, t.secrets())
        };
        assert_eq!(run(), run());
        // Same secret in two instances: same tokens.
        let a = Tokens::new(TokenConfig::default(), [9; 20], start);
        let b = Tokens::new(TokenConfig::default(), [9; 20], start + MIN5);
        assert_eq!(a.issue(ip("::1")), b.issue(ip("::1")));
    }

    #[test]
    fn sha1_of_secret_and_ip() {
        // The token is the prefix of SHA-1(secret ‖ IPv4 octets).
        let t = Tokens::new(
            TokenConfig {
                token_len: 20,
                ..TokenConfig::default()
            },
            [0; 20],
            t0(),
        );
        let mut input = vec![0u8; 20];
        input.extend_from_slice(&[10, 0, 0, 1]);
        let expected = Sha1::digest(&input);
        assert_eq!(t.issue(ip("10.0.0.1")).as_bytes(), expected.as_slice());
    }

    #[test]
    fn token_len_clamped() {
        let start = t0();
        let zero = Tokens::new(
            TokenConfig {
                token_len: 0,
                ..TokenConfig::default()
            },
            [3; 20],
            start,
        );
        assert_eq!(zero.issue(ip("::1")).len(), 1);
        let long = Tokens::new(
            TokenConfig {
                token_len: 99,
                ..TokenConfig::default()
            },
            [3; 20],
            start,
        );
        assert_eq!(long.issue(ip("::1")).len(), 20);
    }

    #[test]
    fn secrets_round_trip() {
        let start = t0();
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut t = Tokens::new(TokenConfig::default(), [4; 20], start);
        let a = ip("2001:db8::42");
        let old = t.issue(a);
        t.handle_timeout(start + MIN5, &mut rng);
        let new = t.issue(a);
        let restored = Tokens::restore(TokenConfig::default(), t.secrets(), start + MIN5 * 10);
        assert!(restored.verify(a, &old));
        assert!(restored.verify(a, &new));
        assert_eq!(restored.next_rotation(), start + MIN5 * 11);
        assert!(
            !format!("{restored:?}").contains("4, 4"),
            "Debug hides the secrets"
        );
    }

    proptest! {
        #[test]
        fn other_ip_never_verifies(a: [u8; 16], b: [u8; 16], secret: [u8; 20]) {
            prop_assume!(a != b);
            let t = Tokens::new(TokenConfig::default(), secret, t0());
            let (a, b) = (IpAddr::V6(Ipv6Addr::from(a)), IpAddr::V6(Ipv6Addr::from(b)));
            prop_assume!(a.to_canonical() != b.to_canonical());
            prop_assert!(t.verify(a, &t.issue(a)));
            prop_assert!(!t.verify(b, &t.issue(a)));
        }
    }
}
