//! Fuzzes the Noise handshake message parsers of both roles and the certificate verifier.
//!
//! The first input byte picks what the rest of the input is fed to:
//! 0: a client's ServerHello; 1: a server's ClientHello; 2: a server's ClientFinish (after a
//! real ClientHello); 3: the certificate chain a real server presents, so the client's chain
//! verifier sees arbitrary (but authentically encrypted) bytes; 4: a transport frame after a
//! real handshake. Oracle: no panics, and nothing arbitrary is ever accepted where acceptance
//! would require a key the fuzzer does not have.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use wasmeow_protocol::keys::{KeyPair, PrivateKey};
use wasmeow_protocol::noise::{CertVerifier, HandshakeError, ServerConfig, client, server};

const NOW: u64 = 1_800_000_000;

/// Fixed key pairs `key(1)` … `key(7)`, derived once (scalar multiplications dominate the cost of
/// an execution otherwise).
fn key(b: u8) -> KeyPair {
    static KEYS: OnceLock<Vec<KeyPair>> = OnceLock::new();
    KEYS.get_or_init(|| {
        (0..8)
            .map(|i| KeyPair::from_private(PrivateKey::from_bytes([i; 32])))
            .collect()
    })[usize::from(b)]
    .clone()
}

/// A chain for `key(2)` signed by root `key(1)`, deterministic (fixed XEdDSA nonces).
fn valid_chain() -> Vec<u8> {
    static CHAIN: OnceLock<Vec<u8>> = OnceLock::new();
    CHAIN.get_or_init(make_chain).clone()
}

fn make_chain() -> Vec<u8> {
    use prost::Message as _;
    use wasmeow_proto::wa::CertChain;
    use wasmeow_proto::wa::cert_chain::NoiseCertificate;
    use wasmeow_proto::wa::cert_chain::noise_certificate::Details;
    use wasmeow_protocol::xeddsa::sign_with_nonce;

    let cert = |details: Details, signer: &KeyPair| {
        let bytes = details.encode_to_vec();
        let sig = sign_with_nonce(&signer.private, &bytes, &[7u8; 64]);
        NoiseCertificate {
            details: Some(bytes.into()),
            signature: Some(sig.to_vec().into()),
        }
    };
    let validity = |serial, issuer_serial, key: &KeyPair| Details {
        serial: Some(serial),
        issuer_serial: Some(issuer_serial),
        key: Some(key.public.0.to_vec().into()),
        not_before: Some(NOW - 1),
        not_after: Some(NOW + 1),
    };
    CertChain {
        intermediate: Some(cert(validity(1, 0, &key(6)), &key(1))),
        leaf: Some(cert(validity(2, 1, &key(2)), &key(6))),
    }
    .encode_to_vec()
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, input)) = data.split_first() else {
        return;
    };
    let verifier = CertVerifier::new(key(1).public);
    let config = |chain: &[u8]| ServerConfig {
        static_key: key(2),
        cert_chain: chain.to_vec().into(),
    };
    let start_client = || client::Start::with_ephemeral(key(3), key(4)).client_hello();
    match mode % 5 {
        0 => {
            let (c, _) = start_client();
            // Without the client's ephemeral secret no ServerHello can be authentic.
            assert!(c.handle(input, &verifier, NOW, b"payload").is_err());
        }
        1 => {
            let cfg = config(b"chain");
            if let Ok((_, hello)) = server::Start::with_ephemeral(&cfg, key(5)).handle(input) {
                assert!(!hello.is_empty());
            }
        }
        2 => {
            let cfg = config(b"chain");
            let (_, ch) = start_client();
            let (s, _) = server::Start::with_ephemeral(&cfg, key(5))
                .handle(&ch)
                .expect("our own ClientHello is accepted");
            assert!(s.handle(input).is_err());
        }
        3 => {
            let cfg = config(input);
            let (c, ch) = start_client();
            let (_, sh) = server::Start::with_ephemeral(&cfg, key(5))
                .handle(&ch)
                .expect("our own ClientHello is accepted");
            match c.handle(&sh, &verifier, NOW, b"payload") {
                // Accepting would need an XEdDSA signature by key(1), which the fuzzer lacks.
                Ok(_) => panic!("accepted a chain nobody signed"),
                Err(HandshakeError::Certificate(_)) => {}
                Err(other) => panic!("chain bytes caused a non-certificate error: {other:?}"),
            }
        }
        _ => {
            let cfg = ServerConfig {
                static_key: key(2),
                cert_chain: valid_chain().into(),
            };
            let (c, ch) = start_client();
            let (s, sh) = server::Start::with_ephemeral(&cfg, key(5))
                .handle(&ch)
                .expect("our own ClientHello is accepted");
            let (mut ct, cf, _) = c
                .handle(&sh, &verifier, NOW, b"payload")
                .expect("a chain signed by the trusted root is accepted");
            let (mut st, ..) = s.handle(&cf).expect("our own ClientFinish is accepted");
            // Nothing the fuzzer makes up authenticates under the session keys.
            assert!(ct.open(input).is_err());
            assert!(st.open(input).is_err());
            let mut buf = input.to_vec();
            assert!(st.open_in_place(&mut buf).is_err());
            assert_eq!(buf, input, "a failed open leaves the buffer as it was");
        }
    }
});
