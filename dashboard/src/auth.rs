//! Logins: argon2 password hashes from the configuration, session cookies
//! with a CSRF token each, and limits on password guessing.
//!
//! A login goes through these steps, each refusing without hashing:
//!
//! 1. The [`limiter`] reserves the attempt against the user name and the
//!    client address ([`client_ip`]) at once; at the limit: 429.
//! 2. A hashing permit is awaited for at most `check_wait`: at most
//!    `max_concurrent_checks` argon2 checks run at a time (each holds its
//!    memory cost, 19 MiB with the defaults); none free in time: 503, and
//!    the reservation is released (the password was not checked).
//! 3. The password is checked on a blocking thread, against the user's
//!    hash, or against a dummy hash made at start with the same parameters
//!    when the name is unknown: both take the same time.
//! 4. Right: the reservation is released and a session made. Wrong: the
//!    reservation stays in the window as a failure.

mod client_ip;
pub mod limiter;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use argon2::{Argon2, PasswordHash};
use rand::RngCore as _;
use serde::Serialize;
use tokio::sync::Semaphore;

pub use client_ip::{Cidr, client_ip};
pub use limiter::{Limits, Scope};

use crate::config::User;
use limiter::Limiter;

/// The default of `[login] session_lifetime`: a shift of the on-call
/// engineer, who logs in once on the phone and keeps the page open.
pub const DEFAULT_SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Sessions kept at most (the oldest is dropped).
const MAX_SESSIONS: usize = 1000;
/// User names in log lines are cut to this many characters.
const LOGGED_NAME_CHARS: usize = 32;

/// How logins are limited (`[login]` in the configuration, checked).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Attempts per user name and per client address in a window.
    pub limits: Limits,
    /// argon2 checks running at once at most.
    pub max_checks: usize,
    /// How long a login waits for a free check.
    pub check_wait: Duration,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<Cidr>,
    /// How long a session lasts after its login, used or not.
    pub session_lifetime: Duration,
}

impl Policy {
    /// The client address of a request from `peer` carrying these
    /// `X-Forwarded-For` header values.
    pub fn client_ip<'a>(
        &self,
        peer: IpAddr,
        forwarded_for: impl IntoIterator<Item = &'a str>,
    ) -> IpAddr {
        client_ip(peer, forwarded_for, &self.trusted_proxies)
    }
}

/// A logged-in user.
#[derive(Clone, Debug)]
pub struct Session {
    pub user: String,
    pub csrf: String,
    /// When it was made (it ends `session_lifetime` later).
    created: Instant,
}

/// What the login path counted since start (in `/api/health` as `login`).
#[derive(Debug, Default)]
pub struct LoginCounters {
    ok: AtomicU64,
    wrong: AtomicU64,
    refused_user_limit: AtomicU64,
    refused_ip_limit: AtomicU64,
    refused_busy: AtomicU64,
}

/// [`LoginCounters`] read at one moment, for `/api/health`.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct LoginCounts {
    /// Logins that made a session.
    pub ok: u64,
    /// Wrong user name or password (checked).
    pub wrong: u64,
    /// Refused unchecked: the user name's limit was reached.
    pub refused_user_limit: u64,
    /// Refused unchecked: the client address's limit was reached.
    pub refused_ip_limit: u64,
    /// Refused unchecked: no password check free within `check_wait`.
    pub refused_busy: u64,
    /// User names and addresses forgotten to keep the tables bounded.
    pub evicted: u64,
    /// User names and client addresses in the limiter now.
    pub tracked_users: u64,
    pub tracked_ips: u64,
}

/// Users, sessions and recent attempts.
#[derive(Debug)]
pub struct Auth {
    users: HashMap<String, String>,
    /// Checked when the user name is unknown, for the same cost.
    dummy_hash: String,
    sessions: Mutex<HashMap<String, Session>>,
    limiter: Mutex<Limiter>,
    checks: Arc<Semaphore>,
    /// argon2 working memory, one buffer per check running (taken with a
    /// permit, given back after): at most `max_checks` buffers ever.
    memory: Arc<Mutex<Vec<Vec<argon2::Block>>>>,
    check_wait: Duration,
    session_lifetime: Duration,
    counters: LoginCounters,
}

/// Why a login was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum LoginError {
    /// Wrong name or password.
    Wrong,
    /// Too many attempts lately (the user name's or the address's);
    /// retry after this many seconds.
    Limited(Scope, u64),
    /// Too many logins being checked right now; retry after this many seconds.
    Busy(u64),
    /// The check itself failed (its thread panicked).
    Failed,
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

/// An argon2 hash of a random password with the parameters (algorithm,
/// version, memory, passes, lanes) of `like`, or the defaults of
/// [`hash_password`] when `like` is not given or not argon2.
fn dummy_hash(like: Option<&str>) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let mut pw = [0u8; 16];
    rand::rng().fill_bytes(&mut pw);
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let hasher = like
        .and_then(|h| PasswordHash::new(h).ok())
        .and_then(|h| {
            let alg = argon2::Algorithm::try_from(h.algorithm).ok()?;
            let ver = h
                .version
                .map_or(Ok(argon2::Version::default()), argon2::Version::try_from)
                .ok()?;
            let params = argon2::Params::try_from(&h).ok()?;
            Some(Argon2::new(alg, ver, params))
        })
        .unwrap_or_default();
    let made = SaltString::encode_b64(&salt)
        .map_err(|e| e.to_string())
        .and_then(|salt| {
            hasher
                .hash_password(&pw, &salt)
                .map(|h| h.to_string())
                .map_err(|e| e.to_string())
        });
    match made {
        Ok(h) => h,
        Err(e) => {
            // Unknown names then answer faster than known ones.
            tracing::error!(error = %e, "cannot make the dummy password hash");
            String::new()
        }
    }
}

/// Whether `password` matches the PHC string `hash`, computed in
/// `memory` (grown when the hash needs more blocks) instead of memory the
/// library would allocate and free for each check: freed memory stays
/// with the allocator's per-thread arenas, and blocking threads come and
/// go, so per-check allocations grew the resident set far beyond
/// (checks at once × memory cost). Comparison in constant time.
fn verify(hash: &str, password: &[u8], memory: &mut Vec<argon2::Block>) -> bool {
    let Ok(h) = PasswordHash::new(hash) else {
        return false;
    };
    let (Ok(alg), Ok(params), Some(salt), Some(expected)) = (
        argon2::Algorithm::try_from(h.algorithm),
        argon2::Params::try_from(&h),
        h.salt,
        h.hash,
    ) else {
        return false;
    };
    let Ok(ver) = h
        .version
        .map_or(Ok(argon2::Version::default()), argon2::Version::try_from)
    else {
        return false;
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    if memory.len() < params.block_count() {
        memory.resize(params.block_count(), argon2::Block::default());
    }
    let mut out = vec![0u8; expected.len()];
    Argon2::new(alg, ver, params)
        .hash_password_into_with_memory(password, salt, &mut out, &mut memory[..])
        .is_ok()
        && argon2::password_hash::Output::new(&out).is_ok_and(|o| o == expected)
}

/// A user name fit for a log line: cut, control characters escaped.
pub fn logged_name(user: &str) -> String {
    let cut: String = user.chars().take(LOGGED_NAME_CHARS).collect();
    let more = if user.chars().nth(LOGGED_NAME_CHARS).is_some() {
        "…"
    } else {
        ""
    };
    format!("{}{more}", cut.escape_debug())
}

impl Auth {
    /// Users from the configuration (hashes already checked there); makes
    /// the dummy hash, which takes one argon2 hash.
    pub fn new(users: &[User], policy: &Policy) -> Auth {
        Auth {
            users: users
                .iter()
                .map(|u| (u.name.clone(), u.password_hash.clone()))
                .collect(),
            dummy_hash: dummy_hash(users.first().map(|u| u.password_hash.as_str())),
            sessions: Mutex::new(HashMap::new()),
            limiter: Mutex::new(Limiter::new(policy.limits)),
            checks: Arc::new(Semaphore::new(policy.max_checks.max(1))),
            memory: Arc::new(Mutex::new(Vec::new())),
            check_wait: policy.check_wait,
            session_lifetime: policy.session_lifetime,
            counters: LoginCounters::default(),
        }
    }

    /// Checks a login from `ip`; on success returns the new session id.
    /// The argon2 check runs on a blocking thread, at most
    /// `max_concurrent_checks` at a time.
    pub async fn login(
        &self,
        ip: IpAddr,
        user: &str,
        password: &str,
    ) -> Result<(String, Session), LoginError> {
        let c = &self.counters;
        let reserved = match self.limiter.lock() {
            Ok(mut l) => l.reserve(user, ip, Instant::now()),
            Err(_) => return Err(LoginError::Failed),
        };
        let reservation = match reserved {
            Ok(r) => r,
            Err(refused) => {
                let counter = match refused.scope {
                    Scope::User => &c.refused_user_limit,
                    Scope::Ip => &c.refused_ip_limit,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                // Rounded up: retrying after this long finds a free slot.
                let wait = refused.retry_after;
                let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                return Err(LoginError::Limited(refused.scope, secs.max(1)));
            }
        };
        let release = |auth: &Auth| {
            if let Ok(mut l) = auth.limiter.lock() {
                l.release(&reservation);
            }
        };
        let permit = match tokio::time::timeout(
            self.check_wait,
            self.checks.clone().acquire_owned(),
        )
        .await
        {
            Ok(Ok(p)) => p,
            _ => {
                release(self);
                c.refused_busy.fetch_add(1, Ordering::Relaxed);
                return Err(LoginError::Busy(self.check_wait.as_secs().max(1)));
            }
        };
        let known = self.users.get(user);
        let hash = known.unwrap_or(&self.dummy_hash).clone();
        let password = password.as_bytes().to_vec();
        let pool = self.memory.clone();
        let checked = tokio::task::spawn_blocking(move || {
            let mut memory = pool
                .lock()
                .ok()
                .and_then(|mut p| p.pop())
                .unwrap_or_default();
            let ok = verify(&hash, &password, &mut memory);
            if let Ok(mut p) = pool.lock() {
                p.push(memory);
            }
            drop(permit);
            ok
        })
        .await;
        let ok = match checked {
            Ok(ok) => ok && known.is_some(),
            Err(_) => return Err(LoginError::Failed),
        };
        if !ok {
            c.wrong.fetch_add(1, Ordering::Relaxed);
            return Err(LoginError::Wrong);
        }
        release(self);
        c.ok.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let id = token();
        let s = Session {
            user: user.to_owned(),
            csrf: token(),
            created: now,
        };
        let lifetime = self.session_lifetime;
        if let Ok(mut ss) = self.sessions.lock() {
            ss.retain(|_, s| now.duration_since(s.created) < lifetime);
            if ss.len() >= MAX_SESSIONS
                && let Some(oldest) = ss
                    .iter()
                    .min_by_key(|(_, s)| s.created)
                    .map(|(k, _)| k.clone())
            {
                ss.remove(&oldest);
            }
            ss.insert(id.clone(), s.clone());
        }
        Ok((id, s))
    }

    /// The counters of the login path.
    pub fn counts(&self) -> LoginCounts {
        let c = &self.counters;
        let (evicted, (users, ips)) = self
            .limiter
            .lock()
            .map(|l| (l.evicted, l.tracked()))
            .unwrap_or((0, (0, 0)));
        LoginCounts {
            ok: c.ok.load(Ordering::Relaxed),
            wrong: c.wrong.load(Ordering::Relaxed),
            refused_user_limit: c.refused_user_limit.load(Ordering::Relaxed),
            refused_ip_limit: c.refused_ip_limit.load(Ordering::Relaxed),
            refused_busy: c.refused_busy.load(Ordering::Relaxed),
            evicted,
            tracked_users: users as u64,
            tracked_ips: ips as u64,
        }
    }

    /// The session of a cookie value, while it lasts.
    pub fn session(&self, id: &str) -> Option<Session> {
        self.session_at(id, Instant::now())
    }

    fn session_at(&self, id: &str, now: Instant) -> Option<Session> {
        let mut ss = self.sessions.lock().ok()?;
        let s = ss.get(id)?;
        if now.saturating_duration_since(s.created) >= self.session_lifetime {
            ss.remove(id);
            return None;
        }
        Some(s.clone())
    }

    /// How long a session lasts after its login (the cookie's `Max-Age`).
    pub fn session_lifetime(&self) -> Duration {
        self.session_lifetime
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

    fn policy(max_checks: usize, check_wait: Duration) -> Policy {
        Policy {
            limits: Limits {
                per_user: 5,
                per_ip: 20,
                window: Duration::from_secs(900),
                max_tracked: 1000,
            },
            max_checks,
            check_wait,
            trusted_proxies: Vec::new(),
            session_lifetime: DEFAULT_SESSION_LIFETIME,
        }
    }

    fn zhang(policy: &Policy) -> Auth {
        let h = hash_password("s3cret").unwrap();
        Auth::new(
            &[User {
                name: "张工".into(),
                password_hash: h,
            }],
            policy,
        )
    }

    #[tokio::test]
    async fn login_session_and_rate_limit() {
        let a = zhang(&policy(2, Duration::from_secs(30)));
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let (id, s) = a.login(ip, "张工", "s3cret").await.unwrap();
        assert_eq!(a.session(&id).unwrap().csrf, s.csrf);
        assert_eq!(
            a.login(ip, "张工", "wrong").await.unwrap_err(),
            LoginError::Wrong
        );
        assert_eq!(
            a.login(ip, "nobody", "x").await.unwrap_err(),
            LoginError::Wrong
        );
        for _ in 0..4 {
            let _ = a.login(ip, "张工", "wrong").await;
        }
        // Five failures for this name: even the right password waits.
        assert!(matches!(
            a.login(ip, "张工", "s3cret").await,
            Err(LoginError::Limited(Scope::User, _))
        ));
        a.logout(&id);
        assert!(a.session(&id).is_none());
        let c = a.counts();
        assert_eq!((c.ok, c.wrong, c.refused_user_limit), (1, 6, 1));
    }

    #[tokio::test]
    async fn a_session_lasts_its_configured_lifetime_from_login_used_or_not() {
        let mut p = policy(2, Duration::from_secs(30));
        p.session_lifetime = Duration::from_secs(8 * 3600);
        let a = zhang(&p);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let start = Instant::now();
        let (id, _) = a.login(ip, "张工", "s3cret").await.unwrap();
        assert_eq!(a.session_lifetime(), Duration::from_secs(8 * 3600));
        let hour = Duration::from_secs(3600);
        // Left alone for most of the shift: still logged in.
        assert!(a.session_at(&id, start + 7 * hour).is_some());
        // The shift is over: gone, and stays gone.
        assert!(a.session_at(&id, start + 8 * hour + hour / 60).is_none());
        assert!(a.session_at(&id, start).is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn parallel_guesses_are_checked_at_most_the_limit_times() {
        let a = Arc::new(zhang(&policy(2, Duration::from_secs(60))));
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let tasks: Vec<_> = (0..30)
            .map(|i| {
                let a = a.clone();
                tokio::spawn(async move { a.login(ip, "张工", &format!("guess-{i}")).await })
            })
            .collect();
        for t in tasks {
            let _ = t.await.unwrap();
        }
        let c = a.counts();
        assert_eq!((c.wrong, c.refused_user_limit), (5, 25), "{c:?}");
        assert!(matches!(
            a.login(ip, "张工", "s3cret").await,
            Err(LoginError::Limited(..))
        ));
    }

    #[tokio::test]
    async fn a_login_that_gets_no_check_in_time_is_refused_busy_and_not_counted() {
        let a = Arc::new(zhang(&policy(1, Duration::from_millis(1))));
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let held = a.checks.clone().acquire_owned().await.unwrap();
        assert_eq!(
            a.login(ip, "张工", "s3cret").await.unwrap_err(),
            LoginError::Busy(1)
        );
        drop(held);
        // The refused attempt left no failure behind.
        assert_eq!(a.limiter.lock().unwrap().tracked(), (0, 0));
        assert!(a.login(ip, "张工", "s3cret").await.is_ok());
        assert_eq!(a.counts().refused_busy, 1);
    }

    #[test]
    fn the_dummy_hash_has_the_parameters_of_the_configured_ones() {
        let custom = {
            use argon2::password_hash::{PasswordHasher, SaltString};
            let params = argon2::Params::new(8192, 3, 1, None).unwrap();
            Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
                .hash_password(b"pw", &SaltString::encode_b64(b"0123456789abcdef").unwrap())
                .unwrap()
                .to_string()
        };
        let d = dummy_hash(Some(&custom));
        assert!(d.starts_with("$argon2id$v=19$m=8192,t=3,p=1$"), "{d}");
        let d = dummy_hash(None);
        assert!(d.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{d}");
        let mut memory = Vec::new();
        assert!(!verify(&d, b"", &mut memory));
        assert_eq!(memory.len(), 19456);
        let h = hash_password("right").unwrap();
        assert!(verify(&h, b"right", &mut memory));
        assert!(!verify(&h, b"wrong", &mut memory));
        assert!(verify(&custom, b"pw", &mut memory));
        assert_eq!(memory.len(), 19456, "a large enough buffer is reused");
    }

    #[test]
    fn logged_names_are_cut_and_escaped() {
        assert_eq!(logged_name("张工"), "张工");
        assert_eq!(logged_name("a\nb\u{1b}[31m"), "a\\nb\\u{1b}[31m");
        let long = logged_name(&"x".repeat(500));
        assert_eq!(long, format!("{}…", "x".repeat(32)));
    }
}
