//! The C++ shim: what the `dlib-face-recognition` crate does not expose.
//!
//! Python's `face_recognition` calls dlib's Python bindings, which upsample the image with
//! `pyramid_up` before running the HOG or CNN detector and map the rectangles back with
//! `pyramid_down<2>::rect_down`. The crate's detectors cannot upsample, so this file
//! reproduces those binding functions line for line (dlib/tools/python/src/
//! simple_object_detector_py.h `run_detector_with_upscale1` and cnn_face_detector.cpp
//! `detect`). The HOG scan itself runs through `fast_hog.hpp`, which gives dlib's features,
//! scores and boxes bit for bit in less time; dlib's own scan stays callable for the tests
//! that prove it. Every C++ exception is caught here: unwinding across the FFI boundary is
//! undefined behaviour.

use dlib_face_recognition::{ImageMatrix, Rectangle};

cpp! {{
    #include <dlib/image_processing/frontal_face_detector.h>
    #include <dlib/image_transforms.h>
    #include <dlib/dnn.h>
    #include <cstring>
    #include "fast_hog.hpp"
    #include "fast_hog_check.hpp"

    namespace facerec_shim {
        using namespace dlib;

        // The mmod CNN face detector, exactly as dlib's Python binding declares it.
        template <long num_filters, typename SUBNET> using con5d = con<num_filters,5,5,2,2,SUBNET>;
        template <long num_filters, typename SUBNET> using con5  = con<num_filters,5,5,1,1,SUBNET>;
        template <typename SUBNET> using downsampler = relu<affine<con5d<32, relu<affine<con5d<32, relu<affine<con5d<16,SUBNET>>>>>>>>>;
        template <typename SUBNET> using rcon5 = relu<affine<con5<45,SUBNET>>>;
        using cnn_net = loss_mmod<con<1,9,9,1,1,rcon5<rcon5<rcon5<downsampler<input_rgb_image_pyramid<pyramid_down<6>>>>>>>>;

        // Python's `detector(img, upsample)`: upsample, scan, map the boxes back. `fast`
        // picks fast_hog.hpp's scan; otherwise dlib's own (the reference in the tests).
        inline std::vector<rect_detection> hog_detect(
            frontal_face_detector& detector,
            const matrix<rgb_pixel>& img,
            unsigned int upsample,
            bool fast
        ) {
            pyramid_down<2> pyr;
            std::vector<rect_detection> dets;
            array2d<rgb_pixel> temp;
            if (upsample == 0) {
                if (fast)
                    facerec_hog::detect(detector, img, dets, 0.0);
                else
                    detector(img, dets, 0.0);
            } else if (fast) {
                facerec_hog::pyramid_up_2(img, temp);
                for (unsigned int levels = upsample - 1; levels > 0; --levels) {
                    array2d<rgb_pixel> larger;
                    facerec_hog::pyramid_up_2(temp, larger);
                    swap(temp, larger);
                }
                facerec_hog::detect(detector, temp, dets, 0.0);
            } else {
                pyramid_up(img, temp, pyr);
                for (unsigned int levels = upsample - 1; levels > 0; --levels)
                    pyramid_up(temp);
                detector(temp, dets, 0.0);
            }
            if (upsample > 0) {
                for (auto& d : dets)
                    d.rect = pyr.rect_down(d.rect, upsample);
            }
            return dets;
        }

        inline std::vector<rect_detection> cnn_detect(
            cnn_net& net,
            const matrix<rgb_pixel>& input,
            unsigned int upsample
        ) {
            pyramid_down<2> pyr;
            matrix<rgb_pixel> image = input;
            for (unsigned int levels = upsample; levels > 0; --levels)
                pyramid_up(image, pyr);
            auto dets = net(image);
            std::vector<rect_detection> out;
            out.reserve(dets.size());
            for (auto& d : dets) {
                rect_detection det;
                det.detection_confidence = d.detection_confidence;
                det.weight_index = 0;
                det.rect = pyr.rect_down(d.rect, upsample);
                out.push_back(det);
            }
            return out;
        }
    }
}}

cpp_class!(
    /// dlib's HOG frontal face detector. Not thread-safe: one per encoder thread.
    pub unsafe struct HogDetector as "dlib::frontal_face_detector"
);

cpp_class!(
    /// dlib's mmod CNN face detector. Not thread-safe: one per encoder thread.
    pub unsafe struct CnnDetector as "facerec_shim::cnn_net"
);

cpp_class!(
    /// `std::vector<dlib::rect_detection>`: the detectors' boxes with their scores.
    unsafe struct DetectionVec as "std::vector<dlib::rect_detection>"
);

/// One HOG detection: the box (in the caller's image) and dlib's confidence score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Scored {
    pub(super) rect: Rectangle,
    pub(super) confidence: f64,
}

impl DetectionVec {
    fn to_vec(&self) -> Vec<Scored> {
        let len = unsafe {
            cpp!([self as "const std::vector<dlib::rect_detection>*"] -> usize as "size_t" {
                return self->size();
            })
        };
        (0..len)
            .map(|i| unsafe {
                let rect = cpp!([self as "const std::vector<dlib::rect_detection>*", i as "size_t"] -> Rectangle as "dlib::rectangle" {
                    return (*self)[i].rect;
                });
                let confidence = cpp!([self as "const std::vector<dlib::rect_detection>*", i as "size_t"] -> f64 as "double" {
                    return (*self)[i].detection_confidence;
                });
                Scored { rect, confidence }
            })
            .collect()
    }
}

/// Why a shim call failed: the text of the C++ exception.
#[derive(Debug)]
pub(super) struct ShimError(pub(super) String);

/// Room for a C++ exception message. (Not a `std::string` wrapped with `cpp_class!`:
/// Rust moves values by copying bytes, and libstdc++'s short strings point into themselves.)
struct ErrorText([u8; 256]);

impl ErrorText {
    fn new() -> Self {
        Self([0; 256])
    }

    fn ptr(&mut self) -> *mut u8 {
        self.0.as_mut_ptr()
    }

    fn into_error(self) -> ShimError {
        let end = self.0.iter().position(|b| *b == 0).unwrap_or(self.0.len());
        ShimError(String::from_utf8_lossy(&self.0[..end]).into_owned())
    }
}

impl HogDetector {
    /// dlib's built-in HOG model (`get_frontal_face_detector`).
    pub(super) fn new() -> Self {
        unsafe {
            cpp!([] -> HogDetector as "dlib::frontal_face_detector" {
                return dlib::get_frontal_face_detector();
            })
        }
    }

    /// Face rectangles in `image` coordinates, after upsampling `upsample` times.
    /// Rectangles may extend past the image border (they are not trimmed).
    pub(super) fn detect(
        &mut self,
        image: &ImageMatrix,
        upsample: u32,
        scan: Scan,
    ) -> Result<Vec<Rectangle>, ShimError> {
        Ok(self.detect_scored(image, upsample, scan)?.into_iter().map(|d| d.rect).collect())
    }

    /// The detections with their scores, from fast_hog.hpp's scan or dlib's own.
    pub(super) fn detect_scored(
        &mut self,
        image: &ImageMatrix,
        upsample: u32,
        scan: Scan,
    ) -> Result<Vec<Scored>, ShimError> {
        let out = DetectionVec::default();
        let mut err = ErrorText::new();
        let (out_ref, err_ref) = (&out, err.ptr());
        let fast = scan == Scan::Fast;
        let ok = unsafe {
            cpp!([self as "dlib::frontal_face_detector*", image as "const dlib::matrix<dlib::rgb_pixel>*",
                  upsample as "unsigned int", fast as "bool",
                  out_ref as "std::vector<dlib::rect_detection>*", err_ref as "char*"] -> bool as "bool" {
                try {
                    *out_ref = facerec_shim::hog_detect(*self, *image, upsample, fast);
                    return true;
                } catch (const std::exception& e) {
                    std::strncpy(err_ref, e.what(), 255);
                    return false;
                }
            })
        };
        if ok { Ok(out.to_vec()) } else { Err(err.into_error()) }
    }

    /// How many FHOG features and filter scores of the fast scan of `image`, upsampled
    /// `upsample` times, differ from dlib's (0 when bit-identical); `None` when their shapes
    /// differ.
    #[cfg(test)]
    pub(super) fn mismatches(&self, image: &ImageMatrix, upsample: u32) -> Result<Option<u64>, ShimError> {
        let mut err = ErrorText::new();
        let err_ref = err.ptr();
        let mut count: i64 = 0;
        let count_ref = &mut count;
        let ok = unsafe {
            cpp!([self as "const dlib::frontal_face_detector*", image as "const dlib::matrix<dlib::rgb_pixel>*",
                  upsample as "unsigned int", count_ref as "long*", err_ref as "char*"] -> bool as "bool" {
                try {
                    *count_ref = facerec_hog::mismatches_with_dlib(*self, *image, upsample);
                    return true;
                } catch (const std::exception& e) {
                    std::strncpy(err_ref, e.what(), 255);
                    return false;
                }
            })
        };
        if ok { Ok(u64::try_from(count).ok()) } else { Err(err.into_error()) }
    }
}

/// Which HOG scan to run: the same results either way, `Fast` in less time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scan {
    /// fast_hog.hpp.
    Fast,
    /// dlib's own `object_detector` call (`--detector hog-dlib`, and the tests' reference).
    Dlib,
}

impl CnnDetector {
    /// Loads `mmod_human_face_detector.dat`.
    pub(super) fn open(path: &std::path::Path) -> Result<Self, ShimError> {
        let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| ShimError(format!("model path {} contains a NUL byte", path.display())))?;
        let c_ptr = c_path.as_ptr();
        let net = CnnDetector::default();
        let mut err = ErrorText::new();
        let (net_ref, err_ref) = (&net, err.ptr());
        let ok = unsafe {
            cpp!([c_ptr as "const char*", net_ref as "facerec_shim::cnn_net*", err_ref as "char*"] -> bool as "bool" {
                try {
                    dlib::deserialize(c_ptr) >> *net_ref;
                    return true;
                } catch (const std::exception& e) {
                    std::strncpy(err_ref, e.what(), 255);
                    return false;
                }
            })
        };
        if ok { Ok(net) } else { Err(err.into_error()) }
    }

    /// Face rectangles in `image` coordinates, after upsampling `upsample` times.
    pub(super) fn detect(&mut self, image: &ImageMatrix, upsample: u32) -> Result<Vec<Rectangle>, ShimError> {
        let out = DetectionVec::default();
        let mut err = ErrorText::new();
        let (out_ref, err_ref) = (&out, err.ptr());
        let ok = unsafe {
            cpp!([self as "facerec_shim::cnn_net*", image as "const dlib::matrix<dlib::rgb_pixel>*",
                  upsample as "unsigned int", out_ref as "std::vector<dlib::rect_detection>*", err_ref as "char*"] -> bool as "bool" {
                try {
                    *out_ref = facerec_shim::cnn_detect(*self, *image, upsample);
                    return true;
                } catch (const std::exception& e) {
                    std::strncpy(err_ref, e.what(), 255);
                    return false;
                }
            })
        };
        if ok { Ok(out.to_vec().into_iter().map(|d| d.rect).collect()) } else { Err(err.into_error()) }
    }
}

#[cfg(test)]
mod tests {
    //! fast_hog.hpp must be dlib's scan, bit for bit: the same features at every pyramid
    //! level, the same score maps, the same detections. Checked on the sample images, on
    //! crops of them (every column remainder of the SIMD loops), on a synthetic image and on
    //! images too small to scan. (In a build without AVX2 both sides are dlib's code.)
    use super::*;
    use crate::decode::{DecodeLimits, decode};
    use facerec_fakes::testkit::fixtures::{SAMPLE_IMAGES, sample_images_dir};

    struct Rgb {
        width: usize,
        height: usize,
        data: Vec<u8>,
    }

    impl Rgb {
        fn sample(name: &str) -> Self {
            let bytes = std::fs::read(sample_images_dir().join(name)).expect("sample image");
            let pixels = decode(&bytes, &DecodeLimits::default()).expect("decodes");
            Self { width: pixels.width as usize, height: pixels.height as usize, data: pixels.data }
        }

        fn crop(&self, left: usize, top: usize, width: usize, height: usize) -> Self {
            let mut data = Vec::with_capacity(width * height * 3);
            for row in top..top + height {
                let start = (row * self.width + left) * 3;
                data.extend_from_slice(&self.data[start..start + width * 3]);
            }
            Self { width, height, data }
        }

        fn with<T>(&self, f: impl FnOnce(&ImageMatrix) -> T) -> T {
            // SAFETY: `data` holds width * height * 3 bytes and outlives the call.
            let matrix = unsafe { ImageMatrix::new(self.width, self.height, self.data.as_ptr()) };
            f(&matrix)
        }
    }

    fn assert_same_features(name: &str, image: &Rgb, upsample: u32) {
        let detector = HogDetector::new();
        let mismatches = image.with(|m| detector.mismatches(m, upsample)).expect("scan");
        assert_eq!(
            mismatches,
            Some(0),
            "{name} {}x{} upsample {upsample}: FHOG features or scores differ from dlib's",
            image.width,
            image.height
        );
    }

    fn assert_same_detections(name: &str, image: &Rgb, upsample: u32) -> usize {
        let mut detector = HogDetector::new();
        let fast = image.with(|m| detector.detect_scored(m, upsample, Scan::Fast)).expect("fast scan");
        let dlib = image.with(|m| detector.detect_scored(m, upsample, Scan::Dlib)).expect("dlib scan");
        assert_eq!(fast, dlib, "{name} {}x{} upsample {upsample}", image.width, image.height);
        fast.len()
    }

    #[test]
    fn features_are_dlibs_on_the_samples_and_their_crops() {
        for name in SAMPLE_IMAGES {
            let image = Rgb::sample(name);
            assert_same_features(name, &image, 0);
            assert_same_features(name, &image, 1);
            // Widths 9 to 15 columns narrower reach every remainder (mod 8) of the eight- and
            // four-wide loops; left offsets of 3 shift the pixels against the cell grid.
            for cut in 1..=7 {
                let crop = image.crop(cut % 2 * 3, cut / 2, image.width - 8 - cut, image.height - cut);
                assert_same_features(name, &crop, 0);
            }
        }
    }

    #[test]
    fn detections_and_scores_are_dlibs_on_the_samples() {
        for name in SAMPLE_IMAGES {
            let image = Rgb::sample(name);
            assert_eq!(assert_same_detections(name, &image, 1), 1, "{name}: one face");
            assert_eq!(assert_same_detections(name, &image, 0), 1, "{name}: one face without upsampling");
        }
    }

    #[test]
    fn grey_and_tiny_images_scan_as_dlib_does() {
        // A synthetic grey image of odd size whose pattern gives every orientation bin some
        // weight, scanned at up to two upsamplings.
        let (width, height) = (301, 227);
        let mut data = Vec::with_capacity(width * height * 3);
        for y in 0..height {
            for x in 0..width {
                let v = ((x * x + 3 * y * y + x * y) / 7 % 256) as u8;
                data.extend_from_slice(&[v, v, v]);
            }
        }
        let grey = Rgb { width, height, data };
        assert_same_features("grey", &grey, 2);
        assert_same_detections("grey", &grey, 1);
        assert_same_detections("grey", &grey, 2);
        for (w, h) in [(1, 1), (9, 9), (17, 40), (79, 80), (80, 79), (96, 96)] {
            let tiny = grey.crop(0, 0, w, h);
            assert_same_features("tiny", &tiny, 0);
            assert_same_features("tiny", &tiny, 1);
            assert_same_detections("tiny", &tiny, 0);
            assert_same_detections("tiny", &tiny, 1);
        }
    }
}
