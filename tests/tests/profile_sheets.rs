//! `gateway profile export` / `gateway profile import` end to end with the
//! real binary: a shipped profile out to .xlsx and .csv and back in to the
//! same profile, a bad sheet refused with every error and nothing written,
//! `--out` kept unless `--force`, and `gateway check` accepting a site that
//! uses the imported profile.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use bms_e2e::{bin, run_with_timeout, workspace_root};
use gateway_core::config::Profile;
use gateway_core::config::load::parse_profile;

fn gateway(args: &[&str], dir: &Path) -> (Option<i32>, String, String) {
    run_with_timeout(
        Command::new(bin("gateway")).args(args).current_dir(dir),
        Duration::from_secs(30),
    )
    .unwrap()
}

fn profile_at(path: &Path) -> Profile {
    let text = std::fs::read_to_string(path).unwrap();
    parse_profile(&path.display().to_string(), &text).unwrap()
}

#[test]
fn a_shipped_profile_goes_out_to_xlsx_and_csv_and_comes_back_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let src = workspace_root().join("config/profiles/meter-sdm630.toml");
    let src = src.to_str().unwrap();
    let original = profile_at(Path::new(src));
    for ext in ["xlsx", "csv"] {
        let sheet = format!("points.{ext}");
        let (code, out, err) = gateway(&["profile", "export", src, "--out", &sheet], dir.path());
        assert_eq!(code, Some(0), "stdout:\n{out}\nstderr:\n{err}");
        assert!(out.contains("wrote"), "{out}");
        let toml = format!("meter-{ext}.toml");
        let (code, out, err) = gateway(&["profile", "import", &sheet, "--out", &toml], dir.path());
        assert_eq!(code, Some(0), "stdout:\n{out}\nstderr:\n{err}");
        assert!(
            out.contains(&format!("{} points", original.points.len())),
            "{out}"
        );
        assert_eq!(
            profile_at(&dir.path().join(&toml)),
            original,
            "through {ext}"
        );
        // The same file again: refused without --force, the file kept.
        let before = std::fs::read(dir.path().join(&toml)).unwrap();
        let (code, _, err) = gateway(&["profile", "import", &sheet, "--out", &toml], dir.path());
        assert_eq!(code, Some(64), "{err}");
        assert!(err.contains("--force"), "{err}");
        assert_eq!(std::fs::read(dir.path().join(&toml)).unwrap(), before);
        let (code, _, err) = gateway(
            &["profile", "import", &sheet, "--out", &toml, "--force"],
            dir.path(),
        );
        assert_eq!(code, Some(0), "{err}");
        let (code, _, err) = gateway(&["profile", "export", src, "--out", &sheet], dir.path());
        assert_eq!(code, Some(64), "export keeps an existing file too: {err}");
    }
}

#[test]
fn a_bad_sheet_is_refused_with_every_error_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.csv"),
        "name,area,address,type,colour\n\
         ok,holding,0,u16,\n\
         broken,holding,0x1G,u16,\n\
         typo,holding,2,flaot,\n\
         ok,holding,3,u16,\n",
    )
    .unwrap();
    let (code, out, err) = gateway(
        &["profile", "import", "bad.csv", "--out", "bad.toml"],
        dir.path(),
    );
    assert_eq!(code, Some(64), "stdout:\n{out}\nstderr:\n{err}");
    for needle in [
        "4 errors; nothing written",
        r#"sheet "points" line 1, column "colour" (field 5): unknown column"#,
        r#"line 3, column "address" (field 3): "0x1G" is not an address"#,
        r#"line 4, column "type" (field 4): "flaot" is not a type"#,
        r#"line 5, column "name" (field 1): point "ok" is also on line 2"#,
    ] {
        assert!(err.contains(needle), "{needle:?} missing from:\n{err}");
    }
    assert!(!dir.path().join("bad.toml").exists());
}

#[test]
fn an_imported_one_based_list_passes_gateway_check_in_a_site() {
    let dir = tempfile::tempdir().unwrap();
    let profiles = dir.path().join("profiles");
    std::fs::create_dir(&profiles).unwrap();
    // A maker's list as Chinese Excel writes it: GBK is tested in the
    // crate; here UTF-8 with a byte-order mark, Chinese headers, 1-based.
    let mut csv = vec![0xEF, 0xBB, 0xBF];
    csv.extend_from_slice(
        "名称,中文名,英文名,区域,地址,类型,倍率,单位,报警\r\n\
         supply_temp,供水温度,Supply temperature,input,1,i16,0.1,℃,\r\n\
         return_temp,回水温度,Return temperature,input,2,i16,0.1,℃,\r\n\
         pump_fault,水泵故障,Pump fault,discrete,1,bool,,,是\r\n"
            .as_bytes(),
    );
    std::fs::write(dir.path().join("map.csv"), csv).unwrap();
    let (code, out, err) = gateway(
        &[
            "profile",
            "import",
            "map.csv",
            "--base",
            "1",
            "--description",
            "Heat exchanger station controller",
            "--out",
            "profiles/hx-station.toml",
        ],
        dir.path(),
    );
    assert_eq!(code, Some(0), "stdout:\n{out}\nstderr:\n{err}");
    let p = profile_at(&profiles.join("hx-station.toml"));
    let addrs: Vec<u16> = p.points.iter().map(|p| p.address).collect();
    assert_eq!(addrs, vec![0, 1, 0]);
    assert_eq!(p.description, "Heat exchanger station controller");
    std::fs::write(
        dir.path().join("site.toml"),
        r#"
site = "s"
gateway = "g"
profiles_dir = "profiles"

[[bus]]
id = "line"
kind = "rtu"
port = "/dev/null"

[[device]]
id = "hx-1"
name_zh = "换热站"
class = "hvac"
bus = "line"
unit = 1
profile = "hx-station"
"#,
    )
    .unwrap();
    let (code, out, err) = gateway(&["check", "--config", "site.toml"], dir.path());
    assert_eq!(code, Some(0), "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("OK"), "{out}");
}
