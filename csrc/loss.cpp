#include "loss.h"

#include "common.h"
#include "simd.h"

namespace fastdl {

namespace {
constexpr int64_t kGrain = 1 << 14;

}  // namespace

template <class T>
void cross_entropy_forward(const T* logits, const int64_t* target, T* loss, T* lse, int64_t N,
                           int64_t C, int64_t ignore_index, double label_smoothing) {
  const T eps = T(label_smoothing);
  parallel_for(N, kGrain / std::max<int64_t>(C, 1) + 1, [&](int64_t b, int64_t e) {
    for (int64_t n = b; n < e; ++n) {
      const T* x = logits + n * C;
      T mean, ls;
      const T m = SIMD(row_lse<T>)(x, C, &mean, &ls);
      lse[n] = m + ls;
      const int64_t t = target[n];
      if (t == ignore_index) {
        loss[n] = T(0);
        continue;
      }
      const T nll = ls - (x[t] - m);  // differences first: no cancellation at large logits
      loss[n] = eps == T(0) ? nll : (T(1) - eps) * nll + eps * (ls - (mean - m));
    }
  });
}

template <class T>
void cross_entropy_backward(const T* gloss, const T* logits, const int64_t* target, const T* lse,
                            T* glogits, int64_t N, int64_t C, int64_t ignore_index,
                            double label_smoothing) {
  const T eps = T(label_smoothing);
  parallel_for(N, kGrain / std::max<int64_t>(C, 1) + 1, [&](int64_t b, int64_t e) {
    for (int64_t n = b; n < e; ++n) {
      T* gx = glogits + n * C;
      const int64_t t = target[n];
      if (t == ignore_index) {
        std::fill(gx, gx + C, T(0));
        continue;
      }
      const T g = gloss[n];
      SIMD(row_ce_grad<T>)(logits + n * C, lse[n], g, gx, C);
      if (eps != T(0))
        for (int64_t c = 0; c < C; ++c) gx[c] -= g * eps / T(C);
      gx[t] -= g * (T(1) - eps);
    }
  });
}

template <class T>
void bce_with_logits_forward(const T* x, const T* t, const uint8_t* mask, T* loss, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    SIMD(bce_f<T>)(x + b, t + b, loss + b, e - b);
    if (mask)
      for (int64_t i = b; i < e; ++i)
        if (!mask[i]) loss[i] = T(0);
  });
}

template <class T>
void bce_with_logits_backward(const T* gloss, const T* x, const T* t, const uint8_t* mask, T* gx,
                              int64_t n) {
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    SIMD(bce_b<T>)(gloss + b, x + b, t + b, gx + b, e - b);
    if (mask)
      for (int64_t i = b; i < e; ++i)
        if (!mask[i]) gx[i] = T(0);
  });
}

template <class T> double mse_forward(const T* p, const T* t, int64_t n) {
  // one partial sum per chunk, added in chunk order: the same result whichever thread ran a chunk
  constexpr int64_t kChunks = 16;
  double part[kChunks] = {};
  const int64_t chunk = (n + kChunks - 1) / kChunks;
  parallel_for(kChunks, n > 4 * kGrain ? 1 : kChunks, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      double s = 0;
      for (int64_t i = c * chunk; i < std::min(n, (c + 1) * chunk); ++i) {
        const double d = double(p[i]) - double(t[i]);
        s += d * d;
      }
      part[c] = s;
    }
  });
  double s = 0;
  for (double v : part) s += v;
  return s;
}

template <class T> void mse_backward(T scale, const T* p, const T* t, T* gp, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) gp[i] = scale * T(2) * (p[i] - t[i]);
  });
}

#define FASTDL_INSTANTIATE(T)                                                                      \
  template void cross_entropy_forward<T>(const T*, const int64_t*, T*, T*, int64_t, int64_t,       \
                                         int64_t, double);                                         \
  template void cross_entropy_backward<T>(const T*, const T*, const int64_t*, const T*, T*,        \
                                          int64_t, int64_t, int64_t, double);                      \
  template void bce_with_logits_forward<T>(const T*, const T*, const uint8_t*, T*, int64_t);       \
  template void bce_with_logits_backward<T>(const T*, const T*, const T*, const uint8_t*, T*,      \
                                            int64_t);                                              \
  template double mse_forward<T>(const T*, const T*, int64_t);                                     \
  template void mse_backward<T>(T, const T*, const T*, T*, int64_t);
FASTDL_INSTANTIATE(float)
FASTDL_INSTANTIATE(double)
#undef FASTDL_INSTANTIATE

}  // namespace fastdl
