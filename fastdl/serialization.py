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


_MAX_DEPTH = 200  # nesting levels a manifest may have (far more than any state dict needs)


def _decode(obj, arrays, depth=0):
    """The manifest back to values; every malformed part is a ValueError naming it, never a KeyError
    or a RecursionError."""
    if depth > _MAX_DEPTH:
        raise ValueError(f"load: the checkpoint's manifest nests deeper than {_MAX_DEPTH} levels")
    if isinstance(obj, dict):
        if len(obj) != 1:
            raise ValueError("load: the checkpoint's manifest is corrupt (an entry with several tags)")
        (tag, val), = obj.items()
        if tag in ("$a", "$t"):
            if not isinstance(val, str) or val not in arrays:
                raise ValueError(f"load: the checkpoint's manifest refers to a missing array {val!r}"[:200])
            return arrays[val] if tag == "$a" else Tensor(arrays[val])
        if tag == "$f":
            try:
                return float(val)
            except (TypeError, ValueError):
                raise ValueError(f"load: the checkpoint's manifest holds a bad number {val!r}"[:200]) from None
        if tag in ("$m", "$l", "$tu") and isinstance(val, list):
            if tag == "$m":
                if not all(isinstance(kv, list) and len(kv) == 2 and isinstance(kv[0], (str, int))
                           and not isinstance(kv[0], bool) for kv in val):
                    raise ValueError("load: the checkpoint's manifest has a malformed mapping")
                return OrderedDict((k, _decode(v, arrays, depth + 1)) for k, v in val)
            items = [_decode(v, arrays, depth + 1) for v in val]
            return items if tag == "$l" else tuple(items)
        raise ValueError("load: the checkpoint's manifest is corrupt")
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    raise ValueError(f"load: the checkpoint's manifest holds an unexpected {type(obj).__name__}")


def _check_member(z, name):
    """A member's .npy header must declare no more data than the member holds (a crafted header could
    ask for terabytes), and no object dtype."""
    with z.zip.open(name + ".npy") as f:
        version = np.lib.format.read_magic(f)
        shape, _, dtype = (np.lib.format.read_array_header_1_0(f) if version == (1, 0)
                           else np.lib.format.read_array_header_2_0(f))
        header = f.tell()
    if dtype.hasobject:
        raise ValueError(f"load: array {name!r} holds Python objects (pickle), which fastdl never loads")
    declared = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
    held = z.zip.getinfo(name + ".npy").file_size - header
    if declared > held:
        raise ValueError(f"load: array {name!r} declares shape {tuple(shape)} ({declared} bytes) but the file "
                         f"holds {held} bytes: truncated or corrupt")


def _remove_stale_temporaries(folder: str) -> None:
    """Temporary files left by saves that were killed (their process is gone); a save in progress
    elsewhere keeps its file (the name carries the writer's process id)."""
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for n in names:
        if not (n.startswith(".tmp-fastdl-") and n.endswith(".npz")):
            continue
        try:
            pid = int(n[len(".tmp-fastdl-"):].split("-", 1)[0])
            os.kill(pid, 0)
        except (ValueError, IndexError):
            continue
        except ProcessLookupError:
            try:
                os.unlink(os.path.join(folder, n))
            except OSError:
                pass
        except OSError:  # the process exists (another user's): leave its file
            continue


def save(obj: Mapping, path) -> None:
    """Save a (nested) mapping of names to arrays, Tensors and plain values, atomically."""
    if not isinstance(obj, Mapping):
        raise TypeError(f"save: obj must be a mapping, got {type(obj).__name__}")
    arrays: dict = {}
    manifest = {"format": FORMAT, "version": VERSION, "root": _encode(obj, arrays)}
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    _remove_stale_temporaries(folder)
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-fastdl-{os.getpid()}-", suffix=".npz", dir=folder)
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
            _check_member(z, "__fastdl__")
            manifest = json.loads(z["__fastdl__"].tobytes().decode("utf-8"))
            if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or "root" not in manifest:
                raise ValueError(f"load: {path} is not a fastdl checkpoint")
            if not isinstance(manifest.get("version", 0), int) or manifest.get("version", 0) > VERSION:
                raise ValueError(f"load: {path} was written by a newer fastdl (format {manifest['version']})")
            names = [k for k in z.files if k != "__fastdl__"]
            for k in names:
                _check_member(z, k)
            arrays = {k: z[k] for k in names}
    except ValueError as exc:
        if str(exc).startswith("load:"):
            raise
        if "pickle" in str(exc):  # NumPy's words for a file that is no .npz/.npy at all
            raise ValueError(f"load: {path} is not a fastdl checkpoint (not an .npz archive)") from None
        raise ValueError(f"load: {path} is not a readable fastdl checkpoint ({exc})") from None
    except (zipfile.BadZipFile, EOFError, OSError, KeyError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"load: {path} is truncated or corrupt ({type(exc).__name__}: {exc})") from None
    except RecursionError:
        raise ValueError(f"load: {path} has a manifest nested too deeply to be a fastdl checkpoint") from None
    try:
        return _decode(manifest["root"], arrays)
    except RecursionError:
        raise ValueError(f"load: {path} has a manifest nested too deeply to be a fastdl checkpoint") from None
