//! Signal throughput: session setup, 1:1 encrypt+decrypt on one chain and with a
//! DH ratchet step every message, and sender-key encrypt+decrypt.
//!
//! `tests/interop/bench-signal.mjs` runs the same four operations with
//! libsignal-node 6.0.0 and Baileys' sender-key code on the same machine and
//! prints the ratio table. Targets: ≥10x libsignal-node for the first three,
//! ≥100x Baileys for sender keys. Each iteration here is one complete operation:
//!
//! - `setup`: Alice `initiate`s from Bob's bundle (signature check, X3DH, first
//!   ratchet) and encrypts; Bob `decrypt_prekey_message`s (X3DH, DH ratchet).
//! - `same_chain`: Alice encrypts 100 bytes, Bob decrypts (symmetric ratchet only).
//! - `ratchet`: the sender alternates, so every decryption performs a DH ratchet step.
//! - `sender_key`: group encrypt (XEdDSA sign) + decrypt (verify) of 100 bytes.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rand::SeedableRng as _;
use rand::rngs::StdRng;
use wasmeow_protocol::signal::{
    LocalIdentity, PreKey, PreKeySignalMessage, PreKeys, SessionRecord, SignedPreKey, group,
    session,
};

const BODY: [u8; 100] = [0x5A; 100];

struct Bob {
    id: LocalIdentity,
    spk: SignedPreKey,
    opk: PreKey,
}

fn parties(rng: &mut StdRng) -> (LocalIdentity, Bob) {
    let alice = LocalIdentity::generate(rng);
    let id = LocalIdentity::generate(rng);
    let spk = SignedPreKey::generate(&id.key_pair, 1, rng);
    let opk = PreKey::generate(2, rng);
    (alice, Bob { id, spk, opk })
}

/// One full session setup; returns both records.
fn setup(alice: &LocalIdentity, bob: &Bob, rng: &mut StdRng) -> (SessionRecord, SessionRecord) {
    let bundle = bob.id.bundle(1, &bob.spk, Some(&bob.opk));
    let mut a = session::initiate(None, alice, &bundle, None, rng)
        .expect("valid bundle")
        .record;
    let first = session::encrypt(&mut a, &BODY).expect("session exists");
    let pk = PreKeySignalMessage::parse(first.as_bytes()).expect("our own pkmsg parses");
    let keys = PreKeys {
        signed: Some(&bob.spk),
        one_time: Some(&bob.opk),
    };
    let out = session::decrypt_prekey_message(None, &bob.id, keys, None, &pk, rng)
        .expect("our own pkmsg decrypts");
    (a, out.record)
}

/// A session in which both sides have received a message (no pending prekey).
fn established(
    alice: &LocalIdentity,
    bob: &Bob,
    rng: &mut StdRng,
) -> (SessionRecord, SessionRecord) {
    let (a, mut b) = setup(alice, bob, rng);
    let reply = session::encrypt(&mut b, &BODY).expect("session exists");
    let out = session::decrypt_message(&a, reply.as_bytes(), rng).expect("reply decrypts");
    (out.record, b)
}

fn signal(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(1);
    let (alice, bob) = parties(&mut rng);
    let mut g = c.benchmark_group("signal");
    g.throughput(Throughput::Elements(1));

    g.bench_function("setup", |b| {
        b.iter(|| black_box(setup(&alice, &bob, &mut rng)))
    });

    let (mut a, mut b_rec) = established(&alice, &bob, &mut rng);
    g.bench_function("same_chain", |b| {
        b.iter(|| {
            let m = session::encrypt(&mut a, black_box(&BODY)).expect("session exists");
            let out = session::decrypt_message(&b_rec, m.as_bytes(), &mut rng).expect("decrypts");
            b_rec = out.record;
            black_box(out.plaintext)
        })
    });

    let (mut a, mut b_rec) = established(&alice, &bob, &mut rng);
    let mut alice_turn = false;
    g.bench_function("ratchet", |b| {
        b.iter(|| {
            let (from, to) = if alice_turn {
                (&mut a, &mut b_rec)
            } else {
                (&mut b_rec, &mut a)
            };
            alice_turn = !alice_turn;
            let m = session::encrypt(from, black_box(&BODY)).expect("session exists");
            let out = session::decrypt_message(to, m.as_bytes(), &mut rng).expect("decrypts");
            *to = out.record;
            black_box(out.plaintext)
        })
    });

    let mut own = group::create_sender_key(&mut rng);
    let skdm = group::distribution_message(&own).expect("own sender key");
    let mut theirs = group::process_distribution_message(None, &skdm).expect("valid SKDM");
    g.bench_function("sender_key", |b| {
        b.iter(|| {
            let m = group::encrypt(&mut own, black_box(&BODY), &mut rng).expect("own sender key");
            let out = group::decrypt(&theirs, &m).expect("decrypts");
            theirs = out.record;
            black_box(out.plaintext)
        })
    });
    g.finish();
}

criterion_group!(benches, signal);
criterion_main!(benches);
