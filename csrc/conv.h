// 2-D convolution, NCHW, by im2col + BLAS GEMM over bands of output rows, one image at a
// time: images run in parallel (serial BLAS in each thread) when the batch shares out evenly,
// else one after another over a threaded BLAS.  The column buffer is bounded per thread.
// float32 forwards whose output channels per group fill whole SIMD vectors skip the columns:
// conv_direct.h computes them in registers, reading the input (or its padded phase planes) in place.
#pragma once
#include <cstdint>

namespace fastdl {

struct Conv2dShape {
  int64_t N, C, H, W;        // input
  int64_t K, kh, kw;         // output channels, kernel
  int64_t sh, sw;            // stride
  int64_t pt, pl, pb, pr;    // padding: top, left, bottom, right (asymmetric for "same" with even kernels)
  int64_t dh, dw;            // dilation
  int64_t groups;
  int64_t OH, OW;            // output
};

// x (N, C, H, W), w (K, C/groups, kh, kw), bias (K) or null -> y (N, K, OH, OW)
template <class T>
void conv2d_forward(const T* x, const T* w, const T* bias, T* y, const Conv2dShape& s);

// gy (N, K, OH, OW) -> gx (like x), gw (like w), gb (K); each may be null (not needed)
template <class T>
void conv2d_backward(const T* gy, const T* x, const T* w, T* gx, T* gw, T* gb, const Conv2dShape& s);

// The same two as plain loops (conv_naive.cpp): any shape, slow; the fallback set_conv_naive(true)
// selects for every call (tests), and the version a new device port starts from.
template <class T>
void conv2d_forward_naive(const T* x, const T* w, const T* bias, T* y, const Conv2dShape& s);
template <class T>
void conv2d_backward_naive(const T* gy, const T* x, const T* w, T* gx, T* gw, T* gb, const Conv2dShape& s);
bool conv_naive();
void set_conv_naive(bool on);
// Output planes of at most this many pixels run the whole batch as one GEMM (conv.cpp); tests set 0 to
// reach the other paths with small shapes, -1 restores the default.
int64_t conv_small_plane();
void set_conv_small_plane(int64_t limit);

}  // namespace fastdl
