#include "norm.h"

#include <utility>
#include <vector>

#include "common.h"
#include "simd.h"

namespace fastdl {

namespace {
int64_t chan_grain(int64_t per) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(per, 1)); }
}  // namespace

template <class T>
void batch_norm_train_forward(const T* x, const T* gamma, const T* beta, T* y, T* mean, T* rstd, T* run_mean,
                              T* run_var, int64_t N, int64_t C, int64_t S, double momentum, double eps) {
  const int64_t M = N * S;
  parallel_for(C, chan_grain(M), [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      // two passes in double: mean, then the centred sum of squares (no cancellation)
      double s = 0;
      for (int64_t n = 0; n < N; ++n) s += SIMD(sum_d<T>)(x + (n * C + c) * S, S);
      const double mu = M ? s / M : 0.0;
      double ss = 0;
      for (int64_t n = 0; n < N; ++n) ss += SIMD(sq_dev_d<T>)(x + (n * C + c) * S, S, mu);
      const double var = M ? ss / M : 0.0;
      const double r = 1.0 / std::sqrt(var + eps);
      mean[c] = T(mu);
      rstd[c] = T(r);
      if (run_mean) run_mean[c] = T((1 - momentum) * run_mean[c] + momentum * mu);
      if (run_var) run_var[c] = T((1 - momentum) * run_var[c] + momentum * (M > 1 ? ss / (M - 1) : var));
      const T a = T(r * (gamma ? double(gamma[c]) : 1.0));
      const T b = T((beta ? double(beta[c]) : 0.0) - mu * r * (gamma ? double(gamma[c]) : 1.0));
      for (int64_t n = 0; n < N; ++n) {
        const T* p = x + (n * C + c) * S;
        T* q = y + (n * C + c) * S;
        for (int64_t i = 0; i < S; ++i) q[i] = p[i] * a + b;
      }
    }
  });
}

template <class T>
void batch_norm_eval_forward(const T* x, const T* gamma, const T* beta, const T* run_mean, const T* run_var, T* y,
                             T* mean, T* rstd, int64_t N, int64_t C, int64_t S, double eps) {
  std::vector<T> a(C), b(C);
  for (int64_t c = 0; c < C; ++c) {
    const double r = 1.0 / std::sqrt(double(run_var[c]) + eps), g = gamma ? double(gamma[c]) : 1.0;
    mean[c] = run_mean[c];
    rstd[c] = T(r);
    a[c] = T(r * g);
    b[c] = T((beta ? double(beta[c]) : 0.0) - double(run_mean[c]) * r * g);
  }
  parallel_for(N * C, chan_grain(S), [&](int64_t q0, int64_t q1) {
    for (int64_t q = q0; q < q1; ++q) {
      const int64_t c = q % C;
      const T* p = x + q * S;
      T* o = y + q * S;
      for (int64_t i = 0; i < S; ++i) o[i] = p[i] * a[c] + b[c];
    }
  });
}

template <class T>
void batch_norm_backward(const T* gy, const T* x, const T* gamma, const T* mean, const T* rstd, T* gx, T* ggamma,
                         T* gbeta, int64_t N, int64_t C, int64_t S, bool training) {
  const int64_t M = N * S;
  parallel_for(C, chan_grain(M), [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const double mu = mean[c], r = rstd[c];
      double sg = 0, sgx = 0;  // sum(gy), sum(gy * xhat)
      for (int64_t n = 0; n < N; ++n)
        SIMD(sum_g_gxhat_d<T>)(gy + (n * C + c) * S, x + (n * C + c) * S, S, mu, r, &sg, &sgx);
      if (ggamma) ggamma[c] = T(sgx);
      if (gbeta) gbeta[c] = T(sg);
      if (!gx) continue;
      const double gm = gamma ? double(gamma[c]) : 1.0;
      if (!training) {
        const T k = T(gm * r);
        for (int64_t n = 0; n < N; ++n) {
          const T* g = gy + (n * C + c) * S;
          T* o = gx + (n * C + c) * S;
          for (int64_t i = 0; i < S; ++i) o[i] = g[i] * k;
        }
        continue;
      }
      // gx = gamma r (gy - mean(gy) - xhat mean(gy xhat))
      const T k = T(gm * r), mg = T(M ? sg / M : 0), mgx = T(M ? sgx / M : 0);
      const T tmu = T(mu), tr = T(r);
      for (int64_t n = 0; n < N; ++n) {
        const T* g = gy + (n * C + c) * S;
        const T* p = x + (n * C + c) * S;
        T* o = gx + (n * C + c) * S;
        for (int64_t i = 0; i < S; ++i) o[i] = k * (g[i] - mg - (p[i] - tmu) * tr * mgx);
      }
    }
  });
}

// The mean and 1 / sqrt(var + eps) of one row of D (statistics in float64; an empty row has mean 0
// and variance 0), stored to *mean, *rstd and returned in T: layer norm's rows and group norm's groups.
template <class T> std::pair<T, T> row_stats(const T* p, int64_t D, double eps, T* mean, T* rstd) {
  const double mu = D ? SIMD(sum_d<T>)(p, D) / D : 0.0;
  const double ss = SIMD(sq_dev_d<T>)(p, D, mu);
  const double r = 1.0 / std::sqrt((D ? ss / D : 0.0) + eps);
  *mean = T(mu);
  *rstd = T(r);
  return {T(mu), T(r)};
}

template <class T>
void layer_norm_forward(const T* x, const T* gamma, const T* beta, T* y, T* mean, T* rstd, int64_t M, int64_t D,
                        double eps) {
  parallel_for(M, chan_grain(D), [&](int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; ++m) {
      const T* p = x + m * D;
      const auto [tmu, tr] = row_stats(p, D, eps, mean + m, rstd + m);
      T* o = y + m * D;
      for (int64_t i = 0; i < D; ++i) {
        const T xh = (p[i] - tmu) * tr;
        o[i] = gamma ? xh * gamma[i] + (beta ? beta[i] : T(0)) : xh + (beta ? beta[i] : T(0));
      }
    }
  });
}

template <class T>
void layer_norm_backward(const T* gy, const T* x, const T* gamma, const T* mean, const T* rstd, T* gx, T* ggamma,
                         T* gbeta, int64_t M, int64_t D) {
  if (gx) {
    parallel_for(M, chan_grain(D), [&](int64_t m0, int64_t m1) {
      for (int64_t m = m0; m < m1; ++m) {
        const T* g = gy + m * D;
        const T* p = x + m * D;
        const T mu = mean[m], r = rstd[m];
        double a = 0, b = 0;  // mean(gy*gamma), mean(gy*gamma*xhat)
        SIMD(sum_gg_ggxhat_d<T>)(g, gamma, p, D, mu, r, &a, &b);
        const T ma = T(a / D), mb = T(b / D);
        T* o = gx + m * D;
        for (int64_t i = 0; i < D; ++i) {
          const T gg = gamma ? g[i] * gamma[i] : g[i];
          o[i] = r * (gg - ma - (p[i] - mu) * r * mb);
        }
      }
    });
  }
  if (ggamma || gbeta) {
    parallel_for(D, 64, [&](int64_t d0, int64_t d1) {
      for (int64_t i = d0; i < d1; ++i) {
        if (ggamma) ggamma[i] = 0;
        if (gbeta) gbeta[i] = 0;
      }
      for (int64_t m = 0; m < M; ++m) {
        const T* g = gy + m * D;
        const T* p = x + m * D;
        const T mu = mean[m], r = rstd[m];
        for (int64_t i = d0; i < d1; ++i) {
          if (ggamma) ggamma[i] += g[i] * ((p[i] - mu) * r);
          if (gbeta) gbeta[i] += g[i];
        }
      }
    });
  }
}

template <class T>
void group_norm_forward(const T* x, const T* gamma, const T* beta, T* y, T* mean, T* rstd, int64_t N, int64_t C,
                        int64_t S, int64_t G, double eps) {
  const int64_t CG = C / G, D = CG * S;
  parallel_for(N * G, chan_grain(D), [&](int64_t r0, int64_t r1) {
    for (int64_t row = r0; row < r1; ++row) {
      const T* p = x + row * D;
      const auto [tmu, tr] = row_stats(p, D, eps, mean + row, rstd + row);
      for (int64_t k = 0; k < CG; ++k) {  // channel c: y = (x - mu) r w + b over its S elements
        const int64_t c = (row % G) * CG + k;
        const T w = gamma ? gamma[c] : T(1), b = beta ? beta[c] : T(0);
        const T* pc = p + k * S;
        T* o = y + row * D + k * S;
        for (int64_t i = 0; i < S; ++i) o[i] = (pc[i] - tmu) * tr * w + b;
      }
    }
  });
}

template <class T>
void group_norm_backward(const T* gy, const T* x, const T* gamma, const T* mean, const T* rstd, T* gx, T* ggamma,
                         T* gbeta, int64_t N, int64_t C, int64_t S, int64_t G) {
  const int64_t CG = C / G, D = CG * S;
  // per (sample, channel): sum gy and sum gy xhat, the sums every gradient is made of
  std::vector<double> sg(N * C), sgx(N * C);
  parallel_for(N * G, chan_grain(D), [&](int64_t r0, int64_t r1) {
    for (int64_t row = r0; row < r1; ++row) {
      const int64_t n = row / G, c0 = (row % G) * CG;
      const T mu = mean[row], r = rstd[row];
      double a = 0, b = 0;  // sums of gy w and gy w xhat over the group
      for (int64_t k = 0; k < CG; ++k) {
        double s = 0, t = 0;
        SIMD(sum_g_gxhat_d<T>)(gy + row * D + k * S, x + row * D + k * S, S, double(mu), double(r), &s, &t);
        sg[n * C + c0 + k] = s;
        sgx[n * C + c0 + k] = t;
        const double w = gamma ? double(gamma[c0 + k]) : 1.0;
        a += w * s;
        b += w * t;
      }
      if (!gx) continue;
      const T ma = T(D ? a / D : 0.0), mb = T(D ? b / D : 0.0);
      for (int64_t k = 0; k < CG; ++k) {
        const T w = gamma ? gamma[c0 + k] : T(1);
        const T* g = gy + row * D + k * S;
        const T* p = x + row * D + k * S;
        T* o = gx + row * D + k * S;
        for (int64_t i = 0; i < S; ++i) o[i] = r * (g[i] * w - ma - (p[i] - mu) * r * mb);
      }
    }
  });
  for (int64_t c = 0; c < C; ++c) {
    double s = 0, t = 0;
    for (int64_t n = 0; n < N; ++n) {
      s += sg[n * C + c];
      t += sgx[n * C + c];
    }
    if (ggamma) ggamma[c] = T(t);
    if (gbeta) gbeta[c] = T(s);
  }
}

#define FASTDL_INSTANTIATE(T)                                                                                  \
  template void batch_norm_train_forward<T>(const T*, const T*, const T*, T*, T*, T*, T*, T*, int64_t, int64_t, \
                                            int64_t, double, double);                                          \
  template void batch_norm_eval_forward<T>(const T*, const T*, const T*, const T*, const T*, T*, T*, T*,        \
                                           int64_t, int64_t, int64_t, double);                                 \
  template void batch_norm_backward<T>(const T*, const T*, const T*, const T*, const T*, T*, T*, T*, int64_t,   \
                                       int64_t, int64_t, bool);                                                \
  template void layer_norm_forward<T>(const T*, const T*, const T*, T*, T*, T*, int64_t, int64_t, double);     \
  template void layer_norm_backward<T>(const T*, const T*, const T*, const T*, const T*, T*, T*, T*, int64_t,  \
                                       int64_t);                                                               \
  template void group_norm_forward<T>(const T*, const T*, const T*, T*, T*, T*, int64_t, int64_t, int64_t,     \
                                      int64_t, double);                                                        \
  template void group_norm_backward<T>(const T*, const T*, const T*, const T*, const T*, T*, T*, T*, int64_t,  \
                                       int64_t, int64_t, int64_t);
FASTDL_INSTANTIATE(float)
FASTDL_INSTANTIATE(double)
#undef FASTDL_INSTANTIATE

}  // namespace fastdl
