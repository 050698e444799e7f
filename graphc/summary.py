"""TensorBoard summaries: ``gc.summary.scalar / histogram / text / merge / merge_all`` and
``gc.summary.FileWriter``.

A summary op is a graph node whose value is a serialized ``tensorboard`` ``Summary``
protocol buffer (bytes, TF's ``tf.string``): fetch it with ``sess.run`` and hand it to
``FileWriter.add_summary(summary, global_step)``. Merging is concatenation, since
protocol-buffer messages concatenate into the union of their repeated fields.

The protocol buffers and the event-file writer are TensorBoard's own
(``tensorboard.compat.proto``, ``tensorboard.summary.writer.EventFileWriter``, the writer
PyTorch's ``torch.utils.tensorboard`` uses too), so the files are exactly what
``tensorboard --logdir DIR`` reads. TensorBoard is an optional extra
(``pip install "graphc-compiler[tensorboard]"``), imported only when a summary is built.
"""

from __future__ import annotations

import weakref

import numpy as np

from .dtypes import string
from .errors import GraphcError, user_location
from .ops.registry import OpDef

SUMMARIES = "summaries"  # TF's GraphKeys.SUMMARIES
INSTALL_HINT = 'pip install "graphc-compiler[tensorboard]"'
HISTOGRAM_BINS = 30


def _tb():
    """TensorBoard's protocol buffers and writer, or a clear error saying how to get them."""
    try:
        from tensorboard.compat.proto import (
            event_pb2,
            graph_pb2,
            summary_pb2,
            tensor_pb2,
            tensor_shape_pb2,
            types_pb2,
        )
        from tensorboard.summary.writer.event_file_writer import EventFileWriter
    except ImportError as e:
        raise GraphcError(
            f"summaries need TensorBoard ({e}): {INSTALL_HINT}", user_location()
        ) from None
    return dict(
        event=event_pb2,
        graph=graph_pb2,
        summary=summary_pb2,
        tensor=tensor_pb2,
        shape=tensor_shape_pb2,
        types=types_pb2,
        writer=EventFileWriter,
    )


def _bytes(value) -> np.ndarray:
    return np.array(value, dtype=object)


# --- the kernels: numpy values in, a serialized Summary out -------------------------------------


def scalar_summary(value, tag):
    pb = _tb()["summary"]
    arr = np.asarray(value)
    if arr.size != 1:
        raise GraphcError(f"summary.scalar {tag!r}: expected one value, got shape {arr.shape}")
    return _bytes(
        pb.Summary(
            value=[pb.Summary.Value(tag=tag, simple_value=float(arr.reshape(())))]
        ).SerializeToString()
    )


def histogram_proto(values, bins=HISTOGRAM_BINS):
    """TF 1.x's HistogramProto of ``values`` (``bins`` equal-width buckets)."""
    pb = _tb()["summary"]
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        return pb.HistogramProto()
    counts, edges = np.histogram(v, bins=bins)
    return pb.HistogramProto(
        min=float(v.min()),
        max=float(v.max()),
        num=float(v.size),
        sum=float(v.sum()),
        sum_squares=float(np.dot(v, v)),
        bucket_limit=[float(e) for e in edges[1:]],
        bucket=[float(c) for c in counts],
    )


def histogram_summary(values, tag):
    pb = _tb()["summary"]
    return _bytes(
        pb.Summary(
            value=[pb.Summary.Value(tag=tag, histo=histogram_proto(values))]
        ).SerializeToString()
    )


def text_summary_bytes(text, tag):
    """A text-plugin summary (what ``tf.summary.text`` writes): a string tensor."""
    tb = _tb()
    pb = tb["summary"]
    arr = np.asarray(text, dtype=object)
    strings = [s.encode("utf-8") if isinstance(s, str) else bytes(s) for s in arr.ravel()]
    tensor = tb["tensor"].TensorProto(
        dtype=tb["types"].DT_STRING,
        string_val=strings,
        tensor_shape=tb["shape"].TensorShapeProto(
            dim=[tb["shape"].TensorShapeProto.Dim(size=d) for d in arr.shape]
        ),
    )
    meta = pb.SummaryMetadata(plugin_data=pb.SummaryMetadata.PluginData(plugin_name="text"))
    return _bytes(
        pb.Summary(
            value=[pb.Summary.Value(tag=tag, metadata=meta, tensor=tensor)]
        ).SerializeToString()
    )


def merge_summaries(*summaries):
    return _bytes(
        b"".join(bytes(np.asarray(s, dtype=object).reshape(()).item()) for s in summaries)
    )


def _string_rule(ins, attrs):
    return [(string, ())]


def _scalar_kernel(ctx, node, value, tag):
    return scalar_summary(value, tag)


def _histogram_kernel(ctx, node, values, tag):
    return histogram_summary(values, tag)


def _text_kernel(ctx, node, *text, tag, value=None):
    return text_summary_bytes(text[0] if text else value, tag)


def _merge_kernel(ctx, node, *summaries):
    return merge_summaries(*summaries)


# Kept out of the op registry, like compat's string constant: no gradient, no shape rule worth
# testing, and a kernel that only serializes its input. stateful=True keeps them out of
# constant folding, whose constants are numeric arrays (a summary of a constant is still a
# summary to write at each step).
SCALAR_SUMMARY = OpDef(
    "scalar_summary",
    _string_rule,
    numpy=_scalar_kernel,
    kind="other",
    stateful=True,
    differentiable=False,
    doc="A TensorBoard scalar: one value under a tag.",
)
HISTOGRAM_SUMMARY = OpDef(
    "histogram_summary",
    _string_rule,
    numpy=_histogram_kernel,
    kind="other",
    stateful=True,
    differentiable=False,
    doc="A TensorBoard histogram of all the values of a tensor.",
)
TEXT_SUMMARY = OpDef(
    "text_summary",
    _string_rule,
    numpy=_text_kernel,
    kind="other",
    stateful=True,
    differentiable=False,
    doc="A TensorBoard text summary.",
)
MERGE_SUMMARY = OpDef(
    "merge_summary",
    _string_rule,
    numpy=_merge_kernel,
    kind="other",
    stateful=True,
    differentiable=False,
    doc="Several summaries as one.",
)


# --- building summary ops -----------------------------------------------------------------------


def _tensor(value, what):
    from .ir.node import Tensor
    from .ops.sources import constant

    if isinstance(value, Tensor):
        return value
    try:
        return constant(value)
    except GraphcError:
        raise
    except Exception as e:
        raise GraphcError(
            f"summary.{what}: cannot make a tensor of {value!r}: {e}", user_location()
        ) from None


def _tag(name):
    from .ir.graph import get_default_graph

    scope = get_default_graph().get_name_scope()
    return f"{scope}/{name}" if scope else name


def _add(op, collections):
    for key in collections if collections is not None else [SUMMARIES]:
        op.graph.add_to_collection(key, op)
    return op


def _check_name(name, what):
    if not isinstance(name, str) or not name:
        raise GraphcError(
            f"summary.{what}: the name must be a non-empty string, got {name!r}", user_location()
        )


def scalar(name, tensor, collections=None, family=None):
    """A scalar summary of ``tensor`` (one value) under the tag ``name`` (inside the current
    name scope, as in TF). Returns a string tensor to fetch and pass to
    ``FileWriter.add_summary``; also added to the ``"summaries"`` collection (``merge_all``)."""
    _check_name(name, "scalar")
    _tb()
    t = _tensor(tensor, "scalar")
    if (
        t.shape is not None
        and all(isinstance(d, int) for d in t.shape)
        and int(np.prod(t.shape, dtype=np.int64)) != 1
    ):
        raise GraphcError(
            f"summary.scalar {name!r}: {t.describe()} has shape {tuple(t.shape)}; "
            f"a scalar summary takes one value (reduce it first, e.g. "
            f"gc.reduce_mean)",
            user_location(),
        )
    tag = _tag(f"{family}/{name}" if family else name)
    return _add(SCALAR_SUMMARY(t, name=name, tag=tag), collections)


def histogram(name, values, collections=None, family=None):
    """A histogram summary of all the values of ``values`` (30 buckets between its min and max)."""
    _check_name(name, "histogram")
    _tb()
    t = _tensor(values, "histogram")
    tag = _tag(f"{family}/{name}" if family else name)
    return _add(HISTOGRAM_SUMMARY(t, name=name, tag=tag), collections)


def text(name, tensor, collections=None):
    """A text summary (shown by TensorBoard's Text tab); ``tensor`` is a Python string, a
    list of them, or a string tensor (``tf.constant("...")`` in compat)."""
    _check_name(name, "text")
    _tb()
    from .ir.node import Tensor

    if isinstance(tensor, Tensor):
        op = TEXT_SUMMARY(tensor, name=name, tag=_tag(name))
    else:  # a Python string (or list of them) travels as the op's attribute
        op = TEXT_SUMMARY(name=name, tag=_tag(name), value=np.array(tensor, dtype=object))
    return _add(op, collections)


def merge(inputs, collections=None, name=None):
    """One summary holding all of ``inputs`` (summary tensors)."""
    from .ir.node import Tensor

    inputs = [t for t in inputs if isinstance(t, Tensor)]  # compat's no-op summaries drop out
    if not inputs:
        raise GraphcError("summary.merge: no summaries to merge", user_location())
    op = MERGE_SUMMARY(*inputs, name=name or "Merge/MergeSummary")
    for key in collections or ():
        op.graph.add_to_collection(key, op)
    return op


def merge_all(key=SUMMARIES, scope=None, name=None, graph=None):
    """Every summary of the graph's ``key`` collection merged into one, or ``None`` when there
    is none (as in TF)."""
    from .ir.graph import get_default_graph

    graph = graph or get_default_graph()
    found = graph.get_collection(key, scope=scope) if scope else graph.get_collection(key)
    if not found:
        return None
    with graph.as_default():
        return merge(found, name=name)


# --- the graph, as TensorBoard's GraphDef -------------------------------------------------------


def graph_def(graph):
    """``graph`` as a TensorBoard ``GraphDef``: one NodeDef per op (name scopes become
    TensorBoard's groups), inputs ``name:k``, control inputs ``^name``, dtype and shape attrs."""
    tb = _tb()
    gpb, types, shape_pb = tb["graph"], tb["types"], tb["shape"]
    from tensorboard.compat.proto import attr_value_pb2, node_def_pb2

    dt = {
        "float16": types.DT_HALF,
        "float32": types.DT_FLOAT,
        "float64": types.DT_DOUBLE,
        "int8": types.DT_INT8,
        "int16": types.DT_INT16,
        "int32": types.DT_INT32,
        "int64": types.DT_INT64,
        "uint8": types.DT_UINT8,
        "bool": types.DT_BOOL,
    }
    out = gpb.GraphDef()
    for op in graph.get_operations():
        node = node_def_pb2.NodeDef(name=op.name, op=op.type)
        for t in op.inputs:
            k = t.op.outputs.index(t)
            node.input.append(t.op.name if k == 0 else f"{t.op.name}:{k}")
        for c in op.control_inputs:
            node.input.append("^" + c.name)
        if op.outputs:
            t0 = op.outputs[0]
            node.attr["T"].CopyFrom(
                attr_value_pb2.AttrValue(
                    type=dt.get(getattr(t0.dtype, "name", ""), types.DT_STRING)
                )
            )
            shapes = attr_value_pb2.AttrValue.ListValue()
            for t in op.outputs:
                dims = (
                    []
                    if t.shape is None
                    else [
                        shape_pb.TensorShapeProto.Dim(size=d if isinstance(d, int) else -1)
                        for d in t.shape
                    ]
                )
                shapes.shape.add().CopyFrom(
                    shape_pb.TensorShapeProto(dim=dims, unknown_rank=t.shape is None)
                )
            node.attr["_output_shapes"].CopyFrom(attr_value_pb2.AttrValue(list=shapes))
        if op.location is not None:
            node.attr["_location"].CopyFrom(
                attr_value_pb2.AttrValue(s=str(op.location).encode("utf-8"))
            )
        out.node.append(node)
    return out


# --- the writer ---------------------------------------------------------------------------------


class FileWriter:
    """Writes TensorBoard event files into ``logdir`` (created if needed):
    ``add_summary(summary, global_step)`` for what a summary op fetched, ``add_graph(graph)``
    for the Graphs tab (also done by ``graph=`` here), ``flush()``, ``close()``.
    Usable as a context manager."""

    def __init__(
        self,
        logdir,
        graph=None,
        max_queue=10,
        flush_secs=120,
        filename_suffix=None,
        session=None,
        **ignored,
    ):
        import os

        tb = _tb()
        self._pb = tb
        self.logdir = os.fspath(logdir)
        os.makedirs(self.logdir, exist_ok=True)
        self._writer = tb["writer"](
            self.logdir,
            max_queue_size=max_queue,
            flush_secs=flush_secs,
            filename_suffix=filename_suffix or "",
        )
        self._closed = False
        # a writer the script never closes (TF 1.x tutorials) still reaches the disk at exit
        self._finalizer = weakref.finalize(self, self._writer.close)
        if graph is not None:
            self.add_graph(graph)

    def _event(self, **fields):
        import time

        if self._closed:
            raise GraphcError(f"FileWriter({self.logdir!r}) is closed")
        ev = self._pb["event"].Event(wall_time=time.time(), **fields)
        self._writer.add_event(ev)

    def add_summary(self, summary, global_step=None):
        """Write a fetched summary (bytes or a ``Summary`` proto) at step ``global_step``."""
        if summary is None:
            return
        pb = self._pb["summary"]
        if isinstance(summary, np.ndarray):
            summary = (
                summary.reshape(()).item()
                if summary.size == 1
                else b"".join(bytes(s) for s in summary.ravel())
            )
        if isinstance(summary, (bytes, bytearray)):
            msg = pb.Summary()
            try:
                msg.ParseFromString(bytes(summary))
            except Exception as e:
                raise GraphcError(f"add_summary: not a serialized Summary ({e})") from None
            summary = msg
        if not isinstance(summary, pb.Summary):
            raise GraphcError(
                f"add_summary takes what a summary op fetched (bytes), got {type(summary).__name__}"
            )
        self._event(summary=summary, step=int(global_step or 0))

    def add_scalar(self, tag, value, global_step=None):
        """A scalar straight from Python (no graph op): ``writer.add_scalar("loss", 0.3, 10)``."""
        self.add_summary(scalar_summary(value, tag).item(), global_step)

    def add_histogram(self, tag, values, global_step=None):
        self.add_summary(histogram_summary(values, tag).item(), global_step)

    def add_text(self, tag, text, global_step=None):
        self.add_summary(text_summary_bytes(text, tag).item(), global_step)

    def add_graph(self, graph, global_step=None, **ignored):
        """Write ``graph`` (a graphc Graph, or a compat ``graph_def``) for the Graphs tab."""
        from .ir.graph import Graph

        if isinstance(graph, Graph):
            graph = graph_def(graph)
        elif hasattr(graph, "graph") and isinstance(graph.graph, Graph):  # a Session
            graph = graph_def(graph.graph)
        self._event(graph_def=graph.SerializeToString(), step=int(global_step or 0))

    def add_run_metadata(self, run_metadata, tag, global_step=None):
        pass  # graphc has no per-op run metadata

    def add_session_log(self, session_log, global_step=None):
        pass

    def get_logdir(self):
        return self.logdir

    def flush(self):
        if not self._closed:
            self._writer.flush()

    def close(self):
        if not self._closed:
            self._finalizer()
            self._closed = True

    def reopen(self):
        if self._closed:
            self._writer.reopen()
            self._finalizer = weakref.finalize(self, self._writer.close)
            self._closed = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
