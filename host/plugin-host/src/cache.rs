//! The on-disk compilation cache: compiled components keyed by the SHA-256 of the
//! `.wasm` file and the engine's compatibility hash.
//!
//! `Component::deserialize` trusts its input (it maps native code), so this module
//! only ever deserializes files it wrote itself, in its own directory:
//!
//! * the directory is created with mode 0700 and refused if group- or
//!   world-writable or owned by another user;
//! * each entry is `MAGIC ‖ SHA-256(artifact) ‖ artifact`, written to a temporary
//!   file and renamed into place, and named after the source's hash and the
//!   engine's hash;
//! * on load the whole file is read into memory, the digest is recomputed and
//!   compared, and only then is that in-memory copy deserialized (no window between
//!   check and use).
//!
//! The digest catches truncation, corruption and stale entries; the directory
//! checks keep other users out. Anyone able to write files as the bot's own user
//! can run code as that user anyway. Any failure falls back to compiling.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::error::HostError;

const MAGIC: &[u8; 8] = b"WMEOWC01";

/// A cache directory bound to one engine configuration.
pub(crate) struct CompileCache {
    dir: PathBuf,
    engine_key: String,
}

/// Feeds `Hash` output into SHA-256, for a process-independent engine key.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        u64::from_le_bytes(first)
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

impl CompileCache {
    /// Opens (creating if needed) a cache directory for `engine`.
    pub(crate) fn open(dir: &Path, engine: &Engine) -> Result<Self, HostError> {
        let refuse = |reason: String| HostError::Cache {
            path: dir.to_owned(),
            reason,
        };
        std::fs::create_dir_all(dir).map_err(|e| refuse(e.to_string()))?;
        secure_dir(dir).map_err(refuse)?;
        let mut hasher = Sha256Hasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_key = hex::encode(&hasher.0.finalize()[..12]);
        Ok(CompileCache {
            dir: dir.to_owned(),
            engine_key,
        })
    }

    fn entry(&self, wasm_hash: &[u8; 32]) -> PathBuf {
        self.dir.join(format!(
            "{}-{}.cwasm",
            hex::encode(wasm_hash),
            self.engine_key
        ))
    }

    /// The cached compilation of the component whose bytes hash to `wasm_hash`, or
    /// a fresh compilation of `wasm` (stored for next time).
    pub(crate) fn load_or_compile(
        &self,
        engine: &Engine,
        wasm: &[u8],
        wasm_hash: &[u8; 32],
    ) -> wasmtime::Result<Component> {
        let path = self.entry(wasm_hash);
        if let Some(component) = self.load(engine, &path) {
            return Ok(component);
        }
        let component = Component::new(engine, wasm)?;
        if let Err(e) = self.store(&path, &component) {
            tracing::warn!(path = %path.display(), error = %e, "could not write compilation cache entry");
        }
        Ok(component)
    }

    fn load(&self, engine: &Engine, path: &Path) -> Option<Component> {
        let bytes = std::fs::read(path).ok()?;
        let artifact = match verify(&bytes) {
            Some(a) => a,
            None => {
                tracing::warn!(path = %path.display(), "corrupt compilation cache entry; recompiling");
                let _ = std::fs::remove_file(path);
                return None;
            }
        };
        match deserialize_own(engine, artifact) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "stale compilation cache entry; recompiling");
                let _ = std::fs::remove_file(path);
                None
            }
        }
    }

    fn store(&self, path: &Path, component: &Component) -> std::io::Result<()> {
        let artifact = component
            .serialize()
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let digest = Sha256::digest(&artifact);
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(MAGIC)?;
            f.write_all(&digest)?;
            f.write_all(&artifact)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)
    }
}

/// The artifact inside a cache file, if its header and digest check out.
fn verify(bytes: &[u8]) -> Option<&[u8]> {
    let rest = bytes.strip_prefix(MAGIC)?;
    if rest.len() < 32 {
        return None;
    }
    let (digest, artifact) = rest.split_at(32);
    (Sha256::digest(artifact).as_slice() == digest).then_some(artifact)
}

/// Deserializes an artifact that [`verify`] accepted from a file in a directory
/// that [`secure_dir`] accepted.
#[expect(
    unsafe_code,
    reason = "Component::deserialize is unsafe: it maps native code"
)]
fn deserialize_own(engine: &Engine, artifact: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: `Component::deserialize` requires bytes produced by
    // `Component::serialize` of a compatible engine. `artifact` comes only from a
    // file this module wrote itself (`store`): it sits in a directory created and
    // checked by `open` (ours, not writable by others), it carries our magic and
    // its SHA-256 digest matches, and it was read into memory before the check, so
    // it cannot change between check and use. wasmtime itself rejects artifacts of
    // another version or configuration.
    unsafe { Component::deserialize(engine, artifact) }
}

#[cfg(unix)]
fn secure_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = std::fs::metadata(dir).map_err(|e| e.to_string())?;
    if !meta.is_dir() {
        return Err("not a directory".into());
    }
    // Ownership: compare with the owner of a file we create (no unsafe geteuid).
    let probe = dir.join(format!(".owner-probe-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|e| e.to_string())?;
    let me = std::fs::metadata(&probe).map_err(|e| e.to_string())?.uid();
    let _ = std::fs::remove_file(&probe);
    if meta.uid() != me {
        return Err("owned by another user".into());
    }
    if meta.mode() & 0o022 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn secure_dir(dir: &Path) -> Result<(), String> {
    if !dir.is_dir() {
        return Err("not a directory".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{MAGIC, verify};

    #[test]
    fn verify_rejects_tampering() {
        use sha2::{Digest, Sha256};
        let artifact = b"native code".to_vec();
        let mut file = MAGIC.to_vec();
        file.extend_from_slice(&Sha256::digest(&artifact));
        file.extend_from_slice(&artifact);
        assert_eq!(verify(&file), Some(&artifact[..]));
        let mut flipped = file.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(verify(&flipped), None);
        assert_eq!(verify(&file[..40]), None);
        assert_eq!(verify(b"WMEOWC00"), None);
    }
}
