// Attention: scaled dot-product attention, masked softmax, additive attention scores.
#include <cmath>

#include "../attention.h"
#include "checks.h"

namespace fastdl::bind {
namespace {

// The checked arguments of attention_forward / attention_backward.
struct Sdpa {
  py::array q, k, v, mask;
  int64_t B, L, S, E, Ev, mb = 1, ml = 1, div = 1;
  bool has_mask = false;
  double scale, p;
  bool causal;
  uint64_t seed;
};

uint64_t seed_of(int64_t seed, const char* fn) {
  if (seed < 0) value_error(std::string(fn) + ": seed must be >= 0, got " + std::to_string(seed));
  return uint64_t(seed);
}

Sdpa sdpa_args(const py::object& qo, const py::object& ko, const py::object& vo, const py::object& mo,
               const Int& mask_div_a, const Flag& causal_a, const py::object& scale, const Float& dropout_p_a,
               const Int& seed_a, const char* fn) {
  Sdpa a;  // the scalars first, in the order of the reference's rules
  const int64_t mask_div = mask_div_a.get(fn, "mask_div");
  a.causal = causal_a.get(fn, "is_causal");
  const double dropout_p = dropout_p_a.get(fn, "dropout_p");
  const int64_t seed = seed_a.get(fn, "seed");
  a.q = to_array(qo, fn, "q");
  a.k = to_array(ko, fn, "k");
  a.v = to_array(vo, fn, "v");
  by_dtype(a.q, fn, "q", [](auto) { return 0; });
  same_dtype(a.q, "q", a.k, "k", fn);
  same_dtype(a.q, "q", a.v, "v", fn);
  want_ndim(a.q, "q", fn, 3, 3);
  want_ndim(a.k, "k", fn, 3, 3);
  want_ndim(a.v, "v", fn, 3, 3);
  a.B = a.q.shape(0), a.L = a.q.shape(1), a.E = a.q.shape(2), a.S = a.k.shape(1), a.Ev = a.v.shape(2);
  want_shape(a.k, {a.B, a.S, a.E}, "k", fn);
  want_shape(a.v, {a.B, a.S, a.Ev}, "v", fn);
  if (!mo.is_none()) {
    a.mask = to_array(mo, fn, "mask");
    a.has_mask = true;
    if (!a.mask.dtype().equal(a.q.dtype()))
      type_error(std::string(fn) + ": mask must be an additive mask of q's dtype " + dtype_of(a.q) + ", got " +
                 dtype_of(a.mask));
    want_ndim(a.mask, "mask", fn, 3, 3);
    a.mb = a.mask.shape(0), a.ml = a.mask.shape(1);
    if (a.mask.shape(2) != a.S || (a.ml != 1 && a.ml != a.L) || (a.mb < 1 && a.B > 0))
      value_error(std::string(fn) + ": mask must have shape (mb >= 1, 1 or L=" + std::to_string(a.L) +
                  ", S=" + std::to_string(a.S) + "), got " + shape_of(a.mask));
    if (mask_div < 1) value_error(std::string(fn) + ": mask_div must be >= 1, got " + std::to_string(mask_div));
    a.div = mask_div;
  }
  if (scale.is_none()) {
    a.scale = a.E > 0 ? 1.0 / std::sqrt(double(a.E)) : 1.0;
  } else {
    a.scale = float_value(scale, fn, "scale");
    if (!std::isfinite(a.scale)) value_error(std::string(fn) + ": scale must be finite, got " + std::to_string(a.scale));
  }
  if (!(dropout_p >= 0.0 && dropout_p < 1.0))
    value_error(std::string(fn) + ": dropout_p must be in [0, 1), got " + std::to_string(dropout_p));
  a.p = dropout_p;
  a.seed = seed_of(seed, fn);
  return a;
}

// The scale must stay finite in the inputs' dtype (1e300 overflows float32).
template <class T> void scale_in_range(double scale, const char* fn) {
  if (!std::isfinite(T(scale)))
    value_error(std::string(fn) + ": scale " + std::to_string(scale) + " is out of range for the inputs' dtype");
}


template <class T> AttnMask<T> mask_of(const Sdpa& a, const carr<T>& m) {
  AttnMask<T> r;
  if (a.has_mask) r.data = m.data(), r.mb = a.mb, r.ml = a.ml, r.div = a.div;
  return r;
}

py::tuple sdpa_forward(const py::object& qo, const py::object& ko, const py::object& vo, const py::object& mo,
                       const Int& mask_div_a, const Flag& causal_a, const py::object& scale, const Float& dropout_p_a, const Int& seed_a) {
  const char* fn = "attention_forward";
  const Sdpa a = sdpa_args(qo, ko, vo, mo, mask_div_a, causal_a, scale, dropout_p_a, seed_a, fn);
  return by_dtype(a.q, fn, "q", [&](auto t) {
    using T = typename decltype(t)::type;
    scale_in_range<T>(a.scale, fn);
    auto q = carr<T>::ensure(a.q), k = carr<T>::ensure(a.k), v = carr<T>::ensure(a.v);
    carr<T> m = a.has_mask ? carr<T>::ensure(a.mask) : carr<T>();
    py::array out = empty<T>({a.B, a.L, a.Ev}), lse = empty<T>({a.B, a.L});
    {
      py::gil_scoped_release nogil;
      attention_forward<T>(q.data(), k.data(), v.data(), mask_of<T>(a, m), ptr<T>(out), ptr<T>(lse), a.B, a.L, a.S, a.E,
                           a.Ev, a.causal, T(a.scale), a.p, a.seed);
    }
    return py::make_tuple(out, lse);
  });
}

py::tuple sdpa_backward(const py::object& go, const py::object& qo, const py::object& ko, const py::object& vo,
                        const py::object& oo, const py::object& lo, const py::object& mo, const Int& mask_div_a, const Flag& causal_a,
                        const py::object& scale, const Float& dropout_p_a, const Int& seed_a) {
  const char* fn = "attention_backward";
  const Sdpa a = sdpa_args(qo, ko, vo, mo, mask_div_a, causal_a, scale, dropout_p_a, seed_a, fn);
  py::array g0 = to_array(go, fn, "gout"), o0 = to_array(oo, fn, "out"), l0 = to_array(lo, fn, "lse");
  same_dtype(a.q, "q", g0, "gout", fn);
  same_dtype(a.q, "q", o0, "out", fn);
  same_dtype(a.q, "q", l0, "lse", fn);
  want_shape(g0, {a.B, a.L, a.Ev}, "gout", fn);
  want_shape(o0, {a.B, a.L, a.Ev}, "out", fn);
  want_shape(l0, {a.B, a.L}, "lse", fn);
  return by_dtype(a.q, fn, "q", [&](auto t) {
    using T = typename decltype(t)::type;
    scale_in_range<T>(a.scale, fn);
    auto q = carr<T>::ensure(a.q), k = carr<T>::ensure(a.k), v = carr<T>::ensure(a.v);
    auto g = carr<T>::ensure(g0), o = carr<T>::ensure(o0), l = carr<T>::ensure(l0);
    carr<T> m = a.has_mask ? carr<T>::ensure(a.mask) : carr<T>();
    py::array gq = empty<T>({a.B, a.L, a.E}), gk = empty<T>({a.B, a.S, a.E}), gv = empty<T>({a.B, a.S, a.Ev});
    {
      py::gil_scoped_release nogil;
      attention_backward<T>(g.data(), q.data(), k.data(), v.data(), o.data(), l.data(), mask_of<T>(a, m), ptr<T>(gq),
                            ptr<T>(gk), ptr<T>(gv), a.B, a.L, a.S, a.E, a.Ev, a.causal, T(a.scale), a.p, a.seed);
    }
    return py::make_tuple(gq, gk, gv);
  });
}

double finite_scale(double scale, const char* fn) {
  if (!std::isfinite(scale)) value_error(std::string(fn) + ": scale must be finite, got " + std::to_string(scale));
  return scale;
}

py::array msoftmax_forward(const py::object& xo, const py::object& mo, const Float& scale_a) {
  const char* fn = "masked_softmax_forward";
  const double scale = scale_a.get(fn, "scale");
  py::array x0 = to_array(xo, fn, "x");
  return by_dtype(x0, fn, "x", [&](auto t) {
    using T = typename decltype(t)::type;
    want_ndim(x0, "x", fn, 1, 64);
    finite_scale(scale, fn);
    auto x = carr<T>::ensure(x0);
    const bool has_mask = !mo.is_none();
    carr<uint8_t> m = has_mask ? mask_array(mo, x0, fn) : carr<uint8_t>();
    const int64_t n = x0.shape(x0.ndim() - 1), R = n ? x0.size() / n : 0;
    py::array y = empty<T>(shape_vec(x0));
    {
      py::gil_scoped_release nogil;
      masked_softmax_forward<T>(x.data(), has_mask ? m.data() : nullptr, ptr<T>(y), R, n, T(scale));
    }
    return y;
  });
}

py::array msoftmax_backward(const py::object& gyo, const py::object& yo, const Float& scale_a) {
  const char* fn = "masked_softmax_backward";
  const double scale = scale_a.get(fn, "scale");
  py::array gy0 = to_array(gyo, fn, "gy"), y0 = to_array(yo, fn, "y");
  return by_dtype(y0, fn, "y", [&](auto t) {
    using T = typename decltype(t)::type;
    same_dtype(y0, "y", gy0, "gy", fn);
    same_shape(y0, "y", gy0, "gy", fn);
    want_ndim(y0, "y", fn, 1, 64);
    finite_scale(scale, fn);
    auto gy = carr<T>::ensure(gy0), y = carr<T>::ensure(y0);
    const int64_t n = y0.shape(y0.ndim() - 1), R = n ? y0.size() / n : 0;
    py::array gx = empty<T>(shape_vec(y0));
    {
      py::gil_scoped_release nogil;
      masked_softmax_backward<T>(gy.data(), y.data(), ptr<T>(gx), R, n, T(scale));
    }
    return gx;
  });
}

// qp (B, L, H), kp (B, S, H), v (H,) checked; returns (B, L, S, H).
I4 additive_args(const py::array& qp, const py::array& kp, const py::array& v, const char* fn) {
  same_dtype(qp, "qp", kp, "kp", fn);
  same_dtype(qp, "qp", v, "v", fn);
  want_ndim(qp, "qp", fn, 3, 3);
  want_ndim(kp, "kp", fn, 3, 3);
  const int64_t B = qp.shape(0), L = qp.shape(1), H = qp.shape(2), S = kp.shape(1);
  want_shape(kp, {B, S, H}, "kp", fn);
  want_shape(v, {H}, "v", fn);
  return {B, L, S, H};
}

py::array additive_forward(const py::object& qo, const py::object& ko, const py::object& vo) {
  const char* fn = "additive_attention_forward";
  py::array q0 = to_array(qo, fn, "qp"), k0 = to_array(ko, fn, "kp"), v0 = to_array(vo, fn, "v");
  return by_dtype(q0, fn, "qp", [&](auto t) {
    using T = typename decltype(t)::type;
    auto [B, L, S, H] = additive_args(q0, k0, v0, fn);
    auto q = carr<T>::ensure(q0), k = carr<T>::ensure(k0), v = carr<T>::ensure(v0);
    py::array s = empty<T>({B, L, S});
    {
      py::gil_scoped_release nogil;
      additive_attention_forward<T>(q.data(), k.data(), v.data(), ptr<T>(s), B, L, S, H);
    }
    return s;
  });
}

py::tuple additive_backward(const py::object& go, const py::object& qo, const py::object& ko, const py::object& vo,
                            const Flag& need_qp_a, const Flag& need_kp_a, const Flag& need_v_a) {
  const char* fn = "additive_attention_backward";
  const bool need_qp = need_qp_a.get(fn, "need_qp");
  const bool need_kp = need_kp_a.get(fn, "need_kp");
  const bool need_v = need_v_a.get(fn, "need_v");
  py::array g0 = to_array(go, fn, "gs"), q0 = to_array(qo, fn, "qp"), k0 = to_array(ko, fn, "kp"),
            v0 = to_array(vo, fn, "v");
  return by_dtype(q0, fn, "qp", [&](auto t) {
    using T = typename decltype(t)::type;
    auto [B, L, S, H] = additive_args(q0, k0, v0, fn);
    same_dtype(q0, "qp", g0, "gs", fn);
    want_shape(g0, {B, L, S}, "gs", fn);
    auto g = carr<T>::ensure(g0), q = carr<T>::ensure(q0), k = carr<T>::ensure(k0), v = carr<T>::ensure(v0);
    Out<T> gq(need_qp, {B, L, H}), gk(need_kp, {B, S, H}), gv(need_v, {H});
    {
      py::gil_scoped_release nogil;
      additive_attention_backward<T>(g.data(), q.data(), k.data(), v.data(), gq.p(), gk.p(), gv.p(), B, L, S, H);
    }
    return py::make_tuple(gq.obj(), gk.obj(), gv.obj());
  });
}

}  // namespace

void bind_attention(py::module_& m) {
  m.def("attention_forward", &sdpa_forward, py::arg("q"), py::arg("k"), py::arg("v"), py::arg("mask") = py::none(),
        py::arg("mask_div") = 1, py::arg("is_causal") = false, py::arg("scale") = py::none(),
        py::arg("dropout_p") = 0.0, py::arg("seed") = 0);
  m.def("attention_backward", &sdpa_backward, py::arg("gout"), py::arg("q"), py::arg("k"), py::arg("v"),
        py::arg("out"), py::arg("lse"), py::arg("mask") = py::none(), py::arg("mask_div") = 1,
        py::arg("is_causal") = false, py::arg("scale") = py::none(), py::arg("dropout_p") = 0.0, py::arg("seed") = 0);
  m.def("masked_softmax_forward", &msoftmax_forward, py::arg("x"), py::arg("mask") = py::none(),
        py::arg("scale") = 1.0);
  m.def("masked_softmax_backward", &msoftmax_backward, py::arg("gy"), py::arg("y"), py::arg("scale") = 1.0);
  m.def("additive_attention_forward", &additive_forward, py::arg("qp"), py::arg("kp"), py::arg("v"));
  m.def("additive_attention_backward", &additive_backward, py::arg("gs"), py::arg("qp"), py::arg("kp"), py::arg("v"),
        py::arg("need_qp") = true, py::arg("need_kp") = true, py::arg("need_v") = true);
}

}  // namespace fastdl::bind
