"""Checkpoints without pickle: ``save(mapping, path)`` / ``load(path)``.

The file is a ``.npz`` (a zip of ``.npy`` arrays, read with
``allow_pickle=False``).  Arrays and Tensors become members ``a0, a1, ...``;
the nesting, key types and plain values (numbers, strings, bools, None,
lists, tuples) go into a JSON manifest stored as the member ``__fastdl__``.
Writes are atomic: a temporary file in the same folder, fsync, rename.  A
truncated, foreign or pickle-carrying file raises ``ValueError``.
"""
from __future__ import annotations

import json
import os
import tempfile
import zipfile
from collections import OrderedDict
from collections.abc import Mapping

import numpy as np

from .tensor import Tensor

FORMAT = "fastdl-checkpoint"
VERSION = 1


def _encode(obj, arrays: dict):
    if isinstance(obj, Tensor):
        key = f"a{len(arrays)}"
        arrays[key] = obj.data
        return {"$t": key}
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            raise TypeError("save: object arrays cannot be saved without pickle")
        key = f"a{len(arrays)}"
        arrays[key] = obj
        return {"$a": key}
    if isinstance(obj, np.generic):
        return _encode(obj.item(), arrays)
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        return {"$f": repr(obj)}  # keeps nan/inf and every bit of the value
    if isinstance(obj, Mapping):
        items = []
        for k, v in obj.items():
            if not isinstance(k, (str, int)) or isinstance(k, bool):
                raise TypeError(f"save: mapping keys must be str or int, got {type(k).__name__}")
            items.append([k, _encode(v, arrays)])
        return {"$m": items}
    if isinstance(obj, (list, tuple)):
        return {"$l" if isinstance(obj, list) else "$tu": [_encode(v, arrays) for v in obj]}
    raise TypeError(f"save: cannot save a value of type {type(obj).__name__} (arrays, Tensors, "
                    "numbers, strings, lists and mappings only)")


def _decode(obj, arrays):
    if isinstance(obj, dict):
        if "$a" in obj:
            return arrays[obj["$a"]]
        if "$t" in obj:
            return Tensor(arrays[obj["$t"]])
        if "$f" in obj:
            return float(obj["$f"])
        if "$m" in obj:
            return OrderedDict((k, _decode(v, arrays)) for k, v in obj["$m"])
        if "$l" in obj:
            return [_decode(v, arrays) for v in obj["$l"]]
        if "$tu" in obj:
            return tuple(_decode(v, arrays) for v in obj["$tu"])
        raise ValueError("load: the checkpoint's manifest is corrupt")
    return obj


def save(obj: Mapping, path) -> None:
    """Save a (nested) mapping of names to arrays, Tensors and plain values, atomically."""
    if not isinstance(obj, Mapping):
        raise TypeError(f"save: obj must be a mapping, got {type(obj).__name__}")
    arrays: dict = {}
    manifest = {"format": FORMAT, "version": VERSION, "root": _encode(obj, arrays)}
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            meta = np.frombuffer(json.dumps(manifest).encode("utf-8"), dtype=np.uint8)
            np.savez(f, __fastdl__=meta, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def load(path):
    """Load what :func:`save` wrote; a truncated, foreign or pickled file raises ValueError."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"load: no such checkpoint: {path}")
    try:
        with open(path, "rb") as f:
            z = np.load(f, allow_pickle=False)
            if not isinstance(z, np.lib.npyio.NpzFile):
                raise ValueError(f"load: {path} is not a fastdl checkpoint (a bare .npy array)")
            if "__fastdl__" not in z.files:
                raise ValueError(f"load: {path} is not a fastdl checkpoint (no manifest)")
            manifest = json.loads(z["__fastdl__"].tobytes().decode("utf-8"))
            if manifest.get("format") != FORMAT:
                raise ValueError(f"load: {path} is not a fastdl checkpoint")
            if manifest.get("version", 0) > VERSION:
                raise ValueError(f"load: {path} was written by a newer fastdl (format {manifest['version']})")
            arrays = {k: z[k] for k in z.files if k != "__fastdl__"}
    except ValueError as exc:
        if str(exc).startswith("load:"):
            raise
        raise ValueError(f"load: {path} is not a readable fastdl checkpoint ({exc})") from None
    except (zipfile.BadZipFile, EOFError, OSError, KeyError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"load: {path} is truncated or corrupt ({type(exc).__name__}: {exc})") from None
    return _decode(manifest["root"], arrays)
