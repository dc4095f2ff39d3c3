//! `gateway check`: validate a configuration and print the poll plan.

use std::fmt::Write as _;
use std::path::Path;

use gateway_core::config::{BusKind, ConfigError, Parity, Resolved, ResolvedBus, ResolvedDevice};
use gateway_core::model::{Area, Point};
use gateway_core::plan::{Barriers, Cost, Limits, Request, SERIAL_TURNAROUND, plan_costed};

use crate::south::line_cost;

/// Exit code of `gateway check --strict` when the file is valid but a line
/// cannot carry the polls configured on it.
pub const EXIT_WARNINGS: u8 = 2;

/// The planned requests of one device.
#[derive(Debug)]
pub struct DevicePlan {
    /// Every point, once per cycle.
    pub full: Vec<Request>,
    /// Only the alarm points, at the fast interval.
    pub alarm: Vec<Request>,
}

/// Plans one device's full and alarm cycles on `bus` as the bus task will
/// on start (with the bus's cost model).
pub fn device_plan(bus: &ResolvedBus, device: &ResolvedDevice) -> DevicePlan {
    let limits = Limits {
        max_registers: device.max_registers,
        max_bits: device.max_bits,
        max_gap: device.max_gap,
    };
    let barriers = Barriers::default();
    let cost = line_cost(bus);
    DevicePlan {
        full: plan_costed(&device.points, &|_| true, limits, &barriers, &cost),
        alarm: plan_costed(
            &device.points,
            &|p: &Point| p.alarm,
            limits,
            &barriers,
            &cost,
        ),
    }
}

/// Bits per character on the wire: start + data + parity + stop.
pub fn bits_per_char(bus: &ResolvedBus) -> u32 {
    1 + u32::from(bus.data_bits) + u32::from(bus.parity != Parity::None) + u32::from(bus.stop_bits)
}

/// Bytes of the RTU request and answer frames of one read request.
pub fn rtu_frame_bytes(req: &Request) -> (u32, u32) {
    // address + function + start(2) + count(2) + crc(2)
    let request = 8;
    let data = if req.area.is_bits() {
        u32::from(req.count).div_ceil(8)
    } else {
        2 * u32::from(req.count)
    };
    // address + function + byte count + data + crc(2)
    (request, 5 + data)
}

/// The silence that ends a frame: 3.5 characters, fixed at 1.75 ms above
/// 19 200 baud (Modbus over serial line, 2.5.1.1).
pub fn frame_silence_secs(bus: &ResolvedBus) -> f64 {
    if bus.baud > 19_200 {
        0.001_75
    } else {
        3.5 * f64::from(bits_per_char(bus)) / f64::from(bus.baud.max(1))
    }
}

/// Seconds one read transaction occupies an RTU line: both frames at the
/// baud rate, the silence that ends each, the configured inter-frame delay
/// the gateway keeps after it, and the device's turnaround
/// ([`SERIAL_TURNAROUND`], the planner's assumption). Behind a serial
/// device server (`rtu_over_tcp`) the network round trip comes on top.
pub fn rtu_transaction_secs(bus: &ResolvedBus, req: &Request) -> f64 {
    let (q, a) = rtu_frame_bytes(req);
    let bpc = f64::from(bits_per_char(bus));
    let baud = f64::from(bus.baud.max(1));
    let mut secs = f64::from(q + a) * bpc / baud
        + 2.0 * frame_silence_secs(bus)
        + bus.inter_frame_delay.as_secs_f64()
        + SERIAL_TURNAROUND.as_secs_f64();
    if bus.kind == BusKind::RtuOverTcp {
        secs += Cost::TCP.request_us / 1e6;
    }
    secs
}

/// Seconds one request takes on `bus`: the RTU wire time, or on TCP the
/// planner's assumed round trip (an estimate: networks and devices vary).
pub fn transaction_secs(bus: &ResolvedBus, req: &Request) -> f64 {
    match bus.kind {
        BusKind::Tcp => Cost::TCP.of(req.area, req.count) / 1e6,
        BusKind::Rtu | BusKind::RtuOverTcp => rtu_transaction_secs(bus, req),
    }
}

/// The line time one bus needs: one full cycle, and per second of polling.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LineLoad {
    /// Seconds one full poll of every device takes.
    pub cycle_secs: f64,
    /// Seconds of line time per second the configured intervals ask for
    /// (full polls plus the alarm polls between them); above 1 the line
    /// cannot carry them and polls come late.
    pub busy_per_sec: f64,
}

/// The line time the devices `devices` of `bus` need.
pub fn line_load(bus: &ResolvedBus, devices: &[&ResolvedDevice]) -> LineLoad {
    let mut load = LineLoad {
        cycle_secs: 0.0,
        busy_per_sec: 0.0,
    };
    for d in devices {
        let p = device_plan(bus, d);
        let full: f64 = p.full.iter().map(|r| transaction_secs(bus, r)).sum();
        let alarm: f64 = p.alarm.iter().map(|r| transaction_secs(bus, r)).sum();
        let poll = d.poll_interval.as_secs_f64().max(1e-3);
        let fast = d.alarm_interval.as_secs_f64().max(1e-3);
        // Alarm polls are skipped when a full poll is due anyway.
        let alarm_rate = (1.0 / fast - 1.0 / poll).max(0.0);
        load.cycle_secs += full;
        load.busy_per_sec += full / poll + alarm * alarm_rate;
    }
    load
}

fn parity_letter(p: Parity) -> char {
    match p {
        Parity::None => 'N',
        Parity::Even => 'E',
        Parity::Odd => 'O',
    }
}

fn bus_line(bus: &ResolvedBus) -> String {
    match bus.kind {
        BusKind::Tcp => format!("tcp {}", bus.target),
        BusKind::Rtu => format!(
            "rtu {} {} {}{}{}",
            bus.target,
            bus.baud,
            bus.data_bits,
            parity_letter(bus.parity),
            bus.stop_bits
        ),
        BusKind::RtuOverTcp => format!("rtu over tcp {} ({} baud behind it)", bus.target, bus.baud),
    }
}

fn area_short(a: Area) -> &'static str {
    match a {
        Area::Coil => "coil",
        Area::Discrete => "disc",
        Area::Holding => "hold",
        Area::Input => "inpt",
    }
}

/// Renders the plan report printed by `gateway check`: the text, the
/// requests per full cycle, and the warnings (lines that cannot carry their
/// polls), which the text lists too.
pub fn render(file: &Path, cfg: &Resolved, verbose: bool) -> (String, usize, Vec<String>) {
    let mut warnings = Vec::new();
    let mut out = String::new();
    let points: usize = cfg.devices.iter().map(|d| d.points.len()).sum();
    let _ = writeln!(
        out,
        "{}: OK: site {}, gateway {}, {} buses, {} devices, {} points",
        file.display(),
        cfg.site,
        cfg.gateway,
        cfg.buses.len(),
        cfg.devices.len(),
        points
    );
    let mut total = 0usize;
    for (bi, bus) in cfg.buses.iter().enumerate() {
        let devices: Vec<&ResolvedDevice> = cfg.devices.iter().filter(|d| d.bus == bi).collect();
        let _ = writeln!(
            out,
            "\nbus {} ({}, timeout {:?}, inter-frame {:?}, max gap {})",
            bus.id,
            bus_line(bus),
            bus.timeout,
            bus.inter_frame_delay,
            if bus.max_gap == u16::MAX {
                "by line cost".to_owned()
            } else {
                bus.max_gap.to_string()
            }
        );
        let mut bus_total = 0usize;
        let load = line_load(bus, &devices);
        for d in &devices {
            let p = device_plan(bus, d);
            bus_total += p.full.len();
            let _ = writeln!(
                out,
                "  {:<18} unit {:>3}  {:<22} {:>3} points  {:>2} requests/cycle every {:?}, {} alarm requests every {:?}",
                d.id,
                d.unit,
                d.profile,
                d.points.len(),
                p.full.len(),
                d.poll_interval,
                p.alarm.len(),
                d.alarm_interval
            );
            if verbose {
                for r in &p.full {
                    let names: Vec<&str> = r
                        .points
                        .iter()
                        .map(|&i| d.points[i].name.as_str())
                        .collect();
                    let _ = writeln!(
                        out,
                        "      {} {:>5}..{:<5} ({:>3}) {}",
                        area_short(r.area),
                        r.start,
                        u32::from(r.start) + u32::from(r.count) - 1,
                        r.count,
                        names.join(" ")
                    );
                }
            }
        }
        let _ = writeln!(
            out,
            "  = {bus_total} requests per full cycle on bus {}",
            bus.id
        );
        let ms = load.cycle_secs * 1e3;
        if bus.kind == BusKind::Tcp {
            let _ = writeln!(
                out,
                "  cycle {ms:.1} ms (estimate: {:.0} ms a round trip assumed), line busy {:.0} % of the time",
                Cost::TCP.request_us / 1e3,
                load.busy_per_sec * 100.0
            );
        } else {
            let _ = writeln!(
                out,
                "  cycle {ms:.1} ms at {} baud (frames, silences, inter-frame delay and {:.1} ms turnaround), line busy {:.0} % of the time",
                bus.baud,
                SERIAL_TURNAROUND.as_secs_f64() * 1e3,
                load.busy_per_sec * 100.0
            );
            if load.busy_per_sec > 1.0 {
                let w = format!(
                    "bus {}: the poll intervals ask for {:.0} ms of line time per second; the line carries 1000 ms: polls will come late, and a full cycle takes about {:.0} ms (lengthen poll_interval or alarm_interval, raise the baud rate, or move devices to another line)",
                    bus.id,
                    load.busy_per_sec * 1e3,
                    ms.max(load.busy_per_sec * ms)
                );
                let _ = writeln!(out, "  warning: {w}");
                warnings.push(w);
            }
        }
        total += bus_total;
    }
    let _ = writeln!(out, "\ntotal: {total} requests per full cycle");
    for d in &cfg.devices {
        if !d.labels.missing.is_empty() {
            let _ = writeln!(
                out,
                "warning: device {}: no label_zh / label_en for {}; the pages show the name made readable. Give both in profile {:?}",
                d.id,
                d.labels.missing.join(", "),
                d.profile
            );
        }
    }
    out.push_str(&north_summary(cfg));
    (out, total, warnings)
}

/// Where the gateway sends what it learns (no network is touched).
fn north_summary(cfg: &Resolved) -> String {
    let raw = &cfg.raw;
    let mut out = String::from("\nnorth:\n");
    match raw.mqtt.as_ref().filter(|m| m.enabled) {
        Some(m) => {
            let _ = writeln!(
                out,
                "  mqtt: {} as client {:?}, topics {}/{}/{}/…, telemetry QoS {}, {}",
                // Validation refuses credentials in the URL; never print them anyway.
                gateway_core::config::redact_url(&m.url),
                m.client_id_for(&cfg.site, &cfg.gateway),
                m.prefix,
                cfg.site,
                cfg.gateway,
                m.telemetry_qos.as_u8(),
                if m.username.is_some() {
                    "with user name and password"
                } else {
                    "anonymous"
                }
            );
        }
        None => out.push_str(
            "  mqtt: off (no [mqtt] section; `gateway run --mqtt-url URL` turns it on)\n",
        ),
    }
    let _ = writeln!(
        out,
        "  outbox: at most {}, fsync {}",
        raw.outbox.max_size,
        format!("{:?}", raw.outbox.fsync).to_lowercase()
    );
    match raw.influx.as_ref().filter(|i| i.enabled) {
        Some(i) => {
            let _ = writeln!(out, "  influx: {} org {} bucket {}", i.url, i.org, i.bucket);
        }
        None => out.push_str("  influx: off\n"),
    }
    let commands = if raw.commands.as_ref().is_some_and(|c| c.enabled) {
        "signed commands accepted on …/cmd/#"
    } else {
        "off"
    };
    let _ = writeln!(out, "  commands: {commands}");
    let admin = if raw.admin.listen.is_empty() {
        "off".to_owned()
    } else {
        format!("http://{}/healthz, /metrics", raw.admin.listen)
    };
    let _ = writeln!(out, "  admin: {admin}");
    // On-call alerts (issue #6).
    match raw.alerts.as_ref().filter(|a| a.enabled) {
        Some(a) => {
            let channels: Vec<String> = a
                .channels
                .iter()
                .map(|c| format!("{} ({})", c.id, c.kind))
                .collect();
            let _ = writeln!(
                out,
                "  alerts: {}; critical → {}, ordinary → {}; {} tiers (gateway oncall shows who)",
                channels.join(", "),
                a.critical.channels.join("+"),
                if a.ordinary.channels.is_empty() {
                    "nobody".to_owned()
                } else {
                    a.ordinary.channels.join("+")
                },
                a.rotation.tiers.len()
            );
        }
        None => out.push_str("  alerts: off (nobody is paged)\n"),
    }
    out
}

/// Everything `run` checks before it starts, without touching the network
/// or the data folder: the file and its profiles ([`crate::files::load_config`]:
/// shape, values, time zone, overlapping points), then the secrets and files
/// it names (MQTT password and TLS files, InfluxDB token and URL, the
/// command secret, the alert channels and rota). `check` and `run` both
/// call this, so a file that passes `check` does not stop `run` on a
/// configuration error. Every problem is returned, not only the first.
pub fn validate_for_run(file: &Path) -> Result<Resolved, Vec<ConfigError>> {
    let cfg = crate::files::load_config(file)?;
    let errors = preflight(file, &cfg, &|v| std::env::var(v).ok());
    if errors.is_empty() {
        Ok(cfg)
    } else {
        Err(errors)
    }
}

/// The checks of [`validate_for_run`] that read secrets and files.
fn preflight(
    file: &Path,
    cfg: &Resolved,
    env: &dyn Fn(&str) -> Option<String>,
) -> Vec<ConfigError> {
    let base = file.parent().unwrap_or(Path::new("."));
    let mut errors = Vec::new();
    let mut push = |path: &str, message: String| errors.push(ConfigError::new(path, message));
    if let Some(m) = cfg.raw.mqtt.as_ref().filter(|m| m.enabled) {
        if let Err(e) = m.password.read(base, env) {
            push("[mqtt] password", e.to_string());
        }
        for (key, f) in [
            ("ca_file", &m.ca_file),
            ("client_cert_file", &m.client_cert_file),
            ("client_key_file", &m.client_key_file),
        ] {
            if let Some(f) = f {
                let path = base.join(f);
                if let Err(e) = std::fs::File::open(&path) {
                    push(
                        &format!("[mqtt] {key}"),
                        format!("cannot read {}: {e}", path.display()),
                    );
                }
            }
        }
    }
    if let Some(i) = cfg.raw.influx.as_ref().filter(|i| i.enabled) {
        match i.token.read(base, env) {
            Ok(token) => {
                if let Err(e) = crate::influx::InfluxWriter::new(i, token) {
                    push("[influx]", e);
                }
            }
            Err(e) => push("[influx] token", e.to_string()),
        }
    }
    if let Some(c) = cfg.raw.commands.as_ref().filter(|c| c.enabled)
        && let Err(e) = crate::cmdin::read_secret(c, base, env)
    {
        // The message names its section already.
        push(&file.display().to_string(), e);
    }
    if let Some(a) = cfg.raw.alerts.as_ref().filter(|a| a.enabled) {
        if let Ok(tz) = gateway_core::ledger::parse_tz(&cfg.timezone)
            && let Err(errs) = gateway_core::oncall::Roster::from_config(a, tz)
        {
            errors.extend(errs);
        }
        if let Err(e) = gateway_core::alerts::Settings::new(a, &cfg.site, &cfg.gateway) {
            errors.push(ConfigError::new("[alerts]", e));
        }
        if let Err(e) = crate::alerts::build_channels(a, cfg, base, env) {
            // The message names its section and channel already.
            errors.push(ConfigError::new(file.display().to_string(), e));
        }
    }
    errors
}

/// Runs `gateway check`; returns the process exit code: 0, or with
/// `strict` [`EXIT_WARNINGS`] when a line cannot carry its polls.
pub fn check(file: &Path, verbose: bool, strict: bool) -> u8 {
    match validate_for_run(file) {
        Ok(cfg) => {
            let (text, _, warnings) = render(file, &cfg, verbose);
            print!("{text}");
            for w in &warnings {
                eprintln!("{}: warning: {w}", file.display());
            }
            if strict && !warnings.is_empty() {
                EXIT_WARNINGS
            } else {
                0
            }
        }
        Err(errors) => {
            crate::cli::print_config_errors(file, &errors);
            super::EXIT_CONFIG
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A file with one RTU line at `baud` and `n` devices of 30 holding
    /// registers polled every `poll`.
    fn line(dir: &Path, baud: u32, n: usize, poll: &str) -> std::path::PathBuf {
        let profiles = dir.join("profiles");
        std::fs::create_dir_all(&profiles).unwrap();
        let mut profile = String::from("description = \"30 registers\"\n");
        for i in 0..30 {
            profile.push_str(&format!(
                "[[point]]\nname = \"r{i}\"\narea = \"holding\"\naddress = {i}\ntype = \"u16\"\n"
            ));
        }
        std::fs::write(profiles.join("load-30.toml"), profile).unwrap();
        let mut cfg = format!(
            "site = \"s\"\ngateway = \"g\"\nprofiles_dir = \"profiles\"\ndata_dir = \"data\"\n\
             [[bus]]\nid = \"line\"\nkind = \"rtu\"\nport = \"/dev/null\"\nbaud = {baud}\n"
        );
        for u in 1..=n {
            cfg.push_str(&format!(
                "[[device]]\nid = \"d{u}\"\nname_zh = \"d{u}\"\nclass = \"other\"\nbus = \"line\"\nunit = {u}\nprofile = \"load-30\"\npoll_interval = \"{poll}\"\n"
            ));
        }
        let file = dir.join("gw.toml");
        std::fs::write(&file, cfg).unwrap();
        file
    }

    #[test]
    fn the_cycle_is_printed_in_ms_and_a_line_that_cannot_carry_its_polls_warns() {
        let dir = tempfile::tempdir().unwrap();
        let file = line(dir.path(), 9600, 8, "1s");
        let cfg = validate_for_run(&file).unwrap();
        let (text, _, warnings) = render(&file, &cfg, false);
        // 30 registers at 9600 8N1: 73 characters (76.0 ms), two silences of
        // 3.5 characters (7.3 ms), the 3.65 ms delay and 2.5 ms: 89.5 ms each.
        assert!(text.contains("cycle 715.8 ms at 9600 baud"), "{text}");
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(check(&file, false, true), 0);

        let file = line(dir.path(), 9600, 8, "500ms");
        let cfg = validate_for_run(&file).unwrap();
        let (text, _, warnings) = render(&file, &cfg, false);
        assert_eq!(warnings.len(), 1, "{text}");
        assert!(text.contains("warning: bus line"), "{text}");
        assert!(
            warnings[0].contains("1432 ms of line time per second"),
            "{warnings:?}"
        );
        assert_eq!(check(&file, false, false), 0);
        assert_eq!(check(&file, false, true), EXIT_WARNINGS);
    }

    #[test]
    fn above_19200_baud_the_frame_silence_is_fixed() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = validate_for_run(&line(dir.path(), 115_200, 1, "1s")).unwrap();
        assert!((frame_silence_secs(&cfg.buses[0]) - 0.001_75).abs() < 1e-12);
        let load = line_load(&cfg.buses[0], &[&cfg.devices[0]]);
        // 73 characters at 115 200 (6.34 ms) + 2 × 1.75 + 1.75 + 2.5 ms.
        assert!((load.cycle_secs * 1e3 - 14.087).abs() < 0.01, "{load:?}");
        let cfg = validate_for_run(&line(dir.path(), 19_200, 1, "1s")).unwrap();
        let expected = 3.5 * 10.0 / 19_200.0;
        assert!((frame_silence_secs(&cfg.buses[0]) - expected).abs() < 1e-12);
    }
}
