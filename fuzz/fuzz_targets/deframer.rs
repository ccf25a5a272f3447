//! Fuzzes `frame::Deframer` with arbitrary bytes in arbitrary chunks.
//!
//! Oracle: it never panics; whatever it yields, re-encoded with `FrameEncoder`, reproduces
//! exactly the bytes it consumed; an error is sticky; `finish` agrees with what is buffered.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wasmeow_protocol::frame::{Deframer, FrameEncoder};

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let server_side = control & 1 == 1;
    // Chunk sizes cycle through a small pattern chosen by the control byte.
    let pattern = [
        1 + (control >> 5) as usize,
        1 + ((control >> 2) & 7) as usize * 3,
        64,
    ];
    let max = if control & 2 == 2 { 300 } else { usize::MAX };

    let mut d = if server_side {
        Deframer::server()
    } else {
        Deframer::client()
    }
    .with_max_frame_len(max);
    let mut frames = Vec::new();
    let mut error = None;
    let mut fed = 0usize;
    let mut i = 0usize;
    while fed < rest.len() {
        let n = pattern[i % pattern.len()].min(rest.len() - fed);
        i += 1;
        d.push(&rest[fed..fed + n]);
        fed += n;
        loop {
            match d.next_frame() {
                Ok(Some(f)) => {
                    assert!(f.len() <= max);
                    frames.push(f);
                }
                Ok(None) => break,
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = &error {
            assert_eq!(d.next_frame().as_ref(), Err(e));
            assert_eq!(d.finish().as_ref(), Err(e));
            return;
        }
    }

    // Re-encode what was returned and compare with the consumed input.
    let mut enc = if server_side {
        match d.routing_info() {
            Some(r) => FrameEncoder::client_with_routing_info(r)
                .expect("routing info came from a u24 length"),
            None => FrameEncoder::client(),
        }
    } else {
        FrameEncoder::server()
    };
    let mut wire = Vec::new();
    for f in &frames {
        enc.encode(f, &mut wire)
            .expect("frames are within the maximum");
    }
    let consumed = rest.len() - d.buffered_len();
    if frames.is_empty() && server_side {
        // A header may have been consumed without any frame following it.
        assert!(consumed == 0 || d.routing_info().is_some() || consumed == 4);
    } else {
        assert_eq!(&wire[..], &rest[..consumed]);
    }
    assert_eq!(d.finish().is_ok(), d.buffered_len() == 0);
});
