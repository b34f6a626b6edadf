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

}  // namespace fastdl
