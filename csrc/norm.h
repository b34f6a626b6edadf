// Batch normalization over (N, C, S) (S = H*W, or 1 for (N, C) input) and
// layer normalization over the last D elements of each of M rows.
#pragma once
#include <cstdint>

namespace fastdl {

// Training: per channel mean and biased var over N*S, y = (x - mean) * rstd * gamma + beta;
// saves mean and rstd (C); updates running stats in place when given:
// rm = (1 - momentum) rm + momentum mean, rv = (1 - momentum) rv + momentum var * M/(M-1).
template <class T>
void batch_norm_train_forward(const T* x, const T* gamma, const T* beta, T* y, T* mean, T* rstd, T* run_mean,
                              T* run_var, int64_t N, int64_t C, int64_t S, double momentum, double eps);
// Evaluation: y = (x - rm) / sqrt(rv + eps) * gamma + beta (gamma/beta may be null: 1, 0); saves the
// statistics used, mean = rm and rstd = 1 / sqrt(rv + eps) (C), for the backward
template <class T>
void batch_norm_eval_forward(const T* x, const T* gamma, const T* beta, const T* run_mean, const T* run_var, T* y,
                             T* mean, T* rstd, int64_t N, int64_t C, int64_t S, double eps);
// gy -> gx, ggamma, gbeta (each may be null).  train: batch statistics (mean, rstd saved);
// eval: the statistics are constants, gx = gy * gamma * rstd.
template <class T>
void batch_norm_backward(const T* gy, const T* x, const T* gamma, const T* mean, const T* rstd, T* gx, T* ggamma,
                         T* gbeta, int64_t N, int64_t C, int64_t S, bool training);

// x (M, D) -> y, mean (M), rstd (M); gamma, beta (D) or null
template <class T>
void layer_norm_forward(const T* x, const T* gamma, const T* beta, T* y, T* mean, T* rstd, int64_t M, int64_t D,
                        double eps);
template <class T>
void layer_norm_backward(const T* gy, const T* x, const T* gamma, const T* mean, const T* rstd, T* gx, T* ggamma,
                         T* gbeta, int64_t M, int64_t D);

// Group norm over x (N, C, S), C a multiple of G: each sample's group of C/G channels (D = C/G * S
// contiguous elements) is normalised as one layer-norm row, then y = xhat gamma[c] + beta[c]
// (gamma, beta (C) or null).  mean, rstd: (N * G).  The backward gives gx, ggamma, gbeta (each may
// be null), with the statistics' gradient through the whole group.
template <class T>
void group_norm_forward(const T* x, const T* gamma, const T* beta, T* y, T* mean, T* rstd, int64_t N, int64_t C,
                        int64_t S, int64_t G, double eps);
template <class T>
void group_norm_backward(const T* gy, const T* x, const T* gamma, const T* mean, const T* rstd, T* gx, T* ggamma,
                         T* gbeta, int64_t N, int64_t C, int64_t S, int64_t G);

}  // namespace fastdl
