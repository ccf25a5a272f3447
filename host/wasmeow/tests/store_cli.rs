//! `wasmeow store verify|rekey` run as a real process against a real encrypted store.

use std::path::Path;
use std::process::Command;

use wasmeow_store::{KekSource, OpenOptions, RedbStore};

const OLD: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const NEW: &str = "2222222222222222222222222222222222222222222222222222222222222222";

fn wasmeow(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wasmeow"));
    cmd.args(args).env_remove("WASMEOW_STORE_KEY");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("wasmeow runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write_config(dir: &Path, key_env: &str) -> String {
    let path = dir.join("bot.toml");
    std::fs::write(
        &path,
        format!("[store]\npath = \"s.redb\"\nkey_env = \"{key_env}\"\n"),
    )
    .unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn verify_then_rekey_then_old_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store_path = dir.path().join("s.redb");
    let old_key: [u8; 32] = hex_32(OLD);
    drop(
        RedbStore::open(
            &store_path,
            &KekSource::key(old_key),
            &OpenOptions::default(),
        )
        .unwrap(),
    );
    let old_cfg = write_config(dir.path(), "TEST_OLD_KEY");

    let (code, out, err) = wasmeow(
        &["store", "verify", "--config", &old_cfg],
        &[("TEST_OLD_KEY", OLD)],
    );
    assert_eq!(code, 0, "verify with the right key succeeds: {out}{err}");

    let (code, out, _) = wasmeow(
        &["--json", "store", "verify", "--config", &old_cfg],
        &[("TEST_OLD_KEY", OLD)],
    );
    assert_eq!(code, 0);
    let report: serde_json::Value =
        serde_json::from_str(out.trim()).expect("verify --json prints JSON");
    assert!(report.get("schema_version").is_some(), "{report}");

    let before = std::fs::read(&store_path).unwrap();
    let (code, _, err) = wasmeow(
        &["store", "verify", "--config", &old_cfg],
        &[("TEST_OLD_KEY", NEW)],
    );
    assert_eq!(code, 2, "wrong key is an error");
    assert!(err.contains("error:"), "{err}");
    assert_eq!(
        std::fs::read(&store_path).unwrap(),
        before,
        "a refused open leaves the file unchanged"
    );

    let (code, out, err) = wasmeow(
        &[
            "store",
            "rekey",
            "--config",
            &old_cfg,
            "--new-key-env",
            "TEST_NEW_KEY",
        ],
        &[("TEST_OLD_KEY", OLD), ("TEST_NEW_KEY", NEW)],
    );
    assert_eq!(code, 0, "rekey succeeds: {out}{err}");
    assert!(out.contains("rekeyed"), "{out}");

    let (code, _, _) = wasmeow(
        &["store", "verify", "--config", &old_cfg],
        &[("TEST_OLD_KEY", OLD)],
    );
    assert_eq!(code, 2, "the old key no longer opens the store");
    let new_cfg = write_config(dir.path(), "TEST_NEW_KEY");
    let (code, out, err) = wasmeow(
        &["store", "verify", "--config", &new_cfg],
        &[("TEST_NEW_KEY", NEW)],
    );
    assert_eq!(code, 0, "the new key opens it: {out}{err}");
}

#[test]
fn missing_key_variable_and_missing_store_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "TEST_UNSET_KEY");
    let (code, _, err) = wasmeow(&["store", "verify", "--config", &cfg], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("no store at"), "{err}");
    drop(
        RedbStore::open(
            dir.path().join("s.redb"),
            &KekSource::key([7; 32]),
            &OpenOptions::default(),
        )
        .unwrap(),
    );
    let (code, _, err) = wasmeow(&["store", "verify", "--config", &cfg], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("TEST_UNSET_KEY is not set"), "{err}");
    let (code, _, err) = wasmeow(&["store", "rekey", "--config", &cfg], &[]);
    assert_eq!(code, 2, "rekey needs a new key option");
    assert!(
        err.contains("--new-key-env"),
        "clap names the options: {err}"
    );
}

fn hex_32(s: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}
