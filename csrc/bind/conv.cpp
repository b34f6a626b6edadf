// conv2d (NCHW, stride, asymmetric padding, dilation, groups) forward and backward.
#include "../conv.h"
#include "../conv_direct.h"
#include "checks.h"

namespace fastdl::bind {
namespace {

// The convolution's geometry from input (N, C, H, W) and weight (K, C/groups, kh, kw); checks every
// argument.
Conv2dShape conv_shape(const py::array& x, const py::array& w, I2 stride, I4 pad, I2 dil, int64_t groups,
                       const char* fn) {
  want_ndim(x, "input", fn, 4, 4);
  want_ndim(w, "weight", fn, 4, 4);
  same_dtype(x, "input", w, "weight", fn);
  Conv2dShape s{};
  s.N = x.shape(0); s.C = x.shape(1); s.H = x.shape(2); s.W = x.shape(3);
  s.K = w.shape(0); s.kh = w.shape(2); s.kw = w.shape(3);
  std::tie(s.sh, s.sw) = stride;
  std::tie(s.pt, s.pl, s.pb, s.pr) = pad;
  std::tie(s.dh, s.dw) = dil;
  s.groups = groups;
  const std::string f(fn);
  if (groups < 1) value_error(f + ": groups must be >= 1, got " + std::to_string(groups));
  if (s.sh < 1 || s.sw < 1) value_error(f + ": stride must be >= 1");
  if (s.dh < 1 || s.dw < 1) value_error(f + ": dilation must be >= 1");
  if (s.pt < 0 || s.pl < 0 || s.pb < 0 || s.pr < 0) value_error(f + ": padding must be >= 0");
  if (s.C % groups || s.K % groups)
    value_error(f + ": in_channels " + std::to_string(s.C) + " and out_channels " + std::to_string(s.K) +
                " must be divisible by groups " + std::to_string(groups));
  if (w.shape(1) * groups != s.C)
    value_error(f + ": weight " + shape_of(w) + " expects " + std::to_string(w.shape(1) * groups) +
                " input channels, input " + shape_of(x) + " has " + std::to_string(s.C));
  if (s.kh < 1 || s.kw < 1) value_error(f + ": kernel size must be >= 1, weight has shape " + shape_of(w));
  // every size below checked against int64 overflow: a dilation or padding of 2**62 is an error, not a
  // wrapped-around shape
  const int64_t eh = size_add(size_mul(s.dh, s.kh - 1, fn, "dilation * (kernel - 1)"), 1, fn, "the dilated kernel"),
                ew = size_add(size_mul(s.dw, s.kw - 1, fn, "dilation * (kernel - 1)"), 1, fn, "the dilated kernel");
  const int64_t ph = size_add(s.H, size_add(s.pt, s.pb, fn, "padding"), fn, "the padded input"),
                pw = size_add(s.W, size_add(s.pl, s.pr, fn, "padding"), fn, "the padded input");
  if (ph < eh || pw < ew)
    value_error(f + ": kernel (" + std::to_string(eh) + ", " + std::to_string(ew) + ") with dilation is larger than "
                "the padded input (" + std::to_string(ph) + ", " + std::to_string(pw) + ")");
  s.OH = (ph - eh) / s.sh + 1;
  s.OW = (pw - ew) / s.sw + 1;
  want_alloc({s.N, s.K, s.OH, s.OW}, 8, fn, "the output");
  // a stride that fits a single window, or a dilation of a one-tap kernel, changes nothing: make it 1,
  // so no kernel sizes a buffer by it (every other stride and dilation is bounded by the input)
  if (s.OH == 1) s.sh = 1;
  if (s.OW == 1) s.sw = 1;
  if (s.kh == 1) s.dh = 1;
  if (s.kw == 1) s.dw = 1;
  return s;
}

py::array conv2d_forward(const py::object& xo, const py::object& wo, const py::object& bias, const Pair& stride_a, const Quad& pad_a,
                         const Pair& dil_a, const Int& groups_a) {
  const char* fn = "conv2d_forward";
  const I2 stride = stride_a.get(fn, "stride");
  const I4 pad = pad_a.get(fn, "padding");
  const I2 dil = dil_a.get(fn, "dilation");
  const int64_t groups = groups_a.get(fn, "groups");
  auto x0 = to_array(xo, fn, "input"), w0 = to_array(wo, fn, "weight");
  return by_dtype(x0, fn, "input", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const Conv2dShape s = conv_shape(x0, w0, stride, pad, dil, groups, fn);
    carr<T> b;
    if (!bias.is_none()) {
      py::array b0 = to_array(bias, fn, "bias");
      same_dtype(x0, "input", b0, "bias", fn);
      want_shape(b0, {s.K}, "bias", fn);
      b = carr<T>::ensure(b0);
    }
    auto x = carr<T>::ensure(x0), w = carr<T>::ensure(w0);
    py::array y = empty<T>({s.N, s.K, s.OH, s.OW});
    if (s.N * s.K * s.OH * s.OW == 0 || s.C == 0) {  // nothing to sum over: the bias (or 0) everywhere
      T* yp = ptr<T>(y);
      const int64_t plane = s.OH * s.OW;
      for (int64_t i = 0; i < s.N * s.K; ++i)
        std::fill(yp + i * plane, yp + (i + 1) * plane, bias.is_none() ? T(0) : b.data()[i % s.K]);
      return y;
    }
    {
      py::gil_scoped_release nogil;
      fastdl::conv2d_forward<T>(x.data(), w.data(), bias.is_none() ? nullptr : b.data(), ptr<T>(y), s);
    }
    return y;
  });
}

py::tuple conv2d_backward(const py::object& gyo, const py::object& xo, const py::object& wo, const Pair& stride_a, const Quad& pad_a,
                          const Pair& dil_a, const Int& groups_a, const Flag& need_input_a, const Flag& need_weight_a, const Flag& need_bias_a) {
  const char* fn = "conv2d_backward";
  const I2 stride = stride_a.get(fn, "stride");
  const I4 pad = pad_a.get(fn, "padding");
  const I2 dil = dil_a.get(fn, "dilation");
  const int64_t groups = groups_a.get(fn, "groups");
  const bool need_input = need_input_a.get(fn, "need_input");
  const bool need_weight = need_weight_a.get(fn, "need_weight");
  const bool need_bias = need_bias_a.get(fn, "need_bias");
  auto gy0 = to_array(gyo, fn, "gy"), x0 = to_array(xo, fn, "input"), w0 = to_array(wo, fn, "weight");
  return by_dtype(x0, fn, "input", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const Conv2dShape s = conv_shape(x0, w0, stride, pad, dil, groups, fn);
    same_dtype(x0, "input", gy0, "gy", fn);
    want_shape(gy0, {s.N, s.K, s.OH, s.OW}, "gy", fn);
    auto gy = carr<T>::ensure(gy0), x = carr<T>::ensure(x0), w = carr<T>::ensure(w0);
    Out<T> gx(need_input, shape_vec(x0)), gw(need_weight, shape_vec(w0)), gb(need_bias, {s.K});
    if (s.N * s.K * s.OH * s.OW == 0 || s.C == 0) {  // an empty product: zero gradients, gb sums gy
      if (gx.on) std::fill(gx.p(), gx.p() + x0.size(), T(0));
      if (gw.on) std::fill(gw.p(), gw.p() + w0.size(), T(0));
      if (gb.on) {
        std::fill(gb.p(), gb.p() + s.K, T(0));
        const T* g = gy.data();
        for (int64_t n = 0; n < s.N; ++n)
          for (int64_t kk = 0; kk < s.K; ++kk)
            for (int64_t i = 0; i < s.OH * s.OW; ++i) gb.p()[kk] += g[(n * s.K + kk) * s.OH * s.OW + i];
      }
      return py::make_tuple(gx.obj(), gw.obj(), gb.obj());
    }
    {
      py::gil_scoped_release nogil;
      fastdl::conv2d_backward<T>(gy.data(), x.data(), w.data(), gx.p(), gw.p(), gb.p(), s);
    }
    return py::make_tuple(gx.obj(), gw.obj(), gb.obj());
  });
}

}  // namespace

void bind_conv(py::module_& m) {
  m.def("conv2d_forward", &conv2d_forward, py::arg("input"), py::arg("weight"), py::arg("bias"), py::arg("stride"),
        py::arg("padding"), py::arg("dilation"), py::arg("groups"));
  m.def("conv2d_backward", &conv2d_backward, py::arg("gy"), py::arg("input"), py::arg("weight"), py::arg("stride"),
        py::arg("padding"), py::arg("dilation"), py::arg("groups"), py::arg("need_input") = true,
        py::arg("need_weight") = true, py::arg("need_bias") = true);
  m.def(
      "conv_direct_width",
      [](std::optional<int> cap) {
        if (cap) {
          if (*cap != -1 && *cap != 0 && *cap != 8 && *cap != 16)
            value_error("conv_direct_width: cap must be -1, 0, 8 or 16, got " + std::to_string(*cap));
          set_conv_direct_width(*cap);
        }
        return fastdl::conv_direct_width();
      },
      py::arg("cap") = py::none(),
      "Vector width (floats) of the direct float32 convolution in use: 16 (AVX-512), 8 (AVX2) or 0 (im2col + "
      "GEMM only).  cap (tests, benchmarks): 0, 8 or 16 caps it, -1 restores the CPU's widest.");
  m.def(
      "conv_small_plane",
      [](std::optional<int64_t> limit) {
        if (limit) set_conv_small_plane(*limit);
        return fastdl::conv_small_plane();
      },
      py::arg("limit") = py::none(),
      "Output planes of at most this many pixels (default 64) run the whole batch as one GEMM; limit (tests, "
      "benchmarks): 0 turns that path off, -1 restores the default, None only asks.");
  m.def(
      "conv_naive",
      [](std::optional<bool> on) {
        if (on) set_conv_naive(*on);
        return fastdl::conv_naive();
      },
      py::arg("on") = py::none(),
      "Whether every convolution runs the plain-loop kernels (conv_naive.cpp) instead of the fast paths; "
      "on=True/False sets it (tests), None only asks.");
}

}  // namespace fastdl::bind
