// Runtime dispatch between the portable and the AVX2+FMA builds of the
// per-range kernels (simd_kernels.inc).  The choice is made once, from the
// CPU, so a wheel built without -march flags still runs AVX2 code where it can.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

namespace fastdl {

#define FASTDL_SIMD_DECLARE                                                                             \
  template <class T> void relu_f(const T*, T*, int64_t);                                                \
  template <class T> void relu_b(const T*, const T*, T*, int64_t);                                      \
  template <class T> void tanh_f(const T*, T*, int64_t);                                                \
  template <class T> void tanh_b(const T*, const T*, T*, int64_t);                                      \
  template <class T> void sigmoid_f(const T*, T*, int64_t);                                             \
  template <class T> void sigmoid_b(const T*, const T*, T*, int64_t);                                   \
  template <class T> void lstm_cell(T*, T*, T*, int64_t);                                                \
  template <class T> void dropout_a(const T*, const uint8_t*, T, T*, int64_t);                          \
  template <class T> void act_forward(const T*, T*, int64_t, int, T, T);                                \
  template <class T> void act_backward(const T*, const T*, T*, int64_t, int, T, T);                     \
  template <class T> void softmax_row(const T*, T*, int64_t, bool);                                     \
  template <class T> void softmax_row_backward(const T*, const T*, T*, int64_t, bool);                  \
  template <class T> void softmax_block(const T*, T*, int64_t, int64_t, bool, T*, T*);                  \
  template <class T> void softmax_block_backward(const T*, const T*, T*, int64_t, int64_t, bool, T*);   \
  template <class T> T row_lse(const T*, int64_t, T*, T*);                                              \
  template <class T> void row_ce_grad(const T*, T, T, T*, int64_t);                                     \
  template <class T> void bce_f(const T*, const T*, T*, int64_t);                                       \
  template <class T> void bce_b(const T*, const T*, const T*, T*, int64_t);                             \
  template <class T> void sgd_range(T*, const T*, T*, int64_t, T, T, T, T, bool, bool, bool);            \
  template <class T> void adam_range(T*, const T*, T*, T*, T*, int64_t, T, T, T, T, T, T, bool, bool, T, T); \
  template <class T> void rmsprop_range(T*, const T*, T*, T*, T*, int64_t, T, T, T, T, T, T, bool);            \
  template <class T> void maxpool2x2_row(const T*, const T*, T*, int64_t*, int64_t, int64_t, int64_t);          \
  template <class T> void avgpool2x2_row(const T*, const T*, T*, int64_t);                                     \
  template <class T> double sum_d(const T*, int64_t);                                                         \
  template <class T> double sq_dev_d(const T*, int64_t, double);                                              \
  template <class T> void sum_g_gxhat_d(const T*, const T*, int64_t, double, double, double*, double*);        \
  template <class T> void sum_gg_ggxhat_d(const T*, const T*, const T*, int64_t, T, T, double*, double*);    \
  template <class T> T attn_online_row(T*, int64_t, int64_t, const T*, T*, T*);                               \
  template <class T> void attn_prob_row(T*, int64_t, int64_t, const T*, T);                                   \
  template <class T> T attn_online_row2(T*, int64_t, int64_t, const T*, T*, T*);                              \
  template <class T> void attn_prob_row2(T*, int64_t, int64_t, const T*, T);                                  \
  template <class T> void attn_ds_row(const T*, T*, int64_t, T, T);                                           \
  template <class T> void attn_scale_row(const T*, T, T*, int64_t);                                           \
  template <class T> void masked_softmax_row(const T*, const uint8_t*, T*, int64_t, T);                       \
  template <class T> void additive_row(const T*, const T*, const T*, T*, int64_t, int64_t);                   \
  template <class T> void additive_row_backward(const T*, const T*, const T*, const T*, T*, T*, T*, int64_t, int64_t);

namespace base {
FASTDL_SIMD_DECLARE
}
#ifdef FASTDL_HAVE_AVX2_BUILD
namespace avx2 {
FASTDL_SIMD_DECLARE
}
#endif
#undef FASTDL_SIMD_DECLARE

bool cpu_has_avx2_fma();  // cpu.cpp

#ifdef FASTDL_HAVE_AVX2_BUILD
inline bool use_avx2() {
  static const bool yes = cpu_has_avx2_fma();
  return yes;
}
// SIMD(fn<T>)(args...): the AVX2 build when the CPU has it, else the portable one.
#define SIMD(...) (::fastdl::use_avx2() ? ::fastdl::avx2::__VA_ARGS__ : ::fastdl::base::__VA_ARGS__)
#else
inline bool use_avx2() { return false; }
#define SIMD(...) (::fastdl::base::__VA_ARGS__)
#endif

}  // namespace fastdl
