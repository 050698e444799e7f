"""TF 1.x's ``tf.FIFOQueue`` and ``tf.RandomShuffleQueue``, with queue runners, as the
tutorials use them::

    q = tf.FIFOQueue(capacity=10, dtypes=[tf.float32], shapes=[[]])
    enqueue = q.enqueue_many([[1.0, 2.0, 3.0]])
    x = q.dequeue()
    qr = tf.train.QueueRunner(q, [q.enqueue(tf.random_normal([]))] * 2)
    tf.train.add_queue_runner(qr)
    batch = q.dequeue_many(4)
    coord = tf.train.Coordinator()
    threads = tf.train.start_queue_runners(sess=sess, coord=coord)

A queue's contents live in the session (each session has its own), and its ops —
``enqueue``, ``enqueue_many``, ``dequeue``, ``dequeue_many``, ``dequeue_up_to``, ``size``,
``close``, ``is_closed`` — are graph ops whose kernels work on them. There are no threads:
a dequeue that finds too few elements runs the enqueue ops of the queue's started runners
itself, in turn, until there are enough (what the runners' threads did in the
background). When every runner's input is exhausted (``OutOfRangeError``), the runner
closes the queue, as TF's does; a dequeue from a closed queue with too few elements
raises ``tf.errors.OutOfRangeError``.

Python threads of the script's own (a loader thread that runs ``sess.run(enqueue_op,
feed_dict=...)`` in a loop) work as in TF: while another thread is alive, a dequeue from an
empty queue waits for its enqueues and an enqueue into a full queue waits for dequeues
(``close(cancel_pending_enqueues=True)`` wakes it with ``CancelledError``). Where TF would
block for ever -- no other thread and no runner to fill or drain the queue -- graphc
raises a ``QueueBlockedError`` that says why, instead of hanging."""

from __future__ import annotations

import threading
import time
import weakref
from collections import deque

import numpy as np

from .. import dtypes as D
from ..errors import GraphcError, ShapeError, user_location
from ..ir.graph import get_default_graph
from ..ir.node import Tensor
from ..ops.registry import OpDef
from ..ops.sources import convert
from .data import OutOfRangeError

QUEUE_RUNNERS = "queue_runners"  # tf.GraphKeys.QUEUE_RUNNERS

_STATE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # run context -> queues
_STATE_LOCK = threading.Lock()  # two threads' first runs must find the same contents


class QueueBlockedError(GraphcError):
    """An enqueue or dequeue that would block for ever in TF (nothing else would ever fill
    or drain the queue)."""


class CancelledError(GraphcError):
    """An enqueue into a closed queue (``tf.errors.CancelledError``)."""


# How long a dequeue waits for a script's loader thread to make its first enqueue (it
# may start after the training loop's first run), before concluding that none will.
_FIRST_ENQUEUE_WAIT_S = 10.0


class _Contents:
    """One queue's elements and state in one session; ``cond`` guards them and wakes the
    threads that wait for elements or for room."""

    __slots__ = ("items", "closed", "cancelled", "rng", "cond", "producers")

    def __init__(self, seed):
        self.items: deque = deque()
        self.closed = False
        self.cancelled = False
        self.rng = np.random.default_rng(seed)
        self.cond = threading.Condition(threading.RLock())
        self.producers: set = set()  # threads that have enqueued


def _other_threads_alive() -> bool:
    return threading.active_count() > 1


def _wait(c, until, giving_up):
    """Wait on ``c.cond`` (held) until ``until()``; False when ``giving_up()`` first."""
    while not until():
        if giving_up():
            return False
        c.cond.wait(0.05)
    return True


def _session_state(ctx) -> dict:
    s = _STATE.get(ctx)
    if s is None:
        with _STATE_LOCK:
            s = _STATE.get(ctx)
            if s is None:
                s = _STATE[ctx] = {"queues": {}, "started": []}
    return s


# --- kernels ----------------------------------------------------------------------------------


def _enqueue_kernel(ctx, node, *values, queue, many):
    c = queue._contents(ctx)
    # copies: an element must not change when a variable it was read from does
    values = [np.array(v, dtype=s.np) for v, s in zip(values, queue.dtypes, strict=True)]
    if many:
        n = {len(v) if v.ndim else -1 for v in values}
        if len(n) != 1 or -1 in n:
            raise ShapeError(
                f"enqueue_many into {queue._what()}: every component needs the same first "
                f"dimension, got shapes {[v.shape for v in values]}",
                node.location,
            )
        elements = [tuple(v[i] for v in values) for i in range(n.pop())]
    else:
        elements = [tuple(values)]
    for e in elements:
        queue._check_element(e, node)
    with c.cond:
        if c.closed:
            raise CancelledError(
                f"{queue._what()} is closed: it takes no more elements", node.location
            )
        if len(c.items) + len(elements) > queue.capacity and not _other_threads_alive():
            _blocked_enqueue(queue, c, elements, node)  # before any element goes in
        c.producers.add(threading.get_ident())
        for e in elements:  # TF's enqueue_many waits for room element by element
            room = _wait(
                c,
                lambda: len(c.items) < queue.capacity or c.cancelled,
                lambda: not _other_threads_alive(),
            )
            if not room:
                _blocked_enqueue(queue, c, elements, node)
            if c.cancelled:  # close(cancel_pending_enqueues=True); a plain close lets it finish
                raise CancelledError(
                    f"{queue._what()} was closed while an enqueue waited for room",
                    node.location,
                )
            c.items.append(e)
            c.cond.notify_all()
    return ()


def _blocked_enqueue(queue, c, elements, node):
    raise QueueBlockedError(
        f"enqueue of {len(elements)} element(s) into {queue._what()}, which holds "
        f"{len(c.items)} of its capacity {queue.capacity}: TF would block here until "
        "something dequeues, and nothing else runs (dequeue first, or raise the capacity)",
        node.location,
    )


def _dequeue_kernel(ctx, node, queue, n, up_to):
    c = queue._contents(ctx)
    need = 1 if n is None else n
    with c.cond:
        queue._fill(ctx, c, need, node)
        if len(c.items) < need and not (up_to and c.items):
            raise OutOfRangeError(
                f"{queue._what()} is closed and has {len(c.items)} element(s), "
                f"fewer than the {need} requested",
                node.location,
            )
        rows = [queue._pop(c) for _ in range(min(need, len(c.items)))]
        c.cond.notify_all()
    if n is None:
        return tuple(np.asarray(v) for v in rows[0])
    return tuple(np.stack([r[k] for r in rows]) for k in range(len(queue.dtypes)))


def _size_kernel(ctx, node, queue):
    return np.array(len(queue._contents(ctx).items), dtype=np.int32)


def _close_kernel(ctx, node, queue, cancel):
    c = queue._contents(ctx)
    with c.cond:
        c.closed = True
        c.cancelled = c.cancelled or cancel
        c.cond.notify_all()
    return ()


def _is_closed_kernel(ctx, node, queue):
    return np.array(queue._contents(ctx).closed)


def _dequeue_infer(ins, attrs):
    q, n = attrs["queue"], attrs["n"]
    lead = () if n is None else ((None,) if attrs["up_to"] else (n,))
    return [
        (d, None if s is None else lead + tuple(s)) for d, s in zip(q.dtypes, q.shapes, strict=True)
    ]


# Kept out of the op registry, as tf.data's and the readers' ops are: their kernels work on
# session-side Python state, and they have no shape rule or gradient to test generically.
ENQUEUE = OpDef(
    "queue_enqueue",
    lambda ins, a: [],
    numpy=_enqueue_kernel,
    kind="state",
    stateful=True,
    differentiable=False,
    doc="Append one element (or, many=True, the slices of its inputs) to a queue.",
)
DEQUEUE = OpDef(
    "queue_dequeue",
    _dequeue_infer,
    numpy=_dequeue_kernel,
    kind="state",
    stateful=True,
    differentiable=False,
    doc="Remove one element (or n, stacked) from a queue.",
)
SIZE = OpDef(
    "queue_size",
    lambda ins, a: [(D.int32, ())],
    numpy=_size_kernel,
    kind="state",
    stateful=True,
    differentiable=False,
    doc="The number of elements in a queue.",
)
CLOSE = OpDef(
    "queue_close",
    lambda ins, a: [],
    numpy=_close_kernel,
    kind="state",
    stateful=True,
    differentiable=False,
    doc="Close a queue: no more enqueues; dequeues drain it, then raise OutOfRangeError.",
)
IS_CLOSED = OpDef(
    "queue_is_closed",
    lambda ins, a: [(D.bool_, ())],
    numpy=_is_closed_kernel,
    kind="state",
    stateful=True,
    differentiable=False,
    doc="Whether a queue is closed.",
)


# --- the queues -------------------------------------------------------------------------------


def _as_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


class QueueBase:
    """What FIFOQueue and RandomShuffleQueue share: components (``dtypes``, optional
    ``shapes`` and ``names``) and the ops on them."""

    _kind = "queue"

    def __init__(self, capacity, dtypes, shapes=None, names=None, seed=None, name=None):
        self.capacity = int(capacity)
        if self.capacity < 1:
            raise GraphcError(f"a queue needs a capacity >= 1, got {capacity}", user_location())
        self.dtypes = [D.as_dtype(d) for d in _as_list(dtypes)]
        if shapes is None:
            self.shapes = [None] * len(self.dtypes)
        else:
            shapes = list(shapes)
            if len(shapes) != len(self.dtypes):
                raise ShapeError(
                    f"a queue of {len(self.dtypes)} component(s) got {len(shapes)} shapes",
                    user_location(),
                )
            self.shapes = [
                tuple(s.as_list() if hasattr(s, "as_list") else [int(d) for d in s]) for s in shapes
            ]
        self.names = list(names) if names is not None else None
        if self.names is not None and len(self.names) != len(self.dtypes):
            raise GraphcError(
                f"a queue of {len(self.dtypes)} component(s) got {len(self.names)} names",
                user_location(),
            )
        self.seed = seed
        self.name = name or self._kind
        self.graph = get_default_graph()
        self._location = user_location()
        self.runners: list = []  # QueueRunners that fill this queue

    def __hash__(self):
        return id(self)

    def __eq__(self, other):
        return self is other

    def _what(self):
        where = f" (made at {self._location})" if self._location else ""
        return f"{type(self).__name__} {self.name!r}{where}"

    # -- session-side state ----------------------------------------------------------------
    def _contents(self, ctx) -> _Contents:
        queues = _session_state(ctx)["queues"]
        c = queues.get(self)
        if c is None:
            with _STATE_LOCK:
                c = queues.get(self)
                if c is None:
                    c = queues[self] = _Contents(self.seed)
        return c

    def _check_element(self, element, node):
        for k, (v, s) in enumerate(zip(element, self.shapes, strict=True)):
            if s is not None and tuple(v.shape) != s:
                raise ShapeError(
                    f"enqueue into {self._what()}: component {k} has shape {tuple(v.shape)}, "
                    f"the queue's is {s}",
                    node.location,
                )

    def _pop(self, c):
        return c.items.popleft()

    def _fill(self, ctx, c, need, node):
        """Run the started runners' enqueue ops until ``need`` elements wait (or every
        runner is done, which closes the queue); without runners, wait for the script's
        own threads to enqueue. ``c.cond`` is held."""
        started = _session_state(ctx)["started"]
        since = time.monotonic()
        me = threading.get_ident()
        while len(c.items) < need and not c.closed:
            runners = [r for r in self.runners if r in started and not r._done(ctx)]
            if runners:
                for r in runners:
                    r._run_once(ctx)
                    if len(c.items) >= need:
                        break
                continue
            if any(r._done(ctx) for r in self.runners if r in started):
                c.closed = True  # every runner finished: TF's runner closes the queue
                break
            if _other_threads_alive() and (
                c.producers - {me} or time.monotonic() - since < _FIRST_ENQUEUE_WAIT_S
            ):
                c.cond.wait(0.05)  # a loader thread of the script's enqueues
                continue
            hint = (
                "its queue runners have not been started: call "
                "tf.train.start_queue_runners(sess) first"
                if self.runners
                else "no queue runner or other thread fills it"
            )
            raise QueueBlockedError(
                f"dequeue of {need} element(s) from {self._what()}, which holds "
                f"{len(c.items)}: TF would block here for ever ({hint}; or enqueue "
                "first, or close the queue)",
                node.location,
            )

    # -- ops -------------------------------------------------------------------------------
    def _components(self, vals, what):
        if isinstance(vals, dict):
            if self.names is None:
                raise GraphcError(f"{what}: this queue has no names= for a dict", user_location())
            vals = [vals[n] for n in self.names]
        vals = _as_list(vals) if isinstance(vals, (list, tuple)) else [vals]
        if len(self.dtypes) == 1 and len(vals) != 1:
            vals = [vals]  # q.enqueue_many([1., 2., 3.]) on a one-component queue
        if len(vals) != len(self.dtypes):
            raise GraphcError(
                f"{what}: {self._what()} has {len(self.dtypes)} component(s), got {len(vals)}",
                user_location(),
            )
        out = []
        for v, d in zip(vals, self.dtypes, strict=True):
            t = convert(v, dtype=d) if not isinstance(v, Tensor) else v
            if t.dtype is not d:
                raise GraphcError(
                    f"{what}: {self._what()} holds {d} but got {t.describe()}",
                    user_location(),
                )
            out.append(t)
        return out

    def enqueue(self, vals, name=None):
        """The op that appends one element."""
        ins = self._components(vals, "enqueue")
        return ENQUEUE.build(ins, {"queue": self, "many": False}, name=name or "enqueue")

    def enqueue_many(self, vals, name=None):
        """The op that appends the slices of ``vals`` along their first axis."""
        ins = self._components(vals, "enqueue_many")
        return ENQUEUE.build(ins, {"queue": self, "many": True}, name=name or "enqueue_many")

    def _dequeue(self, n, up_to, name):
        if n is not None and any(s is None for s in self.shapes):
            raise ShapeError(
                f"dequeue_many and dequeue_up_to need a queue with shapes= for every "
                f"component: {self._what()}",
                user_location(),
            )
        node = DEQUEUE.build([], {"queue": self, "n": n, "up_to": up_to}, name=name)
        outs = list(node.outputs)
        if self.names is not None:
            return dict(zip(self.names, outs, strict=True))
        return outs[0] if len(outs) == 1 else outs

    def dequeue(self, name=None):
        """One element (a tensor, or a list of them for several components)."""
        return self._dequeue(None, False, name or "dequeue")

    def dequeue_many(self, n, name=None):
        """``n`` elements stacked along a new first axis."""
        return self._dequeue(int(n), False, name or "dequeue_many")

    def dequeue_up_to(self, n, name=None):
        """Up to ``n`` elements: fewer only when the queue is closed."""
        return self._dequeue(int(n), True, name or "dequeue_up_to")

    def size(self, name=None):
        return SIZE.build([], {"queue": self}, name=name or "size").outputs[0]

    def close(self, cancel_pending_enqueues=False, name=None):
        return CLOSE.build(
            [], {"queue": self, "cancel": bool(cancel_pending_enqueues)}, name=name or "close"
        )

    def is_closed(self, name=None):
        return IS_CLOSED.build([], {"queue": self}, name=name or "is_closed").outputs[0]

    @property
    def queue_ref(self):
        return self


class FIFOQueue(QueueBase):
    """A first-in first-out queue (``tf.FIFOQueue``)."""

    _kind = "fifo_queue"

    def __init__(
        self, capacity, dtypes, shapes=None, names=None, shared_name=None, name="fifo_queue"
    ):
        super().__init__(capacity, dtypes, shapes, names, None, name)


class RandomShuffleQueue(QueueBase):
    """A queue that dequeues its elements in random order (``tf.RandomShuffleQueue``):
    while open, a dequeue leaves at least ``min_after_dequeue`` elements behind (its
    runners fill it up to that first), so the order mixes."""

    _kind = "random_shuffle_queue"

    def __init__(
        self,
        capacity,
        min_after_dequeue,
        dtypes,
        shapes=None,
        names=None,
        seed=None,
        shared_name=None,
        name="random_shuffle_queue",
    ):
        super().__init__(capacity, dtypes, shapes, names, seed, name)
        self.min_after_dequeue = int(min_after_dequeue)

    def _fill(self, ctx, c, need, node):
        want = min(need + self.min_after_dequeue, self.capacity)
        if self.runners:
            try:
                super()._fill(ctx, c, want, node)
            except QueueBlockedError:
                if len(c.items) < need:
                    raise
        else:
            super()._fill(ctx, c, need, node)

    def _pop(self, c):
        k = int(c.rng.integers(len(c.items)))
        c.items.rotate(-k)
        e = c.items.popleft()
        c.items.rotate(k)
        return e


# --- queue runners ----------------------------------------------------------------------------


class QueueRunner:
    """``tf.train.QueueRunner(queue, enqueue_ops)``: what fills ``queue``. Started by
    ``tf.train.start_queue_runners`` (when added with ``tf.train.add_queue_runner``) or by
    ``create_threads(sess, start=True)``; it then runs its enqueue ops whenever a dequeue
    needs elements."""

    def __init__(
        self,
        queue=None,
        enqueue_ops=None,
        close_op=None,
        cancel_op=None,
        queue_closed_exception_types=None,
    ):
        if queue is None or not enqueue_ops:
            raise GraphcError("QueueRunner needs a queue and its enqueue ops", user_location())
        self.queue = queue
        self.enqueue_ops = list(enqueue_ops)
        self._exes: list | None = None
        queue.runners.append(self)

    def __hash__(self):
        return id(self)

    def __eq__(self, other):
        return self is other

    def _done(self, ctx) -> bool:
        return _session_state(ctx).get(("done", self), False)

    def _run_once(self, ctx):
        """Each of its enqueue ops once (one "thread" each), in this session's state."""
        from ..backends.reference import ReferenceExecutable

        if self._exes is None:
            self._exes = [ReferenceExecutable([], [op], []) for op in self.enqueue_ops]
        for exe in self._exes:
            try:
                exe(ctx, {})
            except OutOfRangeError:
                _session_state(ctx)[("done", self)] = True
                return

    def _start(self, sess):
        started = _session_state(sess._ctx)["started"]
        if self not in started:
            started.append(self)

    def create_threads(self, sess, coord=None, daemon=False, start=False):
        """No threads: with ``start``, the runner fills the queue when a dequeue needs it."""
        if start:
            self._start(sess)
        return []

    @property
    def name(self):
        return self.queue.name


def add_queue_runner(qr, collection=QUEUE_RUNNERS):
    get_default_graph().add_to_collection(collection, qr)


def start_runners(sess, collection=QUEUE_RUNNERS):
    """Start the queue runners of ``sess``'s graph (``tf.train.start_queue_runners``)."""
    for qr in sess.graph.get_collection(collection):
        if isinstance(qr, QueueRunner):
            qr._start(sess)
