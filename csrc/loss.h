// Loss kernels.  Reductions over the batch are left to the caller, which
// passes per-sample upstream gradients to the backward kernels.
#pragma once
#include <cstdint>

namespace fastdl {

// logits (N, C), target (N) int64 -> loss (N), lse (N) (saved for backward).
// loss_n = (1-eps) * (lse_n - x[n, t_n]) + eps * (lse_n - mean_c x[n, c]);
// rows whose target == ignore_index get loss 0.  Targets must be in [0, C)
// (checked by the caller).
template <class T>
void cross_entropy_forward(const T* logits, const int64_t* target, T* loss, T* lse, int64_t N,
                           int64_t C, int64_t ignore_index, double label_smoothing);
// gloss (N) -> glogits (N, C) = gloss_n * (softmax - (1-eps) onehot(t_n) - eps/C)
template <class T>
void cross_entropy_backward(const T* gloss, const T* logits, const int64_t* target, const T* lse,
                            T* glogits, int64_t N, int64_t C, int64_t ignore_index,
                            double label_smoothing);

// x, t, mask (n, mask may be null: all kept) -> loss (n) element-wise:
// max(x, 0) - x t + log(1 + exp(-|x|)), 0 where mask == 0.
template <class T>
void bce_with_logits_forward(const T* x, const T* t, const uint8_t* mask, T* loss, int64_t n);
// gloss (n) -> gx (n) = gloss * (sigmoid(x) - t), 0 where mask == 0
template <class T>
void bce_with_logits_backward(const T* gloss, const T* x, const T* t, const uint8_t* mask, T* gx,
                              int64_t n);

// sum_i (p_i - t_i)^2, accumulated in double
template <class T> double mse_forward(const T* p, const T* t, int64_t n);
// gp = scale * 2 (p - t)
template <class T> void mse_backward(T scale, const T* p, const T* t, T* gp, int64_t n);

}  // namespace fastdl
