// max / average / adaptive average pooling over the last two axes of (N, C, H, W) or (C, H, W).
#include "../pool.h"
#include "checks.h"

namespace fastdl::bind {
namespace {

int64_t pool_out(int64_t L, int64_t k, int64_t s, int64_t p, int64_t d, bool ceil, const char* fn) {
  const int64_t ext = size_mul(d, k - 1, fn, "dilation * (kernel_size - 1)");
  const int64_t num = size_add(L, size_mul(2, p, fn, "padding"), fn, "the padded input") - ext - 1;
  if (num < 0) value_error(std::string(fn) + ": kernel is larger than the padded input");
  int64_t out = (num + (ceil ? s - 1 : 0)) / s + 1;
  if (ceil && (out - 1) * s >= L + p) --out;
  return out;
}

// Geometry of pooling planes of H x W with the given window; checks every argument.
Pool2dShape pool_geometry(int64_t planes, int64_t H, int64_t W, I2 k, I2 st, I2 pad, I2 dil, bool ceil,
                          const char* fn) {
  Pool2dShape s{};
  s.planes = planes;
  s.H = H;
  s.W = W;
  std::tie(s.kh, s.kw) = k;
  std::tie(s.sh, s.sw) = st;
  std::tie(s.ph, s.pw) = pad;
  std::tie(s.dh, s.dw) = dil;
  const std::string f(fn);
  if (s.kh < 1 || s.kw < 1) value_error(f + ": kernel_size must be >= 1");
  if (s.sh < 1 || s.sw < 1) value_error(f + ": stride must be >= 1");
  if (s.dh < 1 || s.dw < 1) value_error(f + ": dilation must be >= 1");
  if (s.ph < 0 || s.pw < 0) value_error(f + ": padding must be >= 0");
  const int64_t eh = size_add(size_mul(s.dh, s.kh - 1, fn, "dilation * (kernel_size - 1)"), 1, fn, "the window"),
                ew = size_add(size_mul(s.dw, s.kw - 1, fn, "dilation * (kernel_size - 1)"), 1, fn, "the window");
  if (s.ph > eh / 2 || s.pw > ew / 2)
    value_error(f + ": padding should be at most half of the (dilated) kernel size");
  s.OH = pool_out(s.H, s.kh, s.sh, s.ph, s.dh, ceil, fn);
  s.OW = pool_out(s.W, s.kw, s.sw, s.pw, s.dw, ceil, fn);
  return s;
}

void want_planes(const py::array& a, const char* name, const char* fn) {
  if (a.ndim() != 3 && a.ndim() != 4)
    value_error(std::string(fn) + ": " + name + " must be (N, C, H, W) or (C, H, W), got shape " + shape_of(a));
}

// `a`'s shape with its last two axes replaced by (h, w).
std::vector<py::ssize_t> with_hw(const py::array& a, int64_t h, int64_t w) {
  auto v = shape_vec(a);
  v[v.size() - 2] = h;
  v[v.size() - 1] = w;
  return v;
}

// Planes of an (N, C, H, W) or (C, H, W) array: the product of its leading axes.
int64_t planes_of(const py::array& a, int64_t, int64_t) {
  int64_t p = 1;
  for (py::ssize_t i = 0; i + 2 < a.ndim(); ++i) p *= a.shape(i);
  return p;
}

// Channels and spatial sizes must be non-empty (only a batch of 0 is allowed), as PyTorch's pooling.
void want_nonempty(const py::array& a, const char* name, const char* fn) {
  for (py::ssize_t i = a.ndim() == 4 ? 1 : 0; i < a.ndim(); ++i)
    if (a.shape(i) == 0)
      value_error(std::string(fn) + ": " + name + " of shape " + shape_of(a) +
                  " has an empty channel or spatial axis (only the batch may be 0)");
}

Pool2dShape pool_shape(const py::array& x, I2 k, I2 st, I2 pad, I2 dil, bool ceil, const char* fn) {
  want_planes(x, "input", fn);
  want_nonempty(x, "input", fn);
  const int64_t H = x.shape(x.ndim() - 2), W = x.shape(x.ndim() - 1);
  Pool2dShape s = pool_geometry(planes_of(x, H, W), H, W, k, st, pad, dil, ceil, fn);
  want_alloc(with_hw(x, s.OH, s.OW), 8, fn, "the output");
  return s;
}

py::tuple max_pool2d_forward(const py::object& xo, const Pair& k_a, const Pair& st_a, const Pair& pad_a, const Pair& dil_a, const Flag& ceil_a) {
  const char* fn = "max_pool2d_forward";
  const I2 k = k_a.get(fn, "kernel_size");
  const I2 st = st_a.get(fn, "stride");
  const I2 pad = pad_a.get(fn, "padding");
  const I2 dil = dil_a.get(fn, "dilation");
  const bool ceil = ceil_a.get(fn, "ceil_mode");
  auto x0 = to_array(xo, fn, "input");
  return by_dtype(x0, fn, "input", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const Pool2dShape s = pool_shape(x0, k, st, pad, dil, ceil, fn);
    auto x = carr<T>::ensure(x0);
    const auto shp = with_hw(x0, s.OH, s.OW);
    py::array y = empty<T>(shp), idx = empty<int64_t>(shp);
    {
      py::gil_scoped_release nogil;
      fastdl::max_pool2d_forward<T>(x.data(), ptr<T>(y), ptr<int64_t>(idx), s);
    }
    return py::make_tuple(y, idx);
  });
}

py::array max_pool2d_backward(const py::object& gyo, const py::object& io, const Pair& input_hw_a) {
  const char* fn = "max_pool2d_backward";
  const I2 input_hw = input_hw_a.get(fn, "input_size");
  auto gy0 = to_array(gyo, fn, "gy");
  return by_dtype(gy0, fn, "gy", [&](auto tag) {
    using T = typename decltype(tag)::type;
    auto idx = int_array(io, fn, "indices");
    same_shape(gy0, "gy", idx, "indices", fn);
    want_planes(gy0, "gy", fn);
    Pool2dShape s{};
    s.H = input_hw.first;
    s.W = input_hw.second;
    s.OH = gy0.shape(gy0.ndim() - 2);
    s.OW = gy0.shape(gy0.ndim() - 1);
    s.planes = planes_of(gy0, s.OH, s.OW);
    if (s.H < 1 || s.W < 1) value_error(std::string(fn) + ": input_size must be >= 1");
    want_alloc(with_hw(gy0, s.H, s.W), 8, fn, "the input gradient");
    const int64_t* ip = idx.data();
    for (int64_t i = 0; i < idx.size(); ++i)
      if (ip[i] < -1 || ip[i] >= s.H * s.W)  // -1 marks an all-padding window
        throw py::index_error(std::string(fn) + ": indices out of range for the input size");
    auto gy = carr<T>::ensure(gy0);
    py::array gx = empty<T>(with_hw(gy0, s.H, s.W));
    {
      py::gil_scoped_release nogil;
      fastdl::max_pool2d_backward<T>(gy.data(), ip, ptr<T>(gx), s);
    }
    return gx;
  });
}

py::array avg_pool2d_forward(const py::object& xo, const Pair& k_a, const Pair& st_a, const Pair& pad_a, const Flag& ceil_a, const Flag& count_include_pad_a) {
  const char* fn = "avg_pool2d_forward";
  const I2 k = k_a.get(fn, "kernel_size");
  const I2 st = st_a.get(fn, "stride");
  const I2 pad = pad_a.get(fn, "padding");
  const bool ceil = ceil_a.get(fn, "ceil_mode");
  const bool count_include_pad = count_include_pad_a.get(fn, "count_include_pad");
  auto x0 = to_array(xo, fn, "input");
  return by_dtype(x0, fn, "input", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const Pool2dShape s = pool_shape(x0, k, st, pad, I2{1, 1}, ceil, fn);
    auto x = carr<T>::ensure(x0);
    py::array y = empty<T>(with_hw(x0, s.OH, s.OW));
    {
      py::gil_scoped_release nogil;
      fastdl::avg_pool2d_forward<T>(x.data(), ptr<T>(y), s, count_include_pad);
    }
    return y;
  });
}

py::array avg_pool2d_backward(const py::object& gyo, const Pair& input_hw_a, const Pair& k_a, const Pair& st_a, const Pair& pad_a, const Flag& ceil_a,
                              const Flag& count_include_pad_a) {
  const char* fn = "avg_pool2d_backward";
  const I2 input_hw = input_hw_a.get(fn, "input_size");
  const I2 k = k_a.get(fn, "kernel_size");
  const I2 st = st_a.get(fn, "stride");
  const I2 pad = pad_a.get(fn, "padding");
  const bool ceil = ceil_a.get(fn, "ceil_mode");
  const bool count_include_pad = count_include_pad_a.get(fn, "count_include_pad");
  auto gy0 = to_array(gyo, fn, "gy");
  return by_dtype(gy0, fn, "gy", [&](auto tag) {
    using T = typename decltype(tag)::type;
    want_planes(gy0, "gy", fn);
    const int64_t OH = gy0.shape(gy0.ndim() - 2), OW = gy0.shape(gy0.ndim() - 1);
    if (input_hw.first < 1 || input_hw.second < 1) value_error(std::string(fn) + ": input_size must be >= 1");
    want_alloc(with_hw(gy0, input_hw.first, input_hw.second), 8, fn, "the input gradient");
    const Pool2dShape s = pool_geometry(planes_of(gy0, OH, OW), input_hw.first, input_hw.second, k, st, pad, I2{1, 1},
                                        ceil, fn);
    if (s.OH != OH || s.OW != OW)
      value_error(std::string(fn) + ": gy " + shape_of(gy0) + " does not match the pooled input size");
    auto gy = carr<T>::ensure(gy0);
    py::array gx = empty<T>(with_hw(gy0, input_hw.first, input_hw.second));
    {
      py::gil_scoped_release nogil;
      fastdl::avg_pool2d_backward<T>(gy.data(), ptr<T>(gx), s, count_include_pad);
    }
    return gx;
  });
}

// The adaptive pool in either direction: `out` (out_h, out_w per plane) <- kernel(`in`); the kernel
// takes the input size (H, W) and the pooled size (OH, OW) whichever way it runs.
template <class T>
py::array adaptive(void (*kernel)(const T*, T*, int64_t, int64_t, int64_t, int64_t, int64_t), const py::array& in0,
                   int64_t out_h, int64_t out_w, int64_t planes, int64_t H, int64_t W, int64_t OH, int64_t OW) {
  auto in = carr<T>::ensure(in0);
  py::array out = empty<T>(with_hw(in0, out_h, out_w));
  {
    py::gil_scoped_release nogil;
    kernel(in.data(), ptr<T>(out), planes, H, W, OH, OW);
  }
  return out;
}

py::array adaptive_avg_pool2d_forward(const py::object& xo, const Pair& out_a) {
  const char* fn = "adaptive_avg_pool2d_forward";
  const I2 out = out_a.get(fn, "output_size");
  auto x0 = to_array(xo, fn, "input");
  return by_dtype(x0, fn, "input", [&](auto tag) {
    using T = typename decltype(tag)::type;
    want_planes(x0, "input", fn);
    const int64_t H = x0.shape(x0.ndim() - 2), W = x0.shape(x0.ndim() - 1), OH = out.first, OW = out.second;
    if (OH < 1 || OW < 1) value_error(std::string(fn) + ": output_size must be >= 1");
    want_nonempty(x0, "input", fn);
    want_alloc(with_hw(x0, OH, OW), 8, fn, "the output");
    return adaptive<T>(fastdl::adaptive_avg_pool2d_forward<T>, x0, OH, OW, planes_of(x0, H, W), H, W, OH, OW);
  });
}

py::array adaptive_avg_pool2d_backward(const py::object& gyo, const Pair& input_hw_a) {
  const char* fn = "adaptive_avg_pool2d_backward";
  const I2 input_hw = input_hw_a.get(fn, "input_size");
  auto gy0 = to_array(gyo, fn, "gy");
  return by_dtype(gy0, fn, "gy", [&](auto tag) {
    using T = typename decltype(tag)::type;
    want_planes(gy0, "gy", fn);
    const int64_t OH = gy0.shape(gy0.ndim() - 2), OW = gy0.shape(gy0.ndim() - 1), H = input_hw.first,
                  W = input_hw.second;
    if (H < 1 || W < 1) value_error(std::string(fn) + ": input_size must be >= 1");
    if (OH < 1 || OW < 1) value_error(std::string(fn) + ": gy " + shape_of(gy0) + " has an empty pooled size");
    want_alloc(with_hw(gy0, H, W), 8, fn, "the input gradient");
    return adaptive<T>(fastdl::adaptive_avg_pool2d_backward<T>, gy0, H, W, planes_of(gy0, OH, OW), H, W, OH, OW);
  });
}

}  // namespace

void bind_pool(py::module_& m) {
  m.def("max_pool2d_forward", &max_pool2d_forward, py::arg("input"), py::arg("kernel_size"), py::arg("stride"),
        py::arg("padding"), py::arg("dilation"), py::arg("ceil_mode"));
  m.def("max_pool2d_backward", &max_pool2d_backward, py::arg("gy"), py::arg("indices"), py::arg("input_size"));
  m.def("avg_pool2d_forward", &avg_pool2d_forward, py::arg("input"), py::arg("kernel_size"), py::arg("stride"),
        py::arg("padding"), py::arg("ceil_mode"), py::arg("count_include_pad"));
  m.def("avg_pool2d_backward", &avg_pool2d_backward, py::arg("gy"), py::arg("input_size"), py::arg("kernel_size"),
        py::arg("stride"), py::arg("padding"), py::arg("ceil_mode"), py::arg("count_include_pad"));
  m.def("adaptive_avg_pool2d_forward", &adaptive_avg_pool2d_forward, py::arg("input"), py::arg("output_size"));
  m.def("adaptive_avg_pool2d_backward", &adaptive_avg_pool2d_backward, py::arg("gy"), py::arg("input_size"));
}

}  // namespace fastdl::bind
