//! A child process for the crash-safety tests (`tests/crash.rs`): it runs a write-heavy loop
//! (or a rekey loop) against a store and prints a line after each commit, until it is killed.
//!
//! ```text
//! store-crash-writer write <path> <first-batch>   # key from WASMEOW_STORE_KEY
//! store-crash-writer rekey <path> <key-a-hex> <key-b-hex>
//! ```
//!
//! `write`: batch `i` is one transaction writing a session record, two plugin KV entries, a
//! dedupe id, an outbox entry and a job, all tagged with `i`; after the commit it prints `i`.
//! `rekey`: alternates the KEK between key A and key B; after each commit it prints the letter of
//! the key now in force.

use std::io::Write as _;
use std::process::ExitCode;

use wasmeow_store::{
    AccountStore, DedupeStore, JobStore, KekSource, KeyConfig, OpenOptions, PluginKvStore, Queue,
    QueueStore, RedbStore, SessionStore, SignalAddress, Store, StoreError,
};

/// The payloads of batch `i`; the test recomputes them to check integrity.
pub fn batch_payload(i: u64, part: &str) -> Vec<u8> {
    let mut v = format!("batch-{i}-{part}|").into_bytes();
    // Session-sized records: about 1 KiB.
    let fill = if part == "session" { 1024 } else { 64 };
    v.extend((0..fill).map(|j| (i as usize * 31 + j * 7) as u8));
    v
}

fn run_write(path: &str, first: u64) -> Result<(), Box<dyn std::error::Error>> {
    let key = KekSource::resolve(&KeyConfig::default())?;
    let store = RedbStore::open(path, &key, &OpenOptions::default())?;
    let account = store.open_or_create_account("crash")?;
    let mut out = std::io::stdout().lock();
    for i in first.. {
        account.write(|tx| {
            let peer = SignalAddress::new(format!("1555000{:04}", i % 50), 0);
            tx.put_session(&peer, &batch_payload(i, "session"))?;
            tx.kv_set("crash", &format!("batch/{i:08}/a"), &batch_payload(i, "a"))?;
            tx.kv_set("crash", &format!("batch/{i:08}/b"), &batch_payload(i, "b"))?;
            tx.mark_seen(&format!("msg-{i}"), i)?;
            tx.queue_push(Queue::Outbox, &batch_payload(i, "outbox"))?;
            tx.put_job(&format!("job-{i:08}"), &batch_payload(i, "job"))?;
            Ok::<_, StoreError>(())
        })?;
        writeln!(out, "{i}")?;
        out.flush()?;
    }
    Ok(())
}

fn parse_key(hex_key: &str) -> Result<KekSource, Box<dyn std::error::Error>> {
    let mut k = [0u8; 32];
    hex::decode_to_slice(hex_key, &mut k)?;
    Ok(KekSource::key(k))
}

fn run_rekey(path: &str, a: &str, b: &str) -> Result<(), Box<dyn std::error::Error>> {
    let (a, b) = (parse_key(a)?, parse_key(b)?);
    let mut out = std::io::stdout().lock();
    loop {
        wasmeow_store::rekey(path, &a, &b, &OpenOptions::default())?;
        writeln!(out, "B")?;
        out.flush()?;
        wasmeow_store::rekey(path, &b, &a, &OpenOptions::default())?;
        writeln!(out, "A")?;
        out.flush()?;
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let result = match args.get(1).map(String::as_str) {
        Some("write") if args.len() == 4 => match args[3].parse() {
            Ok(first) => run_write(&args[2], first),
            Err(e) => Err(e.into()),
        },
        Some("rekey") if args.len() == 5 => run_rekey(&args[2], &args[3], &args[4]),
        _ => Err("usage: store-crash-writer write <path> <first> | rekey <path> <a> <b>".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("store-crash-writer: {e}");
            ExitCode::FAILURE
        }
    }
}
