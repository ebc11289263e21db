//! Image bytes to RGB pixels, with limits checked before any pixel buffer is allocated.
//!
//! JPEG, PNG (8/16-bit, gray, alpha), GIF (first frame), BMP and WebP. EXIF orientation is
//! applied unless turned off. Alpha is dropped, not composited, as PIL's `convert("RGB")`
//! (and so face_recognition) does. With the `dlib` feature, JPEG pixels come from the
//! system's libjpeg-turbo (see `libjpeg.rs`), so they equal PIL's bit for bit.

mod gif;
#[cfg(feature = "dlib")]
mod libjpeg;

use crate::ports::EncodeError;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader};
use std::io::Cursor;

/// Limits that keep one image from exhausting memory or time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest encoded file, in bytes.
    pub max_bytes: usize,
    /// Largest image, in pixels (width x height), checked from the header.
    pub max_pixels: u64,
    /// Apply the EXIF orientation tag (face_recognition does not; photos from phones
    /// need it for upright faces).
    pub apply_exif_orientation: bool,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self { max_bytes: 48 << 20, max_pixels: 40_000_000, apply_exif_orientation: true }
    }
}

/// Decoded pixels: `width * height * 3` bytes, row-major RGB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbPixels {
    /// Columns.
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// RGB bytes.
    pub data: Vec<u8>,
}

const FORMATS: &[ImageFormat] =
    &[ImageFormat::Jpeg, ImageFormat::Png, ImageFormat::Gif, ImageFormat::Bmp, ImageFormat::WebP];

/// Decodes an image file.
///
/// # Errors
/// [`EncodeError::OverLimit`] for too many bytes or pixels (checked before decoding), and
/// [`EncodeError::NotAnImage`] for anything that is not a complete image of a supported
/// format.
pub fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<RgbPixels, EncodeError> {
    if bytes.len() > limits.max_bytes {
        return Err(EncodeError::OverLimit(format!(
            "image file is {} bytes, the limit is {}",
            bytes.len(),
            limits.max_bytes
        )));
    }
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| EncodeError::NotAnImage(e.to_string()))?;
    let format = reader
        .format()
        .filter(|f| FORMATS.contains(f))
        .ok_or_else(|| EncodeError::NotAnImage(unknown_format(bytes)))?;
    let mut reader = reader;
    let mut image_limits = image::Limits::default();
    // Room for the decoded pixels plus the decoder's own buffers; the pixel check below
    // gives the clear error, this one stops decoders that allocate before reporting size.
    image_limits.max_alloc = Some(limits.max_pixels.saturating_mul(8).max(64 << 20));
    reader.limits(image_limits);
    let mut decoder = reader.into_decoder().map_err(|e| not_an_image(format, e))?;
    let (width, height) = decoder.dimensions();
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_pixels {
        return Err(EncodeError::OverLimit(format!(
            "image is {width}x{height} = {pixels} pixels, the limit is {}",
            limits.max_pixels
        )));
    }
    if let Some(frame) = largest_gif_frame(format, bytes).filter(|&frame| frame > limits.max_pixels) {
        return Err(EncodeError::OverLimit(format!(
            "GIF has a frame of {frame} pixels (its screen is {width}x{height}), the limit is {}",
            limits.max_pixels
        )));
    }
    if pixels == 0 {
        return Err(EncodeError::NotAnImage(format!("{format:?} image has no pixels")));
    }
    let orientation = if limits.apply_exif_orientation { decoder.orientation().ok() } else { None };
    let mut image = match pixels_from_libjpeg(format, bytes, width, height)? {
        Some(image) => image,
        None => DynamicImage::from_decoder(decoder).map_err(|e| not_an_image(format, e))?,
    };
    if let Some(orientation) = orientation {
        image.apply_orientation(orientation);
    }
    let rgb = image.into_rgb8();
    Ok(RgbPixels { width: rgb.width(), height: rgb.height(), data: rgb.into_raw() })
}

/// Width x height read from the header alone (nothing decoded); `None` when the bytes
/// are not an image this module reads.
pub fn header_pixels(bytes: &[u8]) -> Option<u64> {
    let reader = ImageReader::new(Cursor::new(bytes)).with_guessed_format().ok()?;
    let format = reader.format().filter(|f| FORMATS.contains(f))?;
    let (width, height) = reader.into_dimensions().ok()?;
    let pixels = u64::from(width) * u64::from(height);
    Some(largest_gif_frame(format, bytes).map_or(pixels, |frame| frame.max(pixels)))
}

/// For a GIF, the pixels of its largest frame or screen: the decoder allocates the frame
/// whole, and the header's size is only the screen's.
fn largest_gif_frame(format: ImageFormat, bytes: &[u8]) -> Option<u64> {
    if format == ImageFormat::Gif { gif::largest_pixels(bytes) } else { None }
}

/// JPEG pixels from libjpeg-turbo, when built with it; `None` means "use the image crate".
#[cfg(feature = "dlib")]
fn pixels_from_libjpeg(
    format: ImageFormat,
    bytes: &[u8],
    width: u32,
    height: u32,
) -> Result<Option<DynamicImage>, EncodeError> {
    if format != ImageFormat::Jpeg {
        return Ok(None);
    }
    match libjpeg::decode_rgb(bytes, width, height) {
        Ok(data) => Ok(image::RgbImage::from_raw(width, height, data).map(DynamicImage::ImageRgb8)),
        Err(libjpeg::JpegError::Unsupported) => Ok(None),
        Err(libjpeg::JpegError::Invalid(reason)) => Err(EncodeError::NotAnImage(format!("Jpeg: {reason}"))),
    }
}

#[cfg(not(feature = "dlib"))]
fn pixels_from_libjpeg(_: ImageFormat, _: &[u8], _: u32, _: u32) -> Result<Option<DynamicImage>, EncodeError> {
    Ok(None)
}

fn not_an_image(format: ImageFormat, e: image::ImageError) -> EncodeError {
    EncodeError::NotAnImage(format!("{format:?}: {e}"))
}

fn unknown_format(bytes: &[u8]) -> String {
    let head: Vec<String> = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("unknown format (first bytes {}); JPEG, PNG, GIF, BMP and WebP are supported", head.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageEncoder, Rgb, RgbImage, Rgba, RgbaImage};

    fn png(image: &DynamicImage) -> Vec<u8> {
        let mut out = Vec::new();
        image.write_to(&mut Cursor::new(&mut out), ImageFormat::Png).unwrap();
        out
    }

    #[test]
    fn alpha_is_dropped_not_composited() {
        let img = RgbaImage::from_pixel(3, 2, Rgba([10, 20, 30, 0]));
        let px = decode(&png(&DynamicImage::ImageRgba8(img)), &DecodeLimits::default()).unwrap();
        assert_eq!((px.width, px.height), (3, 2));
        assert_eq!(&px.data[..3], &[10, 20, 30]);
    }

    #[test]
    fn sixteen_bit_and_gray_become_rgb8() {
        let gray = DynamicImage::ImageLuma16(image::ImageBuffer::from_pixel(2, 2, image::Luma([65535u16])));
        let px = decode(&png(&gray), &DecodeLimits::default()).unwrap();
        assert_eq!(px.data, vec![255; 12]);
    }

    #[test]
    fn pixel_limit_is_checked_from_the_header() {
        // A PNG header claiming 60000x60000: rejected before any allocation.
        let mut bytes = Vec::new();
        image::codecs::png::PngEncoder::new(&mut bytes)
            .write_image(&[0u8; 3], 1, 1, image::ExtendedColorType::Rgb8)
            .unwrap();
        // IHDR width/height live at bytes 16..24, its CRC at 29..33.
        bytes[16..20].copy_from_slice(&60000u32.to_be_bytes());
        bytes[20..24].copy_from_slice(&60000u32.to_be_bytes());
        let crc = crc32fast::hash(&bytes[12..29]);
        bytes[29..33].copy_from_slice(&crc.to_be_bytes());
        let err = decode(&bytes, &DecodeLimits::default()).unwrap_err();
        assert!(matches!(err, EncodeError::OverLimit(_)), "{err}");
        assert_eq!(header_pixels(&bytes), Some(3_600_000_000));
        assert_eq!(header_pixels(b"hello world"), None);
        let img = DynamicImage::ImageRgb8(RgbImage::from_pixel(100, 100, Rgb([1, 2, 3])));
        let limits = DecodeLimits { max_pixels: 9_999, ..DecodeLimits::default() };
        assert!(matches!(decode(&png(&img), &limits), Err(EncodeError::OverLimit(_))));
    }

    #[test]
    fn garbage_and_truncated_files_are_not_images() {
        assert!(matches!(decode(b"hello world", &DecodeLimits::default()), Err(EncodeError::NotAnImage(_))));
        let img = DynamicImage::ImageRgb8(RgbImage::from_pixel(64, 64, Rgb([9, 9, 9])));
        let bytes = png(&img);
        assert!(matches!(decode(&bytes[..bytes.len() / 2], &DecodeLimits::default()), Err(EncodeError::NotAnImage(_))));
    }

    #[test]
    fn a_gif_frame_larger_than_its_screen_counts_with_its_own_size() {
        let frame = RgbaImage::from_pixel(200, 150, Rgba([1, 2, 3, 255]));
        let mut bytes = Vec::new();
        image::codecs::gif::GifEncoder::new(&mut bytes).encode_frame(image::Frame::new(frame)).unwrap();
        assert_eq!(header_pixels(&bytes), Some(30_000));
        // The logical screen (bytes 6..10) shrunk to 1x1: the frame is still 200x150.
        bytes[6..10].copy_from_slice(&[1, 0, 1, 0]);
        assert_eq!(header_pixels(&bytes), Some(30_000));
        let limits = DecodeLimits { max_pixels: 10_000, ..DecodeLimits::default() };
        let err = decode(&bytes, &limits).unwrap_err();
        assert!(matches!(&err, EncodeError::OverLimit(m) if m.contains("frame of 30000 pixels")), "{err}");
        // Within the limit it still decodes (to the screen's size, as before).
        let px = decode(&bytes, &DecodeLimits::default()).unwrap();
        assert_eq!((px.width, px.height), (1, 1));
        // Broken block structure: no panic, the screen's size at least.
        assert_eq!(gif::largest_pixels(&bytes[..20]), Some(1));
        assert_eq!(gif::largest_pixels(b"GIF89a"), None);
    }

    #[test]
    fn byte_limit() {
        let limits = DecodeLimits { max_bytes: 4, ..DecodeLimits::default() };
        assert!(matches!(decode(b"12345", &limits), Err(EncodeError::OverLimit(_))));
    }
}
