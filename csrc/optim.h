// Fused optimizer updates: one pass reads parameter, gradient and state once
// and writes them back in place.  All arrays are flat, length n, one dtype.
#pragma once
#include <cstdint>

namespace fastdl {

// PyTorch's SGD: g += wd p; buf = first ? g : momentum buf + (1 - dampening) g;
// g = nesterov ? g + momentum buf : buf; p -= lr g.  buf may be null (momentum 0).
template <class T>
void sgd_step(T* p, const T* g, T* buf, int64_t n, double lr, double momentum, double dampening,
              double weight_decay, bool nesterov, bool maximize, bool first_step);

// PyTorch's Adam / AdamW (decoupled = true): m, v (and vmax for amsgrad, else
// null) are updated in place; `step` is the step number after increment (>= 1).
template <class T>
void adam_step(T* p, const T* g, T* m, T* v, T* vmax, int64_t n, double lr, double beta1, double beta2,
               double eps, double weight_decay, bool decoupled, bool maximize, int64_t step);

// PyTorch's RMSprop: sq (square average), gavg (centered only, else null),
// buf (momentum > 0 only, else null) updated in place.
template <class T>
void rmsprop_step(T* p, const T* g, T* sq, T* gavg, T* buf, int64_t n, double lr, double alpha, double eps,
                  double weight_decay, double momentum, bool maximize);

// The other adaptive optimizers of PyTorch, one fused pass each, selected by `kind`:
//   adagrad : a = sum of squares;            extra = lr_decay
//   adadelta: a = square_avg, b = acc_delta; beta1 = rho
//   adamax  : a = exp_avg, b = exp_inf;      beta1, beta2
//   nadam   : a = exp_avg, b = exp_avg_sq;   beta1, beta2, extra = momentum_decay,
//             extra2 = the product of the momentum coefficients up to this step (the caller's state)
//   radam   : a = exp_avg, b = exp_avg_sq;   beta1, beta2
// Weight decay is coupled (g += wd p) unless `decoupled` (nadam, radam: p *= 1 - lr wd); `step` counts
// from 1 (the step being taken).  b is null for adagrad.
enum class Adaptive { adagrad, adadelta, adamax, nadam, radam };
template <class T>
void adaptive_step(Adaptive kind, T* p, const T* g, T* a, T* b, int64_t n, double lr, double beta1, double beta2,
                   double eps, double weight_decay, bool decoupled, bool maximize, int64_t step, double extra,
                   double extra2);

}  // namespace fastdl
