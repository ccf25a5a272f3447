//! Key-encryption keys (KEKs): where they come from, and the file header that records how the
//! root key is wrapped.
//!
//! A KEK is either a raw 256-bit key (from the environment variable `WASMEOW_STORE_KEY`, from a
//! key file, or given directly) or a passphrase stretched with Argon2id. [`KekSource::resolve`]
//! applies that order of precedence. Key files that group or others can read are refused.
//!
//! Header record (`meta` table, key `kek`), all integers big-endian:
//!
//! ```text
//! u8  header version (1)
//! u8  kind: 1 = raw key, 2 = passphrase
//! kind 2 only: u32 m_cost (KiB), u32 t_cost, u32 p_cost, 16-byte salt
//! sealed root key: 0x01 || nonce(12) || AES-256-GCM(KEK, root key) || tag(16)
//! ```
//!
//! The associated data of the sealed root key is `"wasmeow-store/root-key" || u32 schema ||`
//! the header bytes before it, so the Argon2 parameters and salt cannot be altered without the
//! unwrap failing (reported as [`OpenError::WrongKey`]).

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use zeroize::Zeroizing;

use crate::crypto::{OpenFailed, Sealer, random_bytes};
use crate::error::{KekKind, OpenError};

/// The environment variable consulted first by [`KekSource::resolve`].
pub const KEY_ENV_VAR: &str = "WASMEOW_STORE_KEY";

/// A source of the key-encryption key. `Debug` never prints the key or passphrase.
#[derive(Clone)]
pub enum KekSource {
    /// A raw 256-bit key.
    Key(Zeroizing<[u8; 32]>),
    /// A passphrase, stretched with Argon2id (parameters from the file header, or from
    /// [`Argon2Params`] when a header is written).
    Passphrase(Zeroizing<String>),
}

impl fmt::Debug for KekSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KekSource::Key(_) => f.write_str("KekSource::Key(<redacted>)"),
            KekSource::Passphrase(_) => f.write_str("KekSource::Passphrase(<redacted>)"),
        }
    }
}

/// Where [`KekSource::resolve`] looks, after the environment variable.
#[derive(Clone, Default)]
pub struct KeyConfig {
    /// A key file: 32 raw bytes, or 64 hex digits, or base64 of 32 bytes (surrounding whitespace
    /// ignored). Must not be readable by group or others.
    pub key_file: Option<PathBuf>,
    /// A passphrase, used if neither the environment variable nor a key file is set.
    pub passphrase: Option<Zeroizing<String>>,
}

impl fmt::Debug for KeyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyConfig")
            .field("key_file", &self.key_file)
            .field(
                "passphrase",
                &self.passphrase.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl KekSource {
    /// A raw key.
    pub fn key(bytes: [u8; 32]) -> Self {
        KekSource::Key(Zeroizing::new(bytes))
    }

    /// A passphrase.
    pub fn passphrase(p: impl Into<String>) -> Self {
        KekSource::Passphrase(Zeroizing::new(p.into()))
    }

    /// The KEK by precedence: `WASMEOW_STORE_KEY` (hex or base64), then `config.key_file`, then
    /// `config.passphrase`.
    pub fn resolve(config: &KeyConfig) -> Result<Self, OpenError> {
        Self::resolve_from(std::env::var_os(KEY_ENV_VAR), config)
    }

    /// [`KekSource::resolve`] with the environment variable's value passed in.
    pub fn resolve_from(
        env_value: Option<OsString>,
        config: &KeyConfig,
    ) -> Result<Self, OpenError> {
        if let Some(v) = env_value {
            let v = Zeroizing::new(v.into_string().map_err(|_| OpenError::BadKeyEncoding {
                origin: KEY_ENV_VAR.to_owned(),
            })?);
            return parse_text_key(v.as_bytes(), KEY_ENV_VAR).map(KekSource::Key);
        }
        if let Some(path) = &config.key_file {
            return Self::from_key_file(path);
        }
        if let Some(p) = &config.passphrase {
            if p.is_empty() {
                return Err(OpenError::EmptyPassphrase);
            }
            return Ok(KekSource::Passphrase(p.clone()));
        }
        Err(OpenError::NoKeySource {
            env_var: KEY_ENV_VAR.to_owned(),
        })
    }

    /// A key written as text (64 hex digits, or base64 of 32 bytes; surrounding whitespace ignored),
    /// e.g. from an environment variable other than [`KEY_ENV_VAR`]; `origin` names it in errors.
    pub fn from_text(text: &str, origin: &str) -> Result<Self, OpenError> {
        parse_text_key(text.as_bytes(), origin).map(KekSource::Key)
    }

    /// Reads a key file, refusing one that group or others may read.
    pub fn from_key_file(path: &Path) -> Result<Self, OpenError> {
        let io = |source| OpenError::KeyFile {
            path: path.to_owned(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(io)?;
        check_key_file_mode(path, &meta)?;
        let bytes = Zeroizing::new(std::fs::read(path).map_err(io)?);
        if bytes.len() == 32 {
            let mut k = Zeroizing::new([0u8; 32]);
            k.copy_from_slice(&bytes);
            return Ok(KekSource::Key(k));
        }
        parse_text_key(&bytes, "key file").map(KekSource::Key)
    }

    fn kind(&self) -> KekKind {
        match self {
            KekSource::Key(_) => KekKind::RawKey,
            KekSource::Passphrase(_) => KekKind::Passphrase,
        }
    }
}

#[cfg(unix)]
fn check_key_file_mode(path: &Path, meta: &std::fs::Metadata) -> Result<(), OpenError> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(OpenError::KeyFilePermissions {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_key_file_mode(_path: &Path, _meta: &std::fs::Metadata) -> Result<(), OpenError> {
    Ok(())
}

/// 64 hex digits or base64 (standard or URL-safe, padded or not) of exactly 32 bytes.
fn parse_text_key(text: &[u8], origin: &str) -> Result<Zeroizing<[u8; 32]>, OpenError> {
    let bad = || OpenError::BadKeyEncoding {
        origin: origin.to_owned(),
    };
    let t = text.trim_ascii();
    let mut key = Zeroizing::new([0u8; 32]);
    if t.len() == 64 && hex::decode_to_slice(t, key.as_mut_slice()).is_ok() {
        return Ok(key);
    }
    let engines = [
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::STANDARD_NO_PAD,
        &base64::engine::general_purpose::URL_SAFE,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ];
    for e in engines {
        if let Ok(v) = e.decode(t) {
            let v = Zeroizing::new(v);
            if v.len() == 32 {
                key.copy_from_slice(&v);
                return Ok(key);
            }
        }
    }
    Err(bad())
}

/// Argon2id cost parameters for passphrase KEKs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Argon2Params {
    /// Memory in KiB.
    pub m_cost_kib: u32,
    /// Iterations.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl Default for Argon2Params {
    /// 64 MiB, 3 iterations, 1 lane (RFC 9106's second recommendation, single-lane).
    fn default() -> Self {
        Self {
            m_cost_kib: 64 * 1024,
            t_cost: 3,
            p_cost: 1,
        }
    }
}

impl Argon2Params {
    /// Cheap parameters for tests (never for real stores).
    pub fn insecure_for_tests() -> Self {
        Self {
            m_cost_kib: 64,
            t_cost: 1,
            p_cost: 1,
        }
    }

    // Refuse absurd values before allocating: a tampered header must not make us allocate
    // terabytes or spin for hours.
    fn check(&self) -> Result<(), OpenError> {
        if self.m_cost_kib > 4 * 1024 * 1024 || self.t_cost > 64 || self.p_cost > 64 {
            return Err(OpenError::BadHeader("argon2 parameters out of range"));
        }
        Ok(())
    }
}

/// The KEK header of a store file.
#[derive(Clone)]
pub(crate) struct KekHeader {
    kind: KekKind,
    argon: Option<(Argon2Params, [u8; 16])>,
    sealed: Vec<u8>,
}

const HEADER_VERSION: u8 = 1;
const SEALED_LEN: usize = crate::crypto::SEAL_OVERHEAD + 32;

impl KekHeader {
    /// Wraps `root_key` under the KEK from `source` (fresh salt for a passphrase).
    pub(crate) fn seal(
        source: &KekSource,
        params: Argon2Params,
        root_key: &[u8; 32],
        schema: u32,
    ) -> Result<Self, OpenError> {
        let argon = match source {
            KekSource::Key(_) => None,
            KekSource::Passphrase(_) => {
                params.check()?;
                Some((params, random_bytes::<16>()))
            }
        };
        let mut h = KekHeader {
            kind: source.kind(),
            argon,
            sealed: Vec::new(),
        };
        let kek = h.derive_kek(source)?;
        h.sealed = Sealer::new(&kek).seal(&h.ad(schema), root_key);
        Ok(h)
    }

    /// Unwraps the root key; [`OpenError::WrongKey`] if the KEK does not fit.
    pub(crate) fn unseal(
        &self,
        source: &KekSource,
        schema: u32,
    ) -> Result<Zeroizing<[u8; 32]>, OpenError> {
        let kek = self.derive_kek(source)?;
        self.unseal_with(&kek, schema)
    }

    /// Unwraps the root key with an already derived KEK.
    pub(crate) fn unseal_with(
        &self,
        kek: &[u8; 32],
        schema: u32,
    ) -> Result<Zeroizing<[u8; 32]>, OpenError> {
        let plain = Sealer::new(kek)
            .open(&self.ad(schema), &self.sealed)
            .map_err(|OpenFailed| OpenError::WrongKey)?;
        let mut k = Zeroizing::new([0u8; 32]);
        if plain.len() != 32 {
            return Err(OpenError::BadHeader("wrapped key has the wrong length"));
        }
        k.copy_from_slice(&plain);
        Ok(k)
    }

    /// The same KEK (kind, Argon2 parameters and salt) wrapping another key or schema.
    pub(crate) fn reseal(&self, kek: &[u8; 32], key: &[u8; 32], schema: u32) -> KekHeader {
        let mut h = KekHeader {
            kind: self.kind,
            argon: self.argon,
            sealed: Vec::new(),
        };
        h.sealed = Sealer::new(kek).seal(&h.ad(schema), key);
        h
    }

    pub(crate) fn kind(&self) -> KekKind {
        self.kind
    }

    /// The KEK from `source` with this header's parameters; refuses a source of the wrong kind.
    pub(crate) fn derive_kek(&self, source: &KekSource) -> Result<Zeroizing<[u8; 32]>, OpenError> {
        if source.kind() != self.kind {
            return Err(OpenError::KekKindMismatch {
                file: self.kind,
                given: source.kind(),
            });
        }
        match (source, &self.argon) {
            (KekSource::Key(k), None) => Ok(k.clone()),
            (KekSource::Passphrase(p), Some((params, salt))) => {
                if p.is_empty() {
                    return Err(OpenError::EmptyPassphrase);
                }
                params.check()?;
                let argon_params =
                    argon2::Params::new(params.m_cost_kib, params.t_cost, params.p_cost, Some(32))
                        .map_err(|e| OpenError::Argon2(e.to_string()))?;
                let argon = argon2::Argon2::new(
                    argon2::Algorithm::Argon2id,
                    argon2::Version::V0x13,
                    argon_params,
                );
                let mut kek = Zeroizing::new([0u8; 32]);
                argon
                    .hash_password_into(p.as_bytes(), salt, kek.as_mut_slice())
                    .map_err(|e| OpenError::Argon2(e.to_string()))?;
                Ok(kek)
            }
            _ => Err(OpenError::KekKindMismatch {
                file: self.kind,
                given: source.kind(),
            }),
        }
    }

    fn prefix(&self) -> Vec<u8> {
        let mut out = vec![HEADER_VERSION];
        match (&self.kind, &self.argon) {
            (KekKind::RawKey, _) => out.push(1),
            (KekKind::Passphrase, Some((p, salt))) => {
                out.push(2);
                out.extend_from_slice(&p.m_cost_kib.to_be_bytes());
                out.extend_from_slice(&p.t_cost.to_be_bytes());
                out.extend_from_slice(&p.p_cost.to_be_bytes());
                out.extend_from_slice(salt);
            }
            // Constructed only by `seal`/`decode`, which always pair Passphrase with parameters.
            (KekKind::Passphrase, None) => out.push(2),
        }
        out
    }

    fn ad(&self, schema: u32) -> Vec<u8> {
        [
            b"wasmeow-store/root-key".as_slice(),
            &schema.to_be_bytes(),
            &self.prefix(),
        ]
        .concat()
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        [self.prefix(), self.sealed.clone()].concat()
    }

    pub(crate) fn decode(b: &[u8]) -> Result<Self, OpenError> {
        let bad = OpenError::BadHeader;
        let (&version, rest) = b.split_first().ok_or(bad("empty key header"))?;
        if version != HEADER_VERSION {
            return Err(bad("unknown key header version"));
        }
        let (&kind, rest) = rest.split_first().ok_or(bad("key header truncated"))?;
        let (kind, argon, rest) = match kind {
            1 => (KekKind::RawKey, None, rest),
            2 => {
                if rest.len() < 28 {
                    return Err(bad("key header truncated"));
                }
                let u =
                    |i: usize| u32::from_be_bytes([rest[i], rest[i + 1], rest[i + 2], rest[i + 3]]);
                let params = Argon2Params {
                    m_cost_kib: u(0),
                    t_cost: u(4),
                    p_cost: u(8),
                };
                params.check()?;
                let mut salt = [0u8; 16];
                salt.copy_from_slice(&rest[12..28]);
                (KekKind::Passphrase, Some((params, salt)), &rest[28..])
            }
            _ => return Err(bad("unknown key kind")),
        };
        if rest.len() != SEALED_LEN {
            return Err(bad("wrapped key has the wrong length"));
        }
        Ok(KekHeader {
            kind,
            argon,
            sealed: rest.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_keys_in_hex_and_base64() {
        let key = [0xabu8; 32];
        let hex = hex::encode(key);
        assert_eq!(*parse_text_key(hex.as_bytes(), "t").unwrap(), key);
        let b64 = base64::engine::general_purpose::STANDARD.encode(key);
        assert_eq!(
            *parse_text_key(format!(" {b64}\n").as_bytes(), "t").unwrap(),
            key
        );
        let b64u = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key);
        assert_eq!(*parse_text_key(b64u.as_bytes(), "t").unwrap(), key);
        assert!(matches!(
            parse_text_key(b"abcd", "t"),
            Err(OpenError::BadKeyEncoding { .. })
        ));
        assert!(matches!(
            parse_text_key(&hex.as_bytes()[..62], "t"),
            Err(OpenError::BadKeyEncoding { .. })
        ));
    }

    #[test]
    fn resolve_precedence() {
        let cfg = KeyConfig {
            key_file: None,
            passphrase: Some(Zeroizing::new("pw".into())),
        };
        let env = Some(OsString::from(hex::encode([1u8; 32])));
        assert!(matches!(
            KekSource::resolve_from(env, &cfg).unwrap(),
            KekSource::Key(k) if *k == [1u8; 32]
        ));
        assert!(matches!(
            KekSource::resolve_from(None, &cfg).unwrap(),
            KekSource::Passphrase(p) if p.as_str() == "pw"
        ));
        assert!(matches!(
            KekSource::resolve_from(None, &KeyConfig::default()),
            Err(OpenError::NoKeySource { .. })
        ));
        let empty = KeyConfig {
            key_file: None,
            passphrase: Some(Zeroizing::new(String::new())),
        };
        assert!(matches!(
            KekSource::resolve_from(None, &empty),
            Err(OpenError::EmptyPassphrase)
        ));
    }

    #[test]
    fn header_round_trip_and_wrong_key() {
        let root = [9u8; 32];
        for source in [
            KekSource::key([3u8; 32]),
            KekSource::passphrase("correct horse"),
        ] {
            let h = KekHeader::seal(&source, Argon2Params::insecure_for_tests(), &root, 2).unwrap();
            let d = KekHeader::decode(&h.encode()).unwrap();
            assert_eq!(*d.unseal(&source, 2).unwrap(), root);
            assert!(matches!(d.unseal(&source, 3), Err(OpenError::WrongKey)));
        }
        let h = KekHeader::seal(
            &KekSource::key([3u8; 32]),
            Argon2Params::default(),
            &root,
            2,
        )
        .unwrap();
        assert!(matches!(
            h.unseal(&KekSource::key([4u8; 32]), 2),
            Err(OpenError::WrongKey)
        ));
        assert!(matches!(
            h.unseal(&KekSource::passphrase("x"), 2),
            Err(OpenError::KekKindMismatch { .. })
        ));
        let p = KekHeader::seal(
            &KekSource::passphrase("right"),
            Argon2Params::insecure_for_tests(),
            &root,
            2,
        )
        .unwrap();
        assert!(matches!(
            p.unseal(&KekSource::passphrase("wrong"), 2),
            Err(OpenError::WrongKey)
        ));
        // Tampering with the Argon2 parameters breaks the unwrap instead of being trusted.
        let mut enc = p.encode();
        enc[5] ^= 1; // low byte of m_cost
        let t = KekHeader::decode(&enc).unwrap();
        assert!(matches!(
            t.unseal(&KekSource::passphrase("right"), 2),
            Err(OpenError::WrongKey)
        ));
    }

    #[test]
    fn absurd_argon2_parameters_are_refused_before_use() {
        let p = KekHeader::seal(
            &KekSource::passphrase("right"),
            Argon2Params::insecure_for_tests(),
            &[0u8; 32],
            2,
        )
        .unwrap();
        let mut enc = p.encode();
        enc[2] = 0xff; // m_cost high byte: 4 TiB
        assert!(matches!(
            KekHeader::decode(&enc),
            Err(OpenError::BadHeader("argon2 parameters out of range"))
        ));
    }

    #[test]
    fn debug_redacts() {
        let s = format!("{:?}", KekSource::passphrase("hunter2"));
        assert!(!s.contains("hunter2"));
        let s = format!("{:?}", KekSource::key([0x41; 32]));
        assert!(!s.contains("41") && !s.contains('A'));
    }
}
