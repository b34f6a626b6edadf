// Batch normalization (train and eval) and layer normalization.
#include "../norm.h"
#include "checks.h"

namespace fastdl::bind {
namespace {

struct NCS {
  int64_t N, C, S;
};

NCS bn_dims(const py::array& x, const char* fn) {
  if (x.ndim() < 2) value_error(std::string(fn) + ": input must be (N, C) or (N, C, ...), got shape " + shape_of(x));
  NCS d{x.shape(0), x.shape(1), 1};
  for (py::ssize_t i = 2; i < x.ndim(); ++i) d.S *= x.shape(i);
  return d;
}

// An optional per-channel vector (C,), converted into `keep`; null for None.
template <class T>
const T* opt_vec(const py::object& o, carr<T>& keep, int64_t C, const char* fn, const char* name) {
  if (o.is_none()) return nullptr;
  keep = to_carr<T>(o, fn, name);
  want_shape(keep, {C}, name, fn);
  return keep.data();
}

py::tuple batch_norm_forward(const py::object& xo, const py::object& w0, const py::object& b0, const py::object& rm0,
                             const py::object& rv0, const Flag& training_a, const Float& momentum_a, const Float& eps_a) {
  const char* fn = "batch_norm_forward";
  const bool training = training_a.get(fn, "training");
  const double momentum = momentum_a.get(fn, "momentum");
  const double eps = eps_a.get(fn, "eps");
  auto x0 = to_array(xo, fn, "input");
  return by_dtype(x0, fn, "input", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const NCS d = bn_dims(x0, fn);
    if (!(eps > 0)) value_error(std::string(fn) + ": eps must be > 0");
    if (training && d.N * d.S < 2 && d.C > 0)  // an empty batch too: PyTorch raises, statistics stay
      value_error(std::string(fn) + ": expected more than 1 value per channel when training, got input of shape " +
                  shape_of(x0));
    auto x = carr<T>::ensure(x0);
    carr<T> gk, bk, rmk, rvk;
    const T* g = opt_vec<T>(w0, gk, d.C, fn, "weight");
    const T* b = opt_vec<T>(b0, bk, d.C, fn, "bias");
    py::array y = empty<T>(shape_vec(x0)), mean = empty<T>({d.C}), rstd = empty<T>({d.C});
    if (training) {
      T* rm = inplace<T>(rm0, fn, "running_mean", d.C, true);
      T* rv = inplace<T>(rv0, fn, "running_var", d.C, true);
      py::gil_scoped_release nogil;
      batch_norm_train_forward<T>(x.data(), g, b, ptr<T>(y), ptr<T>(mean), ptr<T>(rstd), rm, rv, d.N, d.C, d.S,
                                  momentum, eps);
    } else {
      const T* rm = opt_vec<T>(rm0, rmk, d.C, fn, "running_mean");
      const T* rv = opt_vec<T>(rv0, rvk, d.C, fn, "running_var");
      if (!rm || !rv) value_error(std::string(fn) + ": evaluation needs running_mean and running_var");
      py::gil_scoped_release nogil;
      batch_norm_eval_forward<T>(x.data(), g, b, rm, rv, ptr<T>(y), ptr<T>(mean), ptr<T>(rstd), d.N, d.C, d.S, eps);
    }
    return py::make_tuple(y, mean, rstd);
  });
}

py::tuple batch_norm_backward(const py::object& gyo, const py::object& xo, const py::object& w0, const py::object& mo,
                              const py::object& ro, const Flag& training_a, const Flag& need_input_a, const Flag& need_weight_a, const Flag& need_bias_a) {
  const char* fn = "batch_norm_backward";
  const bool training = training_a.get(fn, "training");
  const bool need_input = need_input_a.get(fn, "need_input");
  const bool need_weight = need_weight_a.get(fn, "need_weight");
  const bool need_bias = need_bias_a.get(fn, "need_bias");
  auto gy0 = to_array(gyo, fn, "gy"), x0 = to_array(xo, fn, "input");
  return by_dtype(x0, fn, "input", [&](auto tag) {
    using T = typename decltype(tag)::type;
    same_dtype(x0, "input", gy0, "gy", fn);
    same_shape(x0, "input", gy0, "gy", fn);
    const NCS d = bn_dims(x0, fn);
    auto gy = carr<T>::ensure(gy0), x = carr<T>::ensure(x0);
    carr<T> gk, mk, rk;
    const T* g = opt_vec<T>(w0, gk, d.C, fn, "weight");
    const T* mean = opt_vec<T>(mo, mk, d.C, fn, "mean");
    const T* rstd = opt_vec<T>(ro, rk, d.C, fn, "rstd");
    if (!mean || !rstd) type_error(std::string(fn) + ": mean and rstd must be arrays, got None");
    Out<T> gx(need_input, shape_vec(x0)), gw(need_weight, {d.C}), gb(need_bias, {d.C});
    {
      py::gil_scoped_release nogil;
      fastdl::batch_norm_backward<T>(gy.data(), x.data(), g, mean, rstd, gx.p(), gw.p(), gb.p(), d.N, d.C, d.S,
                                     training);
    }
    return py::make_tuple(gx.obj(), gw.obj(), gb.obj());
  });
}

// (rows M, row length D) of an input whose trailing axes are normalized_shape
std::pair<int64_t, int64_t> ln_dims(const py::array& x, const std::vector<int64_t>& nshape, const char* fn) {
  const int64_t k = nshape.size();
  if (k < 1 || k > x.ndim())
    value_error(std::string(fn) + ": normalized_shape must name 1 to " + std::to_string(x.ndim()) +
                " trailing dimensions");
  int64_t D = 1;
  for (int64_t i = 0; i < k; ++i) {
    if (x.shape(x.ndim() - k + i) != nshape[i])
      value_error(std::string(fn) + ": normalized_shape does not match the last dimensions of input " + shape_of(x));
    D *= nshape[i];
  }
  return {D ? x.size() / D : 0, D};
}

// An optional (D,)-element weight or bias; null for None.
template <class T>
const T* opt_row(const py::object& o, carr<T>& keep, int64_t D, const char* fn, const char* name,
                 const char* want = "normalized_shape") {
  if (o.is_none()) return nullptr;
  keep = to_carr<T>(o, fn, name);
  if (keep.size() != D) value_error(std::string(fn) + ": " + name + " must have " + want + ", got " + shape_of(keep));
  return keep.data();
}

py::tuple layer_norm_forward(const py::object& xo, const Ints& nshape_a, const py::object& w0,
                             const py::object& b0, const Float& eps_a) {
  const char* fn = "layer_norm_forward";
  const std::vector<int64_t> nshape = nshape_a.get(fn, "normalized_shape");
  const double eps = eps_a.get(fn, "eps");
  auto x0 = to_array(xo, fn, "input");
  return by_dtype(x0, fn, "input", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const auto [M, D] = ln_dims(x0, nshape, fn);
    if (!(eps > 0)) value_error(std::string(fn) + ": eps must be > 0");
    auto x = carr<T>::ensure(x0);
    carr<T> gk, bk;
    const T* g = opt_row<T>(w0, gk, D, fn, "weight");
    const T* b = opt_row<T>(b0, bk, D, fn, "bias");
    py::array y = empty<T>(shape_vec(x0)), mean = empty<T>({M}), rstd = empty<T>({M});
    {
      py::gil_scoped_release nogil;
      fastdl::layer_norm_forward<T>(x.data(), g, b, ptr<T>(y), ptr<T>(mean), ptr<T>(rstd), M, D, eps);
    }
    return py::make_tuple(y, mean, rstd);
  });
}

py::tuple layer_norm_backward(const py::object& gyo, const py::object& xo, const Ints& nshape_a,
                              const py::object& w0, const py::object& mo, const py::object& ro, const Flag& need_input_a,
                              const Flag& need_weight_a, const Flag& need_bias_a) {
  const char* fn = "layer_norm_backward";
  const std::vector<int64_t> nshape = nshape_a.get(fn, "normalized_shape");
  const bool need_input = need_input_a.get(fn, "need_input");
  const bool need_weight = need_weight_a.get(fn, "need_weight");
  const bool need_bias = need_bias_a.get(fn, "need_bias");
  auto gy0 = to_array(gyo, fn, "gy"), x0 = to_array(xo, fn, "input"), m0 = to_array(mo, fn, "mean"),
       r0 = to_array(ro, fn, "rstd");
  return by_dtype(x0, fn, "input", [&](auto tag) {
    using T = typename decltype(tag)::type;
    same_dtype(x0, "input", gy0, "gy", fn);
    same_shape(x0, "input", gy0, "gy", fn);
    const auto [M, D] = ln_dims(x0, nshape, fn);
    auto gy = carr<T>::ensure(gy0), x = carr<T>::ensure(x0), mean = to_carr<T>(m0, fn, "mean"),
         rstd = to_carr<T>(r0, fn, "rstd");
    if (mean.size() != M || rstd.size() != M)
      value_error(std::string(fn) + ": mean and rstd must have one entry per row (" + std::to_string(M) + ")");
    carr<T> gk;
    const T* g = opt_row<T>(w0, gk, D, fn, "weight");
    const std::vector<py::ssize_t> wshape(nshape.begin(), nshape.end());
    Out<T> gx(need_input, shape_vec(x0)), gw(need_weight, wshape), gb(need_bias, wshape);
    {
      py::gil_scoped_release nogil;
      fastdl::layer_norm_backward<T>(gy.data(), x.data(), g, mean.data(), rstd.data(), gx.p(), gw.p(), gb.p(), M, D);
    }
    return py::make_tuple(gx.obj(), gw.obj(), gb.obj());
  });
}

// (N, C, S, G) of a group norm's input (N, C, ...) and num_groups
struct GnDims {
  int64_t N, C, S, G;
};
GnDims gn_dims(const py::array& x, const Int& groups_a, const char* fn) {
  const int64_t G = groups_a.get(fn, "num_groups");
  if (x.ndim() < 2) value_error(std::string(fn) + ": input must be (N, C, ...), got " + shape_of(x));
  const int64_t N = x.shape(0), C = x.shape(1);
  if (G < 1 || C % G) value_error(std::string(fn) + ": num_groups must be >= 1 and divide C=" + std::to_string(C) +
                                  ", got " + std::to_string(G));
  return {N, C, N * C ? x.size() / (N * C) : 0, G};
}

py::tuple group_norm_forward(const py::object& xo, const Int& groups_a, const py::object& w0, const py::object& b0,
                             const Float& eps_a) {
  const char* fn = "group_norm_forward";
  const double eps = eps_a.get(fn, "eps");
  auto x0 = to_array(xo, fn, "input");
  return by_dtype(x0, fn, "input", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const GnDims d = gn_dims(x0, groups_a, fn);
    if (!(eps > 0)) value_error(std::string(fn) + ": eps must be > 0");
    auto x = carr<T>::ensure(x0);
    carr<T> gk, bk;
    const T* g = opt_row<T>(w0, gk, d.C, fn, "weight", "one entry per channel");
    const T* b = opt_row<T>(b0, bk, d.C, fn, "bias", "one entry per channel");
    py::array y = empty<T>(shape_vec(x0)), mean = empty<T>({d.N * d.G}), rstd = empty<T>({d.N * d.G});
    {
      py::gil_scoped_release nogil;
      fastdl::group_norm_forward<T>(x.data(), g, b, ptr<T>(y), ptr<T>(mean), ptr<T>(rstd), d.N, d.C, d.S, d.G, eps);
    }
    return py::make_tuple(y, mean, rstd);
  });
}

py::tuple group_norm_backward(const py::object& gyo, const py::object& xo, const Int& groups_a, const py::object& w0,
                              const py::object& mo, const py::object& ro, const Flag& need_input_a,
                              const Flag& need_weight_a, const Flag& need_bias_a) {
  const char* fn = "group_norm_backward";
  const bool need_input = need_input_a.get(fn, "need_input");
  const bool need_weight = need_weight_a.get(fn, "need_weight");
  const bool need_bias = need_bias_a.get(fn, "need_bias");
  auto gy0 = to_array(gyo, fn, "gy"), x0 = to_array(xo, fn, "input"), m0 = to_array(mo, fn, "mean"),
       r0 = to_array(ro, fn, "rstd");
  return by_dtype(x0, fn, "input", [&](auto tag) {
    using T = typename decltype(tag)::type;
    same_dtype(x0, "input", gy0, "gy", fn);
    same_shape(x0, "input", gy0, "gy", fn);
    const GnDims d = gn_dims(x0, groups_a, fn);
    auto gy = carr<T>::ensure(gy0), x = carr<T>::ensure(x0), mean = to_carr<T>(m0, fn, "mean"),
         rstd = to_carr<T>(r0, fn, "rstd");
    if (mean.size() != d.N * d.G || rstd.size() != d.N * d.G)
      value_error(std::string(fn) + ": mean and rstd must have one entry per sample and group (" +
                  std::to_string(d.N * d.G) + ")");
    carr<T> gk;
    const T* g = opt_row<T>(w0, gk, d.C, fn, "weight", "one entry per channel");
    Out<T> gx(need_input, shape_vec(x0)), gw(need_weight, {d.C}), gb(need_bias, {d.C});
    {
      py::gil_scoped_release nogil;
      fastdl::group_norm_backward<T>(gy.data(), x.data(), g, mean.data(), rstd.data(), gx.p(), gw.p(), gb.p(), d.N, d.C,
                                     d.S, d.G);
    }
    return py::make_tuple(gx.obj(), gw.obj(), gb.obj());
  });
}

}  // namespace

void bind_norm(py::module_& m) {
  m.def("batch_norm_forward", &batch_norm_forward, py::arg("input"), py::arg("weight"), py::arg("bias"),
        py::arg("running_mean"), py::arg("running_var"), py::arg("training"), py::arg("momentum"), py::arg("eps"));
  m.def("batch_norm_backward", &batch_norm_backward, py::arg("gy"), py::arg("input"), py::arg("weight"),
        py::arg("mean"), py::arg("rstd"), py::arg("training"), py::arg("need_input") = true,
        py::arg("need_weight") = true, py::arg("need_bias") = true);
  m.def("layer_norm_forward", &layer_norm_forward, py::arg("input"), py::arg("normalized_shape"), py::arg("weight"),
        py::arg("bias"), py::arg("eps"));
  m.def("layer_norm_backward", &layer_norm_backward, py::arg("gy"), py::arg("input"), py::arg("normalized_shape"),
        py::arg("weight"), py::arg("mean"), py::arg("rstd"), py::arg("need_input") = true,
        py::arg("need_weight") = true, py::arg("need_bias") = true);
  m.def("group_norm_forward", &group_norm_forward, py::arg("input"), py::arg("num_groups"), py::arg("weight"),
        py::arg("bias"), py::arg("eps"));
  m.def("group_norm_backward", &group_norm_backward, py::arg("gy"), py::arg("input"), py::arg("num_groups"),
        py::arg("weight"), py::arg("mean"), py::arg("rstd"), py::arg("need_input") = true,
        py::arg("need_weight") = true, py::arg("need_bias") = true);
}

}  // namespace fastdl::bind
