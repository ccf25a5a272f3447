//! The phone-number pairing code flow (`protocol-whatsmeow.md` §2.8), server and phone side.
//!
//! Contract:
//!
//! ```text
//!  companion                                   server / simulated phone
//!  iq md set <link_code_companion_reg jid=<phone> stage="companion_hello">
//!     wrapped companion ephemeral = salt(32) ‖ iv(16) ‖ AES-256-CTR(PBKDF2(code, salt, 131072), iv, E_c)
//!     companion_server_auth_key_pub (= Noise static), platform id/display, nonce   ─►
//!        ◄─ iq result <link_code_companion_reg><link_code_pairing_ref/></…>
//!                                       enter_pairing_code(phone, code) on the control API:
//!                                       E_c = unwrap with the code; phone ephemeral E_p
//!        ◄─ notification type="link_code_companion_reg" <link_code_companion_reg stage="primary_hello">
//!             link_code_pairing_ref, primary_identity_pub, wrapped E_p (same layout)
//!  iq md set <link_code_companion_reg stage="companion_finish">
//!     wrapped key bundle = salt(32) ‖ nonce(12) ‖ AES-256-GCM(HKDF(DH(E_c,E_p), salt,
//!        "link_code_pairing_key_bundle_encryption_key"), companion identity ‖ primary identity ‖ adv random)
//!     companion_identity_public, link_code_pairing_ref   ─►
//!                                       adv secret = HKDF(DH(E_p,E_c) ‖ DH(phone identity, companion
//!                                       identity) ‖ adv random, "adv_secret"); then pair-success as for QR
//! ```
//!
//! A wrong code yields a key bundle that fails AES-GCM authentication: the companion gets an
//! error IQ and the control call [`PairError::BadCode`].

use aes::Aes256;
use aes::cipher::{KeyIvInit as _, StreamCipher as _};
use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead as _, KeyInit as _};
use hkdf::Hkdf;
use hmac::{Hmac, Mac as _};
use rand::RngExt as _;
use sha2::Sha256;
use tokio::sync::oneshot;
use wasmeow_protocol::binary::Node;
use wasmeow_protocol::keys::{KeyPair, PrivateKey, PublicKey};

use crate::pairing::PairError;
use crate::state::World;
use crate::util::{attr_jid, attr_string, child_bytes, now_secs, server_jid};

/// PBKDF2 iterations for the code key (`2 << 16`).
pub(crate) const PBKDF2_ROUNDS: u32 = 2 << 16;

/// A companion waiting for its code to be entered on the phone.
pub(crate) struct LinkCode {
    pub pn: String,
    pub reference: Vec<u8>,
    pub wrapped_companion_ephemeral: Vec<u8>,
    /// Set once the code was entered: the phone's ephemeral key and the unwrapped companion key.
    pub phone_ephemeral: Option<(KeyPair, PublicKey)>,
    pub done: Option<oneshot::Sender<Result<String, PairError>>>,
}

/// PBKDF2-HMAC-SHA256 with a 32-byte output (one block).
pub(crate) fn pbkdf2_32(password: &[u8], salt: &[u8], rounds: u32) -> [u8; 32] {
    let prf = || {
        <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(password)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"))
    };
    let mut mac = prf();
    mac.update(salt);
    mac.update(&1u32.to_be_bytes());
    let mut u: [u8; 32] = mac.finalize().into_bytes().into();
    let mut out = u;
    for _ in 1..rounds {
        let mut mac = prf();
        mac.update(&u);
        u = mac.finalize().into_bytes().into();
        for (o, b) in out.iter_mut().zip(u) {
            *o ^= b;
        }
    }
    out
}

/// AES-256-CTR in place.
fn ctr(key: &[u8; 32], iv: &[u8; 16], data: &mut [u8]) {
    let mut cipher = ctr::Ctr128BE::<Aes256>::new(key.into(), iv.into());
    cipher.apply_keystream(data);
}

/// `salt(32) ‖ iv(16) ‖ AES-CTR(PBKDF2(code, salt), iv, key)`.
pub(crate) fn wrap_key(code: &str, key: &[u8; 32], salt: [u8; 32], iv: [u8; 16]) -> Vec<u8> {
    wrap_key_rounds(code, key, salt, iv, PBKDF2_ROUNDS)
}

fn wrap_key_rounds(
    code: &str,
    key: &[u8; 32],
    salt: [u8; 32],
    iv: [u8; 16],
    rounds: u32,
) -> Vec<u8> {
    let derived = pbkdf2_32(code.as_bytes(), &salt, rounds);
    let mut body = *key;
    ctr(&derived, &iv, &mut body);
    [&salt[..], &iv[..], &body[..]].concat()
}

/// Inverse of [`wrap_key`]; `None` if the layout is wrong (a wrong code gives a wrong key).
pub(crate) fn unwrap_key(code: &str, wrapped: &[u8]) -> Option<[u8; 32]> {
    unwrap_key_rounds(code, wrapped, PBKDF2_ROUNDS)
}

fn unwrap_key_rounds(code: &str, wrapped: &[u8], rounds: u32) -> Option<[u8; 32]> {
    if wrapped.len() < 80 {
        return None;
    }
    let salt = &wrapped[..32];
    let iv: [u8; 16] = wrapped[32..48].try_into().ok()?;
    let mut body: [u8; 32] = wrapped[48..80].try_into().ok()?;
    let derived = pbkdf2_32(code.as_bytes(), salt, rounds);
    ctr(&derived, &iv, &mut body);
    Some(body)
}

fn hkdf32(ikm: &[u8], salt: Option<&[u8]>, info: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    Hkdf::<Sha256>::new(salt, ikm)
        .expand(info, &mut out)
        .unwrap_or_else(|_| unreachable!("32 bytes is a valid HKDF-SHA256 length"));
    out
}

impl World {
    /// `link_code_companion_reg` IQs from an unpaired companion.
    pub(crate) fn on_link_code_iq(&mut self, conn_id: u64, node: &Node) {
        let id = attr_string(node, "id").unwrap_or_default();
        let Some(reg) = node.child_by_tag("link_code_companion_reg") else {
            return;
        };
        let error = |w: &mut World, code: u16, text: &'static str| {
            w.send_on(
                conn_id,
                Node::new("iq")
                    .attr("from", server_jid())
                    .attr("type", "error")
                    .attr("id", id.clone())
                    .children([Node::new("error").attr("code", code).attr("text", text)]),
            );
        };
        match reg.attr_str("stage") {
            Some("companion_hello") => {
                let pn = attr_jid(reg, "jid").map(|j| j.user().to_owned());
                let Some(pn) = pn.filter(|p| self.accounts.contains_key(p)) else {
                    return error(self, 404, "item-not-found");
                };
                let Some(wrapped) =
                    child_bytes(reg, "link_code_pairing_wrapped_companion_ephemeral_pub")
                        .filter(|w| w.len() >= 80)
                        .map(<[u8]>::to_vec)
                else {
                    return error(self, 400, "bad-request");
                };
                let auth_key = child_bytes(reg, "companion_server_auth_key_pub");
                let reference: Vec<u8> = {
                    let raw: [u8; 16] = self.rng.random();
                    hex::encode(raw).into_bytes()
                };
                let Some(pairing) = self.pairings.get_mut(&conn_id) else {
                    return error(self, 400, "bad-request");
                };
                if auth_key != Some(&pairing.noise_pub[..]) {
                    return error(self, 400, "bad-request");
                }
                pairing.link_code = Some(LinkCode {
                    pn,
                    reference: reference.clone(),
                    wrapped_companion_ephemeral: wrapped,
                    phone_ephemeral: None,
                    done: None,
                });
                self.send_on(
                    conn_id,
                    Node::new("iq")
                        .attr("from", server_jid())
                        .attr("type", "result")
                        .attr("id", id.clone())
                        .children([Node::new("link_code_companion_reg")
                            .children([Node::new("link_code_pairing_ref").bytes(reference)])]),
                );
            }
            Some("companion_finish") => {
                let result = self.finish_link_code(conn_id, reg);
                match result {
                    Ok(adv_secret) => {
                        self.send_on(
                            conn_id,
                            Node::new("iq")
                                .attr("from", server_jid())
                                .attr("type", "result")
                                .attr("id", id.clone()),
                        );
                        let done = self
                            .pairings
                            .get_mut(&conn_id)
                            .and_then(|p| p.link_code.as_mut())
                            .and_then(|l| l.done.take());
                        let pn = self
                            .pairings
                            .get(&conn_id)
                            .and_then(|p| p.link_code.as_ref())
                            .map(|l| l.pn.clone())
                            .unwrap_or_default();
                        match self.send_pair_success(conn_id, &pn, &adv_secret) {
                            Ok(rx) => {
                                if let Some(done) = done {
                                    tokio::spawn(async move {
                                        let outcome = rx.await.unwrap_or(Err(PairError::Abandoned));
                                        let _ = done.send(outcome);
                                    });
                                }
                            }
                            Err(e) => {
                                if let Some(done) = done {
                                    let _ = done.send(Err(e));
                                }
                            }
                        }
                    }
                    Err(e) => {
                        error(self, 401, "not-authorized");
                        if let Some(done) = self
                            .pairings
                            .get_mut(&conn_id)
                            .and_then(|p| p.link_code.as_mut())
                            .and_then(|l| l.done.take())
                        {
                            let _ = done.send(Err(e));
                        }
                    }
                }
            }
            _ => error(self, 400, "bad-request"),
        }
    }

    /// Decrypts the companion's key bundle and derives the ADV secret.
    fn finish_link_code(&mut self, conn_id: u64, reg: &Node) -> Result<Vec<u8>, PairError> {
        let pairing = self.pairings.get(&conn_id).ok_or(PairError::Abandoned)?;
        let link = pairing
            .link_code
            .as_ref()
            .ok_or(PairError::BadCode("no pairing code requested"))?;
        if child_bytes(reg, "link_code_pairing_ref") != Some(&link.reference[..]) {
            return Err(PairError::BadCode("unknown pairing ref"));
        }
        let (phone_eph, companion_eph) = link
            .phone_ephemeral
            .as_ref()
            .ok_or(PairError::BadCode("code not entered yet"))?;
        let bundle = child_bytes(reg, "link_code_pairing_wrapped_key_bundle")
            .ok_or(PairError::BadCode("no key bundle"))?;
        if bundle.len() < 32 + 12 + 16 {
            return Err(PairError::BadCode("key bundle too short"));
        }
        let eph_shared = phone_eph.private.dh(companion_eph);
        let key = hkdf32(
            &eph_shared,
            Some(&bundle[..32]),
            b"link_code_pairing_key_bundle_encryption_key",
        );
        let plain = Aes256Gcm::new((&key).into())
            .decrypt(
                <&[u8; 12]>::try_from(&bundle[32..44])
                    .map_err(|_| PairError::BadCode("nonce"))?
                    .into(),
                &bundle[44..],
            )
            .map_err(|_| PairError::BadCode("key bundle does not decrypt (wrong code)"))?;
        if plain.len() != 96 {
            return Err(PairError::BadCode("key bundle has the wrong length"));
        }
        let phone = self
            .phones
            .get(&link.pn)
            .ok_or_else(|| PairError::UnknownAccount(link.pn.clone()))?;
        let phone_identity: PrivateKey = phone.identity_private();
        if plain[..32] != pairing.identity_pub || plain[32..64] != phone_identity.public_key().0 {
            return Err(PairError::KeyMismatch);
        }
        let ident_shared = phone_identity.dh(&PublicKey(pairing.identity_pub));
        let ikm = [&eph_shared[..], &ident_shared[..], &plain[64..96]].concat();
        Ok(hkdf32(&ikm, None, b"adv_secret").to_vec())
    }

    /// The phone of `pn` accepts `code`: sends the primary hello to the waiting companion.
    pub(crate) fn enter_pairing_code(
        &mut self,
        pn: &str,
        code: &str,
    ) -> Result<oneshot::Receiver<Result<String, PairError>>, PairError> {
        let code: String = code
            .chars()
            .filter(|c| *c != '-')
            .collect::<String>()
            .to_uppercase();
        let conn_id = self
            .pairings
            .iter()
            .filter(|(_, p)| {
                p.link_code
                    .as_ref()
                    .is_some_and(|l| l.pn == pn && l.phone_ephemeral.is_none())
            })
            .map(|(id, _)| *id)
            .max()
            .ok_or(PairError::BadCode(
                "no companion asked for a code for this account",
            ))?;
        let identity = self
            .phones
            .get(pn)
            .map(|p| p.identity_private().public_key())
            .ok_or_else(|| PairError::UnknownAccount(pn.to_owned()))?;
        let phone_eph = KeyPair::generate(&mut self.rng);
        let salt: [u8; 32] = self.rng.random();
        let iv: [u8; 16] = self.rng.random();
        let wrapped_ours = wrap_key(&code, &phone_eph.public.0, salt, iv);
        let id = self.stanza_id();
        let pairing = self
            .pairings
            .get_mut(&conn_id)
            .ok_or(PairError::Abandoned)?;
        let link = pairing.link_code.as_mut().ok_or(PairError::Abandoned)?;
        let companion = unwrap_key(&code, &link.wrapped_companion_ephemeral)
            .ok_or(PairError::BadCode("malformed wrapped key"))?;
        let (done_tx, done_rx) = oneshot::channel();
        let reference = link.reference.clone();
        link.phone_ephemeral = Some((phone_eph, PublicKey(companion)));
        link.done = Some(done_tx);
        let notification = Node::new("notification")
            .attr("from", server_jid())
            .attr("type", "link_code_companion_reg")
            .attr("id", id)
            .attr("t", now_secs())
            .children([Node::new("link_code_companion_reg")
                .attr("stage", "primary_hello")
                .children([
                    Node::new("link_code_pairing_ref").bytes(reference),
                    Node::new("primary_identity_pub").bytes(identity.0.to_vec()),
                    Node::new("link_code_pairing_wrapped_primary_ephemeral_pub")
                        .bytes(wrapped_ours),
                ])]);
        let _ = pairing.tx.send(crate::state::ConnCmd::Send(notification));
        Ok(done_rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pbkdf2_matches_rfc7914_vector() {
        // RFC 7914 §11: PBKDF2-HMAC-SHA256("passwd", "salt", 1, 64) starts 55 ac 04 6e …
        let out = pbkdf2_32(b"passwd", b"salt", 1);
        assert_eq!(hex::encode(&out[..8]), "55ac046e56e3089f");
    }

    #[test]
    fn wrap_roundtrip_and_wrong_code() {
        // Few rounds keep debug test runs quick; the production count is covered by
        // tests/pairing.rs against an independent PBKDF2.
        let key = [9u8; 32];
        let wrapped = wrap_key_rounds("ABCD1234", &key, [1; 32], [2; 16], 8);
        assert_eq!(wrapped.len(), 80);
        assert_eq!(unwrap_key_rounds("ABCD1234", &wrapped, 8), Some(key));
        assert_ne!(unwrap_key_rounds("ABCD1235", &wrapped, 8), Some(key));
        assert_eq!(unwrap_key_rounds("ABCD1234", &wrapped[..79], 8), None);
    }
}
