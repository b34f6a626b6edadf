"""The kernel table's contract: both backends expose the same functions with the same parameters,
and reject the same bad arguments with the same exception type, naming the same argument."""
from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from fastdl import _C, reference

f32 = lambda *s: np.ones(s, np.float32)  # noqa: E731
f64 = lambda *s: np.ones(s, np.float64)  # noqa: E731
i64 = lambda *s: np.zeros(s, np.int64)  # noqa: E731
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def native_params(fn) -> list:
    """[(name, default repr or None)] from a pybind11 function's signature line."""
    sig = fn.__doc__.splitlines()[0]
    inner = sig[sig.index("(") + 1:sig.rindex(") ->")]
    out = []
    for part in re.split(r",\s*(?![^\[\]]*\])", inner):
        name, _, rest = part.partition(":")
        default = rest.split("=", 1)[1].strip() if "=" in rest else None
        out.append((name.strip(), default))
    return out


def reference_params(fn) -> list:
    return [(p.name, None if p.default is inspect.Parameter.empty else repr(p.default))
            for p in inspect.signature(fn).parameters.values()]


@pytest.mark.parametrize("name", reference.OPS + reference.TRAINERS)
def test_both_backends_have_the_same_signature(name):
    assert hasattr(_C, name), f"fastdl._C lacks {name}"
    assert native_params(getattr(_C, name)) == reference_params(getattr(reference, name))


def test_stub_file_matches_the_module():
    """fastdl/_C.pyi is what tools/make_stubs.py writes for the module as built."""
    out = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "make_stubs.py"), "--check"],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr


# (op, args, exception type, text the message must hold: the argument's name)
BAD = [
    ("matmul", (np.ones((2, 2), np.int64), np.ones((2, 2), np.int64)), TypeError, "a must be float32 or float64"),
    ("matmul", (f32(2, 3), f64(3, 2)), TypeError, "b has dtype"),
    ("matmul", (f32(2, 3), f32(4, 2)), ValueError, "inner dimensions"),
    ("matmul", (f32(2, 3, 4, 5), f32(5, 2)), ValueError, "a must have 2 to 3 dimensions"),
    ("matmul", (f32(2, 3, 4), f32(3, 4, 2)), ValueError, "do not broadcast"),
    ("matmul_backward", (f32(3, 3), f32(2, 3), f32(3, 4)), ValueError, "gy has shape"),
    ("matmul_backward", (f64(2, 4), f32(2, 3), f32(3, 4)), TypeError, "gy has dtype"),
    ("linear_forward", (f32(4, 3), f32(2, 5)), ValueError, "weight"),
    ("linear_forward", (f32(4, 3), f32(2, 3), f32(3)), ValueError, "bias has shape"),
    ("linear_forward", (f32(4, 3), f32(2, 3), f64(2)), TypeError, "bias has dtype"),
    ("linear_backward", (f32(4, 3), f32(4, 3), f32(2, 3)), ValueError, "gy has shape"),
    ("linear_backward", (f64(4, 2), f32(4, 3), f32(2, 3)), TypeError, "gy has dtype"),
    ("linear_backward", (f32(4, 2), f32(4, 3, 1), f32(2, 3)), ValueError, "x must have 2 dimensions"),
    ("relu_forward", (np.array(["a"]),), TypeError, "x must be float32"),
    ("tanh_backward", (f32(3), f32(4)), ValueError, "gy has shape"),
    ("tanh_backward", (f64(3), f32(3)), TypeError, "gy has dtype"),
    ("sigmoid_backward", (f32(3), np.ones(3, np.int32)), TypeError, "y must be float32"),
    ("dropout_mask", ((2, 2), 1.5, 0), ValueError, "p must be in"),
    ("dropout_mask", ((2, -2), 0.5, 0), ValueError, "negative"),
    ("dropout_apply", (f32(2, 3), np.ones((3, 2), bool), 2.0), ValueError, "mask has shape"),
    ("dropout_apply", (f32(2, 3), f32(2, 3), 2.0), TypeError, "mask must be bool or integer"),
    ("softmax_forward", (f32(2, 3), 2), IndexError, "axis 2"),
    ("softmax_backward", (f32(2, 3), f32(3, 2), 1), ValueError, "gy has shape"),
    ("log_softmax_backward", (f64(2, 3), f32(2, 3), 1), TypeError, "gy has dtype"),
    ("cross_entropy_forward", (f32(2, 3), np.array([0, 5])), IndexError, "target[1] = 5"),
    ("cross_entropy_forward", (f32(2, 3), np.array([0, -1])), IndexError, "target"),
    ("cross_entropy_forward", (f32(2, 3), np.array([0.0, 1.0])), TypeError, "integer class indices"),
    ("cross_entropy_forward", (f32(2, 3), np.array([0, 1, 2])), ValueError, "target has shape"),
    ("cross_entropy_forward", (f32(2, 3), np.array([0, 1]), -100, 1.5), ValueError, "label_smoothing"),
    ("cross_entropy_forward", (f32(2, 3, 1), np.array([0, 1])), ValueError, "logits must have 2 dimensions"),
    ("cross_entropy_backward", (f32(2), f32(2, 3), np.array([0, 1]), f32(3)), ValueError, "lse has shape"),
    ("bce_with_logits_forward", (f32(2, 3), f32(2, 3), np.ones((3, 2), bool)), ValueError, "mask has shape"),
    ("bce_with_logits_forward", (f32(2, 3), f32(2, 3), f32(2, 3)), TypeError, "mask must be bool or integer"),
    ("bce_with_logits_forward", (f32(2, 3), f32(3, 2)), ValueError, "target has shape"),
    ("bce_with_logits_backward", (f32(3, 2), f32(2, 3), f32(2, 3)), ValueError, "gloss has shape"),
    ("mse_forward", (f32(2, 3), f32(3, 2)), ValueError, "target has shape"),
    ("mse_backward", (1.0, f32(2, 3), f64(2, 3)), TypeError, "target has dtype"),
    ("conv2d_forward", (f32(1, 2, 5, 5), f32(3, 2, 3), None, (1, 1), (0, 0, 0, 0), (1, 1), 1), ValueError,
     "weight must have 4 dimensions"),
    ("conv2d_forward", (f32(1, 2, 5, 5), f32(3, 2, 3, 3), f32(2), (1, 1), (0, 0, 0, 0), (1, 1), 1), ValueError,
     "bias has shape"),
    ("conv2d_forward", (f32(1, 2, 5, 5), f32(3, 2, 3, 3), None, (0, 1), (0, 0, 0, 0), (1, 1), 1), ValueError,
     "stride must be >= 1"),
    ("conv2d_forward", (f32(1, 2, 5, 5), f32(3, 2, 3, 3), None, (1, 1), (0, 0, 0, 0), (1, 1), 0), ValueError,
     "groups must be >= 1"),
    ("conv2d_forward", (f32(1, 4, 5, 5), f32(3, 2, 3, 3), None, (1, 1), (0, 0, 0, 0), (1, 1), 1), ValueError,
     "input channels"),
    ("conv2d_forward", (f32(1, 2, 2, 2), f32(3, 2, 3, 3), None, (1, 1), (0, 0, 0, 0), (1, 1), 1), ValueError,
     "larger than the padded input"),
    ("conv2d_backward", (f32(1, 3, 2, 2), f32(1, 2, 5, 5), f32(3, 2, 3, 3), (1, 1), (0, 0, 0, 0), (1, 1), 1),
     ValueError, "gy has shape"),
    ("max_pool2d_forward", (f32(5, 5), (2, 2), (2, 2), (0, 0), (1, 1), False), ValueError, "input must be"),
    ("max_pool2d_forward", (f32(1, 5, 5), (0, 2), (2, 2), (0, 0), (1, 1), False), ValueError, "kernel_size"),
    ("max_pool2d_forward", (f32(1, 5, 5), (2, 2), (2, 2), (2, 0), (1, 1), False), ValueError, "padding"),
    ("max_pool2d_backward", (f32(1, 2, 2), i64(1, 2, 3), (4, 4)), ValueError, "indices has shape"),
    ("max_pool2d_backward", (f32(1, 2, 2), i64(1, 2, 2) + 16, (4, 4)), IndexError, "indices"),
    ("avg_pool2d_forward", (f32(1, 5, 5), (2, 2), (0, 2), (0, 0), False, True), ValueError, "stride"),
    ("avg_pool2d_backward", (f32(1, 3, 3), (4, 4), (2, 2), (2, 2), (0, 0), False, True), ValueError, "gy"),
    ("adaptive_avg_pool2d_forward", (f32(1, 5, 5), (0, 2)), ValueError, "output_size"),
    ("adaptive_avg_pool2d_backward", (f32(1, 2, 2), (0, 4)), ValueError, "input_size must be >= 1"),
    ("batch_norm_forward", (f32(4), None, None, None, None, True, 0.1, 1e-5), ValueError, "input must be"),
    ("batch_norm_forward", (f32(4, 3), f32(2), None, None, None, True, 0.1, 1e-5), ValueError, "weight has shape"),
    ("batch_norm_forward", (f32(4, 3), None, None, None, None, True, 0.1, 0.0), ValueError, "eps"),
    ("batch_norm_forward", (f32(1, 3), None, None, None, None, True, 0.1, 1e-5), ValueError, "more than 1 value"),
    ("batch_norm_forward", (f32(4, 3), None, None, None, None, False, 0.1, 1e-5), ValueError, "running_mean"),
    ("batch_norm_forward", (f32(4, 3), None, None, f32(3).tolist(), f32(3), True, 0.1, 1e-5), TypeError,
     "running_mean must be a NumPy array"),
    ("batch_norm_backward", (f32(4, 2), f32(4, 3), None, f32(3), f32(3), True), ValueError, "gy has shape"),
    ("batch_norm_forward", (f32(4, 3), None, None, f32(3), np.array(["a", "b", "c"]), False, 0.1, 1e-5), TypeError,
     "running_var must be convertible"),
    ("sgd_step", (f32(3), np.array(["abc"]), None, 0.1, 0.0, 0.0, 0.0, False, False, True), TypeError,
     "grad must be convertible"),
    ("layer_norm_forward", (f32(4, 3), [4], None, None, 1e-5), ValueError, "normalized_shape"),
    ("layer_norm_forward", (f32(4, 3), [3], f32(4), None, 1e-5), ValueError, "weight must have normalized_shape"),
    ("layer_norm_backward", (f32(4, 3), f32(4, 3), [3], None, f32(3), f32(4)), ValueError, "mean and rstd"),
    ("group_norm_forward", (f32(2, 6, 3), 4, None, None, 1e-5), ValueError, "num_groups must be >= 1 and divide C=6"),
    ("group_norm_forward", (f32(2, 6, 3), 3, f32(5), None, 1e-5), ValueError, "weight must have one entry per channel"),
    ("group_norm_forward", (f32(6), 1, None, None, 1e-5), ValueError, "input must be (N, C, ...)"),
    ("group_norm_forward", (f32(2, 6), 3, None, None, 0.0), ValueError, "eps must be > 0"),
    ("group_norm_backward", (f32(2, 6, 3), f32(2, 6, 3), 3, None, f32(6), f32(5)), ValueError, "mean and rstd"),
    ("group_norm_backward", (f32(2, 6, 2), f32(2, 6, 3), 3, None, f32(6), f32(6)), ValueError, "gy has shape"),
    ("embedding_forward", (f32(5, 2), np.array([0, 5])), IndexError, "index 5"),
    ("embedding_forward", (f32(5, 2), np.array([0.0])), TypeError, "indices must hold integers"),
    ("embedding_forward", (f32(5), np.array([0])), ValueError, "weight must have 2 dimensions"),
    ("embedding_backward", (f32(2, 3), np.array([0, 1]), 0), ValueError, "num_embeddings"),
    ("embedding_backward", (f32(3, 3), np.array([0, 1]), 4), ValueError, "gy has shape"),
    ("rnn_forward", ("gru2", f32(2, 1, 3), f32(1, 4), None, f32(12, 3), f32(12, 4), None, None, None, False),
     ValueError, "mode must be"),
    ("rnn_forward", ("gru", f32(2, 1, 3), f32(1, 4), None, f32(12, 2), f32(12, 4), None, None, None, False),
     ValueError, "weight_ih has shape"),
    ("rnn_forward", ("lstm", f32(2, 1, 3), f32(1, 4), None, f32(16, 3), f32(16, 4), None, None, None, False),
     TypeError, "cx"),
    ("rnn_forward", ("gru", f32(2, 1, 3), f32(1, 4), None, f32(12, 3), f32(12, 4), f32(12), None, None, False),
     ValueError, "bias_ih and bias_hh"),
    ("rnn_forward", ("gru", f32(2, 1, 3), f32(1, 4), None, f32(12, 3), f32(12, 4), None, None, np.array([3]),
                     False), ValueError, "lengths[0] = 3"),
    ("rnn_forward", ("gru", f32(2, 1, 3), f64(1, 4), None, f32(12, 3), f32(12, 4), None, None, None, False),
     TypeError, "hx has dtype"),
    ("rnn_backward", ("rnn_tanh", f32(2, 1, 5), None, None, f32(2, 1, 3), f32(1, 4), None, f32(4, 3), f32(4, 4),
                      None, None, f32(2, 1, 4), f32(2, 1, 4), None, None, None, False), ValueError, "dout has shape"),
    ("rnn_backward", ("rnn_tanh", None, None, None, f32(2, 1, 3), f32(1, 4), None, f32(4, 3), f32(4, 4),
                      None, None, f32(2, 1, 4), f32(2, 1, 5), None, None, None, False), ValueError,
     "gates has shape"),
    ("sgd_step", (f32(3), f32(4), None, 0.1, 0.0, 0.0, 0.0, False, False, True), ValueError, "grad has shape (4,), the parameter has shape (3,)"),
    ("sgd_step", (f32(3).tolist(), f32(3), None, 0.1, 0.0, 0.0, 0.0, False, False, True), TypeError,
     "param must be a NumPy array"),
    ("sgd_step", (f32(3), f32(3), f64(3), 0.1, 0.9, 0.0, 0.0, False, False, False), TypeError,
     "momentum_buffer has dtype"),
    ("adam_step", (f32(3), f32(3), f32(3), f32(2), None, 0.1, 0.9, 0.999, 1e-8, 0.0, False, False, 1), ValueError,
     "exp_avg_sq has 2 elements"),
    ("adam_step", (f32(3), f32(3), f32(3), f32(3), None, 0.1, 0.9, 0.999, 1e-8, 0.0, False, False, 0), ValueError,
     "step must be >= 1"),
    ("adam_step", (f32(3), f32(3), f32(3), f32(3), None, 0.1, 1.0, 0.999, 1e-8, 0.0, False, False, 1), ValueError,
     "betas"),
    ("rmsprop_step", (f32(3), f32(3), f32(3)[::-1], None, None, 0.1, 0.99, 1e-8, 0.0, 0.0, False), ValueError,
     "square_avg must be C-contiguous"),
    ("rmsprop_step", (f32(3), f32(3), None, None, None, 0.1, 0.99, 1e-8, 0.0, 0.0, False), TypeError,
     "square_avg must be an array"),
    ("conv2d_forward", (f32(1, 1, 10, 10), f32(1, 1, 3, 3), None, (1, 1), (0, 0, 0, 0), (2**62, 1), 1), ValueError,
     "too large"),
    ("conv2d_forward", (f32(1, 1, 10, 10), f32(1, 1, 3, 3), None, (1, 1), (2**62, 0, 2**62, 0), (1, 1), 1),
     ValueError, "too large"),
    ("conv2d_forward", (f32(1, 1, 10, 10), f32(1, 1, 3, 3), None, (1, 1), (2**40, 0, 0, 0), (1, 1), 1), ValueError,
     "GiB this machine has available"),
    ("max_pool2d_forward", (f32(1, 1, 0, 3), (2, 2), (1, 1), (1, 1), (1, 1), False), ValueError, "empty channel"),
    ("avg_pool2d_forward", (f32(1, 1, 0, 3), (2, 2), (1, 1), (1, 1), False, True), ValueError, "empty channel"),
    ("adaptive_avg_pool2d_forward", (f32(1, 0, 3, 3), (2, 2)), ValueError, "empty channel"),
    ("adaptive_avg_pool2d_backward", (f32(1, 2, 0), (3, 4)), ValueError, "empty pooled size"),
    ("max_pool2d_backward", (f32(1, 1, 2, 2), np.zeros((1, 1, 2, 2), np.int64), (0, 3)), ValueError,
     "input_size must be >= 1"),
    ("avg_pool2d_backward", (f32(1, 1, 2, 2), (0, 4), (2, 2), (2, 2), (0, 0), False, True), ValueError,
     "input_size must be >= 1"),
    ("batch_norm_forward", (f32(0, 3), f32(3), f32(3), f32(3), np.ones(3, np.float32), True, 0.1, 1e-5), ValueError,
     "more than 1 value per channel"),
    ("sgd_step", (f32(4, 3), f32(3, 4), None, 0.1, 0.0, 0.0, 0.0, False, False, True), ValueError,
     "grad has shape (3, 4), the parameter has shape (4, 3)"),
    ("adam_step", (f32(4, 3), f32(4, 3), f32(1, 4, 3), f32(4, 3), None, 1e-3, 0.9, 0.999, 1e-8, 0.0, False, False, 1),
     ValueError, "exp_avg has shape (1, 4, 3)"),
    ("rmsprop_step", (f32(3), f32(3), np.ones(3, np.float32), None, None, float("inf"), 0.9, 1e-8, 0.0, 0.0, False),
     ValueError, "lr must be finite"),
    ("sgd_step", (f32(3), f32(3), None, "0.1", 0.0, 0.0, 0.0, False, False, True), TypeError, "lr must be a number"),
    ("softmax_forward", (f32(2, 3), 1.5), TypeError, "axis must be an integer, got 1.5"),
    ("max_pool2d_forward", (f32(1, 1, 4, 4), (2, "x"), (1, 1), (0, 0), (1, 1), False), TypeError,
     "kernel_size must be an integer"),
    ("conv2d_forward", (f32(1, 1, 4, 4), f32(1, 1, 2, 2), None, (1, 1), (0, 0, 0), (1, 1), 1), ValueError,
     "padding must be four integers"),
    ("dropout_mask", ((2, 2), 0.5, -1), ValueError, "seed must be >= 0"),
    ("rnn_forward", (3, f32(2, 1, 3), f32(1, 4), None, f32(4, 3), f32(4, 4), None, None, None, False), TypeError,
     "mode must be a string"),
    ("attention_forward", (f32(2, 3, 4), f32(2, 5, 4), f32(2, 5, 4), None, 1, False, 1e300), ValueError,
     "out of range for the inputs' dtype"),
    ("attention_forward", (f32(2, 3, 4), f32(2, 5, 3), f32(2, 5, 4)), ValueError, "k has shape"),
    ("attention_forward", (f32(2, 3, 4), f32(2, 5, 4), f32(2, 6, 4)), ValueError, "v has shape"),
    ("attention_forward", (f32(2, 3, 4), f64(2, 5, 4), f32(2, 5, 4)), TypeError, "k has dtype"),
    ("attention_forward", (f32(3, 4), f32(5, 4), f32(5, 4)), ValueError, "q must have 3 dimensions"),
    ("attention_forward", (f32(2, 3, 4), f32(2, 5, 4), f32(2, 5, 4), np.ones((1, 3, 5), bool)), TypeError,
     "mask must be an additive mask"),
    ("attention_forward", (f32(2, 3, 4), f32(2, 5, 4), f32(2, 5, 4), f32(1, 2, 5)), ValueError, "mask must have shape"),
    ("attention_forward", (f32(2, 3, 4), f32(2, 5, 4), f32(2, 5, 4), f32(1, 3, 5), 0), ValueError, "mask_div"),
    ("attention_forward", (f32(2, 3, 4), f32(2, 5, 4), f32(2, 5, 4), None, 1, False, float("nan")), ValueError,
     "scale must be finite"),
    ("attention_forward", (f32(2, 3, 4), f32(2, 5, 4), f32(2, 5, 4), None, 1, False, None, 1.0), ValueError,
     "dropout_p must be in"),
    ("attention_forward", (f32(2, 3, 4), f32(2, 5, 4), f32(2, 5, 4), None, 1, False, None, 0.1, -1), ValueError,
     "seed must be"),
    ("attention_backward", (f32(2, 3, 5), f32(2, 3, 4), f32(2, 5, 4), f32(2, 5, 4), f32(2, 3, 4), f32(2, 3)),
     ValueError, "gout has shape"),
    ("attention_backward", (f32(2, 3, 4), f32(2, 3, 4), f32(2, 5, 4), f32(2, 5, 4), f32(2, 3, 4), f32(2, 4)),
     ValueError, "lse has shape"),
    ("masked_softmax_forward", (f32(2, 3), np.ones((3, 2), bool)), ValueError, "mask has shape"),
    ("masked_softmax_forward", (np.ones(3, np.int64),), TypeError, "x must be float32"),
    ("masked_softmax_backward", (f64(2, 3), f32(2, 3)), TypeError, "gy has dtype"),
    ("additive_attention_forward", (f32(2, 3, 4), f32(2, 5, 3), f32(4)), ValueError, "kp has shape"),
    ("additive_attention_forward", (f32(2, 3, 4), f32(2, 5, 4), f32(5)), ValueError, "v has shape"),
    ("additive_attention_backward", (f32(2, 3, 4), f32(2, 3, 4), f32(2, 5, 4), f32(4)), ValueError, "gs has shape"),
]


@pytest.mark.parametrize("case", BAD, ids=[f"{c[0]}-{i}" for i, c in enumerate(BAD)])
@pytest.mark.parametrize("backend", ["native", "reference"])
def test_bad_arguments_raise_the_same_error_on_both_backends(case, backend):
    op, args, exc, text = case
    fn = getattr(_C if backend == "native" else reference, op)
    with pytest.raises(exc) as info:
        fn(*args)
    assert type(info.value) is exc, f"{op} raised {type(info.value).__name__}: {info.value}"
    assert text in str(info.value), f"{op}: {info.value!r} does not say {text!r}"
    assert str(info.value).startswith(op + ":"), f"{op}: the message does not name the function: {info.value}"
