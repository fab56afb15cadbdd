//! The Debian package that `scripts/test.sh` builds with cargo-deb (`target/debian/*.deb`):
//! its contents, and its binary, config and rules as installed, extracted with
//! `dpkg-deb -x`: `hogtrap --version` and `hogtrap rules check` against the packaged config
//! and rules; `systemd-analyze verify` on the unit where systemd-analyze is installed.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::require_program;

/// The newest .deb in target/debian; a missing one fails (run `cargo deb` first, as
/// scripts/test.sh does).
fn package() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/debian");
    let newest = std::fs::read_dir(&dir)
        .ok()
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .max_by_key(|p| p.metadata().and_then(|m| m.modified()).ok());
    newest.unwrap_or_else(|| {
        panic!(
            "no package in {}: build it with `cargo deb --profile dev` (scripts/test.sh does)",
            dir.display()
        )
    })
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_package_installs_a_binary_config_rules_and_unit_that_work() {
    let dpkg_deb = require_program("/usr/bin/dpkg-deb", "dpkg");
    let deb = package();

    let listing = run(Command::new(&dpkg_deb).arg("--contents").arg(&deb));
    for path in [
        "./usr/bin/hogtrap",
        "./etc/hogtrap/config.toml",
        "./etc/hogtrap/rules/cpu_hog.lua",
        "./usr/lib/systemd/system/hogtrap.service",
        "./usr/share/doc/hogtrap/config.toml.example",
    ] {
        assert!(
            listing.lines().any(|l| l.ends_with(path)),
            "{path} missing from the package:\n{listing}"
        );
    }
    let config_line = listing
        .lines()
        .find(|l| l.ends_with("./etc/hogtrap/config.toml"))
        .unwrap();
    assert!(
        config_line.starts_with("-rw-------"),
        "config mode: {config_line}"
    );
    let conffiles = run(Command::new(&dpkg_deb)
        .arg("--info")
        .arg(&deb)
        .arg("conffiles"));
    assert!(
        conffiles
            .lines()
            .any(|l| l.trim() == "/etc/hogtrap/config.toml"),
        "the config is not a conffile: {conffiles}"
    );

    let root = tempfile::tempdir().unwrap();
    run(Command::new(&dpkg_deb).arg("-x").arg(&deb).arg(root.path()));
    let bin = root.path().join("usr/bin/hogtrap");
    let version = run(Command::new(&bin).arg("--version"));
    assert!(
        version.contains(env!("CARGO_PKG_VERSION")),
        "--version: {version}"
    );

    // The packaged config names /etc/hogtrap/rules: check it with the rules as extracted.
    let etc = root.path().join("etc/hogtrap");
    let config = std::fs::read_to_string(etc.join("config.toml")).unwrap();
    assert!(config.contains("dir = \"/etc/hogtrap/rules\""), "{config}");
    assert!(
        config.contains("path = \"/var/lib/hogtrap/hogtrap.db\""),
        "{config}"
    );
    let here = config.replace(
        "/etc/hogtrap/rules",
        &etc.join("rules").display().to_string(),
    );
    let config_here = etc.join("config.here.toml");
    std::fs::write(&config_here, here).unwrap();
    let check = run(Command::new(&bin)
        .arg("-c")
        .arg(&config_here)
        .args(["rules", "check"]));
    let shipped = std::fs::read_dir(etc.join("rules")).unwrap().count();
    assert!(shipped >= 9, "{shipped} rule files");
    assert!(
        check.contains(&format!("{shipped} rule file(s) OK")),
        "rules check:\n{check}"
    );

    // The unit, where systemd-analyze is installed (it checks ExecStart's binary exists:
    // point it at the extracted one).
    if let Some(analyze) = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"]
        .into_iter()
        .find(|p| Path::new(p).exists())
    {
        let unit =
            std::fs::read_to_string(root.path().join("usr/lib/systemd/system/hogtrap.service"))
                .unwrap();
        let unit_dir = tempfile::tempdir().unwrap();
        let unit_here = unit_dir.path().join("hogtrap.service");
        std::fs::write(
            &unit_here,
            unit.replace("/usr/bin/hogtrap", &bin.display().to_string()),
        )
        .unwrap();
        let out = Command::new(analyze)
            .arg("verify")
            .arg(&unit_here)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        // Only complaints about this unit count (the machine's other units are not ours).
        let ours: Vec<&str> = stderr
            .lines()
            .filter(|l| l.contains("hogtrap.service"))
            .collect();
        assert!(
            out.status.success() && ours.is_empty(),
            "systemd-analyze verify:\n{stderr}"
        );
    }
}
