//! Fuzz target for the WABinary decoder (`wasmeow_protocol::binary`).
//!
//! Contract checked on every input: decoding never panics or allocates without bound (also for
//! zlib-flagged frames, through `decode`); whatever decodes re-encodes, the re-encoding decodes to
//! the same node, and encoding that again gives the same bytes (see `binary::fuzzing::node_decode`).
//! Seeds in `fuzz/corpus/node_decode/` are frames from the Baileys cross-check corpus.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    wasmeow_protocol::binary::fuzzing::node_decode(data);
});
