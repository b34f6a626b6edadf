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
  const int64_t eh = s.dh * (s.kh - 1) + 1, ew = s.dw * (s.kw - 1) + 1;
  if (s.H + s.pt + s.pb < eh || s.W + s.pl + s.pr < ew)
    value_error(f + ": kernel (" + std::to_string(eh) + ", " + std::to_string(ew) + ") with dilation is larger than "
                "the padded input (" + std::to_string(s.H + s.pt + s.pb) + ", " + std::to_string(s.W + s.pl + s.pr) + ")");
  s.OH = (s.H + s.pt + s.pb - eh) / s.sh + 1;
  s.OW = (s.W + s.pl + s.pr - ew) / s.sw + 1;
  return s;
}

py::array conv2d_forward(const py::object& xo, const py::object& wo, const py::object& bias, I2 stride, I4 pad,
                         I2 dil, int64_t groups) {
  const char* fn = "conv2d_forward";
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
    {
      py::gil_scoped_release nogil;
      fastdl::conv2d_forward<T>(x.data(), w.data(), bias.is_none() ? nullptr : b.data(), ptr<T>(y), s);
    }
    return y;
  });
}

py::tuple conv2d_backward(const py::object& gyo, const py::object& xo, const py::object& wo, I2 stride, I4 pad,
                          I2 dil, int64_t groups, bool need_input, bool need_weight, bool need_bias) {
  const char* fn = "conv2d_backward";
  auto gy0 = to_array(gyo, fn, "gy"), x0 = to_array(xo, fn, "input"), w0 = to_array(wo, fn, "weight");
  return by_dtype(x0, fn, "input", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const Conv2dShape s = conv_shape(x0, w0, stride, pad, dil, groups, fn);
    same_dtype(x0, "input", gy0, "gy", fn);
    want_shape(gy0, {s.N, s.K, s.OH, s.OW}, "gy", fn);
    auto gy = carr<T>::ensure(gy0), x = carr<T>::ensure(x0), w = carr<T>::ensure(w0);
    Out<T> gx(need_input, shape_vec(x0)), gw(need_weight, shape_vec(w0)), gb(need_bias, {s.K});
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
