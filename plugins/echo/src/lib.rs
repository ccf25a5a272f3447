//! The smallest useful plugin: `!ping` → `pong`, `!echo TEXT` → `TEXT`, both as
//! replies quoting the command. Needs the `messaging` capability.

use wasmeow_sdk::{Config, Msg, Plugin, export_plugin};

struct Echo;

impl Plugin for Echo {
    fn init(_config: &Config) -> Result<Self, String> {
        Ok(Echo)
    }

    fn on_message(&mut self, msg: &Msg<'_>) {
        let Some(cmd) = msg.command() else { return };
        let answer = if cmd.is("ping") {
            "pong"
        } else if cmd.is("echo") && !cmd.args.is_empty() {
            cmd.args
        } else {
            return;
        };
        if let Err(e) = msg.reply(answer) {
            wasmeow_sdk::warn!("reply failed: {}", wasmeow_sdk::describe(&e));
        }
    }
}

export_plugin!(Echo);
