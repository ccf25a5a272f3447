//! Reminders through the host scheduler.
//!
//! * `!remind 10m TEXT` — once, after a duration (`90s`, `10m`, `1h30m`, `2d`);
//! * `!remind cron MIN HOUR DOM MON DOW ZONE TEXT` — repeatedly, on a cron schedule
//!   in an IANA time zone, e.g. `!remind cron 0 9 * * 1-5 Europe/Berlin stand-up`;
//! * `!remind list` — this chat's reminders; `!remind cancel ID` — cancel one.
//!
//! When a job fires, the text is sent to the chat it was set in, mentioning the
//! person who set it. Capabilities: `messaging`, `scheduler`, `clock`.

use serde::{Deserialize, Serialize};
use wasmeow_sdk::schedule::{self, Trigger};
use wasmeow_sdk::time::parse_duration;
use wasmeow_sdk::{
    Command, Config, Msg, OutgoingText, Plugin, ScheduleFired, export_plugin, jid_user,
};

/// What a job carries.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Reminder {
    chat: String,
    by: String,
    text: String,
}

struct Reminders;

const USAGE: &str = "Usage: !remind 10m TEXT | !remind cron MIN HOUR DOM MON DOW ZONE TEXT | !remind list | !remind cancel ID";

impl Reminders {
    fn answer(&self, msg: &Msg<'_>, cmd: &Command<'_>) -> String {
        let Some((first, rest)) = cmd.split_first() else {
            return USAGE.to_owned();
        };
        match first {
            "list" => self.list(&msg.chat),
            "cancel" if !rest.is_empty() => match schedule::cancel(rest) {
                Ok(()) => format!("Cancelled {rest}."),
                Err(e) => format!("Could not cancel {rest}: {}", wasmeow_sdk::describe(&e)),
            },
            "cron" => {
                let words: Vec<&str> = rest.split_whitespace().collect();
                if words.len() < 7 {
                    return USAGE.to_owned();
                }
                let expr = words[..5].join(" ");
                let zone = words[5];
                let text = words[6..].join(" ");
                let job = Reminder {
                    chat: msg.chat.clone(),
                    by: msg.sender.clone(),
                    text,
                };
                match schedule::cron_json(msg.session(), &expr, zone, &job) {
                    Ok(id) => format!("Repeating reminder {id} set: \"{expr}\" ({zone})."),
                    Err(e) => format!("Could not set the reminder: {e}"),
                }
            }
            spec => match parse_duration(spec) {
                Some(delay) if !rest.is_empty() => {
                    let job = Reminder {
                        chat: msg.chat.clone(),
                        by: msg.sender.clone(),
                        text: rest.to_owned(),
                    };
                    match schedule::after_json(msg.session(), delay, &job) {
                        Ok(id) => format!("Reminder {id} set for {spec} from now."),
                        Err(e) => format!("Could not set the reminder: {e}"),
                    }
                }
                _ => USAGE.to_owned(),
            },
        }
    }

    fn list(&self, chat: &str) -> String {
        let jobs = match schedule::list_jobs() {
            Ok(jobs) => jobs,
            Err(e) => return format!("Could not list reminders: {}", wasmeow_sdk::describe(&e)),
        };
        let lines: Vec<String> = jobs
            .iter()
            .filter_map(|j| {
                let r: Reminder = serde_json::from_str(&j.payload).ok()?;
                (r.chat == chat).then(|| match &j.trigger {
                    Trigger::At(t) => format!("{} at {} ms: {}", j.id, t, r.text),
                    Trigger::Cron(c) => {
                        format!("{} \"{}\" ({}): {}", j.id, c.expression, c.timezone, r.text)
                    }
                })
            })
            .collect();
        if lines.is_empty() {
            "No reminders here.".to_owned()
        } else {
            lines.join("\n")
        }
    }
}

impl Plugin for Reminders {
    fn init(_config: &Config) -> Result<Self, String> {
        Ok(Reminders)
    }

    fn on_message(&mut self, msg: &Msg<'_>) {
        let Some(cmd) = msg.command() else { return };
        if !cmd.is("remind") {
            return;
        }
        let answer = self.answer(msg, &cmd);
        let _ = msg.reply(&answer);
    }

    fn on_schedule(&mut self, session: &str, fired: &ScheduleFired) {
        let job: Reminder = match schedule::payload(fired) {
            Ok(j) => j,
            Err(e) => {
                wasmeow_sdk::warn!("job {} has a bad payload: {e}", fired.job);
                return;
            }
        };
        let out = OutgoingText {
            text: format!("⏰ @{} reminder: {}", jid_user(&job.by), job.text),
            quoted: None,
            mentions: vec![job.by.clone()],
        };
        if let Err(e) = wasmeow_sdk::send(session, &job.chat, &out) {
            wasmeow_sdk::warn!(
                "reminder {} not sent: {}",
                fired.job,
                wasmeow_sdk::describe(&e)
            );
        }
    }
}

export_plugin!(Reminders);
