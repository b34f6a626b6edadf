"""Every extension module imports, and each backend provides the whole kernel table."""
from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import fastdl
from fastdl import reference


def test_extension_modules_import():
    for name in ("fastdl._C",):
        mod = importlib.import_module(name)
        assert mod.get_num_threads() >= 1


def test_kernel_tables_complete():
    for name in reference.OPS:
        assert callable(getattr(fastdl._C, name)), name
        assert callable(getattr(reference, name)), name


def test_threads_setting_round_trips():
    n = fastdl.get_num_threads()
    fastdl.set_num_threads(1)
    assert fastdl.get_num_threads() == 1
    fastdl.set_num_threads(n)
    assert fastdl.get_num_threads() == n


def test_info_and_selftest_cli():
    out = subprocess.run([sys.executable, "-m", "fastdl", "info"], capture_output=True, text=True, check=True).stdout
    assert "BLAS: OpenBLAS" in out and "OpenMP" in out and "CUDA: not built" in out
    res = subprocess.run([sys.executable, "-m", "fastdl", "selftest"], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "FAIL" not in res.stdout and res.stdout.count("pass") == 2 * len(reference.OPS)


@pytest.mark.parametrize("backend", ["reference"])
def test_environment_variable_selects_backend(backend):
    code = "import fastdl; print(fastdl.get_backend())"
    env = {**__import__("os").environ, "FASTDL_BACKEND": backend}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == backend
