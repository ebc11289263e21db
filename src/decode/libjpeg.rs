//! JPEG pixels through the system's libjpeg-turbo, the decoder behind PIL.
//!
//! Parity with face_recognition needs the *same pixels*: Rust's pure JPEG decoders round
//! differently from libjpeg's ISLOW IDCT and fancy upsampling, which moves encodings by up
//! to 0.02 per component. libjpeg-turbo (Debian's 2.1.5, the same code PIL bundles)
//! gives pixel-identical output to PIL, checked with `djpeg` on every test image.
//! libjpeg reports fatal errors by longjmp; the handler below never crosses a C++ frame
//! with a destructor.

cpp! {{
    #include <cstdio>
    #include <csetjmp>
    #include <cstring>
    #include <jpeglib.h>
    #include <jerror.h>

    namespace facerec_jpeg {
        struct error_mgr {
            struct jpeg_error_mgr pub;
            jmp_buf jump;
            char message[JMSG_LENGTH_MAX];
        };

        static void error_exit(j_common_ptr cinfo) {
            error_mgr* err = reinterpret_cast<error_mgr*>(cinfo->err);
            (*cinfo->err->format_message)(cinfo, err->message);
            longjmp(err->jump, 1);
        }

        // A truncated file is an error (as in PIL); other warnings ("extraneous bytes
        // before marker") are ignored, as PIL ignores them.
        static void emit_message(j_common_ptr cinfo, int level) {
            if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) error_exit(cinfo);
        }

        // Decodes into `out` (width * height * 3 bytes, sized by the caller from the
        // header). Returns 0 on success, 1 on a libjpeg error (message in `message`),
        // 2 when the size does not match, 3 for a colour space libjpeg cannot turn into RGB.
        static int decode_rgb(const unsigned char* data, unsigned long len,
                              unsigned char* out, unsigned long width, unsigned long height,
                              char* message) {
            struct jpeg_decompress_struct cinfo;
            error_mgr err;
            cinfo.err = jpeg_std_error(&err.pub);
            err.pub.error_exit = error_exit;
            err.pub.emit_message = emit_message;
            err.message[0] = 0;
            if (setjmp(err.jump)) {
                std::strncpy(message, err.message, JMSG_LENGTH_MAX);
                jpeg_destroy_decompress(&cinfo);
                return 1;
            }
            jpeg_create_decompress(&cinfo);
            jpeg_mem_src(&cinfo, data, len);
            jpeg_read_header(&cinfo, TRUE);
            if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
                jpeg_destroy_decompress(&cinfo);
                return 3;
            }
            cinfo.out_color_space = JCS_RGB;
            // libjpeg's defaults, spelled out: these are what PIL uses.
            cinfo.dct_method = JDCT_ISLOW;
            cinfo.do_fancy_upsampling = TRUE;
            jpeg_start_decompress(&cinfo);
            if (cinfo.output_width != width || cinfo.output_height != height || cinfo.output_components != 3) {
                jpeg_destroy_decompress(&cinfo);
                return 2;
            }
            while (cinfo.output_scanline < cinfo.output_height) {
                JSAMPROW row = out + (unsigned long)cinfo.output_scanline * width * 3;
                jpeg_read_scanlines(&cinfo, &row, 1);
            }
            jpeg_finish_decompress(&cinfo);
            jpeg_destroy_decompress(&cinfo);
            return 0;
        }
    }
}}

/// Why libjpeg did not decode an image.
pub(super) enum JpegError {
    /// CMYK or YCCK: let another decoder convert it.
    Unsupported,
    /// Corrupt or truncated.
    Invalid(String),
}

/// Decodes a JPEG whose header said `width` x `height` into RGB bytes.
pub(super) fn decode_rgb(data: &[u8], width: u32, height: u32) -> Result<Vec<u8>, JpegError> {
    let mut out = vec![0u8; width as usize * height as usize * 3];
    let mut message = [0u8; 200];
    let (data_ptr, len) = (data.as_ptr(), data.len() as u64);
    let (out_ptr, msg_ptr) = (out.as_mut_ptr(), message.as_mut_ptr());
    let (w, h) = (u64::from(width), u64::from(height));
    // SAFETY: `out` holds width * height * 3 bytes, checked against the decoder's own
    // output size before any scanline is written; `message` holds JMSG_LENGTH_MAX (200).
    let status = unsafe {
        cpp!([data_ptr as "const unsigned char*", len as "unsigned long", out_ptr as "unsigned char*",
              w as "unsigned long", h as "unsigned long", msg_ptr as "char*"] -> i32 as "int" {
            return facerec_jpeg::decode_rgb(data_ptr, len, out_ptr, w, h, msg_ptr);
        })
    };
    match status {
        0 => Ok(out),
        3 => Err(JpegError::Unsupported),
        2 => Err(JpegError::Invalid("decoded size differs from the header".into())),
        _ => {
            let end = message.iter().position(|b| *b == 0).unwrap_or(message.len());
            Err(JpegError::Invalid(String::from_utf8_lossy(&message[..end]).into_owned()))
        }
    }
}
