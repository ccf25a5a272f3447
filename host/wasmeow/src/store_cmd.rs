//! `wasmeow store verify|rekey`: operating on the encrypted store named in `bot.toml`.
//!
//! The key-encryption key comes from the `[store]` section (an environment variable holding a key, a
//! key file, or a passphrase in an environment variable). `verify` decrypts every value and reports
//! each problem with its table and record; `rekey` rewraps the store's keys under a new KEK atomically,
//! leaving the file unchanged when the current key is wrong.

use anyhow::{Context, Result, bail};
use wasmeow_store::{Argon2Params, KekSource, OpenOptions, VerifyReport};

use crate::config::{KeySource, StoreConfig};

/// Where a new key for `rekey` comes from (command-line form of [`KeySource`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NewKey {
    /// An environment variable holding a 32-byte key (hex or base64).
    Env(String),
    /// A key file (must not be group/world-readable).
    File(std::path::PathBuf),
    /// An environment variable holding a passphrase.
    PassphraseEnv(String),
}

/// Resolves a configured key source into the store's KEK, with errors that say which variable or
/// file was at fault.
pub fn kek(source: &KeySource) -> Result<KekSource> {
    match source {
        KeySource::Env(var) => {
            let value = std::env::var(var).with_context(|| {
                format!("the store key variable {var} is not set (bot.toml [store] key_env); it must hold 64 hex digits or base64 of 32 bytes")
            })?;
            Ok(KekSource::from_text(&value, var)?)
        }
        KeySource::File(path) => Ok(KekSource::from_key_file(path)?),
        KeySource::Passphrase { env, .. } => passphrase(env),
    }
}

fn passphrase(var: &str) -> Result<KekSource> {
    let value = std::env::var(var).with_context(|| {
        format!("the store passphrase variable {var} is not set (bot.toml [store] passphrase_env)")
    })?;
    if value.is_empty() {
        bail!("the store passphrase in {var} is empty");
    }
    Ok(KekSource::passphrase(value))
}

/// Store open options from the configuration (Argon2id cost for headers written from now on).
pub fn open_options(store: &StoreConfig) -> OpenOptions {
    let mut options = OpenOptions::default();
    if let KeySource::Passphrase { argon2, .. } = &store.key {
        options.argon2 = Argon2Params {
            m_cost_kib: argon2.memory_kib,
            t_cost: argon2.iterations,
            p_cost: argon2.parallelism,
        };
    }
    options
}

/// Decrypts everything in the store and reports what it found.
pub fn verify(store: &StoreConfig) -> Result<VerifyReport> {
    if !store.path.exists() {
        bail!(
            "no store at {} (bot.toml [store] path)",
            store.path.display()
        );
    }
    let kek = kek(&store.key)?;
    wasmeow_store::verify(&store.path, &kek)
        .with_context(|| format!("cannot open {}", store.path.display()))
}

/// Rewraps the store's keys under `new`.
pub fn rekey(store: &StoreConfig, new: &NewKey) -> Result<()> {
    if !store.path.exists() {
        bail!(
            "no store at {} (bot.toml [store] path)",
            store.path.display()
        );
    }
    let old = kek(&store.key)?;
    let new = match new {
        NewKey::Env(var) => {
            let value = std::env::var(var)
                .with_context(|| format!("the new key variable {var} is not set"))?;
            KekSource::from_text(&value, var)?
        }
        NewKey::File(path) => KekSource::from_key_file(path)?,
        NewKey::PassphraseEnv(var) => passphrase(var)?,
    };
    wasmeow_store::rekey(&store.path, &old, &new, &open_options(store)).with_context(|| {
        format!(
            "rekey of {} failed; the file is unchanged",
            store.path.display()
        )
    })
}
