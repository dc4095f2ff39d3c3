//! The kiosk token: a wall screen opens `/?kiosk=TOKEN` once and gets a
//! cookie that lets it read the pages and the read-only API.
//!
//! Only the SHA-256 of the configured token is kept in memory; a token
//! given in `?kiosk=` is hashed and compared with it in constant time. The
//! cookie never holds the token: it holds its expiry and an HMAC-SHA256 of
//! that expiry keyed with the token's hash (`v1.<expiry unix s>.<hex mac>`),
//! so a copied cookie stops working at its expiry and every cookie stops
//! working when the token is changed. A cookie used after half of its
//! lifetime is replaced by a fresh one, so a wall that stays on keeps
//! working while a cookie that is not used dies.

use std::fmt;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The name of the cookie.
pub const COOKIE: &str = "bms_kiosk";

/// What the cookie's MAC covers besides the expiry (a version label, so
/// that another use of the same key can never produce a valid cookie).
const MAC_LABEL: &[u8] = b"bms-kiosk-cookie-v1:";

/// The check of the configured kiosk token.
#[derive(Clone)]
pub struct Kiosk {
    /// SHA-256 of the token.
    hash: [u8; 32],
    /// How long a cookie lasts.
    lifetime: Duration,
}

impl fmt::Debug for Kiosk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kiosk")
            .field("hash", &"**REDACTED**")
            .field("lifetime", &self.lifetime)
            .finish()
    }
}

/// What a presented cookie is worth.
#[derive(Debug, PartialEq, Eq)]
pub enum CookieCheck {
    /// Valid; `renew` when past half of its lifetime.
    Valid { renew: bool },
    /// Missing, malformed, forged or expired.
    Invalid,
}

fn sha256(s: &[u8]) -> [u8; 32] {
    Sha256::digest(s).into()
}

/// Equality of two digests whose time does not depend on where they differ.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Kiosk {
    /// The check of `token`, with cookies lasting `lifetime`.
    pub fn new(token: &str, lifetime: Duration) -> Kiosk {
        Kiosk {
            hash: sha256(token.as_bytes()),
            lifetime,
        }
    }

    /// Whether `candidate` is the configured token (constant time).
    pub fn token_matches(&self, candidate: &str) -> bool {
        same(&sha256(candidate.as_bytes()), &self.hash)
    }

    fn mac(&self, expiry_s: u64) -> Hmac<Sha256> {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.hash)
            .expect("invariant: HMAC takes a key of any length");
        m.update(MAC_LABEL);
        m.update(expiry_s.to_string().as_bytes());
        m
    }

    /// A fresh cookie value made at `now_s` (Unix seconds).
    pub fn cookie_value(&self, now_s: u64) -> String {
        let expiry = now_s.saturating_add(self.lifetime.as_secs());
        let tag = self.mac(expiry).finalize().into_bytes();
        format!("v1.{expiry}.{}", hex::encode(tag))
    }

    /// The `Set-Cookie` header value of a fresh cookie.
    pub fn set_cookie(&self, now_s: u64, secure: bool) -> String {
        format!(
            "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
            self.cookie_value(now_s),
            self.lifetime.as_secs(),
            if secure { "; Secure" } else { "" }
        )
    }

    /// Checks a cookie value at `now_s` (Unix seconds).
    pub fn check_cookie(&self, value: &str, now_s: u64) -> CookieCheck {
        let mut parts = value.split('.');
        let (Some("v1"), Some(expiry), Some(tag), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return CookieCheck::Invalid;
        };
        let (Ok(expiry_s), Ok(tag)) = (expiry.parse::<u64>(), hex::decode(tag)) else {
            return CookieCheck::Invalid;
        };
        // `verify_slice` compares in constant time.
        if self.mac(expiry_s).verify_slice(&tag).is_err() || expiry_s <= now_s {
            return CookieCheck::Invalid;
        }
        let left = expiry_s - now_s;
        CookieCheck::Valid {
            renew: left < self.lifetime.as_secs() / 2,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const DAY: u64 = 86400;

    fn kiosk() -> Kiosk {
        Kiosk::new("wall-token-1", Duration::from_secs(7 * DAY))
    }

    #[test]
    fn the_token_is_checked_against_its_hash_only() {
        let k = kiosk();
        assert!(k.token_matches("wall-token-1"));
        assert!(!k.token_matches("wall-token-2"));
        assert!(!k.token_matches(""));
        assert!(!format!("{k:?}").contains("wall-token-1"));
    }

    #[test]
    fn the_cookie_holds_no_token_and_expires() {
        let k = kiosk();
        let now = 1_700_000_000;
        let v = k.cookie_value(now);
        assert!(!v.contains("wall-token-1"), "{v}");
        assert_eq!(
            k.check_cookie(&v, now + 1),
            CookieCheck::Valid { renew: false }
        );
        assert_eq!(
            k.check_cookie(&v, now + 4 * DAY),
            CookieCheck::Valid { renew: true }
        );
        assert_eq!(k.check_cookie(&v, now + 7 * DAY), CookieCheck::Invalid);
    }

    #[test]
    fn a_forged_or_foreign_cookie_is_refused() {
        let k = kiosk();
        let now = 1_700_000_000;
        let v = k.cookie_value(now);
        // A later expiry with the old tag.
        let tag = v.rsplit('.').next().unwrap();
        let later = format!("v1.{}.{tag}", now + 100 * DAY);
        assert_eq!(k.check_cookie(&later, now), CookieCheck::Invalid);
        // Made with another token.
        let other = Kiosk::new("another", Duration::from_secs(7 * DAY)).cookie_value(now);
        assert_eq!(k.check_cookie(&other, now), CookieCheck::Invalid);
        // The raw token, garbage, extra parts.
        for bad in ["wall-token-1", "", "v1..", "v1.x.y", &format!("{v}.x")] {
            assert_eq!(k.check_cookie(bad, now), CookieCheck::Invalid, "{bad}");
        }
    }

    #[test]
    fn the_cookie_is_secure_when_asked() {
        let k = kiosk();
        let c = k.set_cookie(1, true);
        assert!(c.starts_with("bms_kiosk=v1."), "{c}");
        assert!(c.contains("; Secure"), "{c}");
        assert!(c.contains("Max-Age=604800"), "{c}");
        assert!(!k.set_cookie(1, false).contains("Secure"));
    }
}
