// The convolution drivers: bands of output rows, per-image threading, the GEMM path (im2col or
// wide columns + BLAS), the direct float32 kernels where they apply (conv_direct.cpp), and the
// plain-loop fallback (conv_naive.cpp) when selected.
#include "conv.h"

#include <atomic>
#include <type_traits>
#include <vector>

#include "conv_columns.h"
#include "simd.h"

namespace fastdl {

using namespace conv_detail;

namespace {

// Small output planes (a ResNet's last stages: 4x4, 2x2 at 224 / 8) with many channels: per image the
// GEMM has a handful of columns and the weights (K x C*kh*kw, up to 9 MB) are streamed once per image,
// and the direct kernels repack them per call.  There the whole batch is one GEMM over columns
// (rows, N*OH*OW): measured at N=8, 512->512 on 2x2, 3x3, 2 threads, forward 10.6 ms (direct) and
// 8.6 ms (columns per image) against 1.3 ms for PyTorch.
constexpr int64_t kSmallPlane = 64;  // output pixels per image (8x8) up to which the batch is one GEMM
std::atomic<int64_t> small_plane{kSmallPlane};  // (tests set 0 to reach the other paths with small shapes)

bool batch_gemm(const Conv2dShape& s) { return s.OH * s.OW <= small_plane.load() && !is_pointwise(s); }

// cols (rows, N*ohw): row (c, i, j) of group-local c, column (n, oh, ow); 0 in the padding
template <class T>
void batch_columns(const T* x, T* cols, const Conv2dShape& s, int64_t c0, int64_t Cg) {
  const int64_t ohw = s.OH * s.OW, ncol = s.N * ohw;
  parallel_for(Cg * s.kh * s.kw, std::max<int64_t>(1, kSerialWork / std::max<int64_t>(1, ncol)), [&](int64_t a, int64_t e) {
    for (int64_t r = a; r < e; ++r) {
      const int64_t c = r / (s.kh * s.kw), i = r / s.kw % s.kh, j = r % s.kw;
      T* dst = cols + r * ncol;
      for (int64_t n = 0; n < s.N; ++n)
        for (int64_t oh = 0; oh < s.OH; ++oh) {
          const int64_t ih = oh * s.sh - s.pt + i * s.dh;
          for (int64_t ow = 0; ow < s.OW; ++ow) {
            const int64_t iw = ow * s.sw - s.pl + j * s.dw;
            dst[(n * s.OH + oh) * s.OW + ow] = ih >= 0 && ih < s.H && iw >= 0 && iw < s.W
                                                   ? x[((n * s.C + c0 + c) * s.H + ih) * s.W + iw] : T(0);
          }
        }
    }
  });
}

template <class T>
void batch_forward(const T* x, const T* w, const T* bias, T* y, const Conv2dShape& s) {
  const int64_t G = s.groups, Cg = s.C / G, Kg = s.K / G, ohw = s.OH * s.OW, rows = Cg * s.kh * s.kw,
                ncol = s.N * ohw;
  T* cols = workspace<T>(0, rows * ncol);
  T* out = workspace<T>(1, Kg * ncol);
  for (int64_t g = 0; g < G; ++g) {
    batch_columns(x, cols, s, g * Cg, Cg);
    gemm_ld<T>(false, false, Kg, ncol, rows, T(1), w + g * Kg * rows, rows, cols, ncol, T(0), out, ncol);
    for (int64_t n = 0; n < s.N; ++n)
      for (int64_t k = 0; k < Kg; ++k) {
        const T bv = bias ? bias[g * Kg + k] : T(0);
        const T* src = out + k * ncol + n * ohw;
        T* dst = y + (n * s.K + g * Kg + k) * ohw;
        for (int64_t e = 0; e < ohw; ++e) dst[e] = src[e] + bv;
      }
  }
}

template <class T>
void batch_backward(const T* gy, const T* x, const T* w, T* gx, T* gw, const Conv2dShape& s) {
  const int64_t G = s.groups, Cg = s.C / G, Kg = s.K / G, ohw = s.OH * s.OW, rows = Cg * s.kh * s.kw,
                ncol = s.N * ohw;
  T* cols = workspace<T>(0, rows * ncol);
  T* gym = workspace<T>(1, Kg * ncol);
  if (gx) std::fill(gx, gx + s.N * s.C * s.H * s.W, T(0));
  for (int64_t g = 0; g < G; ++g) {
    for (int64_t k = 0; k < Kg; ++k)  // gy of the group as (Kg, N*ohw)
      for (int64_t n = 0; n < s.N; ++n) std::copy_n(gy + (n * s.K + g * Kg + k) * ohw, ohw, gym + k * ncol + n * ohw);
    if (gw) {
      batch_columns(x, cols, s, g * Cg, Cg);
      gemm_ld<T>(false, true, Kg, rows, ncol, T(1), gym, ncol, cols, ncol, T(0), gw + g * Kg * rows, rows);
    }
    if (gx) {
      gemm_ld<T>(true, false, rows, ncol, Kg, T(1), w + g * Kg * rows, rows, gym, ncol, T(0), cols, ncol);
      // col2im: every column entry back to the input cell it read (channels in parallel: no overlap)
      parallel_for(Cg, 1, [&](int64_t a, int64_t e) {
        for (int64_t c = a; c < e; ++c)
          for (int64_t i = 0; i < s.kh; ++i)
            for (int64_t j = 0; j < s.kw; ++j) {
              const T* src = cols + ((c * s.kh + i) * s.kw + j) * ncol;
              for (int64_t n = 0; n < s.N; ++n)
                for (int64_t oh = 0; oh < s.OH; ++oh) {
                  const int64_t ih = oh * s.sh - s.pt + i * s.dh;
                  if (ih < 0 || ih >= s.H) continue;
                  for (int64_t ow = 0; ow < s.OW; ++ow) {
                    const int64_t iw = ow * s.sw - s.pl + j * s.dw;
                    if (iw >= 0 && iw < s.W)
                      gx[((n * s.C + g * Cg + c) * s.H + ih) * s.W + iw] += src[(n * s.OH + oh) * s.OW + ow];
                  }
                }
            }
      });
    }
  }
}

}  // namespace

int64_t conv_small_plane() { return small_plane.load(); }
void set_conv_small_plane(int64_t limit) { small_plane.store(limit < 0 ? kSmallPlane : limit); }

template <class T>
void conv2d_forward(const T* x, const T* w, const T* bias, T* y, const Conv2dShape& s) {
  if (conv_naive()) return conv2d_forward_naive(x, w, bias, y, s);
  if (batch_gemm(s)) return batch_forward(x, w, bias, y, s);
  if constexpr (std::is_same_v<T, float>) {
    if (conv2d_direct(x, w, bias, y, s)) return;
  }
  const int64_t G = s.groups, Cg = s.C / G, Kg = s.K / G, ohw = s.OH * s.OW, rows = Cg * s.kh * s.kw;
  const bool pw = is_pointwise(s), wide = is_wide(s), split = wide && split_wide(s);
  const int nthr = max_threads();
  const Wide q(s);
  const int64_t ck = Cg * s.kh, width = wide ? q.Wq : s.OW;  // GEMM columns per output row
  const int64_t budget = images_in_parallel(s.N, nthr) ? kBandBytes : kSerialBandBytes;
  const int64_t bh = pw ? s.OH : band_rows(s, rows, width, budget, sizeof(T));
  // Small images (LeNet's are 10x10) are too narrow a GEMM alone: `per` of them share one, their
  // wide columns side by side, as long as every thread still gets a block of its own.
  const int64_t L_img = wide ? q.len(s, 0, s.OH) : 0;
  int64_t per = 1;
  if (wide && !split && bh == s.OH && L_img < kMinCols) {
    per = std::min(kMinCols / L_img, std::max<int64_t>(1, budget / (rows * L_img * int64_t(sizeof(T)))));
    per = std::max<int64_t>(1, std::min(per, s.N / std::max(nthr, 1)));
  }
  const int64_t blocks = (s.N + per - 1) / per;
  const bool par = images_in_parallel(blocks, nthr);
  const int64_t col_size = split ? ck * split_len(s, bh * width) : rows * std::max(bh * width, per * L_img);
  const std::vector<T> wsplit = split ? split_weights(w, s) : std::vector<T>();
  for_each_image(blocks, par, [&](int64_t blk, int64_t) {
    const int64_t n0 = blk * per, nb = std::min(per, s.N - n0);
    T* col = pw ? nullptr : workspace<T>(0, col_size);
    T* out = wide ? workspace<T>(1, Kg * std::max(bh * width, nb * L_img)) : nullptr;
    const T* xq = x + n0 * s.C * s.H * s.W;  // wide: the block's phase planes, image after image
    if (wide && !q.direct) {
      T* buf = workspace<T>(2, nb * s.C * q.channel());
      for (int64_t b = 0; b < nb; ++b) to_planes(x + (n0 + b) * s.C * s.H * s.W, buf + b * s.C * q.channel(), s, q);
      xq = buf;
    }
    for (int64_t oh0 = 0; oh0 < s.OH; oh0 += bh) {
      const int64_t oh1 = std::min(s.OH, oh0 + bh), nc = (oh1 - oh0) * s.OW;
      for (int64_t g = 0; g < G; ++g) {
        const T* wg = w + g * Kg * rows;
        if (wide) {  // (Kg, nb*L) wide outputs, then each output row's first OW values (+ bias) into y
          const int64_t L = q.len(s, oh0, oh1), ld = nb * L;
          for (int64_t b = 0; b < nb; ++b)
            im2col_wide(xq + (b * s.C + g * Cg) * q.channel(), col + b * L, s, q, Cg, oh0, L, split, nb > 1 ? ld : 0);
          if (!split) gemm_ld<T>(false, false, Kg, ld, rows, T(1), wg, rows, col, ld, T(0), out, ld);
          for (int64_t j = 0; split && j < s.kw; ++j)
            gemm_ld<T>(false, false, Kg, L, ck, T(1), wsplit.data() + (j * s.K + g * Kg) * ck, ck, col + j * s.dw,
                       split_len(s, L), j ? T(1) : T(0), out, L);
          for (int64_t b = 0; b < nb; ++b) {
            T* dst = y + ((n0 + b) * s.K + g * Kg) * ohw + oh0 * s.OW;
            for (int64_t k = 0; k < Kg; ++k) {
              const T bv = bias ? bias[g * Kg + k] : T(0);
              for (int64_t r = 0; r < oh1 - oh0; ++r) {
                T* o = dst + k * ohw + r * s.OW;
                const T* src = out + k * ld + b * L + r * q.Wq;
                for (int64_t e = 0; e < s.OW; ++e) o[e] = src[e] + bv;
              }
            }
          }
          continue;
        }
        T* dst = y + (n0 * s.K + g * Kg) * ohw + oh0 * s.OW;  // (Kg, nc), row stride ohw (here nb == 1)
        int64_t ld;
        const T* src = band_columns(x, col, s, n0, g, oh0, oh1, ld);
        T beta = T(0);
        if (bias) {
          for (int64_t k = 0; k < Kg; ++k) std::fill(dst + k * ohw, dst + k * ohw + nc, bias[g * Kg + k]);
          beta = T(1);
        }
        gemm_ld<T>(false, false, Kg, nc, rows, T(1), wg, rows, src, ld, beta, dst, ohw);
      }
    }
  });
}

template <class T>
void conv2d_backward(const T* gy, const T* x, const T* w, T* gx, T* gw, T* gb, const Conv2dShape& s) {
  if (conv_naive()) return conv2d_backward_naive(gy, x, w, gx, gw, gb, s);
  const int64_t G = s.groups, Cg = s.C / G, Kg = s.K / G, ohw = s.OH * s.OW, rows = Cg * s.kh * s.kw;
  const bool pw = is_pointwise(s), wide = is_wide(s);
  if (gb) {
    parallel_for(s.K, std::max<int64_t>(1, kSerialWork / (s.N * ohw)), [&](int64_t a, int64_t e) {
      for (int64_t k = a; k < e; ++k) {
        double acc = 0;
        for (int64_t n = 0; n < s.N; ++n) acc += SIMD(sum_d<T>)(gy + (n * s.K + k) * ohw, ohw);
        gb[k] = T(acc);
      }
    });
  }
  if (batch_gemm(s)) {
    if (gx || gw) batch_backward(gy, x, w, gx, gw, s);
    return;
  }
  if constexpr (std::is_same_v<T, float>) {
    if (gw && conv2d_direct_gw(gy, x, gw, s)) gw = nullptr;  // done
  }
  if constexpr (std::is_same_v<T, float>) {
    if (gx && conv2d_direct_gx(gy, w, gx, s)) gx = nullptr;  // done
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
  const int nthr = max_threads();
  const bool par = images_in_parallel(s.N, nthr);
  const Wide q(s);
  const int64_t chw = s.C * s.H * s.W;
  const int64_t width = wide ? q.Wq : s.OW;  // GEMM columns per output row
  const int64_t bh = pw ? s.OH : band_rows(s, rows, width, par ? kBandBytes : kSerialBandBytes, sizeof(T));
  const bool split = wide && gw && split_wide(s);
  const int64_t ck = Cg * s.kh, col_size = split ? ck * split_len(s, bh * width) : rows * bh * width;
  // gw: each thread accumulates into its own partial (split: in split_weights' layout), summed at the end.
  const int64_t wsz = s.K * rows;
  std::vector<T> partial(gw ? (par ? nthr : 1) * wsz : 0, T(0));
  for_each_image(s.N, par, [&](int64_t n, int64_t tid) {
    T* gwt = gw ? partial.data() + tid * wsz : nullptr;
    T* col = gw && !pw ? workspace<T>(0, col_size) : nullptr;
    T* dcol = gx && !pw ? workspace<T>(1, rows * bh * width) : nullptr;
    const T* xq = x + n * chw;             // wide: the image's phase planes (for gw)
    T* gxq = gx ? gx + n * chw : nullptr;  // wide: their gradient, gathered into gx at the end
    T* gyw = wide ? workspace<T>(3, Kg * bh * width) : nullptr;
    if (wide && !q.direct) {
      if (gw) {
        T* buf = workspace<T>(2, s.C * q.channel());
        to_planes(x + n * chw, buf, s, q);
        xq = buf;
      }
      if (gx) gxq = workspace<T>(4, s.C * q.channel());
    }
    if (gx && !pw) std::fill(gxq, gxq + (wide ? s.C * q.channel() : chw), T(0));
    for (int64_t oh0 = 0; oh0 < s.OH; oh0 += bh) {
      const int64_t oh1 = std::min(s.OH, oh0 + bh);
      const int64_t L = wide ? q.len(s, oh0, oh1) : (oh1 - oh0) * s.OW;
      for (int64_t g = 0; g < G; ++g) {
        const T* wg = w + g * Kg * rows;
        // this band of gy as a (Kg, L) operand with row stride ldg: wide copies it with zero gaps
        const T* gyb = gy + (n * s.K + g * Kg) * ohw + oh0 * s.OW;
        int64_t ldg = ohw;
        if (wide) {
          for (int64_t k = 0; k < Kg; ++k)
            for (int64_t r = 0; r < oh1 - oh0; ++r) {
              T* o = gyw + k * L + r * q.Wq;
              copy_row(o, gyb + k * ohw + r * s.OW, s.OW);
              if (r + 1 < oh1 - oh0) zero_row(o + s.OW, q.Wq - s.OW);
            }
          gyb = gyw;
          ldg = L;
        }
        if (gw) {  // gw_g (Kg, rows) += gy band @ columns^T
          int64_t ld = L;
          const T* src = col;
          if (wide) im2col_wide(xq + g * Cg * q.channel(), col, s, q, Cg, oh0, L, split);
          else src = band_columns(x, col, s, n, g, oh0, oh1, ld);
          if (!split) gemm_ld<T>(false, true, Kg, rows, L, T(1), gyb, ldg, src, ld, T(1), gwt + g * Kg * rows, rows);
          for (int64_t j = 0; split && j < s.kw; ++j)
            gemm_ld<T>(false, true, Kg, ck, L, T(1), gyb, ldg, col + j * s.dw, split_len(s, L), T(1),
                       gwt + (j * s.K + g * Kg) * ck, ck);
        }
        if (gx && pw) {  // gx band of group g = w_g^T @ gy band
          gemm_ld<T>(true, false, Cg, L, Kg, T(1), wg, rows, gyb, ldg, T(0), gx + (n * s.C + g * Cg) * ohw + oh0 * s.OW,
                     ohw);
        } else if (gx) {
          gemm_ld<T>(true, false, rows, L, Kg, T(1), wg, rows, gyb, ldg, T(0), dcol, L);
          if (wide) col2im_wide_add(dcol, gxq + g * Cg * q.channel(), s, q, Cg, oh0, L);
          else col2im_add(dcol, gxq + g * Cg * s.H * s.W, s, Cg, oh0, oh1);
        }
      }
    }
    if (gx && wide && !q.direct) from_planes(gxq, gx + n * chw, s, q);
  });
  if (gw) {
    const int64_t parts = par ? nthr : 1;
    parallel_for(wsz, 4096, [&](int64_t a, int64_t e) {
      for (int64_t i = a; i < e; ++i) {  // i = (k, c*kh + ii, j); split keeps it at ((j, k), c*kh + ii)
        const int64_t src = split ? ((i % s.kw) * s.K + i / rows) * ck + (i % rows) / s.kw : i;
        T acc = partial[src];
        for (int64_t t = 1; t < parts; ++t) acc += partial[t * wsz + src];
        gw[i] = acc;
      }
    });
  }
}

template void conv2d_forward<float>(const float*, const float*, const float*, float*, const Conv2dShape&);
template void conv2d_forward<double>(const double*, const double*, const double*, double*, const Conv2dShape&);
template void conv2d_backward<float>(const float*, const float*, const float*, float*, float*, float*,
                                     const Conv2dShape&);
template void conv2d_backward<double>(const double*, const double*, const double*, double*, double*, double*,
                                      const Conv2dShape&);

}  // namespace fastdl
