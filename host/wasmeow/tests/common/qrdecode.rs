//! Decodes QR codes in test output with `rqrr`: from PNG bytes and from the terminal rendering.

/// Decodes a PNG (8-bit greyscale or RGB/RGBA) and returns (width, height, decoded string).
pub fn decode_png(png_bytes: &[u8]) -> (u32, u32, String) {
    let mut dec = png::Decoder::new(std::io::Cursor::new(png_bytes));
    dec.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = dec.read_info().expect("a PNG header");
    let mut buf = vec![0; reader.output_buffer_size().expect("a size")];
    let info = reader.next_frame(&mut buf).expect("PNG image data");
    let (w, h) = (info.width as usize, info.height as usize);
    let channels = info.color_type.samples();
    let grey: Vec<u8> = buf[..info.buffer_size()]
        .chunks(channels)
        .map(|px| px[0])
        .collect();
    (info.width, info.height, decode_grey(w, h, &grey))
}

/// Decodes a greyscale raster (row-major, one byte per pixel).
pub fn decode_grey(w: usize, h: usize, grey: &[u8]) -> String {
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| grey[y * w + x]);
    let grids = img.detect_grids();
    assert_eq!(grids.len(), 1, "expected exactly one QR code in the image");
    let (_meta, content) = grids[0].decode().expect("a decodable QR code");
    content
}

/// Rasterizes the half-block terminal rendering (light modules are blocks) at 4 px per
/// module and decodes it.
pub fn decode_terminal(text: &str) -> String {
    let lines: Vec<Vec<char>> = text.lines().map(|l| l.chars().collect()).collect();
    let cols = lines[0].len();
    let rows = lines.len() * 2;
    let scale = 4;
    let (w, h) = (cols * scale, rows * scale);
    let mut grey = vec![0u8; w * h];
    for (ly, line) in lines.iter().enumerate() {
        assert_eq!(line.len(), cols, "ragged terminal QR");
        for (x, c) in line.iter().enumerate() {
            let (top_light, bottom_light) = match c {
                '█' => (true, true),
                '▀' => (true, false),
                '▄' => (false, true),
                ' ' => (false, false),
                other => panic!("unexpected character {other:?} in terminal QR"),
            };
            for (half, light) in [(0, top_light), (1, bottom_light)] {
                let my = ly * 2 + half;
                for py in my * scale..(my + 1) * scale {
                    for px in x * scale..(x + 1) * scale {
                        grey[py * w + px] = if light { 255 } else { 0 };
                    }
                }
            }
        }
    }
    decode_grey(w, h, &grey)
}
