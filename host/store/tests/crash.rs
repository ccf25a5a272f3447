//! Crash safety: a writer process (`src/bin/store-crash-writer.rs`) is SIGKILLed at random
//! points; after every kill the store must open, hold every commit the writer reported, decrypt,
//! and show no half-written transaction. Same for a process that keeps rekeying.
//!
//! The seed of the kill schedule is printed; set `STORE_CRASH_SEED` to replay one.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngExt as _, SeedableRng as _};
use wasmeow_store::{
    DedupeStore, JobStore, KEY_ENV_VAR, KekSource, OpenError, OpenOptions, PluginKvStore, Queue,
    QueueStore, RedbStore, SessionStore, SignalAddress, Store, verify,
};

const WRITER: &str = env!("CARGO_BIN_EXE_store-crash-writer");

/// Mirrors `batch_payload` in the writer binary.
fn batch_payload(i: u64, part: &str) -> Vec<u8> {
    let mut v = format!("batch-{i}-{part}|").into_bytes();
    let fill = if part == "session" { 1024 } else { 64 };
    v.extend((0..fill).map(|j| (i as usize * 31 + j * 7) as u8));
    v
}

fn seeded_rng() -> StdRng {
    let seed = std::env::var("STORE_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("kill schedule seed: STORE_CRASH_SEED={seed}");
    StdRng::seed_from_u64(seed)
}

/// Lets the child run for `after`, SIGKILLs it, and returns its complete stdout lines.
fn kill_after(mut child: Child, after: Duration) -> Vec<String> {
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        stdout.read_to_string(&mut s).unwrap();
        s
    });
    std::thread::sleep(after);
    // `Child::kill` sends SIGKILL on Unix.
    let _ = child.kill();
    let status = child.wait().unwrap();
    let mut err = String::new();
    stderr.read_to_string(&mut err).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt as _;
        assert_eq!(
            status.signal(),
            Some(9),
            "writer exited on its own: {status}: {err}"
        );
    }
    let text = out.join().unwrap();
    // A line without its newline was cut by the kill: not reported.
    let complete = text.rfind('\n').map_or("", |i| &text[..=i]);
    complete.lines().map(str::to_owned).collect()
}

/// What the store holds: the batches present in each table.
struct Seen {
    jobs: BTreeSet<u64>,
}

fn check_store(path: &Path, kek: &KekSource, committed_before: &BTreeSet<u64>) -> Seen {
    let store = RedbStore::open(path, kek, &OpenOptions::default()).expect("store opens");
    let Some(a) = store.account("crash").unwrap() else {
        assert!(committed_before.is_empty());
        return Seen {
            jobs: BTreeSet::new(),
        };
    };
    let batch_of =
        |s: &str, prefix: &str| -> u64 { s.strip_prefix(prefix).unwrap().parse().unwrap() };

    let mut jobs = BTreeSet::new();
    for (id, data) in a.list_jobs().unwrap() {
        let i = batch_of(&id, "job-");
        assert_eq!(*data, batch_payload(i, "job"), "job {i} intact");
        jobs.insert(i);
    }
    let mut kv: BTreeMap<u64, BTreeSet<String>> = BTreeMap::new();
    for (key, value) in a.kv_list("crash", "batch/").unwrap() {
        let (i, part) = key["batch/".len()..].split_once('/').unwrap();
        let i: u64 = i.parse().unwrap();
        assert_eq!(*value, batch_payload(i, part), "kv {key} intact");
        kv.entry(i).or_default().insert(part.to_owned());
    }
    let mut queued = BTreeSet::new();
    for item in a.queue_peek(Queue::Outbox, usize::MAX).unwrap() {
        let text = String::from_utf8_lossy(&item.payload);
        let i: u64 = text["batch-".len()..text.find("-outbox").unwrap()]
            .parse()
            .unwrap();
        assert_eq!(*item.payload, batch_payload(i, "outbox"));
        queued.insert(i);
    }
    // All-or-nothing: every table holds exactly the same batches, each with all its parts.
    assert_eq!(
        kv.keys().copied().collect::<BTreeSet<_>>(),
        jobs,
        "kv vs jobs"
    );
    assert!(
        kv.values().all(|parts| parts.len() == 2),
        "a batch lost one of its kv parts"
    );
    assert_eq!(queued, jobs, "outbox vs jobs");
    // Nothing committed earlier was lost.
    assert!(
        committed_before.is_subset(&jobs),
        "a committed batch disappeared"
    );
    // The newest session of each peer is the one of its latest batch.
    for user in 0..50u64 {
        let peer = SignalAddress::new(format!("1555000{user:04}"), 0);
        let latest = jobs.iter().rev().find(|i| *i % 50 == user);
        let session = a.get_session(&peer).unwrap();
        match latest {
            None => assert!(session.is_none()),
            Some(i) => assert_eq!(*session.unwrap(), batch_payload(*i, "session")),
        }
    }
    // Dedupe ids of the batches seen for the first time, and not one more.
    for i in jobs.difference(committed_before) {
        assert!(a.is_seen(&format!("msg-{i}")).unwrap());
    }
    let next = jobs.last().map_or(0, |m| m + 1);
    assert!(!a.is_seen(&format!("msg-{next}")).unwrap());
    Seen { jobs }
}

#[test]
fn killed_writer_never_loses_or_tears_a_commit() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.store");
    let key = [0x3cu8; 32];
    let kek = KekSource::key(key);
    let mut rng = seeded_rng();
    let mut committed = BTreeSet::new();
    let mut reported_total = 0usize;
    let mut unreported_total = 0usize;
    for round in 0..50 {
        let first = committed.last().map_or(0, |m: &u64| m + 1);
        let child = Command::new(WRITER)
            .args(["write", path.to_str().unwrap(), &first.to_string()])
            .env(KEY_ENV_VAR, hex::encode(key))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Mostly mid-loop kills, sometimes during open and crash recovery.
        let ms = if rng.random_bool(0.15) {
            rng.random_range(0..8)
        } else {
            rng.random_range(8..350)
        };
        let lines = kill_after(child, Duration::from_millis(ms));
        let reported: BTreeSet<u64> = lines.iter().map(|l| l.parse().unwrap()).collect();
        // Reported batches are consecutive from `first`.
        assert!(
            reported
                .iter()
                .copied()
                .eq(first..first + reported.len() as u64)
        );
        reported_total += reported.len();

        let seen = check_store(&path, &kek, &committed);
        assert!(
            reported.is_subset(&seen.jobs),
            "round {round}: a reported commit is missing"
        );
        // At most one batch committed after the last line was printed.
        let extra: Vec<u64> = seen
            .jobs
            .iter()
            .filter(|i| !committed.contains(i) && !reported.contains(i))
            .copied()
            .collect();
        assert!(
            extra.is_empty() || extra == [first + reported.len() as u64],
            "round {round}: unexpected batches {extra:?}"
        );
        unreported_total += extra.len();
        committed = seen.jobs;
        if round % 10 == 9 {
            let report = verify(&path, &kek).unwrap();
            assert!(report.is_ok(), "{report}");
        }
    }
    eprintln!(
        "50 kills: {} batches committed ({reported_total} reported, {unreported_total} \
         committed but unreported at the kill) in {:?}",
        committed.len(),
        started.elapsed()
    );
    // The schedule must actually have interrupted a writer that was writing.
    assert!(
        reported_total >= 50,
        "too few commits to be meaningful: {reported_total}"
    );
}

#[test]
fn killed_rekey_always_leaves_exactly_one_working_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rekey.store");
    let keys = [[0x11u8; 32], [0x22u8; 32]];
    {
        let store =
            RedbStore::open(&path, &KekSource::key(keys[0]), &OpenOptions::default()).unwrap();
        let a = store.create_account("main").unwrap();
        a.put_session(&SignalAddress::new("15551234567", 0), b"must survive")
            .unwrap();
        a.kv_set("p", "k", b"also").unwrap();
    }
    let mut rng = seeded_rng();
    let mut current = 0usize;
    let mut rekeys = 0usize;
    for round in 0..15 {
        let other = 1 - current;
        let child = Command::new(WRITER)
            .args([
                "rekey",
                path.to_str().unwrap(),
                &hex::encode(keys[current]),
                &hex::encode(keys[other]),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = kill_after(child, Duration::from_millis(rng.random_range(5..400)));
        rekeys += lines.len();
        // The child prints "B" once `other` is in force and "A" once `current` is again.
        let expected = match lines.last().map(String::as_str) {
            None | Some("A") => current,
            Some("B") => other,
            Some(l) => panic!("unexpected line {l:?}"),
        };
        let opens =
            |k: usize| RedbStore::open(&path, &KekSource::key(keys[k]), &OpenOptions::default());
        // The key in force is the last reported one, or the next if that commit landed but
        // its line was not printed. Exactly one of the two works.
        let (working, refused) = match opens(expected) {
            Ok(store) => (store, 1 - expected),
            Err(OpenError::WrongKey) => {
                (opens(1 - expected).expect("the other key works"), expected)
            }
            Err(e) => panic!("round {round}: {e}"),
        };
        let a = working.account("main").unwrap().unwrap();
        assert_eq!(
            &*a.get_session(&SignalAddress::new("15551234567", 0))
                .unwrap()
                .unwrap(),
            b"must survive"
        );
        assert_eq!(&*a.kv_get("p", "k").unwrap().unwrap(), b"also");
        drop((a, working));
        assert!(matches!(opens(refused), Err(OpenError::WrongKey)));
        current = 1 - refused;
    }
    eprintln!("15 kills during rekey loops; {rekeys} rekeys reported");
    assert!(rekeys >= 5, "too few rekeys to be meaningful: {rekeys}");
}
