// A faster HOG face scan that gives exactly dlib's results.
//
// face_recognition's detector is dlib's `frontal_face_detector`: an `object_detector` over
// `scan_fhog_pyramid<pyramid_down<6>>`. Per image it (1) shrinks the RGB image level by level
// with `resize_image` (bilinear), (2) extracts FHOG features from every level, (3) runs five
// linear filters (about 61 separable terms each) over every level and (4) suppresses overlapping
// boxes. dlib spends most of (1) and (2) gathering single bytes of interleaved RGB pixels
// into SIMD registers one `int` at a time, and much of (3) reloading filter taps.
//
// This file does (1)-(3) with the same arithmetic in the same order on the same values, so
// the output is bit-for-bit that of dlib's templates compiled with the same flags, in about
// half the time (docs/PERFORMANCE.md). (With -mfma the compiler fuses multiply-adds in
// dlib's expressions and in the same expressions here alike; the tests check it. A dlib
// built without FMA, such as Python's wheel, can differ in the last bits, as it already
// did from dlib's own scan built here.)
// - resize: column positions computed once per level instead of once per row, each pixel
//   read with one 32-bit load, eight outputs at a time;
// - FHOG: gradients from planar copies of three rows of the colour channels; the
//   orientation choice with one blend per direction instead of four (the same choice, see
//   below); histogram adds through row pointers, in dlib's order;
// - filters: the ten taps of each separable filter unrolled and held in registers.
// Everything else (bilinear weights, histogram order, normalisation, thresholds, non-maximum
// suppression) is dlib 19.24's code, copied below or called. The unit tests in shim.rs
// compare features, scores and boxes with dlib's own scan on the sample images, their crops
// and synthetic images; `tests/dlib.rs` compares the encodings with face_recognition's.
//
// Without AVX2 the header falls back to dlib's functions. The copied parts are from dlib
// (Boost Software License 1.0, Copyright (C) 2013 Davis E. King), whose FHOG code derives
// from the voc-release features.cc (MIT licence, Felzenszwalb, Girshick, McAllester,
// Ramanan).
#pragma once

#include <dlib/image_processing/frontal_face_detector.h>
#include <dlib/image_transforms.h>
#include <algorithm>
#include <cstring>
#include <vector>
#if defined(__AVX2__)
#include <immintrin.h>
#endif

namespace facerec_hog {
using namespace dlib;

typedef array2d<rgb_pixel> rgb_image;
typedef dlib::array<array2d<float> > fhog_planes;

#if defined(__AVX2__)

// ---------------------------------------------------------------------------------------
// (1) The pyramid step: dlib's resize_image(rgb, rgb, interpolate_bilinear), same arithmetic.

// Four bytes at row + offsets[k] + shift for k = 0..7.
inline __m256i load_pixels(const unsigned char* row, const int32* offsets, int shift) {
    int32 v[8];
    for (int k = 0; k < 8; ++k)
        std::memcpy(&v[k], row + offsets[k] + shift, 4);
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(v));
}

template <typename in_image_type>
void resize_rgb(const in_image_type& in_img, rgb_image& out_img) {
    const long in_nr = num_rows(in_img), in_nc = num_columns(in_img);
    if (out_img.size() == 0 || in_nr*in_nc == 0)
        return;
    const unsigned char* in_data = static_cast<const unsigned char*>(image_data(in_img));
    const long in_step = width_step(in_img);
    const long out_nr = out_img.nr(), out_nc = out_img.nc();
    const double x_scale = (in_nc-1)/(double)std::max<long>((out_nc-1),1);
    const double y_scale = (in_nr-1)/(double)std::max<long>((out_nr-1),1);

    // The column positions, exactly as dlib's row loop recomputes them for every row.
    std::vector<int32> lefts;
    std::vector<float> lr_fracs, inv_lr_fracs;
    long simd_end = 0;
    {
        double x = -4*x_scale;
        const simd4f _x_scale = 4*x_scale;
        simd4f _x(x, x+x_scale, x+2*x_scale, x+3*x_scale);
        for (long c = 0;; c += 4) {
            _x += _x_scale;
            simd4i left = simd4i(_x);
            simd4f lr_frac = _x-left;
            simd4f _inv_lr_frac = 1-lr_frac;
            simd4i right = left+1;
            int32 fleft[4], fright[4];
            float flr[4], finv[4];
            left.store(fleft);
            right.store(fright);
            lr_frac.store(flr);
            _inv_lr_frac.store(finv);
            if (fright[3] >= in_nc) {
                simd_end = c;
                break;
            }
            for (int k = 0; k < 4; ++k) {
                lefts.push_back(fleft[k]*3);
                lr_fracs.push_back(flr[k]);
                inv_lr_fracs.push_back(finv[k]);
            }
        }
    }

    const __m256i byte_mask = _mm256_set1_epi32(0xff);
    double y = -y_scale;
    for (long r = 0; r < out_nr; ++r) {
        y += y_scale;
        const long top    = static_cast<long>(std::floor(y));
        const long bottom = std::min(top+1, in_nr-1);
        const double tb_frac = y - top;
        const simd4f _tb_frac4 = tb_frac;
        const simd4f _inv_tb_frac4 = 1-tb_frac;
        float tb_f, inv_tb_f;
        _mm_store_ss(&tb_f, _tb_frac4);
        _mm_store_ss(&inv_tb_f, _inv_tb_frac4);
        const __m256 tb = _mm256_set1_ps(tb_f);
        const __m256 inv_tb = _mm256_set1_ps(inv_tb_f);
        const unsigned char* top_row = in_data + top*in_step;
        const unsigned char* bottom_row = in_data + bottom*in_step;
        rgb_pixel* out_row = &out_img[r][0];

        long c = 0;
        for (; c + 8 <= simd_end; c += 8) {
            const __m256 lr = _mm256_loadu_ps(&lr_fracs[c]);
            const __m256 inv_lr = _mm256_loadu_ps(&inv_lr_fracs[c]);
            const __m256 tlf = _mm256_mul_ps(inv_tb, inv_lr);
            const __m256 trf = _mm256_mul_ps(inv_tb, lr);
            const __m256 blf = _mm256_mul_ps(tb, inv_lr);
            const __m256 brf = _mm256_mul_ps(tb, lr);
            // Each pixel as one 32-bit load: the left one (R G B at 3*left, plus a byte of
            // the next) and the right one read from one byte earlier, so the last pixel of
            // the last row never reads past the image. (Plain loads: AVX2 gathers are slow
            // on CPUs with the Gather Data Sampling mitigation.)
            const int32* at = &lefts[c];
            const __m256i tl = load_pixels(top_row, at, 0);
            const __m256i tr = _mm256_srli_epi32(load_pixels(top_row, at, 2), 8);
            const __m256i bl = load_pixels(bottom_row, at, 0);
            const __m256i br = _mm256_srli_epi32(load_pixels(bottom_row, at, 2), 8);
            int32 out[3][8];
            for (int ch = 0; ch < 3; ++ch) {
                const int shift = 8*ch;
                const __m256 ftl = _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(tl, shift), byte_mask));
                const __m256 ftr = _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(tr, shift), byte_mask));
                const __m256 fbl = _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(bl, shift), byte_mask));
                const __m256 fbr = _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(br, shift), byte_mask));
                // dlib: tlf*tl + trf*tr + blf*bl + brf*br (the same expression, so the same
                // fused multiply-adds where the compiler fuses), then truncation.
                __m256 sum = _mm256_add_ps(_mm256_mul_ps(tlf, ftl), _mm256_mul_ps(trf, ftr));
                sum = _mm256_add_ps(sum, _mm256_mul_ps(blf, fbl));
                sum = _mm256_add_ps(sum, _mm256_mul_ps(brf, fbr));
                _mm256_storeu_si256(reinterpret_cast<__m256i*>(out[ch]), _mm256_cvttps_epi32(sum));
            }
            for (int k = 0; k < 8; ++k) {
                out_row[c+k].red   = static_cast<unsigned char>(out[0][k]);
                out_row[c+k].green = static_cast<unsigned char>(out[1][k]);
                out_row[c+k].blue  = static_cast<unsigned char>(out[2][k]);
            }
        }
        // dlib works in groups of four: one may remain before its scalar tail. It is done
        // with dlib's own expression, so the compiler treats it exactly as it treats dlib's.
        for (; c < simd_end; c += 4) {
            const simd4f lr_frac(lr_fracs[c], lr_fracs[c+1], lr_fracs[c+2], lr_fracs[c+3]);
            const simd4f _inv_lr_frac(inv_lr_fracs[c], inv_lr_fracs[c+1], inv_lr_fracs[c+2], inv_lr_fracs[c+3]);
            const simd4f tlf = _inv_tb_frac4*_inv_lr_frac;
            const simd4f trf = _inv_tb_frac4*lr_frac;
            const simd4f blf = _tb_frac4*_inv_lr_frac;
            const simd4f brf = _tb_frac4*lr_frac;
            for (int ch = 0; ch < 3; ++ch) {
                const unsigned char* t = top_row + ch;
                const unsigned char* b = bottom_row + ch;
                const int32* l = &lefts[c];
                simd4f tl(t[l[0]], t[l[1]], t[l[2]], t[l[3]]);
                simd4f tr(t[l[0]+3], t[l[1]+3], t[l[2]+3], t[l[3]+3]);
                simd4f bl(b[l[0]], b[l[1]], b[l[2]], b[l[3]]);
                simd4f br(b[l[0]+3], b[l[1]+3], b[l[2]+3], b[l[3]+3]);
                simd4i out = simd4i(tlf*tl + trf*tr + blf*bl + brf*br);
                int32 fout[4];
                out.store(fout);
                for (int k = 0; k < 4; ++k)
                    (&out_row[c+k].red)[ch] = static_cast<unsigned char>(fout[k]);
            }
        }
        // dlib's scalar tail, verbatim.
        typedef rgb_pixel T;
        const_image_view<in_image_type> in_view(in_img);
        double x = -x_scale + c*x_scale;
        for (; c < out_nc; ++c)
        {
            x += x_scale;
            const long left   = static_cast<long>(std::floor(x));
            const long right  = std::min(left+1, in_nc-1);
            const double lr_frac = x - left;

            const T tl = in_view[top][left];
            const T tr = in_view[top][right];
            const T bl = in_view[bottom][left];
            const T br = in_view[bottom][right];

            T temp;
            assign_pixel(temp, 0);
            vector_to_pixel(temp,
                (1-tb_frac)*((1-lr_frac)*pixel_to_vector<double>(tl) + lr_frac*pixel_to_vector<double>(tr)) +
                tb_frac*((1-lr_frac)*pixel_to_vector<double>(bl) + lr_frac*pixel_to_vector<double>(br)));
            assign_pixel(out_row[c], temp);
        }
    }
}

// pyramid_up(img, out, pyramid_down<2>()) with the resize above.
template <typename in_image_type>
void pyramid_up_2(const in_image_type& in_img, rgb_image& out_img) {
    if (num_rows(in_img)*num_columns(in_img) == 0) {
        out_img.clear();
        return;
    }
    const rectangle uprect = pyramid_down<2>().rect_up(get_rect(in_img));
    if (uprect.is_empty()) {
        out_img.clear();
        return;
    }
    out_img.set_size(uprect.bottom()+1, uprect.right()+1);
    resize_rgb(in_img, out_img);
}

// pyramid_down<6>::operator()(rgb, rgb) with the resize above.
template <typename image_type>
void pyramid_down_6(const image_type& original, rgb_image& down) {
    const unsigned int N = 6;
    down.set_size(((N-1)*num_rows(original))/N+0.5, ((N-1)*num_columns(original))/N+0.5);
    resize_rgb(original, down);
}

// ---------------------------------------------------------------------------------------
// (2) FHOG features: the colour channels of three rows as planes, so a gradient is
// eight-wide loads.

template <typename image_type>
class colour_rows {
public:
    explicit colour_rows(const image_type& img) : img_(img), nc_(num_columns(img)), rows_(9*nc_) {}

    // Makes rows r-1, r and r+1 available; r only grows, one row at a time or more.
    void centre_on(long r) {
        for (long row = std::max(r - 1, loaded_ + 1); row <= r + 1; ++row) {
            const rgb_pixel* p = &img_[row][0];
            unsigned char* red = plane(row, 0);
            unsigned char* green = plane(row, 1);
            unsigned char* blue = plane(row, 2);
            for (long c = 0; c < nc_; ++c) {
                red[c] = p[c].red;
                green[c] = p[c].green;
                blue[c] = p[c].blue;
            }
        }
        loaded_ = std::max(loaded_, r + 1);
    }

    // impl_fhog::get_gradient(r, c, rgb image, simd8f&, simd8f&, simd8f&), same integer
    // arithmetic and the same tie-breaking between channels.
    void gradient(int r, int c, simd8f& grad_x, simd8f& grad_y, simd8f& len) const {
        simd8i grad_x_red   = load8(plane(r, 0)+c+1)   - load8(plane(r, 0)+c-1);
        simd8i grad_y_red   = load8(plane(r+1, 0)+c)   - load8(plane(r-1, 0)+c);
        simd8i grad_x_green = load8(plane(r, 1)+c+1)   - load8(plane(r, 1)+c-1);
        simd8i grad_y_green = load8(plane(r+1, 1)+c)   - load8(plane(r-1, 1)+c);
        simd8i grad_x_blue  = load8(plane(r, 2)+c+1)   - load8(plane(r, 2)+c-1);
        simd8i grad_y_blue  = load8(plane(r+1, 2)+c)   - load8(plane(r-1, 2)+c);

        simd8i rlen = grad_x_red*grad_x_red + grad_y_red*grad_y_red;
        simd8i glen = grad_x_green*grad_x_green + grad_y_green*grad_y_green;
        simd8i blen = grad_x_blue*grad_x_blue + grad_y_blue*grad_y_blue;

        simd8i cmp = rlen > glen;
        simd8i tgrad_x = select(cmp, grad_x_red, grad_x_green);
        simd8i tgrad_y = select(cmp, grad_y_red, grad_y_green);
        simd8i tlen = select(cmp, rlen, glen);

        cmp = tlen > blen;
        grad_x = select(cmp, tgrad_x, grad_x_blue);
        grad_y = select(cmp, tgrad_y, grad_y_blue);
        len = select(cmp, tlen, blen);
    }

private:
    static simd8i load8(const unsigned char* p) {
        return simd8i(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
    }
    unsigned char* plane(long row, int channel) { return &rows_[((row % 3)*3 + channel)*nc_]; }
    const unsigned char* plane(long row, int channel) const { return &rows_[((row % 3)*3 + channel)*nc_]; }

    const_image_view<image_type> img_;
    long nc_;
    long loaded_ = -1;
    std::vector<unsigned char> rows_;
};

// impl_fhog::impl_extract_fhog_features for an RGB image and planar output, copied from
// dlib 19.24 with one change: the eight-pixel gradients come from `colour_rows`.
template <typename image_type>
void extract_fhog_features_rgb(
    const image_type& img_,
    fhog_planes& hog,
    int cell_size,
    int filter_rows_padding,
    int filter_cols_padding
) {
    using impl_fhog::init_hog;
    using impl_fhog::set_hog;
    const_image_view<image_type> img(img_);
    colour_rows<image_type> rows(img_);

    // unit vectors used to compute gradient orientation
    matrix<float,2,1> directions[9];
    directions[0] =  1.0000, 0.0000; 
    directions[1] =  0.9397, 0.3420;
    directions[2] =  0.7660, 0.6428;
    directions[3] =  0.500,  0.8660;
    directions[4] =  0.1736, 0.9848;
    directions[5] = -0.1736, 0.9848;
    directions[6] = -0.5000, 0.8660;
    directions[7] = -0.7660, 0.6428;
    directions[8] = -0.9397, 0.3420;



    // First we allocate memory for caching orientation histograms & their norms.
    const int cells_nr = (int)((float)img.nr()/(float)cell_size + 0.5);
    const int cells_nc = (int)((float)img.nc()/(float)cell_size + 0.5);

    if (cells_nr == 0 || cells_nc == 0)
    {
        hog.clear();
        return;
    }

    // We give hist extra padding around the edges (1 cell all the way around the
    // edge) so we can avoid needing to do boundary checks when indexing into it
    // later on.  So some statements assign to the boundary but those values are
    // never used.
    array2d<matrix<float,18,1> > hist(cells_nr+2, cells_nc+2);
    for (long r = 0; r < hist.nr(); ++r)
    {
        for (long c = 0; c < hist.nc(); ++c)
        {
            hist[r][c] = 0;
        }
    }

    array2d<float> norm(cells_nr, cells_nc);
    assign_all_pixels(norm, 0);

    // memory for HOG features
    const int hog_nr = std::max(cells_nr-2, 0);
    const int hog_nc = std::max(cells_nc-2, 0);
    if (hog_nr == 0 || hog_nc == 0)
    {
        hog.clear();
        return;
    }
    const int padding_rows_offset = (filter_rows_padding-1)/2;
    const int padding_cols_offset = (filter_cols_padding-1)/2;
    init_hog(hog, hog_nr, hog_nc, filter_rows_padding, filter_cols_padding);

    const int visible_nr = std::min((long)cells_nr*cell_size,img.nr())-1;
    const int visible_nc = std::min((long)cells_nc*cell_size,img.nc())-1;


    // First populate the gradient histograms
    for (int y = 1; y < visible_nr; y++) 
    {
        const float yp = ((float)y+0.5)/(float)cell_size - 0.5;
        const int iyp = (int)std::floor(yp);
        const float vy0 = yp - iyp;
        const float vy1 = 1.0 - vy0;
        rows.centre_on(y);
        static_assert(sizeof(matrix<float,18,1>) == 18*sizeof(float), "hist rows are contiguous floats");
        float* hist_top = &hist[iyp + 1][0](0);
        float* hist_bottom = &hist[iyp + 1 + 1][0](0);
        int x;
        for (x = 1; x < visible_nc - 7; x += 8)
        {
            simd8f xx(x, x + 1, x + 2, x + 3, x + 4, x + 5, x + 6, x + 7);
            // v will be the length of the gradient vectors.
            simd8f grad_x, grad_y, v;
            rows.gradient(y, x, grad_x, grad_y, v);

            // We will use bilinear interpolation to add into the histogram bins.
            // So first we precompute the values needed to determine how much each
            // pixel votes into each bin.
            simd8f xp = (xx + 0.5) / (float)cell_size + 0.5;
            simd8i ixp = simd8i(xp);
            simd8f vx0 = xp - ixp;
            simd8f vx1 = 1.0f - vx0;

            v = sqrt(v);

            // Now snap the gradient to one of 18 orientations. dlib compares dot and -dot
            // with the best so far (which never drops below 0): that picks the first o with
            // the largest |dot|, plus 9 when dot < 0. Same dot products, same choice, half
            // the blends.
            simd8f best_dot = 0;
            __m256i best_o = _mm256_setzero_si256();
            const __m256 sign_bit = _mm256_set1_ps(-0.0f);
            const __m256i nine = _mm256_set1_epi32(9);
            for (int o = 0; o < 9; o++)
            {
                simd8f dot = grad_x*directions[o](0) + grad_y*directions[o](1);
                const __m256 abs_dot = _mm256_andnot_ps(sign_bit, dot);
                const __m256 cmp = _mm256_cmp_ps(abs_dot, best_dot, _CMP_GT_OQ);
                best_dot = _mm256_max_ps(best_dot, abs_dot);
                const __m256i negative = _mm256_srai_epi32(_mm256_castps_si256(dot), 31);
                const __m256i bin = _mm256_add_epi32(_mm256_set1_epi32(o), _mm256_and_si256(negative, nine));
                best_o = _mm256_blendv_epi8(best_o, bin, _mm256_castps_si256(cmp));
            }


            // Add the gradient magnitude, v, to 4 histograms around pixel using
            // bilinear interpolation.
            vx1 *= v;
            vx0 *= v;
            // The amounts for each bin
            simd8f v11 = vy1*vx1;
            simd8f v01 = vy0*vx1;
            simd8f v10 = vy1*vx0;
            simd8f v00 = vy0*vx0;

            // Offsets of the bins in the two histogram rows: cell*18 + orientation.
            int32 _bin[8];
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(_bin),
                _mm256_add_epi32(_mm256_mullo_epi32(ixp, _mm256_set1_epi32(18)), best_o));
            float _v11[8];    v11.store(_v11);
            float _v01[8];    v01.store(_v01);
            float _v10[8];    v10.store(_v10);
            float _v00[8];    v00.store(_v00);

            // dlib adds to hist[iyp+1][ixp](o), hist[iyp+2][ixp](o), hist[iyp+1][ixp+1](o),
            // hist[iyp+2][ixp+1](o), pixel by pixel; the same additions in the same order.
            for (int k = 0; k < 8; ++k)
            {
                hist_top[_bin[k]] += _v11[k];
                hist_bottom[_bin[k]] += _v01[k];
                hist_top[_bin[k] + 18] += _v10[k];
                hist_bottom[_bin[k] + 18] += _v00[k];
            }
        }
        // Now process the right columns that don't fit into simd registers.
        for (; x < visible_nc; x++) 
        {
            matrix<float, 2, 1> grad;
            float v;
            impl_fhog::get_gradient(y,x,img,grad,v);

            // snap to one of 18 orientations
            float best_dot = 0;
            int best_o = 0;
            for (int o = 0; o < 9; o++) 
            {
                const float dot = dlib::dot(directions[o], grad);
                if (dot > best_dot) 
                {
                    best_dot = dot;
                    best_o = o;
                } 
                else if (-dot > best_dot) 
                {
                    best_dot = -dot;
                    best_o = o+9;
                }
            }

            v = std::sqrt(v);
            // add to 4 histograms around pixel using bilinear interpolation
            const float xp = ((double)x + 0.5) / (double)cell_size - 0.5;
            const int ixp = (int)std::floor(xp);
            const float vx0 = xp - ixp;
            const float vx1 = 1.0 - vx0;

            hist[iyp+1][ixp+1](best_o) += vy1*vx1*v;
            hist[iyp+1+1][ixp+1](best_o) += vy0*vx1*v;
            hist[iyp+1][ixp+1+1](best_o) += vy1*vx0*v;
            hist[iyp+1+1][ixp+1+1](best_o) += vy0*vx0*v;
        }
    }


    // compute energy in each block by summing over orientations
    for (int r = 0; r < cells_nr; ++r)
    {
        for (int c = 0; c < cells_nc; ++c)
        {
            for (int o = 0; o < 9; o++) 
            {
                norm[r][c] += (hist[r+1][c+1](o) + hist[r+1][c+1](o+9)) * (hist[r+1][c+1](o) + hist[r+1][c+1](o+9));
            }
        }
    }

    const float eps = 0.0001;
    // compute features
    for (int y = 0; y < hog_nr; y++) 
    {
        const int yy = y+padding_rows_offset; 
        for (int x = 0; x < hog_nc; x++) 
        {
            const simd4f z1(norm[y+1][x+1],
                            norm[y][x+1], 
                            norm[y+1][x],  
                            norm[y][x]);

            const simd4f z2(norm[y+1][x+2],
                            norm[y][x+2],
                            norm[y+1][x+1],
                            norm[y][x+1]);

            const simd4f z3(norm[y+2][x+1],
                            norm[y+1][x+1],
                            norm[y+2][x],
                            norm[y+1][x]);

            const simd4f z4(norm[y+2][x+2],
                            norm[y+1][x+2],
                            norm[y+2][x+1],
                            norm[y+1][x+1]);

            const simd4f nn = 0.2*sqrt(z1+z2+z3+z4+eps);
            const simd4f n = 0.1/nn;

            simd4f t = 0;

            const int xx = x+padding_cols_offset; 

            // contrast-sensitive features
            for (int o = 0; o < 18; o+=3) 
            {
                simd4f temp0(hist[y+1+1][x+1+1](o));
                simd4f temp1(hist[y+1+1][x+1+1](o+1));
                simd4f temp2(hist[y+1+1][x+1+1](o+2));
                simd4f h0 = min(temp0,nn)*n;
                simd4f h1 = min(temp1,nn)*n;
                simd4f h2 = min(temp2,nn)*n;
                set_hog(hog,o,xx,yy,   sum(h0));
                set_hog(hog,o+1,xx,yy, sum(h1));
                set_hog(hog,o+2,xx,yy, sum(h2));
                t += h0+h1+h2;
            }

            t *= 2*0.2357;

            // contrast-insensitive features
            for (int o = 0; o < 9; o+=3) 
            {
                simd4f temp0 = hist[y+1+1][x+1+1](o)   + hist[y+1+1][x+1+1](o+9);
                simd4f temp1 = hist[y+1+1][x+1+1](o+1) + hist[y+1+1][x+1+1](o+9+1);
                simd4f temp2 = hist[y+1+1][x+1+1](o+2) + hist[y+1+1][x+1+1](o+9+2);
                simd4f h0 = min(temp0,nn)*n;
                simd4f h1 = min(temp1,nn)*n;
                simd4f h2 = min(temp2,nn)*n;
                set_hog(hog,o+18,xx,yy, sum(h0));
                set_hog(hog,o+18+1,xx,yy, sum(h1));
                set_hog(hog,o+18+2,xx,yy, sum(h2));
            }


            float temp[4];
            t.store(temp);

            // texture features
            set_hog(hog,27,xx,yy, temp[0]);
            set_hog(hog,28,xx,yy, temp[1]);
            set_hog(hog,29,xx,yy, temp[2]);
            set_hog(hog,30,xx,yy, temp[3]);
        }
    }
}

// extract_fhog_features(img, planar hog, ...): an image too small for one cell still gets
// 31 (empty) planes.
template <typename image_type>
void extract_fhog(const image_type& img, fhog_planes& hog, int cell_size,
                  int filter_rows_padding, int filter_cols_padding) {
    extract_fhog_features_rgb(img, hog, cell_size, filter_rows_padding, filter_cols_padding);
    if (hog.size() == 0)
        hog.resize(31);
}

// ---------------------------------------------------------------------------------------
// (3) The filters: dlib's float_spatially_filter_image_separable for the detector's 10-tap
// filters with the taps unrolled and held in registers (dlib reloads and broadcasts each
// tap for every eight outputs). Same expressions, same accumulation order.

inline rectangle filter_separable_10(
    const array2d<float>& in_img,
    array2d<float>& out_img,
    const matrix<float,0,1>& row_filter,
    const matrix<float,0,1>& col_filter,
    array2d<float>& scratch,
    bool add_to
) {
    if (row_filter.size() != 10 || col_filter.size() != 10)
        return float_spatially_filter_image_separable(in_img, out_img, row_filter, col_filter, scratch, add_to);
    if (in_img.size() == 0) {
        out_img.clear();
        return rectangle();
    }
    out_img.set_size(in_img.nr(), in_img.nc());

    const long first_row = col_filter.size()/2;
    const long first_col = row_filter.size()/2;
    const long last_row = in_img.nr() - ((col_filter.size()-1)/2);
    const long last_col = in_img.nc() - ((row_filter.size()-1)/2);

    const rectangle non_border = rectangle(first_col, first_row, last_col-1, last_row-1);
    if (!add_to)
        zero_border_pixels(out_img, non_border);
    scratch.set_size(in_img.nr(), in_img.nc());

    // Row filter.
    {
        const simd8f f0 = row_filter(0), f1 = row_filter(1), f2 = row_filter(2), f3 = row_filter(3),
                     f4 = row_filter(4), f5 = row_filter(5), f6 = row_filter(6), f7 = row_filter(7),
                     f8 = row_filter(8), f9 = row_filter(9);
        for (long r = 0; r < in_img.nr(); ++r) {
            const float* in_row = &in_img[r][0];
            float* scratch_row = &scratch[r][0];
            long c = first_col;
            for (; c < last_col-7; c += 8) {
                const float* src = in_row + c - first_col;
                simd8f p, p2, p3, temp = 0, temp2 = 0, temp3 = 0;
                p.load(src);   p2.load(src+1); p3.load(src+2);
                temp += p*f0;  temp2 += p2*f1; temp3 += p3*f2;
                p.load(src+3); p2.load(src+4); p3.load(src+5);
                temp += p*f3;  temp2 += p2*f4; temp3 += p3*f5;
                p.load(src+6); p2.load(src+7); p3.load(src+8);
                temp += p*f6;  temp2 += p2*f7; temp3 += p3*f8;
                p.load(src+9);
                temp += p*f9;
                temp += temp2 + temp3;
                temp.store(scratch_row + c);
            }
            for (; c < last_col; ++c) {
                float p;
                float temp = 0;
                for (long n = 0; n < row_filter.size(); ++n) {
                    p = in_img[r][c-first_col+n];
                    temp += p*row_filter(n);
                }
                scratch[r][c] = temp;
            }
        }
    }

    // Column filter.
    {
        const simd8f f0 = col_filter(0), f1 = col_filter(1), f2 = col_filter(2), f3 = col_filter(3),
                     f4 = col_filter(4), f5 = col_filter(5), f6 = col_filter(6), f7 = col_filter(7),
                     f8 = col_filter(8), f9 = col_filter(9);
        const long stride = scratch.nc();
        for (long r = first_row; r < last_row; ++r) {
            const float* base = &scratch[r-first_row][0];
            float* out_row = &out_img[r][0];
            long c = first_col;
            for (; c < last_col-7; c += 8) {
                const float* src = base + c;
                simd8f p, p2, p3, temp = 0, temp2 = 0, temp3 = 0;
                p.load(src);          p2.load(src+stride);   p3.load(src+2*stride);
                temp += p*f0;         temp2 += p2*f1;        temp3 += p3*f2;
                p.load(src+3*stride); p2.load(src+4*stride); p3.load(src+5*stride);
                temp += p*f3;         temp2 += p2*f4;        temp3 += p3*f5;
                p.load(src+6*stride); p2.load(src+7*stride); p3.load(src+8*stride);
                temp += p*f6;         temp2 += p2*f7;        temp3 += p3*f8;
                p.load(src+9*stride);
                temp += p*f9;
                temp += temp2+temp3;
                if (add_to == false) {
                    temp.store(out_row + c);
                } else {
                    p.load(out_row + c);
                    temp += p;
                    temp.store(out_row + c);
                }
            }
            for (; c < last_col; ++c) {
                float temp = 0;
                for (long m = 0; m < col_filter.size(); ++m)
                    temp += scratch[r-first_row+m][c]*col_filter(m);
                if (add_to == false)
                    out_img[r][c] = temp;
                else
                    out_img[r][c] += temp;
            }
        }
    }
    return non_border;
}

#endif

#if !defined(__AVX2__)
// // no AVX2: dlib's own functions

template <typename image_type>
void pyramid_down_6(const image_type& original, rgb_image& down) {
    pyramid_down<6>()(original, down);
}

template <typename in_image_type>
void pyramid_up_2(const in_image_type& in_img, rgb_image& out_img) {
    pyramid_up(in_img, out_img, pyramid_down<2>());
}

template <typename image_type>
void extract_fhog(const image_type& img, fhog_planes& hog, int cell_size,
                  int filter_rows_padding, int filter_cols_padding) {
    extract_fhog_features(img, hog, cell_size, filter_rows_padding, filter_cols_padding);
}

inline rectangle filter_separable_10(const array2d<float>& in_img, array2d<float>& out_img,
                                     const matrix<float,0,1>& row_filter, const matrix<float,0,1>& col_filter,
                                     array2d<float>& scratch, bool add_to) {
    return float_spatially_filter_image_separable(in_img, out_img, row_filter, col_filter, scratch, add_to);
}

#endif

// ---------------------------------------------------------------------------------------
// The scan: object_detector<scan_fhog_pyramid<pyramid_down<6>>>::operator()(img, dets,
// adjust_threshold) with the pyramid built by the functions above.

template <typename image_type>
void build_pyramid(const frontal_face_detector& detector, const image_type& img,
                   dlib::array<fhog_planes>& feats) {
    const auto& scanner = detector.get_scanner();
    const int cell_size = scanner.get_cell_size();
    const int filter_rows_padding = scanner.get_fhog_window_height();
    const int filter_cols_padding = scanner.get_fhog_window_width();

    // impl::create_fhog_pyramid: how many levels.
    unsigned long levels = 0;
    rectangle rect = get_rect(img);
    pyramid_down<6> pyr;
    do {
        rect = pyr.rect_down(rect);
        ++levels;
    } while (rect.width() >= scanner.get_min_pyramid_layer_width() &&
             rect.height() >= scanner.get_min_pyramid_layer_height() &&
             levels < scanner.get_max_pyramid_levels());
    if (feats.max_size() < levels)
        feats.set_max_size(levels);
    feats.set_size(levels);

    extract_fhog(img, feats[0], cell_size, filter_rows_padding, filter_cols_padding);
    if (feats.size() > 1) {
        rgb_image temp1, temp2;
        pyramid_down_6(img, temp1);
        extract_fhog(temp1, feats[1], cell_size, filter_rows_padding, filter_cols_padding);
        swap(temp1, temp2);
        for (unsigned long i = 2; i < feats.size(); ++i) {
            pyramid_down_6(temp2, temp1);
            extract_fhog(temp1, feats[i], cell_size, filter_rows_padding, filter_cols_padding);
            swap(temp1, temp2);
        }
    }
}

// impl::apply_filters_to_fhog, with the separable filters above.
template <typename fhog_filterbank>
rectangle apply_filters(const fhog_filterbank& w, const fhog_planes& feats, array2d<float>& saliency_image,
                        array2d<float>& scratch) {
    const unsigned long num_separable_filters = w.num_separable_filters();
    rectangle area;
    if (num_separable_filters > w.filters.size()*std::min(w.filters[0].nr(),w.filters[0].nc())/3.0) {
        area = spatially_filter_image(feats[0], saliency_image, w.filters[0]);
        for (unsigned long i = 1; i < w.filters.size(); ++i)
            spatially_filter_image(feats[i], saliency_image, w.filters[i], 1, false, true);
    } else {
        saliency_image.clear();
        unsigned long i = 0;
        while (i < w.row_filters.size() && w.row_filters[i].size() == 0)
            ++i;
        for (; i < w.row_filters.size(); ++i) {
            for (unsigned long j = 0; j < w.row_filters[i].size(); ++j) {
                const bool add_to = saliency_image.size() != 0;
                area = filter_separable_10(feats[i], saliency_image, w.row_filters[i][j], w.col_filters[i][j], scratch, add_to);
            }
        }
        if (saliency_image.size() == 0) {
            saliency_image.set_size(feats[0].nr(), feats[0].nc());
            assign_all_pixels(saliency_image, 0);
        }
    }
    return area;
}

// impl::detect_from_fhog_pyramid, with apply_filters above.
template <typename feature_extractor_type, typename fhog_filterbank>
void detect_from_pyramid(const dlib::array<fhog_planes>& feats, const feature_extractor_type& fe,
                         const fhog_filterbank& w, const double thresh, const unsigned long det_box_height,
                         const unsigned long det_box_width, const int cell_size, const int filter_rows_padding,
                         const int filter_cols_padding, std::vector<std::pair<double, rectangle> >& dets) {
    dets.clear();
    array2d<float> saliency_image, scratch;
    pyramid_down<6> pyr;
    for (unsigned long l = 0; l < feats.size(); ++l) {
        const rectangle area = apply_filters(w, feats[l], saliency_image, scratch);
        for (long r = area.top(); r <= area.bottom(); ++r) {
            for (long c = area.left(); c <= area.right(); ++c) {
                if (saliency_image[r][c] >= thresh) {
                    rectangle rect = fe.feats_to_image(centered_rect(point(c,r),det_box_width,det_box_height),
                        cell_size, filter_rows_padding, filter_cols_padding);
                    rect = pyr.rect_up(rect, l);
                    dets.push_back(std::make_pair(saliency_image[r][c], rect));
                }
            }
        }
    }
    std::sort(dets.rbegin(), dets.rend(), impl::compare_pair_rect);
}

template <typename image_type>
void detect(const frontal_face_detector& detector, const image_type& img,
            std::vector<rect_detection>& final_dets, double adjust_threshold) {
    const auto& scanner = detector.get_scanner();
    dlib::array<fhog_planes> feats;
    build_pyramid(detector, img, feats);

    const unsigned long width = scanner.get_fhog_window_width();
    const unsigned long height = scanner.get_fhog_window_height();
    const unsigned long padding = scanner.get_padding();
    std::vector<std::pair<double, rectangle> > dets;
    std::vector<rect_detection> dets_accum;
    for (unsigned long i = 0; i < detector.num_detectors(); ++i) {
        const double thresh = detector.get_processed_w(i).w(scanner.get_num_dimensions());
        detect_from_pyramid(
            feats, scanner.get_feature_extractor(), detector.get_processed_w(i).get_detect_argument(),
            thresh + adjust_threshold, height-2*padding, width-2*padding, scanner.get_cell_size(),
            height, width, dets);
        for (unsigned long j = 0; j < dets.size(); ++j) {
            rect_detection temp;
            temp.detection_confidence = dets[j].first-thresh;
            temp.weight_index = i;
            temp.rect = dets[j].second;
            dets_accum.push_back(temp);
        }
    }

    // Non-maximum suppression.
    final_dets.clear();
    if (detector.num_detectors() > 1)
        std::sort(dets_accum.rbegin(), dets_accum.rend());
    const test_box_overlap& boxes_overlap = detector.get_overlap_tester();
    for (unsigned long i = 0; i < dets_accum.size(); ++i) {
        bool overlaps = false;
        for (unsigned long k = 0; k < final_dets.size() && !overlaps; ++k)
            overlaps = boxes_overlap(final_dets[k].rect, dets_accum[i].rect);
        if (!overlaps)
            final_dets.push_back(dets_accum[i]);
    }
}

}  // namespace facerec_hog
