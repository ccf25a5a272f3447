//! Small shared helpers: the server clock, stanza id generation, JID shorthands and serde
//! adapters for key material.
//!
//! Contract: the simulator reads the wall clock only through [`now_secs`] / [`now_ms`], so the
//! places that depend on time are easy to find. JID helpers never panic: they return `None` or
//! build from values that are valid by construction (digit strings for users).

use std::time::{SystemTime, UNIX_EPOCH};

use wasmeow_protocol::binary::{Jid, Node, Server};

/// Unix time in seconds.
pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Unix time in milliseconds.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// `@s.whatsapp.net`: the server JID, a `JID_PAIR` with an empty user.
pub(crate) fn server_jid() -> Jid {
    Jid::server_jid(Server::WhatsApp)
}

/// `user@lid`.
pub(crate) fn lid_jid(user: &str) -> Jid {
    Jid::new(user, Server::Lid).unwrap_or_else(|_| server_jid())
}

/// `id@g.us`.
pub(crate) fn group_jid(id: &str) -> Jid {
    Jid::new(id, Server::Group).unwrap_or_else(|_| Jid::server_jid(Server::Group))
}

/// `user[:device]@server`, device 0 written without `:0` (as WhatsApp writes primary devices).
pub(crate) fn device_jid(user: &str, server: Server, device: u16) -> Jid {
    let base = Jid::new(user, server).unwrap_or_else(|_| server_jid());
    if device == 0 {
        base
    } else {
        base.clone().with_device(device).unwrap_or(base)
    }
}

/// Reads attribute `key` as a JID, whether the wire carried it as a JID or as a string.
pub(crate) fn attr_jid(node: &Node, key: &str) -> Option<Jid> {
    let value = node.attr_value(key)?;
    match value.as_jid() {
        Some(jid) => Some(jid.clone()),
        None => Jid::parse(value.as_str()?).ok(),
    }
}

/// Reads attribute `key` as text (a JID attribute is printed).
pub(crate) fn attr_string(node: &Node, key: &str) -> Option<String> {
    node.attr_value(key).map(|v| v.to_string())
}

/// Content of a child as bytes (raw bytes or a string's UTF-8).
pub(crate) fn child_bytes<'a>(node: &'a Node, tag: &str) -> Option<&'a [u8]> {
    let child = node.child_by_tag(tag)?;
    content_bytes(child)
}

/// A node's content as bytes (raw bytes or a string's UTF-8).
pub(crate) fn content_bytes(node: &Node) -> Option<&[u8]> {
    node.content_bytes()
        .or_else(|| node.content_str().map(str::as_bytes))
}

/// Big-endian unsigned integer of up to 8 bytes.
pub(crate) fn be_uint(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() || bytes.len() > 8 {
        return None;
    }
    Some(bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
}

/// `n` as `len` big-endian bytes (truncating high bytes).
pub(crate) fn be_bytes(n: u64, len: usize) -> Vec<u8> {
    let all = n.to_be_bytes();
    all[8 - len.min(8)..].to_vec()
}

/// Serde adapter: `Vec<u8>` as standard base64.
pub(crate) mod b64 {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize as _, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

/// Serde adapter: `[u8; 32]` as hex.
pub(crate) mod hex32 {
    use serde::{Deserialize as _, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(bytes: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(d)?;
        let bytes = hex::decode(text).map_err(serde::de::Error::custom)?;
        bytes
            .try_into()
            .map_err(|_| serde::de::Error::custom("expected 32 bytes"))
    }
}

/// Serde adapter: `Option<[u8; 32]>` as hex or null.
pub(crate) mod opt_hex32 {
    use serde::{Deserialize as _, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(
        bytes: &Option<[u8; 32]>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match bytes {
            Some(b) => s.serialize_some(&hex::encode(b)),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<[u8; 32]>, D::Error> {
        let Some(text) = Option::<String>::deserialize(d)? else {
            return Ok(None);
        };
        let bytes = hex::decode(text).map_err(serde::de::Error::custom)?;
        bytes
            .try_into()
            .map(Some)
            .map_err(|_| serde::de::Error::custom("expected 32 bytes"))
    }
}
