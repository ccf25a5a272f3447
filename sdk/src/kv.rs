//! The plugin's private key-value store (the `kv` capability), raw and typed.
//!
//! Typed values are stored as JSON, so they stay readable by other versions of the
//! plugin written in other languages.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::wit::wasmeow::bot::kv as host;
use crate::{ApiError, Error};

/// The bytes under `key`.
pub fn get_raw(key: &str) -> Result<Option<Vec<u8>>, ApiError> {
    host::get(key)
}

/// Stores bytes under `key`.
pub fn set_raw(key: &str, value: &[u8]) -> Result<(), ApiError> {
    host::set(key, value)
}

/// The value under `key`, decoded from JSON.
pub fn get<T: DeserializeOwned>(key: &str) -> Result<Option<T>, Error> {
    match host::get(key)? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Decode(format!("kv `{key}`: {e}"))),
    }
}

/// Stores `value` under `key` as JSON.
pub fn set<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<(), Error> {
    let bytes = serde_json::to_vec(value).map_err(|e| Error::Decode(e.to_string()))?;
    host::set(key, &bytes)?;
    Ok(())
}

/// Deletes `key`; returns whether it existed.
pub fn delete(key: &str) -> Result<bool, ApiError> {
    host::delete(key)
}

/// Up to `limit` keys starting with `prefix`, in ascending order.
pub fn list(prefix: &str, limit: u32) -> Result<Vec<String>, ApiError> {
    host::list_keys(prefix, limit)
}

/// Atomically swaps raw values (see the WIT `compare-and-swap`).
pub fn compare_and_swap(
    key: &str,
    expected: Option<&[u8]>,
    new: Option<&[u8]>,
) -> Result<bool, ApiError> {
    host::compare_and_swap(key, expected, new)
}

/// Reads `key`, applies `f`, and stores the result atomically, retrying when
/// another instance changed the value in between (at most 16 times). `f` gets
/// `None` for an absent key and returns `None` to delete it. Returns the stored
/// value.
pub fn update<T, F>(key: &str, mut f: F) -> Result<Option<T>, Error>
where
    T: Serialize + DeserializeOwned,
    F: FnMut(Option<T>) -> Option<T>,
{
    for _ in 0..16 {
        let current = host::get(key)?;
        let decoded = match &current {
            None => None,
            Some(bytes) => Some(
                serde_json::from_slice(bytes)
                    .map_err(|e| Error::Decode(format!("kv `{key}`: {e}")))?,
            ),
        };
        let next = f(decoded);
        let encoded = match &next {
            None => None,
            Some(v) => Some(serde_json::to_vec(v).map_err(|e| Error::Decode(e.to_string()))?),
        };
        if host::compare_and_swap(key, current.as_deref(), encoded.as_deref())? {
            return Ok(next);
        }
    }
    Err(Error::Api(ApiError::Unavailable))
}
