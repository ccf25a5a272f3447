//! `wasmeow plugin new|build` as a plugin author uses them: scaffold a crate, build it into a
//! component, see the compiler's warnings about their code, and a failing build's compiler errors.

use std::path::Path;
use std::process::Command;

/// Runs the binary; returns (exit code, stdout, stderr).
fn wasmeow(args: &[&str]) -> (i32, String, String) {
    wasmeow_in(Path::new("."), args)
}

/// Runs the binary in `cwd`.
fn wasmeow_in(cwd: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wasmeow"))
        .args(args)
        .current_dir(cwd)
        .env("WASMEOW_LOG", "warn")
        .output()
        .expect("wasmeow runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

#[test]
fn build_without_a_crate_names_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = wasmeow(&["plugin", "build", path(dir.path())]);
    assert_ne!(code, 0);
    assert!(
        err.contains("no Cargo.toml in") && err.contains(path(dir.path())),
        "{err}"
    );
}

#[test]
fn new_creates_name_in_the_current_folder_and_says_how_to_build_it() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = wasmeow_in(dir.path(), &["plugin", "new", "hello"]);
    assert_eq!(code, 0, "{err}");
    assert!(dir.path().join("hello/Cargo.toml").is_file());
    assert!(dir.path().join("hello/src/lib.rs").is_file());
    assert!(
        out.contains("created hello; build it with `wasmeow plugin build hello`"),
        "{out}"
    );
    let (code, out, err) = wasmeow_in(
        dir.path(),
        &["--json", "plugin", "new", "other", "--dir", "nested"],
    );
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(report["created"], "nested/other");
    assert!(dir.path().join("nested/other/Cargo.toml").is_file());
}

#[test]
fn new_refuses_bad_names_and_existing_folders() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = wasmeow(&["plugin", "new", "Bad Name", "--dir", path(dir.path())]);
    assert_ne!(code, 0);
    assert!(err.contains("invalid plugin name \"Bad Name\""), "{err}");
    let (code, _, _) = wasmeow(&["plugin", "new", "twice", "--dir", path(dir.path())]);
    assert_eq!(code, 0);
    let source = std::fs::read_to_string(dir.path().join("twice/src/lib.rs")).unwrap();
    std::fs::write(
        dir.path().join("twice/src/lib.rs"),
        format!("{source}// mine\n"),
    )
    .unwrap();
    let (code, _, err) = wasmeow(&["plugin", "new", "twice", "--dir", path(dir.path())]);
    assert_ne!(code, 0);
    assert!(err.contains("already exists"), "{err}");
    // Nothing of the existing crate was overwritten.
    assert!(
        std::fs::read_to_string(dir.path().join("twice/src/lib.rs"))
            .unwrap()
            .ends_with("// mine\n")
    );
}

/// Builds with the wasm toolchain (installed on demand as root on Debian): minutes the first time.
#[test]
#[ignore = "builds a plugin with the wasm toolchain (minutes)"]
fn new_then_build_reports_warnings_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = wasmeow(&["plugin", "new", "greeter", "--dir", path(dir.path())]);
    assert_eq!(code, 0, "{out}{err}");
    let root = dir.path().join("greeter");
    let lib = root.join("src/lib.rs");
    let source = std::fs::read_to_string(&lib).unwrap();

    // A warning about the author's code is shown, and the build still succeeds.
    std::fs::write(&lib, format!("{source}\nfn never_called() {{}}\n")).unwrap();
    let (code, out, err) = wasmeow(&["--json", "plugin", "build", path(&root)]);
    assert_eq!(code, 0, "{out}{err}");
    let report: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON object");
    let wasm = Path::new(report["wasm"].as_str().unwrap());
    assert_eq!(wasm, root.join("greeter.wasm"));
    let bytes = std::fs::read(wasm).unwrap();
    assert_eq!(report["bytes"].as_u64(), Some(bytes.len() as u64));
    // A component (layer 1), not a core module.
    assert_eq!(&bytes[..8], b"\0asm\x0d\x00\x01\x00");
    let warnings = report["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let warning = warnings[0].as_str().unwrap();
    assert!(
        warning.contains("never_called") && warning.contains("never used"),
        "{warning}"
    );

    // Without --json the warning goes to stderr, the result to stdout.
    let (code, out, err) = wasmeow(&["plugin", "build", path(&root)]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("wrote ") && out.contains("greeter.wasm"),
        "{out}"
    );
    assert!(err.contains("never_called"), "{err}");

    // A compile error fails the build with the compiler's message, and the
    // component written before stays as it was.
    std::fs::write(
        &lib,
        format!("{source}\nfn broken() -> u32 {{ \"not a number\" }}\n"),
    )
    .unwrap();
    let (code, out, err) = wasmeow(&["plugin", "build", path(&root)]);
    assert_ne!(code, 0, "{out}");
    assert!(
        err.contains("cargo build failed")
            && err.contains("mismatched types")
            && err.contains("src/lib.rs"),
        "{err}"
    );
    assert_eq!(std::fs::read(wasm).unwrap(), bytes);
}
