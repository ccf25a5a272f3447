//! Input validation for admin requests: every check returns a 400 [`ApiError`] naming the field,
//! before anything reaches the runtime.
//!
//! Contract: session and plugin names are 1–64 ASCII letters, digits, `-` or `_`; chat JIDs
//! must parse as `user@server` (with optional agent and device parts) via the protocol core's
//! JID parser and have a non-empty user; message text is non-empty and at most
//! [`MAX_TEXT_BYTES`] bytes; phone numbers are 7–15 digits with an optional leading `+`
//! (E.164); a session's `server` is a `ws://` or `wss://` URL and its `root_key` 64 hex digits.

use wasmeow_protocol::binary::Jid;

use super::error::ApiError;
use crate::control::NewSession;

/// The longest message text accepted, in bytes.
pub const MAX_TEXT_BYTES: usize = 65_536;
/// The longest session or plugin name.
pub const MAX_NAME_LEN: usize = 64;

/// Checks a session or plugin name.
pub fn name(field: &str, v: &str) -> Result<(), ApiError> {
    if v.is_empty() || v.len() > MAX_NAME_LEN {
        return Err(ApiError::invalid(
            field,
            format!("must be 1 to {MAX_NAME_LEN} characters, got {}", v.len()),
        ));
    }
    if let Some(c) = v
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return Err(ApiError::invalid(
            field,
            format!("may contain only letters, digits, '-' and '_', found {c:?}"),
        ));
    }
    Ok(())
}

/// Checks a chat JID.
pub fn chat(v: &str) -> Result<(), ApiError> {
    if v.len() > 256 {
        return Err(ApiError::invalid("chat", "longer than 256 bytes"));
    }
    let jid = Jid::parse(v)
        .map_err(|e| ApiError::invalid("chat", format!("not a user@server JID: {e}")))?;
    if jid.user().is_empty() {
        return Err(ApiError::invalid(
            "chat",
            "not a user@server JID: the user part is empty",
        ));
    }
    Ok(())
}

/// Checks message text.
pub fn text(v: &str) -> Result<(), ApiError> {
    if v.is_empty() {
        return Err(ApiError::invalid("text", "must not be empty"));
    }
    if v.len() > MAX_TEXT_BYTES {
        return Err(ApiError::invalid(
            "text",
            format!("must be at most {MAX_TEXT_BYTES} bytes, got {}", v.len()),
        ));
    }
    Ok(())
}

/// Checks a phone number for the pairing-code flow.
pub fn phone(v: &str) -> Result<(), ApiError> {
    let digits = v.strip_prefix('+').unwrap_or(v);
    if !(7..=15).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::invalid(
            "phone",
            "must be 7 to 15 digits with an optional leading '+' (international format)",
        ));
    }
    Ok(())
}

/// Checks a session to create.
pub fn new_session(s: &NewSession) -> Result<(), ApiError> {
    name("name", &s.name)?;
    if let Some(server) = &s.server
        && !(server.starts_with("ws://") || server.starts_with("wss://"))
    {
        return Err(ApiError::invalid("server", "must be a ws:// or wss:// URL"));
    }
    if let Some(k) = &s.root_key
        && !(k.len() == 64 && k.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(ApiError::invalid("root_key", "must be 64 hex digits"));
    }
    if let Some(p) = &s.push_name
        && (p.is_empty() || p.chars().count() > 64)
    {
        return Err(ApiError::invalid("push_name", "must be 1 to 64 characters"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(name("name", "alice_1-b").is_ok());
        assert!(name("name", &"a".repeat(64)).is_ok());
        assert!(name("name", "").is_err());
        assert!(name("name", &"a".repeat(65)).is_err());
        let e = name("name", "a b").unwrap_err();
        assert!(e.message.starts_with("name:"), "{}", e.message);
        assert!(name("name", "é").is_err());
    }

    #[test]
    fn chats() {
        assert!(chat("15551234567@s.whatsapp.net").is_ok());
        assert!(chat("120363000000000000@g.us").is_ok());
        assert!(chat("no-at-sign").is_err());
        assert!(chat("@s.whatsapp.net").is_err());
        assert!(chat("a@b@c").is_err());
    }

    #[test]
    fn texts_and_phones() {
        assert!(text("hi").is_ok());
        assert!(text("").is_err());
        assert!(text(&"x".repeat(MAX_TEXT_BYTES)).is_ok());
        assert!(text(&"x".repeat(MAX_TEXT_BYTES + 1)).is_err());
        assert!(phone("+4915112345678").is_ok());
        assert!(phone("12345").is_err());
        assert!(phone("+49 151").is_err());
    }
}
