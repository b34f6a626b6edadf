// One recurrent layer in one direction over a whole sequence (rnn_tanh, rnn_relu, gru, lstm), and BPTT.
#include <memory>
#include <vector>

#include "../rnn.h"
#include "../threads.h"
#include "checks.h"

namespace fastdl::bind {
namespace {

RnnMode rnn_mode(const std::string& m, const char* fn) {
  if (m == "rnn_tanh") return RnnMode::Tanh;
  if (m == "rnn_relu") return RnnMode::Relu;
  if (m == "gru") return RnnMode::GRU;
  if (m == "lstm") return RnnMode::LSTM;
  value_error(std::string(fn) + ": mode must be 'rnn_tanh', 'rnn_relu', 'gru' or 'lstm', got '" + m + "'");
}

// The layer's sizes from its arguments, every shape and dtype checked; lengths kept alive here.
struct RnnArgs {
  RnnDims d;
  carr<int64_t> lengths;
};

RnnArgs rnn_check(const std::string& mode, const py::array& x, const py::array& h0, const py::object& c0,
                  const py::array& w_ih, const py::array& w_hh, const py::object& b_ih, const py::object& b_hh,
                  const py::object& lengths, bool reverse, const char* fn) {
  RnnArgs a{};
  a.d.mode = rnn_mode(mode, fn);
  a.d.reverse = reverse;
  const int64_t G = rnn_gates(a.d.mode);
  want_ndim(x, "input", fn, 3, 3);
  a.d.T = x.shape(0); a.d.B = x.shape(1); a.d.I = x.shape(2);
  want_ndim(w_hh, "weight_hh", fn, 2, 2);
  a.d.H = w_hh.shape(1);
  const int64_t H = a.d.H, B = a.d.B;
  auto need = [&](const py::array& v, std::vector<py::ssize_t> shp, const char* name) {
    want_shape(v, shp, name, fn);
    same_dtype(x, "input", v, name, fn);
  };
  need(w_hh, {G * H, H}, "weight_hh");
  need(w_ih, {G * H, a.d.I}, "weight_ih");
  need(h0, {B, H}, "hx");
  if (a.d.mode == RnnMode::LSTM) {
    if (c0.is_none()) type_error(std::string(fn) + ": an LSTM needs the initial cell state cx");
    need(to_array(c0, fn, "cx"), {B, H}, "cx");
  }
  if (b_ih.is_none() != b_hh.is_none())
    value_error(std::string(fn) + ": give both bias_ih and bias_hh, or neither");
  if (!b_ih.is_none()) need(to_array(b_ih, fn, "bias_ih"), {G * H}, "bias_ih");
  if (!b_hh.is_none()) need(to_array(b_hh, fn, "bias_hh"), {G * H}, "bias_hh");
  a.d.lengths = nullptr;
  if (!lengths.is_none()) {
    a.lengths = int_array(lengths, fn, "lengths");
    want_shape(a.lengths, {B}, "lengths", fn);
    for (int64_t b = 0; b < B; ++b)
      if (a.lengths.data()[b] < 1 || a.lengths.data()[b] > a.d.T)
        value_error(std::string(fn) + ": lengths[" + std::to_string(b) + "] = " + std::to_string(a.lengths.data()[b]) +
                    " is not in [1, " + std::to_string(a.d.T) + "]");
    a.d.lengths = a.lengths.data();
  }
  return a;
}

// An optional argument converted to carr<T> after its shape was checked; null data for None.
template <class T> const T* opt(const py::object& o, carr<T>& keep) {
  if (o.is_none()) return nullptr;
  keep = carr<T>::ensure(o);
  return keep.data();
}

py::tuple rnn_forward(const Str& mode_a, const py::object& xo, const py::object& h0o, const py::object& c0o,
                      const py::object& wio, const py::object& who, const py::object& bio, const py::object& bho,
                      const py::object& lengths, const Flag& reverse_a, const Flag& save_a) {
  const char* fn = "rnn_forward";
  const std::string mode = mode_a.get(fn, "mode");
  const bool reverse = reverse_a.get(fn, "reverse");
  const bool save = save_a.get(fn, "save");
  auto x0 = to_array(xo, fn, "input"), h00 = to_array(h0o, fn, "hx"), wi0 = to_array(wio, fn, "weight_ih"),
       wh0 = to_array(who, fn, "weight_hh");
  return by_dtype(x0, fn, "input", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const RnnArgs a = rnn_check(mode, x0, h00, c0o, wi0, wh0, bio, bho, lengths, reverse, fn);
    const RnnDims& d = a.d;
    const int64_t G = rnn_gates(d.mode);
    const bool lstm = d.mode == RnnMode::LSTM, gru = d.mode == RnnMode::GRU;
    auto x = carr<T>::ensure(x0), h0 = carr<T>::ensure(h00), wi = carr<T>::ensure(wi0), wh = carr<T>::ensure(wh0);
    carr<T> c0k, bik, bhk;
    const T* c0 = lstm ? opt<T>(c0o, c0k) : nullptr;
    const T* bi = opt<T>(bio, bik);
    const T* bh = opt<T>(bho, bhk);
    py::array out = empty<T>({d.T, d.B, d.H}), hn = empty<T>({d.B, d.H});
    Out<T> cn(lstm, {d.B, d.H}), gates(save, {d.T, d.B, G * d.H}), cells(lstm && save, {d.T, d.B, d.H}),
        hnl(gru && save, {d.T, d.B, d.H});
    {
      py::gil_scoped_release nogil;
      fastdl::rnn_forward<T>(d, x.data(), h0.data(), c0, wi.data(), wh.data(), bi, bh, ptr<T>(out), ptr<T>(hn), cn.p(),
                             gates.p(), cells.p(), hnl.p());
    }
    return py::make_tuple(out, hn, cn.obj(), gates.obj(), cells.obj(), hnl.obj());
  });
}

// Several directions (or independent layers) over the same input at once: each a tuple (hx, cx,
// weight_ih, weight_hh, bias_ih, bias_hh, reverse).  With at least as many threads as directions they
// run side by side, one thread each, with no barrier between their steps (a bidirectional layer at 2
// threads: each direction alone on its core instead of both cores meeting at every step of each);
// with fewer, one after the other with every thread.  -> a list of rnn_forward's tuples.
py::list rnn_forward_dirs(const Str& mode_a, const py::object& xo, const py::object& dirs_o, const py::object& lengths,
                          const Flag& save_a) {
  const char* fn = "rnn_forward_dirs";
  const std::string mode = mode_a.get(fn, "mode");
  const bool save = save_a.get(fn, "save");
  if (!py::isinstance<py::list>(dirs_o) && !py::isinstance<py::tuple>(dirs_o))
    type_error(std::string(fn) + ": directions must be a list of (hx, cx, weight_ih, weight_hh, bias_ih, bias_hh, "
                                 "reverse) tuples, got " + std::string(py::str(py::type::of(dirs_o).attr("__name__"))));
  const py::sequence dirs = dirs_o;
  std::vector<py::tuple> items;
  for (size_t k = 0; k < dirs.size(); ++k) {
    py::object it = dirs[k];
    if (!py::isinstance<py::tuple>(it) || py::len(it) != 7)
      type_error(std::string(fn) + ": directions[" + std::to_string(k) +
                 "] must be a tuple (hx, cx, weight_ih, weight_hh, bias_ih, bias_hh, reverse)");
    items.push_back(it.cast<py::tuple>());
  }
  auto x0 = to_array(xo, fn, "input");
  return by_dtype(x0, fn, "input", [&](auto tag) {
    using T = typename decltype(tag)::type;
    struct Dir {
      RnnArgs a;
      carr<T> h0, wi, wh, c0k, bik, bhk;
      const T *c0, *bi, *bh;
      py::array out, hn;
      std::unique_ptr<Out<T>> cn, gates, cells, hnl;
    };
    std::vector<std::unique_ptr<Dir>> ds;
    auto x = carr<T>::ensure(x0);
    for (const py::tuple& it : items) {
      auto dir = std::make_unique<Dir>();
      const bool reverse = Flag{py::object(it[6])}.get(fn, "reverse");
      auto h00 = to_array(it[0], fn, "hx"), wi0 = to_array(it[2], fn, "weight_ih"), wh0 = to_array(it[3], fn, "weight_hh");
      dir->a = rnn_check(mode, x0, h00, it[1], wi0, wh0, it[4], it[5], lengths, reverse, fn);
      const RnnDims& d = dir->a.d;
      const bool lstm = d.mode == RnnMode::LSTM, gru = d.mode == RnnMode::GRU;
      dir->h0 = carr<T>::ensure(h00);
      dir->wi = carr<T>::ensure(wi0);
      dir->wh = carr<T>::ensure(wh0);
      dir->c0 = lstm ? opt<T>(it[1], dir->c0k) : nullptr;
      dir->bi = opt<T>(it[4], dir->bik);
      dir->bh = opt<T>(it[5], dir->bhk);
      dir->out = empty<T>({d.T, d.B, d.H});
      dir->hn = empty<T>({d.B, d.H});
      dir->cn = std::make_unique<Out<T>>(lstm, std::vector<py::ssize_t>{d.B, d.H});
      dir->gates = std::make_unique<Out<T>>(save, std::vector<py::ssize_t>{d.T, d.B, rnn_gates(d.mode) * d.H});
      dir->cells = std::make_unique<Out<T>>(lstm && save, std::vector<py::ssize_t>{d.T, d.B, d.H});
      dir->hnl = std::make_unique<Out<T>>(gru && save, std::vector<py::ssize_t>{d.T, d.B, d.H});
      ds.push_back(std::move(dir));
    }
    {
      py::gil_scoped_release nogil;
      auto run = [&](Dir& r) {
        fastdl::rnn_forward<T>(r.a.d, x.data(), r.h0.data(), r.c0, r.wi.data(), r.wh.data(), r.bi, r.bh, ptr<T>(r.out),
                               ptr<T>(r.hn), r.cn->p(), r.gates->p(), r.cells->p(), r.hnl->p());
      };
      const int64_t n = int64_t(ds.size());
      if (n > 1 && num_threads() >= n)
        parallel_parts(n, [&](int64_t p, int64_t) { run(*ds[p]); });  // each part serial inside
      else
        for (auto& r : ds) run(*r);
    }
    py::list res;
    for (auto& r : ds)
      res.append(py::make_tuple(r->out, r->hn, r->cn->obj(), r->gates->obj(), r->cells->obj(), r->hnl->obj()));
    return res;
  });
}

py::tuple rnn_backward(const Str& mode_a, const py::object& douto, const py::object& dhno,
                       const py::object& dcno, const py::object& xo, const py::object& h0o, const py::object& c0o,
                       const py::object& wio, const py::object& who, const py::object& bio, const py::object& bho,
                       const py::object& outo, const py::object& go, const py::object& cso, const py::object& hnlo,
                       const py::object& lengths, const Flag& reverse_a, const Flag& need_input_a, const Flag& need_hidden_a,
                       const Flag& need_weights_a) {
  const char* fn = "rnn_backward";
  const std::string mode = mode_a.get(fn, "mode");
  const bool reverse = reverse_a.get(fn, "reverse");
  const bool need_input = need_input_a.get(fn, "need_input");
  const bool need_hidden = need_hidden_a.get(fn, "need_hidden");
  const bool need_weights = need_weights_a.get(fn, "need_weights");
  auto x0 = to_array(xo, fn, "input"), h00 = to_array(h0o, fn, "hx"), wi0 = to_array(wio, fn, "weight_ih"),
       wh0 = to_array(who, fn, "weight_hh"), out0 = to_array(outo, fn, "output"), g0 = to_array(go, fn, "gates");
  return by_dtype(x0, fn, "input", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const RnnArgs a = rnn_check(mode, x0, h00, c0o, wi0, wh0, bio, bho, lengths, reverse, fn);
    const RnnDims& d = a.d;
    const int64_t G = rnn_gates(d.mode);
    const bool lstm = d.mode == RnnMode::LSTM, gru = d.mode == RnnMode::GRU;
    // saved arrays and the output gradients (None: that output was not used), shapes checked
    auto saved = [&](const py::object& o, const char* name, std::vector<py::ssize_t> shp, bool optional,
                     carr<T>& keep) -> const T* {
      if (o.is_none()) {
        if (optional) return nullptr;
        type_error(std::string(fn) + ": " + name + " must be an array, got None");
      }
      py::array v = to_array(o, fn, name);
      same_dtype(x0, "input", v, name, fn);
      want_shape(v, shp, name, fn);
      keep = carr<T>::ensure(v);
      return keep.data();
    };
    carr<T> doutk, dhnk, dcnk, outk, gk, csk, hnlk, c0k;
    const T* dout = saved(douto, "dout", {d.T, d.B, d.H}, true, doutk);
    const T* dhn = saved(dhno, "dhn", {d.B, d.H}, true, dhnk);
    const T* dcn = lstm ? saved(dcno, "dcn", {d.B, d.H}, true, dcnk) : nullptr;
    const T* out = saved(out0, "output", {d.T, d.B, d.H}, false, outk);
    const T* gates = saved(g0, "gates", {d.T, d.B, G * d.H}, false, gk);
    const T* cells = lstm ? saved(cso, "cells", {d.T, d.B, d.H}, false, csk) : nullptr;
    const T* hnl = gru ? saved(hnlo, "hn_linear", {d.T, d.B, d.H}, false, hnlk) : nullptr;
    const T* c0 = lstm ? opt<T>(c0o, c0k) : nullptr;
    auto x = carr<T>::ensure(x0), h0 = carr<T>::ensure(h00), wi = carr<T>::ensure(wi0), wh = carr<T>::ensure(wh0);
    const bool has_bias = !bio.is_none();
    Out<T> dx(need_input, {d.T, d.B, d.I}), dh0(need_hidden, {d.B, d.H}), dc0(need_hidden && lstm, {d.B, d.H}),
        dwi(need_weights, {G * d.H, d.I}), dwh(need_weights, {G * d.H, d.H}), dbi(need_weights && has_bias, {G * d.H}),
        dbh(need_weights && has_bias, {G * d.H});
    {
      py::gil_scoped_release nogil;
      fastdl::rnn_backward<T>(d, dout, dhn, dcn, x.data(), h0.data(), c0, wi.data(), wh.data(), out, gates, cells, hnl,
                              dx.p(), dh0.p(), dc0.p(), dwi.p(), dwh.p(), dbi.p(), dbh.p());
    }
    return py::make_tuple(dx.obj(), dh0.obj(), dc0.obj(), dwi.obj(), dwh.obj(), dbi.obj(), dbh.obj());
  });
}

}  // namespace

void bind_rnn(py::module_& m) {
  m.def("rnn_forward", &rnn_forward, py::arg("mode"), py::arg("input"), py::arg("hx"), py::arg("cx"),
        py::arg("weight_ih"), py::arg("weight_hh"), py::arg("bias_ih"), py::arg("bias_hh"), py::arg("lengths"),
        py::arg("reverse"), py::arg("save") = true);
  m.def("rnn_forward_dirs", &rnn_forward_dirs, py::arg("mode"), py::arg("input"), py::arg("directions"),
        py::arg("lengths"), py::arg("save") = true);
  m.def("rnn_backward", &rnn_backward, py::arg("mode"), py::arg("dout"), py::arg("dhn"), py::arg("dcn"),
        py::arg("input"), py::arg("hx"), py::arg("cx"), py::arg("weight_ih"), py::arg("weight_hh"), py::arg("bias_ih"),
        py::arg("bias_hh"), py::arg("output"), py::arg("gates"), py::arg("cells"), py::arg("hn_linear"),
        py::arg("lengths"), py::arg("reverse"), py::arg("need_input") = true, py::arg("need_hidden") = true,
        py::arg("need_weights") = true);
}

}  // namespace fastdl::bind
