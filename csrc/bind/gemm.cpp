// matmul (batched, broadcast over a batch of 1) and linear.
#include "../gemm.h"
#include "checks.h"

namespace fastdl::bind {
namespace {

// a (M, K) or (Ba, M, K), b (K, N) or (Bb, K, N), Ba/Bb equal or 1 -> y
struct MM {
  int64_t batch, M, K, N, as, bs;
  bool out3;
  std::vector<py::ssize_t> out_shape() const {
    return out3 ? std::vector<py::ssize_t>{batch, M, N} : std::vector<py::ssize_t>{M, N};
  }
};

MM mm_dims(const py::array& a, const py::array& b, const char* fn) {
  want_ndim(a, "a", fn, 2, 3);
  want_ndim(b, "b", fn, 2, 3);
  same_dtype(a, "a", b, "b", fn);
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
  d.batch = Ba == 1 ? Bb : Ba;  // broadcast as NumPy: 1 against 0 is 0
  d.as = Ba == 1 && d.batch > 1 ? 0 : d.M * d.K;
  d.bs = Bb == 1 && d.batch > 1 ? 0 : d.K * d.N;
  d.out3 = a.ndim() == 3 || b.ndim() == 3;
  return d;
}

py::array matmul(const py::object& ao, const py::object& bo) {
  const char* fn = "matmul";
  auto a0 = to_array(ao, fn, "a"), b0 = to_array(bo, fn, "b");
  return by_dtype(a0, fn, "a", [&](auto t) {
    using T = typename decltype(t)::type;
    const MM d = mm_dims(a0, b0, fn);
    auto a = carr<T>::ensure(a0), b = carr<T>::ensure(b0);
    py::array y = empty<T>(d.out_shape());
    {
      py::gil_scoped_release nogil;
      matmul_forward<T>(a.data(), b.data(), ptr<T>(y), d.batch, d.M, d.K, d.N, d.as, d.bs);
    }
    return y;
  });
}

py::tuple matmul_backward(const py::object& gyo, const py::object& ao, const py::object& bo, const Flag& need_a_a,
                          const Flag& need_b_a) {
  const char* fn = "matmul_backward";
  const bool need_a = need_a_a.get(fn, "need_a");
  const bool need_b = need_b_a.get(fn, "need_b");
  auto gy0 = to_array(gyo, fn, "gy"), a0 = to_array(ao, fn, "a"), b0 = to_array(bo, fn, "b");
  return by_dtype(a0, fn, "a", [&](auto t) {
    using T = typename decltype(t)::type;
    const MM d = mm_dims(a0, b0, fn);
    same_dtype(a0, "a", gy0, "gy", fn);
    want_shape(gy0, d.out_shape(), "gy", fn);
    auto gy = carr<T>::ensure(gy0), a = carr<T>::ensure(a0), b = carr<T>::ensure(b0);
    Out<T> ga(need_a, shape_vec(a0)), gb(need_b, shape_vec(b0));
    {
      py::gil_scoped_release nogil;
      fastdl::matmul_backward<T>(gy.data(), a.data(), b.data(), ga.p(), gb.p(), d.batch, d.M, d.K, d.N, d.as, d.bs);
    }
    return py::make_tuple(ga.obj(), gb.obj());
  });
}

// x (N, in), weight (out, in), bias (out,) or None
void linear_dims(const py::array& x, const py::array& w, const py::object& bias, const char* fn) {
  want_ndim(x, "x", fn, 2, 2);
  want_ndim(w, "weight", fn, 2, 2);
  same_dtype(x, "x", w, "weight", fn);
  if (x.shape(1) != w.shape(1))
    value_error(std::string(fn) + ": x has shape " + shape_of(x) + " but weight has shape " + shape_of(w) +
                " (expected x (N, in_features), weight (out_features, in_features))");
  if (!bias.is_none()) {
    py::array b = to_array(bias, fn, "bias");
    same_dtype(x, "x", b, "bias", fn);
    want_shape(b, {w.shape(0)}, "bias", fn);
  }
}

py::array linear_forward(const py::object& xo, const py::object& wo, const py::object& bias) {
  const char* fn = "linear_forward";
  auto x0 = to_array(xo, fn, "x"), w0 = to_array(wo, fn, "weight");
  return by_dtype(x0, fn, "x", [&](auto t) {
    using T = typename decltype(t)::type;
    linear_dims(x0, w0, bias, fn);
    auto x = carr<T>::ensure(x0), w = carr<T>::ensure(w0);
    carr<T> b;
    if (!bias.is_none()) b = carr<T>::ensure(bias);
    const int64_t N = x.shape(0), IN = x.shape(1), OUT = w.shape(0);
    py::array y = empty<T>({N, OUT});
    {
      py::gil_scoped_release nogil;
      fastdl::linear_forward<T>(x.data(), w.data(), bias.is_none() ? nullptr : b.data(), ptr<T>(y), N, IN, OUT);
    }
    return y;
  });
}

py::tuple linear_backward(const py::object& gyo, const py::object& xo, const py::object& wo, const Flag& need_x_a,
                          const Flag& need_w_a, const Flag& need_b_a) {
  const char* fn = "linear_backward";
  const bool need_x = need_x_a.get(fn, "need_x");
  const bool need_w = need_w_a.get(fn, "need_weight");
  const bool need_b = need_b_a.get(fn, "need_bias");
  auto gy0 = to_array(gyo, fn, "gy"), x0 = to_array(xo, fn, "x"), w0 = to_array(wo, fn, "weight");
  return by_dtype(x0, fn, "x", [&](auto t) {
    using T = typename decltype(t)::type;
    linear_dims(x0, w0, py::none(), fn);
    same_dtype(x0, "x", gy0, "gy", fn);
    want_shape(gy0, {x0.shape(0), w0.shape(0)}, "gy", fn);
    auto gy = carr<T>::ensure(gy0), x = carr<T>::ensure(x0), w = carr<T>::ensure(w0);
    const int64_t N = x.shape(0), IN = x.shape(1), OUT = w.shape(0);
    Out<T> gx(need_x, {N, IN}), gw(need_w, {OUT, IN}), gb(need_b, {OUT});
    {
      py::gil_scoped_release nogil;
      fastdl::linear_backward<T>(gy.data(), x.data(), w.data(), gx.p(), gw.p(), gb.p(), N, IN, OUT);
    }
    return py::make_tuple(gx.obj(), gw.obj(), gb.obj());
  });
}

}  // namespace

void bind_gemm(py::module_& m) {
  m.def("matmul", &matmul, py::arg("a"), py::arg("b"));
  m.def("matmul_backward", &matmul_backward, py::arg("gy"), py::arg("a"), py::arg("b"), py::arg("need_a") = true,
        py::arg("need_b") = true);
  m.def("linear_forward", &linear_forward, py::arg("x"), py::arg("weight"), py::arg("bias") = py::none());
  m.def("linear_backward", &linear_backward, py::arg("gy"), py::arg("x"), py::arg("weight"), py::arg("need_x") = true,
        py::arg("need_weight") = true, py::arg("need_bias") = true);
}

}  // namespace fastdl::bind
