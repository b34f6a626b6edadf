#include "optim.h"

#include <cmath>

#include "common.h"
#include "simd.h"

namespace {
constexpr int64_t kGrain = 1 << 15;
}

namespace fastdl {

template <class T>
void sgd_step(T* p, const T* g, T* buf, int64_t n, double lr, double mom, double damp, double wd, bool nesterov,
              bool maximize, bool first_step) {
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    SIMD(sgd_range<T>)(p + b, g + b, buf ? buf + b : nullptr, e - b, T(lr), T(mom), T(1 - damp), T(wd), nesterov,
                       maximize, first_step);
  });
}

template <class T>
void adam_step(T* p, const T* g, T* m, T* v, T* vmax, int64_t n, double lr, double beta1, double beta2, double eps,
               double wd, bool decoupled, bool maximize, int64_t step) {
  // bias corrections in double, then rounded once, as PyTorch's Python-float scalars
  const double bc1 = 1 - std::pow(beta1, double(step)), bc2 = 1 - std::pow(beta2, double(step));
  const T step_size = T(lr / bc1), bc2_sqrt = T(std::sqrt(bc2));
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    SIMD(adam_range<T>)(p + b, g + b, m + b, v + b, vmax ? vmax + b : nullptr, e - b, T(1 - beta1), T(beta2),
                        T(1 - beta2), T(eps), T(wd), T(1 - lr * wd), decoupled, maximize, step_size, bc2_sqrt);
  });
}

template <class T>
void rmsprop_step(T* p, const T* g, T* sq, T* gavg, T* buf, int64_t n, double lr, double alpha, double eps,
                  double wd, double mom, bool maximize) {
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    SIMD(rmsprop_range<T>)(p + b, g + b, sq + b, gavg ? gavg + b : nullptr, buf ? buf + b : nullptr, e - b, T(lr),
                           T(alpha), T(1 - alpha), T(eps), T(wd), T(mom), maximize);
  });
}

namespace {
// torch.lerp with a scalar weight: exact at both ends
template <class T> inline T lerp(T a, T b, T w) { return w < T(0.5) ? a + w * (b - a) : b - (b - a) * (T(1) - w); }
}  // namespace

template <class T>
void adaptive_step(Adaptive kind, T* p, const T* g, T* a, T* b, int64_t n, double lr, double beta1, double beta2,
                   double eps, double wd, bool decoupled, bool maximize, int64_t step, double extra, double extra2) {
  // step-dependent scalars in double, rounded once, as PyTorch's Python floats
  const double t = double(step);
  const T sgn = maximize ? T(-1) : T(1), w = T(wd), e = T(eps), b1 = T(beta1), b2 = T(beta2);
  const T keep = T(1 - lr * wd), w1 = T(1 - beta1), w2 = T(1 - beta2);
  const bool l2 = wd != 0 && !decoupled, shrink = wd != 0 && decoupled;
  // the gradient as each rule sees it: negated to maximize, decoupled decay shrinking p first, or
  // coupled decay added (adagrad, adadelta and adamax are called with decoupled = false)
  auto grad_at = [&](int64_t i) {
    T gi = sgn * g[i];
    if (shrink) p[i] *= keep;
    if (l2) gi += w * p[i];
    return gi;
  };
  // NAdam's and RAdam's start: Adam's two moments of that gradient
  auto moments = [&](int64_t i) {
    const T gi = grad_at(i);
    a[i] = lerp(a[i], gi, w1);
    b[i] = b[i] * b2 + w2 * gi * gi;
    return gi;
  };
  switch (kind) {
    case Adaptive::adagrad: {
      const T clr = T(lr / (1 + (t - 1) * extra));
      parallel_for(n, kGrain, [&](int64_t s, int64_t f) {
        for (int64_t i = s; i < f; ++i) {
          const T gi = grad_at(i);
          a[i] += gi * gi;
          p[i] -= clr * (gi / (std::sqrt(a[i]) + e));
        }
      });
      break;
    }
    case Adaptive::adadelta: {
      const T rho = b1, one_rho = w1, tlr = T(lr);
      parallel_for(n, kGrain, [&](int64_t s, int64_t f) {
        for (int64_t i = s; i < f; ++i) {
          const T gi = grad_at(i);
          a[i] = a[i] * rho + one_rho * gi * gi;
          const T delta = std::sqrt(b[i] + e) / std::sqrt(a[i] + e) * gi;
          b[i] = b[i] * rho + one_rho * delta * delta;
          p[i] -= tlr * delta;
        }
      });
      break;
    }
    case Adaptive::adamax: {
      const T clr = T(lr / (1 - std::pow(beta1, t)));
      parallel_for(n, kGrain, [&](int64_t s, int64_t f) {
        for (int64_t i = s; i < f; ++i) {
          const T gi = grad_at(i);
          a[i] = lerp(a[i], gi, w1);
          const T x = b[i] * b2, y = std::abs(gi) + e;
          b[i] = (x > y || x != x) ? x : y;  // torch.maximum: NaN wins
          p[i] -= clr * (a[i] / b[i]);
        }
      });
      break;
    }
    case Adaptive::nadam: {
      const double mu = beta1 * (1 - 0.5 * std::pow(0.96, t * extra));
      const double mu_next = beta1 * (1 - 0.5 * std::pow(0.96, (t + 1) * extra));
      const double bc2 = 1 - std::pow(beta2, t);
      const T c_g = T(-lr * (1 - mu) / (1 - extra2)), c_m = T(-lr * mu_next / (1 - extra2 * mu_next));
      const T bc2t = T(bc2);
      parallel_for(n, kGrain, [&](int64_t s, int64_t f) {
        for (int64_t i = s; i < f; ++i) {
          const T gi = moments(i);
          const T denom = std::sqrt(b[i] / bc2t) + e;
          p[i] += c_g * (gi / denom);
          p[i] += c_m * (a[i] / denom);
        }
      });
      break;
    }
    case Adaptive::radam: {
      const double bc1 = 1 - std::pow(beta1, t), bc2 = 1 - std::pow(beta2, t);
      const double rho_inf = 2 / (1 - beta2) - 1;
      const double rho_t = rho_inf - 2 * t * std::pow(beta2, t) / bc2;
      const bool rect = rho_t > 5;
      const double r = rect ? std::sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) : 0;
      const T bc1t = T(bc1), tlr = T(lr), rt = T(r), bc2s = T(std::sqrt(bc2));
      parallel_for(n, kGrain, [&](int64_t s, int64_t f) {
        for (int64_t i = s; i < f; ++i) {
          moments(i);
          const T m_hat = a[i] / bc1t;
          if (rect) {
            const T adaptive = bc2s / (std::sqrt(b[i]) + e);
            p[i] += m_hat * tlr * adaptive * rt * T(-1);
          } else {
            p[i] += m_hat * tlr * T(-1);
          }
        }
      });
      break;
    }
  }
}

#define FASTDL_INSTANTIATE(T)                                                                          \
  template void sgd_step<T>(T*, const T*, T*, int64_t, double, double, double, double, bool, bool, bool); \
  template void adam_step<T>(T*, const T*, T*, T*, T*, int64_t, double, double, double, double, double, \
                             bool, bool, int64_t);                                                     \
  template void rmsprop_step<T>(T*, const T*, T*, T*, T*, int64_t, double, double, double, double, double, bool); \
  template void adaptive_step<T>(Adaptive, T*, const T*, T*, T*, int64_t, double, double, double, double, double, \
                                 bool, bool, int64_t, double, double);
FASTDL_INSTANTIATE(float)
FASTDL_INSTANTIATE(double)
#undef FASTDL_INSTANTIATE

}  // namespace fastdl
