"""TF 1.x's queue-based input path, run as a Python-side reader feeding the graph::

    queue = tf.train.string_input_producer(["data.csv"], shuffle=False)
    key, value = tf.TextLineReader(skip_header_lines=1).read(queue)
    columns = tf.decode_csv(value, record_defaults=[[0.], [0.], [0]])
    x_batch, y_batch = tf.train.batch([columns[:-1], columns[-1]], batch_size=10)
    coord = tf.train.Coordinator()
    threads = tf.train.start_queue_runners(sess=sess, coord=coord)

There are no queues or threads: ``reader.read`` is an op whose kernel reads the next line
of the files (per session), ``decode_csv`` parses it, and ``train.batch`` is an op whose
kernel runs that per-example part of the graph ``batch_size`` times and stacks the
results, which is what TF's queue runners did in the background. The end of the input
(``num_epochs`` passes over the files) raises ``tf.errors.OutOfRangeError``, as in TF.
``start_queue_runners`` and the ``Coordinator`` are there for the scripts' sake."""

from __future__ import annotations

import csv
import threading
import weakref

import numpy as np

from .. import dtypes as D
from ..errors import GraphcError, ShapeError, user_location
from ..ir.node import Tensor
from ..ops.registry import OpDef
from ..ops.sources import convert
from .data import OutOfRangeError
from .strings import string

_STATE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # run context -> readers


def _state(ctx) -> dict:
    s = _STATE.get(ctx)
    if s is None:
        s = _STATE[ctx] = {}
    return s


# --- the file name queue and the line reader --------------------------------------------------


class FilenameQueue:
    """What ``string_input_producer`` returns: the files, and how often to read them."""

    def __init__(self, filenames, num_epochs, shuffle, seed):
        self.filenames = filenames
        self.num_epochs = num_epochs
        self.shuffle = shuffle
        self.seed = seed

    def epochs(self):
        rng = np.random.default_rng(self.seed)
        k = 0
        while self.num_epochs is None or k < self.num_epochs:
            names = list(self.filenames)
            if self.shuffle:
                names = [names[i] for i in rng.permutation(len(names))]
            yield from names
            k += 1

    def size(self):
        return len(self.filenames)


def _names(value):
    if isinstance(value, Tensor):
        if value.op.type != "string_constant":
            raise GraphcError(
                "string_input_producer takes a list of file names (or a tf.constant of them)",
                user_location(),
            )
        value = value.op.attrs["value"].tolist()
    if isinstance(value, (str, bytes)):
        value = [value]
    return [v.decode() if isinstance(v, bytes) else str(v) for v in np.ravel(value).tolist()]


def string_input_producer(
    string_tensor,
    num_epochs=None,
    shuffle=True,
    seed=None,
    capacity=32,
    shared_name=None,
    name=None,
    cancel_op=None,
):
    """The files to read, ``num_epochs`` times (for ever when None), shuffled each epoch
    if ``shuffle`` (TF's default)."""
    names = _names(string_tensor)
    if not names:
        raise GraphcError("string_input_producer needs at least one file name", user_location())
    return FilenameQueue(
        names, None if num_epochs is None else int(num_epochs), bool(shuffle), seed
    )


def slice_input_producer(
    tensor_list, num_epochs=None, shuffle=True, seed=None, capacity=32, shared_name=None, name=None
):
    """One slice (along the first axis) of each of ``tensor_list`` per run, ``num_epochs``
    times through (for ever when None), in a new random order each epoch if ``shuffle``;
    the end raises ``OutOfRangeError``. What ``tf.train.batch`` batches, as in TF."""
    from .data import Dataset

    tensors = [convert(t) for t in tensor_list]
    ds = Dataset.from_tensor_slices(tuple(tensors))
    if shuffle:
        n = tensors[0].shape[0] if tensors and tensors[0].shape is not None else None
        ds = ds.shuffle(n if isinstance(n, int) else 1 << 20, seed=seed)
    ds = ds.repeat(num_epochs)
    return list(ds.make_one_shot_iterator().get_next(name=name))


def range_input_producer(
    limit, num_epochs=None, shuffle=True, seed=None, capacity=32, shared_name=None, name=None
):
    """The integers ``0 .. limit - 1``, one per run (``slice_input_producer`` of a range)."""
    return slice_input_producer(
        [np.arange(int(limit), dtype=np.int32)], num_epochs, shuffle, seed, name=name
    )[0]


def input_producer(
    input_tensor,
    element_shape=None,
    num_epochs=None,
    shuffle=True,
    seed=None,
    capacity=32,
    shared_name=None,
    summary_name=None,
    name=None,
    cancel_op=None,
):
    """The rows of ``input_tensor``, one per run."""
    return slice_input_producer([input_tensor], num_epochs, shuffle, seed, name=name)[0]


def _read_kernel(ctx, node, reader, queue):
    state = _state(ctx)
    lines = state.get(reader)
    if lines is None:
        lines = state[reader] = reader._lines(queue)
    try:
        key, line = next(lines)
    except StopIteration:
        raise OutOfRangeError(
            f"the input queue is exhausted: {queue.num_epochs} epoch(s) of {queue.filenames} read",
            reader._location,
        ) from None
    return np.array(key, dtype=object), np.array(line, dtype=object)


READ = OpDef(
    "reader_read",
    lambda ins, a: [(string, ()), (string, ())],
    numpy=_read_kernel,
    kind="state",
    stateful=True,
    differentiable=False,
    doc="The next (key, line) of a TextLineReader (Python-side).",
)


class TextLineReader:
    """Reads the files of a ``string_input_producer`` line by line; ``read`` gives
    ``(key, value)`` string tensors (``b"file:line"`` and the line)."""

    def __init__(self, skip_header_lines=None, name=None):
        self.skip = int(skip_header_lines or 0)
        self._location = user_location()

    def __hash__(self):
        return id(self)

    def __eq__(self, other):
        return self is other

    def _lines(self, queue):
        for path in queue.epochs():
            try:
                f = open(path, encoding="utf-8")  # noqa: SIM115 - a generator holds it
            except OSError as e:
                raise GraphcError(
                    f"TextLineReader cannot read {path}: {e.strerror or e}", self._location
                ) from None
            with f:
                for k, line in enumerate(f, start=1):
                    if k <= self.skip:
                        continue
                    line = line.rstrip("\r\n")
                    yield f"{path}:{k}".encode(), line.encode()

    def read(self, queue, name=None):
        if not isinstance(queue, FilenameQueue):
            raise GraphcError(
                "TextLineReader.read takes the queue of tf.train.string_input_producer",
                user_location(),
            )
        node = READ.build([], {"reader": self, "queue": queue}, name=name or "ReaderReadV2")
        return node.outputs[0], node.outputs[1]


# --- decode_csv -------------------------------------------------------------------------------


def _default_of(d):
    """(dtype, default value or None when the column is required) of a record default."""
    v = (
        d.op.attrs["value"]
        if isinstance(d, Tensor) and d.op.type in ("const", "string_constant")
        else d
    )
    arr = np.asarray(
        v,
        dtype=object
        if isinstance(v, (list, tuple)) and v and isinstance(np.ravel(v)[0], (str, bytes))
        else None,
    )
    if arr.size == 0:
        dtype = (
            D.float32
            if arr.dtype.kind == "f"
            else D.as_dtype(arr.dtype)
            if arr.dtype.kind in "iuf"
            else D.float32
        )
        return dtype, None
    x = arr.ravel()[0]
    if isinstance(x, (str, bytes)):
        return string, x.encode() if isinstance(x, str) else x
    if arr.dtype.kind == "f":
        return (D.float32 if not isinstance(v, np.ndarray) else D.as_dtype(arr.dtype)), x
    if arr.dtype.kind in "iu":
        return (D.int32 if not isinstance(v, np.ndarray) else D.as_dtype(arr.dtype)), x
    raise GraphcError(f"decode_csv: unsupported record default {d!r}", user_location())


def _parse(field: str, dtype, default, column, record):
    if field == "":
        if default is None:
            raise GraphcError(
                f"decode_csv: field {column} is required but missing in record {record!r}"
            )
        return default
    if dtype is string:
        return field.encode()
    try:
        return dtype.np.type(float(field) if dtype.is_floating else int(field))
    except ValueError:
        raise GraphcError(
            f"decode_csv: field {column} of record {record!r} is {field!r}, "
            f"which is not a {dtype.name}"
        ) from None


def _decode_kernel(records, defaults, delim, select):
    flat = np.asarray(records, dtype=object).reshape(-1)
    cols = [[] for _ in defaults]
    for rec in flat:
        text = rec.decode() if isinstance(rec, bytes) else str(rec)
        fields = next(csv.reader([text], delimiter=delim)) if text else [""]
        if select is not None:
            fields = [fields[i] if i < len(fields) else "" for i in select]
        if len(fields) != len(defaults):
            raise GraphcError(
                f"decode_csv: expected {len(defaults)} fields but the record "
                f"{text!r} has {len(fields)}"
            )
        for k, (f, (dt, dflt)) in enumerate(zip(fields, defaults, strict=True)):
            cols[k].append(_parse(f.strip() if dt is not string else f, dt, dflt, k, text))
    shape = np.shape(records)
    return tuple(
        np.array(c, dtype=object if dt is string else dt.np).reshape(shape)
        for c, (dt, _) in zip(cols, defaults, strict=True)
    )


def _decode_infer(ins, attrs):
    return [(dt, ins[0].shape) for dt, _ in attrs["defaults"]]


DECODE_CSV = OpDef(
    "decode_csv",
    _decode_infer,
    numpy=_decode_kernel,
    kind="other",
    differentiable=False,
    doc="CSV records parsed into one tensor per column.",
)


def decode_csv(
    records,
    record_defaults,
    field_delim=",",
    use_quote_delim=True,
    name=None,
    na_value="",
    select_cols=None,
):
    """One tensor per column of the CSV ``records``; ``record_defaults`` gives each
    column's dtype and its value when the field is empty (``[]``: the field is required)."""
    if not isinstance(records, Tensor):
        from .strings import string_constant

        records = string_constant(records)
    defaults = tuple(_default_of(d) for d in record_defaults)
    select = None if select_cols is None else tuple(int(i) for i in select_cols)
    node = DECODE_CSV.build(
        [records],
        {"defaults": defaults, "delim": field_delim, "select": select},
        name=name or "DecodeCSV",
    )
    return list(node.outputs)


# --- batching ---------------------------------------------------------------------------------


def _as_tensors(tensors):
    """The structure of ``tensors`` with each leaf a tensor: a list of tensors inside it is
    one example component and is packed, as TF packs it."""
    if isinstance(tensors, dict):
        return {k: convert(v) for k, v in tensors.items()}, True
    if isinstance(tensors, Tensor):
        return [tensors], False
    return [convert(t) for t in tensors], True


class _Example:
    """The per-example part of the graph, run by the batching op's kernel."""

    def __init__(self, tensors):
        self.tensors = tensors
        self._exe = None

    def __call__(self, ctx):
        if self._exe is None:
            from ..backends.reference import ReferenceExecutable

            self._exe = ReferenceExecutable(self.tensors, [], [])
        return self._exe(ctx, {})


def _batch_kernel(ctx, node, example, batch_size, allow_smaller, shuffle, specs):
    state = _state(ctx)
    buffer = state.setdefault(example, [])
    want = batch_size + (shuffle["min_after_dequeue"] if shuffle else 0)
    done = False
    while len(buffer) < want:
        try:
            buffer.append(example(ctx))
        except OutOfRangeError:
            done = True
            break
    if not buffer or (done and len(buffer) < batch_size and not allow_smaller):
        buffer.clear()
        raise OutOfRangeError(
            f"the input is exhausted: fewer examples are left than a batch of {batch_size} needs",
            None,
        )
    if shuffle:
        rng = state.setdefault((example, "rng"), np.random.default_rng(shuffle["seed"]))
        pick = sorted(
            rng.choice(len(buffer), size=min(batch_size, len(buffer)), replace=False).tolist(),
            reverse=True,
        )
        rows = [buffer.pop(i) for i in pick]
    else:
        rows, buffer[:] = buffer[:batch_size], buffer[batch_size:]
    return tuple(
        np.stack([r[k] for r in rows]).astype(
            s.dtype.np if s.dtype is not string else object, copy=False
        )
        for k, s in enumerate(specs)
    )


class _Spec:
    __slots__ = ("dtype",)

    def __init__(self, dtype):
        self.dtype = dtype


def _batch_infer(ins, attrs):
    first = None if attrs["allow_smaller"] else attrs["batch_size"]
    return [
        (t.dtype, None if t.shape is None else (first,) + tuple(t.shape))
        for t in attrs["example"].tensors
    ]


BATCH = OpDef(
    "py_batch",
    _batch_infer,
    numpy=_batch_kernel,
    kind="state",
    stateful=True,
    differentiable=False,
    doc="Batches of examples read by the Python-side reader.",
)


def _batch(tensors, batch_size, allow_smaller_final_batch, shuffle, name, enqueue_many):
    if enqueue_many:
        raise GraphcError(
            "train.batch(enqueue_many=True) is not supported: give one example per tensor",
            user_location(),
        )
    flat, many = _as_tensors(tensors)
    keys = list(flat) if isinstance(flat, dict) else None
    leaves = [flat[k] for k in keys] if keys else flat
    for t in leaves:
        if t.shape is None:
            raise ShapeError(
                f"train.batch needs examples of known rank: {t.describe()}", user_location()
            )
    example = _Example(leaves)
    node = BATCH.build(
        [],
        {
            "example": example,
            "batch_size": int(batch_size),
            "allow_smaller": bool(allow_smaller_final_batch),
            "shuffle": shuffle,
            "specs": [_Spec(t.dtype) for t in leaves],
        },
        name=name or "batch",
    )
    outs = list(node.outputs)
    if keys:
        return dict(zip(keys, outs, strict=True))
    return outs if many else outs[0]


def batch(
    tensors,
    batch_size,
    num_threads=1,
    capacity=32,
    enqueue_many=False,
    shapes=None,
    dynamic_pad=False,
    allow_smaller_final_batch=False,
    shared_name=None,
    name=None,
):
    """``batch_size`` examples of ``tensors`` stacked, in reading order."""
    return _batch(tensors, batch_size, allow_smaller_final_batch, None, name, enqueue_many)


def shuffle_batch(
    tensors,
    batch_size,
    capacity,
    min_after_dequeue,
    num_threads=1,
    seed=None,
    enqueue_many=False,
    shapes=None,
    allow_smaller_final_batch=False,
    shared_name=None,
    name=None,
):
    """``batch_size`` examples drawn at random from a buffer of at least
    ``min_after_dequeue`` more."""
    return _batch(
        tensors,
        batch_size,
        allow_smaller_final_batch,
        {"min_after_dequeue": int(min_after_dequeue), "seed": seed},
        name,
        enqueue_many,
    )


# --- the threads TF needed, kept for the scripts' sake ----------------------------------------


class Coordinator:
    """TF's thread coordinator; graphc's readers and queue runners run inside
    ``session.run``, so it only stops (and joins) the script's own threads."""

    def __init__(self, clean_stop_exception_types=None):
        self._stop = False
        self._exc = None
        self._threads: list = []

    def request_stop(self, ex=None):
        self._stop = True
        self._exc = self._exc or ex

    def should_stop(self):
        return self._stop

    def clear_stop(self):
        self._stop = False

    def register_thread(self, thread):
        self._threads.append(thread)

    def join(self, threads=None, stop_grace_period_secs=120, ignore_live_threads=False):
        """Wait for the script's own threads (a loader feeding a FIFOQueue); the readers
        and queue runners have none."""
        for t in [*(threads or ()), *self._threads]:
            if isinstance(t, threading.Thread) and t is not threading.current_thread():
                t.join(stop_grace_period_secs)
        if self._exc is not None and not isinstance(self._exc, OutOfRangeError):
            raise self._exc

    def raise_requested_exception(self):
        if self._exc is not None:
            raise self._exc

    def wait_for_stop(self, timeout=None):
        return self._stop

    def stop_on_exception(self):
        coord = self

        class _Guard:
            def __enter__(self):
                return coord

            def __exit__(self, kind, exc, tb):
                if exc is not None:
                    coord.request_stop(exc)
                    return isinstance(exc, OutOfRangeError)
                return False

        return _Guard()

    @property
    def joined(self):
        return self._stop


def start_queue_runners(sess=None, coord=None, daemon=True, start=True, collection=None):
    """No threads to start: the readers run when a session run needs a batch, and the
    graph's ``QueueRunner``s (``tf.train.add_queue_runner``) when a dequeue needs elements."""
    from ..session import get_default_session
    from .fifo_queue import QUEUE_RUNNERS, start_runners

    sess = sess if sess is not None else get_default_session()
    if sess is None:
        raise GraphcError(
            "start_queue_runners needs a session: pass sess= or run it inside `with sess:`",
            user_location(),
        )
    if start:
        start_runners(sess, collection or QUEUE_RUNNERS)
    return []
