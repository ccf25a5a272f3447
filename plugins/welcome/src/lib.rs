//! Greets members added to a group.
//!
//! The greeting comes from, in order: the group's own text stored in kv (set by a
//! group admin with `!welcome set TEXT`, removed with `!welcome reset`, shown with
//! `!welcome show`), the plugin's `text` config key, or a built-in default.
//! `{mentions}` in the text becomes `@user` for each new member (as real
//! mentions) and `{group}` the group's subject.
//!
//! Capabilities: `messaging`, `groups` (group info, to read the subject and the
//! sender's admin role) and `kv`.

use wasmeow_sdk::groups::{self, GroupInfo};
use wasmeow_sdk::{
    Config, GroupChange, GroupUpdate, Msg, OutgoingText, Plugin, export_plugin, jid_user, kv,
    own_jid,
};

const DEFAULT_TEXT: &str = "Welcome {mentions} to {group}!";

struct Welcome {
    default_text: String,
}

fn key(session: &str, group: &str) -> String {
    format!("welcome:{session}:{group}")
}

/// Fills the template in.
fn render(template: &str, users: &[String], subject: &str) -> String {
    let mentions: Vec<String> = users.iter().map(|u| format!("@{}", jid_user(u))).collect();
    template
        .replace("{mentions}", &mentions.join(" "))
        .replace("{group}", subject)
}

impl Welcome {
    fn text_for(&self, session: &str, group: &str) -> String {
        match kv::get::<String>(&key(session, group)) {
            Ok(Some(text)) => text,
            _ => self.default_text.clone(),
        }
    }
}

impl Plugin for Welcome {
    fn init(config: &Config) -> Result<Self, String> {
        let default_text = config
            .get::<String>("text")
            .map_err(|e| e.to_string())?
            .unwrap_or_else(|| DEFAULT_TEXT.to_owned());
        Ok(Welcome { default_text })
    }

    fn on_group_update(&mut self, session: &str, update: &GroupUpdate) {
        let GroupChange::ParticipantsAdded(added) = &update.change else {
            return;
        };
        let me = own_jid(session).ok();
        let users: Vec<String> = added
            .iter()
            .filter(|u| me.as_deref().is_none_or(|m| jid_user(m) != jid_user(u)))
            .cloned()
            .collect();
        if users.is_empty() {
            return;
        }
        let subject = groups::info(session, &update.group)
            .map(|g| g.subject)
            .unwrap_or_else(|_| "the group".to_owned());
        let text = render(&self.text_for(session, &update.group), &users, &subject);
        let out = OutgoingText {
            text,
            quoted: None,
            mentions: users,
        };
        if let Err(e) = wasmeow_sdk::send(session, &update.group, &out) {
            wasmeow_sdk::warn!("welcome failed: {}", wasmeow_sdk::describe(&e));
        }
    }

    fn on_message(&mut self, msg: &Msg<'_>) {
        let Some(cmd) = msg.command() else { return };
        if !cmd.is("welcome") || !msg.is_group() {
            return;
        }
        let (sub, rest) = cmd.split_first().unwrap_or(("show", ""));
        let group = msg.chat.as_str();
        let answer = match sub {
            "show" => format!("Welcome text: {}", self.text_for(msg.session(), group)),
            "set" | "reset" => {
                let info: Option<GroupInfo> = groups::info(msg.session(), group).ok();
                if !info.is_some_and(|g| g.is_admin(&msg.sender)) {
                    "Only group admins can change the welcome text.".to_owned()
                } else if sub == "reset" {
                    match kv::delete(&key(msg.session(), group)) {
                        Ok(_) => "Welcome text reset.".to_owned(),
                        Err(e) => format!("Could not reset: {}", wasmeow_sdk::describe(&e)),
                    }
                } else if rest.is_empty() {
                    "Usage: !welcome set TEXT ({mentions} and {group} are filled in)".to_owned()
                } else {
                    match kv::set(&key(msg.session(), group), rest) {
                        Ok(()) => "Welcome text saved.".to_owned(),
                        Err(e) => format!("Could not save: {e}"),
                    }
                }
            }
            _ => "Usage: !welcome show | set TEXT | reset".to_owned(),
        };
        let _ = msg.reply(&answer);
    }
}

export_plugin!(Welcome);

#[cfg(test)]
mod tests {
    use super::render;

    #[test]
    fn renders_mentions_and_subject() {
        let users = vec![
            "491@s.whatsapp.net".to_owned(),
            "492:3@s.whatsapp.net".to_owned(),
        ];
        assert_eq!(
            render("Hi {mentions}, this is {group}.", &users, "Cats"),
            "Hi @491 @492, this is Cats."
        );
    }
}
