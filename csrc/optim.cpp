#include "optim.h"

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

#define FASTDL_INSTANTIATE(T)                                                                          \
  template void sgd_step<T>(T*, const T*, T*, int64_t, double, double, double, double, bool, bool, bool); \
  template void adam_step<T>(T*, const T*, T*, T*, T*, int64_t, double, double, double, double, double, \
                             bool, bool, int64_t);                                                     \
  template void rmsprop_step<T>(T*, const T*, T*, T*, T*, int64_t, double, double, double, double, double, bool);
FASTDL_INSTANTIATE(float)
FASTDL_INSTANTIATE(double)
#undef FASTDL_INSTANTIATE

}  // namespace fastdl
