// The convolution as plain loops over outputs, taps and channels: any shape, no workspace, no BLAS,
// no SIMD.  It is the slow, obviously-right C++ version (the NumPy one is fastdl/reference/conv.py),
// the fallback that set_conv_naive(true) selects, and the place a new device port starts from.
#include "conv.h"

#include <algorithm>
#include <atomic>

#include "common.h"

namespace fastdl {

namespace {
std::atomic<bool> naive_on{false};
}  // namespace

bool conv_naive() { return naive_on.load(std::memory_order_relaxed); }
void set_conv_naive(bool on) { naive_on.store(on, std::memory_order_relaxed); }

namespace {
// f(input offset, weight offset) for every tap of output pixel (oh, ow) of image n, channel k that
// reads inside the input (padding reads nothing)
template <class F>
inline void for_taps(const Conv2dShape& s, int64_t n, int64_t k, int64_t oh, int64_t ow, F&& f) {
  const int64_t Cg = s.C / s.groups, g = k / (s.K / s.groups);
  for (int64_t c = 0; c < Cg; ++c)
    for (int64_t i = 0; i < s.kh; ++i) {
      const int64_t ih = oh * s.sh + i * s.dh - s.pt;
      if (ih < 0 || ih >= s.H) continue;
      for (int64_t j = 0; j < s.kw; ++j) {
        const int64_t iw = ow * s.sw + j * s.dw - s.pl;
        if (iw < 0 || iw >= s.W) continue;
        f(((n * s.C + g * Cg + c) * s.H + ih) * s.W + iw, ((k * Cg + c) * s.kh + i) * s.kw + j);
      }
    }
}
}  // namespace

// x (N, C, H, W), w (K, C/groups, kh, kw), bias (K) or null -> y (N, K, OH, OW)
template <class T>
void conv2d_forward_naive(const T* x, const T* w, const T* bias, T* y, const Conv2dShape& s) {
  parallel_for(s.N * s.K, 1, [&](int64_t b, int64_t e) {
    for (int64_t nk = b; nk < e; ++nk) {
      const int64_t n = nk / s.K, k = nk % s.K;
      for (int64_t oh = 0; oh < s.OH; ++oh)
        for (int64_t ow = 0; ow < s.OW; ++ow) {
          double acc = bias ? double(bias[k]) : 0.0;
          for_taps(s, n, k, oh, ow, [&](int64_t xi, int64_t wi) { acc += double(x[xi]) * double(w[wi]); });
          y[((n * s.K + k) * s.OH + oh) * s.OW + ow] = T(acc);
        }
    }
  });
}

// gy (N, K, OH, OW) -> gx (like x), gw (like w), gb (K); each may be null.  Each thread owns what it
// writes: gw and gb by output channel, gx by image.
template <class T>
void conv2d_backward_naive(const T* gy, const T* x, const T* w, T* gx, T* gw, T* gb, const Conv2dShape& s) {
  const int64_t Cg = s.C / s.groups, P = s.OH * s.OW;
  if (gb)
    parallel_for(s.K, 1, [&](int64_t b, int64_t e) {
      for (int64_t k = b; k < e; ++k) {
        double acc = 0.0;
        for (int64_t n = 0; n < s.N; ++n)
          for (int64_t p = 0; p < P; ++p) acc += double(gy[(n * s.K + k) * P + p]);
        gb[k] = T(acc);
      }
    });
  // every tap of every output pixel of (n, k), with that pixel's gradient
  auto each = [&](int64_t n, int64_t k, auto&& f) {
    for (int64_t oh = 0; oh < s.OH; ++oh)
      for (int64_t ow = 0; ow < s.OW; ++ow) {
        const T gv = gy[((n * s.K + k) * s.OH + oh) * s.OW + ow];
        for_taps(s, n, k, oh, ow, [&](int64_t xi, int64_t wi) { f(gv, xi, wi); });
      }
  };
  if (gw) {
    std::fill(gw, gw + s.K * Cg * s.kh * s.kw, T(0));
    parallel_for(s.K, 1, [&](int64_t b, int64_t e) {
      for (int64_t k = b; k < e; ++k)
        for (int64_t n = 0; n < s.N; ++n) each(n, k, [&](T gv, int64_t xi, int64_t wi) { gw[wi] += gv * x[xi]; });
    });
  }
  if (gx) {
    std::fill(gx, gx + s.N * s.C * s.H * s.W, T(0));
    parallel_for(s.N, 1, [&](int64_t b, int64_t e) {
      for (int64_t n = b; n < e; ++n)
        for (int64_t k = 0; k < s.K; ++k) each(n, k, [&](T gv, int64_t xi, int64_t wi) { gx[xi] += gv * w[wi]; });
    });
  }
}

template void conv2d_forward_naive<float>(const float*, const float*, const float*, float*, const Conv2dShape&);
template void conv2d_forward_naive<double>(const double*, const double*, const double*, double*, const Conv2dShape&);
template void conv2d_backward_naive<float>(const float*, const float*, const float*, float*, float*, float*,
                                           const Conv2dShape&);
template void conv2d_backward_naive<double>(const double*, const double*, const double*, double*, double*, double*,
                                            const Conv2dShape&);

}  // namespace fastdl
