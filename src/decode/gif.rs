//! GIF frame sizes read from the file's block structure, without decoding any pixels.
//!
//! A GIF's header gives the *logical screen*; each frame has its own size and may be far
//! larger (a 1x1 screen can hold a 16000x16000 frame, which the decoder allocates whole).
//! Limits and the memory budget must see the frame.

/// Width x height of the largest frame, or of the logical screen if larger; `None` when
/// the bytes do not start like a GIF. A truncated or broken file gives what was read
/// before the break (the decoder then refuses it).
pub(super) fn largest_pixels(bytes: &[u8]) -> Option<u64> {
    if bytes.len() < 13 || !(bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a")) {
        return None;
    }
    let screen = u64::from(u16_at(bytes, 6)?) * u64::from(u16_at(bytes, 8)?);
    let mut largest = screen;
    let mut pos = 13 + color_table_len(bytes[10]);
    // Each block is walked once: the cost is one pass over the file's length bytes.
    while let Some(&introducer) = bytes.get(pos) {
        match introducer {
            // Extension: label, then data sub-blocks.
            0x21 => pos = skip_sub_blocks(bytes, pos + 2),
            // Image descriptor: left, top, width, height, flags; local colour table; LZW
            // minimum code size; data sub-blocks.
            0x2C => {
                let (Some(width), Some(height), Some(&flags)) =
                    (u16_at(bytes, pos + 5), u16_at(bytes, pos + 7), bytes.get(pos + 9))
                else {
                    break;
                };
                largest = largest.max(u64::from(width) * u64::from(height));
                pos = skip_sub_blocks(bytes, pos + 10 + color_table_len(flags) + 1);
            }
            // The trailer, or something that is not a block: nothing more to read.
            _ => break,
        }
    }
    Some(largest)
}

/// Bytes of the colour table announced by a screen or image descriptor's flags.
fn color_table_len(flags: u8) -> usize {
    if flags & 0x80 == 0 { 0 } else { 3 << ((flags & 7) + 1) }
}

/// The position after the sub-blocks starting at `pos` (each a length byte and that many
/// bytes, ended by a zero length), or the end of the file.
fn skip_sub_blocks(bytes: &[u8], mut pos: usize) -> usize {
    while let Some(&len) = bytes.get(pos) {
        pos += 1 + usize::from(len);
        if len == 0 {
            return pos;
        }
    }
    bytes.len()
}

fn u16_at(bytes: &[u8], pos: usize) -> Option<u16> {
    Some(u16::from_le_bytes([*bytes.get(pos)?, *bytes.get(pos + 1)?]))
}
