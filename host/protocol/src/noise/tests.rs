//! End-to-end tests of both handshake roles and the transport, plus negative cases.

use prost::Message as _;
use rand::rngs::StdRng;
use rand::{Rng as _, RngExt as _, SeedableRng as _};
use wasmeow_proto::wa::cert_chain::NoiseCertificate;
use wasmeow_proto::wa::{CertChain, HandshakeMessage};

use super::cert::{CertRole, sign_certificate};
use super::*;
use crate::keys::KeyPair;
use crate::xeddsa::SignatureError;

const NOW: u64 = 1_800_000_000;

struct Fixture {
    rng: StdRng,
    issuer: ChainIssuer,
    config: ServerConfig,
    noise_key: KeyPair,
}

fn fixture(seed: u64) -> Fixture {
    let mut rng = StdRng::seed_from_u64(seed);
    let issuer = ChainIssuer::generate(&mut rng, NOW - 1000, NOW + 1000);
    let config = ServerConfig::issue(&issuer, &mut rng);
    let noise_key = KeyPair::generate(&mut rng);
    Fixture {
        rng,
        issuer,
        config,
        noise_key,
    }
}

impl Fixture {
    fn verifier(&self) -> CertVerifier {
        CertVerifier::new(self.issuer.root_public())
    }

    /// Runs the client up to a ServerHello from our server with `config`.
    fn hello(
        &mut self,
        config: &ServerConfig,
    ) -> (
        client::ExpectServerHello,
        server::ExpectClientFinish,
        Vec<u8>,
    ) {
        let (c, ch) = client::Start::new(self.noise_key.clone(), &mut self.rng).client_hello();
        let (s, sh) = server::Start::new(config, &mut self.rng)
            .handle(&ch)
            .unwrap();
        (c, s, sh)
    }

    /// Like [`hello`](Self::hello) but with fixed ephemerals, so every call replays the same
    /// handshake byte for byte.
    fn fixed_hello(
        &self,
    ) -> (
        client::ExpectServerHello,
        server::ExpectClientFinish,
        Vec<u8>,
    ) {
        let mut eph_rng = StdRng::seed_from_u64(0xE7E7);
        let ce = KeyPair::generate(&mut eph_rng);
        let se = KeyPair::generate(&mut eph_rng);
        let (c, ch) = client::Start::with_ephemeral(self.noise_key.clone(), ce).client_hello();
        let (s, sh) = server::Start::with_ephemeral(&self.config, se)
            .handle(&ch)
            .unwrap();
        (c, s, sh)
    }

    /// The client's verdict on a server presenting `chain` for the configured static key.
    fn client_result_for_chain(&mut self, chain: &CertChain) -> Result<(), HandshakeError> {
        let config = ServerConfig::new(self.config.static_key.clone(), chain);
        let (c, _, sh) = self.hello(&config);
        c.handle(&sh, &self.verifier(), NOW, b"p").map(|_| ())
    }
}

fn handshake(f: &mut Fixture, payload: &[u8]) -> (Transport, Transport, PublicKey, Vec<u8>) {
    let verifier = f.verifier();
    let (c, ch) = client::Start::new(f.noise_key.clone(), &mut f.rng).client_hello();
    assert_eq!(
        &ch[..4],
        &[0x12, 0x22, 0x0a, 0x20],
        "client_hello{{ephemeral: 32 bytes}}"
    );
    let (s, sh) = server::Start::new(&f.config, &mut f.rng)
        .handle(&ch)
        .unwrap();
    let (ct, cf, _proof) = c.handle(&sh, &verifier, NOW, payload).unwrap();
    let (st, client_static, got) = s.handle(&cf).unwrap();
    (ct, st, client_static, got.to_vec())
}

#[test]
fn handshake_then_a_thousand_frames_each_way_interleaved() {
    let mut f = fixture(1);
    let (mut client, mut server, client_static, payload) = handshake(&mut f, b"client payload");
    assert_eq!(client_static, f.noise_key.public);
    assert_eq!(payload, b"client payload");

    let mut rng = StdRng::seed_from_u64(99);
    let sizes = |i: usize, rng: &mut StdRng| -> usize {
        // Empty, one byte, ~64 KiB (1 in 50: debug-build AES is slow) and small-to-medium.
        match i % 50 {
            0 | 10 | 20 => 0,
            1 => 65_536 + rng.random_range(0..64),
            2 | 12 => 1,
            _ => rng.random_range(0..2048),
        }
    };
    let mut to_server = std::collections::VecDeque::new();
    let mut to_client = std::collections::VecDeque::new();
    let (mut sent_c, mut sent_s, mut recv_c, mut recv_s) = (0, 0, 0, 0);
    while recv_c < 1000 || recv_s < 1000 {
        // Random interleaving: each side sends bursts while the other lags behind.
        match rng.random_range(0..4) {
            0 if sent_c < 1000 => {
                let mut p = vec![0u8; sizes(sent_c, &mut rng)];
                rng.fill_bytes(&mut p);
                let ct = if sent_c % 2 == 0 {
                    client.seal(&p).unwrap()
                } else {
                    let mut b = p.clone();
                    client.seal_in_place(&mut b).unwrap();
                    b
                };
                assert_eq!(ct.len(), p.len() + 16);
                to_server.push_back((p, ct));
                sent_c += 1;
            }
            1 if sent_s < 1000 => {
                let mut p = vec![0u8; sizes(sent_s + 5, &mut rng)];
                rng.fill_bytes(&mut p);
                let ct = server.seal(&p).unwrap();
                to_client.push_back((p, ct));
                sent_s += 1;
            }
            2 => {
                if let Some((p, ct)) = to_server.pop_front() {
                    let mut b = ct;
                    server.open_in_place(&mut b).unwrap();
                    assert_eq!(b, p);
                    recv_s += 1;
                }
            }
            3 => {
                if let Some((p, ct)) = to_client.pop_front() {
                    assert_eq!(client.open(&ct).unwrap(), p);
                    recv_c += 1;
                }
            }
            _ => {}
        }
    }
    assert_eq!(client.writer().counter(), 1000);
    assert_eq!(server.reader().counter(), 1000);
    assert_eq!(server.writer().counter(), 1000);
    assert_eq!(client.reader().counter(), 1000);
}

#[test]
fn both_sides_agree_on_the_transcript_and_keys() {
    let mut f = fixture(2);
    let verifier = f.verifier();
    let (c, ch) = client::Start::new(f.noise_key.clone(), &mut f.rng).client_hello();
    let (s, sh) = server::Start::new(&f.config, &mut f.rng)
        .handle(&ch)
        .unwrap();
    let (mut ct, cf, _) = c.handle(&sh, &verifier, NOW, b"").unwrap();
    let (mut st, _, payload) = s.handle(&cf).unwrap();
    assert!(payload.is_empty(), "an empty payload is carried faithfully");
    // The directions use different keys: a frame cannot be reflected back to its sender.
    let frame = ct.seal(b"reflect me").unwrap();
    assert_eq!(
        ct.open(&frame),
        Err(TransportError::Tampered { counter: 0 })
    );
    assert_eq!(st.open(&frame).unwrap(), b"reflect me");
}

#[test]
fn deterministic_given_the_same_randomness() {
    let run = || {
        let mut f = fixture(3);
        let verifier = f.verifier();
        let (c, ch) = client::Start::new(f.noise_key.clone(), &mut f.rng).client_hello();
        let (s, sh) = server::Start::new(&f.config, &mut f.rng)
            .handle(&ch)
            .unwrap();
        let (_, cf, _) = c.handle(&sh, &verifier, NOW, b"x").unwrap();
        let (mut st, ..) = s.handle(&cf).unwrap();
        (ch, sh, cf, st.seal(b"y").unwrap())
    };
    assert_eq!(run(), run());
}

// ---- certificate failures surface through the client handshake ----

#[test]
fn wrong_root_key_is_rejected() {
    let mut f = fixture(10);
    let (c, _, sh) = f.hello(&f.config.clone());
    let wrong = CertVerifier::new(KeyPair::generate(&mut f.rng).public);
    assert_eq!(
        c.handle(&sh, &wrong, NOW, b"p").err(),
        Some(HandshakeError::Certificate(
            CertError::BadIntermediateSignature(SignatureError::Mismatch)
        ))
    );
    // Nor does a test chain pass the production root.
    let (c, _, sh) = f.hello(&f.config.clone());
    assert!(matches!(
        c.handle(&sh, &CertVerifier::whatsapp(), NOW, b"p"),
        Err(HandshakeError::Certificate(
            CertError::BadIntermediateSignature(_)
        ))
    ));
}

#[test]
fn bad_intermediate_issuer_serial_is_rejected() {
    let mut f = fixture(11);
    let mut int = f.issuer.intermediate_details();
    int.issuer_serial = Some(1);
    let chain = CertChain {
        intermediate: Some(sign_certificate(&int, &f.issuer.root, &mut f.rng)),
        leaf: f.issuer.issue(&f.config.static_key.public, &mut f.rng).leaf,
    };
    assert_eq!(
        f.client_result_for_chain(&chain),
        Err(HandshakeError::Certificate(
            CertError::BadIntermediateIssuerSerial { got: 1 }
        ))
    );
}

#[test]
fn bad_leaf_issuer_serial_is_rejected() {
    let mut f = fixture(12);
    let mut leaf = f.issuer.leaf_details(&f.config.static_key.public);
    leaf.issuer_serial = Some(77);
    let chain = CertChain {
        intermediate: f
            .issuer
            .issue(&f.config.static_key.public, &mut f.rng)
            .intermediate,
        leaf: Some(sign_certificate(
            &leaf,
            &f.issuer.intermediate.private,
            &mut f.rng,
        )),
    };
    assert_eq!(
        f.client_result_for_chain(&chain),
        Err(HandshakeError::Certificate(
            CertError::BadLeafIssuerSerial {
                expected: f.issuer.intermediate_serial,
                got: 77
            }
        ))
    );
}

#[test]
fn bad_signatures_are_rejected() {
    let mut f = fixture(13);
    let good = f.issuer.issue(&f.config.static_key.public, &mut f.rng);
    let flip = |cert: &Option<NoiseCertificate>| {
        let mut c = cert.clone().unwrap();
        let mut sig = c.signature.unwrap().to_vec();
        sig[5] ^= 0x01;
        c.signature = Some(sig.into());
        Some(c)
    };
    let chain = CertChain {
        intermediate: flip(&good.intermediate),
        leaf: good.leaf.clone(),
    };
    assert!(matches!(
        f.client_result_for_chain(&chain),
        Err(HandshakeError::Certificate(
            CertError::BadIntermediateSignature(_)
        ))
    ));
    let chain = CertChain {
        intermediate: good.intermediate.clone(),
        leaf: flip(&good.leaf),
    };
    assert!(matches!(
        f.client_result_for_chain(&chain),
        Err(HandshakeError::Certificate(CertError::BadLeafSignature(_)))
    ));
    // Random 64-byte signatures (what Baileys rc14 would accept) are refused.
    let mut junk = good.clone();
    junk.leaf.as_mut().unwrap().signature = Some(vec![0x42; 64].into());
    assert!(matches!(
        f.client_result_for_chain(&junk),
        Err(HandshakeError::Certificate(CertError::BadLeafSignature(_)))
    ));
}

#[test]
fn leaf_key_other_than_server_static_is_rejected() {
    let mut f = fixture(14);
    let other = KeyPair::generate(&mut f.rng).public;
    let chain = f.issuer.issue(&other, &mut f.rng);
    assert_eq!(
        f.client_result_for_chain(&chain),
        Err(HandshakeError::Certificate(CertError::LeafKeyMismatch))
    );
}

#[test]
fn expired_and_not_yet_valid_chains_are_rejected() {
    let mut f = fixture(15);
    let verifier = f.verifier();
    let config = f.config.clone();
    let (c, _, sh) = f.hello(&config);
    assert_eq!(
        c.handle(&sh, &verifier, NOW + 1001, b"p").err(),
        Some(HandshakeError::Certificate(CertError::Expired {
            role: CertRole::Intermediate,
            not_after: NOW + 1000,
            now: NOW + 1001
        }))
    );
    let (c, _, sh) = f.hello(&config);
    assert_eq!(
        c.handle(&sh, &verifier, NOW - 1001, b"p").err(),
        Some(HandshakeError::Certificate(CertError::NotYetValid {
            role: CertRole::Intermediate,
            not_before: NOW - 1000,
            now: NOW - 1001
        }))
    );
}

// ---- tampered, truncated and malformed handshake messages ----

fn edit(msg: &[u8], f: impl FnOnce(&mut HandshakeMessage)) -> Vec<u8> {
    let mut m = HandshakeMessage::decode(msg).unwrap();
    f(&mut m);
    m.encode_to_vec()
}

fn flip_last(b: &mut Option<prost::bytes::Bytes>) {
    let mut v = b.take().unwrap().to_vec();
    *v.last_mut().unwrap() ^= 0x80;
    *b = Some(v.into());
}

#[test]
fn tampered_server_hello_ciphertexts_are_rejected() {
    let mut f = fixture(20);
    let verifier = f.verifier();
    let config = f.config.clone();
    for (field, expected) in [
        ("static", "server_hello.static"),
        ("payload", "server_hello.payload"),
        ("ephemeral", "server_hello.static"),
    ] {
        let (c, _, sh) = f.hello(&config);
        let bad = edit(&sh, |m| {
            let h = m.server_hello.as_mut().unwrap();
            match field {
                "static" => flip_last(&mut h.r#static),
                "payload" => flip_last(&mut h.payload),
                _ => flip_last(&mut h.ephemeral),
            }
        });
        assert_eq!(
            c.handle(&bad, &verifier, NOW, b"p").err(),
            Some(HandshakeError::Decrypt { field: expected }),
            "tampered {field}"
        );
    }
}

#[test]
fn tampered_client_finish_ciphertexts_are_rejected() {
    let mut f = fixture(21);
    let verifier = f.verifier();
    let config = f.config.clone();
    for (field, expected) in [
        ("static", "client_finish.static"),
        ("payload", "client_finish.payload"),
    ] {
        let (c, s, sh) = f.hello(&config);
        let (_, cf, _) = c.handle(&sh, &verifier, NOW, b"payload").unwrap();
        let bad = edit(&cf, |m| {
            let fin = m.client_finish.as_mut().unwrap();
            match field {
                "static" => flip_last(&mut fin.r#static),
                _ => flip_last(&mut fin.payload),
            }
        });
        assert_eq!(
            s.handle(&bad).err(),
            Some(HandshakeError::Decrypt { field: expected }),
            "tampered {field}"
        );
    }
}

#[test]
fn a_client_finish_from_another_handshake_is_rejected() {
    let mut f = fixture(22);
    let verifier = f.verifier();
    let config = f.config.clone();
    let (c1, _s1, sh1) = f.hello(&config);
    let (_c2, s2, _sh2) = f.hello(&config);
    let (_, cf1, _) = c1.handle(&sh1, &verifier, NOW, b"p").unwrap();
    assert_eq!(
        s2.handle(&cf1).err(),
        Some(HandshakeError::Decrypt {
            field: "client_finish.static"
        })
    );
}

#[test]
fn truncated_and_garbage_handshake_messages_are_rejected() {
    let mut f = fixture(23);
    let verifier = f.verifier();
    let config = f.config.clone();

    // Server side: every strict prefix of a ClientHello.
    let (_, ch) = client::Start::new(f.noise_key.clone(), &mut f.rng).client_hello();
    for cut in 0..ch.len() {
        let r = server::Start::new(&config, &mut f.rng).handle(&ch[..cut]);
        assert!(
            matches!(
                r,
                Err(HandshakeError::Decode(_)
                    | HandshakeError::UnexpectedMessage { .. }
                    | HandshakeError::BadKeyLength { .. })
            ),
            "prefix {cut}: {r:?}"
        );
    }
    assert!(matches!(
        server::Start::new(&config, &mut f.rng).handle(&[0xFF; 7]),
        Err(HandshakeError::Decode(_))
    ));
    assert_eq!(
        server::Start::new(&config, &mut f.rng).handle(&[]).err(),
        Some(HandshakeError::UnexpectedMessage {
            expected: "client_hello"
        })
    );

    // Client side: every strict prefix of a ServerHello, against the very client it answers
    // (the full message is accepted, so only the truncation can be at fault).
    let (c, _, sh) = f.fixed_hello();
    c.handle(&sh, &verifier, NOW, b"p").unwrap();
    for cut in 0..sh.len() {
        let (c, _, _) = f.fixed_hello();
        let r = c.handle(&sh[..cut], &verifier, NOW, b"p");
        assert!(r.is_err(), "prefix {cut} was accepted");
    }
    // A ClientHello where a ServerHello belongs.
    let (c, _, _) = f.hello(&config);
    assert_eq!(
        c.handle(&ch, &verifier, NOW, b"p").err(),
        Some(HandshakeError::UnexpectedMessage {
            expected: "server_hello"
        })
    );
    // Missing fields.
    let (c, _, sh) = f.hello(&config);
    let bad = edit(&sh, |m| m.server_hello.as_mut().unwrap().payload = None);
    assert_eq!(
        c.handle(&bad, &verifier, NOW, b"p").err(),
        Some(HandshakeError::MissingField("server_hello.payload"))
    );
    let (c, s, sh) = f.hello(&config);
    let (_, cf, _) = c.handle(&sh, &verifier, NOW, b"p").unwrap();
    let bad = edit(&cf, |m| m.client_finish.as_mut().unwrap().r#static = None);
    assert_eq!(
        s.handle(&bad).err(),
        Some(HandshakeError::MissingField("client_finish.static"))
    );
    // Every strict prefix of a ClientFinish, against the server it answers.
    let (c, s, sh) = f.fixed_hello();
    let (_, cf, _) = c.handle(&sh, &verifier, NOW, b"p").unwrap();
    let _ = f.fixed_hello().1.handle(&cf).unwrap();
    for cut in 0..cf.len() {
        let (_, s, _) = f.fixed_hello();
        assert!(s.handle(&cf[..cut]).is_err(), "prefix {cut} was accepted");
    }
    drop(s);
}

#[test]
fn wrong_size_ephemeral_keys_are_rejected() {
    let mut f = fixture(24);
    let verifier = f.verifier();
    let config = f.config.clone();
    for len in [0usize, 31, 33, 64] {
        let hello = HandshakeMessage {
            client_hello: Some(wasmeow_proto::wa::handshake_message::ClientHello {
                ephemeral: Some(vec![9u8; len].into()),
            }),
            ..Default::default()
        }
        .encode_to_vec();
        assert_eq!(
            server::Start::new(&config, &mut f.rng).handle(&hello).err(),
            Some(HandshakeError::BadKeyLength {
                field: "client_hello.ephemeral",
                len
            })
        );
        let (c, _, sh) = f.hello(&config);
        let bad = edit(&sh, |m| {
            m.server_hello.as_mut().unwrap().ephemeral = Some(vec![9u8; len].into());
        });
        assert_eq!(
            c.handle(&bad, &verifier, NOW, b"p").err(),
            Some(HandshakeError::BadKeyLength {
                field: "server_hello.ephemeral",
                len
            })
        );
    }
}

#[test]
fn low_order_ephemeral_keys_are_rejected() {
    let mut f = fixture(25);
    let verifier = f.verifier();
    let config = f.config.clone();
    // u = 0 and u = 1 are low-order points on Curve25519.
    for u in [[0u8; 32], {
        let mut one = [0u8; 32];
        one[0] = 1;
        one
    }] {
        let hello = HandshakeMessage {
            client_hello: Some(wasmeow_proto::wa::handshake_message::ClientHello {
                ephemeral: Some(u.to_vec().into()),
            }),
            ..Default::default()
        }
        .encode_to_vec();
        assert_eq!(
            server::Start::new(&config, &mut f.rng).handle(&hello).err(),
            Some(HandshakeError::LowOrderKey)
        );
        let (c, _, sh) = f.hello(&config);
        let bad = edit(&sh, |m| {
            m.server_hello.as_mut().unwrap().ephemeral = Some(u.to_vec().into())
        });
        assert_eq!(
            c.handle(&bad, &verifier, NOW, b"p").err(),
            Some(HandshakeError::LowOrderKey)
        );
    }
}

#[test]
fn tampered_and_replayed_transport_frames_after_a_real_handshake() {
    let mut f = fixture(26);
    let (mut client, mut server, ..) = handshake(&mut f, b"p");
    let f0 = client.seal(b"first").unwrap();
    let f1 = client.seal(b"second").unwrap();
    assert_eq!(server.open(&f0).unwrap(), b"first");
    // Replaying frame 0 is recognised as such and does not disturb the stream.
    assert_eq!(
        server.open(&f0),
        Err(TransportError::Replayed { counter: 0 })
    );
    let mut bad = f1.clone();
    bad[2] ^= 1;
    assert_eq!(
        server.open(&bad),
        Err(TransportError::Tampered { counter: 1 })
    );
    assert_eq!(
        server.reader().counter(),
        1,
        "failed opens leave the reader unchanged"
    );
    assert_eq!(server.open(&f1).unwrap(), b"second");
}
