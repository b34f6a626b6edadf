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

// x (N, C, H, W), w (K, C/groups, kh, kw), bias (K) or null -> y (N, K, OH, OW)
template <class T>
void conv2d_forward_naive(const T* x, const T* w, const T* bias, T* y, const Conv2dShape& s) {
  const int64_t Cg = s.C / s.groups, Kg = s.K / s.groups;
  parallel_for(s.N * s.K, 1, [&](int64_t b, int64_t e) {
    for (int64_t nk = b; nk < e; ++nk) {
      const int64_t n = nk / s.K, k = nk % s.K, g = k / Kg;
      for (int64_t oh = 0; oh < s.OH; ++oh)
        for (int64_t ow = 0; ow < s.OW; ++ow) {
          double acc = bias ? double(bias[k]) : 0.0;
          for (int64_t c = 0; c < Cg; ++c)
            for (int64_t i = 0; i < s.kh; ++i) {
              const int64_t ih = oh * s.sh + i * s.dh - s.pt;
              if (ih < 0 || ih >= s.H) continue;
              for (int64_t j = 0; j < s.kw; ++j) {
                const int64_t iw = ow * s.sw + j * s.dw - s.pl;
                if (iw < 0 || iw >= s.W) continue;
                acc += double(x[((n * s.C + g * Cg + c) * s.H + ih) * s.W + iw]) *
                       double(w[((k * Cg + c) * s.kh + i) * s.kw + j]);
              }
            }
          y[((n * s.K + k) * s.OH + oh) * s.OW + ow] = T(acc);
        }
    }
  });
}

// gy (N, K, OH, OW) -> gx (like x), gw (like w), gb (K); each may be null
template <class T>
void conv2d_backward_naive(const T* gy, const T* x, const T* w, T* gx, T* gw, T* gb, const Conv2dShape& s) {
  const int64_t Cg = s.C / s.groups, Kg = s.K / s.groups, P = s.OH * s.OW;
  if (gb)
    parallel_for(s.K, 1, [&](int64_t b, int64_t e) {
      for (int64_t k = b; k < e; ++k) {
        double acc = 0.0;
        for (int64_t n = 0; n < s.N; ++n)
          for (int64_t p = 0; p < P; ++p) acc += double(gy[(n * s.K + k) * P + p]);
        gb[k] = T(acc);
      }
    });
  // each tap of each output pixel pairs one input value with one weight; which loops own what:
  // gw by output channel, gx by image (so no two threads write one element)
  auto taps = [&](int64_t n, int64_t k, auto&& f) {
    const int64_t g = k / Kg;
    for (int64_t oh = 0; oh < s.OH; ++oh)
      for (int64_t ow = 0; ow < s.OW; ++ow) {
        const T gv = gy[((n * s.K + k) * s.OH + oh) * s.OW + ow];
        for (int64_t c = 0; c < Cg; ++c)
          for (int64_t i = 0; i < s.kh; ++i) {
            const int64_t ih = oh * s.sh + i * s.dh - s.pt;
            if (ih < 0 || ih >= s.H) continue;
            for (int64_t j = 0; j < s.kw; ++j) {
              const int64_t iw = ow * s.sw + j * s.dw - s.pl;
              if (iw < 0 || iw >= s.W) continue;
              f(gv, ((n * s.C + g * Cg + c) * s.H + ih) * s.W + iw, ((k * Cg + c) * s.kh + i) * s.kw + j);
            }
          }
      }
  };
  if (gw) {
    std::fill(gw, gw + s.K * Cg * s.kh * s.kw, T(0));
    parallel_for(s.K, 1, [&](int64_t b, int64_t e) {
      for (int64_t k = b; k < e; ++k)
        for (int64_t n = 0; n < s.N; ++n) taps(n, k, [&](T gv, int64_t xi, int64_t wi) { gw[wi] += gv * x[xi]; });
    });
  }
  if (gx) {
    std::fill(gx, gx + s.N * s.C * s.H * s.W, T(0));
    parallel_for(s.N, 1, [&](int64_t b, int64_t e) {
      for (int64_t n = b; n < e; ++n)
        for (int64_t k = 0; k < s.K; ++k) taps(n, k, [&](T gv, int64_t xi, int64_t wi) { gx[xi] += gv * w[wi]; });
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
