"""The package's layering (README, "Design in one paragraph"): every import, at any depth (an import
inside a function counts), points down or sideways, and no two modules import each other through
any chain."""
from __future__ import annotations

import ast
import os

PKG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fastdl")

# module (or package) prefix -> layer; a module may import from its own layer or below
LAYERS = [
    (0, ["fastdl.reference", "fastdl.rng", "fastdl.datasets", "fastdl.progress"]),
    (1, ["fastdl.backend", "fastdl.cuda"]),
    (2, ["fastdl.shapes", "fastdl.autograd", "fastdl.tensor", "fastdl.creation", "fastdl.tensor_reduce", "fastdl.tensor_shape",
         "fastdl.tensor_elementwise", "fastdl.gradcheck", "fastdl.serialization"]),
    (3, ["fastdl.functional"]),
    (4, ["fastdl.nn", "fastdl.init", "fastdl.optim", "fastdl.data", "fastdl.text"]),
    (5, ["fastdl.checkpoint", "fastdl.callbacks", "fastdl.train", "fastdl.distributed"]),
    (6, ["fastdl.models", "fastdl.tune", "fastdl.selftest", "fastdl.onnx"]),
    (7, ["fastdl.demos"]),
    (8, ["fastdl.cli", "fastdl.__main__"]),
]


def layer(mod: str) -> int:
    for n, prefixes in LAYERS:
        if any(mod == p or mod.startswith(p + ".") for p in prefixes):
            return n
    raise AssertionError(f"{mod} has no layer in tests/test_layers.py: add it where it belongs")


def modules() -> dict:
    out = {}
    for d, _, files in os.walk(PKG):
        for f in files:
            if f.endswith(".py"):
                rel = os.path.relpath(os.path.join(d, f), os.path.dirname(PKG))[:-3].replace(os.sep, ".")
                out[rel[:-len(".__init__")] if rel.endswith(".__init__") else rel] = os.path.join(d, f)
    return out


def imports(mods: dict) -> dict:
    """module -> the package modules it imports (``from . import x`` counts as importing x)."""
    edges = {}
    for mod, path in mods.items():
        is_pkg = path.endswith("__init__.py")
        here = mod.split(".") if is_pkg else mod.split(".")[:-1]
        found = set()
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = ".".join(here[:len(here) - node.level + 1] + ([node.module] if node.module else [])) \
                    if node.level else node.module
                names = [base] + [f"{base}.{a.name}" for a in node.names]
            for n in names:
                while n and n not in mods:
                    n = n.rpartition(".")[0]
                if n and n != mod:
                    found.add(n)
        edges[mod] = found
    return edges


def test_imports_point_down():
    mods = modules()
    upward = [(m, t) for m, ts in imports(mods).items() if not m.endswith("__init__") and
              not mods[m].endswith("__init__.py") for t in ts
              if not mods[t].endswith("__init__.py") and layer(t) > layer(m)]
    assert not upward, "imports of a higher layer: " + ", ".join(f"{m} -> {t}" for m, t in upward)


def test_no_import_cycles():
    """Tarjan's strongly connected components over the import graph (package __init__ re-export hubs
    left out, as in the layering)."""
    mods = modules()
    edges = {m: {t for t in ts if not mods[t].endswith("__init__.py")} for m, ts in imports(mods).items()}
    index, low, stack, on, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v):  # iterative, so a long chain cannot hit the recursion limit
        work = [(v, iter(sorted(edges[v])))]
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        while work:
            node, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter[0]
                    counter[0] += 1
                    stack.append(nxt)
                    on.add(nxt)
                    work.append((nxt, iter(sorted(edges[nxt]))))
                elif nxt in on:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == node:
                        break
                if len(comp) > 1:
                    cycles.append(sorted(comp))
    for m in sorted(edges):
        if m not in index:
            visit(m)
    assert not cycles, f"import cycles: {cycles}"
