//! Transport cipher throughput: `Transport::seal_in_place` / `open_in_place` at 256 B and
//! 16 KiB, the sizes of a typical node and of a large one.
//!
//! Run with `cargo bench -p wasmeow-protocol --bench noise`. Compare with
//! `openssl speed -evp aes-256-gcm -bytes 256` and `-bytes 16384` on the same machine; the
//! target is at least half of OpenSSL's throughput at both sizes.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand::SeedableRng as _;
use wasmeow_protocol::keys::KeyPair;
use wasmeow_protocol::noise::{CertVerifier, ChainIssuer, ServerConfig, Transport, client, server};

const NOW: u64 = 1_800_000_000;

/// A client and a server transport from a real in-memory handshake.
fn transports() -> (Transport, Transport) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let issuer = ChainIssuer::generate(&mut rng, NOW - 60, NOW + 60);
    let config = ServerConfig::issue(&issuer, &mut rng);
    let verifier = CertVerifier::new(issuer.root_public());
    let (c, ch) = client::Start::new(KeyPair::generate(&mut rng), &mut rng).client_hello();
    let (s, sh) = server::Start::new(&config, &mut rng)
        .handle(&ch)
        .expect("server accepts our ClientHello");
    let (ct, cf, _) = c
        .handle(&sh, &verifier, NOW, b"payload")
        .expect("client accepts our ServerHello");
    let (st, ..) = s.handle(&cf).expect("server accepts our ClientFinish");
    (ct, st)
}

fn transport(c: &mut Criterion) {
    let mut group = c.benchmark_group("transport");
    for size in [256usize, 16 * 1024] {
        group.throughput(Throughput::Bytes(size as u64));

        let (mut client, _) = transports();
        let mut buf = Vec::with_capacity(size + 16);
        group.bench_with_input(
            BenchmarkId::new("seal_in_place", size),
            &size,
            |b, &size| {
                b.iter(|| {
                    buf.clear();
                    buf.resize(size, 0xA5);
                    client
                        .seal_in_place(black_box(&mut buf))
                        .expect("counter not exhausted");
                });
            },
        );

        // Frames are sealed outside the timed region in cache-sized batches (about 256 KiB, as
        // the seal benchmark reuses one warm buffer), then opened in place, in order.
        group.bench_with_input(
            BenchmarkId::new("open_in_place", size),
            &size,
            |b, &size| {
                b.iter_custom(|iters| {
                    let batch = (256 * 1024 / size).max(1) as u64;
                    let (mut client, mut server) = transports();
                    let mut total = std::time::Duration::ZERO;
                    let mut left = iters;
                    while left > 0 {
                        let n = left.min(batch);
                        let mut frames: Vec<Vec<u8>> = (0..n)
                            .map(|_| {
                                client
                                    .seal(&vec![0x5A; size])
                                    .expect("counter not exhausted")
                            })
                            .collect();
                        let start = std::time::Instant::now();
                        for f in &mut frames {
                            server.open_in_place(black_box(f)).expect("authentic frame");
                        }
                        total += start.elapsed();
                        left -= n;
                    }
                    total
                });
            },
        );

        let (mut client, mut server) = transports();
        let plain = vec![0x11u8; size];
        group.bench_with_input(BenchmarkId::new("seal_open_alloc", size), &size, |b, _| {
            b.iter(|| {
                let ct = client
                    .seal(black_box(&plain))
                    .expect("counter not exhausted");
                server.open(black_box(&ct)).expect("authentic frame")
            });
        });
    }
    group.finish();
}

criterion_group!(benches, transport);
criterion_main!(benches);
