#include "gemm.h"

#include <cblas.h>

#include <type_traits>

#include "common.h"
#include "conv_direct.h"
#include "gemm_packed.h"

namespace fastdl {

static inline CBLAS_TRANSPOSE tr(bool t) { return t ? CblasTrans : CblasNoTrans; }

namespace {

// Products of at least this many multiply-adds take the tile kernel's A^T B (blas, float, `tiled`),
// and of at least the second many its A B and A B^T
constexpr int64_t kTiledMacs = int64_t(1) << 18;
constexpr int64_t kTiledPlainMacs = int64_t(1) << 15;

// One product on the calling thread (BLAS is single-threaded: cpu.cpp).  Where the CPU has the AVX-512
// build, float A B and A B^T (alpha 1, beta 0 or 1) of at least 32 rows go to the packed tile kernel
// (matmul, bmm, linear, its input gradient, convolutions' GEMMs): at 1 thread, M x N x K, against
// OpenBLAS in alternating processes, 155-175 GFLOP/s against 111-150 (128 x 128 x 64 1.40x, 64 x 256 x
// 784 1.23x / 1.35x for A B^T, 1600 x 128 x 1024 1.29x, 1024^3 1.10x).  With fewer rows OpenBLAS
// stays: packing B costs as much as using it (LeNet's first convolution, 6 x 50176 x 25, went 0.37 ->
// 0.50 ms).  A^T B only with `tiled` (the weight gradients of linear and recurrent layers,
// gemm_weight_grad), OpenBLAS's transposed-A packing making these its slowest products here (1024 x 128
// x 1600 1.10-1.20x its speed, 1024 x 256 x 1600 1.10-1.14x with blocks of 128 rows of K and unaligned
// panels; 5-11% faster again since: 141 and 152 GFLOP/s), but not every A^T B: a 1x1 convolution's
// input gradient, 256 x 784 x 128 per image, measured 4-25% slower that way.  An AVX2 instance of the
// same kernel (6 x 16 tiles) measured level with OpenBLAS on an AMD EPYC (Zen 3, 1 thread, alternating
// in one process, nine shapes: 0.95-1.08x, A^T B 0.93-0.97x, K blocks 128-384, row blocks 24-96, column
// blocks 128-512 tried), so AVX2 CPUs keep OpenBLAS.
// `bias` (with beta 0 only, else null): C starts from it, one value per column, instead of from zero:
// the packed kernel's tiles load it into their accumulators; for BLAS this block of C's rows is filled
// first and taken with beta 1.
template <class T> void fill_bias(const T* bias, int64_t M, int64_t N, T* C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i) std::memcpy(C + i * ldc, bias, sizeof(T) * N);
}
void blas(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
          const float* B, int64_t ldb, float beta, float* C, int64_t ldc, bool tiled = false,
          const float* bias = nullptr) {
  if (alpha == 1.0f && (beta == 0.0f || beta == 1.0f) && conv_direct_width() == 16 && !(ta && tb) &&
      (ta ? tiled && beta == 0.0f && M >= 16 && N >= 16 && K >= 64 && M * N * K >= kTiledMacs
          : M >= 32 && N >= 16 && K >= 16 && M * N * K >= kTiledPlainMacs)) {
    if (const auto g = packed_kernels(16).gemm) {
      g(ta, tb, M, N, K, A, lda, B, ldb, beta == 1.0f, bias, C, ldc);
      return;
    }
  }
  if (bias) {
    fill_bias(bias, M, N, C, ldc);
    beta = 1.0f;
  }
  scipy_cblas_sgemm(CblasRowMajor, tr(ta), tr(tb), (blasint)M, (blasint)N, (blasint)K, alpha, A, (blasint)lda, B,
                    (blasint)ldb, beta, C, (blasint)ldc);
}
void blas(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const double* A, int64_t lda,
          const double* B, int64_t ldb, double beta, double* C, int64_t ldc, bool = false,
          const double* bias = nullptr) {
  if (bias) {
    fill_bias(bias, M, N, C, ldc);
    beta = 1.0;
  }
  scipy_cblas_dgemm(CblasRowMajor, tr(ta), tr(tb), (blasint)M, (blasint)N, (blasint)K, alpha, A, (blasint)lda, B,
                    (blasint)ldb, beta, C, (blasint)ldc);
}

// Products of fewer multiply-adds stay on one thread: waking the pool costs microseconds.
constexpr int64_t kSplitMacs = int64_t(1) << 20;

template <class T>
void gemm_split(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B,
                int64_t ldb, T beta, T* C, int64_t ldc, bool tiled = false, const T* bias = nullptr) {
  if (M == 0 || N == 0) return;
  if (K == 0) {  // BLAS leaves C untouched when K == 0 only if beta == 1
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = bias ? bias[j] : beta == T(0) ? T(0) : beta * C[i * ldc + j];
    return;
  }
  const int64_t nt = max_threads();
  if (nt <= 1 || M * N * K < kSplitMacs) {
    blas(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, tiled, bias);
    return;
  }
  // blocks of C's rows or of its columns, whole 16s, one per thread, each a plain BLAS call.  Every
  // thread packs all of the operand that is not split and its share of the other: splitting the
  // longer side of C packs the least (K * min(M, N) + K * max(M, N) / nt per thread)
  const bool rows = M >= N;
  const int64_t L = rows ? M : N, parts = std::min<int64_t>(nt, (L + 15) / 16);
  const int64_t step = ((L + parts - 1) / parts + 15) / 16 * 16;
  parallel_parts(parts, [&](int64_t p, int64_t) {
    const int64_t b = p * step, e = std::min(L, b + step);
    if (b >= e) return;
    if (rows)
      blas(ta, tb, e - b, N, K, alpha, ta ? A + b : A + b * lda, lda, B, ldb, beta, C + b * ldc, ldc, tiled, bias);
    else
      blas(ta, tb, M, e - b, K, alpha, A, lda, tb ? B + b * ldb : B + b, ldb, beta, C + b, ldc, tiled,
           bias ? bias + b : nullptr);
  });
}

// Batch items per thread below which a batched product stays on one thread.
int64_t batch_grain(int64_t M, int64_t N, int64_t K) {
  return std::max<int64_t>(1, kSplitMacs / std::max<int64_t>(1, M * N * K));
}

}  // namespace

template <>
void gemm_ld<float>(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                    const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  gemm_split<float>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

template <>
void gemm_ld<double>(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const double* A,
                     int64_t lda, const double* B, int64_t ldb, double beta, double* C, int64_t ldc) {
  gemm_split<double>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

template <>
void gemm<float>(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                 const float* B, float beta, float* C) {
  gemm_ld<float>(ta, tb, M, N, K, alpha, A, ta ? M : K, B, tb ? K : N, beta, C, N);
}

template <>
void gemm<double>(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const double* A,
                  const double* B, double beta, double* C) {
  gemm_ld<double>(ta, tb, M, N, K, alpha, A, ta ? M : K, B, tb ? K : N, beta, C, N);
}

// C (M, N) = A^T B.  Without the AVX-512 build's tile kernel, a wide C of a long sum (M >= 2 N, K >= 512:
// the recurrent and linear layers' weight gradients) is computed as its transpose B^T A, which OpenBLAS
// runs faster than A^T B (numpy's OpenBLAS, 1 thread, alternating: 1024 x 128 x 1600 1.20x, 1024 x 256
// x 1600 1.16x, 2048 x 256 x 6400 1.10x, 512 x 128 x 3200 1.08x; level where M ~ N or K is short), and
// turned back in 16 x 16 tiles (a tenth of the time saved, measured).
template <class T>
void gemm_weight_grad(int64_t M, int64_t N, int64_t K, const T* A, const T* B, T* C) {
  if constexpr (std::is_same_v<T, float>) {
    if (conv_direct_width() == 8 && M >= 2 * N && N >= 16 && K >= 512 && M * N * K >= kTiledMacs) {
      const auto t16 = packed_kernels(8).transpose16;
      avector<float> ct(size_t(N * M));
      gemm_split<float>(true, false, N, M, K, 1.0f, B, N, A, M, 0.0f, ct.data(), M);
      const int64_t m16 = M / 16 * 16, n16 = N / 16 * 16;
      parallel_for((M + 15) / 16, 8, [&](int64_t b0, int64_t b1) {
        for (int64_t i = b0 * 16; i < std::min(M, b1 * 16); i += 16) {  // C's rows [i, i + 16)
          if (i < m16)
            for (int64_t j = 0; j < n16; j += 16) t16(ct.data() + j * M + i, M, C + i * N + j, N);
          for (int64_t r = i; r < std::min(M, i + 16); ++r)
            for (int64_t j = r < m16 ? n16 : 0; j < N; ++j) C[r * N + j] = ct[size_t(j * M + r)];
        }
      });
      return;
    }
  }
  gemm_split<T>(true, false, M, N, K, T(1), A, M, B, N, T(0), C, N, true);
}

template <class T>
void matmul_forward(const T* a, const T* b, T* y, int64_t batch, int64_t M, int64_t K,
                    int64_t N, int64_t a_stride, int64_t b_stride) {
  if (b_stride == 0 && a_stride != 0) {
    // one shared right operand: fold the batch into the rows -> one big GEMM
    gemm<T>(false, false, batch * M, N, K, T(1), a, b, T(0), y);
    return;
  }
  // one product per batch item, the items shared out over the pool (each product then runs on its
  // thread; a single item is split by gemm itself)
  parallel_for(batch, batch_grain(M, N, K), [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i)
      gemm<T>(false, false, M, N, K, T(1), a + i * a_stride, b + i * b_stride, T(0), y + i * M * N);
  });
}

template <class T>
void matmul_backward(const T* gy, const T* a, const T* b, T* ga, T* gb, int64_t batch,
                     int64_t M, int64_t K, int64_t N, int64_t a_stride, int64_t b_stride) {
  if (ga) {
    if (a_stride == 0) {  // a shared: ga = sum_i gy_i b_i^T
      for (int64_t i = 0; i < batch; ++i)
        gemm<T>(false, true, M, K, N, T(1), gy + i * M * N, b + i * b_stride, i ? T(1) : T(0), ga);
    } else if (b_stride == 0) {  // (batch*M, N) @ b^T
      gemm<T>(false, true, batch * M, K, N, T(1), gy, b, T(0), ga);
    } else {
      parallel_for(batch, batch_grain(M, N, K), [&](int64_t i0, int64_t i1) {
        for (int64_t i = i0; i < i1; ++i)
          gemm<T>(false, true, M, K, N, T(1), gy + i * M * N, b + i * b_stride, T(0), ga + i * M * K);
      });
    }
  }
  if (gb) {
    if (b_stride == 0 && a_stride != 0) {  // b shared: gb = A_flat^T @ gy_flat
      gemm_weight_grad<T>(K, N, batch * M, a, gy, gb);
    } else if (b_stride == 0) {
      for (int64_t i = 0; i < batch; ++i)
        gemm<T>(true, false, K, N, M, T(1), a, gy + i * M * N, i ? T(1) : T(0), gb);
    } else {
      parallel_for(batch, batch_grain(M, N, K), [&](int64_t i0, int64_t i1) {
        for (int64_t i = i0; i < i1; ++i)
          gemm<T>(true, false, K, N, M, T(1), a + i * a_stride, gy + i * M * N, T(0), gb + i * K * N);
      });
    }
  }
}

template <class T>
void linear_forward(const T* x, const T* w, const T* bias, T* y, int64_t N, int64_t IN,
                    int64_t OUT) {
  // y starts from the bias inside the product: the packed kernel's accumulators, or each thread's block
  // of rows for BLAS (a separate pass over y first cost 1600 x 1024 x 128 17%: 138 -> 166 GFLOP/s)
  gemm_split<T>(false, true, N, OUT, IN, T(1), x, IN, w, IN, T(0), y, OUT, false, bias);
}

template <class T>
void linear_backward(const T* gy, const T* x, const T* w, T* gx, T* gw, T* gb, int64_t N,
                     int64_t IN, int64_t OUT) {
  if (gx) gemm<T>(false, false, N, IN, OUT, T(1), gy, w, T(0), gx);
  if (gw) gemm_weight_grad<T>(OUT, IN, N, gy, x, gw);
  if (gb) {
    // column sums of gy, split over columns so each thread owns its outputs
    parallel_for(OUT, 64, [&](int64_t b, int64_t e) {
      for (int64_t o = b; o < e; ++o) gb[o] = T(0);
      for (int64_t n = 0; n < N; ++n) {
        const T* row = gy + n * OUT;
        for (int64_t o = b; o < e; ++o) gb[o] += row[o];
      }
    });
  }
}

#define FASTDL_INSTANTIATE(T)                                                                    \
  template void gemm_weight_grad<T>(int64_t, int64_t, int64_t, const T*, const T*, T*);            \
  template void matmul_forward<T>(const T*, const T*, T*, int64_t, int64_t, int64_t, int64_t,    \
                                  int64_t, int64_t);                                             \
  template void matmul_backward<T>(const T*, const T*, const T*, T*, T*, int64_t, int64_t,       \
                                   int64_t, int64_t, int64_t, int64_t);                          \
  template void linear_forward<T>(const T*, const T*, const T*, T*, int64_t, int64_t, int64_t); \
  template void linear_backward<T>(const T*, const T*, const T*, T*, T*, T*, int64_t, int64_t,  \
                                   int64_t);
FASTDL_INSTANTIATE(float)
FASTDL_INSTANTIATE(double)
#undef FASTDL_INSTANTIATE

}  // namespace fastdl
