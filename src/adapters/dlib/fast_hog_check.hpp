// For the tests only (src/adapters/dlib/shim.rs): fast_hog.hpp against dlib's own scan,
// value by value.
#pragma once

#include "fast_hog.hpp"
#include <cstring>

namespace facerec_hog {

// How many values differ between fast_hog.hpp and dlib, for `img` upsampled `upsample`
// times: the FHOG features at every pyramid level (dlib: pyramid_up +
// create_fhog_pyramid), then every detector's whole score map at every level, before
// any threshold (dlib: apply_filters_to_fhog). -1: shapes differ. At upsample 0 the
// fast side reads `img` itself (the production path), not a copy.
inline long mismatches_with_dlib(const frontal_face_detector& detector, const matrix<rgb_pixel>& img,
                                 unsigned int upsample) {
    array2d<rgb_pixel> dlib_image, fast_image;
    assign_image(dlib_image, img);
    const auto& scanner = detector.get_scanner();
    dlib::array<dlib::array<array2d<float>>> reference;
    dlib::array<facerec_hog::fhog_planes> fast;
    if (upsample == 0) {
        facerec_hog::build_pyramid(detector, img, fast);
    } else {
        facerec_hog::pyramid_up_2(img, fast_image);
        pyramid_up(dlib_image);
        for (unsigned int level = 1; level < upsample; ++level) {
            pyramid_up(dlib_image);
            array2d<rgb_pixel> larger;
            facerec_hog::pyramid_up_2(fast_image, larger);
            swap(fast_image, larger);
        }
        facerec_hog::build_pyramid(detector, fast_image, fast);
    }
    impl::create_fhog_pyramid<pyramid_down<6>>(dlib_image, scanner.get_feature_extractor(), reference,
        scanner.get_cell_size(), scanner.get_fhog_window_height(), scanner.get_fhog_window_width(),
        scanner.get_min_pyramid_layer_width(), scanner.get_min_pyramid_layer_height(),
        scanner.get_max_pyramid_levels());
    if (reference.size() != fast.size()) return -1;
    long mismatches = 0;
    const auto count = [&mismatches](const array2d<float>& a, const array2d<float>& b) {
        if (a.nr() != b.nr() || a.nc() != b.nc()) return false;
        for (long r = 0; r < a.nr(); ++r)
            for (long c = 0; c < a.nc(); ++c)
                if (std::memcmp(&a[r][c], &b[r][c], sizeof(float)) != 0) ++mismatches;
        return true;
    };
    for (size_t level = 0; level < reference.size(); ++level) {
        if (reference[level].size() != fast[level].size()) return -1;
        for (size_t plane = 0; plane < reference[level].size(); ++plane)
            if (!count(reference[level][plane], fast[level][plane])) return -1;
    }
    // The filters, on the same (dlib's) features, so a difference here is the filters'.
    array2d<float> dlib_scores, fast_scores, scratch;
    for (unsigned long d = 0; d < detector.num_detectors(); ++d) {
        const auto& filters = detector.get_processed_w(d).get_detect_argument();
        for (size_t level = 0; level < reference.size(); ++level) {
            const rectangle a = impl::apply_filters_to_fhog(filters, reference[level], dlib_scores);
            const rectangle b = facerec_hog::apply_filters(filters, reference[level], fast_scores, scratch);
            if (a != b || !count(dlib_scores, fast_scores)) return -1;
        }
    }
    return mismatches;
}

}  // namespace facerec_hog
