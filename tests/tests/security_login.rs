//! Password guessing against a real `dashboard serve`: parallel guesses for
//! one user cannot get more checks than the limit; a flood of parallel
//! logins keeps the memory of the argon2 checks bounded; unknown and known
//! user names answer in the same time; `X-Forwarded-For` from a peer that
//! is not a trusted proxy does not move a guesser to another address.
//!
//! No broker is needed: the dashboard's subscriber retries in the
//! background while the web server answers. The tests run one at a time
//! (a lock below): they measure memory and time on a small machine.
//! `#[ignore]`d like the other end-to-end tests; `.ci/run` runs them.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use bms_e2e::{Proc, bin, free_port, start_dashboard};
use serde_json::Value;

/// One test at a time: the figures would mix otherwise.
static SERIAL: Mutex<()> = Mutex::new(());

const USER: &str = "张工";
const PASSWORD: &str = "pass-of-zhang";

/// An argon2 hash made by `dashboard hash-password`.
fn hash_of(password: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("echo '{password}' | \"$0\" hash-password"))
        .arg(bin("dashboard"))
        .output()
        .unwrap();
    let h = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(out.status.success() && h.starts_with("$argon2"), "{h}");
    h
}

/// A dashboard with [`USER`] and `login` as its `[login]` section, on a
/// free port, its broker a closed port. Returns it and its address.
fn dashboard(dir: &Path, login: &str) -> (Proc, String) {
    let listen = format!("127.0.0.1:{}", free_port());
    let cfg = dir.join("dashboard.toml");
    std::fs::write(
        &cfg,
        format!(
            "data_dir = \"dash-data\"\n[mqtt]\nurl = \"mqtt://127.0.0.1:{}\"\n[http]\nlisten = \"{listen}\"\n\
             [login]\n{login}\n[[user]]\nname = \"{USER}\"\npassword_hash = \"{}\"\n",
            free_port(),
            hash_of(PASSWORD)
        ),
    )
    .unwrap();
    (start_dashboard(&cfg, &[]).unwrap(), listen)
}

/// POST /api/login with extra headers; returns the status and how long
/// the answer took.
fn login(addr: &str, user: &str, password: &str, headers: &[(&str, &str)]) -> (u16, Duration) {
    let body = serde_json::json!({"user": user, "password": password}).to_string();
    let mut h = String::new();
    for (k, v) in headers {
        h.push_str(&format!("{k}: {v}\r\n"));
    }
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let t0 = Instant::now();
    write!(
        s,
        "POST /api/login HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{h}Connection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let took = t0.elapsed();
    let status = resp.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, took)
}

/// The dashboard's `login` counters from `/api/health`.
fn counters(addr: &str) -> Value {
    let (code, body) = bms_e2e::http("GET", addr, "/api/health", "").unwrap();
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert!(v["login"].is_object(), "no login counters: {body}");
    v["login"].clone()
}

/// Runs `n` logins at once (released together); returns each status.
fn parallel(
    addr: &str,
    n: usize,
    f: impl Fn(usize) -> (String, String) + Send + Sync + 'static,
) -> Vec<u16> {
    let start = Arc::new(Barrier::new(n));
    let f = Arc::new(f);
    let threads: Vec<_> = (0..n)
        .map(|i| {
            let (addr, start, f) = (addr.to_owned(), start.clone(), f.clone());
            std::thread::spawn(move || {
                let (user, password) = f(i);
                start.wait();
                login(&addr, &user, &password, &[]).0
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

fn count(codes: &[u16], code: u16) -> usize {
    codes.iter().filter(|c| **c == code).count()
}

/// VmHWM (peak resident set) of a process, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[test]
#[ignore = "starts a dashboard; .ci/run runs the end-to-end tests"]
fn parallel_guesses_for_one_user_get_at_most_the_limit_of_checks() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    // The defaults: 5 per user name, 20 per address, in 15 minutes.
    let (mut dash, addr) = dashboard(dir.path(), "");
    let codes = parallel(&addr, 30, |i| (USER.to_owned(), format!("guess-{i}")));
    let (wrong, limited) = (count(&codes, 401), count(&codes, 429));
    eprintln!("30 parallel guesses: {wrong} checked (401), {limited} refused unchecked (429)");
    assert_eq!(wrong + limited, 30, "{codes:?}");
    assert!(wrong <= 5, "{wrong} guesses were checked: {codes:?}");
    // The right password is refused while the name is locked.
    assert_eq!(login(&addr, USER, PASSWORD, &[]).0, 429);
    let c = counters(&addr);
    assert_eq!(c["wrong"], wrong as u64, "{c}");
    assert_eq!(c["refused_user_limit"], (limited + 1) as u64, "{c}");
    assert_eq!(c["ok"], 0, "{c}");
    // The log has the refusals, never a password.
    dash.wait_for("too many attempts", Duration::from_secs(10))
        .unwrap();
    let out = dash.output();
    assert!(!out.contains("guess-") && !out.contains(PASSWORD), "{out}");

    // Guesses with the right password among them, at once: still at most
    // five checks, whichever came first.
    let (_dash2, addr) = {
        drop(dash);
        let dir2 = dir.path().join("second");
        std::fs::create_dir_all(&dir2).unwrap();
        dashboard(&dir2, "")
    };
    let codes = parallel(&addr, 31, |i| {
        let pw = if i == 30 {
            PASSWORD.to_owned()
        } else {
            format!("guess-{i}")
        };
        (USER.to_owned(), pw)
    });
    let checked = count(&codes, 401) + count(&codes, 200);
    eprintln!(
        "30 guesses + the right one at once: {} × 401, {} × 200, {} × 429",
        count(&codes, 401),
        count(&codes, 200),
        count(&codes, 429)
    );
    assert!(checked <= 5, "{checked} checked: {codes:?}");
    assert_eq!(checked + count(&codes, 429), 31, "{codes:?}");
}

#[test]
#[ignore = "starts a dashboard; .ci/run runs the end-to-end tests"]
fn a_hundred_parallel_logins_keep_the_memory_of_the_checks_bounded() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    // Limits out of the way: this is about the checks running at once.
    let (dash, addr) = dashboard(
        dir.path(),
        "max_failures_per_user = 1000\nmax_failures_per_ip = 1000\nmax_concurrent_checks = 2",
    );
    let before = peak_rss_kib(dash.id());
    let t0 = Instant::now();
    let codes = parallel(&addr, 100, |i| {
        let user = if i % 2 == 0 {
            USER.to_owned()
        } else {
            format!("nobody-{i}")
        };
        (user, format!("guess-{i}"))
    });
    let took = t0.elapsed();
    let peak = peak_rss_kib(dash.id());
    eprintln!(
        "100 parallel logins in {took:?}: {} checked (401), {} refused busy (503); VmHWM {} → {} KiB",
        count(&codes, 401),
        count(&codes, 503),
        before,
        peak
    );
    assert_eq!(count(&codes, 401) + count(&codes, 503), 100, "{codes:?}");
    // Two checks of 19 MiB at a time, in buffers kept for reuse: the peak
    // grows by about 40 MiB (unbounded checks took 870 MB).
    assert!(peak - before < 64 * 1024, "peak RSS {before} → {peak} KiB");
    let c = counters(&addr);
    assert_eq!(c["wrong"], count(&codes, 401) as u64, "{c}");
    assert_eq!(c["refused_busy"], count(&codes, 503) as u64, "{c}");
}

#[test]
#[ignore = "starts a dashboard; .ci/run runs the end-to-end tests"]
fn unknown_and_known_user_names_answer_in_the_same_time() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let (_dash, addr) = dashboard(
        dir.path(),
        "max_failures_per_user = 1000\nmax_failures_per_ip = 1000",
    );
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    // Interleaved, the order swapped every round, so that both see the
    // same load of this shared machine.
    for i in 0..21 {
        let one = |user: &str, into: &mut Vec<Duration>| {
            let (code, t) = login(&addr, user, &format!("wrong-{i}"), &[]);
            assert_eq!(code, 401);
            into.push(t);
        };
        if i % 2 == 0 {
            one(USER, &mut known);
            one(&format!("nobody-{i}"), &mut unknown);
        } else {
            one(&format!("nobody-{i}"), &mut unknown);
            one(USER, &mut known);
        }
    }
    let paired: Vec<i128> = known
        .iter()
        .zip(&unknown)
        .map(|(k, u)| k.as_micros() as i128 - u.as_micros() as i128)
        .collect();
    let mut sorted = paired.clone();
    sorted.sort();
    let paired_median = Duration::from_micros(sorted[sorted.len() / 2].unsigned_abs() as u64);
    let (k, u) = (median(known), median(unknown));
    eprintln!(
        "median answer: known user {k:?}, unknown user {u:?}; median paired difference {paired_median:?}"
    );
    // Before, unknown names answered without hashing: 1.4–2 ms against
    // 27–71 ms. The margin is a fraction of one argon2 check.
    let margin = k.max(u) / 4 + Duration::from_millis(3);
    assert!(
        paired_median < margin,
        "known {k:?} vs unknown {u:?}: {paired:?} µs"
    );
}

#[test]
#[ignore = "starts a dashboard; .ci/run runs the end-to-end tests"]
fn forwarded_for_from_an_untrusted_peer_does_not_dodge_the_address_limit() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    // No trusted proxies (the default): the header is ignored.
    let (_dash, addr) = dashboard(dir.path(), "");
    let mut codes = Vec::new();
    for i in 0..25 {
        // A new user name each time (the per-name limit stays out of it) and
        // a new claimed address each time.
        let xff = format!("198.51.100.{i}");
        let (code, _) = login(
            &addr,
            &format!("u{i}"),
            "guess",
            &[("X-Forwarded-For", &xff)],
        );
        codes.push(code);
    }
    assert_eq!(count(&codes, 401), 20, "{codes:?}");
    assert_eq!(count(&codes, 429), 5, "{codes:?}");
    assert_eq!(counters(&addr)["refused_ip_limit"], 5);

    // With the loopback peer a trusted proxy, the header names the client:
    // each claimed address has its own count.
    let dir2 = dir.path().join("proxied");
    std::fs::create_dir_all(&dir2).unwrap();
    let (_dash2, addr) = dashboard(&dir2, "trusted_proxies = [\"127.0.0.1\"]");
    for i in 0..25 {
        let xff = format!("203.0.113.9, 198.51.100.{i}");
        let (code, _) = login(
            &addr,
            &format!("u{i}"),
            "guess",
            &[("X-Forwarded-For", &xff)],
        );
        assert_eq!(code, 401, "attempt {i}");
    }
    // The left part of the header is the sender's to write: only the entry
    // our proxy appended counts, so rotating it per request is what moves.
    let mut codes = Vec::new();
    for i in 0..21 {
        let xff = format!("10.9.9.{i}, 192.0.2.200");
        codes.push(
            login(
                &addr,
                &format!("v{i}"),
                "guess",
                &[("X-Forwarded-For", &xff)],
            )
            .0,
        );
    }
    assert_eq!(count(&codes, 401), 20, "{codes:?}");
    assert_eq!(count(&codes, 429), 1, "{codes:?}");
}
