//! The deployment files in `deploy/`, exercised: the Mosquitto ACL and
//! password file made by `deploy/mosquitto/bms-mqtt-user` loaded by a real
//! Mosquitto with a real gateway logging in. `#[ignore]`d: `.ci/run`
//! installs mosquitto and runs them.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use bms_e2e::{
    Proc, bin, demo_config, demo_env, free_port, require_tool, run_with_timeout, start_sim,
    workspace_root,
};

fn user_tool(dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    run_with_timeout(
        Command::new(workspace_root().join("deploy/mosquitto/bms-mqtt-user"))
            .arg("--passwd")
            .arg(dir.join("passwd"))
            .arg("--acl")
            .arg(dir.join("acl"))
            .args(args),
        Duration::from_secs(20),
    )
    .unwrap()
}

fn sub(port: u16, user: &str, pass: &str, topic: &str) -> Proc {
    let p = Proc::spawn(
        "mosquitto_sub",
        Command::new("mosquitto_sub").args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-u",
            user,
            "-P",
            pass,
            "-v",
            "-t",
            topic,
        ]),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(400));
    p
}

fn publish(port: u16, user: &str, pass: &str, topic: &str, msg: &str) -> Option<i32> {
    run_with_timeout(
        Command::new("mosquitto_pub").args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-u",
            user,
            "-P",
            pass,
            "-q",
            "1",
            "-t",
            topic,
            "-m",
            msg,
        ]),
        Duration::from_secs(10),
    )
    .unwrap()
    .0
}

#[test]
#[ignore = "needs mosquitto (.ci/run installs it)"]
fn the_acl_confines_each_gateway_to_its_own_prefix_and_commands() {
    require_tool("mosquitto", "apt-get install mosquitto").unwrap();
    require_tool("mosquitto_sub", "apt-get install mosquitto-clients").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::copy(workspace_root().join("deploy/mosquitto/acl"), d.join("acl")).unwrap();
    for args in [
        &["gateway", "demo-sales-centre", "gw-1", "gw1-pass"][..],
        &["gateway", "other-site", "gw-9", "gw9-pass"],
        &["dashboard", "dash", "dash-pass"],
    ] {
        let (code, out, err) = user_tool(d, args);
        assert_eq!(code, Some(0), "{args:?}: {out}{err}");
    }
    // Bad input to the tool: a '/' in a topic level, a second entry.
    let (code, _, err) = user_tool(d, &["gateway", "a/b", "gw", "x"]);
    assert_eq!(code, Some(65), "{err}");
    assert!(err.contains("letters, digits"), "{err}");
    let (code, _, err) = user_tool(d, &["dashboard", "dash", "y"]);
    assert_eq!(code, Some(65), "{err}");
    assert!(err.contains("already"), "{err}");

    let port = free_port();
    let conf = d.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nuser root\nallow_anonymous false\npassword_file {p}/passwd\nacl_file {p}/acl\npersistence false\nlog_type error\nlog_type warning\n",
            p = d.display()
        ),
    )
    .unwrap();
    let _broker = Proc::spawn("mosquitto", Command::new("mosquitto").arg("-c").arg(&conf)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "mosquitto did not start");
        std::thread::sleep(Duration::from_millis(50));
    }

    let mut all = sub(port, "dash", "dash-pass", "bms/#");
    let mut gw9_cmd = sub(
        port,
        "other-site.gw-9",
        "gw9-pass",
        "bms/other-site/gw-9/cmd/#",
    );
    let mut gw1_spy = sub(
        port,
        "demo-sales-centre.gw-1",
        "gw1-pass",
        "bms/other-site/gw-9/cmd/#",
    );
    let mut gw1_cmd = sub(
        port,
        "demo-sales-centre.gw-1",
        "gw1-pass",
        "bms/demo-sales-centre/gw-1/cmd/#",
    );

    // The real gateway logs in with its own name and publishes.
    let (mut env, _) = demo_env(d);
    env.push(("BMS_MQTT_PASSWORD".into(), "gw1-pass".into()));
    let cfg = demo_config(
        d,
        &format!(
            "[mqtt]\nurl = \"mqtt://127.0.0.1:{port}\"\nusername = \"demo-sales-centre.gw-1\"\npassword = {{ env = \"BMS_MQTT_PASSWORD\" }}\n"
        ),
    )
    .unwrap();
    let _sim = start_sim(&cfg, &env).unwrap();
    let mut gw = Proc::spawn(
        "gateway run",
        Command::new(bin("gateway"))
            .args(["run", "--config"])
            .arg(&cfg)
            .envs(env.iter().cloned()),
    )
    .unwrap();
    gw.wait_for("connected to the MQTT broker", Duration::from_secs(20))
        .unwrap();
    all.wait_for("bms/demo-sales-centre/gw-1/status", Duration::from_secs(10))
        .unwrap();
    all.wait_for("/telemetry", Duration::from_secs(10)).unwrap();

    // Under its own prefix: delivered. Elsewhere: dropped by the broker.
    assert_eq!(
        publish(
            port,
            "demo-sales-centre.gw-1",
            "gw1-pass",
            "bms/demo-sales-centre/gw-1/probe",
            "own"
        ),
        Some(0)
    );
    assert_eq!(
        publish(
            port,
            "demo-sales-centre.gw-1",
            "gw1-pass",
            "bms/other-site/gw-9/status",
            "forged"
        ),
        Some(0)
    );
    assert_eq!(
        publish(
            port,
            "demo-sales-centre.gw-1",
            "gw1-pass",
            "bms/other-site/gw-9/cmd/ack",
            "forged-cmd"
        ),
        Some(0)
    );
    assert_eq!(
        publish(
            port,
            "demo-sales-centre.gw-1",
            "gw1-pass",
            "elsewhere/x",
            "forged"
        ),
        Some(0)
    );
    // The dashboard commands each gateway.
    assert_eq!(
        publish(
            port,
            "dash",
            "dash-pass",
            "bms/other-site/gw-9/cmd/ack",
            "to-gw9"
        ),
        Some(0)
    );
    assert_eq!(
        publish(
            port,
            "dash",
            "dash-pass",
            "bms/demo-sales-centre/gw-1/cmd/ack",
            "to-gw1"
        ),
        Some(0)
    );
    // A dashboard does not publish gateway data.
    assert_eq!(
        publish(
            port,
            "dash",
            "dash-pass",
            "bms/other-site/gw-9/status",
            "dash-forged"
        ),
        Some(0)
    );
    // Wrong password and anonymous are refused at connect.
    assert_ne!(publish(port, "dash", "wrong", "bms/x", "x"), Some(0));
    let anon = run_with_timeout(
        Command::new("mosquitto_pub").args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-t",
            "bms/x",
            "-m",
            "x",
        ]),
        Duration::from_secs(10),
    )
    .unwrap();
    assert_ne!(anon.0, Some(0));

    all.wait_for(
        "bms/demo-sales-centre/gw-1/probe own",
        Duration::from_secs(5),
    )
    .unwrap();
    gw9_cmd.wait_for("to-gw9", Duration::from_secs(5)).unwrap();
    gw1_cmd.wait_for("to-gw1", Duration::from_secs(5)).unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let seen = all.output();
    assert!(
        !seen.contains("forged"),
        "a forged message was delivered:\n{seen}"
    );
    let spy = gw1_spy.output();
    assert!(!spy.contains("to-gw9"), "gw-1 read gw-9's commands: {spy}");
    let gw9 = gw9_cmd.output();
    assert!(!gw9.contains("forged-cmd"), "gw-1 commanded gw-9: {gw9}");
    assert_eq!(gw.interrupt(Duration::from_secs(15)).unwrap(), Some(0));
}

fn run(cmd: &mut Command) -> (Option<i32>, String, String) {
    run_with_timeout(cmd, Duration::from_secs(120)).unwrap()
}

/// The package `cargo deb -p gateway --strip` wrote (`.ci/run` builds it).
fn the_deb() -> std::path::PathBuf {
    // <target>/debug/bms-e2e-… → <target>/debian/
    let target = bin("gateway")
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .to_path_buf();
    let dir = target.join("debian");
    let found = std::fs::read_dir(&dir).ok().and_then(|rd| {
        rd.filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("bms-gateway_") && n.ends_with(".deb"))
            })
            .max_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
    });
    found.unwrap_or_else(|| {
        panic!(
            "no bms-gateway .deb in {}: run `cargo deb -p gateway --strip` first (.ci/run does)",
            dir.display()
        )
    })
}

/// Copies the shared libraries `exe` needs into `root` (for a chroot).
fn copy_libs(exe: &Path, root: &Path) {
    let (_, out, _) = run(Command::new("ldd").arg(exe));
    for lib in out.split_whitespace().filter(|w| w.starts_with('/')) {
        let to = root.join(lib.trim_start_matches('/'));
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        if !to.exists() {
            std::fs::copy(lib, &to).unwrap();
        }
    }
}

#[test]
#[ignore = "needs dpkg, chroot (root), systemd-analyze and the package (.ci/run builds it)"]
fn the_debian_package_installs_into_a_throwaway_root_and_its_unit_verifies() {
    let deb = the_deb();
    let deb_s = deb.to_str().unwrap();

    // Its metadata: control, conffiles, maintainer scripts.
    let (code, info, err) = run(Command::new("dpkg-deb").args(["-I", deb_s]));
    assert_eq!(code, Some(0), "{err}");
    for want in [
        "Package: bms-gateway",
        "Depends: adduser",
        "conffiles",
        "postinst",
        "postrm",
        "prerm",
    ] {
        assert!(info.contains(want), "dpkg-deb -I lacks {want:?}:\n{info}");
    }
    let (_, package, _) = run(Command::new("dpkg-deb").args(["-f", deb_s, "Package"]));
    assert_eq!(package.trim(), "bms-gateway");
    let ctl = tempfile::tempdir().unwrap();
    let (code, _, err) = run(Command::new("dpkg-deb").args(["-e", deb_s]).arg(ctl.path()));
    assert_eq!(code, Some(0), "{err}");
    let conffiles = std::fs::read_to_string(ctl.path().join("conffiles")).unwrap();
    assert_eq!(conffiles.trim(), "/etc/bms-gateway/gateway.toml");
    let postinst = std::fs::read_to_string(ctl.path().join("postinst")).unwrap();
    for want in ["adduser --system", "dialout", "deb-systemd-helper"] {
        assert!(
            postinst.contains(want),
            "postinst lacks {want:?}:\n{postinst}"
        );
    }

    // Its files.
    let (code, list, err) = run(Command::new("dpkg-deb").args(["-c", deb_s]));
    assert_eq!(code, Some(0), "{err}");
    for want in [
        "./usr/bin/gateway",
        "./usr/lib/systemd/system/bms-gateway.service",
        "./etc/bms-gateway/gateway.toml",
        "./usr/share/bms-gateway/profiles/pump-vfd.toml",
        "./usr/share/doc/bms-gateway/examples/tower-a.toml",
        "./usr/share/doc/bms-gateway/deploy.md",
        "./usr/share/doc/bms-gateway/config.md",
    ] {
        assert!(
            list.lines().any(|l| l.ends_with(want)),
            "the package lacks {want}:\n{list}"
        );
    }

    // Installed into a throwaway root: dpkg runs the maintainer scripts
    // outside it with DPKG_ROOT set (the scripts honour it; nothing of the
    // host changes). The root has no libc6/adduser packages: --force-depends.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("var/lib/dpkg/info")).unwrap();
    std::fs::create_dir_all(root.join("var/lib/dpkg/updates")).unwrap();
    std::fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
    let install = |what: &str| {
        let (code, out, err) = run(Command::new("dpkg")
            .arg(format!("--root={}", root.display()))
            .args([
                "--force-script-chrootless",
                "--force-depends",
                "--log=/dev/null",
                "-i",
                deb_s,
            ]));
        assert_eq!(code, Some(0), "{what}: {out}\n{err}");
    };
    install("install");
    assert!(
        root.join("etc/systemd/system/multi-user.target.wants/bms-gateway.service")
            .symlink_metadata()
            .is_ok(),
        "the unit is not enabled"
    );
    let conf = root.join("etc/bms-gateway/gateway.toml");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&conf).unwrap().permissions().mode() & 0o777,
        0o640
    );

    // The installed binary accepts the installed configuration, as the
    // unit's ExecStartPre runs it (absolute paths: inside the root).
    copy_libs(&root.join("usr/bin/gateway"), &root);
    let (code, out, err) = run(Command::new("chroot").arg(&root).args([
        "/usr/bin/gateway",
        "check",
        "--config",
        "/etc/bms-gateway/gateway.toml",
    ]));
    assert_eq!(code, Some(0), "gateway check in the root:\n{out}\n{err}");
    assert!(out.contains("OK: site my-site"), "{out}");
    let (_, version, _) = run(Command::new("chroot")
        .arg(&root)
        .args(["/usr/bin/gateway", "--version"]));
    assert!(version.contains("commit "), "{version}");

    // systemd-analyze verify on the installed unit, with the host's
    // targets and kill(1) beside it in the root.
    let units = root.join("usr/lib/systemd/system");
    for e in std::fs::read_dir("/usr/lib/systemd/system")
        .unwrap()
        .filter_map(Result::ok)
    {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "target") && !units.join(e.file_name()).exists() {
            std::fs::copy(&p, units.join(e.file_name())).unwrap();
        }
    }
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::copy("/bin/kill", root.join("bin/kill")).unwrap();
    copy_libs(Path::new("/bin/kill"), &root);
    let unit = units.join("bms-gateway.service");
    let (code, out, err) = run(Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", root.display()))
        .arg(&unit));
    assert_eq!(code, Some(0), "systemd-analyze verify:\n{out}\n{err}");
    let (_, out, err) = run(Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(format!("--root={}", root.display()))
        .arg(&unit));
    let all = format!("{out}{err}");
    let score: f64 = all
        .split("Overall exposure level for bms-gateway.service:")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{all}"));
    println!("systemd-analyze security: exposure {score} (docs/deploy.md records it)");
    assert!(score <= 2.0, "the unit's exposure rose to {score}:\n{all}");

    // An upgrade (the same package again) keeps an edited configuration
    // and the data directory.
    let mut text = std::fs::read_to_string(&conf).unwrap();
    text.push_str("\n# edited on site\n");
    std::fs::write(&conf, &text).unwrap();
    let data = root.join("var/lib/bms-gateway");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("gateway.db"), "ledger").unwrap();
    install("upgrade");
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), text);
    assert_eq!(
        std::fs::read_to_string(data.join("gateway.db")).unwrap(),
        "ledger"
    );
}

#[test]
#[ignore = "needs docker-compose (.ci/run installs it)"]
fn the_compose_file_validates_and_the_grafana_board_is_valid_json() {
    require_tool("docker-compose", "apt-get install docker-compose").unwrap();
    let central = workspace_root().join("deploy/central");
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join("env");
    std::fs::copy(central.join("env.example"), &env).unwrap();
    let (code, out, err) = run(Command::new("docker-compose")
        .arg("--env-file")
        .arg(&env)
        .arg("-f")
        .arg(central.join("compose.yaml"))
        .arg("config"));
    assert_eq!(code, Some(0), "{out}\n{err}");
    for service in ["mosquitto:", "influxdb:", "grafana:", "dashboard:"] {
        assert!(out.contains(service), "{service} missing:\n{out}");
    }
    // Without the secrets: an error naming the variable.
    std::fs::write(&env, "").unwrap();
    let (code, out, err) = run(Command::new("docker-compose")
        .arg("--env-file")
        .arg(&env)
        .arg("-f")
        .arg(central.join("compose.yaml"))
        .arg("config"));
    assert_ne!(code, Some(0), "{out}");
    assert!(
        err.contains("INFLUX_ADMIN_PASSWORD") || err.contains("INFLUX_TOKEN"),
        "{err}"
    );

    let board: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(central.join("grafana/dashboards/bms.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(board["uid"], "bms-telemetry");
    let panels = board["panels"].as_array().unwrap();
    assert!(panels.len() >= 3);
    for p in panels {
        assert_eq!(p["datasource"]["uid"], "bms-influx", "{p}");
    }
    let ds =
        std::fs::read_to_string(central.join("grafana/provisioning/datasources/influxdb.yaml"))
            .unwrap();
    assert!(ds.contains("uid: bms-influx"));
}

/// Runs in a private mount namespace: a real systemd-journald on tmpfs
/// (nothing reaches the host's journal), `gateway run` twice (named
/// `--log-format journald`, then `auto` with `JOURNAL_STREAM` naming its
/// stderr as systemd does for a service), and once with a `JOURNAL_STREAM`
/// that names another file; prints the journal as JSON lines.
const JOURNAL_SCRIPT: &str = r#"
set -eu
mount -t tmpfs tmpfs /run/systemd
mkdir -p /run/log /var/log/journal
mount -t tmpfs tmpfs /run/log
mount -t tmpfs tmpfs /var/log/journal
mkdir -p /run/systemd/journal
/lib/systemd/systemd-journald >"$DIR/journald.out" 2>&1 &
JPID=$!
trap 'kill $JPID 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -S /run/systemd/journal/socket ] && break; sleep 0.05; done
[ -S /run/systemd/journal/socket ] || { echo "journald did not start" >&2; cat "$DIR/journald.out" >&2; exit 3; }
gw() { # <name> <args…>: run for 2 s, then SIGINT
  name=$1; shift
  "$GW" "$@" run --config "$CFG" --data-dir "$DIR/$name" 2>"$DIR/$name.err" &
  pid=$!
  sleep 2
  kill -INT $pid
  wait $pid
}
gw named --log-format journald
touch "$DIR/auto.err"
JOURNAL_STREAM=$(stat -c '%d:%i' "$DIR/auto.err") gw auto
JOURNAL_STREAM=1:1 gw other
for _ in $(seq 50); do
  n=$(journalctl -o json --no-pager SYSLOG_IDENTIFIER=bms-gateway | grep -c 'signal received' || true)
  [ "$n" -ge 2 ] && break
  sleep 0.1
done
journalctl -o json --no-pager SYSLOG_IDENTIFIER=bms-gateway
"#;

#[test]
#[ignore = "needs root, unshare and systemd-journald (.ci/run installs systemd)"]
fn logs_reach_a_real_journald_as_structured_fields() {
    require_tool("unshare", "apt-get install util-linux").unwrap();
    require_tool("journalctl", "apt-get install systemd").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (env, _) = demo_env(dir.path());
    let config = demo_config(dir.path(), "").unwrap();
    let (code, out, err) = run_with_timeout(
        Command::new("unshare")
            .args(["--mount", "--propagation", "private", "bash", "-c"])
            .arg(JOURNAL_SCRIPT)
            .env("GW", bin("gateway"))
            .env("CFG", &config)
            .env("DIR", dir.path())
            .env("RUST_LOG", "info")
            .envs(env.iter().cloned()),
        Duration::from_secs(60),
    )
    .unwrap();
    assert_eq!(code, Some(0), "{out}\n{err}");
    let entries: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let field = |e: &serde_json::Value, k: &str| e[k].as_str().unwrap_or_default().to_owned();
    let loaded: Vec<_> = entries
        .iter()
        .filter(|e| field(e, "MESSAGE") == "ledger and tickets loaded")
        .collect();
    // Named and auto; the run whose JOURNAL_STREAM names another file
    // logged text to its stderr instead.
    assert_eq!(loaded.len(), 2, "{out}");
    for (e, run) in loaded.iter().zip(["named", "auto"]) {
        // The event's fields are journal fields of their own, with our prefix.
        assert!(
            field(e, "BMS_DATABASE").ends_with(&format!("{run}/gateway.db")),
            "{e}"
        );
        assert_eq!(field(e, "BMS_OPEN_TICKETS"), "0", "{e}");
        // INFO is journald's "notice".
        assert_eq!(field(e, "PRIORITY"), "5", "{e}");
        assert_eq!(field(e, "TARGET"), "gateway::engine", "{e}");
        assert_eq!(field(e, "_TRANSPORT"), "journal", "{e}");
    }
    assert!(
        entries
            .iter()
            .any(|e| field(e, "MESSAGE") == "stopping: signal received"),
        "{out}"
    );
    let text =
        |name: &str| std::fs::read_to_string(dir.path().join(format!("{name}.err"))).unwrap();
    assert!(
        !text("named").contains("ledger and tickets loaded"),
        "{}",
        text("named")
    );
    assert!(
        !text("auto").contains("ledger and tickets loaded"),
        "{}",
        text("auto")
    );
    assert!(
        text("other").contains("ledger and tickets loaded"),
        "{}",
        text("other")
    );
}
