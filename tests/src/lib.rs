//! Helpers for the end-to-end suite: find our binaries, pick free ports,
//! start peers and stop them whatever happens.
//!
//! Tests that need tools from outside the Rust toolchain (mbpoll, socat,
//! pymodbus, Mosquitto, …) are `#[ignore]`d with a reason and run by
//! `.ci/run` with `--ignored`, which installs those tools first; a missing
//! tool then fails the test loudly instead of skipping it silently.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// The workspace root (where `Cargo.toml` and `config/` are).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("invariant: tests/ sits inside the workspace")
        .to_path_buf()
}

/// Path of one of our binaries, built by cargo next to this test executable.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("invariant: a test knows its own path");
    // target/<profile>/deps/<test>-<hash> → target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("invariant: test executables live in target/<profile>/deps");
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} is not built; run `cargo build --workspace` (or `cargo test --workspace`) first",
        p.display()
    );
    p
}

/// A TCP port that was free a moment ago on 127.0.0.1, and that no other
/// test process on this machine was handed in the last 15 minutes.
///
/// A port from `bind(0)` comes from the kernel's ephemeral range, the same
/// range outgoing connections take their local ports from: between our pick
/// and the child's bind, a client socket could take it (CI saw that race).
/// So the pick is made below that range (20000–32767), and reserved across
/// processes by creating a marker file, which parallel test processes
/// (nextest runs one per test) respect.
pub fn free_port() -> u16 {
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_768;
    let dir = std::env::temp_dir().join("bms-test-ports");
    let _ = std::fs::create_dir_all(&dir);
    let seed = std::process::id().wrapping_mul(2_654_435_761)
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
    for i in 0..SPAN {
        let port = u16::try_from(LOW + (seed.wrapping_add(i.wrapping_mul(7_919))) % SPAN)
            .expect("invariant: below 32768");
        if !reserve_port(&dir, port) {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    // Every port in our range is reserved or busy: fall back to the kernel.
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding 127.0.0.1:0 must work")
}

/// Claims `port` for this process with a marker file; a marker older than
/// 15 minutes is stale (its test is long over) and is taken over.
fn reserve_port(dir: &Path, port: u16) -> bool {
    let marker = dir.join(port.to_string());
    let create = || {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&marker)
            .is_ok()
    };
    if create() {
        return true;
    }
    let stale = std::fs::metadata(&marker)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age > Duration::from_secs(15 * 60));
    // Two processes taking over the same stale marker at the same instant
    // could both win; that needs a 15-minute-old marker and a tie.
    stale && std::fs::remove_file(&marker).is_ok() && create()
}

/// Fails with a clear message when an outside tool is missing.
pub fn require_tool(tool: &str, install_hint: &str) -> Result<()> {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !found {
        bail!("`{tool}` is not installed; {install_hint} (.ci/run installs it)");
    }
    Ok(())
}

/// A child process killed (and reaped) when dropped, with its output lines
/// readable as they come.
#[derive(Debug)]
pub struct Proc {
    name: String,
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Proc {
    /// Starts `cmd` with stdout and stderr piped into one line stream.
    pub fn spawn(name: &str, cmd: &mut Command) -> Result<Proc> {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        let (tx, rx) = mpsc::channel();
        if let Some(out) = child.stdout.take() {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for l in BufReader::new(out).lines().map_while(Result::ok) {
                    let _ = tx.send(l);
                }
            });
        }
        if let Some(err) = child.stderr.take() {
            std::thread::spawn(move || {
                for l in BufReader::new(err).lines().map_while(Result::ok) {
                    let _ = tx.send(l);
                }
            });
        }
        Ok(Proc {
            name: name.to_owned(),
            child,
            lines: rx,
            seen: Vec::new(),
        })
    }

    /// Waits for an output line containing `needle`; returns that line.
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    let hit = l.contains(needle);
                    self.seen.push(l.clone());
                    if hit {
                        return Ok(l);
                    }
                }
                Err(_) => {
                    if let Ok(Some(status)) = self.child.try_wait() {
                        bail!(
                            "{} exited ({status}) before printing {needle:?}; its output:\n{}",
                            self.name,
                            self.seen.join("\n")
                        );
                    }
                    bail!(
                        "{} did not print {needle:?} within {timeout:?}; its output:\n{}",
                        self.name,
                        self.seen.join("\n")
                    );
                }
            }
        }
    }

    /// Every line seen so far plus whatever is waiting.
    pub fn output(&mut self) -> String {
        while let Ok(l) = self.lines.try_recv() {
            self.seen.push(l);
        }
        self.seen.join("\n")
    }

    /// Sends SIGINT and waits up to `grace` for a clean exit; returns the exit code.
    pub fn interrupt(&mut self, grace: Duration) -> Result<Option<i32>> {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-INT", &pid]).status();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Some(s) = self.child.try_wait()? {
                return Ok(s.code());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!("{} did not stop within {grace:?} after SIGINT", self.name)
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs a command to completion with a timeout; returns (exit code, stdout, stderr).
pub fn run_with_timeout(
    cmd: &mut Command,
    timeout: Duration,
) -> Result<(Option<i32>, String, String)> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting command")?;
    let out = child.stdout.take();
    let err = child.stderr.take();
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut o) = out {
            let _ = std::io::Read::read_to_string(&mut o, &mut s);
        }
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut e) = err {
            let _ = std::io::Read::read_to_string(&mut e, &mut s);
        }
        s
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("command timed out after {timeout:?}: {cmd:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = t_out.join().unwrap_or_default();
    let stderr = t_err.join().unwrap_or_default();
    Ok((status.code(), stdout, stderr))
}

impl Proc {
    /// Kills the process with SIGKILL (no chance to clean up) and reaps it.
    pub fn kill9(&mut self) -> Result<()> {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args(["-KILL", &pid])
            .status()
            .context("running kill")?;
        self.child.wait().context("reaping the killed process")?;
        Ok(())
    }
}

/// A minimal HTTP/1.1 request on loopback (no client crate needed): returns
/// the status code and the body.
pub fn http(method: &str, addr: &str, path: &str, body: &str) -> Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut s =
        std::net::TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    let status = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("not an HTTP answer: {resp:?}"))?;
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// Environment that moves the demo building onto free ports, a private pty
/// link, a free control port (returned) and a private data folder.
pub fn demo_env(dir: &Path) -> (Vec<(String, String)>, String) {
    let control = format!("127.0.0.1:{}", free_port());
    (
        vec![
            (
                "BMS_DEMO_TCP_POWER".into(),
                format!("127.0.0.1:{}", free_port()),
            ),
            (
                "BMS_DEMO_TCP_BAS".into(),
                format!("127.0.0.1:{}", free_port()),
            ),
            (
                "BMS_DEMO_RTU".into(),
                dir.join("rs485-1").display().to_string(),
            ),
            ("BMS_DEMO_SIM_CONTROL".into(), control.clone()),
            (
                "BMS_ADMIN_LISTEN".into(),
                format!("127.0.0.1:{}", free_port()),
            ),
            (
                "BMS_DATA_DIR".into(),
                dir.join("data").display().to_string(),
            ),
        ],
        control,
    )
}

/// The demo building written into `dir/site.toml` for a test: profiles from
/// the repository, a 1-minute rolling window (so availability can decide
/// within seconds), and `extra` top-level sections (e.g. `[mqtt]`) placed
/// before the first `[[bus]]`.
pub fn demo_config(dir: &Path, extra: &str) -> Result<PathBuf> {
    let text = std::fs::read_to_string(workspace_root().join("config/demo.toml"))?;
    let profiles = workspace_root().join("config/profiles");
    let text = text
        .replace(
            "profiles_dir = \"profiles\"",
            &format!("profiles_dir = {:?}", profiles.display().to_string()),
        )
        .replace("rolling_window = \"15m\"", "rolling_window = \"1m\"");
    if !text.contains("rolling_window = \"1m\"") {
        bail!("config/demo.toml no longer has rolling_window = \"15m\"");
    }
    let at = text
        .find("[[bus]]")
        .context("config/demo.toml has no [[bus]]")?;
    let text = format!("{}{extra}\n\n{}", &text[..at], &text[at..]);
    let file = dir.join("site.toml");
    std::fs::write(&file, text)?;
    Ok(file)
}

/// `gateway simulate --config F` with `env`, once it says it is ready.
pub fn start_sim(config: &Path, env: &[(String, String)]) -> Result<Proc> {
    let mut sim = Proc::spawn(
        "gateway simulate",
        Command::new(bin("gateway"))
            .args(["simulate", "--config"])
            .arg(config)
            .envs(env.iter().cloned()),
    )?;
    sim.wait_for("ready", Duration::from_secs(20))?;
    Ok(sim)
}

/// `gateway run --config F` with `env`, once its ledger and tickets are loaded.
pub fn start_gateway(config: &Path, env: &[(String, String)]) -> Result<Proc> {
    let mut gw = Proc::spawn(
        "gateway run",
        Command::new(bin("gateway"))
            .args(["run", "--config"])
            .arg(config)
            .env("RUST_LOG", "info")
            .envs(env.iter().cloned()),
    )?;
    gw.wait_for("ledger and tickets loaded", Duration::from_secs(20))?;
    Ok(gw)
}

/// Waits until `f` returns `Some`, polling every 300 ms; panics naming
/// `what` after `timeout`.
pub fn until<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// The current month (`YYYY-MM`) in time zone `tz`, as `date` says.
pub fn this_month_in(tz: &str) -> Result<String> {
    let (code, out, err) = run_with_timeout(
        Command::new("date").env("TZ", tz).arg("+%Y-%m"),
        Duration::from_secs(10),
    )?;
    if code != Some(0) {
        bail!("date +%Y-%m failed: {err}");
    }
    Ok(out.trim().to_owned())
}

/// `dashboard serve --config F` with `env`, once it serves.
pub fn start_dashboard(config: &Path, env: &[(&str, &str)]) -> Result<Proc> {
    let mut dash = Proc::spawn(
        "dashboard serve",
        Command::new(bin("dashboard"))
            .args(["serve", "--config"])
            .arg(config)
            .envs(env.iter().copied()),
    )?;
    dash.wait_for("dashboard serving", Duration::from_secs(20))?;
    Ok(dash)
}

/// A Mosquitto of the test's own on a free loopback port (anonymous, no
/// persistence), once it listens; its configuration goes in `dir`.
pub fn start_mosquitto(dir: &Path) -> Result<(Proc, u16)> {
    require_tool("mosquitto", "apt-get install mosquitto")?;
    let port = free_port();
    let conf = dir.join("mosquitto.conf");
    // `user root`: run as root, Mosquitto would drop to a user who cannot
    // read our temp dir.
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nuser root\nallow_anonymous true\npersistence false\nlog_type error\n"
        ),
    )?;
    let p = Proc::spawn("mosquitto", Command::new("mosquitto").arg("-c").arg(&conf))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() >= deadline {
            bail!("mosquitto did not listen on {port}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok((p, port))
}
