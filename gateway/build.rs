//! Build information for `gateway --version` and the admin listener: the git
//! commit the binary was built from (when built from a git checkout), the
//! target and the profile. No build time: the same source gives the same
//! binary.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (!s.is_empty()).then_some(s)
}

fn main() {
    // A package build (cargo deb, a source tarball) may have no .git: the
    // packager can pass the commit in BMS_GIT_COMMIT.
    println!("cargo:rerun-if-env-changed=BMS_GIT_COMMIT");
    let commit = std::env::var("BMS_GIT_COMMIT")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| {
            let c = git(&["rev-parse", "--short=12", "HEAD"])?;
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some();
            Some(if dirty { format!("{c}-dirty") } else { c })
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let date = git(&["log", "-1", "--format=%cs"]).unwrap_or_else(|| "unknown".to_owned());
    if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
        // Rebuild when HEAD moves or the index changes.
        println!("cargo:rerun-if-changed={dir}/HEAD");
        println!("cargo:rerun-if-changed={dir}/index");
    }
    println!("cargo:rustc-env=BMS_BUILD_COMMIT={commit}");
    println!("cargo:rustc-env=BMS_BUILD_DATE={date}");
    println!(
        "cargo:rustc-env=BMS_BUILD_TARGET={}",
        std::env::var("TARGET").unwrap_or_default()
    );
    println!(
        "cargo:rustc-env=BMS_BUILD_PROFILE={}",
        std::env::var("PROFILE").unwrap_or_default()
    );
}
