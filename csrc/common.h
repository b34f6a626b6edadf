// Shared helpers for the kernels: threading with a grain size, SIMD-friendly
// math for float, and the runtime-dispatch attribute.  No pybind11 here.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#ifdef FASTDL_HAVE_OPENMP
#include <omp.h>
#endif

namespace fastdl {

// Clones a function for AVX2+FMA and a portable baseline; the loader picks
// one at run time (GNU ifunc), so the wheel still runs on pre-AVX2 CPUs.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define FASTDL_DISPATCH __attribute__((target_clones("arch=haswell", "default")))
#else
#define FASTDL_DISPATCH
#endif

inline int max_threads() {
#ifdef FASTDL_HAVE_OPENMP
  return omp_in_parallel() ? 1 : omp_get_max_threads();
#else
  return 1;
#endif
}

// Runs f(begin, end) over [0, n) in contiguous chunks.  Work below `grain`
// items per thread stays on fewer threads (one for small problems).
template <class F>
void parallel_for(int64_t n, int64_t grain, F&& f) {
  if (n <= 0) return;
  int64_t nthr = std::min<int64_t>(max_threads(), std::max<int64_t>(1, n / std::max<int64_t>(grain, 1)));
#ifdef FASTDL_HAVE_OPENMP
  if (nthr > 1) {
#pragma omp parallel num_threads(static_cast<int>(nthr))
    {
      const int64_t tid = omp_get_thread_num(), nt = omp_get_num_threads();
      const int64_t chunk = (n + nt - 1) / nt;
      const int64_t b = tid * chunk, e = std::min(n, b + chunk);
      if (b < e) f(b, e);
    }
    return;
  }
#endif
  f(int64_t(0), n);
}

// exp for float that the compiler can vectorise (Cephes expf polynomial,
// ~1 ulp).  exp(-inf) = 0, exp(+large) = inf, exp(NaN) = NaN.
inline float vexp(float x) {
  const float hi = 88.3762626647949f, lo = -87.3365447505531f;
  const bool nan = x != x;
  float xs = nan ? 0.0f : x;
  xs = xs > hi ? hi : xs;
  xs = xs < lo ? lo : xs;
  float fx = xs * 1.44269504088896341f + 0.5f;
  int32_t n = static_cast<int32_t>(fx);
  n -= (fx < static_cast<float>(n)) ? 1 : 0;  // floor
  const float fn = static_cast<float>(n);
  float r = xs - fn * 0.693359375f + fn * 2.12194440e-4f;
  const float z = r * r;
  float y = 1.9875691500e-4f;
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * z + r + 1.0f;
  int32_t bits = (n + 127) << 23;
  float p2;
  std::memcpy(&p2, &bits, sizeof p2);
  float out = y * p2;
  out = x > hi ? std::numeric_limits<float>::infinity() : out;
  out = x < lo ? 0.0f : out;
  return nan ? x : out;
}
inline double vexp(double x) { return std::exp(x); }

// tanh for float: a polynomial near 0 (no cancellation), 1 - 2/(e^2x + 1)
// elsewhere (Cephes tanhf), both vectorisable.
inline float vtanh(float x) {
  const float ax = x < 0 ? -x : x;
  const float z = x * x;
  float p = -5.70498872745e-3f;
  p = p * z + 2.06390887954e-2f;
  p = p * z - 5.37397155531e-2f;
  p = p * z + 1.33314422036e-1f;
  p = p * z - 3.33332819422e-1f;
  const float small = p * z * x + x;
  const float e = vexp(2.0f * ax);
  float big = 1.0f - 2.0f / (e + 1.0f);
  big = x < 0 ? -big : big;
  return ax < 0.625f ? small : big;  // NaN: ax < 0.625 false -> big is NaN
}
inline double vtanh(double x) { return std::tanh(x); }

template <class T>
inline T vsigmoid(T x) { return T(1) / (T(1) + vexp(-x)); }

}  // namespace fastdl
