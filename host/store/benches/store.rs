//! The cost of encryption: the encrypted store against plain redb (no encryption, no key
//! hashing) with the same access pattern, in the same run.
//!
//! - `read/session`: read one 1.5 KiB session record (of 1000) in its own read transaction.
//! - `commit/session`: write one session record and commit durably (fsync).
//! - `commit/message_path`: the receive path's transaction, committed durably: session record
//!   (1.5 KiB) + dedupe id (lookup, insert, order entry) + inbound message (counter, entry).
//! - `batch100/session`: 100 session writes in one transaction (the per-write CPU cost, with the
//!   fsync amortized).
//!
//! Targets: committed writes under 1.3x plain redb, reads of session-sized records under 2x.
//! After criterion's own report, `cargo bench` prints a summary measured with the two sides
//! interleaved (to cancel disk drift), with the ratios.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use redb::{ReadableDatabase as _, ReadableTable as _, TableDefinition};
use wasmeow_store::{
    AccountStore, DedupeStore, KekSource, OpenOptions, Queue, QueueStore, RedbAccount, RedbStore,
    SessionStore, SignalAddress, Store, StoreError,
};

const SESSIONS: usize = 1000;
const RECORD: usize = 1536;

type Def = TableDefinition<'static, &'static [u8], &'static [u8]>;
const P_SESSIONS: Def = TableDefinition::new("sessions");
const P_SEEN: Def = TableDefinition::new("seen");
const P_SEEN_ORDER: Def = TableDefinition::new("seen_order");
const P_COUNTERS: Def = TableDefinition::new("counters");
const P_QUEUE: Def = TableDefinition::new("queue");

fn record(i: usize) -> Vec<u8> {
    (0..RECORD).map(|j| (i * 13 + j * 7) as u8).collect()
}

fn peer(i: usize) -> SignalAddress {
    SignalAddress::new(format!("1555{:07}", i % SESSIONS), 0)
}

/// The encrypted side.
struct Encrypted {
    _store: RedbStore,
    account: RedbAccount,
    n: usize,
}

impl Encrypted {
    fn new(dir: &Path) -> Self {
        let store = RedbStore::open(
            dir.join("enc"),
            &KekSource::key([7; 32]),
            &OpenOptions::default(),
        )
        .unwrap();
        let account = store.create_account("bench").unwrap();
        account
            .write(|tx| {
                for i in 0..SESSIONS {
                    tx.put_session(&peer(i), &record(i))?;
                }
                Ok::<_, StoreError>(())
            })
            .unwrap();
        Self {
            _store: store,
            account,
            n: 0,
        }
    }

    fn read(&mut self) {
        self.n += 1;
        black_box(
            self.account
                .get_session(&peer(self.n * 7))
                .unwrap()
                .unwrap(),
        );
    }

    fn commit_session(&mut self) {
        self.n += 1;
        self.account
            .put_session(&peer(self.n), &record(self.n))
            .unwrap();
    }

    fn message_path(&mut self) {
        self.n += 1;
        let n = self.n;
        let msg = vec![0x61u8; 500];
        self.account
            .write(|tx| {
                tx.put_session(&peer(n), &record(n))?;
                tx.mark_seen(&format!("3EB0{n:016X}"), n as u64)?;
                tx.queue_push(Queue::Inbound, &msg)?;
                Ok::<_, StoreError>(())
            })
            .unwrap();
    }

    fn batch100(&mut self) {
        self.n += 1;
        let n = self.n;
        self.account
            .write(|tx| {
                for i in 0..100 {
                    tx.put_session(&peer(n * 100 + i), &record(i))?;
                }
                Ok::<_, StoreError>(())
            })
            .unwrap();
    }
}

/// Plain redb, no encryption and clear keys, same operations.
struct Plain {
    db: redb::Database,
    n: usize,
}

fn plain_key(i: usize) -> Vec<u8> {
    peer(i).to_string().into_bytes()
}

impl Plain {
    fn new(dir: &Path) -> Self {
        // The same cache size as the encrypted store's default.
        let db = redb::Builder::new()
            .set_cache_size(OpenOptions::default().cache_bytes)
            .create(dir.join("plain"))
            .unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn.open_table(P_SESSIONS).unwrap();
            for i in 0..SESSIONS {
                t.insert(plain_key(i).as_slice(), record(i).as_slice())
                    .unwrap();
            }
            for d in [P_SEEN, P_SEEN_ORDER, P_COUNTERS, P_QUEUE] {
                txn.open_table(d).unwrap();
            }
        }
        txn.commit().unwrap();
        Self { db, n: 0 }
    }

    fn read(&mut self) {
        self.n += 1;
        let txn = self.db.begin_read().unwrap();
        let t = txn.open_table(P_SESSIONS).unwrap();
        let v = t.get(plain_key(self.n * 7).as_slice()).unwrap().unwrap();
        black_box(v.value().to_vec());
    }

    fn commit_session(&mut self) {
        self.n += 1;
        let txn = self.db.begin_write().unwrap();
        txn.open_table(P_SESSIONS)
            .unwrap()
            .insert(plain_key(self.n).as_slice(), record(self.n).as_slice())
            .unwrap();
        txn.commit().unwrap();
    }

    fn message_path(&mut self) {
        self.n += 1;
        let n = self.n;
        let msg = vec![0x61u8; 500];
        let txn = self.db.begin_write().unwrap();
        {
            txn.open_table(P_SESSIONS)
                .unwrap()
                .insert(plain_key(n).as_slice(), record(n).as_slice())
                .unwrap();
            let id = format!("3EB0{n:016X}");
            let mut seen = txn.open_table(P_SEEN).unwrap();
            let mut order = txn.open_table(P_SEEN_ORDER).unwrap();
            assert!(seen.get(id.as_bytes()).unwrap().is_none());
            let next = order.last().unwrap().map_or(0, |(k, _)| {
                u64::from_be_bytes(k.value().try_into().unwrap()) + 1
            });
            order.first().unwrap();
            seen.insert(
                id.as_bytes(),
                [next.to_be_bytes(), 1u64.to_be_bytes()].concat().as_slice(),
            )
            .unwrap();
            order
                .insert(next.to_be_bytes().as_slice(), id.as_bytes())
                .unwrap();
            let mut counters = txn.open_table(P_COUNTERS).unwrap();
            let q = counters
                .get(b"queue/2".as_slice())
                .unwrap()
                .map_or(0, |v| u64::from_be_bytes(v.value().try_into().unwrap()))
                + 1;
            counters
                .insert(b"queue/2".as_slice(), q.to_be_bytes().as_slice())
                .unwrap();
            let key = [&[2u8][..], &q.to_be_bytes()].concat();
            txn.open_table(P_QUEUE)
                .unwrap()
                .insert(key.as_slice(), msg.as_slice())
                .unwrap();
        }
        txn.commit().unwrap();
    }

    fn batch100(&mut self) {
        self.n += 1;
        let n = self.n;
        let txn = self.db.begin_write().unwrap();
        {
            let mut t = txn.open_table(P_SESSIONS).unwrap();
            for i in 0..100 {
                t.insert(plain_key(n * 100 + i).as_slice(), record(i).as_slice())
                    .unwrap();
            }
        }
        txn.commit().unwrap();
    }
}

fn benches(c: &mut Criterion, enc: &mut Encrypted, plain: &mut Plain) {
    let mut g = c.benchmark_group("read");
    g.throughput(Throughput::Elements(1));
    g.bench_function("session/encrypted", |b| b.iter(|| enc.read()));
    g.bench_function("session/plain", |b| b.iter(|| plain.read()));
    g.finish();

    let mut g = c.benchmark_group("commit");
    g.throughput(Throughput::Elements(1));
    g.sample_size(20).measurement_time(Duration::from_secs(4));
    g.bench_function("session/encrypted", |b| b.iter(|| enc.commit_session()));
    g.bench_function("session/plain", |b| b.iter(|| plain.commit_session()));
    g.bench_function("message_path/encrypted", |b| b.iter(|| enc.message_path()));
    g.bench_function("message_path/plain", |b| b.iter(|| plain.message_path()));
    g.finish();

    let mut g = c.benchmark_group("batch100");
    g.throughput(Throughput::Elements(100));
    g.sample_size(20).measurement_time(Duration::from_secs(4));
    g.bench_function("session/encrypted", |b| b.iter(|| enc.batch100()));
    g.bench_function("session/plain", |b| b.iter(|| plain.batch100()));
    g.finish();
}

/// Ops/s of `a` and `b`, measured in alternating slices.
fn interleaved(
    mut a: impl FnMut(),
    mut b: impl FnMut(),
    slice: Duration,
    rounds: u32,
) -> (f64, f64) {
    let (mut na, mut nb) = (0u64, 0u64);
    let (mut ta, mut tb) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..rounds {
        let start = Instant::now();
        while start.elapsed() < slice {
            a();
            na += 1;
        }
        ta += start.elapsed();
        let start = Instant::now();
        while start.elapsed() < slice {
            b();
            nb += 1;
        }
        tb += start.elapsed();
    }
    (na as f64 / ta.as_secs_f64(), nb as f64 / tb.as_secs_f64())
}

fn summary(enc: &mut Encrypted, plain: &mut Plain) {
    println!(
        "\nsummary (encrypted vs plain redb, interleaved; ratio = plain ops/s ÷ encrypted ops/s)"
    );
    let rows: [(&str, f64, f64, u32, f64); 4] = {
        let r = interleaved(
            || enc.read(),
            || plain.read(),
            Duration::from_millis(250),
            16,
        );
        let c = interleaved(
            || enc.commit_session(),
            || plain.commit_session(),
            Duration::from_millis(500),
            10,
        );
        let m = interleaved(
            || enc.message_path(),
            || plain.message_path(),
            Duration::from_millis(500),
            10,
        );
        let bt = interleaved(
            || enc.batch100(),
            || plain.batch100(),
            Duration::from_millis(500),
            8,
        );
        [
            ("read session (1.5 KiB)", r.0, r.1, 1, 2.0),
            ("commit session (durable)", c.0, c.1, 1, 1.3),
            ("commit message path (durable)", m.0, m.1, 1, 1.3),
            ("100 session writes / commit", bt.0, bt.1, 100, f64::NAN),
        ]
    };
    for (name, e, p, per, target) in rows {
        let ratio = p / e;
        let verdict = if target.is_nan() {
            String::new()
        } else if ratio < target {
            format!("  (target < {target}x: met)")
        } else {
            format!("  (target < {target}x: MISSED)")
        };
        println!(
            "  {name:<32} encrypted {:>10.0} ops/s   plain {:>10.0} ops/s   ratio {ratio:.2}x{verdict}",
            e * f64::from(per),
            p * f64::from(per),
        );
    }
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let mut enc = Encrypted::new(dir.path());
    let mut plain = Plain::new(dir.path());
    let mut c = Criterion::default().configure_from_args();
    benches(&mut c, &mut enc, &mut plain);
    c.final_summary();
    // `cargo bench` passes `--bench`; `cargo test --benches` runs each benchmark once instead.
    if std::env::args().any(|a| a == "--bench") {
        summary(&mut enc, &mut plain);
    }
}
