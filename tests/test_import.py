"""Every extension module imports, and each backend provides the whole kernel table."""
from __future__ import annotations

import importlib
import os
import subprocess
import sys
import tempfile

import pytest

import fastdl
from fastdl import reference
from helpers import run_cli


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
    out = run_cli("info", check=True).stdout
    assert "BLAS: OpenBLAS" in out and "threads:" in out
    assert f"CUDA: {fastdl.cuda.status()}\n" in out  # "not built", or built and for which GPUs
    res = run_cli("selftest")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "FAIL" not in res.stdout and res.stdout.count("pass") == 2 * len(reference.OPS)


def test_portable_simd_build_passes_selftest():
    """The baseline (non-AVX2) kernels are what older CPUs run: check them here too."""
    env = {**os.environ, "FASTDL_SIMD": "baseline"}
    assert "baseline build" in run_cli("info", env=env, check=True).stdout
    res = run_cli("selftest", env=env)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize("backend", ["reference"])
def test_environment_variable_selects_backend(backend):
    code = "import fastdl; print(fastdl.get_backend())"
    env = {**os.environ, "FASTDL_BACKEND": backend}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True,
                         cwd=tempfile.gettempdir())
    assert out.stdout.strip() == backend
