//! WhatsApp's random padding of `<enc v="2">` plaintexts (the serialized
//! `waE2E.Message` is padded before Signal encryption, independently of the
//! AES-CBC PKCS#7 layer).
//!
//! A sender appends `n` bytes each equal to `n`, with `n` random in `1..=16`
//! (WhatsApp Web and Baileys: `(r & 0x0F) + 1`; whatsmeow draws `1..=15`). A
//! receiver removes them strictly: the last byte `n` must be in `1..=16`, at
//! most the length, and all last `n` bytes must equal `n`.

use rand_core::CryptoRng;

use super::SignalError;

/// The largest pad we send or accept.
pub const MAX_PAD: usize = 16;

/// Appends 1..=16 random padding bytes, each equal to the pad length.
pub fn pad<R: CryptoRng + ?Sized>(plaintext: &[u8], rng: &mut R) -> Vec<u8> {
    let mut r = [0u8; 1];
    rng.fill_bytes(&mut r);
    let n = (r[0] & 0x0F) + 1;
    let mut out = Vec::with_capacity(plaintext.len() + n as usize);
    out.extend_from_slice(plaintext);
    out.resize(plaintext.len() + n as usize, n);
    out
}

/// Strips the padding, or fails with [`SignalError::InvalidPadding`].
pub fn unpad(padded: &[u8]) -> Result<&[u8], SignalError> {
    let &n = padded.last().ok_or(SignalError::InvalidPadding)?;
    let len = n as usize;
    if len == 0 || len > MAX_PAD || len > padded.len() {
        return Err(SignalError::InvalidPadding);
    }
    let (body, pad) = padded.split_at(padded.len() - len);
    if pad.iter().any(|&b| b != n) {
        return Err(SignalError::InvalidPadding);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng as _;

    use super::*;

    #[test]
    fn pad_round_trips_with_every_length() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let mut seen = [false; MAX_PAD + 1];
        for i in 0..2000 {
            let msg = vec![(i % 251) as u8; i % 40];
            let padded = pad(&msg, &mut rng);
            let n = padded.len() - msg.len();
            assert!((1..=MAX_PAD).contains(&n));
            seen[n] = true;
            assert_eq!(unpad(&padded).unwrap(), &msg[..]);
        }
        assert!(
            seen[1..].iter().all(|&s| s),
            "every pad length 1..=16 occurs"
        );
    }

    #[test]
    fn unpad_is_strict() {
        assert_eq!(unpad(&[]), Err(SignalError::InvalidPadding));
        assert_eq!(unpad(&[0]), Err(SignalError::InvalidPadding));
        assert_eq!(unpad(&[1, 2, 0]), Err(SignalError::InvalidPadding));
        assert_eq!(unpad(&[3, 3]), Err(SignalError::InvalidPadding));
        assert_eq!(unpad(&[9, 2, 3, 3]), Err(SignalError::InvalidPadding));
        assert_eq!(unpad(&[17; 40]), Err(SignalError::InvalidPadding));
        assert_eq!(unpad(&[16; 16]).unwrap(), &[] as &[u8]);
        assert_eq!(unpad(&[7, 1]).unwrap(), &[7]);
        assert_eq!(unpad(&[7, 2, 2]).unwrap(), &[7]);
    }
}
