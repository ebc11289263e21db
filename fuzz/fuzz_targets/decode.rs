//! Any bytes as an image file: `decode` returns pixels or an error, never panics, never
//! allocates past its limits, and pixels always match the reported size.
#![no_main]

use facerec::decode::{DecodeLimits, decode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = DecodeLimits { max_bytes: 1 << 20, max_pixels: 4_000_000, apply_exif_orientation: true };
    if let Ok(pixels) = decode(data, &limits) {
        assert_eq!(pixels.data.len(), pixels.width as usize * pixels.height as usize * 3);
        assert!(u64::from(pixels.width) * u64::from(pixels.height) <= limits.max_pixels);
    }
});
