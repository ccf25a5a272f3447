//! End to end through the simulator: the `wasmeow demo` script, asserted.
//!
//! A simulated phone sends `!ping` to a paired host and the echo plugin's `pong` arrives decrypted
//! at the phone; a group add triggers the welcome plugin; a link in the group triggers the
//! moderation plugin's warning and then a removal the simulator records; the reminders plugin's
//! job fires through the scheduler. Everything runs for real: the session engine, the encrypted
//! store, the wasmtime plugin host with the committed plugin builds, and the simulator.

use wasmeow::demo::{self, Output};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_script_plays_through_the_simulator() {
    let report = demo::run(Output::Quiet, 2)
        .await
        .expect("the demo plays through");
    assert!(
        report.bot_jid.ends_with("@s.whatsapp.net"),
        "{}",
        report.bot_jid
    );
    assert_eq!(report.pong, "pong");
    assert!(report.welcome.contains("Welcome"), "{}", report.welcome);
    assert!(
        report.welcome.contains("no links"),
        "configured text: {}",
        report.welcome
    );
    assert!(
        report.warning.contains("links are not allowed"),
        "{}",
        report.warning
    );
    assert!(report.removed, "Bob was removed in the simulator");
    assert!(
        report.reminder.contains("stretch your legs"),
        "{}",
        report.reminder
    );
    eprintln!(
        "ping round trip {} ms, whole script {} ms",
        report.ping_roundtrip_ms, report.total_ms
    );
}
