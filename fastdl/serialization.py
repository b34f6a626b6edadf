"""Checkpoints without pickle: ``save(mapping, path)`` / ``load(path)``.

The file is a ``.npz`` (a zip of ``.npy`` arrays, read with
``allow_pickle=False``).  Arrays and Tensors become members ``a0, a1, ...``;
the nesting, key types and plain values (numbers, strings, bools, None,
lists, tuples) go into a JSON manifest stored as the member ``__fastdl__``.
Writes are atomic: a temporary file in the same folder, fsync, rename.  A
truncated, foreign or pickle-carrying file raises ``ValueError``.

A path ending in ``.safetensors`` reads and writes the safetensors format
instead (a flat mapping of names to arrays, the layout PyTorch and the
Hugging Face tools exchange): an 8-byte little-endian header length, a JSON
header naming each tensor's dtype, shape and byte range, then the data.  It is
implemented here (no extra package), and every header field is checked
before any array is made.
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
        arrays[key] = obj._host()  # a tensor on another device is copied to host memory
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


# safetensors dtype names <-> NumPy (little-endian)
_ST_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
              "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1", "BOOL": "?"}
_ST_NAMES = {np.dtype(v): k for k, v in _ST_DTYPES.items()}


def _safetensors_bytes(obj: Mapping, metadata=None) -> list:
    """The file's pieces: header length, header, then each array's bytes (sorted by name)."""
    header, chunks, offset = {}, [], 0
    if metadata:
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise TypeError("save: safetensors metadata must map strings to strings")
        header["__metadata__"] = dict(metadata)
    for name in sorted(obj):
        v = obj[name]
        if not isinstance(name, str) or name == "__metadata__":
            raise TypeError(f"save: safetensors names must be strings (not '__metadata__'), got {name!r}")
        a = v._host() if isinstance(v, Tensor) else v
        if not isinstance(a, np.ndarray):
            raise TypeError(f"save: a .safetensors file holds only arrays, but {name!r} is a {type(v).__name__}; "
                            "save nested checkpoints (optimizer state, history) as .npz")
        dt = a.dtype.newbyteorder("<") if a.dtype.byteorder == ">" else a.dtype
        if dt not in _ST_NAMES:
            raise TypeError(f"save: dtype {a.dtype} of {name!r} has no safetensors name")
        data = np.ascontiguousarray(a, dtype=dt).tobytes()
        header[name] = {"dtype": _ST_NAMES[dt], "shape": list(a.shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    head = json.dumps(header, separators=(",", ":")).encode("utf-8")
    head += b" " * (-len(head) % 8)  # the data starts 8-byte aligned, as the reference writer does
    return [len(head).to_bytes(8, "little"), head] + chunks


def _load_safetensors(path: str):
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        raw_n = f.read(8)
        if len(raw_n) < 8:
            raise ValueError(f"load: {path} is truncated (no safetensors header)")
        n = int.from_bytes(raw_n, "little")
        if n > min(size - 8, 100_000_000):
            raise ValueError(f"load: {path} declares a {n}-byte safetensors header but holds {size} bytes: "
                             "truncated or not a safetensors file")
        try:
            header = json.loads(f.read(n).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"load: {path} has a corrupt safetensors header ({exc})") from None
        if not isinstance(header, dict):
            raise ValueError(f"load: {path} has a corrupt safetensors header (not a JSON object)")
        data_len = size - 8 - n
        out, spans = OrderedDict(), []
        for name, info in header.items():
            if name == "__metadata__":
                continue
            if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
                raise ValueError(f"load: {path}: tensor {name!r} has a malformed entry")
            dt, shape, offs = info["dtype"], info["shape"], info["data_offsets"]
            if dt not in _ST_DTYPES:
                raise ValueError(f"load: {path}: tensor {name!r} has dtype {dt!r}, which fastdl does not read")
            if not (isinstance(shape, list) and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                                    for d in shape)):
                raise ValueError(f"load: {path}: tensor {name!r} has a malformed shape {shape!r}"[:200])
            if not (isinstance(offs, list) and len(offs) == 2 and all(isinstance(o, int) and not isinstance(o, bool)
                                                                       for o in offs) and 0 <= offs[0] <= offs[1]):
                raise ValueError(f"load: {path}: tensor {name!r} has malformed data_offsets {offs!r}"[:200])
            want = int(np.prod(shape, dtype=np.float64)) * np.dtype(_ST_DTYPES[dt]).itemsize
            if offs[1] - offs[0] != want or offs[1] > data_len:
                raise ValueError(f"load: {path}: tensor {name!r} of shape {tuple(shape)} needs {want} bytes but its "
                                 f"range {offs} does not hold them in the file's {data_len} data bytes: truncated "
                                 "or corrupt")
            spans.append((offs[0], offs[1], name, dt, tuple(shape)))
        spans.sort()
        end = 0
        for start, stop, name, _, _ in spans:
            if start != end:
                raise ValueError(f"load: {path}: tensor {name!r} overlaps another or leaves a gap in the data")
            end = stop
        for start, stop, name, dt, shape in spans:
            f.seek(8 + n + start)
            buf = f.read(stop - start)
            arr = np.frombuffer(buf, dtype=_ST_DTYPES[dt]).reshape(shape)
            out[name] = arr.astype(np.dtype(_ST_DTYPES[dt]).newbyteorder("="), copy=True)
    return OrderedDict((k, out[k]) for k in header if k in out)


def _umask() -> int:
    """The process's umask, read without changing it where the system tells it (Linux)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def save(obj: Mapping, path, metadata=None) -> None:
    """Save a (nested) mapping of names to arrays, Tensors and plain values, atomically (``.safetensors``:
    a flat mapping of names to arrays, with optional string ``metadata``)."""
    if not isinstance(obj, Mapping):
        raise TypeError(f"save: obj must be a mapping, got {type(obj).__name__}")
    path = os.fspath(path)
    safetensors = path.endswith(".safetensors")
    if safetensors:
        pieces = _safetensors_bytes(obj, metadata)
    else:
        arrays: dict = {}
        manifest = {"format": FORMAT, "version": VERSION, "root": _encode(obj, arrays)}
    folder = os.path.dirname(os.path.abspath(path))
    _remove_stale_temporaries(folder)
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-fastdl-{os.getpid()}-", suffix=".npz", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            if safetensors:
                for piece in pieces:
                    f.write(piece)
            else:
                meta = np.frombuffer(json.dumps(manifest).encode("utf-8"), dtype=np.uint8)
                np.savez(f, __fastdl__=meta, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # the usual permissions, not mkstemp's 0600
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
    if path.endswith(".safetensors"):
        return _load_safetensors(path)
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
