//! Removes members who post links in groups where the bot is an admin, after a
//! warning.
//!
//! A group message from a non-admin that contains a link earns a strike (kept in
//! kv per session, group and user). Up to `max_warnings` strikes (config, default
//! 1) get a warning that quotes the message and mentions the sender; the next one
//! removes the sender and clears their strikes. Nothing happens in groups where
//! the bot is not an admin, or for admins' messages.
//!
//! Capabilities: `messaging`, `groups` + `group-admin`, `kv`.

use wasmeow_sdk::groups::{self, ParticipantRole};
use wasmeow_sdk::{Config, Msg, Plugin, export_plugin, jid_user, kv, own_jid};

struct Moderation {
    max_warnings: u32,
}

/// Top-level domains a bare `name.tld` must end in to count as a link.
const TLDS: &[&str] = &[
    "com", "net", "org", "io", "me", "ly", "gg", "xyz", "info", "co", "app", "dev", "link", "biz",
    "ru", "de", "uk", "in", "br", "tk", "top", "site", "online", "shop", "club",
];

/// Whether `text` contains a link: a URL scheme, `www.`, a WhatsApp invite, or a
/// word shaped like `name.tld[/…]` with a known TLD.
pub fn contains_link(text: &str) -> bool {
    let lower = text.to_lowercase();
    if [
        "http://",
        "https://",
        "www.",
        "chat.whatsapp.com/",
        "wa.me/",
    ]
    .iter()
    .any(|p| lower.contains(p))
    {
        return true;
    }
    lower
        .split(|c: char| c.is_whitespace() || matches!(c, '(' | ')' | '<' | '>' | '"' | '\'' | ','))
        .any(|word| {
            let host = word
                .split('/')
                .next()
                .unwrap_or(word)
                .trim_end_matches(['.', '!', '?', ':', ';']);
            let mut labels = host.split('.');
            let first = labels.next().unwrap_or("");
            let rest: Vec<&str> = labels.collect();
            !first.is_empty()
                && !rest.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '.' || c == '-')
                && rest.iter().all(|l| !l.is_empty())
                && rest.last().is_some_and(|tld| TLDS.contains(tld))
        })
}

impl Plugin for Moderation {
    fn init(config: &Config) -> Result<Self, String> {
        let max_warnings = config
            .get::<u32>("max_warnings")
            .map_err(|e| e.to_string())?
            .unwrap_or(1);
        Ok(Moderation { max_warnings })
    }

    fn on_message(&mut self, msg: &Msg<'_>) {
        if !msg.is_group() || msg.from_me() {
            return;
        }
        let Some(text) = msg.text() else { return };
        if !contains_link(text) {
            return;
        }
        let Ok(info) = groups::info(msg.session(), &msg.chat) else {
            return;
        };
        let Ok(me) = own_jid(msg.session()) else {
            return;
        };
        if !info.is_admin(&me) {
            return;
        }
        if matches!(
            info.role_of(&msg.sender),
            Some(ParticipantRole::Admin | ParticipantRole::Owner)
        ) {
            return;
        }
        let key = format!(
            "strikes:{}:{}:{}",
            msg.session(),
            msg.chat,
            jid_user(&msg.sender)
        );
        let strikes = match kv::update::<u32, _>(&key, |n| Some(n.unwrap_or(0) + 1)) {
            Ok(n) => n.unwrap_or(1),
            Err(e) => {
                wasmeow_sdk::warn!("strike count failed: {e}");
                return;
            }
        };
        let user = jid_user(&msg.sender);
        let mention = [msg.sender.clone()];
        if strikes <= self.max_warnings {
            let text = format!(
                "@{user} links are not allowed in this group (warning {strikes} of {}). Next time you will be removed.",
                self.max_warnings
            );
            let _ = msg.reply_mentioning(&text, &mention);
            return;
        }
        match groups::remove_participants(msg.session(), &msg.chat, &mention) {
            Ok(outcomes) if outcomes.iter().all(|o| o.code == 200) => {
                let _ = kv::delete(&key);
                let _ =
                    msg.reply_mentioning(&format!("Removed @{user} for posting links."), &mention);
            }
            Ok(outcomes) => wasmeow_sdk::warn!("removing {user} failed: {outcomes:?}"),
            Err(e) => wasmeow_sdk::warn!("removing {user} failed: {}", wasmeow_sdk::describe(&e)),
        }
    }
}

export_plugin!(Moderation);

#[cfg(test)]
mod tests {
    use super::contains_link;

    #[test]
    fn links() {
        for yes in [
            "see https://x.y",
            "WWW.EXAMPLE.ORG",
            "go to example.com/abc",
            "join chat.whatsapp.com/AbC",
            "bit.ly/x!",
            "(evil.xyz)",
        ] {
            assert!(contains_link(yes), "{yes}");
        }
        for no in [
            "hello",
            "version 1.2.3",
            "e.g. this",
            "a.b",
            "mail me at noon",
            "3.14",
            "end.",
        ] {
            assert!(!contains_link(no), "{no}");
        }
    }
}
