//! Architecture invariants that the compiler cannot see, checked on every `cargo test`:
//!
//! - `wasmeow-protocol` (the sans-IO core) depends on no async runtime, socket, store, Wasm runtime or
//!   WebSocket crate, and its source never reads a clock or touches the file system or network;
//! - `wasmeow-sim` (when present) never depends on `wasmeow-session`;
//! - every non-test `.rs` file in the repository starts with a `//!` module doc.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Normal (non-dev, non-build) transitive dependencies of `package`, by crate name.
fn normal_deps(package: &str) -> Option<BTreeSet<String>> {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1"])
        .current_dir(repo_root())
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: HashMap<&str, &str> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let nodes = meta["resolve"]["nodes"].as_array().unwrap();
    let by_id: HashMap<&str, &serde_json::Value> = nodes
        .iter()
        .map(|n| (n["id"].as_str().unwrap(), n))
        .collect();
    let root = nodes
        .iter()
        .find(|n| names[n["id"].as_str().unwrap()] == package)?;
    let mut seen = BTreeSet::new();
    let mut stack = vec![root["id"].as_str().unwrap()];
    while let Some(id) = stack.pop() {
        for dep in by_id[id]["deps"].as_array().unwrap() {
            let normal = dep["dep_kinds"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["kind"].is_null());
            let dep_id = dep["pkg"].as_str().unwrap();
            if normal && seen.insert(names[dep_id].to_string()) {
                stack.push(dep_id);
            }
        }
    }
    Some(seen)
}

#[test]
fn protocol_core_depends_on_no_runtime_socket_or_store() {
    let deps = normal_deps("wasmeow-protocol").expect("wasmeow-protocol is in the workspace");
    assert!(
        deps.contains("wasmeow-proto"),
        "sanity: the walk found the proto crate"
    );
    let forbidden = [
        "tokio",
        "mio",
        "socket2",
        "async-std",
        "smol",
        "tungstenite",
        "tokio-tungstenite",
        "hyper",
        "reqwest",
        "redb",
        "wasmtime",
        "wasmeow-store",
        "wasmeow-session",
        "wasmeow-plugin-host",
        "wasmeow-sim",
        "notify",
    ];
    let found: Vec<_> = forbidden.iter().filter(|f| deps.contains(**f)).collect();
    assert!(
        found.is_empty(),
        "wasmeow-protocol must stay sans-IO but depends on {found:?}"
    );
}

#[test]
fn simulator_never_depends_on_the_session_runtime() {
    // The rule applies once the simulator exists; the protocol check above always applies.
    if let Some(deps) = normal_deps("wasmeow-sim") {
        assert!(
            deps.contains("wasmeow-protocol"),
            "the simulator is built on the protocol core"
        );
        assert!(
            !deps.contains("wasmeow-session"),
            "wasmeow-sim must not use wasmeow-session"
        );
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if path.is_dir() {
            if matches!(
                name.as_str(),
                "target" | "node_modules" | ".git" | "corpus" | "artifacts"
            ) {
                continue;
            }
            rust_files(&path, out);
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

/// A file is a test file when it sits under a `tests/` directory of a package.
fn is_test_file(root: &Path, file: &Path) -> bool {
    let mut dir = file.parent();
    while let Some(d) = dir {
        if d == root {
            return false;
        }
        if d.file_name().is_some_and(|n| n == "tests") {
            let manifest = d.parent().unwrap().join("Cargo.toml");
            if std::fs::read_to_string(manifest).is_ok_and(|m| m.contains("[package]")) {
                return true;
            }
        }
        dir = d.parent();
    }
    false
}

#[test]
fn every_source_file_starts_with_a_module_doc() {
    let root = repo_root();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    assert!(files.len() > 5, "sanity: found the sources");
    let missing: Vec<_> = files
        .iter()
        .filter(|f| !is_test_file(&root, f))
        .filter(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
            !first.starts_with("//!")
        })
        .map(|f| f.strip_prefix(&root).unwrap().display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "files without a `//!` module doc: {missing:#?}"
    );
}

#[test]
fn protocol_source_reads_no_clock_and_does_no_io() {
    let src = repo_root().join("host/protocol/src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let forbidden = [
        "SystemTime::now",
        "Instant::now",
        "std::net",
        "std::fs",
        "std::thread::sleep",
        "tokio",
        "thread_rng",
        "rand::rng()",
        "OsRng",
    ];
    let mut hits = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        // Unit tests may seed RNGs however they like; only check code before `mod tests`.
        let code = text.split("#[cfg(test)]").next().unwrap();
        let code: String = code
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        for pat in forbidden {
            if code.contains(pat) {
                hits.push(format!("{}: {pat}", f.display()));
            }
        }
    }
    assert!(
        hits.is_empty(),
        "host/protocol must not do IO or read clocks/OS randomness: {hits:#?}"
    );
}
