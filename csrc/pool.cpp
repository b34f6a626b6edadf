#include "pool.h"

#include "common.h"
#include "simd.h"

namespace fastdl {

namespace {
int64_t plane_grain(int64_t work) { return std::max<int64_t>(1, 32768 / std::max<int64_t>(work, 1)); }
}  // namespace

template <class T> void max_pool2d_forward(const T* x, T* y, int64_t* idx, const Pool2dShape& s) {
  const int64_t in = s.H * s.W, out = s.OH * s.OW;
  const bool simple = s.ph == 0 && s.pw == 0 && s.dh == 1 && s.dw == 1 && s.kh == 2 && s.kw == 2 && s.sh == 2 &&
                      s.sw == 2 && 2 * s.OH <= s.H && 2 * s.OW <= s.W;
  parallel_for(s.planes, plane_grain(in), [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const T* xp = x + p * in;
      T* yp = y + p * out;
      int64_t* ip = idx + p * out;
      if (simple) {  // the common 2x2/2 case: no bounds checks, vectorised where the CPU can
        for (int64_t oh = 0; oh < s.OH; ++oh)
          SIMD(maxpool2x2_row<T>)(xp + 2 * oh * s.W, xp + (2 * oh + 1) * s.W, yp + oh * s.OW, ip + oh * s.OW, s.OW,
                                  2 * oh * s.W, s.W);
        continue;
      }
      for (int64_t oh = 0; oh < s.OH; ++oh)
        for (int64_t ow = 0; ow < s.OW; ++ow) {
          T m = -std::numeric_limits<T>::infinity();
          int64_t mi = -1;
          for (int64_t i = 0; i < s.kh; ++i) {
            const int64_t ih = oh * s.sh - s.ph + i * s.dh;
            if (ih < 0 || ih >= s.H) continue;
            for (int64_t j = 0; j < s.kw; ++j) {
              const int64_t iw = ow * s.sw - s.pw + j * s.dw;
              if (iw < 0 || iw >= s.W) continue;
              const T v = xp[ih * s.W + iw];
              if (mi < 0 || v > m || (v != v && m == m)) {
                m = v;
                mi = ih * s.W + iw;
              }
            }
          }
          yp[oh * s.OW + ow] = m;
          ip[oh * s.OW + ow] = mi;  // -1: a window entirely in padding (its maximum is -inf, from no input)
        }
    }
  });
}

template <class T> void max_pool2d_backward(const T* gy, const int64_t* idx, T* gx, const Pool2dShape& s) {
  const int64_t in = s.H * s.W, out = s.OH * s.OW;
  parallel_for(s.planes, plane_grain(in), [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      T* g = gx + p * in;
      std::fill(g, g + in, T(0));
      const T* gp = gy + p * out;
      const int64_t* ip = idx + p * out;
      for (int64_t o = 0; o < out; ++o)
        if (ip[o] >= 0) g[ip[o]] += gp[o];  // -1: an all-padding window sends its gradient nowhere
    }
  });
}

namespace {
// window of output (oh, ow) and its divisor
struct Win {
  int64_t h0, h1, w0, w1;
  double div;
};
inline Win avg_window(const Pool2dShape& s, int64_t oh, int64_t ow, bool include_pad) {
  int64_t h0 = oh * s.sh - s.ph, w0 = ow * s.sw - s.pw;
  int64_t h1 = std::min(h0 + s.kh, s.H + s.ph), w1 = std::min(w0 + s.kw, s.W + s.pw);
  const int64_t padded = (h1 - h0) * (w1 - w0);
  h0 = std::max<int64_t>(h0, 0);
  w0 = std::max<int64_t>(w0, 0);
  h1 = std::min(h1, s.H);
  w1 = std::min(w1, s.W);
  return {h0, h1, w0, w1, double(include_pad ? padded : (h1 - h0) * (w1 - w0))};
}
}  // namespace

template <class T> void avg_pool2d_forward(const T* x, T* y, const Pool2dShape& s, bool include_pad) {
  const int64_t in = s.H * s.W, out = s.OH * s.OW;
  const bool simple = s.ph == 0 && s.pw == 0 && s.kh == 2 && s.kw == 2 && s.sh == 2 && s.sw == 2 &&
                      2 * s.OH <= s.H && 2 * s.OW <= s.W;
  parallel_for(s.planes, plane_grain(in), [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const T* xp = x + p * in;
      if (simple) {  // the common 2x2/2 case: every window is whole, divisor 4
        for (int64_t oh = 0; oh < s.OH; ++oh)
          SIMD(avgpool2x2_row<T>)(xp + 2 * oh * s.W, xp + (2 * oh + 1) * s.W, y + p * out + oh * s.OW, s.OW);
        continue;
      }
      for (int64_t oh = 0; oh < s.OH; ++oh)
        for (int64_t ow = 0; ow < s.OW; ++ow) {
          const Win w = avg_window(s, oh, ow, include_pad);
          T acc = 0;
          for (int64_t ih = w.h0; ih < w.h1; ++ih)
            for (int64_t iw = w.w0; iw < w.w1; ++iw) acc += xp[ih * s.W + iw];
          y[p * out + oh * s.OW + ow] = acc / T(w.div);
        }
    }
  });
}

template <class T> void avg_pool2d_backward(const T* gy, T* gx, const Pool2dShape& s, bool include_pad) {
  const int64_t in = s.H * s.W, out = s.OH * s.OW;
  parallel_for(s.planes, plane_grain(in), [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      T* g = gx + p * in;
      std::fill(g, g + in, T(0));
      for (int64_t oh = 0; oh < s.OH; ++oh)
        for (int64_t ow = 0; ow < s.OW; ++ow) {
          const Win w = avg_window(s, oh, ow, include_pad);
          const T v = gy[p * out + oh * s.OW + ow] / T(w.div);
          for (int64_t ih = w.h0; ih < w.h1; ++ih)
            for (int64_t iw = w.w0; iw < w.w1; ++iw) g[ih * s.W + iw] += v;
        }
    }
  });
}

template <class T> void adaptive_avg_pool2d_forward(const T* x, T* y, int64_t planes, int64_t H, int64_t W,
                                                    int64_t OH, int64_t OW) {
  parallel_for(planes, plane_grain(H * W), [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p)
      for (int64_t oh = 0; oh < OH; ++oh) {
        const int64_t h0 = oh * H / OH, h1 = ((oh + 1) * H + OH - 1) / OH;
        for (int64_t ow = 0; ow < OW; ++ow) {
          const int64_t w0 = ow * W / OW, w1 = ((ow + 1) * W + OW - 1) / OW;
          T acc = 0;
          for (int64_t ih = h0; ih < h1; ++ih)
            for (int64_t iw = w0; iw < w1; ++iw) acc += x[(p * H + ih) * W + iw];
          y[(p * OH + oh) * OW + ow] = acc / T((h1 - h0) * (w1 - w0));
        }
      }
  });
}

template <class T> void adaptive_avg_pool2d_backward(const T* gy, T* gx, int64_t planes, int64_t H, int64_t W,
                                                     int64_t OH, int64_t OW) {
  parallel_for(planes, plane_grain(H * W), [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      T* g = gx + p * H * W;
      std::fill(g, g + H * W, T(0));
      for (int64_t oh = 0; oh < OH; ++oh) {
        const int64_t h0 = oh * H / OH, h1 = ((oh + 1) * H + OH - 1) / OH;
        for (int64_t ow = 0; ow < OW; ++ow) {
          const int64_t w0 = ow * W / OW, w1 = ((ow + 1) * W + OW - 1) / OW;
          const T v = gy[(p * OH + oh) * OW + ow] / T((h1 - h0) * (w1 - w0));
          for (int64_t ih = h0; ih < h1; ++ih)
            for (int64_t iw = w0; iw < w1; ++iw) g[ih * W + iw] += v;
        }
      }
    }
  });
}

#define FASTDL_INSTANTIATE(T)                                                                              \
  template void max_pool2d_forward<T>(const T*, T*, int64_t*, const Pool2dShape&);                         \
  template void max_pool2d_backward<T>(const T*, const int64_t*, T*, const Pool2dShape&);                  \
  template void avg_pool2d_forward<T>(const T*, T*, const Pool2dShape&, bool);                             \
  template void avg_pool2d_backward<T>(const T*, T*, const Pool2dShape&, bool);                            \
  template void adaptive_avg_pool2d_forward<T>(const T*, T*, int64_t, int64_t, int64_t, int64_t, int64_t); \
  template void adaptive_avg_pool2d_backward<T>(const T*, T*, int64_t, int64_t, int64_t, int64_t, int64_t);
FASTDL_INSTANTIATE(float)
FASTDL_INSTANTIATE(double)
#undef FASTDL_INSTANTIATE

}  // namespace fastdl
