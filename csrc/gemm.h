// GEMM-backed kernels: matmul, batched matmul, linear.  All arrays are
// C-contiguous (row-major); T is float or double.
#pragma once
#include <cstdint>

namespace fastdl {

// C (M, N) = alpha * op(A) @ op(B) + beta * C, row-major, op = transpose if flag.
// The same with leading dimensions: lda/ldb/ldc are the row strides of A, B and C as stored.
template <class T>
void gemm_ld(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
             const T* B, int64_t ldb, T beta, T* C, int64_t ldc);
template <>
void gemm_ld<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*, int64_t,
                    float, float*, int64_t);
template <>
void gemm_ld<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t, const double*,
                     int64_t, double, double*, int64_t);

template <class T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
          const T* B, T beta, T* C);
template <>
void gemm<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, const float*, float, float*);
template <>
void gemm<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*, const double*, double, double*);

// C (M, N) = A^T B for A (K, M) and B (K, N), all contiguous: a weight gradient (rows of A and B one
// sample or step each).  float32 runs on the packed tile kernel where the CPU has its AVX-512 build.
template <class T>
void gemm_weight_grad(int64_t M, int64_t N, int64_t K, const T* A, const T* B, T* C);

// a (batch|1, M, K), b (batch|1, K, N) -> y (batch, M, N); a_stride / b_stride
// are the per-batch element strides (0 broadcasts one matrix over the batch).
template <class T>
void matmul_forward(const T* a, const T* b, T* y, int64_t batch, int64_t M, int64_t K,
                    int64_t N, int64_t a_stride, int64_t b_stride);

// gy (batch, M, N) -> ga (like a), gb (like b); a gradient pointer may be null
// (not needed).  A broadcast operand (stride 0) gets the sum over the batch.
template <class T>
void matmul_backward(const T* gy, const T* a, const T* b, T* ga, T* gb, int64_t batch,
                     int64_t M, int64_t K, int64_t N, int64_t a_stride, int64_t b_stride);

// x (N, IN), w (OUT, IN), bias (OUT) or null -> y (N, OUT) = x w^T + bias
template <class T>
void linear_forward(const T* x, const T* w, const T* bias, T* y, int64_t N, int64_t IN,
                    int64_t OUT);

// gy (N, OUT) -> gx (N, IN) = gy w, gw (OUT, IN) = gy^T x, gb (OUT) = sum_n gy;
// any of gx / gw / gb may be null.
template <class T>
void linear_backward(const T* gy, const T* x, const T* w, T* gx, T* gw, T* gb, int64_t N,
                     int64_t IN, int64_t OUT);

}  // namespace fastdl
