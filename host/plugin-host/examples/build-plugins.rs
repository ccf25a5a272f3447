//! Builds every example plugin into `plugins/dist/` and every test fixture into
//! `host/plugin-host/tests/fixtures/`, and records the toolchain in
//! `plugins/dist/TOOLCHAIN`. Run after changing the SDK, a plugin, a fixture or the
//! WIT: `cargo run -p wasmeow-plugin-host --example build-plugins`.
//!
//! The test `committed_builds_are_reproducible` rebuilds them and compares bytes.
//! `WASMEOW_REPO=DIR` builds a copy of the repository at DIR instead (to check
//! that builds do not depend on where the sources are).

use std::path::{Path, PathBuf};

use wasmeow_plugin_host::build::{
    BuildOptions, Toolchain, ToolchainChoice, build_plugin_with, detect_toolchain,
};

/// Example plugins (under `plugins/`, built into `plugins/dist/`).
const PLUGINS: &[&str] = &["echo", "welcome", "moderation", "reminders"];
/// Test fixtures (under `host/plugin-host/tests/fixtures/`, reached through the
/// guest workspace's `plugins/fixtures` symlink, built next to their sources).
const FIXTURES: &[&str] = &["recorder", "spin", "membomb", "trapper", "probe"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let repo = match std::env::var_os("WASMEOW_REPO") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."),
    }
    .canonicalize()?;
    let fixtures = repo.join("host/plugin-host/tests/fixtures");
    let dist = repo.join("plugins/dist");
    let mut jobs: Vec<(PathBuf, PathBuf)> = PLUGINS
        .iter()
        .map(|p| (repo.join("plugins").join(p), dist.clone()))
        .collect();
    jobs.extend(
        FIXTURES
            .iter()
            .map(|f| (repo.join("plugins/fixtures").join(f), fixtures.clone())),
    );
    let toolchain = detect_toolchain(ToolchainChoice::Auto, true)?;
    for (dir, out_dir) in jobs {
        let options = BuildOptions {
            out_dir: Some(out_dir),
            ..BuildOptions::default()
        };
        let built = build_plugin_with(&dir, &options)?;
        for warning in &built.warnings {
            eprintln!("{warning}\n");
        }
        let path = built.path;
        let size = std::fs::metadata(&path)?.len();
        println!("{} ({size} bytes)", path.display());
    }
    std::fs::write(dist.join("TOOLCHAIN"), toolchain_id(&toolchain)?)?;
    Ok(())
}

/// `rustc --version` of the toolchain, which the committed builds depend on.
fn toolchain_id(t: &Toolchain) -> std::io::Result<String> {
    let rustc = match t {
        Toolchain::Rustup => PathBuf::from("rustc"),
        Toolchain::Debian { rustc, .. } => rustc.clone(),
    };
    let out = std::process::Command::new(rustc)
        .arg("--version")
        .output()?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
