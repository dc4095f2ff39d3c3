//! Logins: argon2 password hashes from the configuration, session cookies
//! with a CSRF token each, and a limit on failed attempts.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::{Argon2, PasswordHash, PasswordVerifier};
use rand::RngCore as _;

use crate::config::User;

/// Failed logins allowed per client address (and per user name) in
/// [`FAIL_WINDOW`] before further attempts are refused.
pub const MAX_FAILS: usize = 5;
/// The window of [`MAX_FAILS`].
pub const FAIL_WINDOW: Duration = Duration::from_secs(300);
/// A session ends after this long without use.
pub const SESSION_IDLE: Duration = Duration::from_secs(12 * 3600);
/// Sessions kept at most (the oldest is dropped).
const MAX_SESSIONS: usize = 1000;

/// A logged-in user.
#[derive(Clone, Debug)]
pub struct Session {
    pub user: String,
    pub csrf: String,
    last: Instant,
}

/// Users, sessions and recent failures.
#[derive(Debug)]
pub struct Auth {
    users: HashMap<String, String>,
    sessions: Mutex<HashMap<String, Session>>,
    fails: Mutex<HashMap<String, Vec<Instant>>>,
}

/// Why a login was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum LoginError {
    /// Wrong name or password.
    Wrong,
    /// Too many failures lately; retry after this many seconds.
    Limited(u64),
}

/// A random token of 32 hex digits.
pub fn token() -> String {
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// An argon2id PHC hash of `password` (for `dashboard hash-password`).
pub fn hash_password(password: &str) -> Result<String, String> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

impl Auth {
    /// Users from the configuration (hashes already checked there).
    pub fn new(users: &[User]) -> Auth {
        Auth {
            users: users
                .iter()
                .map(|u| (u.name.clone(), u.password_hash.clone()))
                .collect(),
            sessions: Mutex::new(HashMap::new()),
            fails: Mutex::new(HashMap::new()),
        }
    }

    /// Checks a login from `ip`; on success returns the new session id.
    pub fn login(
        &self,
        ip: IpAddr,
        user: &str,
        password: &str,
    ) -> Result<(String, Session), LoginError> {
        let keys = [format!("ip:{ip}"), format!("user:{user}")];
        let now = Instant::now();
        if let Ok(mut f) = self.fails.lock() {
            f.retain(|_, v| {
                v.retain(|t| now.duration_since(*t) < FAIL_WINDOW);
                !v.is_empty()
            });
            for k in &keys {
                if let Some(v) = f.get(k)
                    && v.len() >= MAX_FAILS
                {
                    let wait = FAIL_WINDOW.saturating_sub(now.duration_since(v[0]));
                    return Err(LoginError::Limited(wait.as_secs().max(1)));
                }
            }
        }
        let ok = self.users.get(user).is_some_and(|h| {
            PasswordHash::new(h).is_ok_and(|h| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok()
            })
        });
        if !ok {
            if let Ok(mut f) = self.fails.lock() {
                for k in keys {
                    f.entry(k).or_default().push(now);
                }
            }
            return Err(LoginError::Wrong);
        }
        let id = token();
        let s = Session {
            user: user.to_owned(),
            csrf: token(),
            last: now,
        };
        if let Ok(mut ss) = self.sessions.lock() {
            ss.retain(|_, s| now.duration_since(s.last) < SESSION_IDLE);
            if ss.len() >= MAX_SESSIONS
                && let Some(oldest) = ss
                    .iter()
                    .min_by_key(|(_, s)| s.last)
                    .map(|(k, _)| k.clone())
            {
                ss.remove(&oldest);
            }
            ss.insert(id.clone(), s.clone());
        }
        Ok((id, s))
    }

    /// The session of a cookie value, refreshed.
    pub fn session(&self, id: &str) -> Option<Session> {
        let mut ss = self.sessions.lock().ok()?;
        let now = Instant::now();
        let s = ss.get_mut(id)?;
        if now.duration_since(s.last) >= SESSION_IDLE {
            ss.remove(id);
            return None;
        }
        s.last = now;
        Some(s.clone())
    }

    /// Ends a session.
    pub fn logout(&self, id: &str) {
        if let Ok(mut ss) = self.sessions.lock() {
            ss.remove(id);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn login_session_and_rate_limit() {
        let h = hash_password("s3cret").unwrap();
        let a = Auth::new(&[User {
            name: "张工".into(),
            password_hash: h,
        }]);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let (id, s) = a.login(ip, "张工", "s3cret").unwrap();
        assert_eq!(a.session(&id).unwrap().csrf, s.csrf);
        assert_eq!(a.login(ip, "张工", "wrong").unwrap_err(), LoginError::Wrong);
        assert_eq!(a.login(ip, "nobody", "x").unwrap_err(), LoginError::Wrong);
        for _ in 0..3 {
            let _ = a.login(ip, "张工", "wrong");
        }
        // Five failures from this address: even the right password waits.
        assert!(matches!(
            a.login(ip, "张工", "s3cret"),
            Err(LoginError::Limited(_))
        ));
        a.logout(&id);
        assert!(a.session(&id).is_none());
    }
}
