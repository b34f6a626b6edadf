// Direct float32 convolution vectorised over output channels (conv_direct_kernels.inc), one build
// per instruction set, chosen at run time.  conv.cpp calls it when the output channels of a group
// fill whole vectors; the GEMM path (im2col + BLAS) covers everything else and float64.
#pragma once
#include <cstddef>
#include <cstdint>

namespace fastdl {

// One image (and group): y (Kg, OH, OW) for output rows [oh0, oh1), pixel (oh, ow) of channel k at
// y[k * ldc + oh * ldr + ow * step] (a dense output: ldc = OH*OW, ldr = OW, step = 1), read from xq
// (the input, a padded copy, or its phase planes) at xq + toff[r] + oh*wq + ow*sw for
// r = (c, i, j) < R.
// wp holds the weights packed as (Kg / KB, R, KB) with KB = kv * width; bias is null or Kg long.
// With m > 0 (kernel width m, sw 1 and dilation 1 along the width, kv 1) r = (c, i) instead,
// toff[r] points at tap (i, 0), and wp is (Kg / KB, R, m, KB).
struct DirectConvArgs {
  const float* xq;
  int64_t wq;
  const int64_t* toff;
  int64_t R;
  const float* wp;
  const float* bias;
  float* y;
  int64_t Kg, OW, ldc, ldr, step, oh0, oh1;
  int kv;  // vectors of output channels per tile: 1 or 2
  int m;   // 0, or 3 or 5: the kernel-row form
  int sw;  // input columns per output column: 1 or 2 (2: the per-tap form only)
};

// The weight gradient of one image (and group), taps [r0, r1) of the per-tap form:
// gw (R, Kg) += sum over pixels of gyT (OH*OW, Kg) times the input values direct_conv reads.
struct DirectGwArgs {
  const float* xq;
  int64_t wq;
  int sw;
  const int64_t* toff;
  int64_t r0, r1;
  const float* gyT;
  float* gw;
  int64_t Kg, OH, OW;
  int kv;
};

#define FASTDL_DIRECT_DECLARE                                                         \
  void direct_conv(const DirectConvArgs&);                                            \
  void direct_gw(const DirectGwArgs&);                                                \
  void to_pixels(const float* gy, int64_t Kg, int64_t ohw, float* gyT);
#ifdef FASTDL_HAVE_AVX512_BUILD
namespace avx512 {
FASTDL_DIRECT_DECLARE
}
#endif
#ifdef FASTDL_HAVE_AVX2_BUILD
namespace avx2 {
FASTDL_DIRECT_DECLARE
}
#endif
#undef FASTDL_DIRECT_DECLARE

// This thread's scratch of at least n floats for the kernels' partial sums (kept between calls).
// Defined in a file built for the baseline ISA: the per-ISA objects instantiate no std containers,
// whose out-of-line code the linker could otherwise take from an AVX-512 object for every caller.
float* direct_scratch(size_t n);

// Vector width (floats) of the build the CPU runs: 16 (AVX-512), 8 (AVX2+FMA) or 0 (none).
// set_conv_direct_width(w) caps it for tests (0 turns the direct path off; -1 restores the CPU's).
int conv_direct_width();
void set_conv_direct_width(int w);
// One build's kernels; to_pixels: gyT (ohw, Kg) <- gy (Kg, ohw), Kg a multiple of the width.
struct DirectKernels {
  void (*conv)(const DirectConvArgs&);
  void (*gw)(const DirectGwArgs&);
  void (*to_pixels)(const float* gy, int64_t Kg, int64_t ohw, float* gyT);
};
// The build for width 16 (AVX-512) or 8 (AVX2); throws for a width not built.
const DirectKernels& direct_kernels(int width);

}  // namespace fastdl
