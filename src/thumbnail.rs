//! Thumbnails: a small JPEG made from the pixels the encoder already decoded (EXIF
//! orientation applied), stored with the faces so the API and the page can show an image
//! without keeping the original (`facerec:thumb:<hash>`, docs/PROTOCOL.md).

use crate::decode::RgbPixels;
use image::codecs::jpeg::JpegEncoder;
use image::{ExtendedColorType, ImageBuffer, ImageEncoder, Rgb};

/// Long side of a thumbnail by default (`FACEREC_THUMBNAIL_PX`).
pub const DEFAULT_PX: u32 = 256;

/// JPEG quality of thumbnails: about 10-20 kB at 256 px for a photo.
pub const QUALITY: u8 = 80;

/// Whether and how large thumbnails are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThumbnailSettings {
    /// Longest side in pixels; 0 turns thumbnails off. Smaller images keep their size
    /// (never upscaled).
    pub max_px: u32,
}

impl Default for ThumbnailSettings {
    fn default() -> Self {
        Self { max_px: DEFAULT_PX }
    }
}

impl ThumbnailSettings {
    /// No thumbnails.
    pub const OFF: Self = Self { max_px: 0 };

    /// Whether thumbnails are made at all.
    pub fn enabled(&self) -> bool {
        self.max_px > 0
    }
}

/// Size of the thumbnail of a `width` x `height` image: the long side at most `max_px`,
/// the aspect ratio kept, never larger than the image, never 0.
pub fn fitted(width: u32, height: u32, max_px: u32) -> (u32, u32) {
    let long = width.max(height);
    if long <= max_px || long == 0 {
        return (width.max(1), height.max(1));
    }
    let scale = |side: u32| ((u64::from(side) * u64::from(max_px) + u64::from(long) / 2) / u64::from(long)).max(1);
    (scale(width) as u32, scale(height) as u32)
}

/// A JPEG thumbnail of `pixels`, or `None` when turned off (or the pixel buffer does not
/// hold `width * height` RGB pixels, which `decode` never returns).
pub fn make(pixels: &RgbPixels, settings: ThumbnailSettings) -> Option<Vec<u8>> {
    if !settings.enabled() {
        return None;
    }
    let source: ImageBuffer<Rgb<u8>, &[u8]> = ImageBuffer::from_raw(pixels.width, pixels.height, &pixels.data[..])?;
    let (w, h) = fitted(pixels.width, pixels.height, settings.max_px);
    // Area averaging with integer arithmetic: fast on a 12 MP photo and sharp enough.
    let small = if (w, h) == (pixels.width, pixels.height) {
        ImageBuffer::from_raw(w, h, pixels.data.clone())?
    } else {
        image::imageops::thumbnail(&source, w, h)
    };
    let mut out = Vec::with_capacity(16 << 10);
    JpegEncoder::new_with_quality(&mut out, QUALITY).write_image(small.as_raw(), w, h, ExtendedColorType::Rgb8).ok()?;
    Some(out)
}

/// JPEG quality of the smaller copies [`shrink`] makes for cards and lists: a card shows
/// them at 100-200 px, where 70 looks the same as 80 and is about a fifth smaller.
pub const SMALL_QUALITY: u8 = 70;

/// Largest side a stored thumbnail may have for [`shrink`] to decode it (the stored ones
/// are `FACEREC_THUMBNAIL_PX`, 256 by default; db 0 is shared, so anything else is refused).
pub const MAX_STORED_PX: u32 = 4096;

/// A smaller copy of a stored thumbnail, long side at most `max_px`, for the page's cards
/// and lists (a 256 px thumbnail in a 150 px card is two and a half times the bytes).
/// `None` when it is already that small (send it as it is) or is not a JPEG within
/// [`MAX_STORED_PX`].
pub fn shrink(jpeg: &[u8], max_px: u32) -> Option<Vec<u8>> {
    let mut reader = image::ImageReader::with_format(std::io::Cursor::new(jpeg), image::ImageFormat::Jpeg);
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_STORED_PX);
    limits.max_image_height = Some(MAX_STORED_PX);
    reader.limits(limits);
    let stored = reader.decode().ok()?.into_rgb8();
    let (w, h) = fitted(stored.width(), stored.height(), max_px.max(1));
    if (w, h) == stored.dimensions() {
        return None;
    }
    let small = image::imageops::thumbnail(&stored, w, h);
    let mut out = Vec::with_capacity(8 << 10);
    JpegEncoder::new_with_quality(&mut out, SMALL_QUALITY)
        .write_image(small.as_raw(), w, h, ExtendedColorType::Rgb8)
        .ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pixels(width: u32, height: u32) -> RgbPixels {
        let data = (0..width * height).flat_map(|i| [(i % 251) as u8, (i % 13) as u8 * 19, 128]).collect();
        RgbPixels { width, height, data }
    }

    fn size_of_jpeg(bytes: &[u8]) -> (u32, u32) {
        let img = image::load_from_memory_with_format(bytes, image::ImageFormat::Jpeg).expect("a JPEG");
        (img.width(), img.height())
    }

    #[test]
    fn the_long_side_is_fitted_and_the_aspect_kept() {
        assert_eq!(fitted(910, 1137, 256), (205, 256));
        assert_eq!(fitted(4000, 3000, 256), (256, 192));
        assert_eq!(fitted(5000, 10, 256), (256, 1));
        // Never upscaled.
        assert_eq!(fitted(100, 50, 256), (100, 50));
    }

    #[test]
    fn makes_a_jpeg_within_the_size_and_never_upscales() {
        let big = make(&pixels(910, 1137), ThumbnailSettings::default()).unwrap();
        assert_eq!(&big[..3], b"\xff\xd8\xff");
        assert_eq!(size_of_jpeg(&big), (205, 256));
        let small = make(&pixels(40, 30), ThumbnailSettings::default()).unwrap();
        assert_eq!(size_of_jpeg(&small), (40, 30));
        let tiny = make(&pixels(910, 1137), ThumbnailSettings { max_px: 64 }).unwrap();
        assert_eq!(size_of_jpeg(&tiny), (51, 64));
    }

    #[test]
    fn a_stored_thumbnail_shrinks_to_a_smaller_jpeg_and_is_never_enlarged() {
        let stored = make(&pixels(910, 1137), ThumbnailSettings::default()).unwrap();
        let small = shrink(&stored, 128).unwrap();
        assert_eq!(size_of_jpeg(&small), (103, 128));
        assert!(small.len() < stored.len() / 2, "{} bytes of {}", small.len(), stored.len());
        assert_eq!(shrink(&stored, 256), None, "already that size");
        assert_eq!(shrink(&stored, 1024), None, "never enlarged");
        assert_eq!(shrink(b"not a jpeg", 64), None);
    }

    #[test]
    fn zero_turns_it_off() {
        assert_eq!(make(&pixels(300, 300), ThumbnailSettings::OFF), None);
    }
}
