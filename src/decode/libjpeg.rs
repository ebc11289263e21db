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

        // Refuses a progressive JPEG past MAX_SCANS scans (see MAX_SCANS in libjpeg.rs).
        // libjpeg calls this once per iMCU row while it reads the input, so a file is
        // stopped within one row of its scan MAX_SCANS + 1, before that scan costs a pass
        // over the image.
        struct progress_mgr {
            struct jpeg_progress_mgr pub;
            int max_scans;
        };

        static void progress_monitor(j_common_ptr cinfo) {
            if (!cinfo->is_decompressor) return;
            j_decompress_ptr dinfo = reinterpret_cast<j_decompress_ptr>(cinfo);
            progress_mgr* progress = reinterpret_cast<progress_mgr*>(cinfo->progress);
            if (dinfo->input_scan_number > progress->max_scans) {
                error_mgr* err = reinterpret_cast<error_mgr*>(cinfo->err);
                std::snprintf(err->message, JMSG_LENGTH_MAX,
                              "progressive JPEG has more than %d scans", progress->max_scans);
                longjmp(err->jump, 1);
            }
        }

        // Decodes into `out` (width * height * 3 bytes, sized by the caller from the
        // header). Returns 0 on success, 1 on a libjpeg error (message in `message`),
        // 2 when the size does not match, 3 for a colour space libjpeg cannot turn into RGB.
        static int decode_rgb(const unsigned char* data, unsigned long len,
                              unsigned char* out, unsigned long width, unsigned long height,
                              int max_scans, char* message) {
            struct jpeg_decompress_struct cinfo;
            error_mgr err;
            progress_mgr progress;
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
            std::memset(&progress, 0, sizeof progress);
            progress.pub.progress_monitor = progress_monitor;
            progress.max_scans = max_scans;
            cinfo.progress = &progress.pub;
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

/// Scans beyond this many make a JPEG invalid. Every scan of a progressive JPEG costs the
/// decoder a pass over all the image's blocks however few bytes it takes (~2.6 ms at
/// 6000x6000; an AC scan coding every block as end-of-band runs is ~50 bytes), so a few
/// hundred KB can hold minutes of CPU. Real encoders write few scans: libjpeg's and
/// PIL's progression 10 (6 for gray), mozjpeg's optimised scans fewer than 30. Even a
/// script giving each of a component's 63 AC coefficients its own band and all 14
/// successive-approximation bits stays under 1000 (1 + 63 x 14 = 883 scans for a gray
/// image). At this limit the worst image the pixel limit allows costs ~3 s of CPU, not
/// unbounded time.
pub(super) const MAX_SCANS: i32 = 1000;

/// Decodes a JPEG whose header said `width` x `height` into RGB bytes.
pub(super) fn decode_rgb(data: &[u8], width: u32, height: u32) -> Result<Vec<u8>, JpegError> {
    let mut out = vec![0u8; width as usize * height as usize * 3];
    let mut message = [0u8; 200];
    let (data_ptr, len) = (data.as_ptr(), data.len() as u64);
    let (out_ptr, msg_ptr) = (out.as_mut_ptr(), message.as_mut_ptr());
    let (w, h, max_scans) = (u64::from(width), u64::from(height), MAX_SCANS);
    // SAFETY: `out` holds width * height * 3 bytes, checked against the decoder's own
    // output size before any scanline is written; `message` holds JMSG_LENGTH_MAX (200).
    let status = unsafe {
        cpp!([data_ptr as "const unsigned char*", len as "unsigned long", out_ptr as "unsigned char*",
              w as "unsigned long", h as "unsigned long", max_scans as "int", msg_ptr as "char*"] -> i32 as "int" {
            return facerec_jpeg::decode_rgb(data_ptr, len, out_ptr, w, h, max_scans, msg_ptr);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A gray progressive JPEG of `side` x `side` (at most 1448, so one end-of-band run
    /// covers every block) with a DC scan and `ac_scans` AC scans that each code every
    /// block as one end-of-band run: the scan bomb of tests/corpus/bombs.py, small.
    pub(crate) fn scan_bomb(side: u16, ac_scans: usize) -> Vec<u8> {
        fn segment(marker: u8, payload: &[u8]) -> Vec<u8> {
            let mut out = vec![0xFF, marker];
            out.extend_from_slice(&u16::try_from(payload.len() + 2).unwrap().to_be_bytes());
            out.extend_from_slice(payload);
            out
        }
        let blocks = u32::from(side.div_ceil(8)).pow(2);
        assert!(blocks < 32768);
        let run_bits = blocks.ilog2(); // EOBn: a run of 2^n + n extra bits
        let mut out = vec![0xFF, 0xD8];
        out.extend(segment(0xDB, &[&[0u8][..], &[1; 64]].concat()));
        let [h0, h1] = side.to_be_bytes();
        out.extend(segment(0xC2, &[8, h0, h1, h0, h1, 1, 1, 0x11, 0]));
        let mut table = |class: u8, symbol: u8| {
            let mut counts = [0u8; 16];
            counts[0] = 1; // one code, `0`, leaving `1` unused as libjpeg requires
            out.extend(segment(0xC4, &[&[class << 4][..], &counts, &[symbol]].concat()));
        };
        table(0, 0x00);
        table(1, u8::try_from(run_bits << 4).unwrap());
        // DC scan: a `0` bit (difference 0) per block, padded with 1 bits.
        out.extend(segment(0xDA, &[1, 1, 0x00, 0, 0, 0]));
        let mut bits = vec![false; blocks as usize];
        let pad = |bits: &mut Vec<bool>| bits.resize(bits.len().div_ceil(8) * 8, true);
        pad(&mut bits);
        let bytes = |bits: &[bool]| -> Vec<u8> {
            let mut out = Vec::new();
            for byte in bits.chunks(8).map(|c| c.iter().fold(0u8, |b, &bit| b << 1 | u8::from(bit))) {
                out.push(byte);
                if byte == 0xFF {
                    out.push(0); // byte stuffing
                }
            }
            out
        };
        out.extend(bytes(&bits));
        // An AC scan: the code `0` (EOBn), then n bits of the run's remainder.
        let mut ac = vec![false];
        let rest = blocks - (1 << run_bits);
        ac.extend((0..run_bits).rev().map(|i| rest >> i & 1 == 1));
        pad(&mut ac);
        let ac_scan = [segment(0xDA, &[1, 1, 0x00, 1, 63, 0]), bytes(&ac)].concat();
        for _ in 0..ac_scans {
            out.extend_from_slice(&ac_scan);
        }
        out.extend_from_slice(&[0xFF, 0xD9]);
        out
    }

    #[test]
    fn a_progressive_jpeg_past_the_scan_limit_is_refused() {
        let at_limit = scan_bomb(64, MAX_SCANS as usize - 1);
        let px = decode_rgb(&at_limit, 64, 64).unwrap_or_else(|_| panic!("{MAX_SCANS} scans must decode"));
        assert!(px.iter().all(|&v| v == 128), "uniform gray");
        let past = scan_bomb(64, MAX_SCANS as usize);
        match decode_rgb(&past, 64, 64) {
            Err(JpegError::Invalid(reason)) => {
                assert_eq!(reason, format!("progressive JPEG has more than {MAX_SCANS} scans"));
            }
            _ => panic!("{} scans must be refused", MAX_SCANS + 1),
        }
    }
}
