//! Building Rust plugins into components, and scaffolding new ones (the library
//! side of `wasmeow plugin new|build`).
//!
//! [`build_plugin`] compiles a plugin crate (a `cdylib` using `wasmeow-sdk`) for
//! `wasm32-unknown-unknown` and turns the core module into a component with
//! `wit-component`, writing `NAME.wasm`. Toolchain, in order:
//!
//! 1. rustup's toolchain when its `wasm32-unknown-unknown` target is installed
//!    (`rustup target add wasm32-unknown-unknown`; the usual case);
//! 2. Debian's `rustc-web`/`cargo-web` (Rust ≥ 1.96) with `rust-web-src`, building
//!    std from source with `-Zbuild-std` (`RUSTC_BOOTSTRAP=1`) and linking with
//!    LLVM's `wasm-ld` from `lld-22` (Debian's rustc has no `rust-lld`, the
//!    target's default linker); installed with `apt-get` when missing and running
//!    as root on Debian.
//!
//! Builds are reproducible: the same sources and toolchain give the same bytes.
//! Every local source directory is remapped to a fixed name
//! (`--remap-path-prefix`), and so is `CARGO_HOME`; no timestamps are embedded;
//! `wit-component` output is deterministic. The plugin's release profile should
//! keep `codegen-units = 1` and `incremental = false` (the scaffold does).

use std::path::{Path, PathBuf};
use std::process::Command;

use wit_component::ComponentEncoder;

/// The target plugins are compiled for.
pub const TARGET: &str = "wasm32-unknown-unknown";

/// The Debian packages of the fallback toolchain.
pub const DEBIAN_PACKAGES: &[&str] = &["rustc-web", "cargo-web", "rust-web-src", "lld-22"];

/// LLVM's wasm linker as Debian installs it, newest first (`lld-22` is the
/// package we install; an already installed other version works as well).
const DEBIAN_WASM_LD: &[&str] = &[
    "/usr/bin/wasm-ld-22",
    "/usr/bin/wasm-ld-21",
    "/usr/bin/wasm-ld-20",
    "/usr/bin/wasm-ld-19",
    "/usr/bin/wasm-ld",
];

/// Where Debian's `rust-web-src` puts the standard library sources.
const DEBIAN_STD_SRC: &str = "/usr/lib/rustlib/src/rust/library/std";

/// The oldest Rust that builds the SDK (wit-bindgen 0.63).
const MIN_RUST_MINOR: u32 = 96;

/// A build failure.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// `dir` has no `Cargo.toml`.
    #[error("no Cargo.toml in {0}")]
    NoManifest(PathBuf),
    /// No toolchain can build for wasm32; the text says what to install.
    #[error("no Rust toolchain for {TARGET}: {0}")]
    NoToolchain(String),
    /// Installing Debian's toolchain failed.
    #[error("installing {packages} with apt-get failed: {reason}")]
    Install {
        /// The packages.
        packages: String,
        /// apt-get's output.
        reason: String,
    },
    /// `cargo metadata` failed or its output was not understood.
    #[error("cargo metadata: {0}")]
    Metadata(String),
    /// `cargo build` failed.
    #[error("cargo build failed:\n{0}")]
    Cargo(String),
    /// The build produced no `.wasm` for the package (not a `cdylib`?).
    #[error(
        "the build of {0} produced no .wasm file; is it a `crate-type = [\"cdylib\"]` library?"
    )]
    NoArtifact(String),
    /// `wit-component` could not make a component of the module.
    #[error("componentizing: {0}")]
    Componentize(String),
    /// Reading or writing a file, or running a program, failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or program.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> BuildError {
    let path = path.into();
    move |source| BuildError::Io { path, source }
}

/// Which toolchain to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ToolchainChoice {
    /// rustup's when it has the target, else Debian's.
    #[default]
    Auto,
    /// rustup's (`cargo` on `PATH`) only.
    Rustup,
    /// Debian's `/usr/bin/cargo` + `/usr/bin/rustc` with `-Zbuild-std` only.
    Debian,
}

/// A toolchain able to build plugins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Toolchain {
    /// `cargo` from `PATH` (rustup), with the target's std installed.
    Rustup,
    /// Debian's toolchain; std is rebuilt from `rust-web-src`.
    Debian {
        /// `/usr/bin/cargo`.
        cargo: PathBuf,
        /// `/usr/bin/rustc`.
        rustc: PathBuf,
        /// LLVM's `wasm-ld` (`/usr/bin/wasm-ld-22` from `lld-22`).
        linker: PathBuf,
    },
}

/// Options of [`build_plugin_with`].
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// Where to write `NAME.wasm`; default: the plugin's directory.
    pub out_dir: Option<PathBuf>,
    /// Which toolchain.
    pub toolchain: ToolchainChoice,
    /// Never run `apt-get`, even as root on Debian.
    pub no_install: bool,
}

/// A finished build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    /// The component written, `NAME.wasm`.
    pub path: PathBuf,
    /// The compiler's warnings about the plugin and the other packages of its
    /// workspace (the SDK among them), rendered as rustc prints them; warnings
    /// about the standard library and registry crates are left out.
    pub warnings: Vec<String>,
}

/// Builds the plugin crate in `dir` and writes `dir/NAME.wasm` (NAME = the
/// package name).
pub fn build_plugin(dir: &Path) -> Result<Built, BuildError> {
    build_plugin_with(dir, &BuildOptions::default())
}

/// [`build_plugin`] with options.
pub fn build_plugin_with(dir: &Path, options: &BuildOptions) -> Result<Built, BuildError> {
    let manifest = dir.join("Cargo.toml");
    if !manifest.is_file() {
        return Err(BuildError::NoManifest(dir.to_owned()));
    }
    // Absolute but not canonical: a member reached through a symlink (as the
    // guest workspace's `fixtures/` and `sdk/` are) must keep its path to find
    // its workspace.
    let manifest = normalize(&std::path::absolute(&manifest).map_err(io(&manifest))?);
    let toolchain = detect_toolchain(options.toolchain, !options.no_install)?;
    let meta = metadata(&toolchain, &manifest)?;
    let (core, warnings) = cargo_build(&toolchain, &manifest, &meta)?;
    let component = componentize(&core)?;
    let out_dir = options.out_dir.clone().unwrap_or_else(|| dir.to_owned());
    std::fs::create_dir_all(&out_dir).map_err(io(&out_dir))?;
    let out = out_dir.join(format!("{}.wasm", meta.package));
    // Write next to the target and rename, so a watcher never sees half a file.
    let tmp = out_dir.join(format!(".{}.wasm.tmp", meta.package));
    std::fs::write(&tmp, &component).map_err(io(&tmp))?;
    std::fs::rename(&tmp, &out).map_err(io(&out))?;
    Ok(Built {
        path: out,
        warnings,
    })
}

/// Resolves `.` and `..` lexically, as cargo does with manifest paths (so the
/// path matches what `cargo metadata` reports, and symlinks are kept).
fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Turns a core module built with wit-bindgen (it carries the world in a
/// `component-type` custom section) into a component.
pub fn componentize(core: &[u8]) -> Result<Vec<u8>, BuildError> {
    ComponentEncoder::default()
        .validate(true)
        .module(core)
        .and_then(|mut e| e.encode())
        .map_err(|e| BuildError::Componentize(format!("{e:#}")))
}

/// Finds (and with `install`, installs) a toolchain per `choice`.
pub fn detect_toolchain(choice: ToolchainChoice, install: bool) -> Result<Toolchain, BuildError> {
    if matches!(choice, ToolchainChoice::Auto | ToolchainChoice::Rustup) && rustup_has_target() {
        return Ok(Toolchain::Rustup);
    }
    if choice == ToolchainChoice::Rustup {
        return Err(BuildError::NoToolchain(format!(
            "the toolchain on PATH has no {TARGET} standard library; run `rustup target add {TARGET}`"
        )));
    }
    if let Some(t) = debian_toolchain()? {
        return Ok(t);
    }
    let packages = DEBIAN_PACKAGES.join(" ");
    if install && is_root() && Path::new("/etc/debian_version").exists() {
        tracing::info!("installing Debian's Rust toolchain for wasm plugins: {packages}");
        apt_install()?;
        if let Some(t) = debian_toolchain()? {
            return Ok(t);
        }
    }
    Err(BuildError::NoToolchain(format!(
        "install rustup's target (`rustup target add {TARGET}`, Rust >= 1.{MIN_RUST_MINOR}) or, on Debian, \
         `apt-get install {packages}`"
    )))
}

fn rustup_has_target() -> bool {
    let Ok(out) = Command::new("rustc").args(["--print", "sysroot"]).output() else {
        return false;
    };
    if !out.status.success() {
        return false;
    }
    let sysroot = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    Path::new(&sysroot)
        .join("lib/rustlib")
        .join(TARGET)
        .join("lib")
        .is_dir()
}

fn debian_toolchain() -> Result<Option<Toolchain>, BuildError> {
    let cargo = PathBuf::from("/usr/bin/cargo");
    let rustc = PathBuf::from("/usr/bin/rustc");
    let linker = DEBIAN_WASM_LD
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file());
    let Some(linker) = linker else {
        return Ok(None);
    };
    if !cargo.is_file() || !rustc.is_file() || !Path::new(DEBIAN_STD_SRC).is_dir() {
        return Ok(None);
    }
    let out = Command::new(&rustc)
        .arg("--version")
        .output()
        .map_err(io(&rustc))?;
    let version = String::from_utf8_lossy(&out.stdout).into_owned();
    let minor = version
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.split('.').nth(1))
        .and_then(|m| m.parse::<u32>().ok());
    match minor {
        Some(m) if m >= MIN_RUST_MINOR => Ok(Some(Toolchain::Debian {
            cargo,
            rustc,
            linker,
        })),
        _ => Err(BuildError::NoToolchain(format!(
            "/usr/bin/rustc is {:?}; plugins need Rust >= 1.{MIN_RUST_MINOR} (Debian's rustc-web)",
            version.trim()
        ))),
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn apt_install() -> Result<(), BuildError> {
    let packages = DEBIAN_PACKAGES.join(" ");
    let run = |args: &[&str]| -> Result<std::process::Output, BuildError> {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
            .map_err(io("apt-get"))
    };
    let mut install_args = vec!["install", "-y", "--no-install-recommends"];
    install_args.extend_from_slice(DEBIAN_PACKAGES);
    let out = run(&install_args)?;
    if out.status.success() {
        return Ok(());
    }
    // The package lists may be missing or stale: update once and retry.
    run(&["update"])?;
    let out = run(&install_args)?;
    if out.status.success() {
        return Ok(());
    }
    Err(BuildError::Install {
        packages,
        reason: tail(&String::from_utf8_lossy(&out.stderr), 20),
    })
}

/// What the build needs to know about the plugin's package and workspace.
struct Meta {
    package: String,
    package_id: String,
    /// The ids of the workspace's and other path packages (not std's, which
    /// `-Zbuild-std` builds, nor registry crates).
    local_ids: Vec<String>,
    /// Local source directories to remap, shortest first.
    local_dirs: Vec<PathBuf>,
}

fn cargo_command(t: &Toolchain) -> Command {
    let mut cmd = match t {
        Toolchain::Rustup => Command::new("cargo"),
        Toolchain::Debian {
            cargo,
            rustc,
            linker,
        } => {
            let mut c = Command::new(cargo);
            c.env("RUSTC", rustc)
                .env("RUSTC_BOOTSTRAP", "1")
                .env("CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER", linker);
            // Run under `cargo test`, the rustup toolchain's library path would
            // leak into Debian's compiler.
            c.env_remove("LD_LIBRARY_PATH");
            c
        }
    };
    if matches!(t, Toolchain::Rustup) {
        cmd.env_remove("RUSTC");
    }
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_TARGET",
        "CARGO_INCREMENTAL",
        "CARGO_PROFILE_RELEASE_DEBUG",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("CARGO_TERM_COLOR", "never");
    cmd
}

fn metadata(t: &Toolchain, manifest: &Path) -> Result<Meta, BuildError> {
    let out = cargo_command(t)
        .args(["metadata", "--format-version", "1", "--manifest-path"])
        .arg(manifest)
        .output()
        .map_err(io("cargo"))?;
    if !out.status.success() {
        return Err(BuildError::Metadata(tail(
            &String::from_utf8_lossy(&out.stderr),
            20,
        )));
    }
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| BuildError::Metadata(e.to_string()))?;
    let packages = v["packages"]
        .as_array()
        .ok_or_else(|| BuildError::Metadata("no packages".into()))?;
    let manifest_str = manifest.to_string_lossy();
    let pkg = packages
        .iter()
        .find(|p| p["manifest_path"].as_str() == Some(&manifest_str))
        .ok_or_else(|| {
            BuildError::Metadata(format!("{} is not a package manifest", manifest.display()))
        })?;
    let mut local_dirs: Vec<PathBuf> = packages
        .iter()
        .filter(|p| p["source"].is_null())
        .filter_map(|p| {
            p["manifest_path"]
                .as_str()
                .and_then(|m| Path::new(m).parent().map(Path::to_owned))
        })
        .collect();
    if let Some(root) = v["workspace_root"].as_str() {
        local_dirs.push(PathBuf::from(root));
    }
    local_dirs.sort_by_key(|d| d.as_os_str().len());
    local_dirs.dedup();
    let local_ids = packages
        .iter()
        .filter(|p| p["source"].is_null())
        .filter_map(|p| p["id"].as_str().map(str::to_owned))
        .collect();
    Ok(Meta {
        package: pkg["name"].as_str().unwrap_or_default().to_owned(),
        package_id: pkg["id"].as_str().unwrap_or_default().to_owned(),
        local_ids,
        local_dirs,
    })
}

fn cargo_home() -> Option<PathBuf> {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
}

fn rustflags(meta: &Meta) -> String {
    // Later flags win in rustc, so the most specific (longest) prefixes go last.
    let mut flags = Vec::new();
    if let Some(home) = cargo_home() {
        flags.push(format!("--remap-path-prefix={}=/cargo", home.display()));
    }
    for (i, dir) in meta.local_dirs.iter().enumerate() {
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("src");
        flags.push(format!(
            "--remap-path-prefix={}=/src/{i}-{name}",
            dir.display()
        ));
    }
    // Separated by 0x1f, the unit separator CARGO_ENCODED_RUSTFLAGS uses, so
    // paths with spaces survive.
    flags.join("\u{1f}")
}

/// Runs `cargo build`; returns the core module and the warnings about local
/// packages.
fn cargo_build(
    t: &Toolchain,
    manifest: &Path,
    meta: &Meta,
) -> Result<(Vec<u8>, Vec<String>), BuildError> {
    let mut cmd = cargo_command(t);
    cmd.args([
        "build",
        "--release",
        "--target",
        TARGET,
        "--message-format",
        "json",
    ])
    .arg("--manifest-path")
    .arg(manifest)
    .env("CARGO_ENCODED_RUSTFLAGS", rustflags(meta))
    .env("CARGO_INCREMENTAL", "0");
    if matches!(t, Toolchain::Debian { .. }) {
        cmd.arg("-Zbuild-std=std,panic_abort");
    }
    let out = cmd.output().map_err(io("cargo"))?;
    let messages: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let diagnostics = |level: &str, local_only: bool| -> Vec<String> {
        messages
            .iter()
            .filter(|m| m["reason"] == "compiler-message" && m["message"]["level"] == level)
            .filter(|m| {
                !local_only
                    || m["package_id"]
                        .as_str()
                        .is_some_and(|id| meta.local_ids.iter().any(|l| l == id))
            })
            .filter_map(|m| m["message"]["rendered"].as_str())
            .map(|r| r.trim_end().to_owned())
            .collect()
    };
    if !out.status.success() {
        // The compiler's errors come as JSON messages; cargo's own (a bad
        // manifest, a missing linker's summary) on stderr.
        let mut report = diagnostics("error", false);
        report.push(tail(&String::from_utf8_lossy(&out.stderr), 20));
        return Err(BuildError::Cargo(report.join("\n")));
    }
    let artifact = messages
        .iter()
        .filter(|m| {
            m["reason"] == "compiler-artifact" && m["package_id"].as_str() == Some(&meta.package_id)
        })
        .flat_map(|m| {
            m["filenames"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|f| f.as_str().map(PathBuf::from))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        })
        .find(|f| f.extension().is_some_and(|e| e == "wasm"))
        .ok_or_else(|| BuildError::NoArtifact(meta.package.clone()))?;
    let core = std::fs::read(&artifact).map_err(io(artifact))?;
    Ok((core, diagnostics("warning", true)))
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A scaffolding failure.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    /// The name is not a valid plugin and crate name.
    #[error(
        "invalid plugin name {0:?}: use a-z, 0-9, '_' and '-', starting with a letter, at most 64 characters"
    )]
    InvalidName(String),
    /// The target directory exists already.
    #[error("{0} already exists")]
    Exists(PathBuf),
    /// The SDK sources were not found.
    #[error("wasmeow-sdk not found at {0}; pass its directory to scaffold_plugin_with_sdk")]
    NoSdk(PathBuf),
    /// Writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// The SDK directory of the source tree this crate was built from.
pub fn default_sdk_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sdk")
}

/// Creates `dir/NAME/`: a plugin crate depending on the SDK of this source tree,
/// with an example handler. Returns the new directory.
pub fn scaffold_plugin(name: &str, dir: &Path) -> Result<PathBuf, ScaffoldError> {
    scaffold_plugin_with_sdk(name, dir, &default_sdk_dir())
}

/// [`scaffold_plugin`] with the SDK at `sdk_dir`.
pub fn scaffold_plugin_with_sdk(
    name: &str,
    dir: &Path,
    sdk_dir: &Path,
) -> Result<PathBuf, ScaffoldError> {
    let valid = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if !valid {
        return Err(ScaffoldError::InvalidName(name.to_owned()));
    }
    let sdk = std::fs::canonicalize(sdk_dir)
        .ok()
        .filter(|p| p.join("Cargo.toml").is_file())
        .ok_or_else(|| ScaffoldError::NoSdk(sdk_dir.to_owned()))?;
    let root = dir.join(name);
    if root.exists() {
        return Err(ScaffoldError::Exists(root));
    }
    let write = |rel: &str, text: String| -> Result<(), ScaffoldError> {
        let path = root.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| ScaffoldError::Io {
                path: parent.to_owned(),
                source,
            })?;
        }
        std::fs::write(&path, text).map_err(|source| ScaffoldError::Io { path, source })
    };
    let sdk_path = sdk
        .to_string_lossy()
        .replace('\\', "\\\\")
        .replace('"', "\\\"");
    write(
        "Cargo.toml",
        format!(
            include_str!("scaffold/Cargo.toml.in"),
            name = name,
            sdk = sdk_path
        ),
    )?;
    write(
        "src/lib.rs",
        include_str!("scaffold/lib.rs.in").replace("{name}", name),
    )?;
    write(".gitignore", format!("/target\n/{name}.wasm\n"))?;
    Ok(root)
}
