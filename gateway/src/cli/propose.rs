//! The draft site configuration of `gateway scan --propose`: one bus (the
//! line scanned) and one `[[device]]` per answering unit with the profile
//! that fits it best, the evidence in a comment and `# REVIEW:` marks where
//! a person must decide. The draft loads and validates as it is written
//! (placeholder names included), so `gateway check` works on it at once.

use std::fmt::Write as _;
use std::path::Path;

use gateway_core::identify::{Model, Verdict};

use crate::south::url::Endpoint;

/// The class of each shipped profile, as the library table of
/// docs/config.md gives it (a test keeps the two in step). A profile not
/// listed gets `other`, marked for review.
pub const LIBRARY_CLASSES: [(&str, &str); 20] = [
    ("pump-vfd", "pump"),
    ("meter-sdm630", "distribution"),
    ("breaker-di8", "distribution"),
    ("fire-panel", "fire_alarm"),
    ("lighting-relay", "lighting"),
    ("fan-coil", "hvac"),
    ("leak-sensor", "plumbing"),
    ("pressure-transmitter", "fire_water"),
    ("spd-monitor", "lightning_protection"),
    ("elevator-status", "elevator"),
    ("meter-dtsu666", "distribution"),
    ("meter-adl400", "distribution"),
    ("meter-sdm630-mct", "distribution"),
    ("meter-sdm120", "distribution"),
    ("drive-invt-gd200a", "pump"),
    ("drive-delta-c2000", "pump"),
    ("booster-pump-controller", "pump"),
    ("th-sensor-rs485", "hvac"),
    ("level-transmitter-rs485", "plumbing"),
    ("relay-module-8ch", "lighting"),
];

/// What the draft is made of.
pub struct Proposal<'a> {
    /// The line scanned.
    pub endpoint: &'a Endpoint,
    /// The profile folder the draft names (`profiles_dir`).
    pub profiles_dir: &'a Path,
    /// The library the units were compared with.
    pub models: &'a [Model],
    /// Each answering unit and what its answers say.
    pub verdicts: &'a [(u8, Verdict)],
    /// The unit range scanned, for the header (`1-247`).
    pub scanned: String,
}

/// A TOML basic string.
fn quoted(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// The draft's text.
pub fn draft(p: &Proposal<'_>) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "# Draft site configuration written by `gateway scan --propose`.\n\
         # Line {}, units {} scanned; {} answered.\n\
         # Every device below was recognised by the gateway, not by a person:\n\
         # check each `# REVIEW:` mark, give the devices their real ids, names,\n\
         # classes and locations, then run `gateway check --config <this file>`.\n\
         # docs/profiles.md (\"Recognising a model\") says how the choice is made.",
        p.endpoint,
        p.scanned,
        p.verdicts.len()
    );
    t.push('\n');
    let _ = writeln!(
        t,
        "# REVIEW: the site and gateway ids of this installation."
    );
    let _ = writeln!(t, "site = \"site\"");
    let _ = writeln!(t, "gateway = \"gw-1\"");
    let _ = writeln!(
        t,
        "profiles_dir = {}",
        quoted(&p.profiles_dir.display().to_string())
    );
    t.push('\n');
    let bus_id = bus(&mut t, p.endpoint);
    for (unit, verdict) in p.verdicts {
        t.push('\n');
        device(&mut t, p.models, bus_id, *unit, verdict);
    }
    t
}

/// Writes the `[[bus]]` of the line; returns its id.
fn bus(t: &mut String, e: &Endpoint) -> &'static str {
    let _ = writeln!(t, "# The line scanned.");
    let _ = writeln!(t, "[[bus]]");
    match e {
        Endpoint::Tcp { address } => {
            let _ = writeln!(
                t,
                "id = \"tcp-1\"\nkind = \"tcp\"\naddress = {}",
                quoted(address)
            );
            "tcp-1"
        }
        Endpoint::RtuOverTcp { address } => {
            let _ = writeln!(
                t,
                "id = \"rtu-tcp-1\"\nkind = \"rtu_over_tcp\"\naddress = {}\n\
                 # REVIEW: the baud rate and parity of the serial line behind the device server\n\
                 # (they set the timing of the requests).\nbaud = 9600\nparity = \"none\"",
                quoted(address)
            );
            "rtu-tcp-1"
        }
        Endpoint::Rtu {
            path,
            baud,
            parity,
            stop_bits,
            data_bits,
        } => {
            let parity = match parity {
                gateway_core::config::Parity::None => "none",
                gateway_core::config::Parity::Even => "even",
                gateway_core::config::Parity::Odd => "odd",
            };
            let _ = writeln!(
                t,
                "id = \"rs485-1\"\nkind = \"rtu\"\nport = {}\nbaud = {baud}\nparity = \"{parity}\"\n\
                 stop_bits = {stop_bits}\ndata_bits = {data_bits}",
                quoted(path)
            );
            "rs485-1"
        }
    }
}

fn device(t: &mut String, models: &[Model], bus: &str, unit: u8, v: &Verdict) {
    let Some(choice) = v.choice().and_then(|c| models.get(c).map(|m| (c, m))) else {
        let _ = writeln!(
            t,
            "# Unit {unit} answers, but no profile of the library fits it.\n\
             # REVIEW: write a profile for it (docs/profiles.md), then add the device:\n\
             # [[device]]\n# id = \"unit-{unit}\"\n# name_zh = \"待命名 unit {unit}\"\n\
             # class = \"other\"\n# bus = \"{bus}\"\n# unit = {unit}\n# profile = \"…\""
        );
        return;
    };
    let (index, model) = choice;
    let _ = writeln!(t, "# Unit {unit}: profile {}.", model.name);
    if let Some(m) = v.matched.iter().find(|m| m.model == index) {
        let _ = writeln!(t, "# Identified by its register {}.", m.evidence);
    }
    if let Some(s) = v.score_of(index) {
        let _ = writeln!(t, "# Score {}.", s.describe());
    }
    match v.runner_up() {
        Some(r) => {
            let name = models.get(r.model).map_or("?", |m| m.name.as_str());
            let _ = writeln!(t, "# Runner-up: {name}, score {}.", r.describe());
        }
        None if v.matched.is_empty() => {
            let _ = writeln!(t, "# No other profile of the library fits.");
        }
        None => {}
    }
    for d in v.doubts(models) {
        let _ = writeln!(t, "# REVIEW: {d}.");
    }
    let class = LIBRARY_CLASSES
        .iter()
        .find(|(p, _)| *p == model.name)
        .map(|(_, c)| *c);
    let _ = writeln!(
        t,
        "# REVIEW: id, names and location are placeholders.\n[[device]]\nid = \"unit-{unit}\"\n\
         name_zh = \"待命名 unit {unit}\"\nname_en = \"Unnamed unit {unit}\""
    );
    match class {
        Some(c) => {
            let _ = writeln!(t, "class = \"{c}\"");
        }
        None => {
            let _ = writeln!(
                t,
                "# REVIEW: the library does not say the class of profile {}.\nclass = \"other\"",
                model.name
            );
        }
    }
    let _ = writeln!(
        t,
        "bus = \"{bus}\"\nunit = {unit}\nprofile = {}",
        quoted(&model.name)
    );
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use gateway_core::config::load::{load, parse_profile};
    use gateway_core::identify::{Answer, Answers, Read, evaluate};
    use gateway_core::model::Area;

    use super::*;

    fn root() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    fn library() -> (Vec<Model>, BTreeMap<String, (String, String)>) {
        let dir = root().join("config/profiles");
        let mut models = Vec::new();
        let mut texts = BTreeMap::new();
        for (name, _) in LIBRARY_CLASSES {
            let text = std::fs::read_to_string(dir.join(format!("{name}.toml"))).unwrap();
            models.push(Model::new(name, &parse_profile(name, &text).unwrap()).unwrap());
            texts.insert(name.to_owned(), (format!("{name}.toml"), text));
        }
        (models, texts)
    }

    #[test]
    fn the_draft_loads_and_validates_with_its_placeholders_on_every_kind_of_line() {
        let (models, texts) = library();
        let pump = models.iter().position(|m| m.name == "pump-vfd").unwrap();
        // Unit 1: the pump's nine holding registers read in range;
        // unit 2: nothing fits.
        let mut a = Answers::default();
        a.insert(
            Read {
                area: Area::Holding,
                start: 0,
                count: 9,
            },
            Answer::Words(vec![0b1101, 4800, 220, 380, 350, 0, 0, 10, 540]),
        );
        let v1 = evaluate(&models, &a);
        assert_eq!(v1.choice(), Some(pump));
        let verdicts = vec![(1, v1), (2, Verdict::default())];
        for url in [
            "tcp://127.0.0.1:1502",
            "rtu+tcp://10.0.0.5:4001",
            "rtu:///dev/ttyUSB0?baud=19200&parity=even",
        ] {
            let endpoint = Endpoint::parse(url).unwrap();
            let text = draft(&Proposal {
                endpoint: &endpoint,
                profiles_dir: Path::new("/somewhere/profiles"),
                models: &models,
                verdicts: &verdicts,
                scanned: "1-10".into(),
            });
            let resolved = load("draft.toml", &text, &texts, &|_| None)
                .unwrap_or_else(|e| panic!("{url}: {e:?}\n{text}"));
            assert_eq!(resolved.devices.len(), 1, "{text}");
            let d = &resolved.devices[0];
            assert_eq!((d.unit, d.profile.as_str()), (1, "pump-vfd"));
            assert_eq!(d.class.as_str(), "pump");
            assert!(text.contains("name_zh = \"待命名 unit 1\""), "{text}");
            assert!(text.contains("# REVIEW: chosen by its registers"), "{text}");
            assert!(text.contains("Runner-up: "), "{text}");
            assert!(
                text.contains("# Unit 2 answers, but no profile of the library fits it."),
                "{text}"
            );
        }
    }

    #[test]
    fn the_classes_are_those_of_the_library_table_in_the_docs() {
        let doc = std::fs::read_to_string(root().join("docs/config.md")).unwrap();
        let table: BTreeMap<String, String> = doc
            .split("### The library")
            .nth(1)
            .unwrap()
            .split("\n## ")
            .next()
            .unwrap()
            .lines()
            .filter_map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                let name = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
                Some((name.to_owned(), (*cells.get(2)?).to_owned()))
            })
            .collect();
        let ours: BTreeMap<String, String> = LIBRARY_CLASSES
            .iter()
            .map(|(p, c)| ((*p).to_owned(), (*c).to_owned()))
            .collect();
        assert_eq!(ours, table);
    }
}
