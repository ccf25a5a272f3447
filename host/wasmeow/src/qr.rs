//! QR codes for pairing: the string a session shows while unpaired, rendered as a PNG image (for
//! the admin page and `qr.png`) and as terminal text (for the CLI and `GET …/qr`).
//!
//! Contract: both renderers encode exactly the given string (byte mode, error-correction level
//! L as WhatsApp's own pairing QR, the smallest version that fits) with the standard 4-module
//! quiet zone, so any QR reader decodes the input back. A string too long for any QR version is
//! a [`QrError`] ([`qr_png`], [`try_qr_terminal`]) or an explanatory line instead of a code
//! ([`qr_terminal`]), never a panic. The terminal form packs two module rows into one line with
//! half-block characters and draws *light* modules as blocks, quiet zone included, so it scans
//! on dark and light terminal themes alike (the `qrencode -t UTF8` convention).

use qrcode::{Color, EcLevel, QrCode};

/// The error-correction level of every code drawn here.
pub const EC_LEVEL: EcLevel = EcLevel::L;

/// Pixels per module in [`qr_png`].
pub const PNG_MODULE_PX: u32 = 8;
/// Light modules around the code on every side (the QR specification's minimum).
pub const QUIET_ZONE: usize = 4;

/// Why a QR code could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QrError {
    /// The string does not fit in any QR version at [`EC_LEVEL`].
    #[error("cannot encode {len} bytes as a QR code: {reason}")]
    Encode {
        /// Length of the input in bytes.
        len: usize,
        /// The encoder's explanation.
        reason: String,
    },
    /// The PNG encoder failed (it writes to memory, so this means a bug).
    #[error("PNG encoding failed: {0}")]
    Png(String),
}

/// A QR code as a square matrix of modules, quiet zone included; `true` is dark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QrMatrix {
    /// Modules per side, quiet zone included.
    pub size: usize,
    /// Row-major, `size * size` entries.
    pub dark: Vec<bool>,
}

impl QrMatrix {
    /// Encodes `code` (byte mode, [`EC_LEVEL`]) and adds the quiet zone.
    pub fn encode(code: &str) -> Result<Self, QrError> {
        let qr = QrCode::with_error_correction_level(code.as_bytes(), EC_LEVEL).map_err(|e| {
            QrError::Encode {
                len: code.len(),
                reason: e.to_string(),
            }
        })?;
        let inner = qr.width();
        let colors = qr.to_colors();
        let size = inner + 2 * QUIET_ZONE;
        let mut dark = vec![false; size * size];
        for y in 0..inner {
            for x in 0..inner {
                dark[(y + QUIET_ZONE) * size + x + QUIET_ZONE] =
                    colors[y * inner + x] == Color::Dark;
            }
        }
        Ok(Self { size, dark })
    }

    /// Whether the module at column `x`, row `y` is dark (outside the matrix: light).
    pub fn is_dark(&self, x: usize, y: usize) -> bool {
        x < self.size && y < self.size && self.dark[y * self.size + x]
    }
}

/// Renders `code` as an 8-bit greyscale PNG, [`PNG_MODULE_PX`] pixels per module, black on white.
pub fn qr_png(code: &str) -> Result<Vec<u8>, QrError> {
    let m = QrMatrix::encode(code)?;
    let scale = PNG_MODULE_PX as usize;
    let side = m.size * scale;
    let mut pixels = vec![255u8; side * side];
    for y in 0..side {
        for x in 0..side {
            if m.is_dark(x / scale, y / scale) {
                pixels[y * side + x] = 0;
            }
        }
    }
    let side = u32::try_from(side).map_err(|_| QrError::Png("image too large".into()))?;
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, side, side);
    enc.set_color(png::ColorType::Grayscale);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc
        .write_header()
        .map_err(|e| QrError::Png(e.to_string()))?;
    writer
        .write_image_data(&pixels)
        .map_err(|e| QrError::Png(e.to_string()))?;
    writer.finish().map_err(|e| QrError::Png(e.to_string()))?;
    Ok(out)
}

/// Renders `code` as terminal text (see [`try_qr_terminal`]); a string that cannot be encoded
/// yields one explanatory line instead.
pub fn qr_terminal(code: &str) -> String {
    try_qr_terminal(code).unwrap_or_else(|e| format!("(this QR string cannot be drawn: {e})\n"))
}

/// Renders `code` as terminal text: one line per two module rows, light modules drawn with
/// `█`, `▀` and `▄`, dark ones as spaces; lines end with `\n`.
pub fn try_qr_terminal(code: &str) -> Result<String, QrError> {
    let m = QrMatrix::encode(code)?;
    let mut out = String::with_capacity(m.size.div_ceil(2) * (m.size * 3 + 1));
    for y in (0..m.size).step_by(2) {
        for x in 0..m.size {
            // Rows past the bottom edge count as light, like the quiet zone.
            let top = !m.is_dark(x, y);
            let bottom = y + 1 >= m.size || !m.is_dark(x, y + 1);
            out.push(match (top, bottom) {
                (true, true) => '█',
                (true, false) => '▀',
                (false, true) => '▄',
                (false, false) => ' ',
            });
        }
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_long_input_is_an_error_not_a_panic() {
        let long = "x".repeat(5000);
        assert!(matches!(
            qr_png(&long),
            Err(QrError::Encode { len: 5000, .. })
        ));
        assert!(matches!(
            try_qr_terminal(&long),
            Err(QrError::Encode { .. })
        ));
        assert!(qr_terminal(&long).starts_with("(this QR string cannot be drawn"));
    }

    #[test]
    fn terminal_lines_cover_the_matrix() {
        let m = QrMatrix::encode("hello").unwrap();
        let text = qr_terminal("hello");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), m.size.div_ceil(2));
        assert!(lines.iter().all(|l| l.chars().count() == m.size));
        // The quiet zone is light: the first line is all full blocks.
        assert!(lines[0].chars().all(|c| c == '█'));
    }
}
