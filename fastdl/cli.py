"""The ``fastdl`` command: train, evaluate, predict, demo, info, selftest.

A user's mistake (a missing or foreign file, a bad flag value) is one line on stderr and exit code 1
(2 for usage errors); ``--debug`` shows the full traceback instead.  Output piped into a reader that
stops early (``fastdl info | head -1``) ends quietly."""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import numpy as np


class UserError(Exception):
    """A mistake in what the user asked for: reported in one line, without a traceback."""


def _number(kind, lo, lo_open: bool, hi=None, what: str = ""):
    """An argparse type: ``kind`` (int or float) finite and above ``lo`` (strictly when ``lo_open``),
    below ``hi`` if given; ``what`` names the range in the error."""
    def convert(v: str):
        try:
            x = kind(v)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {v!r}") from None
        if not np.isfinite(x) or (x <= lo if lo_open else x < lo) or (hi is not None and x >= hi):
            raise argparse.ArgumentTypeError(f"expected {what}, got {v}")
        return x
    return convert


_positive_int = _number(int, 0, True, what="a positive integer")
_nonneg_int = _number(int, 0, False, what="an integer >= 0")
_positive_float = _number(float, 0.0, True, what="a positive finite number")
_nonneg_float = _number(float, 0.0, False, what="a finite number >= 0")
_fraction = _number(float, 0.0, False, 1.0, what="a fraction in [0, 1)")


def _mnist_images():
    from .demos.common import mnist_images
    return mnist_images()


MODELS = {
    "lenet5": dict(builder="lenet5", kwargs=dict(num_classes=10, activation="relu", pooling="max", padding=2)),
    "mlp": dict(builder="mlp", kwargs=dict(in_features=784, hidden=[256, 128], num_classes=10, dropout=0.2)),
}


def build_model(config: dict):
    from . import models
    return getattr(models, config["builder"])(**config["kwargs"])


def cmd_train(args) -> int:
    import fastdl
    from . import data, nn, optim, train

    fastdl.set_backend(args.backend)
    world, main_rank, dist = 1, True, None
    if args.distributed:
        from . import distributed as dist
        dist.init(threads=args.threads or None)
        world, main_rank = dist.world_size(), dist.is_main_process()
    elif args.threads:
        fastdl.set_num_threads(args.threads)
    fastdl.manual_seed(args.seed)
    xtr, ytr, xte, yte = _mnist_images()
    n_val = int(round(len(xtr) * args.val_split))
    order = np.random.default_rng(args.seed).permutation(len(xtr))
    xva, yva, xtr, ytr = xtr[order[:n_val]], ytr[order[:n_val]], xtr[order[n_val:]], ytr[order[n_val:]]
    config = MODELS[args.model]
    try:
        model = build_model(config).to(fastdl.device(args.device))
    except RuntimeError as exc:  # CUDA asked for but not there: say why in one line
        raise UserError(str(exc)) from None
    train_set = data.TensorDataset(xtr, ytr)
    if dist is not None:  # each rank a shard; the batch is split so that a step sees batch_size samples in all
        if args.batch_size % world:
            raise UserError(f"--batch-size {args.batch_size} does not split evenly over {world} ranks")
        loader = data.DataLoader(train_set, batch_size=args.batch_size // world,
                                 sampler=dist.DistributedSampler(train_set, seed=args.seed))
        model = dist.DistributedDataParallel(model)
    else:
        loader = data.DataLoader(train_set, batch_size=args.batch_size, shuffle=True, seed=args.seed)
    val_loader = data.DataLoader(data.TensorDataset(xva, yva), batch_size=500) if n_val else None
    if args.optimizer == "adam":
        opt = optim.Adam(model.parameters(), lr=args.lr or 2e-3, weight_decay=args.weight_decay)
    else:
        opt = optim.SGD(model.parameters(), lr=args.lr or 0.02, momentum=0.9, weight_decay=args.weight_decay)
    say = print if main_rank else (lambda *a, **k: None)
    ranks = f", {world} ranks x {fastdl.get_num_threads()} threads" if dist is not None else \
        f", threads={fastdl.get_num_threads()}"
    say(f"fastdl {fastdl.__version__}: training {args.model} ({model.num_parameters():,} parameters) on MNIST-5k "
        f"({len(xtr)} train / {n_val} validation / {len(xte)} test), {args.optimizer}, "
        f"backend={fastdl.get_backend()}, device={args.device}" + ranks)
    if args.save and main_rank:  # refuse an unwritable destination before training, not after
        folder = os.path.dirname(os.path.abspath(args.save))
        if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
            raise UserError(f"cannot write {args.save}: {folder} is not a writable folder")
    t0 = time.perf_counter()
    sched = optim.lr_scheduler.CosineAnnealingLR(opt, max(args.epochs, 1))  # settles the last epochs
    hist = train.fit(model, nn.CrossEntropyLoss(), opt, loader, val_loader=val_loader, epochs=args.epochs,
                     progress=False if args.no_progress or not main_rank else None, verbose=main_rank,
                     scheduler=sched)
    dt = time.perf_counter() - t0
    if not main_rank:
        return 0
    test = train.evaluate(model, nn.CrossEntropyLoss(), data.DataLoader(data.TensorDataset(xte, yte), 500))
    print(f"test accuracy {test['accuracy']:.4f} after {len(hist.epoch)} epochs in {dt:.1f}s")
    weights = model.module if dist is not None else model
    if args.save:
        fastdl.save({"model": args.model, "config": config, "state_dict": weights.state_dict()}, args.save)
        print(f"saved weights to {args.save}")
    if args.plot:
        print(f"training curves: {hist.plot(args.plot)}")
    return 0


def _check_config(config, state_dict, path) -> None:
    """The config of a checkpoint names a model of ``fastdl train`` with sane sizes, and asks for as many
    parameters as the file holds: a crafted config cannot make ``evaluate`` build an absurd model."""
    import numpy as np
    bad = f"{path} is not a model checkpoint written by 'fastdl train --save'"
    builders = {c["builder"]: c["kwargs"] for c in MODELS.values()}
    if not isinstance(config, dict) or config.get("builder") not in builders or not isinstance(config.get("kwargs"),
                                                                                             dict):
        raise UserError(bad + " (unknown model config)")
    kw, known = config["kwargs"], builders[config["builder"]]
    if set(kw) - set(known):
        raise UserError(bad + f" (unexpected config keys {sorted(set(kw) - set(known))})")

    def size(v, lo=1):
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= 100_000:
            raise UserError(bad + f" (a layer size of {v!r} in its config)")
        return v
    for k, v in kw.items():  # each value of the kind of its default
        d = known[k]
        if isinstance(d, int) and not isinstance(d, bool):
            size(v, lo=0)
        elif isinstance(d, float) and not (isinstance(v, (int, float)) and 0.0 <= v < 1.0):
            raise UserError(bad + f" ({k}={v!r} in its config)")
        elif isinstance(d, str) and not (isinstance(v, str) and len(v) < 32):
            raise UserError(bad + f" ({k}={v!r} in its config)")
    if not isinstance(state_dict, dict) or not all(hasattr(v, "shape") for v in state_dict.values()):
        raise UserError(bad + " (no state dict of arrays)")
    held = sum(int(np.prod(np.shape(v), dtype=np.float64)) for v in state_dict.values())
    if config["builder"] == "mlp":
        hidden = kw.get("hidden", known["hidden"])
        if not isinstance(hidden, (list, tuple)) or len(hidden) > 100:
            raise UserError(bad + " (hidden sizes must be a short list)")
        sizes = [size(kw.get("in_features", known["in_features"]))] + [size(h) for h in hidden] + \
            [size(kw.get("num_classes", known["num_classes"]))]
        want = sum((a + 1) * b for a, b in zip(sizes, sizes[1:]))
        if want != held:
            raise UserError(bad + f" (its config asks for {want:,} parameters, the file holds {held:,})")


def _load_model(path):
    import numpy as np

    import fastdl
    try:
        ck = fastdl.load(path)
    except (ValueError, FileNotFoundError) as exc:
        raise UserError(str(exc)) from None
    if not isinstance(ck, dict) or "config" not in ck or "state_dict" not in ck:
        raise UserError(f"{path} is not a model checkpoint written by 'fastdl train --save'")
    _check_config(ck["config"], ck["state_dict"], path)
    model = build_model(ck["config"])
    try:
        model.load_state_dict(ck["state_dict"])
    except (KeyError, ValueError, TypeError) as exc:
        raise UserError(f"{path} does not fit its model: {exc}") from None
    bad = [k for k, v in model.state_dict().items() if not np.all(np.isfinite(v))]
    if bad:
        raise UserError(f"{path} holds non-finite weights (NaN or inf) in {', '.join(bad[:4])}"
                         f"{' ...' if len(bad) > 4 else ''}: the training diverged; retrain with a smaller --lr")
    model.eval()
    return model


def _read_digit(path: str) -> np.ndarray:
    """A PNG/JPEG digit as MNIST has it: grey, 28x28, a light digit on a dark ground (inverted if need be)."""
    try:
        from PIL import Image
    except ImportError:
        raise UserError("reading image files needs Pillow: pip install 'fastdl[images]'") from None
    try:
        with Image.open(path) as im:
            img = np.asarray(im.convert("L").resize((28, 28), Image.Resampling.LANCZOS), dtype=np.float32)
    except FileNotFoundError:
        raise UserError(f"no such image: {path}") from None
    except OSError as exc:
        raise UserError(f"cannot read {path} as an image ({exc})") from None
    border = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])
    if border.mean() > 127:  # dark ink on light paper: MNIST is the other way round
        img = 255.0 - img
    return img


def cmd_predict(args) -> int:
    from . import datasets, data, train
    model = _load_model(args.checkpoint)
    if args.images:
        (xtr, _), _ = datasets.mnist_5k()
        std = data.Standardizer(axis=None).fit(xtr / 255.0)  # the training scaling
        x = std.transform(np.stack([_read_digit(p) for p in args.images])[:, None] / 255.0).astype(np.float32)
        probs = train.predict(model, x)
        for path, row in zip(args.images, probs):
            e = np.exp(row - row.max())
            print(f"{path}: predicted {int(row.argmax())} (p={e.max() / e.sum():.2f})")
        return 0
    _, _, xte, yte = _mnist_images()
    idx = list(range(min(args.count, len(xte))))
    pred = train.predict(model, xte[idx]).argmax(axis=1)
    for i, p in zip(idx, pred):
        print(f"test image {i:4d}: predicted {p}, label {yte[i]}")
    return 0


def cmd_evaluate(args) -> int:
    from . import data, nn, train
    model = _load_model(args.checkpoint)
    _, _, xte, yte = _mnist_images()
    logs = train.evaluate(model, nn.CrossEntropyLoss(), data.DataLoader(data.TensorDataset(xte, yte), 500))
    print(f"test loss {logs['loss']:.4f}  accuracy {logs['accuracy']:.4f}")
    return 0


def info_lines() -> list:
    import fastdl
    from . import backend

    lines = [f"fastdl {fastdl.__version__}  (Python {platform.python_version()}, NumPy {np.__version__}, "
             f"{platform.machine()})"]
    c = backend._C
    if c is None:
        lines.append(f"native extension: NOT LOADED ({backend._C_ERROR})")
        return lines
    lines += [
        f"native extension: {c.__file__}",
        f"active backend: {backend.get_backend()}",
        f"BLAS: {c.blas_config()} (kernel: {c.blas_corename()})",
        f"threads: {c.get_num_threads()} (one pool; BLAS single-threaded inside it)"
        f" (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, cores: {os.cpu_count()})",
        f"CPU features seen: {c.cpu_features() or 'none detected'}; element-wise kernels run the "
        f"{c.simd_isa()} build (chosen at run time)",
        "float32 convolution: " + {16: "direct AVX-512 kernels", 8: "direct AVX2 kernels"}.get(
            c.conv_direct_width(), "im2col + BLAS only") + " where the output channels fill whole vectors,"
        " im2col + BLAS elsewhere",
        f"CUDA: {fastdl.cuda.status()}",
    ]
    return lines


def cmd_info(args) -> int:
    print("\n".join(info_lines()))
    return 0


def cmd_selftest(args) -> int:
    from . import selftest
    return 0 if selftest.run(args.seed) else 1


def cmd_demo(args) -> int:
    from . import demos
    if args.list or not args.name:
        for n in demos.names():
            print(f"{n:16s} {demos.DEMOS[n]}")
        return 0
    try:
        t0 = time.perf_counter()
        name = demos.ALIASES.get(args.name, args.name)
        if args.date and name != "date-translation":
            print("fastdl demo: --date applies to date-translation (nmt) only", file=sys.stderr)
            return 2
        if args.date:
            demos.run(name, quick=args.quick, dates=args.date)
        elif (args.analogies or args.pairs) and name != "word-vectors":
            print("fastdl demo: --analogies and --pairs apply to word-vectors only", file=sys.stderr)
            return 2
        elif name == "word-vectors":
            for path in (args.text, args.analogies, args.pairs):
                if path and not os.path.isfile(path):
                    print(f"fastdl demo: no such file: {path}", file=sys.stderr)
                    return 2
            try:
                demos.run(name, quick=args.quick, text_path=args.text, analogies=args.analogies, pairs=args.pairs)
            except ValueError as exc:  # a corpus that is not UTF-8, or too small for the vocabulary
                print(f"fastdl demo: {exc}", file=sys.stderr)
                return 2
        elif args.text:
            if args.name != "char-lm":
                print("fastdl demo: --text applies to char-lm and word-vectors only", file=sys.stderr)
                return 2
            from .demos import char_lm
            with open(args.text, encoding="utf-8") as fh:
                char_lm.run(quick=args.quick, text=fh.read())
        else:
            demos.run(args.name, quick=args.quick)
        print(f"({time.perf_counter() - t0:.1f}s)")
    except KeyError as exc:
        print(f"fastdl demo: {exc.args[0]}", file=sys.stderr)
        return 2
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fastdl", description="fastdl: deep learning with native kernels")
    p.add_argument("--debug", action="store_true", help="show full tracebacks of errors")
    sub = p.add_subparsers(dest="command")
    t = sub.add_parser("train", help="train a model on the built-in MNIST subset")
    t.add_argument("--model", default="lenet5", choices=sorted(MODELS), help="model to train (default: lenet5)")
    t.add_argument("--epochs", type=_positive_int, default=10)
    t.add_argument("--optimizer", default="adam", choices=("adam", "sgd"))
    t.add_argument("--lr", type=_positive_float, default=None,
                   help="learning rate (default: 2e-3 for adam, 0.02 for sgd)")
    t.add_argument("--weight-decay", type=_nonneg_float, default=0.0)
    t.add_argument("--batch-size", type=_positive_int, default=64)
    t.add_argument("--val-split", type=_fraction, default=0.1,
                   help="fraction of the training images held out for validation each epoch (default: 0.1); "
                        "the test images are scored once, at the end")
    t.add_argument("--seed", type=_nonneg_int, default=0)
    t.add_argument("--backend", choices=("native", "reference"), default="native")
    t.add_argument("--threads", type=_nonneg_int, default=0, help="threads for the native kernels (default: all)")
    t.add_argument("--save", default="fastdl-mnist.npz", help="where to write the trained weights (.npz, no pickle)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("--plot", default=None, metavar="PNG", help="save the training curves to this image (matplotlib)")
    t.add_argument("--device", default="cpu", help="where to train: cpu (default) or cuda (needs the CUDA build and "
                   "CuPy: see README)")
    t.add_argument("--distributed", action="store_true",
                   help="data-parallel over MPI: run as 'mpiexec -n N fastdl train --distributed' (needs "
                        "'fastdl[mpi]'); each rank trains on a shard with batch-size/N samples a step, rank 0 "
                        "prints and saves")
    t.set_defaults(fn=cmd_train)
    e = sub.add_parser("evaluate", help="test accuracy of a checkpoint written by 'fastdl train --save'")
    e.add_argument("checkpoint")
    e.set_defaults(fn=cmd_evaluate)
    pr = sub.add_parser("predict", help="predict digits with a checkpoint written by 'fastdl train --save': "
                        "your own image files (PNG/JPEG, needs Pillow), or the first test digits")
    pr.add_argument("checkpoint")
    pr.add_argument("images", nargs="*", help="image files of handwritten digits (any size; dark on light or "
                    "light on dark)")
    pr.add_argument("--count", type=_positive_int, default=10, help="without images: how many test digits")
    pr.set_defaults(fn=cmd_predict)
    d = sub.add_parser("demo", help="run a chapter of the curriculum (fastdl demo --list)")
    d.add_argument("name", nargs="?")
    d.add_argument("--list", action="store_true")
    d.add_argument("--quick", action="store_true", help="a shorter run")
    d.add_argument("--text", default=None, help="char-lm: train on the words of this text file instead of names; "
                   "word-vectors: train on this UTF-8 text file (one sentence a line)")
    d.add_argument("--analogies", default=None, help="word-vectors: evaluate on this analogy file "
                   "(questions-words format)")
    d.add_argument("--pairs", default=None, help="word-vectors: evaluate on this word-pair similarity file "
                   "(word1<TAB>word2<TAB>score)")
    d.add_argument("--date", action="append", default=[],
                   help="date-translation: a date of your own to translate (repeat for more)")
    d.set_defaults(fn=cmd_demo)
    i = sub.add_parser("info", help="version, BLAS, threads, CPU features, CUDA")
    i.set_defaults(fn=cmd_info)
    s = sub.add_parser("selftest", help="check every native op against the NumPy reference")
    s.add_argument("--seed", type=_nonneg_int, default=0)
    s.set_defaults(fn=cmd_selftest)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "fn", None):
        parser.print_help()
        return 2
    try:
        return int(args.fn(args) or 0)
    except BrokenPipeError:  # the reader stopped early (fastdl info | head -1): not an error
        try:  # Python flushes stdout at exit: point it at /dev/null so that flush is silent too
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except OSError:
            pass
        return 0
    except KeyboardInterrupt:
        print(f"fastdl {args.command}: interrupted", file=sys.stderr)
        return 130
    except (UserError, ValueError, TypeError, OSError, KeyError, ImportError) as exc:
        if args.debug:
            raise
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        hint = "" if isinstance(exc, (UserError, ImportError)) else " (run with --debug for the traceback)"
        print(f"fastdl {args.command}: {msg}{hint}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
