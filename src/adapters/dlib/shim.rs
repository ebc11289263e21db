//! The C++ shim: what the `dlib-face-recognition` crate does not expose.
//!
//! Python's `face_recognition` calls dlib's Python bindings, which upsample the image with
//! `pyramid_up` before running the HOG or CNN detector and map the rectangles back with
//! `pyramid_down<2>::rect_down`. The crate's detectors cannot upsample, so this file
//! reproduces those binding functions line for line (dlib/tools/python/src/
//! simple_object_detector_py.h `run_detector_with_upscale1` and cnn_face_detector.cpp
//! `detect`). Every C++ exception is caught here: unwinding across the FFI boundary is
//! undefined behaviour.

use dlib_face_recognition::{ImageMatrix, Rectangle};

cpp! {{
    #include <dlib/image_processing/frontal_face_detector.h>
    #include <dlib/image_transforms.h>
    #include <dlib/dnn.h>
    #include <cstring>

    namespace facerec_shim {
        using namespace dlib;

        // The mmod CNN face detector, exactly as dlib's Python binding declares it.
        template <long num_filters, typename SUBNET> using con5d = con<num_filters,5,5,2,2,SUBNET>;
        template <long num_filters, typename SUBNET> using con5  = con<num_filters,5,5,1,1,SUBNET>;
        template <typename SUBNET> using downsampler = relu<affine<con5d<32, relu<affine<con5d<32, relu<affine<con5d<16,SUBNET>>>>>>>>>;
        template <typename SUBNET> using rcon5 = relu<affine<con5<45,SUBNET>>>;
        using cnn_net = loss_mmod<con<1,9,9,1,1,rcon5<rcon5<rcon5<downsampler<input_rgb_image_pyramid<pyramid_down<6>>>>>>>>;

        inline std::vector<rectangle> hog_detect(
            frontal_face_detector& detector,
            const matrix<rgb_pixel>& img,
            unsigned int upsample
        ) {
            pyramid_down<2> pyr;
            std::vector<rect_detection> dets;
            if (upsample == 0) {
                detector(img, dets, 0.0);
            } else {
                array2d<rgb_pixel> temp;
                pyramid_up(img, temp, pyr);
                for (unsigned int levels = upsample - 1; levels > 0; --levels)
                    pyramid_up(temp);
                detector(temp, dets, 0.0);
                for (auto& d : dets)
                    d.rect = pyr.rect_down(d.rect, upsample);
            }
            std::vector<rectangle> rects;
            rects.reserve(dets.size());
            for (auto& d : dets) rects.push_back(d.rect);
            return rects;
        }

        inline std::vector<rectangle> cnn_detect(
            cnn_net& net,
            const matrix<rgb_pixel>& input,
            unsigned int upsample
        ) {
            pyramid_down<2> pyr;
            matrix<rgb_pixel> image = input;
            for (unsigned int levels = upsample; levels > 0; --levels)
                pyramid_up(image, pyr);
            auto dets = net(image);
            std::vector<rectangle> rects;
            rects.reserve(dets.size());
            for (auto& d : dets) rects.push_back(pyr.rect_down(d.rect, upsample));
            return rects;
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
    /// `std::vector<dlib::rectangle>`, the detectors' output.
    unsafe struct RectVec as "std::vector<dlib::rectangle>"
);

impl RectVec {
    fn to_vec(&self) -> Vec<Rectangle> {
        let len = unsafe {
            cpp!([self as "const std::vector<dlib::rectangle>*"] -> usize as "size_t" {
                return self->size();
            })
        };
        (0..len)
            .map(|i| unsafe {
                cpp!([self as "const std::vector<dlib::rectangle>*", i as "size_t"] -> Rectangle as "dlib::rectangle" {
                    return (*self)[i];
                })
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
    pub(super) fn detect(&mut self, image: &ImageMatrix, upsample: u32) -> Result<Vec<Rectangle>, ShimError> {
        let out = RectVec::default();
        let mut err = ErrorText::new();
        let (out_ref, err_ref) = (&out, err.ptr());
        let ok = unsafe {
            cpp!([self as "dlib::frontal_face_detector*", image as "const dlib::matrix<dlib::rgb_pixel>*",
                  upsample as "unsigned int", out_ref as "std::vector<dlib::rectangle>*", err_ref as "char*"] -> bool as "bool" {
                try {
                    *out_ref = facerec_shim::hog_detect(*self, *image, upsample);
                    return true;
                } catch (const std::exception& e) {
                    std::strncpy(err_ref, e.what(), 255);
                    return false;
                }
            })
        };
        if ok { Ok(out.to_vec()) } else { Err(err.into_error()) }
    }
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
        let out = RectVec::default();
        let mut err = ErrorText::new();
        let (out_ref, err_ref) = (&out, err.ptr());
        let ok = unsafe {
            cpp!([self as "facerec_shim::cnn_net*", image as "const dlib::matrix<dlib::rgb_pixel>*",
                  upsample as "unsigned int", out_ref as "std::vector<dlib::rectangle>*", err_ref as "char*"] -> bool as "bool" {
                try {
                    *out_ref = facerec_shim::cnn_detect(*self, *image, upsample);
                    return true;
                } catch (const std::exception& e) {
                    std::strncpy(err_ref, e.what(), 255);
                    return false;
                }
            })
        };
        if ok { Ok(out.to_vec()) } else { Err(err.into_error()) }
    }
}
