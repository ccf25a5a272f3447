//! WhatsApp's outer framing: the `WA 06 03` connection header and 3-byte length prefixes.
//!
//! Contract: [`FrameEncoder`] turns payloads into wire bytes, and [`Deframer`] turns wire
//! bytes received in arbitrary chunks (WebSocket messages) back into whole payloads. Neither
//! does IO, neither panics, and bad input is a [`FrameError`]. A frame's payload is opaque
//! here: during the handshake it is a `HandshakeMessage` protobuf, afterwards a transport
//! ciphertext (see [`crate::noise`]).
//!
//! ```text
//!   client → server, first WebSocket message:   57 41 06 03 | len (u24 BE) | payload | len | payload …
//!   every later message, and server → client:   len (u24 BE) | payload | len | payload …
//! ```
//!
//! > "Frame = 3-byte big-endian length + payload. Max frame size `1<<24` (16 MiB) on both send and
//! > the websocket read limit." — whatsmeow `socket/framesocket.go`, as summarised in
//! > `protocol-whatsmeow.md` §2.1.
//!
//! WebSocket messages and frames are independent: one message may hold several frames and a
//! frame (even its 3-byte length) may span several messages. [`Deframer::push`] therefore only
//! buffers, and [`Deframer::next_frame`] yields complete frames one at a time.
//!
//! A client whose server gave it routing info prefixes the header with
//! `"ED" 00 01 <u24 BE length> <routing info>` (Baileys `noise-handler.js`); the server side
//! accepts both forms and exposes the routing info. Only the 4-byte `WA 06 03` header is the
//! Noise prologue ([`crate::noise::PROLOGUE`]).
//!
//! Memory: the deframer never allocates according to a declared length. It stores the bytes
//! that have actually arrived, so three hostile bytes announcing a 16 MiB frame cost nothing.
//!
//! ```
//! use wasmeow_protocol::frame::{Deframer, FrameEncoder};
//!
//! let mut client = FrameEncoder::client();
//! let mut wire = Vec::new();
//! client.encode(b"hello", &mut wire).unwrap();
//! client.encode(b"", &mut wire).unwrap();
//! assert_eq!(&wire[..7], b"WA\x06\x03\x00\x00\x05");
//!
//! let mut server = Deframer::server();
//! for chunk in wire.chunks(2) {
//!     server.push(chunk);
//! }
//! assert_eq!(server.next_frame().unwrap().as_deref(), Some(&b"hello"[..]));
//! assert_eq!(server.next_frame().unwrap().as_deref(), Some(&b""[..]));
//! assert_eq!(server.next_frame().unwrap(), None);
//! server.finish().unwrap();
//! ```

/// The connection header a client sends once, before its first frame: `'W' 'A' 6 3`.
///
/// 6 is the "WA magic value" and 3 the binary-node token dictionary version.
pub const WA_CONN_HEADER: [u8; 4] = [b'W', b'A', 6, 3];

/// Length of the big-endian frame length prefix.
pub const LENGTH_PREFIX_LEN: usize = 3;

/// The largest payload a frame can carry: 16 MiB − 1, the range of the 3-byte length.
///
/// whatsmeow rejects `len >= 1 << 24` on send and sets the same WebSocket read limit; this is the
/// same bound stated inclusively.
pub const MAX_FRAME_LEN: usize = (1 << 24) - 1;

/// The routing-info prefix magic: `'E' 'D' 0 1`.
const EDGE_ROUTING_MAGIC: [u8; 4] = [b'E', b'D', 0, 1];

/// Framing failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A payload given to the encoder is longer than the 3-byte length can express.
    #[error("frame payload of {len} bytes exceeds the maximum of {MAX_FRAME_LEN}")]
    PayloadTooLarge {
        /// The payload length.
        len: usize,
    },
    /// Routing info given to the encoder is longer than its 3-byte length can express.
    #[error("routing info of {len} bytes exceeds the maximum of {MAX_FRAME_LEN}")]
    RoutingInfoTooLarge {
        /// The routing info length.
        len: usize,
    },
    /// A received frame announced a length above the deframer's limit.
    #[error("incoming frame announces {len} bytes, more than the limit of {max}")]
    FrameTooLarge {
        /// The announced length.
        len: usize,
        /// The deframer's limit.
        max: usize,
    },
    /// The first bytes from a client were neither `WA 06 03` nor an `ED 00 01` routing prefix.
    #[error("bad connection header {got:02x?}, expected 57 41 06 03")]
    BadConnectionHeader {
        /// The four bytes received.
        got: [u8; 4],
    },
    /// The stream ended in the middle of a connection header or a frame.
    #[error("stream ended inside a frame: {buffered} bytes buffered, {needed} needed")]
    Truncated {
        /// Bytes received for the incomplete unit (header, length prefix or frame).
        buffered: usize,
        /// Bytes the incomplete unit needs in total, when known.
        needed: usize,
    },
}

/// Appends `3-byte length || payload` to `out`.
///
/// This is the bare frame without any connection header; most callers want [`FrameEncoder`],
/// which adds the header to a client's first frame. `out` is unchanged on error.
pub fn encode_frame(payload: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
    let len = payload.len();
    if len > MAX_FRAME_LEN {
        return Err(FrameError::PayloadTooLarge { len });
    }
    out.reserve(LENGTH_PREFIX_LEN + len);
    out.extend_from_slice(&u24_be(len));
    out.extend_from_slice(payload);
    Ok(())
}

/// `len` as 3 big-endian bytes. Callers guarantee `len <= MAX_FRAME_LEN`.
fn u24_be(len: usize) -> [u8; 3] {
    let b = (len as u32).to_be_bytes();
    [b[1], b[2], b[3]]
}

/// Encodes outgoing frames for one connection, adding the connection header where it belongs.
#[derive(Debug, Clone)]
pub struct FrameEncoder {
    /// The intro bytes still to send before the next frame (empty once sent, or for a server).
    pending_intro: Vec<u8>,
}

impl FrameEncoder {
    /// A client's encoder: the first frame is preceded by `WA 06 03`.
    pub fn client() -> Self {
        Self {
            pending_intro: WA_CONN_HEADER.to_vec(),
        }
    }

    /// A client's encoder that sends `ED 00 01 <len> routing_info WA 06 03` before the first
    /// frame, as a client does after the server gave it edge routing info.
    pub fn client_with_routing_info(routing_info: &[u8]) -> Result<Self, FrameError> {
        let len = routing_info.len();
        if len > MAX_FRAME_LEN {
            return Err(FrameError::RoutingInfoTooLarge { len });
        }
        let mut intro = Vec::with_capacity(EDGE_ROUTING_MAGIC.len() + 3 + len + 4);
        intro.extend_from_slice(&EDGE_ROUTING_MAGIC);
        intro.extend_from_slice(&u24_be(len));
        intro.extend_from_slice(routing_info);
        intro.extend_from_slice(&WA_CONN_HEADER);
        Ok(Self {
            pending_intro: intro,
        })
    }

    /// A server's encoder: frames only, never a header.
    pub fn server() -> Self {
        Self {
            pending_intro: Vec::new(),
        }
    }

    /// Appends one frame (preceded by the connection header if this is a client's first frame)
    /// to `out`. On error neither `out` nor the encoder changes.
    pub fn encode(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
        if payload.len() > MAX_FRAME_LEN {
            return Err(FrameError::PayloadTooLarge { len: payload.len() });
        }
        out.reserve(self.pending_intro.len() + LENGTH_PREFIX_LEN + payload.len());
        out.append(&mut self.pending_intro);
        encode_frame(payload, out)
    }

    /// [`encode`](Self::encode) into a fresh buffer, e.g. one WebSocket message.
    pub fn encode_to_vec(&mut self, payload: &[u8]) -> Result<Vec<u8>, FrameError> {
        let mut out = Vec::new();
        self.encode(payload, &mut out)?;
        Ok(out)
    }

    /// Whether the connection header has gone out (always true for a server).
    pub fn header_sent(&self) -> bool {
        self.pending_intro.is_empty()
    }
}

/// What the deframer expects before the first frame.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Intro {
    /// Frames only (the client side reading what a server sends).
    None,
    /// A client's connection header, optionally with routing info (the server side).
    Expected,
    /// The header was read.
    Done,
}

/// Reassembles frames from chunks of a byte stream.
///
/// Feed every received WebSocket message to [`push`](Self::push), then call
/// [`next_frame`](Self::next_frame) until it returns `Ok(None)`. After an error the deframer
/// is unusable (every later call returns the same error): the stream is out of sync and the
/// connection must be closed.
#[derive(Debug, Clone)]
pub struct Deframer {
    /// Received bytes not yet returned; `buf[pos..]` is live.
    buf: Vec<u8>,
    pos: usize,
    intro: Intro,
    routing_info: Option<Vec<u8>>,
    max_frame_len: usize,
    failed: Option<FrameError>,
}

impl Deframer {
    /// The client side: reads a server's frames, which come without a header.
    pub fn client() -> Self {
        Self::with_intro(Intro::None)
    }

    /// The server side: the first bytes must be a client's connection header, which is
    /// checked and stripped before the first frame.
    pub fn server() -> Self {
        Self::with_intro(Intro::Expected)
    }

    fn with_intro(intro: Intro) -> Self {
        Self {
            buf: Vec::new(),
            pos: 0,
            intro,
            routing_info: None,
            max_frame_len: MAX_FRAME_LEN,
            failed: None,
        }
    }

    /// Lowers the largest accepted frame (default and upper bound: [`MAX_FRAME_LEN`]).
    pub fn with_max_frame_len(mut self, max: usize) -> Self {
        self.max_frame_len = max.min(MAX_FRAME_LEN);
        self
    }

    /// Buffers a received chunk. Never fails; problems surface from [`next_frame`](Self::next_frame).
    pub fn push(&mut self, chunk: &[u8]) {
        if self.failed.is_some() || chunk.is_empty() {
            return;
        }
        // Reclaim consumed space before growing, so a long-lived connection does not creep.
        if self.pos > 0 && (self.pos == self.buf.len() || self.pos >= self.buf.len() / 2) {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete frame's payload, `Ok(None)` if more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        match self.try_next() {
            Ok(frame) => Ok(frame),
            Err(err) => {
                self.failed = Some(err.clone());
                Err(err)
            }
        }
    }

    fn try_next(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        if self.intro == Intro::Expected && !self.read_intro()? {
            return Ok(None);
        }
        let live = &self.buf[self.pos..];
        let Some(prefix) = live.get(..LENGTH_PREFIX_LEN) else {
            return Ok(None);
        };
        let len =
            usize::from(prefix[0]) << 16 | usize::from(prefix[1]) << 8 | usize::from(prefix[2]);
        if len > self.max_frame_len {
            return Err(FrameError::FrameTooLarge {
                len,
                max: self.max_frame_len,
            });
        }
        let Some(payload) = live.get(LENGTH_PREFIX_LEN..LENGTH_PREFIX_LEN + len) else {
            return Ok(None);
        };
        let frame = payload.to_vec();
        self.pos += LENGTH_PREFIX_LEN + len;
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        Ok(Some(frame))
    }

    /// Consumes the connection header once it is complete. `Ok(false)`: need more bytes.
    fn read_intro(&mut self) -> Result<bool, FrameError> {
        let live = &self.buf[self.pos..];
        // Reject a wrong header as soon as the bytes we have disagree with both forms.
        let plain_ok = live.iter().zip(WA_CONN_HEADER).all(|(a, b)| *a == b);
        let routed_ok = live.iter().zip(EDGE_ROUTING_MAGIC).all(|(a, b)| *a == b);
        if !plain_ok && !routed_ok {
            let mut got = [0u8; 4];
            for (g, b) in got.iter_mut().zip(live) {
                *g = *b;
            }
            return Err(FrameError::BadConnectionHeader { got });
        }
        if live.len() < 4 {
            return Ok(false);
        }
        if plain_ok {
            self.pos += 4;
            self.intro = Intro::Done;
            return Ok(true);
        }
        // ED 00 01 <u24 len> <routing info> WA 06 03
        let Some(len_bytes) = live.get(4..7) else {
            return Ok(false);
        };
        let len = usize::from(len_bytes[0]) << 16
            | usize::from(len_bytes[1]) << 8
            | usize::from(len_bytes[2]);
        if len > self.max_frame_len {
            return Err(FrameError::FrameTooLarge {
                len,
                max: self.max_frame_len,
            });
        }
        let Some(header) = live.get(7 + len..7 + len + 4) else {
            return Ok(false);
        };
        if header != WA_CONN_HEADER {
            let mut got = [0u8; 4];
            got.copy_from_slice(header);
            return Err(FrameError::BadConnectionHeader { got });
        }
        self.routing_info = Some(live[7..7 + len].to_vec());
        self.pos += 7 + len + 4;
        self.intro = Intro::Done;
        Ok(true)
    }

    /// Routing info a client sent in an `ED 00 01` prefix, once the header has been read.
    pub fn routing_info(&self) -> Option<&[u8]> {
        self.routing_info.as_deref()
    }

    /// Bytes received but not yet returned as frames.
    pub fn buffered_len(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Checks that the stream ended on a frame boundary: call when the connection closes.
    ///
    /// A server-side deframer that never saw a header counts a closed, empty stream as clean.
    pub fn finish(&self) -> Result<(), FrameError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        let live = &self.buf[self.pos..];
        if live.is_empty() {
            return Ok(());
        }
        let needed = match (&self.intro, live.len()) {
            (Intro::Expected, n) if n >= 7 && live[..4] == EDGE_ROUTING_MAGIC => {
                7 + (usize::from(live[4]) << 16 | usize::from(live[5]) << 8 | usize::from(live[6]))
                    + WA_CONN_HEADER.len()
            }
            (Intro::Expected, _) => WA_CONN_HEADER.len(),
            (_, n) if n < LENGTH_PREFIX_LEN => LENGTH_PREFIX_LEN,
            _ => {
                LENGTH_PREFIX_LEN
                    + (usize::from(live[0]) << 16
                        | usize::from(live[1]) << 8
                        | usize::from(live[2]))
            }
        };
        Err(FrameError::Truncated {
            buffered: live.len(),
            needed,
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn frames_of(deframer: &mut Deframer) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(f) = deframer.next_frame().unwrap() {
            out.push(f);
        }
        out
    }

    #[test]
    fn client_header_only_on_first_frame() {
        let mut enc = FrameEncoder::client();
        assert!(!enc.header_sent());
        let first = enc.encode_to_vec(&[1, 2, 3]).unwrap();
        assert_eq!(first, [0x57, 0x41, 6, 3, 0, 0, 3, 1, 2, 3]);
        assert!(enc.header_sent());
        let second = enc.encode_to_vec(&[9]).unwrap();
        assert_eq!(second, [0, 0, 1, 9]);

        let mut server = FrameEncoder::server();
        assert!(server.header_sent());
        assert_eq!(server.encode_to_vec(&[]).unwrap(), [0, 0, 0]);
    }

    #[test]
    fn length_prefix_is_big_endian_24_bit() {
        let payload = vec![0xAB; 0x01_02_03];
        let mut out = Vec::new();
        encode_frame(&payload, &mut out).unwrap();
        assert_eq!(&out[..3], &[0x01, 0x02, 0x03]);
        assert_eq!(out.len(), 3 + 0x01_02_03);
    }

    #[test]
    fn encoder_rejects_oversized_payload_without_side_effects() {
        let payload = vec![0u8; MAX_FRAME_LEN + 1];
        let mut enc = FrameEncoder::client();
        let mut out = vec![7];
        assert_eq!(
            enc.encode(&payload, &mut out),
            Err(FrameError::PayloadTooLarge {
                len: MAX_FRAME_LEN + 1
            })
        );
        assert_eq!(out, [7]);
        assert!(!enc.header_sent(), "header must still be pending");
        // The largest legal frame goes through.
        let max = vec![0u8; MAX_FRAME_LEN];
        enc.encode(&max, &mut out).unwrap();
        assert_eq!(&out[1..8], &[0x57, 0x41, 6, 3, 0xFF, 0xFF, 0xFF]);
    }

    #[test]
    fn server_strips_header_and_reads_frames() {
        let mut d = Deframer::server();
        d.push(&[0x57, 0x41, 6, 3, 0, 0, 2, 0xAA, 0xBB, 0, 0, 0]);
        assert_eq!(frames_of(&mut d), vec![vec![0xAA, 0xBB], vec![]]);
        d.finish().unwrap();
        assert_eq!(d.routing_info(), None);
    }

    #[test]
    fn header_split_byte_by_byte() {
        let mut enc = FrameEncoder::client();
        let wire = enc.encode_to_vec(b"xyz").unwrap();
        let mut d = Deframer::server();
        for b in &wire[..wire.len() - 1] {
            d.push(&[*b]);
            assert_eq!(d.next_frame().unwrap(), None);
        }
        d.push(&wire[wire.len() - 1..]);
        assert_eq!(d.next_frame().unwrap().unwrap(), b"xyz");
    }

    #[test]
    fn server_rejects_wrong_header_early() {
        let mut d = Deframer::server();
        d.push(&[0x57, 0x42]);
        assert_eq!(
            d.next_frame(),
            Err(FrameError::BadConnectionHeader {
                got: [0x57, 0x42, 0, 0]
            })
        );
        // Sticky: the stream is out of sync.
        d.push(&[6, 3]);
        assert!(matches!(
            d.next_frame(),
            Err(FrameError::BadConnectionHeader { .. })
        ));
        assert!(d.finish().is_err());

        let mut d = Deframer::server();
        d.push(&[0x57, 0x41, 5, 3, 0, 0, 0]);
        assert_eq!(
            d.next_frame(),
            Err(FrameError::BadConnectionHeader {
                got: [0x57, 0x41, 5, 3]
            })
        );
    }

    #[test]
    fn routing_info_prefix_is_accepted_and_exposed() {
        let mut enc = FrameEncoder::client_with_routing_info(b"route").unwrap();
        let wire = enc.encode_to_vec(b"p").unwrap();
        assert_eq!(&wire[..7], &[b'E', b'D', 0, 1, 0, 0, 5]);
        let mut d = Deframer::server();
        for chunk in wire.chunks(3) {
            d.push(chunk);
        }
        assert_eq!(frames_of(&mut d), vec![b"p".to_vec()]);
        assert_eq!(d.routing_info(), Some(&b"route"[..]));

        // A routing prefix followed by anything but WA 06 03 is rejected.
        let mut bad = wire.clone();
        bad[15] = 7;
        let mut d = Deframer::server();
        d.push(&bad);
        assert_eq!(
            d.next_frame(),
            Err(FrameError::BadConnectionHeader {
                got: [b'W', b'A', 6, 7]
            })
        );
    }

    #[test]
    fn client_side_reads_frames_without_header() {
        let mut d = Deframer::client();
        d.push(&[0, 0, 1, 0x57]);
        assert_eq!(frames_of(&mut d), vec![vec![0x57]]);
    }

    #[test]
    fn oversized_length_is_rejected_before_buffering_it() {
        let mut d = Deframer::client().with_max_frame_len(1024);
        d.push(&[0, 0x04, 0x01]);
        assert_eq!(
            d.next_frame(),
            Err(FrameError::FrameTooLarge {
                len: 1025,
                max: 1024
            })
        );
        // At the limit it is fine.
        let mut d = Deframer::client().with_max_frame_len(1024);
        d.push(&[0, 0x04, 0x00]);
        assert_eq!(d.next_frame().unwrap(), None);
        assert!(d.buffered_len() < 16, "nothing was allocated for the body");
        d.push(&vec![1u8; 1024]);
        assert_eq!(d.next_frame().unwrap().unwrap().len(), 1024);
    }

    #[test]
    fn a_declared_maximum_frame_allocates_nothing_up_front() {
        let mut d = Deframer::client();
        d.push(&[0xFF, 0xFF, 0xFF]);
        assert_eq!(d.next_frame().unwrap(), None);
        assert!(d.buf.capacity() < 1024);
        assert_eq!(
            d.finish(),
            Err(FrameError::Truncated {
                buffered: 3,
                needed: 3 + MAX_FRAME_LEN
            })
        );
    }

    #[test]
    fn finish_reports_truncation_at_each_stage() {
        let mut d = Deframer::server();
        d.finish().unwrap();
        d.push(&[0x57, 0x41]);
        assert_eq!(d.next_frame().unwrap(), None);
        assert_eq!(
            d.finish(),
            Err(FrameError::Truncated {
                buffered: 2,
                needed: 4
            })
        );
        d.push(&[6, 3, 0, 0]);
        assert_eq!(d.next_frame().unwrap(), None);
        assert_eq!(
            d.finish(),
            Err(FrameError::Truncated {
                buffered: 2,
                needed: 3
            })
        );
        d.push(&[4, 1, 2]);
        assert_eq!(d.next_frame().unwrap(), None);
        assert_eq!(
            d.finish(),
            Err(FrameError::Truncated {
                buffered: 5,
                needed: 7
            })
        );
        d.push(&[3, 4]);
        assert_eq!(d.next_frame().unwrap().unwrap(), [1, 2, 3, 4]);
        d.finish().unwrap();
    }

    #[test]
    fn buffer_is_reclaimed_on_a_long_stream() {
        let mut d = Deframer::client();
        let mut wire = Vec::new();
        for i in 0..10_000u32 {
            encode_frame(&i.to_be_bytes(), &mut wire).unwrap();
        }
        let mut n = 0u32;
        // Chunks straddle frames, so a partial frame is always buffered.
        for chunk in wire.chunks(5) {
            d.push(chunk);
            while let Some(f) = d.next_frame().unwrap() {
                assert_eq!(f, n.to_be_bytes());
                n += 1;
            }
            assert!(d.buf.len() < 64, "buffer grew to {}", d.buf.len());
        }
        assert_eq!(n, 10_000);
        d.finish().unwrap();
    }

    fn arb_frames() -> impl Strategy<Value = Vec<Vec<u8>>> {
        prop::collection::vec(
            prop_oneof![
                6 => prop::collection::vec(any::<u8>(), 0..8),
                4 => prop::collection::vec(any::<u8>(), 0..600),
                1 => prop::collection::vec(any::<u8>(), 60_000..70_000),
            ],
            0..12,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// Any chunking of a client's stream yields the frames that were encoded, in order.
        #[test]
        fn random_chunking_preserves_frames(
            frames in arb_frames(),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..40),
        ) {
            let mut enc = FrameEncoder::client();
            let mut wire = Vec::new();
            for f in &frames {
                enc.encode(f, &mut wire).unwrap();
            }
            let mut points: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
            points.push(0);
            points.push(wire.len());
            points.sort_unstable();
            points.dedup();
            let mut d = Deframer::server();
            let mut got = Vec::new();
            for pair in points.windows(2) {
                d.push(&wire[pair[0]..pair[1]]);
                while let Some(f) = d.next_frame().unwrap() {
                    got.push(f);
                }
            }
            prop_assert_eq!(&got, &frames);
            prop_assert_eq!(d.finish(), Ok(()));
        }

        /// Arbitrary bytes never panic, and a rejected stream stays rejected.
        #[test]
        fn garbage_never_panics(chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..16)) {
            let mut d = Deframer::server().with_max_frame_len(100);
            let mut failed = None;
            for c in &chunks {
                d.push(c);
                loop {
                    match d.next_frame() {
                        Ok(Some(f)) => prop_assert!(f.len() <= 100),
                        Ok(None) => break,
                        Err(e) => { failed = Some(e); break; }
                    }
                }
                if let Some(e) = &failed {
                    prop_assert_eq!(d.next_frame(), Err(e.clone()));
                }
            }
            let _ = d.finish();
        }
    }
}
