// Shared by the convolution's parts (conv_columns.h, conv_direct.cpp, conv.cpp): workspaces, band
// sizes, row copies and the per-image threading.  Private to csrc/conv*.
#pragma once

#include <algorithm>
#include <cstring>
#include <vector>

#include "common.h"
#include "conv.h"
#include "gemm.h"

namespace fastdl::conv_detail {

// Internal linkage: each conv file gets its own copies, which the compiler inlines as it did when
// they were one file (measured: external inline copies cost ~5% on LeNet's small convolutions).
namespace {

// Columns of one band of output rows, in bytes at most (unless one output row needs more).  With
// images in parallel each thread's band should sit in its core's L2 next to BLAS's packed panels;
// one image at a time over a threaded BLAS, wider GEMMs matter more than the cache.
inline constexpr int64_t kBandBytes = int64_t(1) << 20;
inline constexpr int64_t kSerialBandBytes = int64_t(8) << 20;
// Element-wise work too small to share out: tens of microseconds, where waking a sleeping worker and
// joining it cost about 12 us (measured with libgomp and sleeping workers, before the pool of
// threads.h; its workers spin 100 us before sleeping, so a wake within a kernel sequence is cheaper).
inline constexpr int64_t kSerialWork = 1 << 16;
inline constexpr int64_t kMinCols = 1024;  // GEMM width below which small images are batched into one GEMM

inline bool is_pointwise(const Conv2dShape& s) {
  return s.kh == 1 && s.kw == 1 && s.sh == 1 && s.sw == 1 && s.pt == 0 && s.pl == 0 && s.pb == 0 && s.pr == 0;
}

// Column and staging buffers persist per thread between calls: a fresh buffer per call cost page
// faults on every call (the kernel zeroing new pages showed up at ~10% of a ResNet layer).
template <class T> T* workspace(int slot, size_t n) {
  thread_local avector<T> bufs[5];  // on 64-byte boundaries (common.h): the kernels load whole vectors
  auto& b = bufs[slot];
  if (b.size() < n) b.resize(n);
  return b.data();
}

// Output rows per band: as many as keep rows x (band * width) columns within `budget` bytes.
inline int64_t band_rows(const Conv2dShape& s, int64_t rows, int64_t width, int64_t budget, int64_t elem) {
  const int64_t per_row = std::max<int64_t>(rows * width * elem, 1);
  return std::min(s.OH, std::max<int64_t>(1, budget / per_row));
}

// Output columns [lo, hi) whose input column ow*sw + off falls inside the row (off = j*dw - pl).
inline void valid_cols(const Conv2dShape& s, int64_t off, int64_t& lo, int64_t& hi) {
  lo = std::min(off < 0 ? (-off + s.sw - 1) / s.sw : int64_t(0), s.OW);
  hi = std::max(lo, std::min(s.OW, s.W - off > 0 ? (s.W - off + s.sw - 1) / s.sw : int64_t(0)));
}

// o[0, n) = src[0, n): short rows (LeNet's are 10 wide) as an inline loop, not a library call.
template <class T> inline void copy_row(T* o, const T* src, int64_t n) {
  if (n >= 64) {
    std::memcpy(o, src, sizeof(T) * n);
    return;
  }
  for (int64_t k = 0; k < n; ++k) o[k] = src[k];
}

template <class T> inline void zero_row(T* o, int64_t n) {
  for (int64_t k = 0; k < n; ++k) o[k] = T(0);
}

// Images in parallel (each part a contiguous block of images, BLAS serial inside) when there are
// enough of them to share out evenly; otherwise one at a time, the GEMMs and copies split within each.
inline bool images_in_parallel(int64_t N, int nthr) {
  return nthr > 1 && N >= nthr && (N % nthr == 0 || N >= 3 * nthr);
}

// f(i, part) for i in [0, N), an image or a block of images; part (< max_threads()) indexes the
// caller's per-part buffers: the images of one part run in order on one thread.
template <class F>
void for_each_image(int64_t N, bool par, F&& f) {
  if (!par) {
    for (int64_t n = 0; n < N; ++n) f(n, int64_t(0));
    return;
  }
  const int64_t nt = max_threads(), chunk = (N + nt - 1) / nt;
  parallel_parts(nt, [&](int64_t part, int64_t) {
    for (int64_t n = part * chunk; n < std::min(N, (part + 1) * chunk); ++n) f(n, part);
  });
}

}  // namespace

// float32 paths on the direct kernels (conv_direct.cpp); each returns false when the shape is not
// one it takes, and the caller runs the GEMM path instead.
bool conv2d_direct(const float* x, const float* w, const float* bias, float* y, const Conv2dShape& s);
bool conv2d_direct_gw(const float* gy, const float* x, float* gw, const Conv2dShape& s);
bool conv2d_direct_gx(const float* gy, const float* w, float* gx, const Conv2dShape& s);

}  // namespace fastdl::conv_detail
