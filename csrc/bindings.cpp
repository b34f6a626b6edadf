// The only file that knows pybind11: checks every argument (dtype, shape,
// contiguity), releases the GIL and calls the kernels.  Function names and
// signatures equal those of fastdl/reference.py.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "attention.h"
#include "conv.h"
#include "conv_direct.h"
#include "norm.h"
#include "pool.h"
#include "rnn.h"
#include "cpu.h"
#include "elementwise.h"
#include "gemm.h"
#include "loss.h"
#include "optim.h"

namespace py = pybind11;

namespace {

template <class T>
using carr = py::array_t<T, py::array::c_style | py::array::forcecast>;

std::string shape_of(const py::array& a) {
  std::ostringstream s;
  s << "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s << (i ? ", " : "") << a.shape(i) << (a.ndim() == 1 ? "," : "");
  s << ")";
  return s.str();
}

std::string dtype_of(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

[[noreturn]] void type_error(const std::string& m) { throw py::type_error(m); }
[[noreturn]] void value_error(const std::string& m) { throw py::value_error(m); }

// Converts an argument to a NumPy array, or raises TypeError naming it.
py::array to_array(const py::handle& obj, const char* fn, const char* name) {
  if (obj.is_none()) type_error(std::string(fn) + ": " + name + " must be an array, got None");
  try {
    return py::array::ensure(obj);
  } catch (...) {
  }
  type_error(std::string(fn) + ": " + name + " must be an array");
}

enum class Kind { F32, F64 };

Kind float_kind(const py::array& a, const char* fn, const char* name) {
  if (a.dtype().is(py::dtype::of<float>())) return Kind::F32;
  if (a.dtype().is(py::dtype::of<double>())) return Kind::F64;
  type_error(std::string(fn) + ": " + name + " must be float32 or float64, got " + dtype_of(a));
}

void same_dtype(const py::array& a, const char* an, const py::array& b, const char* bn, const char* fn) {
  if (!a.dtype().is(b.dtype()))
    type_error(std::string(fn) + ": " + bn + " has dtype " + dtype_of(b) + " but " + an + " has " + dtype_of(a));
}

void same_shape(const py::array& a, const char* an, const py::array& b, const char* bn, const char* fn) {
  bool ok = a.ndim() == b.ndim();
  for (py::ssize_t i = 0; ok && i < a.ndim(); ++i) ok = a.shape(i) == b.shape(i);
  if (!ok)
    value_error(std::string(fn) + ": " + bn + " has shape " + shape_of(b) + " but " + an + " has shape " + shape_of(a));
}

void want_ndim(const py::array& a, const char* name, const char* fn, int lo, int hi) {
  if (a.ndim() < lo || a.ndim() > hi) {
    std::ostringstream s;
    s << fn << ": " << name << " must have " << lo;
    if (hi != lo) s << " to " << hi;
    s << " dimensions, got shape " << shape_of(a);
    value_error(s.str());
  }
}

template <class T> T* ptr(py::array& a) { return static_cast<T*>(a.mutable_data()); }
template <class T> const T* cptr(const py::array& a) { return static_cast<const T*>(a.data()); }

template <class T> py::array empty(const std::vector<py::ssize_t>& shape) { return py::array_t<T>(shape); }

std::vector<py::ssize_t> shape_vec(const py::array& a) {
  return std::vector<py::ssize_t>(a.shape(), a.shape() + a.ndim());
}

// ---------------------------------------------------------------- gemm
// a (M, K) or (Ba, M, K), b (K, N) or (Bb, K, N), Ba/Bb equal or 1 -> y
struct MM {
  int64_t batch, M, K, N, as, bs;
  bool out3;
};

MM mm_dims(const py::array& a, const py::array& b, const char* fn) {
  want_ndim(a, "a", fn, 2, 3);
  want_ndim(b, "b", fn, 2, 3);
  MM d{};
  const int64_t Ba = a.ndim() == 3 ? a.shape(0) : 1, Bb = b.ndim() == 3 ? b.shape(0) : 1;
  d.M = a.shape(a.ndim() - 2);
  d.K = a.shape(a.ndim() - 1);
  d.N = b.shape(b.ndim() - 1);
  if (b.shape(b.ndim() - 2) != d.K)
    value_error(std::string(fn) + ": a has shape " + shape_of(a) + " and b has shape " + shape_of(b) +
                ": inner dimensions differ");
  if (Ba != Bb && Ba != 1 && Bb != 1)
    value_error(std::string(fn) + ": batch sizes of a " + shape_of(a) + " and b " + shape_of(b) + " do not broadcast");
  d.batch = std::max(Ba, Bb);
  d.as = Ba == 1 && d.batch > 1 ? 0 : d.M * d.K;
  d.bs = Bb == 1 && d.batch > 1 ? 0 : d.K * d.N;
  d.out3 = a.ndim() == 3 || b.ndim() == 3;
  return d;
}

template <class T>
py::array matmul_t(const py::array& a0, const py::array& b0, const MM& d) {
  auto a = carr<T>::ensure(a0);
  auto b = carr<T>::ensure(b0);
  std::vector<py::ssize_t> shp = d.out3 ? std::vector<py::ssize_t>{d.batch, d.M, d.N} : std::vector<py::ssize_t>{d.M, d.N};
  py::array y = empty<T>(shp);
  {
    py::gil_scoped_release nogil;
    fastdl::matmul_forward<T>(cptr<T>(a), cptr<T>(b), ptr<T>(y), d.batch, d.M, d.K, d.N, d.as, d.bs);
  }
  return y;
}

py::array matmul(const py::object& ao, const py::object& bo) {
  auto a = to_array(ao, "matmul", "a"), b = to_array(bo, "matmul", "b");
  Kind k = float_kind(a, "matmul", "a");
  same_dtype(a, "a", b, "b", "matmul");
  MM d = mm_dims(a, b, "matmul");
  return k == Kind::F32 ? matmul_t<float>(a, b, d) : matmul_t<double>(a, b, d);
}

template <class T>
py::tuple matmul_backward_t(const py::array& gy0, const py::array& a0, const py::array& b0,
                            const MM& d, bool need_a, bool need_b) {
  auto gy = carr<T>::ensure(gy0);
  auto a = carr<T>::ensure(a0);
  auto b = carr<T>::ensure(b0);
  py::object ga = py::none(), gb = py::none();
  py::array gaa, gba;
  if (need_a) gaa = empty<T>(shape_vec(a0));
  if (need_b) gba = empty<T>(shape_vec(b0));
  {
    py::gil_scoped_release nogil;
    fastdl::matmul_backward<T>(cptr<T>(gy), cptr<T>(a), cptr<T>(b), need_a ? ptr<T>(gaa) : nullptr,
                               need_b ? ptr<T>(gba) : nullptr, d.batch, d.M, d.K, d.N, d.as, d.bs);
  }
  if (need_a) ga = gaa;
  if (need_b) gb = gba;
  return py::make_tuple(ga, gb);
}

py::tuple matmul_backward(const py::object& gyo, const py::object& ao, const py::object& bo, bool need_a,
                          bool need_b) {
  const char* fn = "matmul_backward";
  auto gy = to_array(gyo, fn, "gy"), a = to_array(ao, fn, "a"), b = to_array(bo, fn, "b");
  Kind k = float_kind(a, fn, "a");
  same_dtype(a, "a", b, "b", fn);
  same_dtype(a, "a", gy, "gy", fn);
  MM d = mm_dims(a, b, fn);
  std::vector<py::ssize_t> want = d.out3 ? std::vector<py::ssize_t>{d.batch, d.M, d.N} : std::vector<py::ssize_t>{d.M, d.N};
  if (shape_vec(gy) != want) value_error(std::string(fn) + ": gy has shape " + shape_of(gy) + ", expected the output shape");
  return k == Kind::F32 ? matmul_backward_t<float>(gy, a, b, d, need_a, need_b)
                        : matmul_backward_t<double>(gy, a, b, d, need_a, need_b);
}

void linear_dims(const py::array& x, const py::array& w, const py::object& bias, const char* fn) {
  want_ndim(x, "x", fn, 2, 2);
  want_ndim(w, "weight", fn, 2, 2);
  if (x.shape(1) != w.shape(1))
    value_error(std::string(fn) + ": x has shape " + shape_of(x) + " but weight has shape " + shape_of(w) +
                " (expected x (N, in_features), weight (out_features, in_features))");
  same_dtype(x, "x", w, "weight", fn);
  if (!bias.is_none()) {
    py::array b = to_array(bias, fn, "bias");
    same_dtype(x, "x", b, "bias", fn);
    if (b.ndim() != 1 || b.shape(0) != w.shape(0))
      value_error(std::string(fn) + ": bias has shape " + shape_of(b) + ", expected (" + std::to_string(w.shape(0)) + ",)");
  }
}

template <class T>
py::array linear_t(const py::array& x0, const py::array& w0, const py::object& bias) {
  auto x = carr<T>::ensure(x0);
  auto w = carr<T>::ensure(w0);
  carr<T> b;
  if (!bias.is_none()) b = carr<T>::ensure(bias);
  const int64_t N = x.shape(0), IN = x.shape(1), OUT = w.shape(0);
  py::array y = empty<T>({N, OUT});
  {
    py::gil_scoped_release nogil;
    fastdl::linear_forward<T>(cptr<T>(x), cptr<T>(w), bias.is_none() ? nullptr : cptr<T>(b), ptr<T>(y), N, IN, OUT);
  }
  return y;
}

py::array linear_forward(const py::object& xo, const py::object& wo, const py::object& bias) {
  const char* fn = "linear_forward";
  auto x = to_array(xo, fn, "x"), w = to_array(wo, fn, "weight");
  Kind k = float_kind(x, fn, "x");
  linear_dims(x, w, bias, fn);
  return k == Kind::F32 ? linear_t<float>(x, w, bias) : linear_t<double>(x, w, bias);
}

template <class T>
py::tuple linear_backward_t(const py::array& gy0, const py::array& x0, const py::array& w0, bool need_x,
                            bool need_w, bool need_b) {
  auto gy = carr<T>::ensure(gy0);
  auto x = carr<T>::ensure(x0);
  auto w = carr<T>::ensure(w0);
  const int64_t N = x.shape(0), IN = x.shape(1), OUT = w.shape(0);
  py::array gx, gw, gb;
  if (need_x) gx = empty<T>({N, IN});
  if (need_w) gw = empty<T>({OUT, IN});
  if (need_b) gb = empty<T>({OUT});
  {
    py::gil_scoped_release nogil;
    fastdl::linear_backward<T>(cptr<T>(gy), cptr<T>(x), cptr<T>(w), need_x ? ptr<T>(gx) : nullptr,
                               need_w ? ptr<T>(gw) : nullptr, need_b ? ptr<T>(gb) : nullptr, N, IN, OUT);
  }
  return py::make_tuple(need_x ? py::object(gx) : py::none(), need_w ? py::object(gw) : py::none(),
                        need_b ? py::object(gb) : py::none());
}

py::tuple linear_backward(const py::object& gyo, const py::object& xo, const py::object& wo, bool need_x,
                          bool need_w, bool need_b) {
  const char* fn = "linear_backward";
  auto gy = to_array(gyo, fn, "gy"), x = to_array(xo, fn, "x"), w = to_array(wo, fn, "weight");
  Kind k = float_kind(x, fn, "x");
  linear_dims(x, w, py::none(), fn);
  same_dtype(x, "x", gy, "gy", fn);
  if (gy.ndim() != 2 || gy.shape(0) != x.shape(0) || gy.shape(1) != w.shape(0))
    value_error(std::string(fn) + ": gy has shape " + shape_of(gy) + ", expected (" + std::to_string(x.shape(0)) + ", " +
                std::to_string(w.shape(0)) + ")");
  return k == Kind::F32 ? linear_backward_t<float>(gy, x, w, need_x, need_w, need_b)
                        : linear_backward_t<double>(gy, x, w, need_x, need_w, need_b);
}

// ---------------------------------------------------------------- elementwise
template <class T> using UnaryK = void (*)(const T*, T*, int64_t);
template <class T> using BinaryK = void (*)(const T*, const T*, T*, int64_t);

template <class T>
py::array unary_t(const py::array& x0, UnaryK<T> k) {
  auto x = carr<T>::ensure(x0);
  py::array y = empty<T>(shape_vec(x0));
  {
    py::gil_scoped_release nogil;
    k(cptr<T>(x), ptr<T>(y), x.size());
  }
  return y;
}

template <class T>
py::array binary_t(const py::array& gy0, const py::array& y0, BinaryK<T> k) {
  auto gy = carr<T>::ensure(gy0);
  auto y = carr<T>::ensure(y0);
  py::array gx = empty<T>(shape_vec(y0));
  {
    py::gil_scoped_release nogil;
    k(cptr<T>(gy), cptr<T>(y), ptr<T>(gx), y.size());
  }
  return gx;
}

#define FASTDL_ACTIVATION(NAME)                                                                      \
  py::array NAME##_forward(const py::object& xo) {                                                   \
    auto x = to_array(xo, #NAME "_forward", "x");                                                     \
    return float_kind(x, #NAME "_forward", "x") == Kind::F32                                         \
               ? unary_t<float>(x, fastdl::NAME##_forward<float>)                                    \
               : unary_t<double>(x, fastdl::NAME##_forward<double>);                                 \
  }                                                                                                  \
  py::array NAME##_backward(const py::object& gyo, const py::object& yo) {                           \
    const char* fn = #NAME "_backward";                                                              \
    auto gy = to_array(gyo, fn, "gy"), y = to_array(yo, fn, "y");                                   \
    Kind k = float_kind(y, fn, "y");                                                                 \
    same_dtype(y, "y", gy, "gy", fn);                                                                \
    same_shape(y, "y", gy, "gy", fn);                                                                \
    return k == Kind::F32 ? binary_t<float>(gy, y, fastdl::NAME##_backward<float>)                  \
                          : binary_t<double>(gy, y, fastdl::NAME##_backward<double>);               \
  }
FASTDL_ACTIVATION(relu)
FASTDL_ACTIVATION(tanh)
FASTDL_ACTIVATION(sigmoid)
#undef FASTDL_ACTIVATION

py::array dropout_mask(const std::vector<py::ssize_t>& shape, double p, uint64_t seed) {
  if (!(p >= 0.0 && p <= 1.0)) value_error("dropout_mask: p must be in [0, 1], got " + std::to_string(p));
  for (auto s : shape)
    if (s < 0) value_error("dropout_mask: shape has a negative size");
  py::array m = py::array_t<uint8_t>(shape);
  {
    py::gil_scoped_release nogil;
    fastdl::dropout_mask(ptr<uint8_t>(m), m.size(), p, seed);
  }
  return m;
}

py::array mask_array(const py::object& mo, const py::array& like, const char* fn) {
  py::array m = to_array(mo, fn, "mask");
  if (m.dtype().kind() != 'b' && m.dtype().kind() != 'u' && m.dtype().kind() != 'i')
    type_error(std::string(fn) + ": mask must be bool or integer, got " + dtype_of(m));
  same_shape(like, "x", m, "mask", fn);
  return py::array_t<uint8_t, py::array::c_style | py::array::forcecast>::ensure(m.attr("astype")("uint8", py::arg("copy") = false));
}

template <class T>
py::array dropout_apply_t(const py::array& x0, const py::array& m, double scale) {
  auto x = carr<T>::ensure(x0);
  py::array y = empty<T>(shape_vec(x0));
  {
    py::gil_scoped_release nogil;
    fastdl::dropout_apply<T>(cptr<T>(x), cptr<uint8_t>(m), T(scale), ptr<T>(y), x.size());
  }
  return y;
}

py::array dropout_apply(const py::object& xo, const py::object& mo, double scale) {
  const char* fn = "dropout_apply";
  auto x = to_array(xo, fn, "x");
  Kind k = float_kind(x, fn, "x");
  py::array m = mask_array(mo, x, fn);
  return k == Kind::F32 ? dropout_apply_t<float>(x, m, scale) : dropout_apply_t<double>(x, m, scale);
}

// ---------------------------------------------------------------- softmax
struct Axis {
  int64_t outer, dim, inner;
};

Axis split_axis(const py::array& x, int64_t axis, const char* fn) {
  const int64_t nd = x.ndim();
  if (nd == 0) value_error(std::string(fn) + ": x must have at least 1 dimension");
  if (axis < -nd || axis >= nd)
    throw py::index_error(std::string(fn) + ": axis " + std::to_string(axis) + " is out of range for x of shape " + shape_of(x));
  if (axis < 0) axis += nd;
  Axis a{1, x.shape(axis), 1};
  for (int64_t i = 0; i < axis; ++i) a.outer *= x.shape(i);
  for (int64_t i = axis + 1; i < nd; ++i) a.inner *= x.shape(i);
  return a;
}

template <class T>
py::array softmax_fwd_t(const py::array& x0, const Axis& a, bool log) {
  auto x = carr<T>::ensure(x0);
  py::array y = empty<T>(shape_vec(x0));
  {
    py::gil_scoped_release nogil;
    (log ? fastdl::log_softmax_forward<T> : fastdl::softmax_forward<T>)(cptr<T>(x), ptr<T>(y), a.outer, a.dim, a.inner);
  }
  return y;
}

template <class T>
py::array softmax_bwd_t(const py::array& gy0, const py::array& y0, const Axis& a, bool log) {
  auto gy = carr<T>::ensure(gy0);
  auto y = carr<T>::ensure(y0);
  py::array gx = empty<T>(shape_vec(y0));
  {
    py::gil_scoped_release nogil;
    (log ? fastdl::log_softmax_backward<T> : fastdl::softmax_backward<T>)(cptr<T>(gy), cptr<T>(y), ptr<T>(gx), a.outer,
                                                                          a.dim, a.inner);
  }
  return gx;
}

py::array softmax_fwd(const py::object& xo, int64_t axis, bool log, const char* fn) {
  auto x = to_array(xo, fn, "x");
  Kind k = float_kind(x, fn, "x");
  Axis a = split_axis(x, axis, fn);
  return k == Kind::F32 ? softmax_fwd_t<float>(x, a, log) : softmax_fwd_t<double>(x, a, log);
}

py::array softmax_bwd(const py::object& gyo, const py::object& yo, int64_t axis, bool log, const char* fn) {
  auto gy = to_array(gyo, fn, "gy"), y = to_array(yo, fn, "y");
  Kind k = float_kind(y, fn, "y");
  same_dtype(y, "y", gy, "gy", fn);
  same_shape(y, "y", gy, "gy", fn);
  Axis a = split_axis(y, axis, fn);
  return k == Kind::F32 ? softmax_bwd_t<float>(gy, y, a, log) : softmax_bwd_t<double>(gy, y, a, log);
}

// ---------------------------------------------------------------- losses
py::array_t<int64_t> targets(const py::object& to, int64_t N, int64_t C, int64_t ignore_index, const char* fn) {
  py::array t = to_array(to, fn, "target");
  if (t.dtype().kind() != 'i' && t.dtype().kind() != 'u')
    type_error(std::string(fn) + ": target must hold integer class indices, got " + dtype_of(t));
  if (t.ndim() != 1 || t.shape(0) != N)
    value_error(std::string(fn) + ": target has shape " + shape_of(t) + ", expected (" + std::to_string(N) + ",)");
  auto ti = py::array_t<int64_t, py::array::c_style | py::array::forcecast>::ensure(t);
  const int64_t* p = ti.data();
  for (int64_t i = 0; i < N; ++i)
    if (p[i] != ignore_index && (p[i] < 0 || p[i] >= C))
      throw py::index_error(std::string(fn) + ": target[" + std::to_string(i) + "] = " + std::to_string(p[i]) +
                            " is not a class index in [0, " + std::to_string(C) + ")");
  return ti;
}

void check_smoothing(double eps, const char* fn) {
  if (!(eps >= 0.0 && eps <= 1.0)) value_error(std::string(fn) + ": label_smoothing must be in [0, 1], got " + std::to_string(eps));
}

template <class T>
py::tuple ce_fwd_t(const py::array& x0, const py::array_t<int64_t>& t, int64_t ii, double eps) {
  auto x = carr<T>::ensure(x0);
  const int64_t N = x.shape(0), C = x.shape(1);
  py::array loss = empty<T>({N}), lse = empty<T>({N});
  {
    py::gil_scoped_release nogil;
    fastdl::cross_entropy_forward<T>(cptr<T>(x), t.data(), ptr<T>(loss), ptr<T>(lse), N, C, ii, eps);
  }
  return py::make_tuple(loss, lse);
}

py::tuple cross_entropy_forward(const py::object& xo, const py::object& to, int64_t ignore_index, double eps) {
  const char* fn = "cross_entropy_forward";
  auto x = to_array(xo, fn, "logits");
  Kind k = float_kind(x, fn, "logits");
  want_ndim(x, "logits", fn, 2, 2);
  check_smoothing(eps, fn);
  auto t = targets(to, x.shape(0), x.shape(1), ignore_index, fn);
  return k == Kind::F32 ? ce_fwd_t<float>(x, t, ignore_index, eps) : ce_fwd_t<double>(x, t, ignore_index, eps);
}

template <class T>
py::array ce_bwd_t(const py::array& g0, const py::array& x0, const py::array_t<int64_t>& t, const py::array& l0,
                   int64_t ii, double eps) {
  auto g = carr<T>::ensure(g0);
  auto x = carr<T>::ensure(x0);
  auto lse = carr<T>::ensure(l0);
  const int64_t N = x.shape(0), C = x.shape(1);
  py::array gx = empty<T>({N, C});
  {
    py::gil_scoped_release nogil;
    fastdl::cross_entropy_backward<T>(cptr<T>(g), cptr<T>(x), t.data(), cptr<T>(lse), ptr<T>(gx), N, C, ii, eps);
  }
  return gx;
}

py::array cross_entropy_backward(const py::object& go, const py::object& xo, const py::object& to, const py::object& lo,
                                 int64_t ignore_index, double eps) {
  const char* fn = "cross_entropy_backward";
  auto g = to_array(go, fn, "gloss"), x = to_array(xo, fn, "logits"), lse = to_array(lo, fn, "lse");
  Kind k = float_kind(x, fn, "logits");
  want_ndim(x, "logits", fn, 2, 2);
  check_smoothing(eps, fn);
  same_dtype(x, "logits", g, "gloss", fn);
  same_dtype(x, "logits", lse, "lse", fn);
  same_shape(lse, "lse", g, "gloss", fn);
  if (lse.ndim() != 1 || lse.shape(0) != x.shape(0))
    value_error(std::string(fn) + ": lse has shape " + shape_of(lse) + ", expected (" + std::to_string(x.shape(0)) + ",)");
  auto t = targets(to, x.shape(0), x.shape(1), ignore_index, fn);
  return k == Kind::F32 ? ce_bwd_t<float>(g, x, t, lse, ignore_index, eps) : ce_bwd_t<double>(g, x, t, lse, ignore_index, eps);
}

template <class T>
py::array bce_fwd_t(const py::array& x0, const py::array& t0, const py::object& m) {
  auto x = carr<T>::ensure(x0);
  auto t = carr<T>::ensure(t0);
  py::array mask;
  if (!m.is_none()) mask = mask_array(m, x0, "bce_with_logits_forward");
  py::array loss = empty<T>(shape_vec(x0));
  {
    py::gil_scoped_release nogil;
    fastdl::bce_with_logits_forward<T>(cptr<T>(x), cptr<T>(t), m.is_none() ? nullptr : cptr<uint8_t>(mask),
                                       ptr<T>(loss), x.size());
  }
  return loss;
}

py::array bce_with_logits_forward(const py::object& xo, const py::object& to, const py::object& mask) {
  const char* fn = "bce_with_logits_forward";
  auto x = to_array(xo, fn, "logits"), t = to_array(to, fn, "target");
  Kind k = float_kind(x, fn, "logits");
  same_dtype(x, "logits", t, "target", fn);
  same_shape(x, "logits", t, "target", fn);
  return k == Kind::F32 ? bce_fwd_t<float>(x, t, mask) : bce_fwd_t<double>(x, t, mask);
}

template <class T>
py::array bce_bwd_t(const py::array& g0, const py::array& x0, const py::array& t0, const py::object& m) {
  auto g = carr<T>::ensure(g0);
  auto x = carr<T>::ensure(x0);
  auto t = carr<T>::ensure(t0);
  py::array mask;
  if (!m.is_none()) mask = mask_array(m, x0, "bce_with_logits_backward");
  py::array gx = empty<T>(shape_vec(x0));
  {
    py::gil_scoped_release nogil;
    fastdl::bce_with_logits_backward<T>(cptr<T>(g), cptr<T>(x), cptr<T>(t), m.is_none() ? nullptr : cptr<uint8_t>(mask),
                                        ptr<T>(gx), x.size());
  }
  return gx;
}

py::array bce_with_logits_backward(const py::object& go, const py::object& xo, const py::object& to, const py::object& mask) {
  const char* fn = "bce_with_logits_backward";
  auto g = to_array(go, fn, "gloss"), x = to_array(xo, fn, "logits"), t = to_array(to, fn, "target");
  Kind k = float_kind(x, fn, "logits");
  same_dtype(x, "logits", t, "target", fn);
  same_dtype(x, "logits", g, "gloss", fn);
  same_shape(x, "logits", t, "target", fn);
  same_shape(x, "logits", g, "gloss", fn);
  return k == Kind::F32 ? bce_bwd_t<float>(g, x, t, mask) : bce_bwd_t<double>(g, x, t, mask);
}

double mse_forward(const py::object& po, const py::object& to) {
  const char* fn = "mse_forward";
  auto p = to_array(po, fn, "input"), t = to_array(to, fn, "target");
  Kind k = float_kind(p, fn, "input");
  same_dtype(p, "input", t, "target", fn);
  same_shape(p, "input", t, "target", fn);
  if (k == Kind::F32) {
    auto a = carr<float>::ensure(p), b = carr<float>::ensure(t);
    py::gil_scoped_release nogil;
    return fastdl::mse_forward<float>(a.data(), b.data(), a.size());
  }
  auto a = carr<double>::ensure(p), b = carr<double>::ensure(t);
  py::gil_scoped_release nogil;
  return fastdl::mse_forward<double>(a.data(), b.data(), a.size());
}

template <class T>
py::array mse_bwd_t(double scale, const py::array& p0, const py::array& t0) {
  auto p = carr<T>::ensure(p0);
  auto t = carr<T>::ensure(t0);
  py::array g = empty<T>(shape_vec(p0));
  {
    py::gil_scoped_release nogil;
    fastdl::mse_backward<T>(T(scale), cptr<T>(p), cptr<T>(t), ptr<T>(g), p.size());
  }
  return g;
}

py::array mse_backward(double scale, const py::object& po, const py::object& to) {
  const char* fn = "mse_backward";
  auto p = to_array(po, fn, "input"), t = to_array(to, fn, "target");
  Kind k = float_kind(p, fn, "input");
  same_dtype(p, "input", t, "target", fn);
  same_shape(p, "input", t, "target", fn);
  return k == Kind::F32 ? mse_bwd_t<float>(scale, p, t) : mse_bwd_t<double>(scale, p, t);
}

// ---------------------------------------------------------------- optimizers
// In-place arguments are never converted (a converted copy would swallow the
// update): they must already be C-contiguous, writeable, of the parameter's dtype.
template <class T>
T* inplace(const py::object& o, const char* fn, const char* name, int64_t n, bool optional = false) {
  if (o.is_none()) {
    if (optional) return nullptr;
    type_error(std::string(fn) + ": " + name + " must be an array, got None");
  }
  if (!py::isinstance<py::array>(o)) type_error(std::string(fn) + ": " + name + " must be a NumPy array");
  py::array a = py::reinterpret_borrow<py::array>(o);
  if (!a.dtype().is(py::dtype::of<T>()))
    type_error(std::string(fn) + ": " + name + " has dtype " + dtype_of(a) + ", expected " +
               py::str(py::dtype::of<T>()).cast<std::string>());
  if (!(a.flags() & py::array::c_style)) value_error(std::string(fn) + ": " + name + " must be C-contiguous");
  if (!a.writeable()) value_error(std::string(fn) + ": " + name + " is read-only");
  if (a.size() != n)
    value_error(std::string(fn) + ": " + name + " has " + std::to_string(a.size()) + " elements, the parameter has " +
                std::to_string(n));
  return static_cast<T*>(a.mutable_data());
}

template <class T>
void sgd_t(const py::array& p0, const py::object& g0, const py::object& buf0, double lr, double mom, double damp,
           double wd, bool nesterov, bool maximize, bool first) {
  const char* fn = "sgd_step";
  const int64_t n = p0.size();
  T* p = inplace<T>(p0, fn, "param", n);
  auto g = carr<T>::ensure(to_array(g0, fn, "grad"));
  if (g.size() != n) value_error("sgd_step: grad and param differ in size");
  T* buf = inplace<T>(buf0, fn, "momentum_buffer", n, true);
  py::gil_scoped_release nogil;
  fastdl::sgd_step<T>(p, g.data(), buf, n, lr, mom, damp, wd, nesterov, maximize, first);
}

void sgd_step(const py::object& po, const py::object& g, const py::object& buf, double lr, double momentum,
              double dampening, double weight_decay, bool nesterov, bool maximize, bool first_step) {
  py::array p = to_array(po, "sgd_step", "param");
  if (float_kind(p, "sgd_step", "param") == Kind::F32)
    sgd_t<float>(p, g, buf, lr, momentum, dampening, weight_decay, nesterov, maximize, first_step);
  else
    sgd_t<double>(p, g, buf, lr, momentum, dampening, weight_decay, nesterov, maximize, first_step);
}

template <class T>
void adam_t(const py::array& p0, const py::object& g0, const py::object& m0, const py::object& v0,
            const py::object& vmax0, double lr, double b1, double b2, double eps, double wd, bool decoupled,
            bool maximize, int64_t step) {
  const char* fn = "adam_step";
  const int64_t n = p0.size();
  T* p = inplace<T>(p0, fn, "param", n);
  auto g = carr<T>::ensure(to_array(g0, fn, "grad"));
  if (g.size() != n) value_error("adam_step: grad and param differ in size");
  T* m = inplace<T>(m0, fn, "exp_avg", n);
  T* v = inplace<T>(v0, fn, "exp_avg_sq", n);
  T* vmax = inplace<T>(vmax0, fn, "max_exp_avg_sq", n, true);
  py::gil_scoped_release nogil;
  fastdl::adam_step<T>(p, g.data(), m, v, vmax, n, lr, b1, b2, eps, wd, decoupled, maximize, step);
}

void adam_step(const py::object& po, const py::object& g, const py::object& m, const py::object& v,
               const py::object& vmax, double lr, double beta1, double beta2, double eps, double weight_decay,
               bool decoupled, bool maximize, int64_t step) {
  const char* fn = "adam_step";
  py::array p = to_array(po, fn, "param");
  if (step < 1) value_error("adam_step: step must be >= 1, got " + std::to_string(step));
  if (!(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1))
    value_error("adam_step: betas must be in [0, 1)");
  if (float_kind(p, fn, "param") == Kind::F32)
    adam_t<float>(p, g, m, v, vmax, lr, beta1, beta2, eps, weight_decay, decoupled, maximize, step);
  else
    adam_t<double>(p, g, m, v, vmax, lr, beta1, beta2, eps, weight_decay, decoupled, maximize, step);
}

template <class T>
void rmsprop_t(const py::array& p0, const py::object& g0, const py::object& sq0, const py::object& ga0,
               const py::object& buf0, double lr, double alpha, double eps, double wd, double mom, bool maximize) {
  const char* fn = "rmsprop_step";
  const int64_t n = p0.size();
  T* p = inplace<T>(p0, fn, "param", n);
  auto g = carr<T>::ensure(to_array(g0, fn, "grad"));
  if (g.size() != n) value_error("rmsprop_step: grad and param differ in size");
  T* sq = inplace<T>(sq0, fn, "square_avg", n);
  T* ga = inplace<T>(ga0, fn, "grad_avg", n, true);
  T* buf = inplace<T>(buf0, fn, "momentum_buffer", n, true);
  py::gil_scoped_release nogil;
  fastdl::rmsprop_step<T>(p, g.data(), sq, ga, buf, n, lr, alpha, eps, wd, mom, maximize);
}

void rmsprop_step(const py::object& po, const py::object& g, const py::object& sq, const py::object& gavg,
                  const py::object& buf, double lr, double alpha, double eps, double weight_decay, double momentum,
                  bool maximize) {
  const char* fn = "rmsprop_step";
  py::array p = to_array(po, fn, "param");
  if (float_kind(p, fn, "param") == Kind::F32)
    rmsprop_t<float>(p, g, sq, gavg, buf, lr, alpha, eps, weight_decay, momentum, maximize);
  else
    rmsprop_t<double>(p, g, sq, gavg, buf, lr, alpha, eps, weight_decay, momentum, maximize);
}

// ---------------------------------------------------------------- convolution
using I2 = std::pair<int64_t, int64_t>;
using I4 = std::tuple<int64_t, int64_t, int64_t, int64_t>;

fastdl::Conv2dShape conv_shape(const py::array& x, const py::array& w, I2 stride, I4 pad, I2 dil, int64_t groups,
                               const char* fn) {
  want_ndim(x, "input", fn, 4, 4);
  want_ndim(w, "weight", fn, 4, 4);
  fastdl::Conv2dShape s{};
  s.N = x.shape(0); s.C = x.shape(1); s.H = x.shape(2); s.W = x.shape(3);
  s.K = w.shape(0); s.kh = w.shape(2); s.kw = w.shape(3);
  std::tie(s.sh, s.sw) = stride;
  std::tie(s.pt, s.pl, s.pb, s.pr) = pad;
  std::tie(s.dh, s.dw) = dil;
  s.groups = groups;
  std::string f(fn);
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

template <class T>
py::array conv_fwd_t(const py::array& x0, const py::array& w0, const py::object& b0, const fastdl::Conv2dShape& s) {
  auto x = carr<T>::ensure(x0);
  auto w = carr<T>::ensure(w0);
  carr<T> b;
  if (!b0.is_none()) b = carr<T>::ensure(b0);
  py::array y = empty<T>({s.N, s.K, s.OH, s.OW});
  {
    py::gil_scoped_release nogil;
    fastdl::conv2d_forward<T>(cptr<T>(x), cptr<T>(w), b0.is_none() ? nullptr : cptr<T>(b), ptr<T>(y), s);
  }
  return y;
}

py::array conv2d_forward(const py::object& xo, const py::object& wo, const py::object& bias, I2 stride, I4 pad, I2 dil,
                         int64_t groups) {
  const char* fn = "conv2d_forward";
  auto x = to_array(xo, fn, "input"), w = to_array(wo, fn, "weight");
  Kind k = float_kind(x, fn, "input");
  same_dtype(x, "input", w, "weight", fn);
  auto s = conv_shape(x, w, stride, pad, dil, groups, fn);
  if (!bias.is_none()) {
    py::array b = to_array(bias, fn, "bias");
    same_dtype(x, "input", b, "bias", fn);
    if (b.ndim() != 1 || b.shape(0) != s.K) value_error("conv2d_forward: bias has shape " + shape_of(b) + ", expected (" + std::to_string(s.K) + ",)");
  }
  return k == Kind::F32 ? conv_fwd_t<float>(x, w, bias, s) : conv_fwd_t<double>(x, w, bias, s);
}

template <class T>
py::tuple conv_bwd_t(const py::array& gy0, const py::array& x0, const py::array& w0, const fastdl::Conv2dShape& s,
                     bool nx, bool nw, bool nb) {
  auto gy = carr<T>::ensure(gy0);
  auto x = carr<T>::ensure(x0);
  auto w = carr<T>::ensure(w0);
  py::array gx, gw, gb;
  if (nx) gx = empty<T>(shape_vec(x0));
  if (nw) gw = empty<T>(shape_vec(w0));
  if (nb) gb = empty<T>({s.K});
  {
    py::gil_scoped_release nogil;
    fastdl::conv2d_backward<T>(cptr<T>(gy), cptr<T>(x), cptr<T>(w), nx ? ptr<T>(gx) : nullptr, nw ? ptr<T>(gw) : nullptr,
                               nb ? ptr<T>(gb) : nullptr, s);
  }
  return py::make_tuple(nx ? py::object(gx) : py::none(), nw ? py::object(gw) : py::none(), nb ? py::object(gb) : py::none());
}

py::tuple conv2d_backward(const py::object& gyo, const py::object& xo, const py::object& wo, I2 stride, I4 pad, I2 dil,
                          int64_t groups, bool need_input, bool need_weight, bool need_bias) {
  const char* fn = "conv2d_backward";
  auto gy = to_array(gyo, fn, "gy"), x = to_array(xo, fn, "input"), w = to_array(wo, fn, "weight");
  Kind k = float_kind(x, fn, "input");
  same_dtype(x, "input", w, "weight", fn);
  same_dtype(x, "input", gy, "gy", fn);
  auto s = conv_shape(x, w, stride, pad, dil, groups, fn);
  if (shape_vec(gy) != std::vector<py::ssize_t>{s.N, s.K, s.OH, s.OW})
    value_error("conv2d_backward: gy has shape " + shape_of(gy) + ", expected the output shape");
  return k == Kind::F32 ? conv_bwd_t<float>(gy, x, w, s, need_input, need_weight, need_bias)
                        : conv_bwd_t<double>(gy, x, w, s, need_input, need_weight, need_bias);
}

// ---------------------------------------------------------------- pooling
int64_t pool_out(int64_t L, int64_t k, int64_t s, int64_t p, int64_t d, bool ceil, const char* fn) {
  const int64_t num = L + 2 * p - d * (k - 1) - 1;
  if (num < 0) value_error(std::string(fn) + ": kernel is larger than the padded input");
  int64_t out = (num + (ceil ? s - 1 : 0)) / s + 1;
  if (ceil && (out - 1) * s >= L + p) --out;
  return out;
}

// Geometry of pooling planes of H x W with the given window; checks every argument.
fastdl::Pool2dShape pool_geometry(int64_t planes, int64_t H, int64_t W, I2 k, I2 st, I2 pad, I2 dil, bool ceil,
                                  const char* fn) {
  fastdl::Pool2dShape s{};
  s.planes = planes;
  s.H = H;
  s.W = W;
  std::tie(s.kh, s.kw) = k;
  std::tie(s.sh, s.sw) = st;
  std::tie(s.ph, s.pw) = pad;
  std::tie(s.dh, s.dw) = dil;
  std::string f(fn);
  if (s.kh < 1 || s.kw < 1) value_error(f + ": kernel_size must be >= 1");
  if (s.sh < 1 || s.sw < 1) value_error(f + ": stride must be >= 1");
  if (s.dh < 1 || s.dw < 1) value_error(f + ": dilation must be >= 1");
  if (s.ph < 0 || s.pw < 0) value_error(f + ": padding must be >= 0");
  if (2 * s.ph > s.dh * (s.kh - 1) + 1 || 2 * s.pw > s.dw * (s.kw - 1) + 1)
    value_error(f + ": padding should be at most half of the (dilated) kernel size");
  s.OH = pool_out(s.H, s.kh, s.sh, s.ph, s.dh, ceil, fn);
  s.OW = pool_out(s.W, s.kw, s.sw, s.pw, s.dw, ceil, fn);
  return s;
}

fastdl::Pool2dShape pool_shape(const py::array& x, I2 k, I2 st, I2 pad, I2 dil, bool ceil, const char* fn) {
  if (x.ndim() != 3 && x.ndim() != 4)
    value_error(std::string(fn) + ": input must be (N, C, H, W) or (C, H, W), got shape " + shape_of(x));
  const int64_t H = x.shape(x.ndim() - 2), W = x.shape(x.ndim() - 1);
  return pool_geometry(H * W ? x.size() / (H * W) : 0, H, W, k, st, pad, dil, ceil, fn);
}

std::vector<py::ssize_t> pooled_shape(const py::array& x, int64_t OH, int64_t OW) {
  auto v = shape_vec(x);
  v[v.size() - 2] = OH;
  v[v.size() - 1] = OW;
  return v;
}

template <class T>
py::tuple maxpool_fwd_t(const py::array& x0, const fastdl::Pool2dShape& s) {
  auto x = carr<T>::ensure(x0);
  auto shp = pooled_shape(x0, s.OH, s.OW);
  py::array y = empty<T>(shp), idx = empty<int64_t>(shp);
  {
    py::gil_scoped_release nogil;
    fastdl::max_pool2d_forward<T>(cptr<T>(x), ptr<T>(y), ptr<int64_t>(idx), s);
  }
  return py::make_tuple(y, idx);
}

py::tuple max_pool2d_forward(const py::object& xo, I2 k, I2 st, I2 pad, I2 dil, bool ceil) {
  const char* fn = "max_pool2d_forward";
  auto x = to_array(xo, fn, "input");
  Kind kd = float_kind(x, fn, "input");
  auto s = pool_shape(x, k, st, pad, dil, ceil, fn);
  return kd == Kind::F32 ? maxpool_fwd_t<float>(x, s) : maxpool_fwd_t<double>(x, s);
}

template <class T>
py::array maxpool_bwd_t(const py::array& gy0, const py::array& idx0, const fastdl::Pool2dShape& s,
                        std::vector<py::ssize_t> in_shape) {
  auto gy = carr<T>::ensure(gy0);
  auto idx = py::array_t<int64_t, py::array::c_style | py::array::forcecast>::ensure(idx0);
  const int64_t* ip = idx.data();
  const int64_t in = s.H * s.W;
  for (int64_t i = 0; i < idx.size(); ++i)
    if (ip[i] < 0 || ip[i] >= in) throw py::index_error("max_pool2d_backward: indices out of range for the input size");
  py::array gx = empty<T>(in_shape);
  {
    py::gil_scoped_release nogil;
    fastdl::max_pool2d_backward<T>(cptr<T>(gy), ip, ptr<T>(gx), s);
  }
  return gx;
}

py::array max_pool2d_backward(const py::object& gyo, const py::object& io, I2 input_hw) {
  const char* fn = "max_pool2d_backward";
  auto gy = to_array(gyo, fn, "gy"), idx = to_array(io, fn, "indices");
  Kind kd = float_kind(gy, fn, "gy");
  same_shape(gy, "gy", idx, "indices", fn);
  if (gy.ndim() != 3 && gy.ndim() != 4) value_error("max_pool2d_backward: gy must be 3-D or 4-D");
  fastdl::Pool2dShape s{};
  s.H = input_hw.first;
  s.W = input_hw.second;
  s.OH = gy.shape(gy.ndim() - 2);
  s.OW = gy.shape(gy.ndim() - 1);
  s.planes = s.OH * s.OW ? gy.size() / (s.OH * s.OW) : 0;
  if (s.H < 0 || s.W < 0) value_error("max_pool2d_backward: input size must be >= 0");
  auto in_shape = pooled_shape(gy, s.H, s.W);
  return kd == Kind::F32 ? maxpool_bwd_t<float>(gy, idx, s, in_shape) : maxpool_bwd_t<double>(gy, idx, s, in_shape);
}

template <class T>
py::array avgpool_fwd_t(const py::array& x0, const fastdl::Pool2dShape& s, bool cip) {
  auto x = carr<T>::ensure(x0);
  py::array y = empty<T>(pooled_shape(x0, s.OH, s.OW));
  {
    py::gil_scoped_release nogil;
    fastdl::avg_pool2d_forward<T>(cptr<T>(x), ptr<T>(y), s, cip);
  }
  return y;
}

py::array avg_pool2d_forward(const py::object& xo, I2 k, I2 st, I2 pad, bool ceil, bool count_include_pad) {
  const char* fn = "avg_pool2d_forward";
  auto x = to_array(xo, fn, "input");
  Kind kd = float_kind(x, fn, "input");
  auto s = pool_shape(x, k, st, pad, I2{1, 1}, ceil, fn);
  return kd == Kind::F32 ? avgpool_fwd_t<float>(x, s, count_include_pad) : avgpool_fwd_t<double>(x, s, count_include_pad);
}

template <class T>
py::array avgpool_bwd_t(const py::array& gy0, const fastdl::Pool2dShape& s, bool cip, std::vector<py::ssize_t> in_shape) {
  auto gy = carr<T>::ensure(gy0);
  py::array gx = empty<T>(in_shape);
  {
    py::gil_scoped_release nogil;
    fastdl::avg_pool2d_backward<T>(cptr<T>(gy), ptr<T>(gx), s, cip);
  }
  return gx;
}

py::array avg_pool2d_backward(const py::object& gyo, I2 input_hw, I2 k, I2 st, I2 pad, bool ceil, bool count_include_pad) {
  const char* fn = "avg_pool2d_backward";
  auto gy = to_array(gyo, fn, "gy");
  Kind kd = float_kind(gy, fn, "gy");
  if (gy.ndim() != 3 && gy.ndim() != 4) value_error("avg_pool2d_backward: gy must be 3-D or 4-D");
  auto in_shape = pooled_shape(gy, input_hw.first, input_hw.second);
  const int64_t OH = gy.shape(gy.ndim() - 2), OW = gy.shape(gy.ndim() - 1);
  auto s = pool_geometry(OH * OW ? gy.size() / (OH * OW) : 0, input_hw.first, input_hw.second, k, st, pad, I2{1, 1},
                         ceil, fn);
  if (s.OH != gy.shape(gy.ndim() - 2) || s.OW != gy.shape(gy.ndim() - 1))
    value_error("avg_pool2d_backward: gy " + shape_of(gy) + " does not match the pooled input size");
  return kd == Kind::F32 ? avgpool_bwd_t<float>(gy, s, count_include_pad, in_shape)
                         : avgpool_bwd_t<double>(gy, s, count_include_pad, in_shape);
}

// The adaptive pool in either direction: `out` (out_h, out_w per plane) <- kernel(`in`); the kernel
// takes the input size (H, W) and the pooled size (OH, OW) whichever way it runs.
template <class T>
py::array adaptive_t(void (*kernel)(const T*, T*, int64_t, int64_t, int64_t, int64_t, int64_t), const py::array& in0,
                     int64_t out_h, int64_t out_w, int64_t planes, int64_t H, int64_t W, int64_t OH, int64_t OW) {
  auto in = carr<T>::ensure(in0);
  py::array out = empty<T>(pooled_shape(in0, out_h, out_w));
  {
    py::gil_scoped_release nogil;
    kernel(cptr<T>(in), ptr<T>(out), planes, H, W, OH, OW);
  }
  return out;
}

py::array adaptive_avg_pool2d_forward(const py::object& xo, I2 out) {
  const char* fn = "adaptive_avg_pool2d_forward";
  auto x = to_array(xo, fn, "input");
  Kind kd = float_kind(x, fn, "input");
  if (x.ndim() != 3 && x.ndim() != 4) value_error("adaptive_avg_pool2d_forward: input must be 3-D or 4-D, got " + shape_of(x));
  const int64_t H = x.shape(x.ndim() - 2), W = x.shape(x.ndim() - 1);
  if (out.first < 1 || out.second < 1) value_error("adaptive_avg_pool2d_forward: output_size must be >= 1");
  if (H < 1 || W < 1) value_error("adaptive_avg_pool2d_forward: input has an empty spatial size");
  const int64_t planes = x.size() / (H * W);
  const int64_t OH = out.first, OW = out.second;
  return kd == Kind::F32
             ? adaptive_t<float>(fastdl::adaptive_avg_pool2d_forward<float>, x, OH, OW, planes, H, W, OH, OW)
             : adaptive_t<double>(fastdl::adaptive_avg_pool2d_forward<double>, x, OH, OW, planes, H, W, OH, OW);
}

py::array adaptive_avg_pool2d_backward(const py::object& gyo, I2 input_hw) {
  const char* fn = "adaptive_avg_pool2d_backward";
  auto gy = to_array(gyo, fn, "gy");
  Kind kd = float_kind(gy, fn, "gy");
  if (gy.ndim() != 3 && gy.ndim() != 4) value_error("adaptive_avg_pool2d_backward: gy must be 3-D or 4-D");
  const int64_t OH = gy.shape(gy.ndim() - 2), OW = gy.shape(gy.ndim() - 1);
  if (input_hw.first < 1 || input_hw.second < 1) value_error("adaptive_avg_pool2d_backward: input size must be >= 1");
  const int64_t planes = OH * OW ? gy.size() / (OH * OW) : 0;
  const int64_t H = input_hw.first, W = input_hw.second;
  return kd == Kind::F32
             ? adaptive_t<float>(fastdl::adaptive_avg_pool2d_backward<float>, gy, H, W, planes, H, W, OH, OW)
             : adaptive_t<double>(fastdl::adaptive_avg_pool2d_backward<double>, gy, H, W, planes, H, W, OH, OW);
}

// ---------------------------------------------------------------- normalization
struct NCS {
  int64_t N, C, S;
};

NCS bn_dims(const py::array& x, const char* fn) {
  if (x.ndim() < 2) value_error(std::string(fn) + ": input must be (N, C) or (N, C, ...), got shape " + shape_of(x));
  NCS d{x.shape(0), x.shape(1), 1};
  for (py::ssize_t i = 2; i < x.ndim(); ++i) d.S *= x.shape(i);
  return d;
}

template <class T>
const T* opt_vec(const py::object& o, carr<T>& keep, int64_t C, const char* fn, const char* name) {
  if (o.is_none()) return nullptr;
  keep = carr<T>::ensure(to_array(o, fn, name));
  if (keep.ndim() != 1 || keep.shape(0) != C)
    value_error(std::string(fn) + ": " + name + " has shape " + shape_of(keep) + ", expected (" + std::to_string(C) + ",)");
  return keep.data();
}

template <class T>
py::tuple bn_fwd_t(const py::array& x0, const py::object& g0, const py::object& b0, const py::object& rm0,
                   const py::object& rv0, bool training, double momentum, double eps, const NCS& d) {
  const char* fn = "batch_norm_forward";
  auto x = carr<T>::ensure(x0);
  carr<T> gk, bk, rmk, rvk;
  const T* g = opt_vec<T>(g0, gk, d.C, fn, "weight");
  const T* b = opt_vec<T>(b0, bk, d.C, fn, "bias");
  py::array y = empty<T>(shape_vec(x0)), mean = empty<T>({d.C}), rstd = empty<T>({d.C});
  if (training) {
    T* rm = inplace<T>(rm0, fn, "running_mean", d.C, true);
    T* rv = inplace<T>(rv0, fn, "running_var", d.C, true);
    py::gil_scoped_release nogil;
    fastdl::batch_norm_train_forward<T>(cptr<T>(x), g, b, ptr<T>(y), ptr<T>(mean), ptr<T>(rstd), rm, rv, d.N, d.C, d.S,
                                        momentum, eps);
  } else {
    const T* rm = opt_vec<T>(rm0, rmk, d.C, fn, "running_mean");
    const T* rv = opt_vec<T>(rv0, rvk, d.C, fn, "running_var");
    if (!rm || !rv) value_error("batch_norm_forward: evaluation needs running_mean and running_var");
    T* mp = ptr<T>(mean);
    T* rp = ptr<T>(rstd);
    for (int64_t c = 0; c < d.C; ++c) {
      mp[c] = rm[c];
      rp[c] = T(1.0 / std::sqrt(double(rv[c]) + eps));
    }
    py::gil_scoped_release nogil;
    fastdl::batch_norm_eval_forward<T>(cptr<T>(x), g, b, rm, rv, ptr<T>(y), d.N, d.C, d.S, eps);
  }
  return py::make_tuple(y, mean, rstd);
}

py::tuple batch_norm_forward(const py::object& xo, const py::object& w, const py::object& b, const py::object& rm,
                             const py::object& rv, bool training, double momentum, double eps) {
  const char* fn = "batch_norm_forward";
  auto x = to_array(xo, fn, "input");
  Kind k = float_kind(x, fn, "input");
  NCS d = bn_dims(x, fn);
  if (!(eps > 0)) value_error("batch_norm_forward: eps must be > 0");
  if (training && d.N * d.S < 2 && d.N * d.S * d.C > 0)
    value_error("batch_norm_forward: expected more than 1 value per channel when training, got input of shape " + shape_of(x));
  return k == Kind::F32 ? bn_fwd_t<float>(x, w, b, rm, rv, training, momentum, eps, d)
                        : bn_fwd_t<double>(x, w, b, rm, rv, training, momentum, eps, d);
}

template <class T>
py::tuple bn_bwd_t(const py::array& gy0, const py::array& x0, const py::object& g0, const py::array& m0, const py::array& r0,
                   bool training, bool nx, bool nw, bool nb, const NCS& d) {
  const char* fn = "batch_norm_backward";
  auto gy = carr<T>::ensure(gy0);
  auto x = carr<T>::ensure(x0);
  carr<T> gk, mk, rk;
  const T* g = opt_vec<T>(g0, gk, d.C, fn, "weight");
  const T* mean = opt_vec<T>(m0, mk, d.C, fn, "mean");
  const T* rstd = opt_vec<T>(r0, rk, d.C, fn, "rstd");
  py::array gx, gw, gb;
  if (nx) gx = empty<T>(shape_vec(x0));
  if (nw) gw = empty<T>({d.C});
  if (nb) gb = empty<T>({d.C});
  {
    py::gil_scoped_release nogil;
    fastdl::batch_norm_backward<T>(cptr<T>(gy), cptr<T>(x), g, mean, rstd, nx ? ptr<T>(gx) : nullptr,
                                   nw ? ptr<T>(gw) : nullptr, nb ? ptr<T>(gb) : nullptr, d.N, d.C, d.S, training);
  }
  return py::make_tuple(nx ? py::object(gx) : py::none(), nw ? py::object(gw) : py::none(), nb ? py::object(gb) : py::none());
}

py::tuple batch_norm_backward(const py::object& gyo, const py::object& xo, const py::object& w, const py::object& mo,
                              const py::object& ro, bool training, bool need_input, bool need_weight, bool need_bias) {
  const char* fn = "batch_norm_backward";
  auto gy = to_array(gyo, fn, "gy"), x = to_array(xo, fn, "input"), m = to_array(mo, fn, "mean"), r = to_array(ro, fn, "rstd");
  Kind k = float_kind(x, fn, "input");
  same_dtype(x, "input", gy, "gy", fn);
  same_shape(x, "input", gy, "gy", fn);
  NCS d = bn_dims(x, fn);
  return k == Kind::F32 ? bn_bwd_t<float>(gy, x, w, m, r, training, need_input, need_weight, need_bias, d)
                        : bn_bwd_t<double>(gy, x, w, m, r, training, need_input, need_weight, need_bias, d);
}

std::pair<int64_t, int64_t> ln_dims(const py::array& x, const std::vector<int64_t>& nshape, const char* fn) {
  const int64_t k = nshape.size();
  if (k < 1 || k > x.ndim())
    value_error(std::string(fn) + ": normalized_shape must name 1 to " + std::to_string(x.ndim()) + " trailing dimensions");
  int64_t D = 1;
  for (int64_t i = 0; i < k; ++i) {
    if (x.shape(x.ndim() - k + i) != nshape[i])
      value_error(std::string(fn) + ": normalized_shape does not match the last dimensions of input " + shape_of(x));
    D *= nshape[i];
  }
  return {D ? x.size() / D : 0, D};
}

template <class T>
py::tuple ln_fwd_t(const py::array& x0, const py::object& g0, const py::object& b0, int64_t M, int64_t D, double eps) {
  const char* fn = "layer_norm_forward";
  auto x = carr<T>::ensure(x0);
  carr<T> gk, bk;
  const T* g = g0.is_none() ? nullptr : (gk = carr<T>::ensure(to_array(g0, fn, "weight")), gk.data());
  const T* b = b0.is_none() ? nullptr : (bk = carr<T>::ensure(to_array(b0, fn, "bias")), bk.data());
  if ((g && gk.size() != D) || (b && bk.size() != D)) value_error("layer_norm_forward: weight/bias must have normalized_shape");
  py::array y = empty<T>(shape_vec(x0)), mean = empty<T>({M}), rstd = empty<T>({M});
  {
    py::gil_scoped_release nogil;
    fastdl::layer_norm_forward<T>(cptr<T>(x), g, b, ptr<T>(y), ptr<T>(mean), ptr<T>(rstd), M, D, eps);
  }
  return py::make_tuple(y, mean, rstd);
}

py::tuple layer_norm_forward(const py::object& xo, const std::vector<int64_t>& nshape, const py::object& w,
                             const py::object& b, double eps) {
  const char* fn = "layer_norm_forward";
  auto x = to_array(xo, fn, "input");
  Kind k = float_kind(x, fn, "input");
  auto [M, D] = ln_dims(x, nshape, fn);
  if (!(eps > 0)) value_error("layer_norm_forward: eps must be > 0");
  return k == Kind::F32 ? ln_fwd_t<float>(x, w, b, M, D, eps) : ln_fwd_t<double>(x, w, b, M, D, eps);
}

template <class T>
py::tuple ln_bwd_t(const py::array& gy0, const py::array& x0, const py::object& g0, const py::array& m0, const py::array& r0,
                   int64_t M, int64_t D, const std::vector<int64_t>& nshape, bool nx, bool nw, bool nb) {
  const char* fn = "layer_norm_backward";
  auto gy = carr<T>::ensure(gy0);
  auto x = carr<T>::ensure(x0);
  auto mean = carr<T>::ensure(m0);
  auto rstd = carr<T>::ensure(r0);
  if (mean.size() != M || rstd.size() != M) value_error("layer_norm_backward: mean/rstd must have one entry per row");
  carr<T> gk;
  const T* g = g0.is_none() ? nullptr : (gk = carr<T>::ensure(to_array(g0, fn, "weight")), gk.data());
  if (g && gk.size() != D) value_error("layer_norm_backward: weight must have normalized_shape");
  py::array gx, gw, gb;
  if (nx) gx = empty<T>(shape_vec(x0));
  const std::vector<py::ssize_t> wshape(nshape.begin(), nshape.end());
  if (nw) gw = empty<T>(wshape);
  if (nb) gb = empty<T>(wshape);
  {
    py::gil_scoped_release nogil;
    fastdl::layer_norm_backward<T>(cptr<T>(gy), cptr<T>(x), g, mean.data(), rstd.data(), nx ? ptr<T>(gx) : nullptr,
                                   nw ? ptr<T>(gw) : nullptr, nb ? ptr<T>(gb) : nullptr, M, D);
  }
  return py::make_tuple(nx ? py::object(gx) : py::none(), nw ? py::object(gw) : py::none(), nb ? py::object(gb) : py::none());
}

py::tuple layer_norm_backward(const py::object& gyo, const py::object& xo, const std::vector<int64_t>& nshape,
                              const py::object& w, const py::object& mo, const py::object& ro, bool need_input,
                              bool need_weight, bool need_bias) {
  const char* fn = "layer_norm_backward";
  auto gy = to_array(gyo, fn, "gy"), x = to_array(xo, fn, "input"), m = to_array(mo, fn, "mean"), r = to_array(ro, fn, "rstd");
  Kind k = float_kind(x, fn, "input");
  same_dtype(x, "input", gy, "gy", fn);
  same_shape(x, "input", gy, "gy", fn);
  auto [M, D] = ln_dims(x, nshape, fn);
  return k == Kind::F32 ? ln_bwd_t<float>(gy, x, w, m, r, M, D, nshape, need_input, need_weight, need_bias)
                        : ln_bwd_t<double>(gy, x, w, m, r, M, D, nshape, need_input, need_weight, need_bias);
}

// ---------------------------------------------------------------- recurrent
fastdl::RnnMode rnn_mode(const std::string& m) {
  if (m == "rnn_tanh") return fastdl::RnnMode::Tanh;
  if (m == "rnn_relu") return fastdl::RnnMode::Relu;
  if (m == "gru") return fastdl::RnnMode::GRU;
  if (m == "lstm") return fastdl::RnnMode::LSTM;
  value_error("rnn: mode must be 'rnn_tanh', 'rnn_relu', 'gru' or 'lstm', got '" + m + "'");
}

struct RnnArgs {
  fastdl::RnnDims d;
  py::array_t<int64_t, py::array::c_style | py::array::forcecast> lengths;
};

RnnArgs rnn_check(const std::string& mode, const py::array& x, const py::array& h0, const py::object& c0,
                  const py::array& w_ih, const py::array& w_hh, const py::object& b_ih, const py::object& b_hh,
                  const py::object& lengths, bool reverse, const char* fn) {
  RnnArgs a{};
  a.d.mode = rnn_mode(mode);
  a.d.reverse = reverse;
  const int64_t G = fastdl::rnn_gates(a.d.mode);
  want_ndim(x, "input", fn, 3, 3);
  a.d.T = x.shape(0); a.d.B = x.shape(1); a.d.I = x.shape(2);
  want_ndim(w_hh, "weight_hh", fn, 2, 2);
  a.d.H = w_hh.shape(1);
  const int64_t H = a.d.H, B = a.d.B;
  auto need = [&](const py::array& v, std::vector<py::ssize_t> shp, const char* name) {
    if (shape_vec(v) != shp) {
      std::ostringstream o;
      o << fn << ": " << name << " has shape " << shape_of(v) << ", expected (";
      for (size_t i = 0; i < shp.size(); ++i) o << (i ? ", " : "") << shp[i];
      o << ")";
      value_error(o.str());
    }
    same_dtype(x, "input", v, name, fn);
  };
  need(w_hh, {G * H, H}, "weight_hh");
  need(w_ih, {G * H, a.d.I}, "weight_ih");
  need(h0, {B, H}, "hx");
  if (a.d.mode == fastdl::RnnMode::LSTM) {
    if (c0.is_none()) type_error(std::string(fn) + ": an LSTM needs the initial cell state c0");
    need(to_array(c0, fn, "cx"), {B, H}, "cx");
  }
  if (!b_ih.is_none()) need(to_array(b_ih, fn, "bias_ih"), {G * H}, "bias_ih");
  if (!b_hh.is_none()) need(to_array(b_hh, fn, "bias_hh"), {G * H}, "bias_hh");
  a.d.lengths = nullptr;
  if (!lengths.is_none()) {
    py::array l = to_array(lengths, fn, "lengths");
    if (l.dtype().kind() != 'i' && l.dtype().kind() != 'u') type_error(std::string(fn) + ": lengths must be integers");
    if (l.ndim() != 1 || l.shape(0) != B)
      value_error(std::string(fn) + ": lengths has shape " + shape_of(l) + ", expected (" + std::to_string(B) + ",)");
    a.lengths = py::array_t<int64_t, py::array::c_style | py::array::forcecast>::ensure(l);
    for (int64_t b = 0; b < B; ++b)
      if (a.lengths.data()[b] < 1 || a.lengths.data()[b] > a.d.T)
        value_error(std::string(fn) + ": lengths[" + std::to_string(b) + "] = " + std::to_string(a.lengths.data()[b]) +
                    " is not in [1, " + std::to_string(a.d.T) + "]");
    a.d.lengths = a.lengths.data();
  }
  return a;
}

template <class T>
py::tuple rnn_fwd_t(RnnArgs& a, const py::array& x0, const py::array& h00, const py::object& c00, const py::array& wi0,
                    const py::array& wh0, const py::object& bi0, const py::object& bh0) {
  const auto& d = a.d;
  const int64_t G = fastdl::rnn_gates(d.mode);
  const bool lstm = d.mode == fastdl::RnnMode::LSTM, gru = d.mode == fastdl::RnnMode::GRU;
  auto x = carr<T>::ensure(x0);
  auto h0 = carr<T>::ensure(h00);
  auto wi = carr<T>::ensure(wi0);
  auto wh = carr<T>::ensure(wh0);
  carr<T> c0, bi, bh;
  if (lstm) c0 = carr<T>::ensure(c00);
  if (!bi0.is_none()) bi = carr<T>::ensure(bi0);
  if (!bh0.is_none()) bh = carr<T>::ensure(bh0);
  py::array out = empty<T>({d.T, d.B, d.H}), hn = empty<T>({d.B, d.H}), gates = empty<T>({d.T, d.B, G * d.H});
  py::object cn = py::none(), cs = py::none(), hnl = py::none();
  py::array cna, csa, hnla;
  if (lstm) { cna = empty<T>({d.B, d.H}); csa = empty<T>({d.T, d.B, d.H}); cn = cna; cs = csa; }
  if (gru) { hnla = empty<T>({d.T, d.B, d.H}); hnl = hnla; }
  {
    py::gil_scoped_release nogil;
    fastdl::rnn_forward<T>(d, x.data(), h0.data(), lstm ? c0.data() : nullptr, wi.data(), wh.data(),
                           bi0.is_none() ? nullptr : bi.data(), bh0.is_none() ? nullptr : bh.data(), ptr<T>(out),
                           ptr<T>(hn), lstm ? ptr<T>(cna) : nullptr, ptr<T>(gates), lstm ? ptr<T>(csa) : nullptr,
                           gru ? ptr<T>(hnla) : nullptr);
  }
  return py::make_tuple(out, hn, cn, gates, cs, hnl);
}

py::tuple rnn_forward(const std::string& mode, const py::object& xo, const py::object& h0o, const py::object& c0,
                      const py::object& wio, const py::object& who, const py::object& b_ih, const py::object& b_hh,
                      const py::object& lengths, bool reverse) {
  const char* fn = "rnn_forward";
  auto x = to_array(xo, fn, "input"), h0 = to_array(h0o, fn, "hx"), wi = to_array(wio, fn, "weight_ih"),
       wh = to_array(who, fn, "weight_hh");
  Kind k = float_kind(x, fn, "input");
  RnnArgs a = rnn_check(mode, x, h0, c0, wi, wh, b_ih, b_hh, lengths, reverse, fn);
  return k == Kind::F32 ? rnn_fwd_t<float>(a, x, h0, c0, wi, wh, b_ih, b_hh) : rnn_fwd_t<double>(a, x, h0, c0, wi, wh, b_ih, b_hh);
}

template <class T>
py::tuple rnn_bwd_t(RnnArgs& a, const py::array& dout0, const py::object& dhn0, const py::object& dcn0,
                    const py::array& x0, const py::array& h00, const py::object& c00, const py::array& wi0,
                    const py::array& wh0, const py::array& out0, const py::array& g0, const py::object& cs0,
                    const py::object& hnl0, bool has_bias, bool nx, bool nh, bool nw) {
  const auto& d = a.d;
  const char* fn = "rnn_backward";
  const int64_t G = fastdl::rnn_gates(d.mode);
  const bool lstm = d.mode == fastdl::RnnMode::LSTM, gru = d.mode == fastdl::RnnMode::GRU;
  auto dout = carr<T>::ensure(dout0);
  auto x = carr<T>::ensure(x0);
  auto h0 = carr<T>::ensure(h00);
  auto wi = carr<T>::ensure(wi0);
  auto wh = carr<T>::ensure(wh0);
  auto out = carr<T>::ensure(out0);
  auto gates = carr<T>::ensure(g0);
  carr<T> dhn, dcn, c0, cs, hnl;
  if (!dhn0.is_none()) dhn = carr<T>::ensure(to_array(dhn0, fn, "dhn"));
  if (lstm) {
    c0 = carr<T>::ensure(c00);
    if (cs0.is_none()) value_error("rnn_backward: an LSTM needs the saved cells");
    cs = carr<T>::ensure(to_array(cs0, fn, "cells"));
    if (!dcn0.is_none()) dcn = carr<T>::ensure(to_array(dcn0, fn, "dcn"));
  }
  if (gru) {
    if (hnl0.is_none()) value_error("rnn_backward: a GRU needs the saved hidden-path n gate");
    hnl = carr<T>::ensure(to_array(hnl0, fn, "hn_linear"));
  }
  if (dout.size() != d.T * d.B * d.H || out.size() != d.T * d.B * d.H || gates.size() != d.T * d.B * G * d.H ||
      (!dhn0.is_none() && dhn.size() != d.B * d.H) || (lstm && cs.size() != d.T * d.B * d.H) ||
      (gru && hnl.size() != d.T * d.B * d.H) || (lstm && !dcn0.is_none() && dcn.size() != d.B * d.H))
    value_error("rnn_backward: gradient or saved arrays do not match the layer's shapes");
  py::array dx, dh0, dc0, dwi, dwh, dbi, dbh;
  if (nx) dx = empty<T>({d.T, d.B, d.I});
  if (nh) dh0 = empty<T>({d.B, d.H});
  if (nh && lstm) dc0 = empty<T>({d.B, d.H});
  if (nw) { dwi = empty<T>({G * d.H, d.I}); dwh = empty<T>({G * d.H, d.H}); }
  if (nw && has_bias) { dbi = empty<T>({G * d.H}); dbh = empty<T>({G * d.H}); }
  {
    py::gil_scoped_release nogil;
    fastdl::rnn_backward<T>(d, dout.data(), dhn0.is_none() ? nullptr : dhn.data(),
                            (lstm && !dcn0.is_none()) ? dcn.data() : nullptr, x.data(), h0.data(),
                            lstm ? c0.data() : nullptr, wi.data(), wh.data(), out.data(), gates.data(),
                            lstm ? cs.data() : nullptr, gru ? hnl.data() : nullptr, nx ? ptr<T>(dx) : nullptr,
                            nh ? ptr<T>(dh0) : nullptr, (nh && lstm) ? ptr<T>(dc0) : nullptr, nw ? ptr<T>(dwi) : nullptr,
                            nw ? ptr<T>(dwh) : nullptr, (nw && has_bias) ? ptr<T>(dbi) : nullptr,
                            (nw && has_bias) ? ptr<T>(dbh) : nullptr);
  }
  auto opt = [](bool have, const py::array& v) { return have ? py::object(v) : py::object(py::none()); };
  return py::make_tuple(opt(nx, dx), opt(nh, dh0), opt(nh && lstm, dc0), opt(nw, dwi), opt(nw, dwh),
                        opt(nw && has_bias, dbi), opt(nw && has_bias, dbh));
}

py::tuple rnn_backward(const std::string& mode, const py::object& douto, const py::object& dhn, const py::object& dcn,
                       const py::object& xo, const py::object& h0o, const py::object& c0, const py::object& wio,
                       const py::object& who, const py::object& b_ih, const py::object& b_hh, const py::object& outo,
                       const py::object& go, const py::object& cs, const py::object& hnl, const py::object& lengths,
                       bool reverse, bool need_input, bool need_hidden, bool need_weights) {
  const char* fn = "rnn_backward";
  auto x = to_array(xo, fn, "input"), h0 = to_array(h0o, fn, "hx"), wi = to_array(wio, fn, "weight_ih"),
       wh = to_array(who, fn, "weight_hh"), dout = to_array(douto, fn, "dout"), out = to_array(outo, fn, "output"),
       g = to_array(go, fn, "gates");
  Kind k = float_kind(x, fn, "input");
  same_dtype(x, "input", dout, "dout", fn);
  RnnArgs a = rnn_check(mode, x, h0, c0, wi, wh, b_ih, b_hh, lengths, reverse, fn);
  const bool has_bias = !b_ih.is_none();
  return k == Kind::F32
             ? rnn_bwd_t<float>(a, dout, dhn, dcn, x, h0, c0, wi, wh, out, g, cs, hnl, has_bias, need_input, need_hidden, need_weights)
             : rnn_bwd_t<double>(a, dout, dhn, dcn, x, h0, c0, wi, wh, out, g, cs, hnl, has_bias, need_input, need_hidden, need_weights);
}

// ---------------------------------------------------------------- embedding
py::array_t<int64_t, py::array::c_style | py::array::forcecast> emb_indices(const py::object& io, int64_t V, const char* fn) {
  py::array i = to_array(io, fn, "indices");
  if (i.dtype().kind() != 'i' && i.dtype().kind() != 'u')
    type_error(std::string(fn) + ": indices must be integers, got " + dtype_of(i));
  auto ix = py::array_t<int64_t, py::array::c_style | py::array::forcecast>::ensure(i);
  const int64_t* p = ix.data();
  for (int64_t n = 0; n < ix.size(); ++n)
    if (p[n] < 0 || p[n] >= V)
      throw py::index_error(std::string(fn) + ": index " + std::to_string(p[n]) + " is out of range for " +
                            std::to_string(V) + " embeddings");
  return ix;
}

template <class T>
py::array emb_fwd_t(const py::array& w0, const py::array_t<int64_t, py::array::c_style | py::array::forcecast>& ix) {
  auto w = carr<T>::ensure(w0);
  const int64_t D = w.shape(1);
  auto shp = shape_vec(ix);
  shp.push_back(D);
  py::array y = empty<T>(shp);
  {
    py::gil_scoped_release nogil;
    fastdl::embedding_forward<T>(w.data(), ix.data(), ptr<T>(y), ix.size(), D);
  }
  return y;
}

py::array embedding_forward(const py::object& wo, const py::object& io) {
  const char* fn = "embedding_forward";
  auto w = to_array(wo, fn, "weight");
  Kind k = float_kind(w, fn, "weight");
  want_ndim(w, "weight", fn, 2, 2);
  auto ix = emb_indices(io, w.shape(0), fn);
  return k == Kind::F32 ? emb_fwd_t<float>(w, ix) : emb_fwd_t<double>(w, ix);
}

template <class T>
py::array emb_bwd_t(const py::array& g0, const py::array_t<int64_t, py::array::c_style | py::array::forcecast>& ix,
                    int64_t V, int64_t pad) {
  auto g = carr<T>::ensure(g0);
  const int64_t D = g.shape(g.ndim() - 1);
  if (g.size() != ix.size() * D) value_error("embedding_backward: gy does not match indices");
  py::array gw = empty<T>({V, D});
  {
    py::gil_scoped_release nogil;
    fastdl::embedding_backward<T>(g.data(), ix.data(), ptr<T>(gw), ix.size(), V, D, pad);
  }
  return gw;
}

py::array embedding_backward(const py::object& go, const py::object& io, int64_t num_embeddings, int64_t padding_idx) {
  const char* fn = "embedding_backward";
  auto g = to_array(go, fn, "gy");
  Kind k = float_kind(g, fn, "gy");
  if (num_embeddings < 1) value_error("embedding_backward: num_embeddings must be >= 1");
  if (g.ndim() < 1) value_error("embedding_backward: gy must have at least 1 dimension");
  auto ix = emb_indices(io, num_embeddings, fn);
  return k == Kind::F32 ? emb_bwd_t<float>(g, ix, num_embeddings, padding_idx) : emb_bwd_t<double>(g, ix, num_embeddings, padding_idx);
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "fastdl native kernels (C++/OpenMP, BLAS)";
#ifdef FASTDL_VERSION
  m.attr("__version__") = FASTDL_VERSION;
#endif
  m.attr("cuda_built") = false;

  m.def("set_num_threads", [](int n) {
    if (n < 1) value_error("set_num_threads: n must be >= 1, got " + std::to_string(n));
    fastdl::set_num_threads(n);
  }, py::arg("n"));
  m.def("get_num_threads", &fastdl::get_num_threads);
  m.def("has_openmp", &fastdl::has_openmp);
  m.def("blas_config", &fastdl::blas_config);
  m.def("blas_corename", &fastdl::blas_corename);
  m.def("cpu_features", &fastdl::cpu_features);
  m.def("simd_isa", &fastdl::simd_isa);
  m.def(
      "conv_direct_width",
      [](std::optional<int> cap) {
        if (cap) fastdl::set_conv_direct_width(*cap);
        return fastdl::conv_direct_width();
      },
      py::arg("cap") = py::none(),
      "Vector width (floats) of the direct float32 convolution in use: 16 (AVX-512), 8 (AVX2) or 0 (im2col + "
      "GEMM only).  cap (tests, benchmarks): 0, 8 or 16 caps it, -1 restores the CPU's widest.");

  m.def("matmul", &matmul, py::arg("a"), py::arg("b"));
  m.def("matmul_backward", &matmul_backward, py::arg("gy"), py::arg("a"), py::arg("b"), py::arg("need_a") = true,
        py::arg("need_b") = true);
  m.def("linear_forward", &linear_forward, py::arg("x"), py::arg("weight"), py::arg("bias") = py::none());
  m.def("linear_backward", &linear_backward, py::arg("gy"), py::arg("x"), py::arg("weight"), py::arg("need_x") = true,
        py::arg("need_weight") = true, py::arg("need_bias") = true);

  m.def("relu_forward", &relu_forward, py::arg("x"));
  m.def("relu_backward", &relu_backward, py::arg("gy"), py::arg("y"));
  m.def("tanh_forward", &tanh_forward, py::arg("x"));
  m.def("tanh_backward", &tanh_backward, py::arg("gy"), py::arg("y"));
  m.def("sigmoid_forward", &sigmoid_forward, py::arg("x"));
  m.def("sigmoid_backward", &sigmoid_backward, py::arg("gy"), py::arg("y"));
  m.def("dropout_mask", &dropout_mask, py::arg("shape"), py::arg("p"), py::arg("seed"));
  m.def("dropout_apply", &dropout_apply, py::arg("x"), py::arg("mask"), py::arg("scale"));

  m.def("softmax_forward", [](const py::object& x, int64_t axis) { return softmax_fwd(x, axis, false, "softmax_forward"); },
        py::arg("x"), py::arg("axis") = -1);
  m.def("softmax_backward", [](const py::object& gy, const py::object& y, int64_t axis) {
    return softmax_bwd(gy, y, axis, false, "softmax_backward"); }, py::arg("gy"), py::arg("y"), py::arg("axis") = -1);
  m.def("log_softmax_forward", [](const py::object& x, int64_t axis) { return softmax_fwd(x, axis, true, "log_softmax_forward"); },
        py::arg("x"), py::arg("axis") = -1);
  m.def("log_softmax_backward", [](const py::object& gy, const py::object& y, int64_t axis) {
    return softmax_bwd(gy, y, axis, true, "log_softmax_backward"); }, py::arg("gy"), py::arg("y"), py::arg("axis") = -1);

  m.def("cross_entropy_forward", &cross_entropy_forward, py::arg("logits"), py::arg("target"),
        py::arg("ignore_index") = -100, py::arg("label_smoothing") = 0.0);
  m.def("cross_entropy_backward", &cross_entropy_backward, py::arg("gloss"), py::arg("logits"), py::arg("target"),
        py::arg("lse"), py::arg("ignore_index") = -100, py::arg("label_smoothing") = 0.0);
  m.def("bce_with_logits_forward", &bce_with_logits_forward, py::arg("logits"), py::arg("target"),
        py::arg("mask") = py::none());
  m.def("bce_with_logits_backward", &bce_with_logits_backward, py::arg("gloss"), py::arg("logits"), py::arg("target"),
        py::arg("mask") = py::none());
  m.def("mse_forward", &mse_forward, py::arg("input"), py::arg("target"));
  m.def("mse_backward", &mse_backward, py::arg("scale"), py::arg("input"), py::arg("target"));

  m.def("conv2d_forward", &conv2d_forward, py::arg("input"), py::arg("weight"), py::arg("bias"), py::arg("stride"),
        py::arg("padding"), py::arg("dilation"), py::arg("groups"));
  m.def("conv2d_backward", &conv2d_backward, py::arg("gy"), py::arg("input"), py::arg("weight"), py::arg("stride"),
        py::arg("padding"), py::arg("dilation"), py::arg("groups"), py::arg("need_input") = true,
        py::arg("need_weight") = true, py::arg("need_bias") = true);
  m.def("max_pool2d_forward", &max_pool2d_forward, py::arg("input"), py::arg("kernel_size"), py::arg("stride"),
        py::arg("padding"), py::arg("dilation"), py::arg("ceil_mode"));
  m.def("max_pool2d_backward", &max_pool2d_backward, py::arg("gy"), py::arg("indices"), py::arg("input_size"));
  m.def("avg_pool2d_forward", &avg_pool2d_forward, py::arg("input"), py::arg("kernel_size"), py::arg("stride"),
        py::arg("padding"), py::arg("ceil_mode"), py::arg("count_include_pad"));
  m.def("avg_pool2d_backward", &avg_pool2d_backward, py::arg("gy"), py::arg("input_size"), py::arg("kernel_size"),
        py::arg("stride"), py::arg("padding"), py::arg("ceil_mode"), py::arg("count_include_pad"));
  m.def("adaptive_avg_pool2d_forward", &adaptive_avg_pool2d_forward, py::arg("input"), py::arg("output_size"));
  m.def("adaptive_avg_pool2d_backward", &adaptive_avg_pool2d_backward, py::arg("gy"), py::arg("input_size"));
  m.def("batch_norm_forward", &batch_norm_forward, py::arg("input"), py::arg("weight"), py::arg("bias"),
        py::arg("running_mean"), py::arg("running_var"), py::arg("training"), py::arg("momentum"), py::arg("eps"));
  m.def("batch_norm_backward", &batch_norm_backward, py::arg("gy"), py::arg("input"), py::arg("weight"), py::arg("mean"),
        py::arg("rstd"), py::arg("training"), py::arg("need_input") = true, py::arg("need_weight") = true,
        py::arg("need_bias") = true);
  m.def("layer_norm_forward", &layer_norm_forward, py::arg("input"), py::arg("normalized_shape"), py::arg("weight"),
        py::arg("bias"), py::arg("eps"));
  m.def("layer_norm_backward", &layer_norm_backward, py::arg("gy"), py::arg("input"), py::arg("normalized_shape"),
        py::arg("weight"), py::arg("mean"), py::arg("rstd"), py::arg("need_input") = true, py::arg("need_weight") = true,
        py::arg("need_bias") = true);

  m.def("embedding_forward", &embedding_forward, py::arg("weight"), py::arg("indices"));
  m.def("embedding_backward", &embedding_backward, py::arg("gy"), py::arg("indices"), py::arg("num_embeddings"),
        py::arg("padding_idx") = -1);
  m.def("rnn_forward", &rnn_forward, py::arg("mode"), py::arg("input"), py::arg("hx"), py::arg("cx"),
        py::arg("weight_ih"), py::arg("weight_hh"), py::arg("bias_ih"), py::arg("bias_hh"), py::arg("lengths"),
        py::arg("reverse"));
  m.def("rnn_backward", &rnn_backward, py::arg("mode"), py::arg("dout"), py::arg("dhn"), py::arg("dcn"),
        py::arg("input"), py::arg("hx"), py::arg("cx"), py::arg("weight_ih"), py::arg("weight_hh"), py::arg("bias_ih"),
        py::arg("bias_hh"), py::arg("output"), py::arg("gates"), py::arg("cells"), py::arg("hn_linear"),
        py::arg("lengths"), py::arg("reverse"), py::arg("need_input") = true, py::arg("need_hidden") = true,
        py::arg("need_weights") = true);

  m.def("sgd_step", &sgd_step, py::arg("param"), py::arg("grad"), py::arg("momentum_buffer"), py::arg("lr"),
        py::arg("momentum"), py::arg("dampening"), py::arg("weight_decay"), py::arg("nesterov"), py::arg("maximize"),
        py::arg("first_step"));
  m.def("adam_step", &adam_step, py::arg("param"), py::arg("grad"), py::arg("exp_avg"), py::arg("exp_avg_sq"),
        py::arg("max_exp_avg_sq"), py::arg("lr"), py::arg("beta1"), py::arg("beta2"), py::arg("eps"),
        py::arg("weight_decay"), py::arg("decoupled"), py::arg("maximize"), py::arg("step"));
  m.def("rmsprop_step", &rmsprop_step, py::arg("param"), py::arg("grad"), py::arg("square_avg"), py::arg("grad_avg"),
        py::arg("momentum_buffer"), py::arg("lr"), py::arg("alpha"), py::arg("eps"), py::arg("weight_decay"),
        py::arg("momentum"), py::arg("maximize"));
}
