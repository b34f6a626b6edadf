#include "optim.h"

#include "common.h"

namespace fastdl {

namespace {
constexpr int64_t kGrain = 1 << 15;

// torch.lerp(a, b, w) as PyTorch computes it for a scalar weight
template <class T> inline T lerp(T a, T b, T w) {
  return w < T(0.5) ? a + w * (b - a) : b - (b - a) * (T(1) - w);
}
}  // namespace

template <class T>
void sgd_step(T* p, const T* g, T* buf, int64_t n, double lr_, double mom_, double damp_, double wd_,
              bool nesterov, bool maximize, bool first_step) {
  const T lr = T(lr_), mom = T(mom_), damp = T(1 - damp_), wd = T(wd_);
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      T gi = maximize ? -g[i] : g[i];
      if (wd_ != 0) gi += wd * p[i];
      if (buf) {
        buf[i] = first_step ? gi : mom * buf[i] + damp * gi;
        gi = nesterov ? gi + mom * buf[i] : buf[i];
      }
      p[i] -= lr * gi;
    }
  });
}

template <class T>
void adam_step(T* p, const T* g, T* m, T* v, T* vmax, int64_t n, double lr, double beta1, double beta2,
               double eps_, double wd_, bool decoupled, bool maximize, int64_t step) {
  const T b1w = T(1 - beta1), b2 = T(beta2), b2w = T(1 - beta2), eps = T(eps_), wd = T(wd_);
  const T decay = T(1 - lr * wd_);
  // bias corrections in double, then cast, as PyTorch's Python-float scalars
  const double bc1 = 1 - std::pow(beta1, double(step)), bc2 = 1 - std::pow(beta2, double(step));
  const T step_size = T(lr / bc1), bc2_sqrt = T(std::sqrt(bc2));
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      T gi = maximize ? -g[i] : g[i];
      if (wd_ != 0) {
        if (decoupled) p[i] *= decay;
        else gi += wd * p[i];
      }
      m[i] = lerp(m[i], gi, b1w);
      v[i] = v[i] * b2 + b2w * gi * gi;
      T vv = v[i];
      if (vmax) {
        vmax[i] = vmax[i] > vv ? vmax[i] : vv;
        vv = vmax[i];
      }
      const T denom = std::sqrt(vv) / bc2_sqrt + eps;
      p[i] += -step_size * (m[i] / denom);
    }
  });
}

template <class T>
void rmsprop_step(T* p, const T* g, T* sq, T* gavg, T* buf, int64_t n, double lr_, double alpha_, double eps_,
                  double wd_, double mom_, bool maximize) {
  const T lr = T(lr_), alpha = T(alpha_), aw = T(1 - alpha_), eps = T(eps_), wd = T(wd_), mom = T(mom_);
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      T gi = maximize ? -g[i] : g[i];
      if (wd_ != 0) gi += wd * p[i];
      sq[i] = sq[i] * alpha + aw * gi * gi;
      T avg;
      if (gavg) {
        gavg[i] = lerp(gavg[i], gi, aw);
        avg = std::sqrt(sq[i] - gavg[i] * gavg[i]);
      } else {
        avg = std::sqrt(sq[i]);
      }
      avg += eps;
      if (buf) {
        buf[i] = buf[i] * mom + gi / avg;
        p[i] += -lr * buf[i];
      } else {
        p[i] += -lr * (gi / avg);
      }
    }
  });
}

#define FASTDL_INSTANTIATE(T)                                                                          \
  template void sgd_step<T>(T*, const T*, T*, int64_t, double, double, double, double, bool, bool, bool); \
  template void adam_step<T>(T*, const T*, T*, T*, T*, int64_t, double, double, double, double, double, \
                             bool, bool, int64_t);                                                     \
  template void rmsprop_step<T>(T*, const T*, T*, T*, T*, int64_t, double, double, double, double, double, bool);
FASTDL_INSTANTIATE(float)
FASTDL_INSTANTIATE(double)
#undef FASTDL_INSTANTIATE

}  // namespace fastdl
