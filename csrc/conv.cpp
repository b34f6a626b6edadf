#include "conv.h"

#include <algorithm>
#include <numeric>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "common.h"
#include "conv_direct.h"
#include "cpu.h"
#include "gemm.h"
#include "simd.h"

namespace fastdl {

namespace {
int cpu_direct_width() {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#ifdef FASTDL_HAVE_AVX512_BUILD
  __builtin_cpu_init();
  if (cpu_has_avx2_fma() && __builtin_cpu_supports("avx512f")) return 16;
#endif
#ifdef FASTDL_HAVE_AVX2_BUILD
  if (cpu_has_avx2_fma()) return 8;
#endif
#endif
  return 0;
}
int direct_width_cap = -1;  // set_conv_direct_width: -1 the CPU's
}  // namespace

int conv_direct_width() {
  static const int cpu = cpu_direct_width();
  return direct_width_cap < 0 ? cpu : std::min(cpu, direct_width_cap);
}

void set_conv_direct_width(int w) {
  if (w != -1 && w != 0 && w != 8 && w != 16) throw std::invalid_argument("conv direct width must be -1, 0, 8 or 16");
  direct_width_cap = w;
}

const DirectKernels& direct_kernels(int width) {
#ifdef FASTDL_HAVE_AVX512_BUILD
  static const DirectKernels k16{avx512::direct_conv, avx512::direct_gw, avx512::to_pixels};
  if (width == 16) return k16;
#endif
#ifdef FASTDL_HAVE_AVX2_BUILD
  static const DirectKernels k8{avx2::direct_conv, avx2::direct_gw, avx2::to_pixels};
  if (width == 8) return k8;
#endif
  throw std::logic_error("conv direct kernels: no build for vector width " + std::to_string(width));
}

namespace {

// Columns of one band of output rows, in bytes at most (unless one output row needs more).  With
// images in parallel each thread's band should sit in its core's L2 next to BLAS's packed panels;
// one image at a time over a threaded BLAS, wider GEMMs matter more than the cache.
constexpr int64_t kBandBytes = int64_t(1) << 20;
constexpr int64_t kSerialBandBytes = int64_t(8) << 20;
// Element-wise work too small to share out: tens of microseconds, where waking a sleeping worker and
// joining it costs about 12 us (libgomp, OMP_WAIT_POLICY=PASSIVE, measured here).
constexpr int64_t kSerialWork = 1 << 16;
constexpr int64_t kMinCols = 1024;  // GEMM width below which small images are batched into one GEMM

bool is_pointwise(const Conv2dShape& s) {
  return s.kh == 1 && s.kw == 1 && s.sh == 1 && s.sw == 1 && s.pt == 0 && s.pl == 0 && s.pb == 0 && s.pr == 0;
}

// Column and staging buffers persist per thread between calls: a fresh buffer per call cost page
// faults on every call (the kernel zeroing new pages showed up at ~10% of a ResNet layer).
template <class T> T* workspace(int slot, size_t n) {
  thread_local std::vector<T> bufs[5];
  auto& b = bufs[slot];
  if (b.size() < n) b.resize(n);
  return b.data();
}

// Output rows per band: as many as keep rows x (band * width) columns within `budget` bytes.
int64_t band_rows(const Conv2dShape& s, int64_t rows, int64_t width, int64_t budget, int64_t elem) {
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

// Images in parallel (each thread a contiguous block, BLAS serial inside) when there are enough of
// them to share out evenly; otherwise one at a time, BLAS and the copies threaded within each.
bool images_in_parallel(int64_t N, int nthr) {
  return nthr > 1 && N >= nthr && (N % nthr == 0 || N >= 3 * nthr);
}

// f(i, tid) for i in [0, N), an image or a block of images; tid is the thread's index (0 when serial).
template <class F>
void for_each_image(int64_t N, bool par, F&& f) {
#ifdef FASTDL_HAVE_OPENMP
  if (par) {
    SerialBlas serial;
#pragma omp parallel num_threads(max_threads())
    {
      const int64_t tid = omp_get_thread_num(), nt = omp_get_num_threads();
      const int64_t chunk = (N + nt - 1) / nt;
      for (int64_t n = tid * chunk; n < std::min(N, (tid + 1) * chunk); ++n) f(n, tid);
    }
    return;
  }
#endif
  (void)par;
  for (int64_t n = 0; n < N; ++n) f(n, int64_t(0));
}

// col (Cg*kh*kw, (oh1-oh0)*OW) <- output rows [oh0, oh1) of one image; xn is the image's first
// channel of the group.  Row r = (c, i, j); column = (oh - oh0)*OW + ow.
template <class T>
void im2col(const T* xn, T* col, const Conv2dShape& s, int64_t Cg, int64_t oh0, int64_t oh1) {
  const int64_t kk = s.kh * s.kw, ld = (oh1 - oh0) * s.OW;
  parallel_for(Cg * kk, std::max<int64_t>(1, 16384 / std::max<int64_t>(ld, 1)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t c = r / kk, i = (r / s.kw) % s.kh, j = r % s.kw;
      const T* plane = xn + c * s.H * s.W;
      const int64_t off = j * s.dw - s.pl;
      int64_t lo, hi;
      valid_cols(s, off, lo, hi);
      for (int64_t oh = oh0; oh < oh1; ++oh) {
        T* o = col + r * ld + (oh - oh0) * s.OW;
        const int64_t ih = oh * s.sh - s.pt + i * s.dh;
        if (ih < 0 || ih >= s.H) {
          zero_row(o, s.OW);
          continue;
        }
        const T* src = plane + ih * s.W + off;
        zero_row(o, lo);
        if (s.sw == 1) copy_row(o + lo, src + lo, hi - lo);
        else for (int64_t ow = lo; ow < hi; ++ow) o[ow] = src[ow * s.sw];
        zero_row(o + hi, s.OW - hi);
      }
    }
  });
}

// The adjoint of im2col: gxn (the image's first channel of the group) += col2im(col); a thread
// owns whole channel planes, so there are no races.
template <class T>
void col2im_add(const T* col, T* gxn, const Conv2dShape& s, int64_t Cg, int64_t oh0, int64_t oh1) {
  const int64_t kk = s.kh * s.kw, ld = (oh1 - oh0) * s.OW;
  parallel_for(Cg, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      T* plane = gxn + c * s.H * s.W;
      for (int64_t i = 0; i < s.kh; ++i)
        for (int64_t j = 0; j < s.kw; ++j) {
          const T* in = col + (c * kk + i * s.kw + j) * ld;
          const int64_t off = j * s.dw - s.pl;
          int64_t lo, hi;
          valid_cols(s, off, lo, hi);
          for (int64_t oh = oh0; oh < oh1; ++oh) {
            const int64_t ih = oh * s.sh - s.pt + i * s.dh;
            if (ih < 0 || ih >= s.H) continue;
            T* dst = plane + ih * s.W + off;
            const T* src = in + (oh - oh0) * s.OW;
            if (s.sw == 1) for (int64_t ow = lo; ow < hi; ++ow) dst[ow] += src[ow];
            else for (int64_t ow = lo; ow < hi; ++ow) dst[ow * s.sw] += src[ow];
          }
        }
    }
  });
}

// "Wide" columns: output row oh is computed across the whole width of the padded input, so that
// every im2col row is ONE contiguous run of it instead of OH short copies, and col2im is one axpy
// per row.  A stride s first splits the padded image into s_h x s_w phase planes (rows and columns
// by remainder), in which each kernel tap again reads a contiguous run.  Each output row carries
// Wq - OW extra columns that are computed and dropped: 4% more GEMM work for a 56x56 3x3, 40% for
// LeNet's 10-wide rows, bought back by copies that are long rather than many.  Used when every
// phase plane is read by some tap (a 1x1 stride-2 kernel reads a quarter of the image: not wide).
bool is_wide(const Conv2dShape& s) { return !is_pointwise(s) && s.kh * s.kw >= s.sh * s.sw; }

struct Wide {
  int64_t Hq, Wq;    // a phase plane
  int64_t planes;    // phase planes per channel (s_h * s_w)
  bool direct;       // stride 1 and no padding: the input itself is the single plane
  explicit Wide(const Conv2dShape& s)
      : Hq((s.H + s.pt + s.pb + s.sh - 1) / s.sh), Wq((s.W + s.pl + s.pr + s.sw - 1) / s.sw), planes(s.sh * s.sw),
        direct(s.sh == 1 && s.sw == 1 && !(s.pt || s.pl || s.pb || s.pr)) {}
  int64_t channel() const { return planes * Hq * Wq; }
  // where tap (i, j) of output row oh0 starts, within its channel's planes
  int64_t tap(const Conv2dShape& s, int64_t i, int64_t j, int64_t oh0) const {
    const int64_t a = i * s.dh, b = j * s.dw;
    return ((a % s.sh) * s.sw + b % s.sw) * Hq * Wq + (oh0 + a / s.sh) * Wq + b / s.sw;
  }
  // length of the run for output rows [oh0, oh1): the last row stops at OW
  int64_t len(const Conv2dShape& s, int64_t oh0, int64_t oh1) const { return (oh1 - oh0 - 1) * Wq + s.OW; }
};

// Output columns b in [b0, b1) of a phase split whose every phase reads inside the row:
// 0 <= b*SW + p - pl < W for all p < SW.  The rest are edges, checked one by one.
template <int SW>
void interior(int64_t W, int64_t pl, int64_t Wq, int64_t& b0, int64_t& b1) {
  b0 = std::min(Wq, (pl + SW - 1) / SW);
  b1 = std::max(b0, std::min(Wq, (W + pl) / SW));
}

// One padded input row dealt out to its SW phase rows: o[p][b] = src[b*SW + p - pl] where that
// lies in [0, W), else 0.  With SW a constant the interior loop vectorises (for a stride of 2:
// one deinterleave of even and odd columns).
template <int SW, class T>
void split_row(const T* src, T* const* o, int64_t W, int64_t pl, int64_t Wq) {
  int64_t b0, b1;
  interior<SW>(W, pl, Wq, b0, b1);
  auto edge = [&](int64_t b) {
    for (int p = 0; p < SW; ++p) {
      const int64_t w = b * SW + p - pl;
      o[p][b] = w >= 0 && w < W ? src[w] : T(0);
    }
  };
  for (int64_t b = 0; b < b0; ++b) edge(b);
  for (int64_t b = b0; b < b1; ++b)
    for (int p = 0; p < SW; ++p) o[p][b] = src[b * SW + p - pl];
  for (int64_t b = b1; b < Wq; ++b) edge(b);
}

// Its inverse for the gradient: o[w] = ph[(w+pl) % SW][(w+pl) / SW] for w in [0, W).
template <int SW, class T>
void merge_row(const T* const* ph, T* o, int64_t W, int64_t pl, int64_t Wq) {
  int64_t b0, b1;
  interior<SW>(W, pl, Wq, b0, b1);
  for (int64_t b = b0; b < b1; ++b)
    for (int p = 0; p < SW; ++p) o[b * SW + p - pl] = ph[p][b];
  for (int64_t w = 0; w < W; ++w) {  // the edges
    const int64_t wp = w + pl;
    if (wp / SW < b0 || wp / SW >= b1) o[w] = ph[wp % SW][wp / SW];
  }
}

// xq (C, planes, Hq, Wq) <- image xn (C, H, W): padded with zeros, then split into phases.  Each
// input row is read once and dealt out to its s_w phase rows.
template <class T>
void to_planes(const T* xn, T* xq, const Conv2dShape& s, const Wide& q) {
  const int64_t plane = q.Hq * q.Wq;
  parallel_for(s.C * s.sh * q.Hq, 64, [&](int64_t r0, int64_t r1) {
    std::vector<T*> o(s.sw);
    for (int64_t r = r0; r < r1; ++r) {  // r = (c, a, pi): padded row a*sh + pi of channel c
      const int64_t pi = r % s.sh, a = (r / s.sh) % q.Hq, c = r / (s.sh * q.Hq);
      for (int64_t pj = 0; pj < s.sw; ++pj) o[pj] = xq + c * q.channel() + (pi * s.sw + pj) * plane + a * q.Wq;
      const int64_t h = a * s.sh + pi - s.pt;
      if (h < 0 || h >= s.H) {
        for (T* row : o) zero_row(row, q.Wq);
        continue;
      }
      const T* src = xn + (c * s.H + h) * s.W;
      if (s.sw == 1) {  // a padded copy of the row
        zero_row(o[0], s.pl);
        std::memcpy(o[0] + s.pl, src, sizeof(T) * s.W);
        zero_row(o[0] + s.pl + s.W, q.Wq - s.pl - s.W);
      } else if (s.sw == 2) split_row<2>(src, o.data(), s.W, s.pl, q.Wq);
      else
        for (int64_t b = 0; b < q.Wq; ++b)
          for (int64_t pj = 0; pj < s.sw; ++pj) {
            const int64_t w = b * s.sw + pj - s.pl;
            o[pj][b] = w >= 0 && w < s.W ? src[w] : T(0);
          }
    }
  });
}

// gx image (C, H, W) <- gxq (C, planes, Hq, Wq): the adjoint's gather, padding dropped.
template <class T>
void from_planes(const T* gxq, T* gxn, const Conv2dShape& s, const Wide& q) {
  const int64_t plane = q.Hq * q.Wq;
  parallel_for(s.C * s.H, 64, [&](int64_t r0, int64_t r1) {
    std::vector<const T*> ph(s.sw);
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t c = r / s.H, hp = r % s.H + s.pt;
      for (int64_t pj = 0; pj < s.sw; ++pj)
        ph[pj] = gxq + c * q.channel() + ((hp % s.sh) * s.sw + pj) * plane + (hp / s.sh) * q.Wq;
      T* o = gxn + r * s.W;
      if (s.sw == 1) merge_row<1>(ph.data(), o, s.W, s.pl, q.Wq);
      else if (s.sw == 2) merge_row<2>(ph.data(), o, s.W, s.pl, q.Wq);
      else
        for (int64_t w = 0; w < s.W; ++w) o[w] = ph[(w + s.pl) % s.sw][(w + s.pl) / s.sw];
    }
  });
}

// Wide columns come in two forms.  Full: a row per (c, i, j), L long, and one GEMM.  Split (when
// Cg*kh alone is a deep enough GEMM): a row per (c, i), L + (kw-1)*dw long, and kw GEMMs, the j-th
// reading every row from column j*dw on, so a 3x3 kernel copies a third as much.
bool split_wide(const Conv2dShape& s) { return s.sw == 1 && s.kw > 1 && (s.C / s.groups) * s.kh >= 64; }

// Row length of split wide columns.
int64_t split_len(const Conv2dShape& s, int64_t L) { return L + (s.kw - 1) * s.dw; }

// col <- wide columns (full, or split) of the output rows from oh0 (L = q.len) out of the planes xq
// (the group's first channel); col's rows are ld apart (default: packed).
template <class T>
void im2col_wide(const T* xq, T* col, const Conv2dShape& s, const Wide& q, int64_t Cg, int64_t oh0, int64_t L,
                 bool split, int64_t ld = 0) {
  const int64_t per_c = split ? s.kh : s.kh * s.kw, len = split ? split_len(s, L) : L;
  if (ld == 0) ld = len;  // row stride of col: larger when several images sit side by side
  parallel_for(Cg * per_c, std::max<int64_t>(1, 16384 / len), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t c = r / per_c, i = split ? r % s.kh : (r / s.kw) % s.kh, j = split ? 0 : r % s.kw;
      copy_row(col + r * ld, xq + c * q.channel() + q.tap(s, i, j, oh0), len);
    }
  });
}

// The adjoint: gxq (planes of the group) += col2im of full wide columns; a thread owns whole channels.
template <class T>
void col2im_wide_add(const T* col, T* gxq, const Conv2dShape& s, const Wide& q, int64_t Cg, int64_t oh0, int64_t L) {
  const int64_t kk = s.kh * s.kw;
  parallel_for(Cg, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c)
      for (int64_t r = c * kk; r < (c + 1) * kk; ++r) {
        T* dst = gxq + c * q.channel() + q.tap(s, (r / s.kw) % s.kh, r % s.kw, oh0);
        const T* src = col + r * L;
        for (int64_t e = 0; e < L; ++e) dst[e] += src[e];
      }
  });
}

// w (K, Cg, kh, kw) -> (kw, K, Cg*kh): the kw left operands of split wide columns.
template <class T>
std::vector<T> split_weights(const T* w, const Conv2dShape& s) {
  const int64_t Cg = s.C / s.groups, ck = Cg * s.kh;
  std::vector<T> out(s.kw * s.K * ck);
  for (int64_t k = 0; k < s.K; ++k)
    for (int64_t q = 0; q < ck; ++q)
      for (int64_t j = 0; j < s.kw; ++j) out[(j * s.K + k) * ck + q] = w[(k * ck + q) * s.kw + j];
  return out;
}

// The GEMM operand (rows, band columns) of group g, output rows [oh0, oh1) of image n, and its row
// stride: the input itself for a pointwise convolution, else im2col into col.
template <class T>
const T* band_columns(const T* x, T* col, const Conv2dShape& s, int64_t n, int64_t g, int64_t oh0, int64_t oh1,
                      int64_t& ld) {
  const int64_t Cg = s.C / s.groups;
  if (is_pointwise(s)) {
    ld = s.OH * s.OW;
    return x + (n * s.C + g * Cg) * s.H * s.W + oh0 * s.OW;
  }
  ld = (oh1 - oh0) * s.OW;
  im2col(x + (n * s.C + g * Cg) * s.H * s.W, col, s, Cg, oh0, oh1);
  return col;
}

// Where the direct kernels (conv_direct.h) read the input.  They broadcast single values, so a
// column stride of 1 or 2 is read in place, from the image or a zero-padded copy (the geometry of
// stride 1); larger strides read the padded phase planes, where every stride is 1.
struct DirectGeom {
  Conv2dShape t;  // the shape the copy is made for
  Wide q;
  int sw;         // input columns per output column in what is read
  int64_t wq;     // from one output row to the next in it
  explicit DirectGeom(const Conv2dShape& s)
      : t(flat(s)), q(t), sw(s.sw <= 2 ? int(s.sw) : 1), wq((s.sw <= 2 ? s.sh : 1) * q.Wq) {}
  static Conv2dShape flat(Conv2dShape s) {
    if (s.sw <= 2) s.sh = s.sw = 1;
    return s;
  }
  // offsets of r = (c, i, j) (rows: r = (c, i), tap (i, 0)) from the group's first channel
  std::vector<int64_t> offsets(const Conv2dShape& s, bool rows) const {
    const int64_t per_c = rows ? s.kh : s.kh * s.kw;
    std::vector<int64_t> off((s.C / s.groups) * per_c);
    for (size_t r = 0; r < off.size(); ++r) {
      const int64_t c = r / per_c, u = r % per_c;
      off[r] = c * q.channel() + (rows ? q.tap(t, u, 0, 0) : q.tap(t, u / s.kw, u % s.kw, 0));
    }
    return off;
  }
  // image n as read: the input itself, or its copy in this thread's workspace
  const float* image(const float* x, int64_t n, const Conv2dShape& s) const {
    const float* xn = x + n * s.C * s.H * s.W;
    if (q.direct) return xn;
    float* buf = workspace<float>(2, s.C * q.channel());
    to_planes(xn, buf, t, q);
    return buf;
  }
};

// The direct kernels run when the output channels of each group fill whole vectors of the CPU's
// widest build (0: they do not).
int direct_width_for(const Conv2dShape& s) {
  const int width = conv_direct_width();
  return width && (s.K / s.groups) % width == 0 && !is_pointwise(s) ? width : 0;
}

// One image (and group) on the direct kernels: on this thread when images run in parallel, else its
// output rows shared out over the threads.
void direct_image(const DirectKernels& kern, const DirectConvArgs& a, bool par) {
  if (par) return kern.conv(a);
  parallel_for(a.oh1 - a.oh0, 1, [&](int64_t r0, int64_t r1) {
    DirectConvArgs b = a;
    b.oh0 = a.oh0 + r0;
    b.oh1 = a.oh0 + r1;
    kern.conv(b);
  });
}

// Weights for the direct kernels, per group (Kg / kb, R, per_r, kb): wp[g][k / kb][e / per_r][e % per_r][k % kb]
// = src(g, k, e) for the group's output channels k < Kg and its taps e < taps (e = r * per_r + j).
template <class F>
std::vector<float> pack_direct(int64_t G, int64_t Kg, int64_t taps, int64_t per_r, int64_t kb, F&& src) {
  const int64_t R = taps / per_r;
  std::vector<float> wp(G * Kg * taps);
  for (int64_t g = 0; g < G; ++g)
    for (int64_t k = 0; k < Kg; ++k)
      for (int64_t e = 0; e < taps; ++e)
        wp[g * Kg * taps + (((k / kb) * R + e / per_r) * per_r + e % per_r) * kb + k % kb] = src(g, k, e);
  return wp;
}

// float32 forward without columns; false: not taken, use the GEMM path.
bool conv2d_direct(const float* x, const float* w, const float* bias, float* y, const Conv2dShape& s) {
  const int width = direct_width_for(s);
  if (!width) return false;
  const DirectKernels& kern = direct_kernels(width);
  const int64_t G = s.groups, Cg = s.C / G, Kg = s.K / G, ohw = s.OH * s.OW;
  const DirectGeom d(s);
  const Wide& q = d.q;
  const int kv = Kg % (2 * width) == 0 ? 2 : 1;
  // one vector of channels and a dense kernel row of 3 or 5: the kernel-row form (r = (c, i))
  const int m = kv == 1 && s.sw == 1 && s.dw == 1 && (s.kw == 3 || s.kw == 5) ? int(s.kw) : 0;
  const int64_t kb = int64_t(kv) * width, per_r = m ? s.kw : 1, R = Cg * s.kh * (m ? 1 : s.kw);
  const std::vector<int64_t> toff = d.offsets(s, m != 0);
  const int64_t rows = Cg * s.kh * s.kw;  // taps e = (c, i, j) of w (K, Cg, kh, kw)
  const std::vector<float> wp =
      pack_direct(G, Kg, rows, per_r, kb, [&](int64_t g, int64_t k, int64_t e) { return w[(g * Kg + k) * rows + e]; });
  const int nthr = max_threads();
  const bool par = images_in_parallel(s.N, nthr);
  for_each_image(s.N, par, [&](int64_t n, int64_t) {
    const float* xq = d.image(x, n, s);
    for (int64_t g = 0; g < G; ++g) {
      DirectConvArgs a{xq + g * Cg * q.channel(), d.wq, toff.data(), R, wp.data() + g * Kg * rows,
                       bias ? bias + g * Kg : nullptr, y + (n * s.K + g * Kg) * ohw, Kg, s.OW, ohw, s.OW, 1, 0, s.OH,
                       kv, m, d.sw};
      direct_image(kern, a, par);
    }
  });
  return true;
}

// float32 weight gradient without columns, for the shapes conv2d_direct takes; false: not taken.
bool conv2d_direct_gw(const float* gy, const float* x, float* gw, const Conv2dShape& s) {
  const int width = direct_width_for(s);
  if (!width) return false;
  const DirectKernels& kern = direct_kernels(width);
  const int64_t G = s.groups, Cg = s.C / G, Kg = s.K / G, ohw = s.OH * s.OW, R = Cg * s.kh * s.kw;
  const DirectGeom d(s);
  const int kv = Kg % (2 * width) == 0 ? 2 : 1;
  const std::vector<int64_t> toff = d.offsets(s, false);
  const int nthr = max_threads();
  const bool par = images_in_parallel(s.N, nthr);
  const int64_t parts = par ? nthr : 1, wsz = G * R * Kg;
  std::vector<float> partial(parts * wsz, 0.0f);  // per thread: (G, R, Kg)
  for_each_image(s.N, par, [&](int64_t n, int64_t tid) {
    const float* xq = d.image(x, n, s);
    float* gyT = workspace<float>(3, ohw * Kg);
    for (int64_t g = 0; g < G; ++g) {
      kern.to_pixels(gy + (n * s.K + g * Kg) * ohw, Kg, ohw, gyT);
      DirectGwArgs a{xq + g * Cg * d.q.channel(), d.wq, d.sw, toff.data(), 0, R, gyT,
                     partial.data() + tid * wsz + g * R * Kg, Kg, s.OH, s.OW, kv};
      if (par) {
        kern.gw(a);
        continue;
      }
      parallel_for(R, 16, [&](int64_t r0, int64_t r1) {  // one image: its taps over the threads
        DirectGwArgs b = a;
        b.r0 = r0;
        b.r1 = r1;
        kern.gw(b);
      });
    }
  });
  // gw (K, R) <- the sum of the parts, (G, R, Kg) each; a small sum stays on this thread
  parallel_for(s.K, std::max<int64_t>(1, kSerialWork / (R * parts)), [&](int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1; ++k)
      for (int64_t r = 0; r < R; ++r) {
        const int64_t at = (k / Kg) * R * Kg + r * Kg + k % Kg;
        float acc = partial[at];
        for (int64_t t = 1; t < parts; ++t) acc += partial[t * wsz + at];
        gw[k * R + r] = acc;
      }
  });
  return true;
}

// One axis of a phase of a strided convolution's input gradient: the input positions
// h = s*a + rho - p (p the padding) for a in [lo, lo + count), read by the taps i with
// i*d = rho (mod s) at output position a - u_i.  In flipped order the taps step u by du, so the
// phase is a stride-1 correlation of the output gradient with dilation du, padded by pad_lo (and
// pad_hi to reach count outputs).
struct PhaseAxis {
  std::vector<int64_t> taps;  // i, flipped: the tap the correlation's t-th weight is
  int64_t du = 1, lo = 0, count = 0, pad_lo = 0, pad_hi = 0;
  PhaseAxis(int64_t n, int64_t p, int64_t s, int64_t k, int64_t d, int64_t out, int64_t rho) {
    for (int64_t i = k - 1; i >= 0; --i)
      if ((i * d) % s == rho) taps.push_back(i);
    const int64_t g = std::gcd(d, s);
    du = d / g;
    auto floor_div = [](int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); };
    lo = -floor_div(rho - p, s);                // ceil((p - rho) / s): the first a with h >= 0
    count = floor_div(n - 1 + p - rho, s) - lo + 1;
    if (taps.empty() || count <= 0) return;
    const int64_t T = int64_t(taps.size()), u_max = (taps.front() * d - rho) / s;  // taps[0]: the largest i
    pad_lo = u_max - lo;
    pad_hi = count - out - pad_lo + (T - 1) * du;
  }
  bool reads() const { return !taps.empty() && count > 0; }
  bool fits() const { return pad_lo >= 0 && pad_hi >= 0; }
};

// float32 input gradient of a strided convolution, phase by phase: the phase (rho_h, rho_w) of gx
// (rows h with (h + pt) % sh == rho_h, columns likewise) is a stride-1 correlation of gy with the
// taps that reach it, flipped (PhaseAxis), which the direct kernels compute and store straight into
// its rows and columns of gx.  Per image, one zero-padded copy of gy serves every phase, and gx
// stays in cache while its phases fill it.  Versus columns + GEMM + col2im: the same multiply-adds,
// without the scatter-add of every column.  false: not taken.
bool conv2d_direct_gx(const float* gy, const float* w, float* gx, const Conv2dShape& s) {
  // AVX-512 only: with AVX2's 16 registers (6-pixel tiles, strided stores one by one) the ResNet
  // stride-2 layer's input gradient measured 0.74-0.79x the speed of GEMM + col2im; with AVX-512,
  // 1.26-1.33x.
  const int width = conv_direct_width();
  const int64_t G = s.groups, Cg = s.C / G, Kg = s.K / G;
  if ((s.sh == 1 && s.sw == 1) || width != 16 || Cg % width != 0) return false;
  std::vector<PhaseAxis> ph, pw;
  for (int64_t r = 0; r < s.sh; ++r) ph.emplace_back(s.H, s.pt, s.sh, s.kh, s.dh, s.OH, r);
  for (int64_t r = 0; r < s.sw; ++r) pw.emplace_back(s.W, s.pl, s.sw, s.kw, s.dw, s.OW, r);
  // Not taken when some phase is read by no tap (a kernel narrower than its stride, 1x1 stride 2:
  // the columns of the GEMM path then hold just the pixels read) or would need gy cropped.
  Conv2dShape t{s.N, s.K, s.OH, s.OW, s.C, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, G, 0, 0};  // gy, padded for all phases
  for (const PhaseAxis& a : ph)
    for (const PhaseAxis& b : pw) {
      if (a.count <= 0 || b.count <= 0) continue;
      if (!a.reads() || !b.reads() || !a.fits() || !b.fits()) return false;
      t.pt = std::max(t.pt, a.pad_lo), t.pb = std::max(t.pb, a.pad_hi);
      t.pl = std::max(t.pl, b.pad_lo), t.pr = std::max(t.pr, b.pad_hi);
    }
  const DirectKernels& kern = direct_kernels(width);
  const Wide q(t);
  const int kv = Cg % (2 * width) == 0 ? 2 : 1;
  const int64_t kb = int64_t(kv) * width, hw = s.H * s.W;
  struct Phase {
    int64_t R, OH, OW, at, out;  // reduction steps, output size, first read in the copy, first pixel in gx
    int64_t per_group;           // packed weights per group
    int m;
    std::vector<float> wp;       // (G, Cg / kb, R, per_r, kb)
    std::vector<int64_t> toff;
  };
  std::vector<Phase> phases;
  for (size_t rh = 0; rh < ph.size(); ++rh)
    for (size_t rw = 0; rw < pw.size(); ++rw) {
      const PhaseAxis &a = ph[rh], &b = pw[rw];
      if (!a.reads() || !b.reads()) continue;
      const int64_t Th = int64_t(a.taps.size()), Tw = int64_t(b.taps.size());
      Phase f;
      f.m = kv == 1 && b.du == 1 && (Tw == 3 || Tw == 5) ? int(Tw) : 0;
      const int64_t per_r = f.m ? Tw : 1, taps = Kg * Th * Tw;
      f.R = taps / per_r;
      f.OH = a.count;
      f.OW = b.count;
      f.at = (t.pt - a.pad_lo) * q.Wq + (t.pl - b.pad_lo);
      f.out = (s.sh * a.lo + int64_t(rh) - s.pt) * s.W + s.sw * b.lo + int64_t(rw) - s.pl;
      f.per_group = Cg * taps;  // the phase's output channels are x's: taps (kk, th, tw) of w, flipped
      f.wp = pack_direct(G, Cg, taps, per_r, kb, [&](int64_t g, int64_t cc, int64_t e) {
        const int64_t kk = e / (Th * Tw), th = e / Tw % Th, tw = e % Tw;
        return w[(((g * Kg + kk) * Cg + cc) * s.kh + a.taps[th]) * s.kw + b.taps[tw]];
      });
      for (int64_t r = 0; r < f.R; ++r) {  // r = (kk, th, tw), or (kk, th) in the kernel-row form
        const int64_t e = r * per_r, kk = e / (Th * Tw), th = e / Tw % Th, tw = e % Tw;
        f.toff.push_back(kk * q.channel() + th * a.du * q.Wq + tw * b.du);
      }
      phases.push_back(std::move(f));
    }
  const int nthr = max_threads();
  const bool par = images_in_parallel(s.N, nthr);
  for_each_image(s.N, par, [&](int64_t n, int64_t) {
    const float* gyn = gy + n * s.K * s.OH * s.OW;
    const float* src = gyn;
    if (!q.direct) {
      float* buf = workspace<float>(2, s.K * q.channel());
      to_planes(gyn, buf, t, q);
      src = buf;
    }
    for (int64_t g = 0; g < G; ++g)
      for (const Phase& f : phases) {
        // phase pixel (a, b) of channel c: gx row s.sh * a, column s.sw * b from the phase's first pixel
        DirectConvArgs a{src + g * Kg * q.channel() + f.at, q.Wq, f.toff.data(), f.R, f.wp.data() + g * f.per_group,
                         nullptr, gx + (n * s.C + g * Cg) * hw + f.out, Cg, f.OW, hw, s.sh * s.W, s.sw, 0, f.OH, kv,
                         f.m, 1};
        direct_image(kern, a, par);
      }
  });
  return true;
}

}  // namespace

template <class T>
void conv2d_forward(const T* x, const T* w, const T* bias, T* y, const Conv2dShape& s) {
  if constexpr (std::is_same_v<T, float>) {
    if (conv2d_direct(x, w, bias, y, s)) return;
  }
  const int64_t G = s.groups, Cg = s.C / G, Kg = s.K / G, ohw = s.OH * s.OW, rows = Cg * s.kh * s.kw;
  const bool pw = is_pointwise(s), wide = is_wide(s), split = wide && split_wide(s);
  const int nthr = max_threads();
  const Wide q(s);
  const int64_t ck = Cg * s.kh, width = wide ? q.Wq : s.OW;  // GEMM columns per output row
  const int64_t budget = images_in_parallel(s.N, nthr) ? kBandBytes : kSerialBandBytes;
  const int64_t bh = pw ? s.OH : band_rows(s, rows, width, budget, sizeof(T));
  // Small images (LeNet's are 10x10) are too narrow a GEMM alone: `per` of them share one, their
  // wide columns side by side, as long as every thread still gets a block of its own.
  const int64_t L_img = wide ? q.len(s, 0, s.OH) : 0;
  int64_t per = 1;
  if (wide && !split && bh == s.OH && L_img < kMinCols) {
    per = std::min(kMinCols / L_img, std::max<int64_t>(1, budget / (rows * L_img * int64_t(sizeof(T)))));
    per = std::max<int64_t>(1, std::min(per, s.N / std::max(nthr, 1)));
  }
  const int64_t blocks = (s.N + per - 1) / per;
  const bool par = images_in_parallel(blocks, nthr);
  const int64_t col_size = split ? ck * split_len(s, bh * width) : rows * std::max(bh * width, per * L_img);
  const std::vector<T> wsplit = split ? split_weights(w, s) : std::vector<T>();
  for_each_image(blocks, par, [&](int64_t blk, int64_t) {
    const int64_t n0 = blk * per, nb = std::min(per, s.N - n0);
    T* col = pw ? nullptr : workspace<T>(0, col_size);
    T* out = wide ? workspace<T>(1, Kg * std::max(bh * width, nb * L_img)) : nullptr;
    const T* xq = x + n0 * s.C * s.H * s.W;  // wide: the block's phase planes, image after image
    if (wide && !q.direct) {
      T* buf = workspace<T>(2, nb * s.C * q.channel());
      for (int64_t b = 0; b < nb; ++b) to_planes(x + (n0 + b) * s.C * s.H * s.W, buf + b * s.C * q.channel(), s, q);
      xq = buf;
    }
    for (int64_t oh0 = 0; oh0 < s.OH; oh0 += bh) {
      const int64_t oh1 = std::min(s.OH, oh0 + bh), nc = (oh1 - oh0) * s.OW;
      for (int64_t g = 0; g < G; ++g) {
        const T* wg = w + g * Kg * rows;
        if (wide) {  // (Kg, nb*L) wide outputs, then each output row's first OW values (+ bias) into y
          const int64_t L = q.len(s, oh0, oh1), ld = nb * L;
          for (int64_t b = 0; b < nb; ++b)
            im2col_wide(xq + (b * s.C + g * Cg) * q.channel(), col + b * L, s, q, Cg, oh0, L, split, nb > 1 ? ld : 0);
          if (!split) gemm_ld<T>(false, false, Kg, ld, rows, T(1), wg, rows, col, ld, T(0), out, ld);
          for (int64_t j = 0; split && j < s.kw; ++j)
            gemm_ld<T>(false, false, Kg, L, ck, T(1), wsplit.data() + (j * s.K + g * Kg) * ck, ck, col + j * s.dw,
                       split_len(s, L), j ? T(1) : T(0), out, L);
          for (int64_t b = 0; b < nb; ++b) {
            T* dst = y + ((n0 + b) * s.K + g * Kg) * ohw + oh0 * s.OW;
            for (int64_t k = 0; k < Kg; ++k) {
              const T bv = bias ? bias[g * Kg + k] : T(0);
              for (int64_t r = 0; r < oh1 - oh0; ++r) {
                T* o = dst + k * ohw + r * s.OW;
                const T* src = out + k * ld + b * L + r * q.Wq;
                for (int64_t e = 0; e < s.OW; ++e) o[e] = src[e] + bv;
              }
            }
          }
          continue;
        }
        T* dst = y + (n0 * s.K + g * Kg) * ohw + oh0 * s.OW;  // (Kg, nc), row stride ohw (here nb == 1)
        int64_t ld;
        const T* src = band_columns(x, col, s, n0, g, oh0, oh1, ld);
        T beta = T(0);
        if (bias) {
          for (int64_t k = 0; k < Kg; ++k) std::fill(dst + k * ohw, dst + k * ohw + nc, bias[g * Kg + k]);
          beta = T(1);
        }
        gemm_ld<T>(false, false, Kg, nc, rows, T(1), wg, rows, src, ld, beta, dst, ohw);
      }
    }
  });
}

template <class T>
void conv2d_backward(const T* gy, const T* x, const T* w, T* gx, T* gw, T* gb, const Conv2dShape& s) {
  const int64_t G = s.groups, Cg = s.C / G, Kg = s.K / G, ohw = s.OH * s.OW, rows = Cg * s.kh * s.kw;
  const bool pw = is_pointwise(s), wide = is_wide(s);
  if (gb) {
    parallel_for(s.K, std::max<int64_t>(1, kSerialWork / (s.N * ohw)), [&](int64_t a, int64_t e) {
      for (int64_t k = a; k < e; ++k) {
        double acc = 0;
        for (int64_t n = 0; n < s.N; ++n) acc += SIMD(sum_d<T>)(gy + (n * s.K + k) * ohw, ohw);
        gb[k] = T(acc);
      }
    });
  }
  if constexpr (std::is_same_v<T, float>) {
    if (gw && conv2d_direct_gw(gy, x, gw, s)) gw = nullptr;  // done
  }
  if constexpr (std::is_same_v<T, float>) {
    if (gx && conv2d_direct_gx(gy, w, gx, s)) gx = nullptr;  // done
  }
  if (!gx && !gw) return;
  // Stride 1, no dilation, one group: gx is itself a convolution of gy with the flipped, transposed
  // kernel (pad k-1-p): im2col(gy) + one well-shaped GEMM instead of a thin GEMM and a scatter (col2im).
  if (gx && !pw && s.sh == 1 && s.sw == 1 && s.dh == 1 && s.dw == 1 && s.groups == 1 && s.C >= 32 && s.pt < s.kh &&
      s.pb < s.kh && s.pl < s.kw && s.pr < s.kw) {
    std::vector<T> wf(s.C * s.K * s.kh * s.kw);
    for (int64_t k = 0; k < s.K; ++k)
      for (int64_t c = 0; c < s.C; ++c)
        for (int64_t i = 0; i < s.kh; ++i)
          for (int64_t j = 0; j < s.kw; ++j)
            wf[((c * s.K + k) * s.kh + (s.kh - 1 - i)) * s.kw + (s.kw - 1 - j)] = w[((k * s.C + c) * s.kh + i) * s.kw + j];
    Conv2dShape t = s;
    t.C = s.K; t.H = s.OH; t.W = s.OW; t.K = s.C;
    t.pt = s.kh - 1 - s.pt; t.pb = s.kh - 1 - s.pb; t.pl = s.kw - 1 - s.pl; t.pr = s.kw - 1 - s.pr;
    t.OH = s.H; t.OW = s.W;
    conv2d_forward<T>(gy, wf.data(), nullptr, gx, t);
    gx = nullptr;  // done
    if (!gw) return;
  }
  const int nthr = max_threads();
  const bool par = images_in_parallel(s.N, nthr);
  const Wide q(s);
  const int64_t chw = s.C * s.H * s.W;
  const int64_t width = wide ? q.Wq : s.OW;  // GEMM columns per output row
  const int64_t bh = pw ? s.OH : band_rows(s, rows, width, par ? kBandBytes : kSerialBandBytes, sizeof(T));
  const bool split = wide && gw && split_wide(s);
  const int64_t ck = Cg * s.kh, col_size = split ? ck * split_len(s, bh * width) : rows * bh * width;
  // gw: each thread accumulates into its own partial (split: in split_weights' layout), summed at the end.
  const int64_t wsz = s.K * rows;
  std::vector<T> partial(gw ? (par ? nthr : 1) * wsz : 0, T(0));
  for_each_image(s.N, par, [&](int64_t n, int64_t tid) {
    T* gwt = gw ? partial.data() + tid * wsz : nullptr;
    T* col = gw && !pw ? workspace<T>(0, col_size) : nullptr;
    T* dcol = gx && !pw ? workspace<T>(1, rows * bh * width) : nullptr;
    const T* xq = x + n * chw;             // wide: the image's phase planes (for gw)
    T* gxq = gx ? gx + n * chw : nullptr;  // wide: their gradient, gathered into gx at the end
    T* gyw = wide ? workspace<T>(3, Kg * bh * width) : nullptr;
    if (wide && !q.direct) {
      if (gw) {
        T* buf = workspace<T>(2, s.C * q.channel());
        to_planes(x + n * chw, buf, s, q);
        xq = buf;
      }
      if (gx) gxq = workspace<T>(4, s.C * q.channel());
    }
    if (gx && !pw) std::fill(gxq, gxq + (wide ? s.C * q.channel() : chw), T(0));
    for (int64_t oh0 = 0; oh0 < s.OH; oh0 += bh) {
      const int64_t oh1 = std::min(s.OH, oh0 + bh);
      const int64_t L = wide ? q.len(s, oh0, oh1) : (oh1 - oh0) * s.OW;
      for (int64_t g = 0; g < G; ++g) {
        const T* wg = w + g * Kg * rows;
        // this band of gy as a (Kg, L) operand with row stride ldg: wide copies it with zero gaps
        const T* gyb = gy + (n * s.K + g * Kg) * ohw + oh0 * s.OW;
        int64_t ldg = ohw;
        if (wide) {
          for (int64_t k = 0; k < Kg; ++k)
            for (int64_t r = 0; r < oh1 - oh0; ++r) {
              T* o = gyw + k * L + r * q.Wq;
              copy_row(o, gyb + k * ohw + r * s.OW, s.OW);
              if (r + 1 < oh1 - oh0) zero_row(o + s.OW, q.Wq - s.OW);
            }
          gyb = gyw;
          ldg = L;
        }
        if (gw) {  // gw_g (Kg, rows) += gy band @ columns^T
          int64_t ld = L;
          const T* src = col;
          if (wide) im2col_wide(xq + g * Cg * q.channel(), col, s, q, Cg, oh0, L, split);
          else src = band_columns(x, col, s, n, g, oh0, oh1, ld);
          if (!split) gemm_ld<T>(false, true, Kg, rows, L, T(1), gyb, ldg, src, ld, T(1), gwt + g * Kg * rows, rows);
          for (int64_t j = 0; split && j < s.kw; ++j)
            gemm_ld<T>(false, true, Kg, ck, L, T(1), gyb, ldg, col + j * s.dw, split_len(s, L), T(1),
                       gwt + (j * s.K + g * Kg) * ck, ck);
        }
        if (gx && pw) {  // gx band of group g = w_g^T @ gy band
          gemm_ld<T>(true, false, Cg, L, Kg, T(1), wg, rows, gyb, ldg, T(0), gx + (n * s.C + g * Cg) * ohw + oh0 * s.OW,
                     ohw);
        } else if (gx) {
          gemm_ld<T>(true, false, rows, L, Kg, T(1), wg, rows, gyb, ldg, T(0), dcol, L);
          if (wide) col2im_wide_add(dcol, gxq + g * Cg * q.channel(), s, q, Cg, oh0, L);
          else col2im_add(dcol, gxq + g * Cg * s.H * s.W, s, Cg, oh0, oh1);
        }
      }
    }
    if (gx && wide && !q.direct) from_planes(gxq, gx + n * chw, s, q);
  });
  if (gw) {
    const int64_t parts = par ? nthr : 1;
    parallel_for(wsz, 4096, [&](int64_t a, int64_t e) {
      for (int64_t i = a; i < e; ++i) {  // i = (k, c*kh + ii, j); split keeps it at ((j, k), c*kh + ii)
        const int64_t src = split ? ((i % s.kw) * s.K + i / rows) * ck + (i % rows) / s.kw : i;
        T acc = partial[src];
        for (int64_t t = 1; t < parts; ++t) acc += partial[t * wsz + src];
        gw[i] = acc;
      }
    });
  }
}

template void conv2d_forward<float>(const float*, const float*, const float*, float*, const Conv2dShape&);
template void conv2d_forward<double>(const double*, const double*, const double*, double*, const Conv2dShape&);
template void conv2d_backward<float>(const float*, const float*, const float*, float*, float*, float*,
                                     const Conv2dShape&);
template void conv2d_backward<double>(const double*, const double*, const double*, double*, double*, double*,
                                      const Conv2dShape&);

}  // namespace fastdl
