// Pooling over NCHW planes (N*C independent planes of H x W).
#pragma once
#include <cstdint>

namespace fastdl {

struct Pool2dShape {
  int64_t planes, H, W;  // N*C, input height/width
  int64_t kh, kw, sh, sw, ph, pw, dh, dw;
  int64_t OH, OW;
};

// x (planes, H, W) -> y (planes, OH, OW), idx (planes, OH, OW): flat index ih*W+iw of the max
// (PyTorch's return_indices); padding counts as -inf; a window holding NaN gives NaN.
template <class T> void max_pool2d_forward(const T* x, T* y, int64_t* idx, const Pool2dShape& s);
// gx (planes, H, W) = scatter-add of gy at idx
template <class T> void max_pool2d_backward(const T* gy, const int64_t* idx, T* gx, const Pool2dShape& s);

// average over the window; divisor = window clipped to the padded input (count_include_pad)
// or to the input (otherwise), as PyTorch
template <class T> void avg_pool2d_forward(const T* x, T* y, const Pool2dShape& s, bool count_include_pad);
template <class T> void avg_pool2d_backward(const T* gy, T* gx, const Pool2dShape& s, bool count_include_pad);

// adaptive average pooling to (OH, OW): window [floor(i*H/OH), ceil((i+1)*H/OH))
template <class T> void adaptive_avg_pool2d_forward(const T* x, T* y, int64_t planes, int64_t H, int64_t W,
                                                    int64_t OH, int64_t OW);
template <class T> void adaptive_avg_pool2d_backward(const T* gy, T* gx, int64_t planes, int64_t H, int64_t W,
                                                     int64_t OH, int64_t OW);

}  // namespace fastdl
