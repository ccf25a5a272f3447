//! Plugin build tooling: scaffolding, componentizing, reproducible builds.

use wasmeow_plugin_host::build::{
    BuildError, BuildOptions, ScaffoldError, build_plugin_with, componentize, scaffold_plugin,
};

use crate::common::*;

#[test]
fn scaffold_writes_a_plugin_crate() {
    let dir = tempfile::tempdir().unwrap();
    let root = scaffold_plugin("greeter", dir.path()).unwrap();
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    assert!(manifest.contains("name = \"greeter\""));
    assert!(manifest.contains("crate-type = [\"cdylib\"]"));
    assert!(manifest.contains("wasmeow-sdk = { path = "));
    assert!(
        std::fs::read_to_string(root.join("src/lib.rs"))
            .unwrap()
            .contains("export_plugin!(State);")
    );
    assert!(matches!(
        scaffold_plugin("greeter", dir.path()),
        Err(ScaffoldError::Exists(_))
    ));
    assert!(matches!(
        scaffold_plugin("Bad Name", dir.path()),
        Err(ScaffoldError::InvalidName(_))
    ));
    assert!(matches!(
        scaffold_plugin("9lives", dir.path()),
        Err(ScaffoldError::InvalidName(_))
    ));
}

#[test]
fn componentize_rejects_non_modules() {
    assert!(matches!(
        componentize(b"nope"),
        Err(BuildError::Componentize(_))
    ));
    assert!(matches!(
        componentize(b"\0asm\x0d\x00\x01\x00"),
        Err(BuildError::Componentize(_))
    ));
}

#[test]
fn build_needs_a_manifest() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        build_plugin_with(dir.path(), &BuildOptions::default()),
        Err(BuildError::NoManifest(_))
    ));
}

/// The committed builds match a fresh build of their sources. Needs the wasm
/// toolchain (installed on demand as root on Debian) and several minutes:
/// `cargo test -p wasmeow-plugin-host --test integration -- --ignored reproducible`.
#[test]
#[ignore = "builds every plugin with the wasm toolchain (minutes)"]
fn committed_builds_are_reproducible() {
    let toolchain_file = repo().join("plugins/dist/TOOLCHAIN");
    let recorded = std::fs::read_to_string(&toolchain_file).unwrap();
    let out = tempfile::tempdir().unwrap();
    let plugins = ["echo", "welcome", "moderation", "reminders"]
        .map(|p| (repo().join("plugins").join(p), dist(p)));
    let fixtures = ["recorder", "spin", "membomb", "trapper", "probe"]
        .map(|f| (repo().join("plugins/fixtures").join(f), fixture(f)));
    for (src, committed) in plugins.into_iter().chain(fixtures) {
        let options = BuildOptions {
            out_dir: Some(out.path().to_owned()),
            ..BuildOptions::default()
        };
        let built =
            build_plugin_with(&src, &options).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
        assert!(
            built.warnings.is_empty(),
            "{}: the build warns:\n{}",
            src.display(),
            built.warnings.join("\n\n")
        );
        let fresh = std::fs::read(&built.path).unwrap();
        assert!(
            fresh == read(&committed),
            "{} differs from a fresh build of {} (toolchain of the committed builds: {}); \
             rerun `cargo run -p wasmeow-plugin-host --example build-plugins`",
            committed.display(),
            src.display(),
            recorded.trim()
        );
    }
}

/// A scaffolded plugin builds and answers `!ping` in the host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "builds a plugin with the wasm toolchain (minutes)"]
async fn scaffolded_plugin_builds_and_runs() {
    let dir = tempfile::tempdir().unwrap();
    let root = scaffold_plugin("fresh", dir.path()).unwrap();
    let built =
        tokio::task::spawn_blocking(move || build_plugin_with(&root, &BuildOptions::default()))
            .await
            .unwrap()
            .unwrap();
    assert!(
        built.warnings.is_empty(),
        "a scaffolded plugin builds without warnings:\n{}",
        built.warnings.join("\n\n")
    );
    let t = host(vec![(
        "fresh",
        wasmeow_plugin_host::PluginSpec::new(open(&[wasmeow_plugin_host::Capability::Messaging])),
    )]);
    t.host.load_file(&built.path).await.unwrap();
    t.run(text(
        "me@s.whatsapp.net",
        "me@s.whatsapp.net",
        "F1",
        "!ping",
    ))
    .await;
    assert_eq!(t.texts(), ["pong"]);
}
