//! The post-handshake transport cipher: AES-256-GCM with one key and one counter per direction.
//!
//! Contract (`protocol-whatsmeow.md` §2.3): "Separate write and read keys with independent
//! 32-bit counters starting at 0. IV is 12 bytes: 8 zero bytes + 32-bit BE counter. AAD is
//! empty." Payloads are opaque bytes; the flags byte and zlib belong to the binary-node layer.
//!
//! # Counter policy (decided here; differs from whatsmeow on purpose)
//!
//! - **Write:** each [`TransportWriter::seal`] uses the next counter. After counter
//!   `u32::MAX` has been used, sealing fails with [`TransportError::CounterExhausted`]; the
//!   counter never wraps (a wrapped GCM nonce would reuse a keystream).
//! - **Read, success:** the read counter advances by one.
//! - **Read, failure:** the reader is **unchanged**: the counter does not advance and an
//!   in-place buffer keeps its ciphertext. The failure is then classified:
//!   - [`TransportError::Replayed`] if the frame authenticates under one of the last
//!     [`REPLAY_WINDOW`] already-used counters. The frame is a duplicate of one we accepted;
//!     since the state did not move, the caller *may* drop it and continue.
//!   - [`TransportError::Tampered`] otherwise (altered bytes, a frame from another session, a
//!     skipped frame). The session is broken and the caller must close the connection.
//!   - [`TransportError::TooShort`] if the frame cannot even hold a tag.
//!
//! whatsmeow instead advances the read counter on failure and drops the frame with a warning.
//! We do not: over an ordered, reliable WebSocket a frame never legitimately goes missing, so
//! a failure means an attack or a bug, and keeping the state unchanged is what lets a replay
//! be told apart from tampering (and be survived).
//!
//! Classifying a failure costs up to [`REPLAY_WINDOW`] extra tag checks over the frame; only
//! failing frames pay it.

use aes_gcm::aead::AeadInOut as _;
use aes_gcm::aead::array::Array;
use aes_gcm::{Aes256Gcm, Tag};
use zeroize::Zeroize as _;

use super::symmetric::{TAG_LEN, cipher, nonce};

/// How many already-used read counters a failing frame is checked against to detect a replay.
pub const REPLAY_WINDOW: u32 = 8;

/// The number of frames one direction can carry: counters `0..=u32::MAX`.
const COUNTER_LIMIT: u64 = 1 << 32;

/// A transport frame could not be sealed or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// All 2^32 counters of this direction have been used; the connection must be re-established.
    #[error("transport counter exhausted: 2^32 frames sent or received under one key")]
    CounterExhausted,
    /// The frame is shorter than the 16-byte AES-GCM tag.
    #[error("transport frame of {len} bytes is shorter than the 16-byte tag")]
    TooShort {
        /// The frame length.
        len: usize,
    },
    /// The frame authenticates under an already-used counter: a duplicate of an accepted
    /// frame. The reader is unchanged.
    #[error("replayed transport frame: it was already accepted as frame {counter}")]
    Replayed {
        /// The counter under which it was first accepted.
        counter: u32,
    },
    /// The frame does not authenticate under the expected counter (nor any recent one): it was
    /// altered or does not belong to this session. The reader is unchanged.
    #[error("transport frame {counter} failed authentication")]
    Tampered {
        /// The counter the frame was expected to use.
        counter: u32,
    },
    /// The plaintext exceeds AES-GCM's per-message limit (2^36 − 32 bytes).
    #[error("plaintext of {len} bytes exceeds the AES-GCM message limit")]
    PayloadTooLarge {
        /// The plaintext length.
        len: usize,
    },
}

/// The sending half of a transport.
pub struct TransportWriter {
    cipher: Aes256Gcm,
    /// The counter the next frame uses; `COUNTER_LIMIT` once exhausted.
    next: u64,
}

/// The receiving half of a transport.
pub struct TransportReader {
    cipher: Aes256Gcm,
    /// The counter the next frame must use; `COUNTER_LIMIT` once exhausted.
    next: u64,
}

/// Both directions of an established Noise session. Produced only by a completed handshake
/// ([`crate::noise::client`], [`crate::noise::server`]).
pub struct Transport {
    writer: TransportWriter,
    reader: TransportReader,
}

impl Transport {
    /// Builds a transport from the two split keys; wipes the key copies it was given.
    pub(crate) fn new(mut write_key: [u8; 32], mut read_key: [u8; 32]) -> Self {
        let t = Self {
            writer: TransportWriter {
                cipher: cipher(&write_key),
                next: 0,
            },
            reader: TransportReader {
                cipher: cipher(&read_key),
                next: 0,
            },
        };
        write_key.zeroize();
        read_key.zeroize();
        t
    }

    /// Encrypts one outgoing payload; see [`TransportWriter::seal`].
    pub fn seal(&mut self, plaintext: &[u8]) -> Result<Vec<u8>, TransportError> {
        self.writer.seal(plaintext)
    }

    /// Encrypts `buf` in place, appending the tag; see [`TransportWriter::seal_in_place`].
    pub fn seal_in_place(&mut self, buf: &mut Vec<u8>) -> Result<(), TransportError> {
        self.writer.seal_in_place(buf)
    }

    /// Decrypts one incoming frame; see [`TransportReader::open`].
    pub fn open(&mut self, ciphertext: &[u8]) -> Result<Vec<u8>, TransportError> {
        self.reader.open(ciphertext)
    }

    /// Decrypts `buf` in place, removing the tag; see [`TransportReader::open_in_place`].
    pub fn open_in_place(&mut self, buf: &mut Vec<u8>) -> Result<(), TransportError> {
        self.reader.open_in_place(buf)
    }

    /// Separates the directions, e.g. for a reader task and a writer task.
    pub fn into_split(self) -> (TransportWriter, TransportReader) {
        (self.writer, self.reader)
    }

    /// Joins halves split from the same transport.
    pub fn from_split(writer: TransportWriter, reader: TransportReader) -> Self {
        Self { writer, reader }
    }

    /// The sending half.
    pub fn writer(&mut self) -> &mut TransportWriter {
        &mut self.writer
    }

    /// The receiving half.
    pub fn reader(&mut self) -> &mut TransportReader {
        &mut self.reader
    }
}

impl TransportWriter {
    /// Encrypts `plaintext` under the next write counter: `ciphertext || tag`.
    ///
    /// On error nothing changes (no counter is used).
    pub fn seal(&mut self, plaintext: &[u8]) -> Result<Vec<u8>, TransportError> {
        let mut buf = Vec::with_capacity(plaintext.len() + TAG_LEN);
        buf.extend_from_slice(plaintext);
        self.seal_in_place(&mut buf)?;
        Ok(buf)
    }

    /// Encrypts `buf` in place and appends the tag. On error `buf` and the writer are unchanged.
    pub fn seal_in_place(&mut self, buf: &mut Vec<u8>) -> Result<(), TransportError> {
        let counter = u32::try_from(self.next).map_err(|_| TransportError::CounterExhausted)?;
        let tag = self
            .cipher
            .encrypt_inout_detached(&nonce(counter), &[], buf.as_mut_slice().into())
            .map_err(|_| TransportError::PayloadTooLarge { len: buf.len() })?;
        buf.extend_from_slice(&tag);
        self.next += 1;
        Ok(())
    }

    /// The counter the next sealed frame will use (`2^32` once exhausted).
    pub fn counter(&self) -> u64 {
        self.next
    }

    #[cfg(test)]
    pub(crate) fn set_counter(&mut self, next: u64) {
        self.next = next;
    }
}

impl TransportReader {
    /// Authenticates and decrypts one frame (`ciphertext || tag`) under the next read counter.
    ///
    /// On error the reader is unchanged; see the module docs for the counter policy.
    pub fn open(&mut self, ciphertext: &[u8]) -> Result<Vec<u8>, TransportError> {
        let mut buf = ciphertext.to_vec();
        self.open_in_place(&mut buf)?;
        Ok(buf)
    }

    /// Authenticates and decrypts `buf` in place, truncating the tag.
    ///
    /// On error `buf` still holds the original frame and the reader is unchanged.
    pub fn open_in_place(&mut self, buf: &mut Vec<u8>) -> Result<(), TransportError> {
        let counter = u32::try_from(self.next).map_err(|_| TransportError::CounterExhausted)?;
        let Some(body_len) = buf.len().checked_sub(TAG_LEN) else {
            return Err(TransportError::TooShort { len: buf.len() });
        };
        let (body, tag) = buf.split_at_mut(body_len);
        let tag: Tag =
            Array::try_from(&*tag).map_err(|_| TransportError::TooShort { len: body_len })?;
        // aes-gcm verifies the tag before decrypting, so on failure `body` is untouched.
        if self
            .cipher
            .decrypt_inout_detached(&nonce(counter), &[], body.into(), &tag)
            .is_ok()
        {
            buf.truncate(body_len);
            self.next += 1;
            return Ok(());
        }
        Err(self.classify_failure(counter, body, &tag))
    }

    /// After a failure under `counter`: was it a replay of one of the last few frames?
    fn classify_failure(&self, counter: u32, body: &[u8], tag: &Tag) -> TransportError {
        let oldest = counter.saturating_sub(REPLAY_WINDOW);
        let mut scratch = body.to_vec();
        for past in (oldest..counter).rev() {
            scratch.copy_from_slice(body);
            if self
                .cipher
                .decrypt_inout_detached(&nonce(past), &[], scratch.as_mut_slice().into(), tag)
                .is_ok()
            {
                return TransportError::Replayed { counter: past };
            }
        }
        TransportError::Tampered { counter }
    }

    /// The counter the next frame must use (`2^32` once exhausted).
    pub fn counter(&self) -> u64 {
        self.next
    }

    #[cfg(test)]
    pub(crate) fn set_counter(&mut self, next: u64) {
        self.next = next;
    }
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("writer", &self.writer)
            .field("reader", &self.reader)
            .finish()
    }
}

impl std::fmt::Debug for TransportWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransportWriter")
            .field("counter", &self.next)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for TransportReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransportReader")
            .field("counter", &self.next)
            .finish_non_exhaustive()
    }
}

const _: () = assert!(COUNTER_LIMIT == u32::MAX as u64 + 1);

#[cfg(test)]
mod tests {
    use aes_gcm::aead::Aead as _;

    use super::*;

    fn pair() -> (Transport, Transport) {
        let a = [1u8; 32];
        let b = [2u8; 32];
        (Transport::new(a, b), Transport::new(b, a))
    }

    #[test]
    fn matches_plain_aes_gcm_with_counter_iv_and_empty_aad() {
        let (mut client, _) = pair();
        let reference = cipher(&[1u8; 32]);
        for i in 0..3u32 {
            let expected = reference.encrypt(&nonce(i), &b"payload"[..]).unwrap();
            assert_eq!(client.seal(b"payload").unwrap(), expected);
        }
        assert_eq!(client.writer().counter(), 3);
    }

    #[test]
    fn round_trip_and_in_place() {
        let (mut c, mut s) = pair();
        let mut buf = b"hello".to_vec();
        c.seal_in_place(&mut buf).unwrap();
        assert_eq!(buf.len(), 5 + TAG_LEN);
        s.open_in_place(&mut buf).unwrap();
        assert_eq!(buf, b"hello");
        let ct = s.seal(b"").unwrap();
        assert_eq!(c.open(&ct).unwrap(), b"");
    }

    #[test]
    fn tampering_is_detected_and_leaves_state_unchanged() {
        let (mut c, mut s) = pair();
        let ct = c.seal(b"abcdef").unwrap();
        for i in 0..ct.len() {
            let mut bad = ct.clone();
            bad[i] ^= 0x40;
            let mut inplace = bad.clone();
            assert_eq!(s.open(&bad), Err(TransportError::Tampered { counter: 0 }));
            assert_eq!(
                s.open_in_place(&mut inplace),
                Err(TransportError::Tampered { counter: 0 })
            );
            assert_eq!(inplace, bad, "buffer must keep the frame on failure");
            assert_eq!(s.reader().counter(), 0);
        }
        assert_eq!(s.open(&ct).unwrap(), b"abcdef");
    }

    #[test]
    fn replay_is_told_apart_from_tampering() {
        let (mut c, mut s) = pair();
        let frames: Vec<_> = (0..12u8).map(|i| c.seal(&[i; 3]).unwrap()).collect();
        for f in &frames[..10] {
            s.open(f).unwrap();
        }
        // Within the window: reported with the counter it was accepted under.
        assert_eq!(
            s.open(&frames[9]),
            Err(TransportError::Replayed { counter: 9 })
        );
        assert_eq!(
            s.open(&frames[2]),
            Err(TransportError::Replayed { counter: 2 })
        );
        // Older than the window: indistinguishable from garbage.
        assert_eq!(
            s.open(&frames[1]),
            Err(TransportError::Tampered { counter: 10 })
        );
        // A skipped frame (from the future) is not a replay.
        assert_eq!(
            s.open(&frames[11]),
            Err(TransportError::Tampered { counter: 10 })
        );
        // The reader did not move: the stream continues.
        assert_eq!(s.open(&frames[10]).unwrap(), [10; 3]);
        assert_eq!(s.open(&frames[11]).unwrap(), [11; 3]);
    }

    #[test]
    fn too_short_frames() {
        let (_, mut s) = pair();
        assert_eq!(
            s.open(&[0u8; 15]),
            Err(TransportError::TooShort { len: 15 })
        );
        assert_eq!(s.open(&[]), Err(TransportError::TooShort { len: 0 }));
        assert_eq!(
            s.open(&[0u8; 16]),
            Err(TransportError::Tampered { counter: 0 })
        );
    }

    #[test]
    fn counters_are_independent_per_direction() {
        let (mut c, mut s) = pair();
        for _ in 0..5 {
            let f = c.seal(b"x").unwrap();
            s.open(&f).unwrap();
        }
        let back = s.seal(b"y").unwrap();
        assert_eq!(c.open(&back).unwrap(), b"y");
        assert_eq!((c.writer().counter(), c.reader().counter()), (5, 1));
        assert_eq!((s.writer().counter(), s.reader().counter()), (1, 5));
    }

    #[test]
    fn counter_exhaustion_is_an_error_not_a_wrap() {
        let (mut c, mut s) = pair();
        c.writer().set_counter(u64::from(u32::MAX));
        s.reader().set_counter(u64::from(u32::MAX));
        let last = c.seal(b"last").unwrap();
        assert_eq!(c.seal(b"more"), Err(TransportError::CounterExhausted));
        let mut buf = b"more".to_vec();
        assert_eq!(
            c.seal_in_place(&mut buf),
            Err(TransportError::CounterExhausted)
        );
        assert_eq!(buf, b"more");
        assert_eq!(s.open(&last).unwrap(), b"last");
        assert_eq!(s.open(&last), Err(TransportError::CounterExhausted));
    }

    #[test]
    fn split_halves_work_independently() {
        let (c, mut s) = pair();
        let (mut w, r) = c.into_split();
        let f = w.seal(b"a").unwrap();
        assert_eq!(s.open(&f).unwrap(), b"a");
        let mut c = Transport::from_split(w, r);
        assert_eq!(c.writer().counter(), 1);
        assert!(format!("{c:?}").contains("counter: 1"));
    }
}
