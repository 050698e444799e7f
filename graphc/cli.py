"""The ``graphc`` command: compile, run, check, format and draw ``.g`` models.

    graphc compile model.g [-O 2] [--backend numpy] [--emit report|py|dot|ir|onnx] [-o OUT]
    graphc run model.g --feed x=x.npy --feed y=y.csv [--fetch loss] [--train 100]
                       [--batch-size 64 --epochs 5 --shuffle --eval x=xt.npy --logdir runs]
                       [--save ckpt] [--restore ckpt] [--np N]
    graphc check model.g          graphc fmt model.g [-i]        graphc viz model.g -o g.svg

Exit status: 0 on success, 1 on a user error (the message names the file, line and column),
2 on bad usage (argparse's convention). A user error never shows a Python traceback;
``GRAPHC_DEBUG=1`` shows one for errors inside graphc itself.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import shutil
import sys
import time
import zipfile

import numpy as np

from .backends import available_backends
from .backends.standalone import emit_module
from .checkpoint import Saver
from .compiler import compile as gc_compile
from .errors import FeedError, GraphcError, NotFoundError, escape_controls
from .frontend.dsl import (
    MODEL_NAME,
    OPTIMIZER_WRAPPER,
    OUTPUTS,
    TRAIN_CLAUSES,
    load,
    loads_each,
)
from .frontend.fmt import format_source
from .frontend.parser import attach_source
from .ir.graph import Graph, needed_ops
from .ir.printer import format_type
from .ops.state import GLOBAL_VARIABLES, variables_initializer
from .session import Session

EXIT_OK, EXIT_USER, EXIT_USAGE = 0, 1, 2


# --- loading and feeding ----------------------------------------------------------------------


def _load(args):
    return load(args.model_file, model=args.model, graph=Graph())


def _inputs(graph):
    return [
        op.outputs[0]
        for op in graph.get_operations()
        if op.type in ("placeholder", "placeholder_with_default")
    ]


def _outputs(graph):
    return graph.get_collection(OUTPUTS)


def _clause(graph):
    clauses = graph.get_collection(TRAIN_CLAUSES)
    return clauses[-1] if clauses else None


def _parse_dims(items) -> dict:
    dims = {}
    for item in items or ():
        name, sep, value = item.partition("=")
        if not sep or not value.strip().isdigit():
            raise GraphcError(f"--dim takes NAME=SIZE (e.g. N=64), got {item!r}")
        dims[name.strip()] = int(value)
    return dims


def _feed_shapes(graph, dims: dict) -> tuple[dict, dict]:
    """Concrete shapes for compiling: symbolic dims from ``--dim`` (default 1)."""
    shapes, used = {}, {}
    for t in _inputs(graph):
        if t.op.type != "placeholder" or t.shape is None:
            continue
        shape = []
        for d in t.shape:
            if isinstance(d, int):
                shape.append(d)
            else:
                key = d if isinstance(d, str) else "?"
                used[key] = dims.get(key, 1)
                shape.append(used[key])
        shapes[t] = tuple(shape)
    return shapes, used


def _feed_limit() -> int:
    """The most bytes one feed file may unpack to: GRAPHC_MAX_FEED_BYTES, else half the
    machine's memory."""
    env = os.environ.get("GRAPHC_MAX_FEED_BYTES", "")
    if env.isdigit():
        return int(env)
    return (_memory_available() or (1 << 35)) // 2


def _checked_npy(f, path: str, available: int) -> None:
    """Read the .npy header at ``f``'s position and check that the array it declares is
    plain numbers, fits the ``available`` bytes that follow it and the feed limit — before
    numpy allocates anything (a 176-byte header can claim terabytes)."""
    fmt = np.lib.format
    start = f.tell()
    version = fmt.read_magic(f)
    if version == (1, 0):
        shape, fortran, dtype = fmt.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, fortran, dtype = fmt.read_array_header_2_0(f)
    else:
        raise FeedError(f"cannot read {path}: .npy format version {version} is not supported")
    if dtype.hasobject:
        raise FeedError(f"cannot read {path}: it holds Python objects (graphc never unpickles)")
    declared = dtype.itemsize
    for d in shape:
        declared *= d
    left = available - (f.tell() - start)
    if declared > left:
        raise FeedError(
            f"cannot read {path}: its header declares shape {shape} of {dtype} "
            f"({declared:,} bytes), but only {max(left, 0):,} bytes follow it"
        )
    limit = _feed_limit()
    if declared > limit:
        raise FeedError(
            f"cannot read {path}: its array of {declared:,} bytes is over the limit "
            f"of {limit:,} (GRAPHC_MAX_FEED_BYTES)"
        )


def _load_npy(path: str):
    from .fileio import check_regular

    size = check_regular(path, "feed file", FeedError)
    with open(path, "rb") as f:
        _checked_npy(f, path, size)
        f.seek(0)
        return np.load(f, allow_pickle=False)


def _open_npz(path: str):
    """``np.load`` of a .npz whose every member was checked first (see _checked_npy): a zip
    bomb is refused by its declared sizes, not found out by running out of memory."""

    from .fileio import check_regular

    check_regular(path, "feed file", FeedError)
    total, limit = 0, _feed_limit()
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            total += info.file_size
            if total > limit:
                raise FeedError(
                    f"cannot read {path}: its arrays unpack to more than the limit "
                    f"of {limit:,} bytes (GRAPHC_MAX_FEED_BYTES)"
                )
            if info.filename.endswith(".npy"):
                with zf.open(info) as member:
                    _checked_npy(member, f"{path}:{info.filename}", info.file_size)
    return np.load(path, allow_pickle=False)


def _read_array(path: str, key: str | None, like):
    """One array from .npy, .npz (by key) or .csv; never unpickles; declared sizes are
    checked against the file and the feed limit before anything is allocated; a device or a
    FIFO is refused."""
    ext = os.path.splitext(path)[1].lower()
    try:
        if ext == ".npy":
            return _load_npy(path)
        if ext == ".npz":
            with _open_npz(path) as z:
                names = list(z.keys())
                if key in names:
                    return z[key]
                if len(names) == 1:
                    return z[names[0]]
                raise FeedError(
                    f"{path} holds {', '.join(names)}; none is named {key!r} "
                    f"(use --feed {key}={path} with an array named {key})"
                )
        if ext in (".csv", ".txt"):
            from .fileio import check_regular

            check_regular(path, "feed file", FeedError)
            arr = np.loadtxt(path, delimiter="," if ext == ".csv" else None, ndmin=2)
            if like.shape is not None and len(like.shape) == 1 and arr.shape[1] == 1:
                arr = arr[:, 0]
            if like.dtype.np.kind in "iub":  # labels written as 3 or 3.0
                if not np.array_equal(arr, np.round(arr)):
                    raise FeedError(
                        f"{path} holds fractions, but input {like.op.name} is {like.dtype}"
                    )
                arr = arr.astype(like.dtype.np)
            return arr
    except FeedError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise FeedError(f"cannot read {path}: {e or type(e).__name__}") from None
    except MemoryError:
        raise FeedError(f"cannot read {path}: not enough memory") from None
    raise FeedError(f"cannot read {path}: feeds are .npy, .npz or .csv files")


def _feeds(graph, specs) -> dict:
    inputs = {t.op.name: t for t in _inputs(graph)}
    feeds, given = {}, {}

    def once(t, spec):
        if t in feeds:
            raise FeedError(
                f"input {t.op.name!r} is fed twice: by --feed {given[t]} and by --feed {spec}"
            )
        given[t] = spec

    for spec in specs or ():
        name, sep, path = spec.partition("=")
        if not sep:  # --feed data.npz: every array whose name is an input
            if not spec.lower().endswith(".npz"):
                raise FeedError(
                    f"--feed takes NAME=FILE (or FILE.npz with arrays named like "
                    f"the inputs), got {spec!r}"
                )
            try:
                with _open_npz(spec) as z:
                    for k in z.keys():
                        if k in inputs:
                            once(inputs[k], spec)
                            feeds[inputs[k]] = z[k]
            except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
                raise FeedError(f"cannot read {spec}: {e or type(e).__name__}") from None
            continue
        if name not in inputs:
            close = difflib.get_close_matches(name, inputs, n=1)
            raise NotFoundError(
                f"--feed {name}=...: the model has no input {name!r}"
                + (
                    f"; did you mean {close[0]!r}?"
                    if close
                    else f" (inputs: {', '.join(inputs) or 'none'})"
                )
            )
        once(inputs[name], spec)
        feeds[inputs[name]] = _read_array(path, name, inputs[name])
    return feeds


def _fetches(graph, names):
    """``--fetch`` names, else the model's outputs, else its train loss, else every tensor
    nothing consumes (a graph printed from Python has no `output` statement)."""
    if names:
        out = []
        for item in names:
            out += [graph.get_tensor_by_name(n.strip()) for n in item.split(",") if n.strip()]
        return out
    outs = _outputs(graph)
    clause = _clause(graph)
    if not outs and clause is not None:
        outs = [clause.loss]
    if not outs:
        outs = _sinks(graph)
    if not outs:
        raise GraphcError(
            "the model computes nothing to fetch: add an `output` statement or "
            "name tensors with --fetch"
        )
    return outs


def _sinks(graph):
    ops = graph.get_operations()
    consumed = {t for op in ops for t in op.inputs}
    skip = (
        "placeholder",
        "placeholder_with_default",
        "variable",
        "const",
        "assign",
        "assign_add",
        "assign_sub",
    )
    return [t for op in ops if op.type not in skip for t in op.outputs if t not in consumed]


# --- commands ---------------------------------------------------------------------------------


def _summary(graph) -> list[str]:
    lines = []
    ins = _inputs(graph)
    if ins:
        lines.append("inputs:  " + ", ".join(f"{t.op.name} : {format_type(t)}" for t in ins))
    params = graph.get_collection("trainable_variables")
    if params:
        n = sum(int(np.prod(v.shape)) for v in params)
        lines.append(
            f"params:  {len(params)} ({n:,} values): "
            + ", ".join(f"{v.op.name} : {v.dtype.short}{list(v.shape)}" for v in params)
        )
    outs = _outputs(graph)
    if outs:
        lines.append("outputs: " + ", ".join(t.op.name for t in outs))
    clause = _clause(graph)
    if clause is not None:
        kw = ", ".join(f"{k}={v}" for k, v in clause.kwargs.items())
        lines.append(f"train:   {clause.loss.op.name} with {clause.optimizer}({kw})")
    return lines


def _plan(graph, args):
    fetches = list(_fetches(graph, getattr(args, "fetch", None)))
    clause = _clause(graph)
    if clause is not None:
        fetches.append(clause.op)
    shapes, used = _feed_shapes(graph, _parse_dims(getattr(args, "dim", None)))
    plan = gc_compile(
        fetches, feed_shapes=shapes, optimize=args.O, backend=args.backend, graph=graph
    )
    return plan, used


def _dims_note(used) -> str:
    if not used:
        return ""
    return " with " + ", ".join(f"{k}={v}" for k, v in used.items()) + " (set with --dim)"


def cmd_check(args) -> int:
    with open(args.model_file, encoding="utf-8") as f:
        text = f.read()
    found = False
    for name, graph in loads_each(text, args.model_file):  # parsed once, whatever the count
        if args.model and name != args.model:
            continue
        found = True
        args_one = argparse.Namespace(**{**vars(args), "model": name})
        plan, used = _plan(graph, args_one)
        need = _memory_needed(graph, plan, _feed_shapes(graph, _parse_dims(args.dim))[0])
        print(
            f"{args.model_file}: model {name}: ok, {len(graph)} ops; "
            f"peak memory {need['total']:,} bytes ({_memory_parts(need)})"
            f"{_dims_note(used)}"
        )
    if args.model and not found:
        raise NotFoundError(f"no model named {args.model!r} in {args.model_file}")
    return EXIT_OK


def _memory_needed(graph, plan, feed_shapes) -> dict:
    """What running ``plan`` holds at its peak, in bytes: the planned intermediates and
    results (the arena), the variables, the feeds, the constants and what kernels allocate
    at run time (counted whole: an upper bound)."""
    from .ops.state import GLOBAL_VARIABLES

    def nbytes(dtype, shape):
        if shape is None or not all(isinstance(d, int) for d in shape):
            return 0
        n = np.dtype(dtype.np).itemsize
        for d in shape:
            n *= d
        return n

    need = {
        "intermediates": plan.arena_bytes,
        "variables": sum(nbytes(v.dtype, v.shape) for v in graph.get_collection(GLOBAL_VARIABLES)),
        "feeds": sum(nbytes(t.dtype, s) for t, s in feed_shapes.items()),
        "constants": sum(
            s.nbytes or nbytes(s.dtype, s.shape) for s in plan.slots if s.kind == "const"
        ),
        "allocated": sum(nbytes(s.dtype, s.shape) for s in plan.slots if s.kind == "dynamic"),
    }
    need["total"] = sum(need.values())
    return need


def _memory_parts(need) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in need.items() if k != "total" and v) or "nothing"


def _memory_available() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def cmd_compile(args) -> int:
    graph = _load(args)
    if args.emit == "py":
        params = _restored_values(graph, args.restore) if args.restore else None
        source = emit_module(
            graph, source_name=os.path.basename(args.model_file), params=params, optimize=args.O
        )
        return _write(args.output, source)
    if args.emit == "onnx":
        return _emit_onnx(graph, args)
    plan, used = _plan(graph, args)
    if args.emit == "dot":
        return _write(args.output, _dot(graph, plan))
    if args.emit == "ir":
        return _write(args.output, _ir(plan))
    name = graph.get_collection(MODEL_NAME)
    lines = [f"model {name[0] if name else '?'} ({args.model_file})"] + _summary(graph)
    lines.append(f"peak memory: {plan.peak_bytes:,} bytes{_dims_note(used)}")
    lines.append(plan.report())
    return _write(args.output, "\n".join(lines) + "\n")


def _emit_onnx(graph, args) -> int:
    """The model's outputs (``--fetch``-free: its `output` names) as an ONNX file; parameters
    from ``--restore CKPT`` when given, else their initial values."""
    from .onnx import export
    from .session import Session

    out = args.output or os.path.splitext(os.path.basename(args.model_file))[0] + ".onnx"
    if out == "-":
        raise GraphcError("--emit onnx writes a binary file: give -o MODEL.onnx")
    fetches = {t.op.name: t for t in _fetches(graph, None)}
    dims = _parse_dims(args.dim)
    shapes = {t: s for t, s in _feed_shapes(graph, dims)[0].items()} if dims else None
    if args.restore:
        from .checkpoint import Saver

        with graph.as_default():
            saver = Saver(graph=graph)
        with Session(graph=graph, optimize=0) as sess:
            saver.restore(sess, args.restore)
            export(fetches, out, feed_shapes=shapes, session=sess, graph=graph)
    else:
        export(fetches, out, feed_shapes=shapes, graph=graph)
    print(f"wrote {out}", file=sys.stderr)
    return EXIT_OK


def _restored_values(graph, path) -> dict:
    """The variables' values in checkpoint ``path`` (restored through gc.train.Saver)."""
    variables = graph.get_collection(GLOBAL_VARIABLES)
    with graph.as_default():
        saver = Saver(graph=graph)
    with Session(graph=graph, optimize=0) as sess:
        saver.restore(sess, path)
        return {v.op.name: sess.run(v) for v in variables}


def _write(path, text) -> int:
    if path in (None, "-"):
        sys.stdout.write(text)
    else:
        _atomic_write(path, text)
        print(f"wrote {path}", file=sys.stderr)
    return EXIT_OK


def _atomic_write(path, text):
    from .fileio import write_atomic

    write_atomic(path, text)


def _atomic_savez(path, arrays):
    import io

    from .fileio import write_atomic

    buf = io.BytesIO()
    np.savez(buf, **{k.replace("/", "."): np.asarray(v) for k, v in arrays.items()})
    write_atomic(path, buf.getvalue())
    print(f"wrote {path}", file=sys.stderr)


def _ir(plan) -> str:
    lines = [
        f"# plan: {len(plan.steps)} steps, {len(plan.slots)} slots, peak {plan.peak_bytes} bytes"
    ]
    for s in plan.steps:
        ins = ", ".join(f"%{i}" for i in s.inputs)
        outs = ", ".join(f"%{o}" for o in s.outputs)
        lines.append(f"{outs or '_'} = {s.kind} {s.title}({ins})")
    lines.append("fetch " + ", ".join(f"%{i}" for i in plan.fetches))
    return "\n".join(lines) + "\n"


def _dot_label(text: str) -> str:
    # DOT string: only quotes and backslashes need escaping; newlines become \n escapes
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _dot(graph, plan) -> str:
    """Two clusters side by side: the graph before optimization, the plan after."""
    clause = _clause(graph)
    ins = _inputs(graph)
    ops, _ = needed_ops(_fetches(graph, None), [clause.op] if clause else [], set(ins))
    ops = sorted(set(ops) | {t.op for t in ins}, key=lambda o: o.id)
    index = {op: i for i, op in enumerate(ops)}
    out = [
        "digraph graphc {",
        "  rankdir=TB; node [shape=box, fontsize=10];",
        f"  subgraph cluster_before {{ label={_dot_label(f'before: {len(ops)} nodes')};",
    ]
    for op, i in index.items():
        out.append(f"    b{i} [label={_dot_label(op.name + chr(10) + op.type)}];")
    for op, i in index.items():
        for t in op.inputs:
            if t.op in index:
                out.append(f"    b{index[t.op]} -> b{i};")
        for c in op.control_inputs:
            if c in index:
                out.append(f"    b{index[c]} -> b{i} [style=dashed];")
    out.append("  }")
    out.append(
        f"  subgraph cluster_after {{ label="
        f"{_dot_label(f'after: {len(plan.steps)} steps, peak {plan.peak_bytes} B')};"
    )
    producer = {}
    for s in plan.steps:
        out.append(f"    a{s.index} [label={_dot_label(s.title)}];")
        for slot in s.inputs:
            if slot in producer:
                out.append(f"    a{producer[slot]} -> a{s.index};")
        for slot in s.outputs:
            producer[slot] = s.index
    out += ["  }", "}"]
    return "\n".join(out) + "\n"


def cmd_viz(args) -> int:
    """Before and after optimization side by side; gradient and optimizer scopes collapsed
    unless ``--expand`` names them (graphc/viz.py)."""
    from .viz import graph_digraph, plan_digraph, render, to_dot

    graph = _load(args)
    plan, _ = _plan(graph, args)
    clause = _clause(graph)
    ins = _inputs(graph)
    ops, _ = needed_ops(_fetches(graph, None), [clause.op] if clause else [], set(ins))
    ops = sorted(set(ops) | {t.op for t in ins}, key=lambda o: o.id)
    expand = True if "all" in (args.expand or ()) else (args.expand or ())
    clusters = [
        (f"before: {len(ops)} nodes", graph_digraph(ops, expand=expand)),
        (f"after: {len(plan.steps)} steps, peak {plan.peak_bytes} B", plan_digraph(plan)),
    ]
    out = args.output or "graph.svg"
    if not out.endswith(".svg"):
        return _write(out, to_dot(clusters))
    graphviz = bool(shutil.which("dot"))
    if not graphviz:
        print(
            "graphviz's `dot` is not installed: drawing a plain layered SVG instead",
            file=sys.stderr,
        )
    return _write(out, render(clusters, use_graphviz=graphviz))


def cmd_fmt(args) -> int:
    with open(args.model_file, encoding="utf-8") as f:
        text = f.read()
    formatted = format_source(text, args.model_file)
    if args.check:
        if formatted != text:
            print(f"{args.model_file}: would be reformatted", file=sys.stderr)
            return EXIT_USER
        return EXIT_OK
    if args.in_place:
        if formatted != text:
            _atomic_write(args.model_file, formatted)
        return EXIT_OK
    sys.stdout.write(formatted)
    return EXIT_OK


def cmd_run(args) -> int:
    if getattr(args, "np", None):  # data-parallel: under mpiexec, one rank per process
        return _run_distributed(args)
    from .cli_train import check_arguments, run_training, wants_training

    check_arguments(args)
    graph = _load(args)
    feeds = _feeds(graph, args.feed)
    eval_feeds = _feeds(graph, args.eval) if args.eval else None
    fetches = _fetches(graph, args.fetch)
    _refuse_what_cannot_fit(graph, fetches, feeds)
    clause = _clause(graph)
    if wants_training(args) and clause is None:
        raise GraphcError(
            f"--train needs a `train LOSS with OPTIMIZER(...)` clause in {args.model_file}"
        )
    with graph.as_default():
        init = variables_initializer(graph.get_collection(GLOBAL_VARIABLES))
        saver = Saver(graph=graph) if (args.save or args.restore) else None
    with Session(graph=graph, backend=args.backend, optimize=args.O) as sess:
        if args.restore:
            saver.restore(sess, args.restore)
        else:
            sess.run(init)
        if wants_training(args):  # batches, epochs, eval, logs, Ctrl-C save: cli_train.py
            feeds = run_training(sess, graph, clause, feeds, args, saver, eval_feeds)
        values = sess.run(fetches, feeds)
        if args.output:
            _atomic_savez(args.output, {t.op.name: v for t, v in zip(fetches, values, strict=True)})
        if args.save:
            path = saver.save(sess, args.save)
            print(f"saved {path}", file=sys.stderr)
    with np.printoptions(precision=6, threshold=20, edgeitems=3, suppress=True):
        for t, v in zip(fetches, values, strict=True):
            print(f"{t.op.name} = {np.array2string(np.asarray(v), prefix=t.op.name + ' = ')}")
    return EXIT_OK


def _run_distributed(args) -> int:
    """``graphc run --np N``: relaunch under mpiexec; in each rank, train on its rows of the
    feeds with the train clause's optimizer wrapped in ``DistributedOptimizer`` (gradients
    weighted by the rank's share of the rows and summed: exact for unequal shards too);
    rank 0 fetches on all the rows, prints and writes ``-o`` and ``--save``."""
    from . import distributed as gd  # the MPI layer, only for --np

    gd.init()
    if gd.size() == 1 and args.np > 1:
        return gd.relaunch(args.np, args.argv)
    if gd.size() != args.np:
        raise GraphcError(f"--np {args.np}, but this MPI job has {gd.size()} ranks")
    full = _feeds(_load(args), args.feed)  # read once to learn this rank's rows
    _, weight = gd.shard_feeds(full)
    token = OPTIMIZER_WRAPPER.set(
        lambda opt: gd.DistributedOptimizer(opt, op="sum", gradient_scale=weight)
    )
    try:
        graph = _load(args)
    finally:
        OPTIMIZER_WRAPPER.reset(token)
    full = _feeds(graph, args.feed)
    feeds, _ = gd.shard_feeds(full)
    fetches = _fetches(graph, args.fetch)
    clause = _clause(graph)
    if args.train and clause is None:
        raise GraphcError(
            f"--train needs a `train LOSS with OPTIMIZER(...)` clause in {args.model_file}"
        )
    with graph.as_default():
        init = variables_initializer(graph.get_collection(GLOBAL_VARIABLES))
        sync = gd.broadcast_global_variables(0)
        saver = Saver(graph=graph) if (args.save or args.restore) else None
        if clause is not None:  # the progress bar shows the loss over all the rows
            import dataclasses

            loss = gd.allreduce(
                clause.loss * weight, op="sum", name=f"{clause.loss.op.name}_all_ranks"
            )
            clause = dataclasses.replace(clause, loss=loss)
    with Session(graph=graph, backend=args.backend, optimize=args.O) as sess:
        if args.restore:
            saver.restore(sess, args.restore)
        else:
            sess.run(init)
        sess.run(sync)
        if args.train:
            _train(sess, clause, feeds, args.train, quiet=gd.rank() != 0)
        if gd.rank() != 0:
            return EXIT_OK
        values = sess.run(fetches, full)
        if args.output:
            _atomic_savez(args.output, {t.op.name: v for t, v in zip(fetches, values, strict=True)})
        if args.save:
            print(f"saved {saver.save(sess, args.save)}", file=sys.stderr)
    _print_values(fetches, values)
    return EXIT_OK


def _print_values(fetches, values):
    with np.printoptions(precision=6, threshold=20, edgeitems=3, suppress=True):
        for t, v in zip(fetches, values, strict=True):
            print(f"{t.op.name} = {np.array2string(np.asarray(v), prefix=t.op.name + ' = ')}")


def _refuse_what_cannot_fit(graph, fetches, feeds):
    """Before anything runs: a model whose variables and fed arrays alone exceed the
    machine's memory is refused, with the numbers (instead of a MemoryError mid-run)."""
    from .ops.state import GLOBAL_VARIABLES

    have = _memory_available()
    if have is None:
        return
    need = sum(
        int(np.prod(v.shape, dtype=object)) * np.dtype(v.dtype.np).itemsize
        for v in graph.get_collection(GLOBAL_VARIABLES)
        if v.shape is not None and all(isinstance(d, int) for d in v.shape)
    )
    need += sum(np.asarray(a).nbytes for a in feeds.values())
    if need > have:
        from .errors import LimitError

        raise LimitError(
            f"the model needs at least {need:,} bytes for its variables and feeds; "
            f"this machine has {have:,}"
        )


def _train(sess, clause, feeds, steps, quiet=False):
    """``steps`` full-batch updates, with a progress bar (on stderr) and the loss."""
    step_fn = sess.make_callable([clause.op, clause.loss], list(feeds))
    values = list(feeds.values())
    if quiet:  # ranks other than 0 of a data-parallel run
        for _ in range(steps):
            step_fn(*values)
        return
    tty = sys.stderr.isatty()
    start, width, last = time.perf_counter(), 30, None
    every = max(1, steps // 20)
    for i in range(1, steps + 1):
        _, last = step_fn(*values)
        if i % every == 0 or i == steps:
            done = int(width * i / steps)
            bar = "#" * done + "-" * (width - done)
            line = f"[{bar}] {i}/{steps}  loss {float(last):.6g}"
            print(
                ("\r" + line) if tty else line, end="" if tty else "\n", file=sys.stderr, flush=True
            )
    if tty:
        print(file=sys.stderr)
    secs = time.perf_counter() - start
    print(f"trained {steps} steps in {secs:.2f}s: {clause.loss.op.name} = {float(last):.6g}")


# --- argument parsing -------------------------------------------------------------------------


def _version() -> str:
    from . import __version__

    return __version__


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="graphc", description="Compile, run and check .g models.")
    p.add_argument("--version", action="version", version=f"graphc {_version()}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def model_cmd(name, help_):
        c = sub.add_parser(name, help=help_, description=help_)
        c.add_argument("model_file", metavar="MODEL.g")
        c.add_argument("--model", help="which model of the file (default: the first)")
        return c

    def compiled(c):
        c.add_argument("-O", type=int, choices=(0, 1, 2), default=2, help="optimization level")
        c.add_argument(
            "--backend",
            choices=available_backends(),
            default="numpy",
            help="a registered backend (graphc.backends.register_backend)",
        )
        c.add_argument(
            "--dim",
            action="append",
            metavar="NAME=SIZE",
            type=_dim_arg,
            help="size of a symbolic dimension for planning (default 1)",
        )

    c = model_cmd("compile", "check, differentiate, optimize and plan; print the report")
    compiled(c)
    c.add_argument("--emit", choices=("report", "py", "dot", "ir", "onnx"), default="report")
    c.add_argument("-o", "--output", metavar="OUT", help="write here instead of stdout")
    c.add_argument(
        "--restore",
        metavar="CKPT",
        help="with --emit py or onnx: the parameters' values from this checkpoint",
    )
    c.set_defaults(run=cmd_compile)

    c = model_cmd("run", "run a model on feeds from .npy/.npz/.csv files, optionally training")
    compiled(c)
    c.add_argument("--feed", action="append", metavar="NAME=FILE", type=_feed_arg)
    c.add_argument("--fetch", action="append", metavar="NAMES", help="comma-separated names")
    from .cli_train import add_arguments

    add_arguments(c)  # --train [STEPS], --batch-size, --epochs, --eval, --logdir, ...
    c.add_argument("--save", metavar="CKPT")
    c.add_argument("--restore", metavar="CKPT")
    c.add_argument("-o", "--output", metavar="OUT.npz", help="also write the fetched values")
    c.add_argument(
        "--np",
        type=_positive,
        metavar="N",
        help="train data-parallel on N processes under mpiexec (the mpi extra)",
    )
    c.set_defaults(run=cmd_run)

    c = model_cmd("check", "parse, build and plan every model of a file")
    compiled(c)
    c.set_defaults(run=cmd_check)

    c = sub.add_parser("fmt", help="print the file in canonical layout")
    c.add_argument("model_file", metavar="MODEL.g")
    g = c.add_mutually_exclusive_group()
    g.add_argument("-i", "--in-place", action="store_true", help="rewrite the file")
    g.add_argument("--check", action="store_true", help="exit 1 if the file is not formatted")
    c.set_defaults(run=cmd_fmt)

    c = model_cmd("viz", "draw the graph before and after optimization (SVG, or DOT text)")
    compiled(c)
    c.add_argument("-o", "--output", metavar="OUT", default="graph.svg")
    c.add_argument(
        "--expand",
        action="append",
        metavar="SCOPE",
        help="draw a collapsed scope (gradients, Adam, ...) op by op; 'all' for all",
    )
    c.set_defaults(run=cmd_viz)
    return p


def _dim_arg(text):
    """``--dim NAME=SIZE``; anything else is bad usage (exit 2), like an unknown option."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip() or not value.strip().isdigit():
        raise argparse.ArgumentTypeError(f"takes NAME=SIZE (e.g. N=64), got {text!r}")
    return text


def _feed_arg(text):
    """``--feed NAME=FILE`` or ``--feed FILE.npz``; anything else is bad usage (exit 2)."""
    name, sep, _ = text.partition("=")
    if (not sep and not text.lower().endswith(".npz")) or (sep and not name.strip()):
        raise argparse.ArgumentTypeError(
            f"takes NAME=FILE (or FILE.npz with arrays named like the inputs), got {text!r}"
        )
    return text


def _positive(text):
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if n <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {n}")
    return n


def _describe(e: GraphcError) -> str:
    """A .g location with its line and caret; a Python location (this command's own frame)
    means nothing to a command-line user, so it is left out."""
    if isinstance(e, FeedError):  # the Python API's hint, in the command line's terms
        e.message = re.sub(
            r"Pass feed_dict=\{(\w+): value\}\.",
            r"Pass --feed \1=FILE (a .npy, .npz or .csv file).",
            e.message,
        )
        e.args = (e._format(),)
    if e.location is not None and e.location.col is None:
        return e.message
    return str(attach_source(e))


def main(argv=None) -> int:
    args = _parser().parse_args(argv)  # exits 2 on bad usage
    args.argv = list(sys.argv[1:] if argv is None else argv)  # for `run --np`'s relaunch
    try:
        return args.run(args)
    except GraphcError as e:
        print(f"error: {escape_controls(_describe(e), keep=chr(10))}", file=sys.stderr)
        return EXIT_USER
    except OSError as e:
        print(escape_controls(f"error: {e.filename or ''}: {e.strerror or e}"), file=sys.stderr)
        return EXIT_USER
    except MemoryError:
        print(
            "error: not enough memory (graphc check MODEL.g says what a model needs)",
            file=sys.stderr,
        )
        return EXIT_USER
    except UnicodeDecodeError as e:
        where = getattr(args, "model_file", None) or "the file"
        print(f"error: {where} is not UTF-8 text ({e.reason})", file=sys.stderr)
        return EXIT_USER
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug in graphc: say so briefly; GRAPHC_DEBUG=1 shows where
        if os.environ.get("GRAPHC_DEBUG"):
            raise
        print(
            f"internal error: {type(e).__name__}: {e} (GRAPHC_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return EXIT_USER


if __name__ == "__main__":
    sys.exit(main())
