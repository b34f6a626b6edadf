// The direct float32 convolution's glue: which build runs (conv_direct.h), where the kernels read
// the input, weight packing, and the forward, weight-gradient and strided input-gradient drivers,
// each returning false (the caller then runs the GEMM path) for a shape it does not take.
#include <numeric>
#include <stdexcept>
#include <string>

#include "conv_columns.h"
#include "conv_direct.h"
#include "gemm_packed.h"
#include "cpu.h"
#include "simd.h"

namespace fastdl {

namespace {
int cpu_direct_width() {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#ifdef FASTDL_HAVE_AVX512_BUILD
  if (simd_level() >= 2) return 16;
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

const PackedKernels& packed_kernels(int width) {
#ifdef FASTDL_HAVE_AVX512_BUILD
  static const PackedKernels k16{avx512::packed_tile, avx512::packed_rows, avx512::packed_tile_set, avx512::lstm_cell,
                                  avx512::lstm_cell_strided, avx512::transpose16, avx512::lstm_cell_backward,
                                  avx512::gru_cell_strided, avx512::packed_tile_at, avx512::gemm,
                                  avx512::transpose_rows, avx512::rows_dot, avx512::packed_tile_at_set,
                                  avx512::gemm_at_panels, avx512::pack_at_panels, avx512::pack_b_panels,
                                  avx512::b_panels_size, avx512::copy_rows_stream, avx512::transpose_row_ptrs,
                                  avx512::lstm_step_tile, avx512::lstm_step_units};
  if (width == 16) return k16;
#endif
#ifdef FASTDL_HAVE_AVX2_BUILD
  static const PackedKernels k8{avx2::packed_tile,       avx2::packed_rows,          avx2::packed_tile_set,
                                 avx2::lstm_cell,         avx2::lstm_cell_strided,    avx2::transpose16,
                                 avx2::lstm_cell_backward, avx2::gru_cell_strided,   avx2::packed_tile_at,
                                 nullptr,                 avx2::transpose_rows,       avx2::rows_dot,
                                 avx2::packed_tile_at_set,   nullptr,                    nullptr,
                                 nullptr,                    nullptr,                    avx2::copy_rows_stream,
                                 nullptr,                    nullptr,                    nullptr};
  if (width == 8) return k8;
#endif
  throw std::logic_error("packed kernels: no build for vector width " + std::to_string(width));
}

double fma_peak_flops(int64_t iters) {
  const int w = conv_direct_width();
#ifdef FASTDL_HAVE_AVX512_BUILD
  if (w == 16) return avx512::fma_peak(iters);
#endif
#ifdef FASTDL_HAVE_AVX2_BUILD
  if (w == 8) return avx2::fma_peak(iters);
#endif
  (void)w;
  (void)iters;
  return 0.0;
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

float* direct_scratch(size_t n) {
  thread_local std::vector<float> part;
  if (part.size() < n) part.resize(n);
  return part.data();
}

namespace conv_detail {

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

}  // namespace conv_detail
}  // namespace fastdl
