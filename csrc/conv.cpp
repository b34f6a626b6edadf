#include "conv.h"

#include <vector>

#include "common.h"
#include "gemm.h"

namespace fastdl {

namespace {

constexpr int64_t kColBudget = int64_t(8) << 20;  // bytes of column buffer at most (unless one image needs more)
constexpr int64_t kMinCols = 4096;                // GEMM width worth batching images for

// Images per chunk: enough columns to keep the GEMM efficient, within the budget.
int64_t chunk_images(const Conv2dShape& s, int64_t rows, int64_t elem) {
  const int64_t ohw = s.OH * s.OW;
  int64_t b = std::max<int64_t>(1, (kMinCols + ohw - 1) / std::max<int64_t>(ohw, 1));
  const int64_t fit = kColBudget / std::max<int64_t>(rows * ohw * elem, 1);
  b = std::min(b, std::max<int64_t>(fit, 1));
  return std::min(b, s.N);
}

// Column and staging buffers persist per thread between calls: a fresh 8 MB buffer per call cost
// page faults on every call (the kernel zeroing new pages showed up at ~10% of a ResNet layer).
template <class T> T* workspace(int slot, size_t n) {
  thread_local std::vector<T> bufs[3];
  auto& b = bufs[slot];
  if (b.size() < n) b.resize(n);
  return b.data();
}

// Moves group g's channels of images [n0, n0+nb) between the NCHW tensor t (N, K, ohw) and the
// GEMM layout (Kg, nb*ohw): to_gemm gathers t into m, otherwise m is scattered into t.
template <class T>
void regroup(T* t, T* m, const Conv2dShape& s, int64_t n0, int64_t nb, int64_t g, bool to_gemm) {
  const int64_t Kg = s.K / s.groups, ohw = s.OH * s.OW;
  parallel_for(nb * Kg, 8, [&](int64_t a, int64_t e) {
    for (int64_t q = a; q < e; ++q) {
      const int64_t b = q / Kg, k = q % Kg;
      T* tp = t + ((n0 + b) * s.K + g * Kg + k) * ohw;
      T* mp = m + k * nb * ohw + b * ohw;
      if (to_gemm) std::memcpy(mp, tp, sizeof(T) * ohw);
      else std::memcpy(tp, mp, sizeof(T) * ohw);
    }
  });
}

bool is_pointwise(const Conv2dShape& s) {
  return s.kh == 1 && s.kw == 1 && s.sh == 1 && s.sw == 1 && s.pt == 0 && s.pl == 0 && s.pb == 0 && s.pr == 0;
}

// col (Cg*kh*kw, nb*OH*OW) <- images x[n0 .. n0+nb), channels [c0, c0+Cg)
// row r = (c, i, j); column = b*OH*OW + oh*OW + ow.
template <class T>
void im2col(const T* x, T* col, const Conv2dShape& s, int64_t n0, int64_t nb, int64_t c0, int64_t Cg) {
  const int64_t ohw = s.OH * s.OW, rows = Cg * s.kh * s.kw, ld = nb * ohw;
  parallel_for(rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(ld, 1)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t c = r / (s.kh * s.kw), i = (r / s.kw) % s.kh, j = r % s.kw;
      for (int64_t b = 0; b < nb; ++b) {
        const T* plane = x + ((n0 + b) * s.C + c0 + c) * s.H * s.W;
        T* out = col + r * ld + b * ohw;
        for (int64_t oh = 0; oh < s.OH; ++oh) {
          const int64_t ih = oh * s.sh - s.pt + i * s.dh;
          T* o = out + oh * s.OW;
          if (ih < 0 || ih >= s.H) {
            std::fill(o, o + s.OW, T(0));
            continue;
          }
          const T* src = plane + ih * s.W;
          const int64_t off = j * s.dw - s.pl;
          if (s.sw == 1) {
            // contiguous: zero the left/right padding, copy the middle
            const int64_t lo = std::min(std::max<int64_t>(0, -off), s.OW);
            const int64_t hi = std::max(lo, std::min(s.OW, s.W - off));
            std::fill(o, o + lo, T(0));
            std::memcpy(o + lo, src + lo + off, sizeof(T) * (hi - lo));
            std::fill(o + hi, o + s.OW, T(0));
          } else {
            // strided: the in-range outputs are [lo, hi); copy them without bounds checks
            const int64_t lo = std::min(off < 0 ? (-off + s.sw - 1) / s.sw : int64_t(0), s.OW);
            const int64_t hi = std::max(lo, std::min(s.OW, s.W - off > 0 ? (s.W - off + s.sw - 1) / s.sw : int64_t(0)));
            std::fill(o, o + lo, T(0));
            const T* sp = src + off;
            for (int64_t ow = lo; ow < hi; ++ow) o[ow] = sp[ow * s.sw];
            std::fill(o + hi, o + s.OW, T(0));
          }
        }
      }
    }
  });
}

// gx[n0 .. n0+nb), channels [c0, c0+Cg) += col2im(col); one thread per channel: no races.
template <class T>
void col2im_add(const T* col, T* gx, const Conv2dShape& s, int64_t n0, int64_t nb, int64_t c0, int64_t Cg) {
  const int64_t ohw = s.OH * s.OW, ld = nb * ohw, kk = s.kh * s.kw;
  parallel_for(Cg * nb, 1, [&](int64_t q0, int64_t q1) {
    for (int64_t q = q0; q < q1; ++q) {
      const int64_t c = q / nb, b = q % nb;
      T* plane = gx + ((n0 + b) * s.C + c0 + c) * s.H * s.W;
      for (int64_t i = 0; i < s.kh; ++i)
        for (int64_t j = 0; j < s.kw; ++j) {
          const T* in = col + (c * kk + i * s.kw + j) * ld + b * ohw;
          const int64_t off = j * s.dw - s.pl;
          for (int64_t oh = 0; oh < s.OH; ++oh) {
            const int64_t ih = oh * s.sh - s.pt + i * s.dh;
            if (ih < 0 || ih >= s.H) continue;
            T* dst = plane + ih * s.W;
            const T* src = in + oh * s.OW;
            if (s.sw == 1) {
              const int64_t lo = std::min(std::max<int64_t>(0, -off), s.OW);
              const int64_t hi = std::max(lo, std::min(s.OW, s.W - off));
              for (int64_t ow = lo; ow < hi; ++ow) dst[ow + off] += src[ow];
            } else {
              const int64_t lo = std::min(off < 0 ? (-off + s.sw - 1) / s.sw : int64_t(0), s.OW);
              const int64_t hi = std::max(lo, std::min(s.OW, s.W - off > 0 ? (s.W - off + s.sw - 1) / s.sw : int64_t(0)));
              T* dp = dst + off;
              for (int64_t ow = lo; ow < hi; ++ow) dp[ow * s.sw] += src[ow];
            }
          }
        }
    }
  });
}

// The (Cg*kh*kw, nb*ohw) columns of group g for images [n0, n0+nb): the input itself for a
// pointwise convolution (always one image at a time), else im2col into col.
template <class T>
const T* group_columns(const T* x, T* col, const Conv2dShape& s, int64_t n0, int64_t nb, int64_t g) {
  const int64_t Cg = s.C / s.groups;
  if (is_pointwise(s)) return x + (n0 * s.C + g * Cg) * s.OH * s.OW;
  im2col(x, col, s, n0, nb, g * Cg, Cg);
  return col;
}

}  // namespace

template <class T>
void conv2d_forward(const T* x, const T* w, const T* bias, T* y, const Conv2dShape& s) {
  const int64_t G = s.groups, Cg = s.C / G, Kg = s.K / G, ohw = s.OH * s.OW, rows = Cg * s.kh * s.kw;
  const bool pw = is_pointwise(s);
  const int64_t nb_max = pw ? 1 : chunk_images(s, rows, sizeof(T));
  T* col = pw ? nullptr : workspace<T>(0, rows * nb_max * ohw);
  T* tmp = nb_max > 1 ? workspace<T>(1, Kg * nb_max * ohw) : nullptr;
  for (int64_t n0 = 0; n0 < s.N; n0 += nb_max) {
    const int64_t nb = std::min(nb_max, s.N - n0);
    for (int64_t g = 0; g < G; ++g) {
      const T* wg = w + g * Kg * rows;
      const T* cols = group_columns(x, col, s, n0, nb, g);
      if (nb == 1) {  // straight into y[n0], rows of group g
        gemm<T>(false, false, Kg, ohw, rows, T(1), wg, cols, T(0), y + (n0 * s.K + g * Kg) * ohw);
      } else {        // (Kg, nb*ohw), then scattered to (nb, K, ohw)
        gemm<T>(false, false, Kg, nb * ohw, rows, T(1), wg, cols, T(0), tmp);
        regroup(y, tmp, s, n0, nb, g, false);
      }
    }
    if (bias) {
      parallel_for(nb * s.K, 8, [&](int64_t a, int64_t e) {
        for (int64_t q = a; q < e; ++q) {
          T* o = y + (n0 * s.K + q) * ohw;
          const T bv = bias[q % s.K];
          for (int64_t i = 0; i < ohw; ++i) o[i] += bv;
        }
      });
    }
  }
}

template <class T>
void conv2d_backward(const T* gy, const T* x, const T* w, T* gx, T* gw, T* gb, const Conv2dShape& s) {
  const int64_t G = s.groups, Cg = s.C / G, Kg = s.K / G, ohw = s.OH * s.OW, rows = Cg * s.kh * s.kw;
  const bool pw = is_pointwise(s);
  if (gb) {
    parallel_for(s.K, 1, [&](int64_t a, int64_t e) {
      for (int64_t k = a; k < e; ++k) {
        double acc = 0;
        for (int64_t n = 0; n < s.N; ++n) {
          const T* p = gy + (n * s.K + k) * ohw;
          T part = 0;
          for (int64_t i = 0; i < ohw; ++i) part += p[i];
          acc += part;
        }
        gb[k] = T(acc);
      }
    });
  }
  if (!gx && !gw) return;
  // Stride 1, no dilation, one group: gx is itself a convolution of gy with the flipped, transposed
  // kernel (pad k-1-p): im2col(gy) + one well-shaped GEMM instead of a thin GEMM and a scatter (col2im).
  if (gx && !pw && s.sh == 1 && s.sw == 1 && s.dh == 1 && s.dw == 1 && s.groups == 1 && s.C >= 32 && s.pt < s.kh &&

      s.pb < s.kh && s.pl < s.kw && s.pr < s.kw) {
    std::vector<T> wf(s.C * s.K * s.kh * s.kw);
    for (int64_t k = 0; k < s.K; ++k)
      for (int64_t c = 0; c < s.C; ++c)
        for (int64_t i = 0; i < s.kh; ++i)
          for (int64_t j = 0; j < s.kw; ++j)
            wf[((c * s.K + k) * s.kh + (s.kh - 1 - i)) * s.kw + (s.kw - 1 - j)] = w[((k * s.C + c) * s.kh + i) * s.kw + j];
    Conv2dShape t = s;
    t.C = s.K; t.H = s.OH; t.W = s.OW; t.K = s.C;
    t.pt = s.kh - 1 - s.pt; t.pb = s.kh - 1 - s.pb; t.pl = s.kw - 1 - s.pl; t.pr = s.kw - 1 - s.pr;
    t.OH = s.H; t.OW = s.W;
    conv2d_forward<T>(gy, wf.data(), nullptr, gx, t);
    gx = nullptr;  // done
    if (!gw) return;
  }
  if (gx) std::fill(gx, gx + s.N * s.C * s.H * s.W, T(0));
  const int64_t nb_max = pw ? 1 : chunk_images(s, rows, sizeof(T));
  T* col = pw ? nullptr : workspace<T>(0, rows * nb_max * ohw);
  T* gyc = nb_max > 1 ? workspace<T>(2, Kg * nb_max * ohw) : nullptr;
  bool first = true;
  for (int64_t n0 = 0; n0 < s.N; n0 += nb_max) {
    const int64_t nb = std::min(nb_max, s.N - n0);
    for (int64_t g = 0; g < G; ++g) {
      const T* wg = w + g * Kg * rows;
      // gy of this chunk and group as (Kg, nb*ohw)
      const T* gyg;
      if (nb == 1) {
        gyg = gy + (n0 * s.K + g * Kg) * ohw;
      } else {
        regroup(const_cast<T*>(gy), gyc, s, n0, nb, g, true);  // reads gy only
        gyg = gyc;
      }
      if (gw) {
        const T* cols = group_columns(x, col, s, n0, nb, g);
        // gw_g (Kg, rows) (+)= gy_g (Kg, nb*ohw) @ cols^T
        gemm<T>(false, true, Kg, rows, nb * ohw, T(1), gyg, cols, first ? T(0) : T(1), gw + g * Kg * rows);
      }
      if (gx) {
        if (pw) {  // gx[n0] channels of g = w_g^T @ gy_g directly
          gemm<T>(true, false, Cg, ohw, Kg, T(1), wg, gyg, T(0), gx + (n0 * s.C + g * Cg) * ohw);
        } else {
          gemm<T>(true, false, rows, nb * ohw, Kg, T(1), wg, gyg, T(0), col);
          col2im_add(col, gx, s, n0, nb, g * Cg, Cg);
        }
      }
    }
    first = false;
  }
}

template void conv2d_forward<float>(const float*, const float*, const float*, float*, const Conv2dShape&);
template void conv2d_forward<double>(const double*, const double*, const double*, double*, const Conv2dShape&);
template void conv2d_backward<float>(const float*, const float*, const float*, float*, float*, float*,
                                     const Conv2dShape&);
template void conv2d_backward<double>(const double*, const double*, const double*, double*, double*, double*,
                                      const Conv2dShape&);

}  // namespace fastdl
