"""The `xpbp` command: `train`, `evaluate`, `predict`, `export`, `info` and
`bench` (their arguments in `xpbp.arguments`; on a file of the user's own,
`xpbp.tabular`).

Human-readable results go to stdout, per-epoch lines and progress bars to stderr.
With `--json` stdout carries exactly one JSON object, also when the command fails
(`{"error": "..."}`). Errors end with one line `xpbp: error: ...` and exit status 1
(2 for a malformed command line). Every argument and path is checked before any data
is loaded or any training starts.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import time
import warnings
from typing import Any

import numpy as np

from . import (
    __version__,
    arguments,
    backend,
    bench,
    costs,
    datasets,
    distributed,
    files,
    formats,
    optimizers,
    runs,
    scaling,
    tables,
    tabular,
    tasks,
    validation,
)
from .blas import FORCING
from .network import Network, load

__all__ = ["main"]

log = logging.getLogger("xpbp")


def _plotting() -> Any:
    """The plots module, or a clear error saying how to install matplotlib."""
    try:
        from . import plots
    except ImportError as e:
        raise RuntimeError(
            f"--plot needs matplotlib ({e}); install it with: pip install matplotlib "
            "(in an xpbp checkout: pip install -e '.[plot]')"
        ) from None
    return plots


def _outputs(args: argparse.Namespace) -> Any:
    """Check where results will be written, before any work: the plots module when
    `--plot` is given, and the paths of `--save` and `--plot`."""
    plots = _plotting() if args.plot is not None else None
    if args.plot is not None and not args.plot.lower().endswith(".png"):
        raise ValueError(f"--plot draws a PNG: give a file name ending in .png, got {args.plot!r}")
    for path in (getattr(args, "save", None), args.plot):
        if path is not None:
            files.writable(path)
    return plots


def _train(args: argparse.Namespace) -> dict[str, Any]:
    comm = _world(args)
    rank = comm.Get_rank() if comm is not None else 0
    own = None
    if args.data is not None:
        with distributed.agreeing(comm):  # every option and path, before the file is read
            tabular.check(args)
            if rank == 0:
                _outputs(args)
        with distributed.agreeing(comm):
            own = tabular.load(args)
            tabular.defaults(args, own)
    else:
        _dataset_defaults(args)
    with distributed.agreeing(comm):  # an argument one rank refuses, every rank refuses
        plots, net, settings = _prepare(args, comm, rank, own)
    if own is not None:
        X, y, X_test, y_test = own.X, own.y, own.X_test, own.y_test
    else:
        with distributed.agreeing(comm):  # rank 0 first, which downloads what is missing
            data = _data(args) if rank == 0 else ()
        with distributed.agreeing(comm):
            X, y, X_test, y_test = data if rank == 0 else _data(args)
        if args.scale not in (None, "none"):
            net.scaling = scaling.fit(X, args.scale)
    log.info("training %s on %d %s examples (seed %d)", net, len(X), _source(args), net.seed)
    start = time.perf_counter()
    progress = _bars(args) if args.progress is None else args.progress
    # Validated on the test split each epoch, as Nielsen does, unless a validation split is carved
    # out of the training data: then the test split is read once, at the end.
    held = (
        dict(validation_fraction=args.validation_fraction) if args.validation_fraction else dict(validation_data=(X_test, y_test))
    )
    history = net.fit(X, y, **settings, **held, progress=progress, threads=args.threads, comm=comm)
    seconds = time.perf_counter() - start
    if rank != 0:
        return {}
    if args.validation_fraction or own is not None:
        test = net.metrics(X_test, y_test)
    else:
        test = {"accuracy": history.val_accuracy[-1]}
    if args.save is not None:
        net.trained_on = f"{args.dataset}:train" if own is None else f"file:{os.path.basename(args.data)}"
        net.save(args.save)
    if plots:
        plots.learning_curves(
            history, args.plot, title=f"{_source(args)}: {net.sizes}, {args.activation}/{net.output_activation}, {args.cost}"
        )
    return _trained(args, net, history, settings, seconds, (len(X), len(X_test)), comm.Get_size() if comm else 1, test)


def _world(args: argparse.Namespace) -> Any:
    """The MPI communicator of a `--distributed` run, or None; a process that is one of
    several the launcher started is refused without `--distributed`."""
    launched = distributed.launched_ranks()
    if args.distributed is None:
        if launched > 1:
            raise RuntimeError(
                f"this is one of {launched} processes that mpiexec started: add --distributed mpi "
                f"(or nccl on GPUs) to train one network on all of them, instead of {launched} copies"
            )
        return None
    comm = distributed.world()
    if comm.Get_size() == 1:
        log.warning(
            "note: --distributed %s runs on this one process, since no launcher started others: "
            "start it with mpiexec -n P xpbp train ... to train on P",
            args.distributed,
        )
    if comm.Get_rank() != 0:
        logging.getLogger().setLevel(logging.WARNING)
        for handler in logging.getLogger().handlers:
            handler.setFormatter(logging.Formatter(f"rank {comm.Get_rank()}: %(message)s"))
    return comm


def _source(args: argparse.Namespace) -> str:
    return str(args.dataset) if args.data is None else os.path.basename(args.data)


def _dataset_defaults(args: argparse.Namespace) -> None:
    """Fill in the unset options of a built-in data set's run: network.py's settings (in place)."""
    if args.data is None and any(getattr(args, k) is not None for k in ("target", "test", "test_fraction", "task")):
        raise ValueError("--target, --test, --test-fraction and --task are for a file of your own, given with --data")
    if args.hidden is not None and args.sizes is not None:
        raise ValueError("give either --sizes (every layer's width) or --hidden (the hidden layers'), not both")
    args.dataset = args.dataset or "mnist-sample"
    args.sizes = args.sizes or [datasets.FEATURES, *(args.hidden or [30]), datasets.CLASSES]
    args.activation = args.activation or "sigmoid"
    args.cost = args.cost or "quadratic"
    args.epochs = 30 if args.epochs is None else args.epochs
    args.batch_size = 10 if args.batch_size is None else args.batch_size
    args.optimizer = args.optimizer or "sgd"


def _prepare(args: argparse.Namespace, comm: Any, rank: int, own: tabular.Own | None) -> tuple[Any, Network, dict[str, Any]]:
    """Everything but the data, checked: the plots module, the output paths (rank 0's,
    which writes them), the network on this rank's device, and the training settings."""
    plots = _outputs(args) if rank == 0 else None
    device = args.device
    if comm is not None:
        want = "cuda" if args.distributed == "nccl" else "cpu"
        device = distributed.local_device(comm, want if device == "auto" else device)
        if (device == "cpu") != (want == "cpu"):
            raise ValueError(
                f"--distributed {args.distributed} trains on {'GPUs' if want == 'cuda' else 'CPUs'}, "
                f"but this rank's device is {device}: use --distributed {'mpi' if want == 'cuda' else 'nccl'}"
            )
    net = Network(
        args.sizes,
        activation=args.activation,
        output_activation=args.output_activation,
        cost=args.cost,
        init=args.init,
        dtype=args.dtype,
        device=device,
        seed=args.seed,
        task=None if own is None else own.table.task,
    )
    if own is not None:
        net.scaling, net.target_scaling = tabular.scalings(args, own)
        net.classes = own.table.classes
    elif net.sizes[0] != datasets.FEATURES or net.sizes[-1] < datasets.CLASSES:
        raise ValueError(
            f"{args.dataset} has {datasets.FEATURES} pixels per image and {datasets.CLASSES} classes: "
            f"--sizes must start with {datasets.FEATURES} and end with at least {datasets.CLASSES}, got {net.sizes}"
        )
    optimizer = optimizers.get(args.optimizer, validation.real(args.momentum, "momentum", 0.0, 1.0, high_open=True))
    eta = args.eta if args.eta is not None else optimizer.eta if optimizer.eta is not None else costs.get(net.cost_name).eta
    settings = dict(
        epochs=args.epochs,
        batch_size=args.batch_size,
        eta=eta,
        eta_decay=args.eta_decay,
        lmbda=args.lmbda,
        momentum=args.momentum,
        optimizer=args.optimizer,
        regularization=args.regularization,
        dropout=args.dropout,
        early_stopping=args.early_stopping,
        halve_eta=args.halve_eta,
        tol=args.tol,
        monitor=args.monitor,
        shift=args.shift,
        mirror=args.mirror,
    )
    if (args.early_stopping or args.halve_eta) and not args.validation_fraction:
        raise ValueError(
            f"{'--early-stopping' if args.early_stopping else '--halve-eta'} watches a validation score: add "
            "--validation-fraction F (watching the test split would pick the network on the data its accuracy is reported on)"
        )
    settings_checked = {
        **settings,
        "validation_fraction": args.validation_fraction,
        "shuffle": True,
        "image_shape": None,
        "decay_over": "data",
    }
    runs.Run.checked(  # before the data is loaded
        datasets.size(args.dataset, "train") if own is None else len(own.X),
        net.sizes[0],
        task=tasks.get(own.table.task) if own is not None else tasks.Classification(),
        using=optimizer,
        cost_eta=eta,
        data=None,
        **settings_checked,
    )
    if args.threads is not None:
        validation.positive_int(args.threads, "threads")
    return plots, net, settings


def _data(args: argparse.Namespace) -> tuple[Any, ...]:
    where = dict(data_dir=args.data_dir, download=args.download, progress=_bars(args))
    return (*datasets.load(args.dataset, "train", **where), *datasets.load(args.dataset, "test", **where))


def _bars(args: argparse.Namespace) -> bool:
    """Progress bars: on a terminal, unless --quiet."""
    return sys.stderr.isatty() and not args.quiet


def _trained(
    args: argparse.Namespace,
    net: Network,
    history: Any,
    settings: dict[str, Any],
    seconds: float,
    examples: tuple[int, int],
    ranks: int,
    test: dict[str, float],
) -> dict[str, Any]:
    """The result of `train`: printed, and returned for `--json`."""
    accuracy, (n, n_test) = test.get("accuracy"), examples
    result = {
        "command": "train",
        "dataset": args.dataset,
        "data": args.data,
        "test": args.test,
        "network": {
            "sizes": net.sizes,
            "activation": net.activation,
            "output_activation": net.output_activation,
            "cost": net.cost_name,
            "init": net.init,
            "dtype": str(net.dtype),
            "task": net.task,
        },
        "training": {**settings, "examples": n, "validation_fraction": args.validation_fraction},
        "validated_on": "a split of the training data" if args.validation_fraction else "the test split",
        "metrics": history.metrics(),
        "device": net.device,
        "ranks": ranks,
        "seed": net.seed,
        "history": vars(history),
        "test_accuracy": accuracy,
        "test_metrics": test,
        "test_examples": n_test,
        "seconds": seconds,
        "examples_per_second": len(history.seconds) * n / sum(history.seconds),
        "saved": args.save,
        "plot": args.plot,
    }
    if not args.json:
        on = net.device + (f", {ranks} ranks" if ranks > 1 else "")
        if args.validation_fraction and history.val_accuracy:
            best = history.best_epoch or len(history.val_accuracy)
            print(
                f"validation accuracy {history.val_accuracy[best - 1]:.2%} in epoch {best}, "
                f"on {args.validation_fraction:g} of the training data"
            )
        epochs = f"{len(history.seconds)} epochs" + (
            f" (stopped early, keeping epoch {history.best_epoch})" if history.stopped_early else ""
        )
        scores = (
            f"test accuracy {accuracy:.2%} ({round(accuracy * n_test)}/{n_test})"
            if accuracy is not None
            else f"test RMSE {test['rmse']:.4g}, R² {test['r2']:.4f} ({n_test} rows)"
        )
        print(
            f"{scores} after {epochs} on {on}: {seconds:.1f} s, {result['examples_per_second']:,.0f} examples/s (seed {net.seed})"
        )
        for what, path in (("model saved to", args.save), ("learning curves drawn in", args.plot)):
            if path:
                print(f"{what} {path}")
    return result


def _evaluate(args: argparse.Namespace) -> dict[str, Any]:
    plots = _outputs(args)
    if args.data is not None and args.dataset is not None:
        raise ValueError("give either --dataset (a built-in data set) or --data (a file of your own), not both")
    net = load(args.model, device=args.device)
    if args.data is not None:
        return _evaluate_file(args, net, plots)
    args.dataset = args.dataset or "mnist-sample"
    if net.sizes[0] != datasets.FEATURES or net.sizes[-1] < datasets.CLASSES:
        raise ValueError(
            f"{args.model} has layers {net.sizes}, which do not fit {args.dataset}'s "
            f"{datasets.FEATURES} pixels and {datasets.CLASSES} classes"
        )
    shared = datasets.overlap(net.trained_on, args.dataset, args.split)
    if shared:
        log.warning(
            "warning: %s was trained on %s, which holds %d of the %d examples of %s %s: this accuracy is not "
            "measured on unseen data",
            args.model,
            str(net.trained_on).replace(":", " "),
            shared,
            datasets.size(args.dataset, args.split),
            args.dataset,
            args.split,
        )
    X, y = datasets.load(args.dataset, args.split, data_dir=args.data_dir, download=args.download, progress=_bars(args))
    accuracy, per_class, confusion = _confusion(args, net, X, y, f"{args.dataset} {args.split}", plots, None)
    return {
        "command": "evaluate",
        "model": args.model,
        "dataset": args.dataset,
        "split": args.split,
        "device": net.device,
        "trained_on": net.trained_on,
        "seen_in_training": shared,
        "accuracy": accuracy,
        "per_class_accuracy": per_class.tolist(),
        "confusion_matrix": confusion.tolist(),
        "plot": args.plot,
    }


def _confusion(
    args: argparse.Namespace, net: Network, X: Any, y: np.ndarray, what: str, plots: Any, labels: tuple[str, ...] | None
) -> tuple[float, np.ndarray, np.ndarray]:
    """A classifier's accuracy, per-class accuracy and confusion matrix on rows `X`, printed."""
    predicted = net.predict(X)
    k = max(net.sizes[-1], 2)
    names = [str(c) for c in (labels or range(k))]
    confusion = np.bincount(y * k + predicted, minlength=k * k).reshape(k, k)  # rows: true class, columns: predicted
    per_class = confusion.diagonal() / np.maximum(confusion.sum(axis=1), 1)
    accuracy = float(confusion.diagonal().sum() / len(y))
    if plots:
        plots.confusion_matrix(confusion, args.plot, title=f"{args.model} on {what}: {accuracy:.2%}")
    if not args.json:
        print(f"accuracy {accuracy:.2%} ({confusion.diagonal().sum()}/{len(y)}) on {what}, {net.device}")
        print("per-class accuracy: " + "  ".join(f"{c}: {a:.1%}" for c, a in zip(names, per_class)))
        print("confusion matrix (rows: true class, columns: predicted):")
        width, first = max(len(str(confusion.max())), *(len(c) for c in names), 2), max(4, *(len(c) for c in names))
        print(" " * (first + 1) + " ".join(f"{c:>{width}}" for c in names))
        for c, row in zip(names, confusion):
            print(f"{c:>{first}} " + " ".join(f"{n:>{width}}" for n in row))
        if args.plot:
            print(f"confusion matrix drawn in {args.plot}")
    return accuracy, per_class, confusion


def _evaluate_file(args: argparse.Namespace, net: Network, plots: Any) -> dict[str, Any]:
    """`evaluate --data`: a model's scores on a file's rows."""
    table = tables.read(
        args.data, target=args.target, task=_file_task(net), classes=tabular.classes(net), n_features=net.sizes[0]
    )
    if table.y is None:
        raise ValueError(f"{args.data} has no target column to score against (it has the model's {net.sizes[0]} features only)")
    result: dict[str, Any] = {"command": "evaluate", "model": args.model, "data": args.data, "device": net.device}
    what = os.path.basename(args.data)
    if net.trained_on == f"file:{what}":
        log.warning(
            "warning: %s was trained on rows of a file named %s: this score is not measured on unseen rows alone",
            args.model,
            what,
        )
    if net.task == "regression":
        metrics = net.metrics(table.X, table.y)
        if not args.json:
            print(f"RMSE {metrics['rmse']:.4g}, R² {metrics['r2']:.4f} on {what} ({len(table.X)} rows), {net.device}")
        return {**result, "rmse": metrics["rmse"], "r2": metrics["r2"], "examples": len(table.X)}
    accuracy, per_class, confusion = _confusion(args, net, table.X, table.y, what, plots, net.classes)
    return {
        **result,
        "accuracy": accuracy,
        "classes": list(tabular.classes(net) or ()),
        "per_class_accuracy": per_class.tolist(),
        "confusion_matrix": confusion.tolist(),
        "plot": args.plot,
    }


def _file_task(net: Network) -> str:
    if net.task == "multilabel":
        raise ValueError("a multi-label model's targets are several columns: score it from Python (Network.metrics)")
    return "regression" if net.task == "regression" else "classification"


def _predict(args: argparse.Namespace) -> dict[str, Any]:
    if not args.out.lower().endswith(".csv"):
        raise ValueError(f"--out writes CSV: give a file name ending in .csv, got {args.out!r}")
    files.writable(args.out)
    net = load(args.model, device=args.device)
    if args.proba and net.task == "regression":
        raise ValueError(f"--proba gives class probabilities, and {args.model} is a regression")
    table = tables.read(
        args.data, target=args.target, task=_file_task(net), classes=tabular.classes(net), n_features=net.sizes[0]
    )
    names, blocks = tabular.predictions(net, table.X, args.proba)
    n = tabular.write_csv(args.out, names, blocks)
    if not args.json:
        print(f"{n} predictions of {args.model} for {args.data} written to {args.out}")
    return {"command": "predict", "model": args.model, "data": args.data, "out": args.out, "rows": n, "columns": names}


def _export(args: argparse.Namespace) -> dict[str, Any]:
    from . import export

    if not args.out.lower().endswith(".onnx"):
        raise ValueError(f"export writes ONNX: give a file name ending in .onnx, got {args.out!r}")
    files.writable(args.out)
    model = formats.read_model(args.model)
    export.write(model, args.out)
    if not args.json:
        print(f"{args.model} exported to {args.out} (ONNX; input 'x' of shape (N, {model.config.sizes[0]}), float32)")
    return {"command": "export", "model": args.model, "out": args.out}


def _info(args: argparse.Namespace) -> dict[str, Any]:
    blas = backend.blas_info()
    result = {
        "command": "info",
        "xpbp": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": blas,
        "cuda": backend.cuda_info(),
    }
    if not args.json:
        cuda = result["cuda"]
        print(f"xpbp {result['xpbp']}, Python {result['python']}, NumPy {result['numpy']}")
        print(_blas_line(blas))
        if blas["override"]:
            log.warning("warning: %s", blas["override"])
        print(
            f"CuPy {cuda.get('cupy', 'not installed')}"
            + (f", CUDA runtime {cuda['cuda_runtime']}" if "cuda_runtime" in cuda else "")
        )
        for d in cuda.get("devices", []):
            print(f"{d['device']}: {d['name']}, {d['memory_gib']} GiB")
        print("CUDA usable: " + ("yes" if cuda["available"] else f"no ({cuda['reason']})"))
    return result


def _blas_line(blas: dict[str, Any]) -> str:
    """The BLAS, its threads and kernel, the CPU's vector extensions and what forces them, in one line."""
    loaded = ", ".join(
        part
        for part in (
            blas["library"] and f"{blas['library']}",
            blas["threading_layer"] and f"{blas['threading_layer']}",
            blas["threads"] and f"{blas['threads']} threads",
            f"kernel {blas['kernel'] or 'unknown'}",
        )
        if part
    )
    forced = " ".join(f"{k}={v}" for k, v in blas["forced_by"].items())
    return (
        f"BLAS: {blas['name'] or 'unknown'} {blas['version'] or ''} ({loaded}); "
        f"CPU: {', '.join(blas['extensions']) or 'extensions unknown'}" + (f"; set: {forced}" if forced else "")
    )


def _bench(args: argparse.Namespace) -> dict[str, Any]:
    _outputs(args)
    logging.getLogger("xpbp.network").setLevel(logging.WARNING)  # no epoch lines from the fits it times
    nets = [tuple(s) for s in args.sizes] if args.sizes else list(bench.NETS[:2] if args.quick else bench.NETS)
    batches = args.batch_sizes or ([10, 128] if args.quick else list(bench.BATCHES))
    for n in [*batches, *(w for s in nets for w in s)]:
        validation.positive_int(n, "every size and batch size")
    repeats = validation.positive_int((2 if args.quick else 3) if args.repeats is None else args.repeats, "repeats")
    devices = args.devices.split(",") if args.devices else bench.devices()
    devices = [backend.canonical(d) for d in devices]  # each checked before any is measured
    cells = bench.grid(nets, batches, args.dtype, devices)
    machine = bench.machine()
    if machine["blas"]["override"]:
        log.warning("warning: %s", machine["blas"]["override"])  # before the numbers it colours
    rows = bench.run(cells, repeats=repeats, target=0.1 if args.quick else 0.25, say=log.info)
    summary = bench.summary(rows)
    if args.plot:
        bench.plot(rows, args.plot, f"xpbp fit on {machine['cpu']} ({machine['cores']} cores)")
    if not args.json:
        gpus = ", ".join(d["name"] for d in machine["cuda"].get("devices", [])) or "none"
        print(f"{machine['cpu']}, {machine['cores']} cores; GPUs: {gpus}; NumPy {machine['numpy']}; xpbp {machine['xpbp']}")
        print(_blas_line(machine["blas"]))
        print(bench.table(summary))
        if args.plot:
            print(f"plot drawn in {args.plot}")
    result = {"command": "bench", "machine": machine, "cells": summary, "rows": rows, "plot": args.plot}
    if args.native_kernel:
        result["native"] = _native_bench(args, machine["blas"])
    return result


def _native_bench(args: argparse.Namespace, blas_now: dict[str, Any]) -> dict[str, Any] | None:
    """`bench` again in a child process whose environment lacks the kernel-forcing variables
    (None when none is set: the kernel measured is already the native one)."""
    if not blas_now["forced_by"]:
        log.info("no variable forces the BLAS kernel: the kernel measured (%s) is the one the library picked", blas_now["kernel"])
        return None
    argv, skip = [], False
    for a in args.argv:  # the same bench, but for what only this process does: the flag itself, JSON, the plot
        if not skip and a not in ("--native-kernel", "--json", "--plot") and not a.startswith(("--plot=", "--json=")):
            argv.append(a)
        skip = a == "--plot"
    env = native_environment(os.environ)
    log.info("measuring again without %s ...", ", ".join(blas_now["forced_by"]))
    child = subprocess.run([sys.executable, "-m", "xpbp", *argv, "--json"], env=env, capture_output=True, text=True)
    if child.returncode != 0:
        raise RuntimeError(f"bench without {', '.join(blas_now['forced_by'])} failed: {child.stderr.strip()[-500:]}")
    native = json.loads(child.stdout)
    if not args.json:
        print(f"without {', '.join(blas_now['forced_by'])} (kernel {native['machine']['blas']['kernel'] or 'unknown'}):")
        print(bench.table(native["cells"]))
    return {"machine": native["machine"], "cells": native["cells"]}


def native_environment(environ: Any) -> dict[str, str]:
    """`environ` without the variables that force a BLAS kernel (`xpbp.blas.FORCING`)."""
    return {k: v for k, v in environ.items() if k not in FORCING}


def _message(e: BaseException) -> str:
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    return f"out of memory: {text}" if isinstance(e, MemoryError) and "memory" not in text else text


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = arguments.parser().parse_args(argv)
    except arguments.UsageError as e:
        e.parser.print_usage(sys.stderr)
        print(f"{e.parser.prog}: error: {e}", file=sys.stderr)
        if any(a == "--json" or a.startswith("--json=") for a in argv):
            print(json.dumps({"error": str(e)}))
        return 2
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s", stream=sys.stderr)
    warnings.formatwarning = _warning_line
    try:
        commands = {
            "train": _train,
            "evaluate": _evaluate,
            "predict": _predict,
            "export": _export,
            "info": _info,
            "bench": _bench,
        }
        args.argv = argv  # what bench --native-kernel runs again
        result = commands[args.command](args)
    except (ValueError, TypeError, RuntimeError, OSError, ArithmeticError, MemoryError) as e:
        # An error every rank of a distributed run shares is told once, by rank 0; one of a
        # rank alone ends the whole job, since the others would wait for this rank forever.
        agreed = getattr(e, "agreed", False)
        if not agreed or _rank() == 0:
            print(f"xpbp: error: {_message(e)}", file=sys.stderr, flush=True)
            if args.json and _rank() == 0:  # one JSON object per job
                print(json.dumps({"error": _message(e)}), flush=True)
        if not agreed:
            distributed.end_job(1)
        return 1
    except KeyboardInterrupt:
        print("xpbp: interrupted", file=sys.stderr, flush=True)
        if args.json and _rank() == 0:
            print(json.dumps({"error": "interrupted"}), flush=True)
        distributed.end_job(130)
        return 130
    if args.json and result:
        print(json.dumps(result))
    return 0


def _warning_line(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> str:
    """A warning as the command's one line, not Python's two (file, line and source)."""
    return f"warning: {message}\n"


def _rank() -> int:
    """This process's rank in the launcher's world (0 outside one)."""
    return int(os.environ.get("PMI_RANK") or os.environ.get("OMPI_COMM_WORLD_RANK") or 0)
