// im2col and its adjoint, and the "wide" columns read from padded phase planes: the GEMM path's
// operands.  Templates for float and double, private to csrc/conv*.
#pragma once

#include "conv_common.h"

namespace fastdl::conv_detail {
namespace {

// col (Cg*kh*kw, (oh1-oh0)*OW) <- output rows [oh0, oh1) of one image; xn is the image's first
// channel of the group.  Row r = (c, i, j); column = (oh - oh0)*OW + ow.
template <class T>
void im2col(const T* xn, T* col, const Conv2dShape& s, int64_t Cg, int64_t oh0, int64_t oh1) {
  const int64_t kk = s.kh * s.kw, ld = (oh1 - oh0) * s.OW;
  parallel_for(Cg * kk, std::max<int64_t>(1, 16384 / std::max<int64_t>(ld, 1)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t c = r / kk, i = (r / s.kw) % s.kh, j = r % s.kw;
      const T* plane = xn + c * s.H * s.W;
      const int64_t off = j * s.dw - s.pl;
      int64_t lo, hi;
      valid_cols(s, off, lo, hi);
      for (int64_t oh = oh0; oh < oh1; ++oh) {
        T* o = col + r * ld + (oh - oh0) * s.OW;
        const int64_t ih = oh * s.sh - s.pt + i * s.dh;
        if (ih < 0 || ih >= s.H) {
          zero_row(o, s.OW);
          continue;
        }
        const T* src = plane + ih * s.W + off;
        zero_row(o, lo);
        if (s.sw == 1) copy_row(o + lo, src + lo, hi - lo);
        else for (int64_t ow = lo; ow < hi; ++ow) o[ow] = src[ow * s.sw];
        zero_row(o + hi, s.OW - hi);
      }
    }
  });
}

// The adjoint of im2col: gxn (the image's first channel of the group) += col2im(col); a thread
// owns whole channel planes, so there are no races.
template <class T>
void col2im_add(const T* col, T* gxn, const Conv2dShape& s, int64_t Cg, int64_t oh0, int64_t oh1) {
  const int64_t kk = s.kh * s.kw, ld = (oh1 - oh0) * s.OW;
  parallel_for(Cg, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      T* plane = gxn + c * s.H * s.W;
      for (int64_t i = 0; i < s.kh; ++i)
        for (int64_t j = 0; j < s.kw; ++j) {
          const T* in = col + (c * kk + i * s.kw + j) * ld;
          const int64_t off = j * s.dw - s.pl;
          int64_t lo, hi;
          valid_cols(s, off, lo, hi);
          for (int64_t oh = oh0; oh < oh1; ++oh) {
            const int64_t ih = oh * s.sh - s.pt + i * s.dh;
            if (ih < 0 || ih >= s.H) continue;
            T* dst = plane + ih * s.W + off;
            const T* src = in + (oh - oh0) * s.OW;
            if (s.sw == 1) for (int64_t ow = lo; ow < hi; ++ow) dst[ow] += src[ow];
            else for (int64_t ow = lo; ow < hi; ++ow) dst[ow * s.sw] += src[ow];
          }
        }
    }
  });
}

// "Wide" columns: output row oh is computed across the whole width of the padded input, so that
// every im2col row is ONE contiguous run of it instead of OH short copies, and col2im is one axpy
// per row.  A stride s first splits the padded image into s_h x s_w phase planes (rows and columns
// by remainder), in which each kernel tap again reads a contiguous run.  Each output row carries
// Wq - OW extra columns that are computed and dropped: 4% more GEMM work for a 56x56 3x3, 40% for
// LeNet's 10-wide rows, bought back by copies that are long rather than many.  Used when every
// phase plane is read by some tap (a 1x1 stride-2 kernel reads a quarter of the image: not wide).
inline bool is_wide(const Conv2dShape& s) { return !is_pointwise(s) && s.kh * s.kw >= s.sh * s.sw; }

struct Wide {
  int64_t Hq, Wq;    // a phase plane
  int64_t planes;    // phase planes per channel (s_h * s_w)
  bool direct;       // stride 1 and no padding: the input itself is the single plane
  explicit Wide(const Conv2dShape& s)
      : Hq((s.H + s.pt + s.pb + s.sh - 1) / s.sh), Wq((s.W + s.pl + s.pr + s.sw - 1) / s.sw), planes(s.sh * s.sw),
        direct(s.sh == 1 && s.sw == 1 && !(s.pt || s.pl || s.pb || s.pr)) {}
  int64_t channel() const { return planes * Hq * Wq; }
  // where tap (i, j) of output row oh0 starts, within its channel's planes
  int64_t tap(const Conv2dShape& s, int64_t i, int64_t j, int64_t oh0) const {
    const int64_t a = i * s.dh, b = j * s.dw;
    return ((a % s.sh) * s.sw + b % s.sw) * Hq * Wq + (oh0 + a / s.sh) * Wq + b / s.sw;
  }
  // length of the run for output rows [oh0, oh1): the last row stops at OW
  int64_t len(const Conv2dShape& s, int64_t oh0, int64_t oh1) const { return (oh1 - oh0 - 1) * Wq + s.OW; }
};

// Output columns b in [b0, b1) of a phase split whose every phase reads inside the row:
// 0 <= b*SW + p - pl < W for all p < SW.  The rest are edges, checked one by one.
template <int SW>
void interior(int64_t W, int64_t pl, int64_t Wq, int64_t& b0, int64_t& b1) {
  b0 = std::min(Wq, (pl + SW - 1) / SW);
  b1 = std::max(b0, std::min(Wq, (W + pl) / SW));
}

// One padded input row dealt out to its SW phase rows: o[p][b] = src[b*SW + p - pl] where that
// lies in [0, W), else 0.  With SW a constant the interior loop vectorises (for a stride of 2:
// one deinterleave of even and odd columns).
template <int SW, class T>
void split_row(const T* src, T* const* o, int64_t W, int64_t pl, int64_t Wq) {
  int64_t b0, b1;
  interior<SW>(W, pl, Wq, b0, b1);
  auto edge = [&](int64_t b) {
    for (int p = 0; p < SW; ++p) {
      const int64_t w = b * SW + p - pl;
      o[p][b] = w >= 0 && w < W ? src[w] : T(0);
    }
  };
  for (int64_t b = 0; b < b0; ++b) edge(b);
  for (int64_t b = b0; b < b1; ++b)
    for (int p = 0; p < SW; ++p) o[p][b] = src[b * SW + p - pl];
  for (int64_t b = b1; b < Wq; ++b) edge(b);
}

// Its inverse for the gradient: o[w] = ph[(w+pl) % SW][(w+pl) / SW] for w in [0, W).
template <int SW, class T>
void merge_row(const T* const* ph, T* o, int64_t W, int64_t pl, int64_t Wq) {
  int64_t b0, b1;
  interior<SW>(W, pl, Wq, b0, b1);
  for (int64_t b = b0; b < b1; ++b)
    for (int p = 0; p < SW; ++p) o[b * SW + p - pl] = ph[p][b];
  for (int64_t w = 0; w < W; ++w) {  // the edges
    const int64_t wp = w + pl;
    if (wp / SW < b0 || wp / SW >= b1) o[w] = ph[wp % SW][wp / SW];
  }
}

// xq (C, planes, Hq, Wq) <- image xn (C, H, W): padded with zeros, then split into phases.  Each
// input row is read once and dealt out to its s_w phase rows.
template <class T>
void to_planes(const T* xn, T* xq, const Conv2dShape& s, const Wide& q) {
  const int64_t plane = q.Hq * q.Wq;
  parallel_for(s.C * s.sh * q.Hq, 64, [&](int64_t r0, int64_t r1) {
    std::vector<T*> o(s.sw);
    for (int64_t r = r0; r < r1; ++r) {  // r = (c, a, pi): padded row a*sh + pi of channel c
      const int64_t pi = r % s.sh, a = (r / s.sh) % q.Hq, c = r / (s.sh * q.Hq);
      for (int64_t pj = 0; pj < s.sw; ++pj) o[pj] = xq + c * q.channel() + (pi * s.sw + pj) * plane + a * q.Wq;
      const int64_t h = a * s.sh + pi - s.pt;
      if (h < 0 || h >= s.H) {
        for (T* row : o) zero_row(row, q.Wq);
        continue;
      }
      const T* src = xn + (c * s.H + h) * s.W;
      if (s.sw == 1) {  // a padded copy of the row
        zero_row(o[0], s.pl);
        std::memcpy(o[0] + s.pl, src, sizeof(T) * s.W);
        zero_row(o[0] + s.pl + s.W, q.Wq - s.pl - s.W);
      } else if (s.sw == 2) split_row<2>(src, o.data(), s.W, s.pl, q.Wq);
      else
        for (int64_t b = 0; b < q.Wq; ++b)
          for (int64_t pj = 0; pj < s.sw; ++pj) {
            const int64_t w = b * s.sw + pj - s.pl;
            o[pj][b] = w >= 0 && w < s.W ? src[w] : T(0);
          }
    }
  });
}

// gx image (C, H, W) <- gxq (C, planes, Hq, Wq): the adjoint's gather, padding dropped.
template <class T>
void from_planes(const T* gxq, T* gxn, const Conv2dShape& s, const Wide& q) {
  const int64_t plane = q.Hq * q.Wq;
  parallel_for(s.C * s.H, 64, [&](int64_t r0, int64_t r1) {
    std::vector<const T*> ph(s.sw);
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t c = r / s.H, hp = r % s.H + s.pt;
      for (int64_t pj = 0; pj < s.sw; ++pj)
        ph[pj] = gxq + c * q.channel() + ((hp % s.sh) * s.sw + pj) * plane + (hp / s.sh) * q.Wq;
      T* o = gxn + r * s.W;
      if (s.sw == 1) merge_row<1>(ph.data(), o, s.W, s.pl, q.Wq);
      else if (s.sw == 2) merge_row<2>(ph.data(), o, s.W, s.pl, q.Wq);
      else
        for (int64_t w = 0; w < s.W; ++w) o[w] = ph[(w + s.pl) % s.sw][(w + s.pl) / s.sw];
    }
  });
}

// Wide columns come in two forms.  Full: a row per (c, i, j), L long, and one GEMM.  Split (when
// Cg*kh alone is a deep enough GEMM): a row per (c, i), L + (kw-1)*dw long, and kw GEMMs, the j-th
// reading every row from column j*dw on, so a 3x3 kernel copies a third as much.
inline bool split_wide(const Conv2dShape& s) { return s.sw == 1 && s.kw > 1 && (s.C / s.groups) * s.kh >= 64; }

// Row length of split wide columns.
inline int64_t split_len(const Conv2dShape& s, int64_t L) { return L + (s.kw - 1) * s.dw; }

// col <- wide columns (full, or split) of the output rows from oh0 (L = q.len) out of the planes xq
// (the group's first channel); col's rows are ld apart (default: packed).
template <class T>
void im2col_wide(const T* xq, T* col, const Conv2dShape& s, const Wide& q, int64_t Cg, int64_t oh0, int64_t L,
                 bool split, int64_t ld = 0) {
  const int64_t per_c = split ? s.kh : s.kh * s.kw, len = split ? split_len(s, L) : L;
  if (ld == 0) ld = len;  // row stride of col: larger when several images sit side by side
  parallel_for(Cg * per_c, std::max<int64_t>(1, 16384 / len), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t c = r / per_c, i = split ? r % s.kh : (r / s.kw) % s.kh, j = split ? 0 : r % s.kw;
      copy_row(col + r * ld, xq + c * q.channel() + q.tap(s, i, j, oh0), len);
    }
  });
}

// The adjoint: gxq (planes of the group) += col2im of full wide columns; a thread owns whole channels.
template <class T>
void col2im_wide_add(const T* col, T* gxq, const Conv2dShape& s, const Wide& q, int64_t Cg, int64_t oh0, int64_t L) {
  const int64_t kk = s.kh * s.kw;
  parallel_for(Cg, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c)
      for (int64_t r = c * kk; r < (c + 1) * kk; ++r) {
        T* dst = gxq + c * q.channel() + q.tap(s, (r / s.kw) % s.kh, r % s.kw, oh0);
        const T* src = col + r * L;
        for (int64_t e = 0; e < L; ++e) dst[e] += src[e];
      }
  });
}

// w (K, Cg, kh, kw) -> (kw, K, Cg*kh): the kw left operands of split wide columns.
template <class T>
std::vector<T> split_weights(const T* w, const Conv2dShape& s) {
  const int64_t Cg = s.C / s.groups, ck = Cg * s.kh;
  std::vector<T> out(s.kw * s.K * ck);
  for (int64_t k = 0; k < s.K; ++k)
    for (int64_t q = 0; q < ck; ++q)
      for (int64_t j = 0; j < s.kw; ++j) out[(j * s.K + k) * ck + q] = w[(k * ck + q) * s.kw + j];
  return out;
}

// The GEMM operand (rows, band columns) of group g, output rows [oh0, oh1) of image n, and its row
// stride: the input itself for a pointwise convolution, else im2col into col.
template <class T>
const T* band_columns(const T* x, T* col, const Conv2dShape& s, int64_t n, int64_t g, int64_t oh0, int64_t oh1,
                      int64_t& ld) {
  const int64_t Cg = s.C / s.groups;
  if (is_pointwise(s)) {
    ld = s.OH * s.OW;
    return x + (n * s.C + g * Cg) * s.H * s.W + oh0 * s.OW;
  }
  ld = (oh1 - oh0) * s.OW;
  im2col(x + (n * s.C + g * Cg) * s.H * s.W, col, s, Cg, oh0, oh1);
  return col;
}

}  // namespace
}  // namespace fastdl::conv_detail
