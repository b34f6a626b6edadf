// CUDA kernels of fastdl: element-wise activations, row softmax, fused cross-entropy, fused optimizer
// updates and embeddings.  Each mirrors the CPU kernel of the same name (the same formulas, in the same
// order, in the tensor's dtype), so tests/cuda compares the two on the same inputs.
#include "kernels.h"

#include <cuda_runtime.h>

#include <cmath>

namespace fastdl::cuda {
namespace {

constexpr int kThreads = 256;

__device__ inline float dexp(float x) { return expf(x); }
__device__ inline double dexp(double x) { return exp(x); }
__device__ inline float dlog(float x) { return logf(x); }
__device__ inline double dlog(double x) { return log(x); }
__device__ inline float dtanh(float x) { return tanhf(x); }
__device__ inline double dtanh(double x) { return tanh(x); }
__device__ inline float dsqrt(float x) { return sqrtf(x); }
__device__ inline double dsqrt(double x) { return sqrt(x); }
__device__ inline float dexpm1(float x) { return expm1f(x); }
__device__ inline double dexpm1(double x) { return expm1(x); }
__device__ inline float dlog1p(float x) { return log1pf(x); }
__device__ inline double dlog1p(double x) { return log1p(x); }
__device__ inline float derf(float x) { return erff(x); }
__device__ inline double derf(double x) { return erf(x); }

inline int blocks_for(int64_t n) {
  int64_t b = (n + kThreads - 1) / kThreads;
  return static_cast<int>(b < 1 ? 1 : (b > 8192 ? 8192 : b));  // grid-stride loops cover the rest
}

inline cudaStream_t as_stream(void* s) { return static_cast<cudaStream_t>(s); }

std::string status() {
  cudaError_t e = cudaGetLastError();
  return e == cudaSuccess ? std::string() : std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e);
}

#define FASTDL_GRID_STRIDE(i, n) \
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < (n); \
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)

// ---------------------------------------------------------------- activations
template <class T>
__global__ void act_fwd_kernel(int act, const T* x, T* y, int64_t n) {
  FASTDL_GRID_STRIDE(i, n) {
    T v = x[i];
    if (act == kRelu) {
      y[i] = v > T(0) ? v : T(0);
    } else if (act == kTanh) {
      y[i] = dtanh(v);
    } else {  // sigmoid, stable on both sides
      T e = dexp(-fabs(v));
      y[i] = v >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
    }
  }
}

template <class T>
__global__ void act_bwd_kernel(int act, const T* gy, const T* y, T* gx, int64_t n) {
  FASTDL_GRID_STRIDE(i, n) {
    T o = y[i];
    if (act == kRelu) {
      gx[i] = o > T(0) ? gy[i] : T(0);
    } else if (act == kTanh) {
      gx[i] = gy[i] * (T(1) - o * o);
    } else {
      gx[i] = gy[i] * o * (T(1) - o);
    }
  }
}

// ---------------------------------------------------------------- block reductions
template <class T>
__device__ T block_sum(T v, T* shared) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  int nw = (blockDim.x + 31) >> 5;
  v = threadIdx.x < nw ? shared[threadIdx.x] : T(0);
  if (warp == 0) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    if (lane == 0) shared[0] = v;
  }
  __syncthreads();
  T out = shared[0];
  __syncthreads();  // shared is reused by the next reduction
  return out;
}

template <class T>
__device__ T block_max(T v, T* shared) {
  for (int o = 16; o > 0; o >>= 1) {
    T w = __shfl_down_sync(0xffffffffu, v, o);
    v = (w > v || w != w) ? w : v;  // NaN propagates, as the CPU kernel's max
  }
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  int nw = (blockDim.x + 31) >> 5;
  v = threadIdx.x < nw ? shared[threadIdx.x] : -INFINITY;
  if (warp == 0) {
    for (int o = 16; o > 0; o >>= 1) {
      T w = __shfl_down_sync(0xffffffffu, v, o);
      v = (w > v || w != w) ? w : v;
    }
    if (lane == 0) shared[0] = v;
  }
  __syncthreads();
  T out = shared[0];
  __syncthreads();
  return out;
}

// ---------------------------------------------------------------- softmax over rows
template <class T>
__global__ void softmax_fwd_kernel(int log, const T* x, T* y, int64_t cols) {
  __shared__ T shared[32];
  const T* xr = x + blockIdx.x * cols;
  T* yr = y + blockIdx.x * cols;
  T m = -INFINITY;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) m = (xr[j] > m || xr[j] != xr[j]) ? xr[j] : m;
  m = block_max(m, shared);
  T s = 0;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) s += dexp(xr[j] - m);
  s = block_sum(s, shared);
  if (log) {
    T lse = m + dlog(s);
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) yr[j] = xr[j] - lse;
  } else {
    T inv = T(1) / s;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) yr[j] = dexp(xr[j] - m) * inv;
  }
}

// scale: the masked softmax's (its backward is softmax's times the scale); 1 for the others
template <class T>
__global__ void softmax_bwd_kernel(int log, const T* gy, const T* y, T* gx, int64_t cols, T scale) {
  __shared__ T shared[32];
  const int64_t off = blockIdx.x * cols;
  T s = 0;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) s += log ? gy[off + j] : gy[off + j] * y[off + j];
  s = block_sum(s, shared);
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
    gx[off + j] = log ? gy[off + j] - dexp(y[off + j]) * s : scale * y[off + j] * (gy[off + j] - s);
  }
}

// softmax(scale x) over a row's entries whose mask byte is nonzero (mask null: all), the others 0; a
// row with none kept is all 0.  A NaN kept makes the row NaN, masked entries included (the reference's
// exp(-inf - NaN)).
template <class T>
__global__ void masked_softmax_fwd_kernel(const T* x, const unsigned char* mask, T* y, int64_t cols, T scale) {
  __shared__ T shared[32];
  const int64_t off = blockIdx.x * cols;
  auto at = [&](int64_t j) { return (mask == nullptr || mask[off + j]) ? scale * x[off + j] : T(-INFINITY); };
  T m = -INFINITY;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
    const T v = at(j);
    m = (v > m || v != v) ? v : m;
  }
  m = block_max(m, shared);
  if (m == T(-INFINITY)) {  // nothing kept
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) y[off + j] = T(0);
    return;
  }
  T s = 0;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) s += dexp(at(j) - m);
  s = block_sum(s, shared);
  const T inv = T(1) / s;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) y[off + j] = dexp(at(j) - m) * inv;
}

// ---------------------------------------------------------------- cross-entropy
template <class T>
__global__ void ce_fwd_kernel(const T* x, const int64_t* t, T* loss, T* lse_out, int64_t cols, int64_t ignore,
                              T eps) {
  __shared__ T shared[32];
  const T* xr = x + blockIdx.x * cols;
  T m = -INFINITY;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) m = (xr[j] > m || xr[j] != xr[j]) ? xr[j] : m;
  m = block_max(m, shared);
  T s = 0, total = 0;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
    s += dexp(xr[j] - m);
    total += xr[j];
  }
  s = block_sum(s, shared);
  total = block_sum(total, shared);
  if (threadIdx.x == 0) {
    T lse = m + dlog(s);
    lse_out[blockIdx.x] = lse;
    int64_t c = t[blockIdx.x];
    if (c == ignore) {
      loss[blockIdx.x] = T(0);
    } else {
      T nll = lse - xr[c];
      loss[blockIdx.x] = eps == T(0) ? nll : (T(1) - eps) * nll + eps * (lse - total / T(cols));
    }
  }
}

template <class T>
__global__ void ce_bwd_kernel(const T* gloss, const T* x, const int64_t* t, const T* lse, T* gx, int64_t cols,
                              int64_t ignore, T eps) {
  const int64_t row = blockIdx.x, off = row * cols;
  const int64_t c = t[row];
  const bool keep = c != ignore;
  const T g = gloss[row], l = lse[row], spread = eps / T(cols);
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
    T v = dexp(x[off + j] - l) - (j == c ? T(1) - eps : T(0)) - spread;
    gx[off + j] = keep ? g * v : T(0);
  }
}

// ---------------------------------------------------------------- optimizers
template <class T>
__device__ inline T lerp(T a, T b, T w) {  // torch.lerp with a scalar weight
  return w < T(0.5) ? a + w * (b - a) : b - (b - a) * (T(1) - w);
}

template <class T>
__global__ void sgd_kernel(T* p, const T* g, T* buf, int64_t n, T lr, T momentum, T damp, T wd, bool nesterov,
                           bool maximize, bool first) {
  FASTDL_GRID_STRIDE(i, n) {
    T gi = maximize ? -g[i] : g[i];
    if (wd != T(0)) gi = gi + wd * p[i];
    if (buf != nullptr) {
      T b = first ? gi : momentum * buf[i] + (T(1) - damp) * gi;
      buf[i] = b;
      gi = nesterov ? gi + momentum * b : b;
    }
    p[i] -= lr * gi;
  }
}

template <class T>
__global__ void adam_kernel(T* p, const T* g, T* m, T* v, T* vmax, int64_t n, T lr, T one_minus_b1, T b2,
                            T one_minus_b2, T eps, T wd, bool decoupled, bool maximize, T step_size, T bc2_sqrt) {
  FASTDL_GRID_STRIDE(i, n) {
    T gi = maximize ? -g[i] : g[i];
    T pi = p[i];
    if (wd != T(0)) {
      if (decoupled) {
        pi *= T(1) - lr * wd;
      } else {
        gi = gi + wd * pi;
      }
    }
    T mi = lerp(m[i], gi, one_minus_b1);
    T vi = v[i] * b2 + one_minus_b2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    T vv = vi;
    if (vmax != nullptr) {
      vv = vmax[i] > vi ? vmax[i] : vi;
      vmax[i] = vv;
    }
    T denom = dsqrt(vv) / bc2_sqrt + eps;
    p[i] = pi + (-step_size) * (mi / denom);
  }
}

template <class T>
__global__ void rmsprop_kernel(T* p, const T* g, T* sq, T* gavg, T* buf, int64_t n, T lr, T alpha, T aw, T eps, T wd,
                               T mom, bool maximize) {
  FASTDL_GRID_STRIDE(i, n) {
    T gi = maximize ? -g[i] : g[i];
    if (wd != T(0)) gi += wd * p[i];
    const T s = sq[i] * alpha + aw * gi * gi;
    sq[i] = s;
    T avg;
    if (gavg != nullptr) {
      const T ga = lerp(gavg[i], gi, aw);
      gavg[i] = ga;
      const T var = alpha == T(0) ? T(0) * s : s - ga * ga;  // alpha 0: exactly 0, as the CPU's (0 * s keeps a NaN)
      avg = dsqrt(var < T(0) ? T(0) : var) + eps;
    } else {
      avg = dsqrt(s) + eps;
    }
    if (buf != nullptr) {
      const T b = buf[i] * mom + gi / avg;
      buf[i] = b;
      p[i] += -lr * b;
    } else {
      p[i] += -lr * (gi / avg);
    }
  }
}

// Adagrad, Adadelta, Adamax, NAdam and RAdam (csrc/optim.h's table), the CPU kernel's arithmetic:
// the step's scalars come computed in double by the launcher, c0..c3 as each rule needs them.
struct AdaptiveArgs {
  int kind;  // 0 adagrad, 1 adadelta, 2 adamax, 3 nadam, 4 radam
  double lr, beta1, beta2, eps, wd, keep, c0, c1, c2, c3;
  bool l2, shrink, maximize, rect;
};

template <class T>
__global__ void adaptive_kernel(T* p, const T* g, T* a, T* b, int64_t n, AdaptiveArgs q) {
  const T e = T(q.eps), b1 = T(q.beta1), b2 = T(q.beta2), w1 = T(1 - q.beta1), w2 = T(1 - q.beta2), w = T(q.wd);
  FASTDL_GRID_STRIDE(i, n) {
    T gi = q.maximize ? -g[i] : g[i];
    if (q.shrink) p[i] *= T(q.keep);
    if (q.l2) gi += w * p[i];
    switch (q.kind) {
      case 0: {  // adagrad: c0 = lr / (1 + (t - 1) lr_decay)
        a[i] += gi * gi;
        p[i] -= T(q.c0) * (gi / (dsqrt(a[i]) + e));
        break;
      }
      case 1: {  // adadelta: rho = beta1
        a[i] = a[i] * b1 + w1 * gi * gi;
        const T delta = dsqrt(b[i] + e) / dsqrt(a[i] + e) * gi;
        b[i] = b[i] * b1 + w1 * delta * delta;
        p[i] -= T(q.lr) * delta;
        break;
      }
      case 2: {  // adamax: c0 = lr / (1 - beta1^t)
        a[i] = lerp(a[i], gi, w1);
        const T x = b[i] * b2, y = fabs(gi) + e;
        b[i] = (x > y || x != x) ? x : y;  // torch.maximum: NaN wins
        p[i] -= T(q.c0) * (a[i] / b[i]);
        break;
      }
      case 3: {  // nadam: c0 the gradient's coefficient, c1 the momentum's, c2 = 1 - beta2^t
        a[i] = lerp(a[i], gi, w1);
        b[i] = b[i] * b2 + w2 * gi * gi;
        const T denom = dsqrt(b[i] / T(q.c2)) + e;
        p[i] += T(q.c0) * (gi / denom);
        p[i] += T(q.c1) * (a[i] / denom);
        break;
      }
      default: {  // radam: c0 = 1 - beta1^t, c1 = sqrt(1 - beta2^t), c2 the rectification
        a[i] = lerp(a[i], gi, w1);
        b[i] = b[i] * b2 + w2 * gi * gi;
        const T m_hat = a[i] / T(q.c0);
        if (q.rect) {
          const T adaptive = T(q.c1) / (dsqrt(b[i]) + e);
          p[i] += m_hat * T(q.lr) * adaptive * T(q.c2) * T(-1);
        } else {
          p[i] += m_hat * T(q.lr) * T(-1);
        }
      }
    }
  }
}

// ---------------------------------------------------------------- embeddings
template <class T>
__global__ void emb_fwd_kernel(const T* w, const int64_t* idx, T* y, int64_t n, int64_t d) {
  FASTDL_GRID_STRIDE(i, n * d) { y[i] = w[idx[i / d] * d + i % d]; }
}

template <class T>
__global__ void emb_bwd_kernel(const T* gy, const int64_t* idx, T* gw, int64_t n, int64_t d, int64_t pad) {
  FASTDL_GRID_STRIDE(i, n * d) {
    int64_t r = idx[i / d];
    if (r != pad) atomicAdd(gw + r * d + i % d, gy[i]);
  }
}


// ---------------------------------------------------------------- scaled dot-product attention
// A warp per query row (forward, dQ) or per key row (dK, dV), the head's features split over the
// lanes (at most kAttnMaxE = 8 x 32 each of q/k and v), a running maximum and sum per row: the scores
// are never stored, so memory stays O(rows x features) whatever L and S.  Plain FMAs, no tensor cores:
// a reference-grade kernel that the CPU kernel checks, not yet a fast one.  The same formulas as
// csrc/attention.cpp: s = scale q.k + mask, keys j <= i when causal, a masked (-inf) key weighs 0,
// a row with nothing to attend gives 0 and lse = -inf, a NaN score makes its row NaN, and dropout
// keeps weight (b, i, j) where counter_uniform(seed, (b L + i) S + j) >= p (the same hash).
constexpr int kAttnWarps = 4;
constexpr int kAttnPer = 8;  // features per lane

__device__ inline double d_counter_uniform(uint64_t seed, int64_t i) {
  uint64_t z = seed + static_cast<uint64_t>(i + 1) * 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * (1.0 / 9007199254740992.0);
}

template <class T> __device__ inline T warp_sum(T v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

struct AttnArgs {
  int64_t B, L, S, E, Ev, mb, ml, div;
  bool causal;
  double scale, p;
  uint64_t seed;
};

template <class T>
__device__ inline const T* attn_mask_row_d(const T* mask, const AttnArgs& a, int64_t b, int64_t i) {
  if (!mask) return nullptr;
  const int64_t m = (b / a.div) % a.mb;
  return mask + (m * a.ml + (a.ml == 1 ? 0 : i)) * a.S;
}

// the score of (query row qi, key j): every lane gets the sum
template <class T>
__device__ inline T attn_score(const T (&qr)[kAttnPer], const T* kj, int64_t E, int lane, T scale, const T* mrow,
                               int64_t j) {
  T d = T(0);
#pragma unroll
  for (int u = 0; u < kAttnPer; ++u) {
    const int64_t e = lane + 32 * u;
    if (e < E) d += qr[u] * kj[e];
  }
  d = scale * warp_sum(d);
  return mrow ? d + mrow[j] : d;
}

template <class T>
__device__ inline T attn_keep(const AttnArgs& a, int64_t b, int64_t i, int64_t j) {
  if (a.p <= 0) return T(1);
  return d_counter_uniform(a.seed, (b * a.L + i) * a.S + j) >= a.p ? T(1.0 / (1.0 - a.p)) : T(0);
}

template <class T>
__global__ void attn_fwd_kernel(const T* q, const T* k, const T* v, const T* mask, T* out, T* lse, AttnArgs a) {
  const int lane = threadIdx.x & 31;
  const int64_t b = blockIdx.y, i = blockIdx.x * static_cast<int64_t>(kAttnWarps) + (threadIdx.x >> 5);
  if (i >= a.L) return;
  const T scale = T(a.scale), ninf = -INFINITY;
  T qr[kAttnPer], acc[kAttnPer];
#pragma unroll
  for (int u = 0; u < kAttnPer; ++u) {
    const int64_t e = lane + 32 * u;
    qr[u] = e < a.E ? q[(b * a.L + i) * a.E + e] : T(0);
    acc[u] = T(0);
  }
  const T* mrow = attn_mask_row_d(mask, a, b, i);
  T m = ninf, l = T(0);
  bool nan = false;
  const int64_t kend = a.causal ? (i + 1 < a.S ? i + 1 : a.S) : a.S;
  for (int64_t j = 0; j < kend; ++j) {
    const T s = attn_score(qr, k + (b * a.S + j) * a.E, a.E, lane, scale, mrow, j);
    if (s != s) {
      nan = true;
      continue;
    }
    if (s == ninf) continue;
    if (s > m) {
      const T alpha = m == ninf ? T(0) : dexp(m - s);
      l *= alpha;
#pragma unroll
      for (int u = 0; u < kAttnPer; ++u) acc[u] *= alpha;
      m = s;
    }
    const T e = dexp(s - m);
    l += e;
    const T w = e * attn_keep<T>(a, b, i, j);
    const T* vj = v + (b * a.S + j) * a.Ev;
#pragma unroll
    for (int u = 0; u < kAttnPer; ++u) {
      const int64_t c = lane + 32 * u;
      if (c < a.Ev) acc[u] += w * vj[c];
    }
  }
  const T nanv = T(NAN);
#pragma unroll
  for (int u = 0; u < kAttnPer; ++u) {
    const int64_t c = lane + 32 * u;
    if (c < a.Ev) out[(b * a.L + i) * a.Ev + c] = nan ? nanv : (l > T(0) ? acc[u] / l : T(0));
  }
  if (lane == 0) lse[b * a.L + i] = nan ? nanv : (l > T(0) ? m + dlog(l) : ninf);
}

// the probability of (i, j) from the saved lse, as attn_prob_row: 0 for a masked key or a row that
// attends to nothing, NaN for a visible key of a NaN row
template <class T> __device__ inline T attn_prob(T s, T lse) {
  const T ninf = -INFINITY;
  if (lse == ninf) return T(0);
  if (lse != lse) return s == ninf ? T(0) : lse;
  return dexp(s - lse);
}

// D_i = sum_c gout[i, c] out[i, c]
template <class T>
__global__ void attn_rowdot_kernel(const T* gout, const T* out, T* D, int64_t rows, int64_t Ev) {
  const int lane = threadIdx.x & 31;
  const int64_t r = blockIdx.x * static_cast<int64_t>(kAttnWarps) + (threadIdx.x >> 5);
  if (r >= rows) return;
  T d = T(0);
  for (int64_t c = lane; c < Ev; c += 32) d += gout[r * Ev + c] * out[r * Ev + c];
  d = warp_sum(d);
  if (lane == 0) D[r] = d;
}

// dQ: a warp per query row, over its keys
template <class T>
__global__ void attn_dq_kernel(const T* gout, const T* q, const T* k, const T* v, const T* lse, const T* D,
                               const T* mask, T* gq, AttnArgs a) {
  const int lane = threadIdx.x & 31;
  const int64_t b = blockIdx.y, i = blockIdx.x * static_cast<int64_t>(kAttnWarps) + (threadIdx.x >> 5);
  if (i >= a.L) return;
  const T scale = T(a.scale);
  T qr[kAttnPer], gr[kAttnPer], dq[kAttnPer];
#pragma unroll
  for (int u = 0; u < kAttnPer; ++u) {
    const int64_t e = lane + 32 * u;
    qr[u] = e < a.E ? q[(b * a.L + i) * a.E + e] : T(0);
    gr[u] = e < a.Ev ? gout[(b * a.L + i) * a.Ev + e] : T(0);
    dq[u] = T(0);
  }
  const T* mrow = attn_mask_row_d(mask, a, b, i);
  const T li = lse[b * a.L + i], di = D[b * a.L + i];
  const int64_t kend = a.causal ? (i + 1 < a.S ? i + 1 : a.S) : a.S;
  for (int64_t j = 0; j < kend; ++j) {
    const T* kj = k + (b * a.S + j) * a.E;
    const T p = attn_prob(attn_score(qr, kj, a.E, lane, scale, mrow, j), li);
    T dp = T(0);
#pragma unroll
    for (int u = 0; u < kAttnPer; ++u) {
      const int64_t c = lane + 32 * u;
      if (c < a.Ev) dp += gr[u] * v[(b * a.S + j) * a.Ev + c];
    }
    dp = warp_sum(dp) * attn_keep<T>(a, b, i, j);
    const T ds = scale * p * (dp - di);
#pragma unroll
    for (int u = 0; u < kAttnPer; ++u) {
      const int64_t e = lane + 32 * u;
      if (e < a.E) dq[u] += ds * kj[e];
    }
  }
#pragma unroll
  for (int u = 0; u < kAttnPer; ++u) {
    const int64_t e = lane + 32 * u;
    if (e < a.E) gq[(b * a.L + i) * a.E + e] = dq[u];
  }
}

// dK and dV: a warp per key row, over the queries that see it
template <class T>
__global__ void attn_dkv_kernel(const T* gout, const T* q, const T* k, const T* v, const T* lse, const T* D,
                                const T* mask, T* gk, T* gv, AttnArgs a) {
  const int lane = threadIdx.x & 31;
  const int64_t b = blockIdx.y, j = blockIdx.x * static_cast<int64_t>(kAttnWarps) + (threadIdx.x >> 5);
  if (j >= a.S) return;
  const T scale = T(a.scale);
  T kr[kAttnPer], vr[kAttnPer], dk[kAttnPer], dv[kAttnPer];
#pragma unroll
  for (int u = 0; u < kAttnPer; ++u) {
    const int64_t e = lane + 32 * u;
    kr[u] = e < a.E ? k[(b * a.S + j) * a.E + e] : T(0);
    vr[u] = e < a.Ev ? v[(b * a.S + j) * a.Ev + e] : T(0);
    dk[u] = dv[u] = T(0);
  }
  for (int64_t i = a.causal ? j : 0; i < a.L; ++i) {
    const T* qi = q + (b * a.L + i) * a.E;
    const T* gi = gout + (b * a.L + i) * a.Ev;
    const T p = attn_prob(attn_score(kr, qi, a.E, lane, scale, attn_mask_row_d(mask, a, b, i), j), lse[b * a.L + i]);
    T dp = T(0);
#pragma unroll
    for (int u = 0; u < kAttnPer; ++u) {
      const int64_t c = lane + 32 * u;
      if (c < a.Ev) dp += vr[u] * gi[c];
    }
    const T keep = attn_keep<T>(a, b, i, j);
    dp = warp_sum(dp) * keep;
    const T ds = scale * p * (dp - D[b * a.L + i]), pk = p * keep;
#pragma unroll
    for (int u = 0; u < kAttnPer; ++u) {
      const int64_t e = lane + 32 * u;
      if (e < a.E) dk[u] += ds * qi[e];
      if (e < a.Ev) dv[u] += pk * gi[e];
    }
  }
#pragma unroll
  for (int u = 0; u < kAttnPer; ++u) {
    const int64_t e = lane + 32 * u;
    if (e < a.E) gk[(b * a.S + j) * a.E + e] = dk[u];
    if (e < a.Ev) gv[(b * a.S + j) * a.Ev + e] = dv[u];
  }
}

template <class F>
std::string by_dtype(int dtype, F&& f) {
  if (dtype == 0) {
    f(float{});
  } else {
    f(double{});
  }
  return status();
}

}  // namespace

std::string act_forward(int act, int dtype, const void* x, void* y, int64_t n, void* stream) {
  if (n == 0) return {};
  return by_dtype(dtype, [&](auto z) {
    using T = decltype(z);
    act_fwd_kernel<T><<<blocks_for(n), kThreads, 0, as_stream(stream)>>>(act, static_cast<const T*>(x),
                                                                          static_cast<T*>(y), n);
  });
}

std::string act_backward(int act, int dtype, const void* gy, const void* y, void* gx, int64_t n, void* stream) {
  if (n == 0) return {};
  return by_dtype(dtype, [&](auto z) {
    using T = decltype(z);
    act_bwd_kernel<T><<<blocks_for(n), kThreads, 0, as_stream(stream)>>>(
        act, static_cast<const T*>(gy), static_cast<const T*>(y), static_cast<T*>(gx), n);
  });
}

std::string softmax_forward(int log, int dtype, const void* x, void* y, int64_t rows, int64_t cols, void* stream) {
  if (rows == 0 || cols == 0) return {};
  return by_dtype(dtype, [&](auto z) {
    using T = decltype(z);
    softmax_fwd_kernel<T><<<static_cast<unsigned>(rows), kThreads, 0, as_stream(stream)>>>(
        log, static_cast<const T*>(x), static_cast<T*>(y), cols);
  });
}

std::string softmax_backward(int log, int dtype, const void* gy, const void* y, void* gx, int64_t rows, int64_t cols,
                             void* stream) {
  if (rows == 0 || cols == 0) return {};
  return by_dtype(dtype, [&](auto z) {
    using T = decltype(z);
    softmax_bwd_kernel<T><<<static_cast<unsigned>(rows), kThreads, 0, as_stream(stream)>>>(
        log, static_cast<const T*>(gy), static_cast<const T*>(y), static_cast<T*>(gx), cols, T(1));
  });
}

std::string masked_softmax_forward(int dtype, const void* x, const void* mask, void* y, int64_t rows, int64_t cols,
                                   double scale, void* stream) {
  if (rows == 0 || cols == 0) return {};
  return by_dtype(dtype, [&](auto z) {
    using T = decltype(z);
    masked_softmax_fwd_kernel<T><<<static_cast<unsigned>(rows), kThreads, 0, as_stream(stream)>>>(
        static_cast<const T*>(x), static_cast<const unsigned char*>(mask), static_cast<T*>(y), cols, T(scale));
  });
}

std::string masked_softmax_backward(int dtype, const void* gy, const void* y, void* gx, int64_t rows, int64_t cols,
                                    double scale, void* stream) {
  if (rows == 0 || cols == 0) return {};
  return by_dtype(dtype, [&](auto z) {
    using T = decltype(z);
    softmax_bwd_kernel<T><<<static_cast<unsigned>(rows), kThreads, 0, as_stream(stream)>>>(
        0, static_cast<const T*>(gy), static_cast<const T*>(y), static_cast<T*>(gx), cols, T(scale));
  });
}

std::string cross_entropy_forward(int dtype, const void* x, const int64_t* t, void* loss, void* lse, int64_t rows,
                                  int64_t cols, int64_t ignore_index, double eps, void* stream) {
  if (rows == 0) return {};
  return by_dtype(dtype, [&](auto z) {
    using T = decltype(z);
    ce_fwd_kernel<T><<<static_cast<unsigned>(rows), kThreads, 0, as_stream(stream)>>>(
        static_cast<const T*>(x), t, static_cast<T*>(loss), static_cast<T*>(lse), cols, ignore_index, T(eps));
  });
}

std::string cross_entropy_backward(int dtype, const void* gloss, const void* x, const int64_t* t, const void* lse,
                                   void* gx, int64_t rows, int64_t cols, int64_t ignore_index, double eps,
                                   void* stream) {
  if (rows == 0 || cols == 0) return {};
  return by_dtype(dtype, [&](auto z) {
    using T = decltype(z);
    ce_bwd_kernel<T><<<static_cast<unsigned>(rows), kThreads, 0, as_stream(stream)>>>(
        static_cast<const T*>(gloss), static_cast<const T*>(x), t, static_cast<const T*>(lse), static_cast<T*>(gx),
        cols, ignore_index, T(eps));
  });
}

std::string sgd_step(int dtype, void* p, const void* g, void* buf, int64_t n, double lr, double momentum,
                     double dampening, double weight_decay, bool nesterov, bool maximize, bool first_step,
                     void* stream) {
  if (n == 0) return {};
  return by_dtype(dtype, [&](auto z) {
    using T = decltype(z);
    sgd_kernel<T><<<blocks_for(n), kThreads, 0, as_stream(stream)>>>(
        static_cast<T*>(p), static_cast<const T*>(g), static_cast<T*>(buf), n, T(lr), T(momentum), T(dampening),
        T(weight_decay), nesterov, maximize, first_step);
  });
}

std::string adam_step(int dtype, void* p, const void* g, void* m, void* v, void* vmax, int64_t n, double lr,
                      double beta1, double beta2, double eps, double weight_decay, bool decoupled, bool maximize,
                      int64_t step, void* stream) {
  if (n == 0) return {};
  const double step_size = lr / (1.0 - std::pow(beta1, static_cast<double>(step)));
  const double bc2_sqrt = std::sqrt(1.0 - std::pow(beta2, static_cast<double>(step)));
  return by_dtype(dtype, [&](auto z) {
    using T = decltype(z);
    adam_kernel<T><<<blocks_for(n), kThreads, 0, as_stream(stream)>>>(
        static_cast<T*>(p), static_cast<const T*>(g), static_cast<T*>(m), static_cast<T*>(v), static_cast<T*>(vmax),
        n, T(lr), T(1.0 - beta1), T(beta2), T(1.0 - beta2), T(eps), T(weight_decay), decoupled, maximize,
        T(step_size), T(bc2_sqrt));
  });
}

std::string rmsprop_step(int dtype, void* p, const void* g, void* sq, void* gavg, void* buf, int64_t n, double lr,
                         double alpha, double eps, double weight_decay, double momentum, bool maximize, void* stream) {
  if (n == 0) return {};
  return by_dtype(dtype, [&](auto z) {
    using T = decltype(z);
    rmsprop_kernel<T><<<blocks_for(n), kThreads, 0, as_stream(stream)>>>(
        static_cast<T*>(p), static_cast<const T*>(g), static_cast<T*>(sq), static_cast<T*>(gavg), static_cast<T*>(buf),
        n, T(lr), T(alpha), T(1 - alpha), T(eps), T(weight_decay), T(momentum), maximize);
  });
}

std::string adaptive_step(int kind, int dtype, void* p, const void* g, void* a, void* b, int64_t n, double lr,
                          double beta1, double beta2, double eps, double weight_decay, bool decoupled, bool maximize,
                          int64_t step, double extra, double extra2, void* stream) {
  if (n == 0) return {};
  const double t = static_cast<double>(step);
  AdaptiveArgs q{kind, lr, beta1, beta2, eps, weight_decay, 1 - lr * weight_decay, 0, 0, 0, 0,
                 weight_decay != 0 && !decoupled, weight_decay != 0 && decoupled, maximize, false};
  if (kind == 0) {
    q.c0 = lr / (1 + (t - 1) * extra);
  } else if (kind == 2) {
    q.c0 = lr / (1 - std::pow(beta1, t));
  } else if (kind == 3) {
    const double mu = beta1 * (1 - 0.5 * std::pow(0.96, t * extra));
    const double mu_next = beta1 * (1 - 0.5 * std::pow(0.96, (t + 1) * extra));
    q.c0 = -lr * (1 - mu) / (1 - extra2);
    q.c1 = -lr * mu_next / (1 - extra2 * mu_next);
    q.c2 = 1 - std::pow(beta2, t);
  } else if (kind == 4) {
    const double bc2 = 1 - std::pow(beta2, t), rho_inf = 2 / (1 - beta2) - 1;
    const double rho_t = rho_inf - 2 * t * std::pow(beta2, t) / bc2;
    q.rect = rho_t > 5;
    q.c0 = 1 - std::pow(beta1, t);
    q.c1 = std::sqrt(bc2);
    q.c2 = q.rect ? std::sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) : 0;
  }
  return by_dtype(dtype, [&](auto z) {
    using T = decltype(z);
    adaptive_kernel<T><<<blocks_for(n), kThreads, 0, as_stream(stream)>>>(
        static_cast<T*>(p), static_cast<const T*>(g), static_cast<T*>(a), static_cast<T*>(b), n, q);
  });
}

std::string embedding_forward(int dtype, const void* w, const int64_t* idx, void* y, int64_t n, int64_t d,
                              void* stream) {
  if (n == 0 || d == 0) return {};
  return by_dtype(dtype, [&](auto z) {
    using T = decltype(z);
    emb_fwd_kernel<T><<<blocks_for(n * d), kThreads, 0, as_stream(stream)>>>(static_cast<const T*>(w), idx,
                                                                              static_cast<T*>(y), n, d);
  });
}

std::string embedding_backward(int dtype, const void* gy, const int64_t* idx, void* gw, int64_t n, int64_t d,
                               int64_t v, int64_t padding_idx, void* stream) {
  if (cudaMemsetAsync(gw, 0, static_cast<size_t>(v * d) * (dtype == 0 ? 4 : 8), as_stream(stream)) != cudaSuccess) {
    return status();
  }
  if (n == 0 || d == 0) return {};
  return by_dtype(dtype, [&](auto z) {
    using T = decltype(z);
    emb_bwd_kernel<T><<<blocks_for(n * d), kThreads, 0, as_stream(stream)>>>(static_cast<const T*>(gy), idx,
                                                                              static_cast<T*>(gw), n, d, padding_idx);
  });
}

// ---------------------------------------------------------------- convolution: im2col and col2im
namespace {

template <class T>
__global__ void im2col_kernel(const T* x, T* cols, ConvGeom g) {
  const int64_t ohw = g.OH * g.OW, ncols = g.N * ohw, total = g.C * g.kh * g.kw * ncols;
  FASTDL_GRID_STRIDE(e, total) {
    const int64_t row = e / ncols, col = e % ncols;
    const int64_t c = row / (g.kh * g.kw), i = row / g.kw % g.kh, j = row % g.kw;
    const int64_t n = col / ohw, oh = col % ohw / g.OW, ow = col % g.OW;
    const int64_t ih = oh * g.sh - g.pt + i * g.dh, iw = ow * g.sw - g.pl + j * g.dw;
    cols[e] = (ih >= 0 && ih < g.H && iw >= 0 && iw < g.W) ? x[((n * g.C + c) * g.H + ih) * g.W + iw] : T(0);
  }
}

template <class T>
__global__ void col2im_kernel(const T* cols, T* gx, ConvGeom g) {
  const int64_t ohw = g.OH * g.OW, ncols = g.N * ohw, total = g.N * g.C * g.H * g.W;
  FASTDL_GRID_STRIDE(e, total) {
    const int64_t iw = e % g.W, ih = e / g.W % g.H, c = e / (g.H * g.W) % g.C, n = e / (g.C * g.H * g.W);
    T acc = T(0);
    for (int64_t i = 0; i < g.kh; ++i) {
      const int64_t th = ih + g.pt - i * g.dh;
      if (th < 0 || th % g.sh) continue;
      const int64_t oh = th / g.sh;
      if (oh >= g.OH) continue;
      for (int64_t j = 0; j < g.kw; ++j) {
        const int64_t tw = iw + g.pl - j * g.dw;
        if (tw < 0 || tw % g.sw) continue;
        const int64_t ow = tw / g.sw;
        if (ow >= g.OW) continue;
        acc += cols[((c * g.kh + i) * g.kw + j) * ncols + n * ohw + oh * g.OW + ow];
      }
    }
    gx[e] = acc;
  }
}

// ---------------------------------------------------------------- pooling
template <class T>
__global__ void max_pool_fwd_kernel(const T* x, T* y, int64_t* idx, PoolGeom g) {
  const int64_t total = g.P * g.OH * g.OW;
  FASTDL_GRID_STRIDE(e, total) {
    const int64_t p = e / (g.OH * g.OW), oh = e / g.OW % g.OH, ow = e % g.OW;
    const T* plane = x + p * g.H * g.W;
    T best = -INFINITY;
    int64_t at = -1;
    bool first = true, nan = false;
    for (int64_t i = 0; i < g.kh; ++i)
      for (int64_t j = 0; j < g.kw; ++j) {  // window cells in order, as the CPU kernel's argmax
        const int64_t ih = oh * g.sh - g.ph + i * g.dh, iw = ow * g.sw - g.pw + j * g.dw;
        const bool in = ih >= 0 && ih < g.H && iw >= 0 && iw < g.W;
        const T v = in ? plane[ih * g.W + iw] : T(-INFINITY);
        const int64_t id = in ? ih * g.W + iw : -1;
        if (v != v) {
          if (!nan) best = v, at = id, nan = true;  // the first NaN wins
        } else if (!nan && (first || v > best)) {
          best = v, at = id;
        }
        first = false;
      }
    y[e] = best;
    idx[e] = at;
  }
}

__device__ inline void atomic_add(float* a, float v) { atomicAdd(a, v); }
__device__ inline void atomic_add(double* a, double v) { atomicAdd(a, v); }

template <class T>
__global__ void max_pool_bwd_kernel(const T* gy, const int64_t* idx, T* gx, PoolGeom g) {
  const int64_t total = g.P * g.OH * g.OW;
  FASTDL_GRID_STRIDE(e, total) {
    const int64_t at = idx[e];
    if (at >= 0) atomic_add(gx + e / (g.OH * g.OW) * g.H * g.W + at, gy[e]);
  }
}

// the divisor of output cell (oh, ow): the window clipped to the padded input, or to the input
__device__ inline int64_t avg_divisor(const PoolGeom& g, int64_t oh, int64_t ow, bool count_include_pad) {
  const int64_t h0 = oh * g.sh - g.ph, w0 = ow * g.sw - g.pw;
  const int64_t h1 = min(h0 + g.kh, g.H + g.ph), w1 = min(w0 + g.kw, g.W + g.pw);
  if (count_include_pad) return (h1 - h0) * (w1 - w0);
  return (min(h1, g.H) - max(h0, int64_t(0))) * (min(w1, g.W) - max(w0, int64_t(0)));
}

template <class T>
__global__ void avg_pool_fwd_kernel(const T* x, T* y, PoolGeom g, bool count_include_pad) {
  const int64_t total = g.P * g.OH * g.OW;
  FASTDL_GRID_STRIDE(e, total) {
    const int64_t p = e / (g.OH * g.OW), oh = e / g.OW % g.OH, ow = e % g.OW;
    const T* plane = x + p * g.H * g.W;
    T acc = T(0);
    for (int64_t i = 0; i < g.kh; ++i)
      for (int64_t j = 0; j < g.kw; ++j) {
        const int64_t ih = oh * g.sh - g.ph + i, iw = ow * g.sw - g.pw + j;
        if (ih >= 0 && ih < g.H && iw >= 0 && iw < g.W) acc += plane[ih * g.W + iw];
      }
    y[e] = acc / T(avg_divisor(g, oh, ow, count_include_pad));
  }
}

template <class T>
__global__ void avg_pool_bwd_kernel(const T* gy, T* gx, PoolGeom g, bool count_include_pad) {
  const int64_t total = g.P * g.H * g.W;
  FASTDL_GRID_STRIDE(e, total) {
    const int64_t p = e / (g.H * g.W), ih = e / g.W % g.H, iw = e % g.W;
    T acc = T(0);
    for (int64_t i = 0; i < g.kh; ++i) {
      const int64_t th = ih + g.ph - i;
      if (th < 0 || th % g.sh) continue;
      const int64_t oh = th / g.sh;
      if (oh >= g.OH) continue;
      for (int64_t j = 0; j < g.kw; ++j) {
        const int64_t tw = iw + g.pw - j;
        if (tw < 0 || tw % g.sw) continue;
        const int64_t ow = tw / g.sw;
        if (ow >= g.OW) continue;
        acc += gy[(p * g.OH + oh) * g.OW + ow] / T(avg_divisor(g, oh, ow, count_include_pad));
      }
    }
    gx[e] = acc;
  }
}

}  // namespace

std::string im2col(int dtype, const void* x, void* cols, const ConvGeom& g, void* stream) {
  const int64_t total = g.C * g.kh * g.kw * g.N * g.OH * g.OW;
  if (total == 0) return {};
  return by_dtype(dtype, [&](auto z) {
    using T = decltype(z);
    im2col_kernel<T><<<blocks_for(total), kThreads, 0, as_stream(stream)>>>(static_cast<const T*>(x),
                                                                             static_cast<T*>(cols), g);
  });
}

std::string col2im(int dtype, const void* cols, void* gx, const ConvGeom& g, void* stream) {
  const int64_t total = g.N * g.C * g.H * g.W;
  if (total == 0) return {};
  return by_dtype(dtype, [&](auto z) {
    using T = decltype(z);
    col2im_kernel<T><<<blocks_for(total), kThreads, 0, as_stream(stream)>>>(static_cast<const T*>(cols),
                                                                             static_cast<T*>(gx), g);
  });
}

std::string max_pool2d_forward(int dtype, const void* x, void* y, int64_t* idx, const PoolGeom& g, void* stream) {
  const int64_t total = g.P * g.OH * g.OW;
  if (total == 0) return {};
  return by_dtype(dtype, [&](auto z) {
    using T = decltype(z);
    max_pool_fwd_kernel<T><<<blocks_for(total), kThreads, 0, as_stream(stream)>>>(static_cast<const T*>(x),
                                                                                   static_cast<T*>(y), idx, g);
  });
}

std::string max_pool2d_backward(int dtype, const void* gy, const int64_t* idx, void* gx, const PoolGeom& g,
                                void* stream) {
  const size_t bytes = static_cast<size_t>(g.P * g.H * g.W) * (dtype == 0 ? 4 : 8);
  if (bytes && cudaMemsetAsync(gx, 0, bytes, as_stream(stream)) != cudaSuccess) return status();
  const int64_t total = g.P * g.OH * g.OW;
  if (total == 0) return {};
  return by_dtype(dtype, [&](auto z) {
    using T = decltype(z);
    max_pool_bwd_kernel<T><<<blocks_for(total), kThreads, 0, as_stream(stream)>>>(static_cast<const T*>(gy), idx,
                                                                                   static_cast<T*>(gx), g);
  });
}

std::string avg_pool2d_forward(int dtype, const void* x, void* y, const PoolGeom& g, bool count_include_pad,
                               void* stream) {
  const int64_t total = g.P * g.OH * g.OW;
  if (total == 0) return {};
  return by_dtype(dtype, [&](auto z) {
    using T = decltype(z);
    avg_pool_fwd_kernel<T><<<blocks_for(total), kThreads, 0, as_stream(stream)>>>(
        static_cast<const T*>(x), static_cast<T*>(y), g, count_include_pad);
  });
}

std::string avg_pool2d_backward(int dtype, const void* gy, void* gx, const PoolGeom& g, bool count_include_pad,
                                void* stream) {
  const int64_t total = g.P * g.H * g.W;
  if (total == 0) return {};
  return by_dtype(dtype, [&](auto z) {
    using T = decltype(z);
    avg_pool_bwd_kernel<T><<<blocks_for(total), kThreads, 0, as_stream(stream)>>>(
        static_cast<const T*>(gy), static_cast<T*>(gx), g, count_include_pad);
  });
}

// ---------------------------------------------------------------- adaptive average pooling
namespace {
__device__ inline int64_t win_lo(int64_t i, int64_t n, int64_t out) { return i * n / out; }
__device__ inline int64_t win_hi(int64_t i, int64_t n, int64_t out) { return ((i + 1) * n + out - 1) / out; }

template <class T>
__global__ void adaptive_avg_fwd_kernel(const T* x, T* y, int64_t P, int64_t H, int64_t W, int64_t OH, int64_t OW) {
  FASTDL_GRID_STRIDE(e, P * OH * OW) {
    const int64_t p = e / (OH * OW), i = e / OW % OH, j = e % OW;
    const int64_t r0 = win_lo(i, H, OH), r1 = win_hi(i, H, OH), c0 = win_lo(j, W, OW), c1 = win_hi(j, W, OW);
    const T* src = x + p * H * W;
    T s = T(0);
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t c = c0; c < c1; ++c) s += src[r * W + c];
    y[e] = s / T((r1 - r0) * (c1 - c0));
  }
}

// each input cell gathers the shares of the windows holding it: the rows i with win_lo(i) <= r < win_hi(i)
// start at r * OH / H (win_hi(i) > r from there on) and end before the first window starting past r
// (win_lo rises with i); columns the same
template <class T>
__global__ void adaptive_avg_bwd_kernel(const T* gy, T* gx, int64_t P, int64_t H, int64_t W, int64_t OH, int64_t OW) {
  FASTDL_GRID_STRIDE(e, P * H * W) {
    const int64_t p = e / (H * W), r = e / W % H, c = e % W;
    const T* g = gy + p * OH * OW;
    T s = T(0);
    for (int64_t i = r * OH / H; i < OH && win_lo(i, H, OH) <= r; ++i) {
      if (win_hi(i, H, OH) <= r) continue;
      const int64_t rows = win_hi(i, H, OH) - win_lo(i, H, OH);
      for (int64_t j = c * OW / W; j < OW && win_lo(j, W, OW) <= c; ++j) {
        if (win_hi(j, W, OW) <= c) continue;
        s += g[i * OW + j] / T(rows * (win_hi(j, W, OW) - win_lo(j, W, OW)));
      }
    }
    gx[e] = s;
  }
}
}  // namespace

std::string adaptive_avg_pool2d_forward(int dtype, const void* x, void* y, int64_t P, int64_t H, int64_t W, int64_t OH,
                                        int64_t OW, void* stream) {
  if (P * OH * OW == 0) return {};
  return by_dtype(dtype, [&](auto z) {
    using T = decltype(z);
    adaptive_avg_fwd_kernel<T><<<blocks_for(P * OH * OW), kThreads, 0, as_stream(stream)>>>(
        static_cast<const T*>(x), static_cast<T*>(y), P, H, W, OH, OW);
  });
}

std::string adaptive_avg_pool2d_backward(int dtype, const void* gy, void* gx, int64_t P, int64_t H, int64_t W,
                                         int64_t OH, int64_t OW, void* stream) {
  if (P * H * W == 0) return {};
  return by_dtype(dtype, [&](auto z) {
    using T = decltype(z);
    adaptive_avg_bwd_kernel<T><<<blocks_for(P * H * W), kThreads, 0, as_stream(stream)>>>(
        static_cast<const T*>(gy), static_cast<T*>(gx), P, H, W, OH, OW);
  });
}

// ---------------------------------------------------------------- normalization
namespace {

// element e of channel c in x (N, C, S)
__device__ inline int64_t bn_at(int64_t e, int64_t c, int64_t C, int64_t S) { return (e / S * C + c) * S + e % S; }

template <class T>
__global__ void bn_fwd_kernel(const T* x, const T* w, const T* b, T* rm, T* rv, T* y, T* mean_out, T* rstd_out,
                              int64_t N, int64_t C, int64_t S, bool training, double momentum, double eps) {
  __shared__ double shared[32];
  const int64_t c = blockIdx.x, cnt = N * S;
  double mean, var;
  if (training) {
    double acc = 0;
    for (int64_t e = threadIdx.x; e < cnt; e += blockDim.x) acc += double(x[bn_at(e, c, C, S)]);
    mean = block_sum(acc, shared) / double(cnt);
    acc = 0;
    for (int64_t e = threadIdx.x; e < cnt; e += blockDim.x) {
      const double d = double(x[bn_at(e, c, C, S)]) - mean;
      acc += d * d;
    }
    var = block_sum(acc, shared) / double(cnt);
    if (threadIdx.x == 0) {
      if (rm) rm[c] = T((1.0 - momentum) * double(rm[c]) + momentum * mean);
      if (rv) rv[c] = T((1.0 - momentum) * double(rv[c]) + momentum * var * double(cnt) / double(cnt > 1 ? cnt - 1 : 1));
    }
  } else {
    mean = double(rm[c]);
    var = double(rv[c]);
  }
  const double rstd = 1.0 / sqrt(var + eps);
  if (threadIdx.x == 0) {
    mean_out[c] = T(mean);
    rstd_out[c] = T(rstd);
  }
  const double gamma = w ? double(w[c]) : 1.0, beta = b ? double(b[c]) : 0.0;
  for (int64_t e = threadIdx.x; e < cnt; e += blockDim.x) {
    const int64_t i = bn_at(e, c, C, S);
    y[i] = T((double(x[i]) - mean) * rstd * gamma + beta);
  }
}

template <class T>
__global__ void bn_bwd_kernel(const T* gy, const T* x, const T* w, const T* mean, const T* rstd, T* gx, T* gw, T* gb,
                              int64_t N, int64_t C, int64_t S, bool training) {
  __shared__ double shared[32];
  const int64_t c = blockIdx.x, cnt = N * S;
  const double m = double(mean[c]), r = double(rstd[c]);
  double sg = 0, sgx = 0;
  for (int64_t e = threadIdx.x; e < cnt; e += blockDim.x) {
    const int64_t i = bn_at(e, c, C, S);
    const double g = double(gy[i]);
    sg += g;
    sgx += g * (double(x[i]) - m) * r;
  }
  sg = block_sum(sg, shared);
  sgx = block_sum(sgx, shared);
  if (threadIdx.x == 0) {
    if (gw) gw[c] = T(sgx);
    if (gb) gb[c] = T(sg);
  }
  if (!gx) return;
  const double k = (w ? double(w[c]) : 1.0) * r, mg = sg / double(cnt), mgx = sgx / double(cnt);
  for (int64_t e = threadIdx.x; e < cnt; e += blockDim.x) {
    const int64_t i = bn_at(e, c, C, S);
    const double g = double(gy[i]);
    gx[i] = T(training ? k * (g - mg - (double(x[i]) - m) * r * mgx) : k * g);
  }
}

template <class T>
__global__ void ln_fwd_kernel(const T* x, const T* w, const T* b, T* y, T* mean_out, T* rstd_out, int64_t D, double eps) {
  __shared__ double shared[32];
  const T* xr = x + blockIdx.x * D;
  T* yr = y + blockIdx.x * D;
  double acc = 0;
  for (int64_t j = threadIdx.x; j < D; j += blockDim.x) acc += double(xr[j]);
  const double mean = block_sum(acc, shared) / double(D);
  acc = 0;
  for (int64_t j = threadIdx.x; j < D; j += blockDim.x) {
    const double d = double(xr[j]) - mean;
    acc += d * d;
  }
  const double rstd = 1.0 / sqrt(block_sum(acc, shared) / double(D) + eps);
  if (threadIdx.x == 0) {
    mean_out[blockIdx.x] = T(mean);
    rstd_out[blockIdx.x] = T(rstd);
  }
  for (int64_t j = threadIdx.x; j < D; j += blockDim.x) {
    double v = (double(xr[j]) - mean) * rstd;
    if (w) v *= double(w[j]);
    if (b) v += double(b[j]);
    yr[j] = T(v);
  }
}

template <class T>
__global__ void ln_bwd_rows_kernel(const T* gy, const T* x, const T* w, const T* mean, const T* rstd, T* gx, int64_t D) {
  __shared__ double shared[32];
  const int64_t row = blockIdx.x;
  const T *g = gy + row * D, *xr = x + row * D;
  const double m = double(mean[row]), r = double(rstd[row]);
  double s1 = 0, s2 = 0;
  for (int64_t j = threadIdx.x; j < D; j += blockDim.x) {
    const double gg = double(g[j]) * (w ? double(w[j]) : 1.0);
    s1 += gg;
    s2 += gg * (double(xr[j]) - m) * r;
  }
  const double m1 = block_sum(s1, shared) / double(D), m2 = block_sum(s2, shared) / double(D);
  for (int64_t j = threadIdx.x; j < D; j += blockDim.x) {
    const double gg = double(g[j]) * (w ? double(w[j]) : 1.0);
    gx[row * D + j] = T(r * (gg - m1 - (double(xr[j]) - m) * r * m2));
  }
}

template <class T>
__global__ void ln_bwd_cols_kernel(const T* gy, const T* x, const T* mean, const T* rstd, T* gw, T* gb, int64_t R,
                                   int64_t D) {
  FASTDL_GRID_STRIDE(j, D) {  // one column per thread, rows in order: adjacent threads read adjacent columns
    double sw = 0, sb = 0;
    for (int64_t row = 0; row < R; ++row) {
      const double g = double(gy[row * D + j]);
      sw += g * (double(x[row * D + j]) - double(mean[row])) * double(rstd[row]);
      sb += g;
    }
    if (gw) gw[j] = T(sw);
    if (gb) gb[j] = T(sb);
  }
}

}  // namespace

std::string batch_norm_forward(int dtype, const void* x, const void* weight, const void* bias, void* running_mean,
                               void* running_var, void* y, void* mean, void* rstd, int64_t N, int64_t C, int64_t S,
                               bool training, double momentum, double eps, void* stream) {
  if (C == 0) return {};
  return by_dtype(dtype, [&](auto z) {
    using T = decltype(z);
    bn_fwd_kernel<T><<<static_cast<unsigned>(C), kThreads, 0, as_stream(stream)>>>(
        static_cast<const T*>(x), static_cast<const T*>(weight), static_cast<const T*>(bias),
        static_cast<T*>(running_mean), static_cast<T*>(running_var), static_cast<T*>(y), static_cast<T*>(mean),
        static_cast<T*>(rstd), N, C, S, training, momentum, eps);
  });
}

std::string batch_norm_backward(int dtype, const void* gy, const void* x, const void* weight, const void* mean,
                                const void* rstd, void* gx, void* gw, void* gb, int64_t N, int64_t C, int64_t S,
                                bool training, void* stream) {
  if (C == 0) return {};
  return by_dtype(dtype, [&](auto z) {
    using T = decltype(z);
    bn_bwd_kernel<T><<<static_cast<unsigned>(C), kThreads, 0, as_stream(stream)>>>(
        static_cast<const T*>(gy), static_cast<const T*>(x), static_cast<const T*>(weight), static_cast<const T*>(mean),
        static_cast<const T*>(rstd), static_cast<T*>(gx), static_cast<T*>(gw), static_cast<T*>(gb), N, C, S, training);
  });
}

std::string layer_norm_forward(int dtype, const void* x, const void* weight, const void* bias, void* y, void* mean,
                               void* rstd, int64_t R, int64_t D, double eps, void* stream) {
  if (R == 0) return {};
  return by_dtype(dtype, [&](auto z) {
    using T = decltype(z);
    ln_fwd_kernel<T><<<static_cast<unsigned>(R), kThreads, 0, as_stream(stream)>>>(
        static_cast<const T*>(x), static_cast<const T*>(weight), static_cast<const T*>(bias), static_cast<T*>(y),
        static_cast<T*>(mean), static_cast<T*>(rstd), D, eps);
  });
}

std::string layer_norm_backward(int dtype, const void* gy, const void* x, const void* weight, const void* mean,
                                const void* rstd, void* gx, void* gw, void* gb, int64_t R, int64_t D, void* stream) {
  return by_dtype(dtype, [&](auto z) {
    using T = decltype(z);
    if (gx && R > 0)
      ln_bwd_rows_kernel<T><<<static_cast<unsigned>(R), kThreads, 0, as_stream(stream)>>>(
          static_cast<const T*>(gy), static_cast<const T*>(x), static_cast<const T*>(weight),
          static_cast<const T*>(mean), static_cast<const T*>(rstd), static_cast<T*>(gx), D);
    if ((gw || gb) && D > 0)
      ln_bwd_cols_kernel<T><<<blocks_for(D), kThreads, 0, as_stream(stream)>>>(
          static_cast<const T*>(gy), static_cast<const T*>(x), static_cast<const T*>(mean),
          static_cast<const T*>(rstd), static_cast<T*>(gw), static_cast<T*>(gb), R, D);
  });
}

// ---------------------------------------------------------------- the LSTM cell
namespace {

template <class T>
__device__ inline T dsigmoid(T v) {
  const T e = dexp(-fabs(v));
  return v >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
}

template <class T>
__global__ void lstm_fwd_kernel(const T* xw, const T* hw, T* c, T* h, T* out, T* gates, T* cs, const int64_t* lengths,
                                int64_t t, int64_t B, int64_t H) {
  FASTDL_GRID_STRIDE(e, B * H) {
    const int64_t b = e / H, j = e % H;
    const bool live = !lengths || t < lengths[b];
    const T* px = xw + b * 4 * H;
    const T* ph = hw + b * 4 * H;
    T* g = gates ? gates + b * 4 * H : nullptr;
    if (!live) {  // a finished sequence: state kept, output 0, no gates
      out[e] = T(0);
      if (g) g[j] = g[H + j] = g[2 * H + j] = g[3 * H + j] = T(0);
      if (cs) cs[e] = c[e];
      continue;
    }
    const T i = dsigmoid(px[j] + ph[j]), f = dsigmoid(px[H + j] + ph[H + j]), gg = dtanh(px[2 * H + j] + ph[2 * H + j]),
            o = dsigmoid(px[3 * H + j] + ph[3 * H + j]);
    const T cv = f * c[e] + i * gg, hv = o * dtanh(cv);
    c[e] = cv;
    h[e] = hv;
    out[e] = hv;
    if (g) g[j] = i, g[H + j] = f, g[2 * H + j] = gg, g[3 * H + j] = o;
    if (cs) cs[e] = cv;
  }
}

template <class T>
__global__ void lstm_bwd_kernel(const T* gates, const T* c, const T* cprev, const T* dout, const T* dh, T* dc, T* dpre,
                                T* direct, const int64_t* lengths, int64_t t, int64_t B, int64_t H) {
  FASTDL_GRID_STRIDE(e, B * H) {
    const int64_t b = e / H, j = e % H;
    T* d = dpre + b * 4 * H;
    if (lengths && t >= lengths[b]) {  // identity step: the gradient passes through, nothing to this step
      d[j] = d[H + j] = d[2 * H + j] = d[3 * H + j] = T(0);
      direct[e] = dh[e];
      continue;
    }
    const T* g = gates + b * 4 * H;
    const T i = g[j], f = g[H + j], gg = g[2 * H + j], o = g[3 * H + j];
    const T gh = dh[e] + (dout ? dout[e] : T(0)), tc = dtanh(c[e]);
    const T dcv = dc[e] + gh * o * (T(1) - tc * tc);
    d[j] = dcv * gg * i * (T(1) - i);
    d[H + j] = dcv * cprev[e] * f * (T(1) - f);
    d[2 * H + j] = dcv * i * (T(1) - gg * gg);
    d[3 * H + j] = gh * tc * o * (T(1) - o);
    dc[e] = dcv * f;
    direct[e] = T(0);
  }
}

}  // namespace

std::string lstm_cell_forward(int dtype, const void* xw, const void* hw, void* c, void* h, void* out, void* gates,
                              void* cs, const int64_t* lengths, int64_t t, int64_t B, int64_t H, void* stream) {
  if (B * H == 0) return {};
  return by_dtype(dtype, [&](auto z) {
    using T = decltype(z);
    lstm_fwd_kernel<T><<<blocks_for(B * H), kThreads, 0, as_stream(stream)>>>(
        static_cast<const T*>(xw), static_cast<const T*>(hw), static_cast<T*>(c), static_cast<T*>(h),
        static_cast<T*>(out), static_cast<T*>(gates), static_cast<T*>(cs), lengths, t, B, H);
  });
}

std::string lstm_cell_backward(int dtype, const void* gates, const void* c, const void* cprev, const void* dout,
                               const void* dh, void* dc, void* dpre, void* direct, const int64_t* lengths, int64_t t,
                               int64_t B, int64_t H, void* stream) {
  if (B * H == 0) return {};
  return by_dtype(dtype, [&](auto z) {
    using T = decltype(z);
    lstm_bwd_kernel<T><<<blocks_for(B * H), kThreads, 0, as_stream(stream)>>>(
        static_cast<const T*>(gates), static_cast<const T*>(c), static_cast<const T*>(cprev),
        static_cast<const T*>(dout), static_cast<const T*>(dh), static_cast<T*>(dc), static_cast<T*>(dpre),
        static_cast<T*>(direct), lengths, t, B, H);
  });
}

// ---------------------------------------------------------------- the GRU and the simple (Elman) RNN cells
namespace {

template <class T>
__global__ void gru_fwd_kernel(const T* xw, const T* hw, const T* bhh, T* h, T* out, T* gates, T* hnl,
                               const int64_t* lengths, int64_t t, int64_t B, int64_t H) {
  FASTDL_GRID_STRIDE(e, B * H) {
    const int64_t b = e / H, j = e % H;
    T* g = gates ? gates + b * 3 * H : nullptr;
    if (lengths && t >= lengths[b]) {  // a finished sequence: state kept, output 0, no gates
      out[e] = T(0);
      if (g) g[j] = g[H + j] = g[2 * H + j] = T(0);
      if (hnl) hnl[e] = T(0);
      continue;
    }
    const T* px = xw + b * 3 * H;
    const T* ph = hw + b * 3 * H;
    const T hr = ph[j] + (bhh ? bhh[j] : T(0)), hz = ph[H + j] + (bhh ? bhh[H + j] : T(0)),
            hn = ph[2 * H + j] + (bhh ? bhh[2 * H + j] : T(0));
    const T r = dsigmoid(px[j] + hr), z = dsigmoid(px[H + j] + hz), n = dtanh(px[2 * H + j] + r * hn);
    const T hv = (T(1) - z) * n + z * h[e];
    h[e] = hv;
    out[e] = hv;
    if (g) g[j] = r, g[H + j] = z, g[2 * H + j] = n;
    if (hnl) hnl[e] = hn;
  }
}

template <class T>
__global__ void gru_bwd_kernel(const T* gates, const T* hnl, const T* hprev, const T* dout, const T* dh, T* dxw,
                               T* dhw, T* direct, const int64_t* lengths, int64_t t, int64_t B, int64_t H) {
  FASTDL_GRID_STRIDE(e, B * H) {
    const int64_t b = e / H, j = e % H;
    T* dx = dxw + b * 3 * H;
    T* dg = dhw + b * 3 * H;
    if (lengths && t >= lengths[b]) {  // identity step: the gradient passes through, nothing to this step
      dx[j] = dx[H + j] = dx[2 * H + j] = dg[j] = dg[H + j] = dg[2 * H + j] = T(0);
      direct[e] = dh[e];
      continue;
    }
    const T* g = gates + b * 3 * H;
    const T r = g[j], z = g[H + j], n = g[2 * H + j];
    const T gh = dh[e] + (dout ? dout[e] : T(0));
    const T dan = gh * (T(1) - z) * (T(1) - n * n);
    const T dr = dan * hnl[e] * r * (T(1) - r), dz = gh * (hprev[e] - n) * z * (T(1) - z);
    dx[j] = dg[j] = dr;
    dx[H + j] = dg[H + j] = dz;
    dx[2 * H + j] = dan;
    dg[2 * H + j] = dan * r;
    direct[e] = gh * z;
  }
}

template <class T>
__global__ void elman_fwd_kernel(int act, const T* xw, const T* hw, T* h, T* out, T* gates, const int64_t* lengths,
                                 int64_t t, int64_t B, int64_t H) {
  FASTDL_GRID_STRIDE(e, B * H) {
    if (lengths && t >= lengths[e / H]) {
      out[e] = T(0);
      if (gates) gates[e] = T(0);
      continue;
    }
    const T a = xw[e] + hw[e];
    const T hv = act == kTanh ? dtanh(a) : (a < T(0) ? T(0) : a);  // relu passes a NaN on, as the CPU's
    h[e] = hv;
    out[e] = hv;
    if (gates) gates[e] = hv;
  }
}

template <class T>
__global__ void elman_bwd_kernel(int act, const T* out, const T* dout, const T* dh, T* dpre, T* direct,
                                 const int64_t* lengths, int64_t t, int64_t B, int64_t H) {
  FASTDL_GRID_STRIDE(e, B * H) {
    if (lengths && t >= lengths[e / H]) {
      dpre[e] = T(0);
      direct[e] = dh[e];
      continue;
    }
    const T gh = dh[e] + (dout ? dout[e] : T(0)), o = out[e];
    dpre[e] = act == kTanh ? gh * (T(1) - o * o) : (o > T(0) ? gh : T(0));
    direct[e] = T(0);
  }
}

}  // namespace

std::string gru_cell_forward(int dtype, const void* xw, const void* hw, const void* bhh, void* h, void* out,
                             void* gates, void* hnl, const int64_t* lengths, int64_t t, int64_t B, int64_t H,
                             void* stream) {
  if (B * H == 0) return {};
  return by_dtype(dtype, [&](auto z) {
    using T = decltype(z);
    gru_fwd_kernel<T><<<blocks_for(B * H), kThreads, 0, as_stream(stream)>>>(
        static_cast<const T*>(xw), static_cast<const T*>(hw), static_cast<const T*>(bhh), static_cast<T*>(h),
        static_cast<T*>(out), static_cast<T*>(gates), static_cast<T*>(hnl), lengths, t, B, H);
  });
}

std::string gru_cell_backward(int dtype, const void* gates, const void* hnl, const void* hprev, const void* dout,
                              const void* dh, void* dxw, void* dhw, void* direct, const int64_t* lengths, int64_t t,
                              int64_t B, int64_t H, void* stream) {
  if (B * H == 0) return {};
  return by_dtype(dtype, [&](auto z) {
    using T = decltype(z);
    gru_bwd_kernel<T><<<blocks_for(B * H), kThreads, 0, as_stream(stream)>>>(
        static_cast<const T*>(gates), static_cast<const T*>(hnl), static_cast<const T*>(hprev),
        static_cast<const T*>(dout), static_cast<const T*>(dh), static_cast<T*>(dxw), static_cast<T*>(dhw),
        static_cast<T*>(direct), lengths, t, B, H);
  });
}

std::string rnn_cell_forward(int act, int dtype, const void* xw, const void* hw, void* h, void* out, void* gates,
                             const int64_t* lengths, int64_t t, int64_t B, int64_t H, void* stream) {
  if (B * H == 0) return {};
  return by_dtype(dtype, [&](auto z) {
    using T = decltype(z);
    elman_fwd_kernel<T><<<blocks_for(B * H), kThreads, 0, as_stream(stream)>>>(
        act, static_cast<const T*>(xw), static_cast<const T*>(hw), static_cast<T*>(h), static_cast<T*>(out),
        static_cast<T*>(gates), lengths, t, B, H);
  });
}

std::string rnn_cell_backward(int act, int dtype, const void* out, const void* dout, const void* dh, void* dpre,
                              void* direct, const int64_t* lengths, int64_t t, int64_t B, int64_t H, void* stream) {
  if (B * H == 0) return {};
  return by_dtype(dtype, [&](auto z) {
    using T = decltype(z);
    elman_bwd_kernel<T><<<blocks_for(B * H), kThreads, 0, as_stream(stream)>>>(
        act, static_cast<const T*>(out), static_cast<const T*>(dout), static_cast<const T*>(dh),
        static_cast<T*>(dpre), static_cast<T*>(direct), lengths, t, B, H);
  });
}

// ---------------------------------------------------------------- dropout and the parametrised activations
namespace {

// the keep-mask of inverted dropout: u_i >= p, u_i the counter hash the CPU kernel and the attention use
__global__ void dropout_mask_kernel(unsigned char* out, int64_t n, double p, uint64_t seed) {
  FASTDL_GRID_STRIDE(i, n) { out[i] = d_counter_uniform(seed, i) >= p ? 1 : 0; }
}

template <class T>
__global__ void dropout_apply_kernel(const T* x, const unsigned char* mask, T* y, int64_t n, T scale) {
  FASTDL_GRID_STRIDE(i, n) { y[i] = x[i] * (mask[i] ? scale : T(0)); }
}

// csrc/elementwise.h's kinds, in reference.ACTIVATIONS's order: leaky_relu, elu, selu, celu, gelu,
// gelu_tanh, silu, mish, softplus (alpha = beta, beta = threshold), hardtanh (alpha = min, beta = max),
// hardsigmoid, hardswish
constexpr double kSeluAlpha = 1.6732632423543772848170429916717, kSeluScale = 1.0507009873554804934193349852946;
constexpr double kSqrt2OverPi = 0.79788456080286535587989211986876, kInvSqrt2 = 0.70710678118654752440084436210485;
constexpr double kInvSqrt2Pi = 0.39894228040143267793994605993438;

template <class T>
__device__ inline T softplus20(T v) {
  return v > T(20) ? v : dlog1p(dexp(v));  // (a NaN stays NaN)
}

template <class T>
__device__ inline T act_value(int kind, T v, T a, T b) {
  const T neg = v > T(0) ? T(0) : v;  // min(v, 0), a NaN kept
  switch (kind) {
    case 0: return v > T(0) ? v : a * v;
    case 1: return v > T(0) ? v : a * dexpm1(neg);
    case 2: return T(kSeluScale) * (v > T(0) ? v : T(kSeluAlpha) * dexpm1(neg));
    case 3: return v > T(0) ? v : a * dexpm1(neg / a);
    case 4: return T(0.5) * v * (T(1) + derf(v * T(kInvSqrt2)));
    case 5: return T(0.5) * v * (T(1) + dtanh(T(kSqrt2OverPi) * (v + T(0.044715) * v * v * v)));
    case 6: return v * dsigmoid(v);
    case 7: return v * dtanh(softplus20(v));
    case 8: return v * a > b ? v : dlog1p(dexp(a * v)) / a;
    case 9: return v < a ? a : (v > b ? b : v);
    case 10: return v <= T(-3) ? T(0) : (v >= T(3) ? T(1) : v / T(6) + T(0.5));
    default: return v <= T(-3) ? T(0) : (v >= T(3) ? v : v * (v + T(3)) / T(6));
  }
}

template <class T>
__device__ inline T act_slope(int kind, T v, T a, T b) {
  const T neg = v > T(0) ? T(0) : v;  // min(v, 0), a NaN kept
  switch (kind) {
    case 0: return v > T(0) ? T(1) : a;
    case 1: return v > T(0) ? T(1) : a * dexp(neg);
    case 2: return v > T(0) ? T(kSeluScale) : T(kSeluScale * kSeluAlpha) * dexp(neg);
    case 3: return v > T(0) ? T(1) : dexp(neg / a);
    case 4: return T(0.5) * (T(1) + derf(v * T(kInvSqrt2))) + v * dexp(T(-0.5) * v * v) * T(kInvSqrt2Pi);
    case 5: {
      const T t = dtanh(T(kSqrt2OverPi) * (v + T(0.044715) * v * v * v));
      return T(0.5) * (T(1) + t) + T(0.5) * v * (T(1) - t * t) * T(kSqrt2OverPi) * (T(1) + T(3 * 0.044715) * v * v);
    }
    case 6: {
      const T sg = dsigmoid(v);
      return sg * (T(1) + v * (T(1) - sg));
    }
    case 7: {
      const T t = dtanh(softplus20(v));
      return t + v * (T(1) - t * t) * dsigmoid(v);
    }
    case 8: return v * a > b ? T(1) : dsigmoid(a * v);
    case 9: return (v > a && v < b) ? T(1) : T(0);
    case 10: return (v > T(-3) && v < T(3)) ? T(1) / T(6) : T(0);
    default: return v <= T(-3) ? T(0) : (v < T(3) ? v / T(3) + T(0.5) : T(1));
  }
}

template <class T>
__global__ void param_act_fwd_kernel(int kind, const T* x, T* y, int64_t n, T a, T b) {
  FASTDL_GRID_STRIDE(i, n) { y[i] = act_value(kind, x[i], a, b); }
}

template <class T>
__global__ void param_act_bwd_kernel(int kind, const T* gy, const T* x, T* gx, int64_t n, T a, T b) {
  FASTDL_GRID_STRIDE(i, n) {
    const T v = x[i];
    gx[i] = gy[i] * (v != v ? v : act_slope(kind, v, a, b));  // a NaN input gives NaN
  }
}

}  // namespace

std::string dropout_mask(void* out, int64_t n, double p, uint64_t seed, void* stream) {
  if (n == 0) return {};
  dropout_mask_kernel<<<blocks_for(n), kThreads, 0, as_stream(stream)>>>(static_cast<unsigned char*>(out), n, p, seed);
  return status();
}

std::string dropout_apply(int dtype, const void* x, const void* mask, void* y, int64_t n, double scale, void* stream) {
  if (n == 0) return {};
  return by_dtype(dtype, [&](auto z) {
    using T = decltype(z);
    dropout_apply_kernel<T><<<blocks_for(n), kThreads, 0, as_stream(stream)>>>(
        static_cast<const T*>(x), static_cast<const unsigned char*>(mask), static_cast<T*>(y), n, T(scale));
  });
}

std::string activation_forward(int kind, int dtype, const void* x, void* y, int64_t n, double alpha, double beta,
                               void* stream) {
  if (n == 0) return {};
  return by_dtype(dtype, [&](auto z) {
    using T = decltype(z);
    param_act_fwd_kernel<T><<<blocks_for(n), kThreads, 0, as_stream(stream)>>>(
        kind, static_cast<const T*>(x), static_cast<T*>(y), n, T(alpha), T(beta));
  });
}

std::string activation_backward(int kind, int dtype, const void* gy, const void* x, void* gx, int64_t n, double alpha,
                                double beta, void* stream) {
  if (n == 0) return {};
  return by_dtype(dtype, [&](auto z) {
    using T = decltype(z);
    param_act_bwd_kernel<T><<<blocks_for(n), kThreads, 0, as_stream(stream)>>>(
        kind, static_cast<const T*>(gy), static_cast<const T*>(x), static_cast<T*>(gx), n, T(alpha), T(beta));
  });
}

// ---------------------------------------------------------------- additive (Bahdanau) attention scores
namespace {

// s[b, i, j] = sum_h v_h tanh(qp[b, i, h] + kp[b, j, h]): a thread per score, nothing (B, L, S, H) stored
template <class T>
__global__ void additive_fwd_kernel(const T* qp, const T* kp, const T* v, T* s, int64_t B, int64_t L, int64_t S,
                                    int64_t H) {
  FASTDL_GRID_STRIDE(e, B * L * S) {
    const int64_t b = e / (L * S), i = e / S % L, j = e % S;
    const T* q = qp + (b * L + i) * H;
    const T* k = kp + (b * S + j) * H;
    T acc = T(0);
    for (int64_t h = 0; h < H; ++h) acc += v[h] * dtanh(q[h] + k[h]);
    s[e] = acc;
  }
}

// a thread per (b, i, h) summing over the keys: gq = v_h sum_j gs (1 - t^2), vpart = sum_j gs t (gv's
// share of this query, summed over b and i afterwards); either output may be null
template <class T>
__global__ void additive_bwd_q_kernel(const T* gs, const T* qp, const T* kp, const T* v, T* gq, T* vpart, int64_t B,
                                      int64_t L, int64_t S, int64_t H) {
  FASTDL_GRID_STRIDE(e, B * L * H) {
    const int64_t b = e / (L * H), i = e / H % L, h = e % H;
    const T q = qp[e];
    const T* g = gs + (b * L + i) * S;
    T acc = T(0), accv = T(0);
    for (int64_t j = 0; j < S; ++j) {
      const T t = dtanh(q + kp[(b * S + j) * H + h]);
      acc += g[j] * (T(1) - t * t);
      accv += g[j] * t;
    }
    if (gq) gq[e] = acc * v[h];
    if (vpart) vpart[e] = accv;
  }
}

// a thread per (b, j, h) summing over the queries: gk = v_h sum_i gs (1 - t^2)
template <class T>
__global__ void additive_bwd_k_kernel(const T* gs, const T* qp, const T* kp, const T* v, T* gk, int64_t B, int64_t L,
                                      int64_t S, int64_t H) {
  FASTDL_GRID_STRIDE(e, B * S * H) {
    const int64_t b = e / (S * H), j = e / H % S, h = e % H;
    const T k = kp[e];
    T acc = T(0);
    for (int64_t i = 0; i < L; ++i) {
      const T t = dtanh(qp[(b * L + i) * H + h] + k);
      acc += gs[(b * L + i) * S + j] * (T(1) - t * t);
    }
    gk[e] = acc * v[h];
  }
}

}  // namespace

std::string additive_attention_forward(int dtype, const void* qp, const void* kp, const void* v, void* s, int64_t B,
                                       int64_t L, int64_t S, int64_t H, void* stream) {
  if (B * L * S == 0) return {};
  return by_dtype(dtype, [&](auto z) {
    using T = decltype(z);
    additive_fwd_kernel<T><<<blocks_for(B * L * S), kThreads, 0, as_stream(stream)>>>(
        static_cast<const T*>(qp), static_cast<const T*>(kp), static_cast<const T*>(v), static_cast<T*>(s), B, L, S, H);
  });
}

std::string additive_attention_backward(int dtype, const void* gs, const void* qp, const void* kp, const void* v,
                                        void* gq, void* vpart, void* gk, int64_t B, int64_t L, int64_t S, int64_t H,
                                        void* stream) {
  return by_dtype(dtype, [&](auto z) {
    using T = decltype(z);
    const auto st = as_stream(stream);
    if ((gq || vpart) && B * L * H > 0)
      additive_bwd_q_kernel<T><<<blocks_for(B * L * H), kThreads, 0, st>>>(
          static_cast<const T*>(gs), static_cast<const T*>(qp), static_cast<const T*>(kp), static_cast<const T*>(v),
          static_cast<T*>(gq), static_cast<T*>(vpart), B, L, S, H);
    if (gk && B * S * H > 0)
      additive_bwd_k_kernel<T><<<blocks_for(B * S * H), kThreads, 0, st>>>(
          static_cast<const T*>(gs), static_cast<const T*>(qp), static_cast<const T*>(kp), static_cast<const T*>(v),
          static_cast<T*>(gk), B, L, S, H);
  });
}

namespace {
AttnArgs attn_args(int64_t B, int64_t L, int64_t S, int64_t E, int64_t Ev, int64_t mb, int64_t ml, int64_t div,
                   bool causal, double scale, double p, uint64_t seed) {
  return AttnArgs{B, L, S, E, Ev, mb, ml, div, causal, scale, p, seed};
}
dim3 attn_grid(int64_t rows, int64_t B) {
  return dim3(static_cast<unsigned>((rows + kAttnWarps - 1) / kAttnWarps), static_cast<unsigned>(B));
}
}  // namespace

int attention_max_features() { return 32 * kAttnPer; }

std::string attention_forward(int dtype, const void* q, const void* k, const void* v, const void* mask, int64_t mb,
                              int64_t ml, int64_t div, void* out, void* lse, int64_t B, int64_t L, int64_t S,
                              int64_t E, int64_t Ev, bool causal, double scale, double dropout_p, uint64_t seed,
                              void* stream) {
  if (B * L == 0) return {};
  const AttnArgs a = attn_args(B, L, S, E, Ev, mb, ml, div, causal, scale, dropout_p, seed);
  return by_dtype(dtype, [&](auto z) {
    using T = decltype(z);
    attn_fwd_kernel<T><<<attn_grid(L, B), 32 * kAttnWarps, 0, as_stream(stream)>>>(
        static_cast<const T*>(q), static_cast<const T*>(k), static_cast<const T*>(v), static_cast<const T*>(mask),
        static_cast<T*>(out), static_cast<T*>(lse), a);
  });
}

std::string attention_backward(int dtype, const void* gout, const void* q, const void* k, const void* v,
                               const void* out, const void* lse, const void* mask, int64_t mb, int64_t ml, int64_t div,
                               void* D, void* gq, void* gk, void* gv, int64_t B, int64_t L, int64_t S, int64_t E,
                               int64_t Ev, bool causal, double scale, double dropout_p, uint64_t seed, void* stream) {
  const AttnArgs a = attn_args(B, L, S, E, Ev, mb, ml, div, causal, scale, dropout_p, seed);
  return by_dtype(dtype, [&](auto z) {
    using T = decltype(z);
    const auto st = as_stream(stream);
    if (B * L > 0) {
      attn_rowdot_kernel<T><<<static_cast<unsigned>((B * L + kAttnWarps - 1) / kAttnWarps), 32 * kAttnWarps, 0, st>>>(
          static_cast<const T*>(gout), static_cast<const T*>(out), static_cast<T*>(D), B * L, Ev);
      attn_dq_kernel<T><<<attn_grid(L, B), 32 * kAttnWarps, 0, st>>>(
          static_cast<const T*>(gout), static_cast<const T*>(q), static_cast<const T*>(k), static_cast<const T*>(v),
          static_cast<const T*>(lse), static_cast<const T*>(D), static_cast<const T*>(mask), static_cast<T*>(gq), a);
    }
    if (B * S > 0)
      attn_dkv_kernel<T><<<attn_grid(S, B), 32 * kAttnWarps, 0, st>>>(
          static_cast<const T*>(gout), static_cast<const T*>(q), static_cast<const T*>(k), static_cast<const T*>(v),
          static_cast<const T*>(lse), static_cast<const T*>(D), static_cast<const T*>(mask), static_cast<T*>(gk),
          static_cast<T*>(gv), a);
  });
}

const char* architectures() { return FASTDL_CUDA_ARCHS; }

}  // namespace fastdl::cuda
