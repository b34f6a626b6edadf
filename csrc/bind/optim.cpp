// Fused optimizer updates, in place on the parameter and its state.
#include "../optim.h"
#include "checks.h"

#include <cmath>
#include <initializer_list>

namespace fastdl::bind {
namespace {

// An argument (gradient or state buffer) has the parameter's shape, not only its size.
void param_shape(const py::object& o, const py::array& p0, const char* fn, const char* name) {
  if (o.is_none()) return;
  py::array a = to_array(o, fn, name);
  bool same = a.ndim() == p0.ndim();
  for (py::ssize_t i = 0; same && i < a.ndim(); ++i) same = a.shape(i) == p0.shape(i);
  if (!same)
    value_error(std::string(fn) + ": " + name + " has shape " + shape_of(a) + ", the parameter has shape " +
                shape_of(p0));
}

// Hyperparameters finite, and the decay rate alpha in [0, 1] (reference/optim.py, _hyper).
void hyper(const char* fn, std::initializer_list<std::pair<const char*, double>> values) {
  for (const auto& [name, v] : values) {
    if (!std::isfinite(v)) value_error(std::string(fn) + ": " + name + " must be finite, got " + std::to_string(v));
    if (std::string(name) == "alpha" && !(v >= 0.0 && v <= 1.0))
      value_error(std::string(fn) + ": alpha must be in [0, 1], got " + std::to_string(v));
  }
}

// The gradient, converted if need be, of the parameter's shape.
template <class T>
carr<T> grad_of(const py::object& g0, const py::array& p0, const char* fn) {
  auto g = to_carr<T>(g0, fn, "grad");
  param_shape(g, p0, fn, "grad");
  return g;
}

void sgd_step(const py::object& po, const py::object& g0, const py::object& buf0, const Float& lr_a, const Float& momentum_a,
              const Float& dampening_a, const Float& weight_decay_a, const Flag& nesterov_a, const Flag& maximize_a, const Flag& first_step_a) {
  const char* fn = "sgd_step";
  const double lr = lr_a.get(fn, "lr");
  const double momentum = momentum_a.get(fn, "momentum");
  const double dampening = dampening_a.get(fn, "dampening");
  const double weight_decay = weight_decay_a.get(fn, "weight_decay");
  const bool nesterov = nesterov_a.get(fn, "nesterov");
  const bool maximize = maximize_a.get(fn, "maximize");
  const bool first_step = first_step_a.get(fn, "first_step");
  py::array p0 = to_array(po, fn, "param");
  by_dtype(p0, fn, "param", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const int64_t n = p0.size();
    T* p = inplace<T>(po, fn, "param", n);
    auto g = grad_of<T>(g0, p0, fn);
    T* buf = inplace<T>(buf0, fn, "momentum_buffer", n, true);
    param_shape(buf0, p0, fn, "momentum_buffer");
    hyper(fn, {{"lr", lr}, {"momentum", momentum}, {"dampening", dampening}, {"weight_decay", weight_decay}});
    py::gil_scoped_release nogil;
    fastdl::sgd_step<T>(p, g.data(), buf, n, lr, momentum, dampening, weight_decay, nesterov, maximize, first_step);
  });
}

void adam_step(const py::object& po, const py::object& g0, const py::object& m0, const py::object& v0,
               const py::object& vmax0, const Float& lr_a, const Float& beta1_a, const Float& beta2_a, const Float& eps_a, const Float& weight_decay_a,
               const Flag& decoupled_a, const Flag& maximize_a, const Int& step_a) {
  const char* fn = "adam_step";
  const double lr = lr_a.get(fn, "lr");
  const double beta1 = beta1_a.get(fn, "beta1");
  const double beta2 = beta2_a.get(fn, "beta2");
  const double eps = eps_a.get(fn, "eps");
  const double weight_decay = weight_decay_a.get(fn, "weight_decay");
  const bool decoupled = decoupled_a.get(fn, "decoupled");
  const bool maximize = maximize_a.get(fn, "maximize");
  const int64_t step = step_a.get(fn, "step");
  py::array p0 = to_array(po, fn, "param");
  by_dtype(p0, fn, "param", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const int64_t n = p0.size();
    T* p = inplace<T>(po, fn, "param", n);
    auto g = grad_of<T>(g0, p0, fn);
    T* m = inplace<T>(m0, fn, "exp_avg", n);
    param_shape(m0, p0, fn, "exp_avg");
    T* v = inplace<T>(v0, fn, "exp_avg_sq", n);
    param_shape(v0, p0, fn, "exp_avg_sq");
    T* vmax = inplace<T>(vmax0, fn, "max_exp_avg_sq", n, true);
    param_shape(vmax0, p0, fn, "max_exp_avg_sq");
    if (step < 1) value_error("adam_step: step must be >= 1, got " + std::to_string(step));
    if (!(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1)) value_error("adam_step: betas must be in [0, 1)");
    hyper(fn, {{"lr", lr}, {"eps", eps}, {"weight_decay", weight_decay}});
    py::gil_scoped_release nogil;
    fastdl::adam_step<T>(p, g.data(), m, v, vmax, n, lr, beta1, beta2, eps, weight_decay, decoupled, maximize, step);
  });
}

void rmsprop_step(const py::object& po, const py::object& g0, const py::object& sq0, const py::object& ga0,
                  const py::object& buf0, const Float& lr_a, const Float& alpha_a, const Float& eps_a, const Float& weight_decay_a, const Float& momentum_a,
                  const Flag& maximize_a) {
  const char* fn = "rmsprop_step";
  const double lr = lr_a.get(fn, "lr");
  const double alpha = alpha_a.get(fn, "alpha");
  const double eps = eps_a.get(fn, "eps");
  const double weight_decay = weight_decay_a.get(fn, "weight_decay");
  const double momentum = momentum_a.get(fn, "momentum");
  const bool maximize = maximize_a.get(fn, "maximize");
  py::array p0 = to_array(po, fn, "param");
  by_dtype(p0, fn, "param", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const int64_t n = p0.size();
    T* p = inplace<T>(po, fn, "param", n);
    auto g = grad_of<T>(g0, p0, fn);
    T* sq = inplace<T>(sq0, fn, "square_avg", n);
    param_shape(sq0, p0, fn, "square_avg");
    T* ga = inplace<T>(ga0, fn, "grad_avg", n, true);
    param_shape(ga0, p0, fn, "grad_avg");
    T* buf = inplace<T>(buf0, fn, "momentum_buffer", n, true);
    param_shape(buf0, p0, fn, "momentum_buffer");
    hyper(fn, {{"lr", lr}, {"alpha", alpha}, {"eps", eps}, {"weight_decay", weight_decay}, {"momentum", momentum}});
    py::gil_scoped_release nogil;
    fastdl::rmsprop_step<T>(p, g.data(), sq, ga, buf, n, lr, alpha, eps, weight_decay, momentum, maximize);
  });
}

const char* const kAdaptive[] = {"adagrad", "adadelta", "adamax", "nadam", "radam"};

void adaptive_step(const Str& kind_a, const py::object& po, const py::object& g0, const py::object& a0,
                   const py::object& b0, const Float& lr_a, const Float& beta1_a, const Float& beta2_a,
                   const Float& eps_a, const Float& weight_decay_a, const Flag& decoupled_a, const Flag& maximize_a,
                   const Int& step_a, const Float& extra_a, const Float& extra2_a) {
  const char* fn = "adaptive_step";
  const std::string kind = kind_a.get(fn, "kind");
  int k = -1;
  for (int i = 0; i < 5; ++i)
    if (kind == kAdaptive[i]) k = i;
  if (k < 0) value_error(std::string(fn) + ": unknown optimizer kind '" + kind + "'");
  const Adaptive ak = Adaptive(k);
  const double lr = lr_a.get(fn, "lr"), beta1 = beta1_a.get(fn, "beta1"), beta2 = beta2_a.get(fn, "beta2");
  const double eps = eps_a.get(fn, "eps"), weight_decay = weight_decay_a.get(fn, "weight_decay");
  const bool decoupled = decoupled_a.get(fn, "decoupled"), maximize = maximize_a.get(fn, "maximize");
  const int64_t step = step_a.get(fn, "step");
  const double extra = extra_a.get(fn, "extra"), extra2 = extra2_a.get(fn, "extra2");
  py::array p0 = to_array(po, fn, "param");
  by_dtype(p0, fn, "param", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const int64_t n = p0.size();
    T* p = inplace<T>(po, fn, "param", n);
    auto g = grad_of<T>(g0, p0, fn);
    T* a = inplace<T>(a0, fn, "state_a", n);
    param_shape(a0, p0, fn, "state_a");
    T* b = inplace<T>(b0, fn, "state_b", n, true);
    param_shape(b0, p0, fn, "state_b");
    if (ak != Adaptive::adagrad && b == nullptr) value_error(std::string(fn) + ": " + kind + " needs state_b");
    if (step < 1) value_error(std::string(fn) + ": step must be >= 1, got " + std::to_string(step));
    hyper(fn, {{"lr", lr}, {"beta1", beta1}, {"beta2", beta2}, {"eps", eps}, {"weight_decay", weight_decay},
               {"extra", extra}, {"extra2", extra2}});
    if (!(beta1 >= 0 && beta1 <= 1) || !(beta2 >= 0 && beta2 < 1))
      value_error(std::string(fn) + ": beta1 must be in [0, 1] and beta2 in [0, 1)");
    if (ak == Adaptive::nadam && !(extra2 < 1))
      value_error(std::string(fn) + ": nadam's momentum product (extra2) must be < 1");
    py::gil_scoped_release nogil;
    fastdl::adaptive_step<T>(ak, p, g.data(), a, b, n, lr, beta1, beta2, eps, weight_decay, decoupled, maximize, step,
                             extra, extra2);
  });
}

}  // namespace

void bind_optim(py::module_& m) {
  m.def("sgd_step", &sgd_step, py::arg("param"), py::arg("grad"), py::arg("momentum_buffer"), py::arg("lr"),
        py::arg("momentum"), py::arg("dampening"), py::arg("weight_decay"), py::arg("nesterov"), py::arg("maximize"),
        py::arg("first_step"));
  m.def("adam_step", &adam_step, py::arg("param"), py::arg("grad"), py::arg("exp_avg"), py::arg("exp_avg_sq"),
        py::arg("max_exp_avg_sq"), py::arg("lr"), py::arg("beta1"), py::arg("beta2"), py::arg("eps"),
        py::arg("weight_decay"), py::arg("decoupled"), py::arg("maximize"), py::arg("step"));
  m.def("rmsprop_step", &rmsprop_step, py::arg("param"), py::arg("grad"), py::arg("square_avg"), py::arg("grad_avg"),
        py::arg("momentum_buffer"), py::arg("lr"), py::arg("alpha"), py::arg("eps"), py::arg("weight_decay"),
        py::arg("momentum"), py::arg("maximize"));
  m.def("adaptive_step", &adaptive_step, py::arg("kind"), py::arg("param"), py::arg("grad"), py::arg("state_a"),
        py::arg("state_b"), py::arg("lr"), py::arg("beta1"), py::arg("beta2"), py::arg("eps"), py::arg("weight_decay"),
        py::arg("decoupled"), py::arg("maximize"), py::arg("step"), py::arg("extra"), py::arg("extra2"));
}

}  // namespace fastdl::bind
