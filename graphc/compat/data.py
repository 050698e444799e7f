"""``tf.data`` of TF 1.x, run as a Python-side reader feeding the graph.

A ``Dataset`` is a pipeline over numpy values (``from_tensor_slices``, ``batch``,
``shuffle``, ``repeat``, ``map``, ``take``, ``skip``, ``filter``, ``prefetch``…) that runs in
Python. Its iterator's ``get_next()`` is a graph op whose kernel hands out the next element
each time a ``session.run`` needs it (one element per run, however many of its tensors are
fetched), and raises ``tf.errors.OutOfRangeError`` at the end, as TF does. The iterator's
position is per session. ``map`` functions are built once as a small graph of their own
(so they may use tf ops) and run on each element.

``make_initializable_iterator()`` reads the source tensors (placeholders included) when its
``initializer`` runs, so ``sess.run(it.initializer, feed_dict={x: data})`` works as in TF."""

from __future__ import annotations

import weakref

import numpy as np

from .. import dtypes as D
from ..errors import GraphcError, ShapeError, user_location
from ..ir.node import Tensor
from ..ops.registry import OpDef
from ..ops.sources import convert
from ._support import Namespace


class OutOfRangeError(GraphcError, IndexError):
    """The end of a ``tf.data`` iterator or an input queue (``tf.errors.OutOfRangeError``)."""


# --- nested structures of values (tuples, lists, dicts, single values) ------------------------


def _flatten(s):
    if isinstance(s, dict):
        return [x for k in sorted(s) for x in _flatten(s[k])]
    if isinstance(s, (tuple, list)) and not _is_leaf_list(s):
        return [x for v in s for x in _flatten(v)]
    return [s]


def _is_leaf_list(s):
    """A list is one value (tf.data converts lists to tensors; tuples and dicts nest),
    unless it holds tensors or arrays of different components."""
    return isinstance(s, list) and not any(isinstance(v, (Tensor, tuple, dict)) for v in s)


def _pack(structure, flat):
    it = iter(flat)

    def build(s):
        if isinstance(s, dict):
            return {k: build(s[k]) for k in sorted(s)}
        if isinstance(s, (tuple, list)) and not _is_leaf_list(s):
            return type(s)(build(v) for v in s) if isinstance(s, tuple) else [build(v) for v in s]
        return next(it)

    return build(structure)


def _flatten_shapes(shapes, structure):
    """The shapes in ``shapes`` (nested like ``structure``), one per component."""
    if isinstance(structure, dict):
        return [x for k in sorted(structure) for x in _flatten_shapes(shapes[k], structure[k])]
    if isinstance(structure, (tuple, list)) and not _is_leaf_list(structure):
        return [
            x for sh, st in zip(shapes, structure, strict=True) for x in _flatten_shapes(sh, st)
        ]
    if shapes is None:
        return [None]
    dims = shapes.as_list() if hasattr(shapes, "as_list") else list(shapes)
    return [tuple(dims)]


class _Spec:
    """The dtype and static shape of one component of an element."""

    __slots__ = ("dtype", "shape")

    def __init__(self, dtype, shape):
        self.dtype, self.shape = dtype, None if shape is None else tuple(shape)


# --- the pipeline -----------------------------------------------------------------------------


class Dataset:
    """A pipeline of elements (nested tuples/dicts of arrays) computed in Python."""

    def __init__(self, sources, make, structure, specs):
        self._sources = sources  # graph tensors the pipeline starts from
        self._make = make  # make(source arrays, rng) -> iterator of flat elements
        self._structure = structure  # how an element nests
        self._specs = specs  # a _Spec per flat component

    # -- sources ---------------------------------------------------------------------------
    @staticmethod
    def from_tensor_slices(tensors):
        """The slices of ``tensors`` along their first axis (all the same length)."""
        # numpy arrays keep their dtype; Python lists take TF's defaults (int32, float32)
        flat = [convert(t) for t in _flatten(tensors)]
        for t in flat:
            if t.shape is not None and len(t.shape) == 0:
                raise ShapeError(
                    f"from_tensor_slices needs tensors of rank >= 1, got {t.describe()}",
                    user_location(),
                )
        specs = [_Spec(t.dtype, None if t.shape is None else t.shape[1:]) for t in flat]

        def make(arrays, rng):
            n = {len(a) for a in arrays}
            if len(n) > 1:
                raise ShapeError(
                    f"from_tensor_slices: the components have different lengths {sorted(n)}",
                    user_location(),
                )
            for i in range(n.pop() if n else 0):
                yield [a[i] for a in arrays]

        return Dataset(flat, make, tensors, specs)

    @staticmethod
    def from_tensors(tensors):
        """One element: ``tensors`` whole."""
        flat = [convert(t) for t in _flatten(tensors)]

        def make(arrays, rng):
            yield list(arrays)

        return Dataset(flat, make, tensors, [_Spec(t.dtype, t.shape) for t in flat])

    @staticmethod
    def range(*args):  # noqa: A003 - TF's name
        r = range(*[int(a) for a in args])

        def make(arrays, rng):
            for i in r:
                yield [np.array(i, np.int64)]

        return Dataset([], make, 0, [_Spec(D.int64, ())])

    @staticmethod
    def zip(datasets):  # noqa: A003
        parts = list(datasets)
        counts = [len(d._sources) for d in parts]

        def make(arrays, rng):
            its, k = [], 0
            for d, c in zip(parts, counts, strict=True):
                its.append(d._make(arrays[k : k + c], rng))
                k += c
            for elems in zip(*its, strict=False):
                yield [x for e in elems for x in e]

        structure = tuple(d._structure for d in parts)
        return Dataset(
            [s for d in parts for s in d._sources],
            make,
            structure,
            [s for d in parts for s in d._specs],
        )

    def _then(self, step, structure=None, specs=None):
        inner = self._make

        def make(arrays, rng):
            return step(inner(arrays, rng), rng)

        return Dataset(
            self._sources,
            make,
            self._structure if structure is None else structure,
            self._specs if specs is None else specs,
        )

    # -- transformations -------------------------------------------------------------------
    def batch(self, batch_size, drop_remainder=False):
        """Consecutive elements stacked along a new first axis."""
        n = int(batch_size)

        def step(it, rng):
            buf = []
            for e in it:
                buf.append(e)
                if len(buf) == n:
                    yield [np.stack(c) for c in zip(*buf, strict=True)]
                    buf = []
            if buf and not drop_remainder:
                yield [np.stack(c) for c in zip(*buf, strict=True)]

        first = n if drop_remainder else None
        return self._then(
            step,
            specs=[
                _Spec(s.dtype, None if s.shape is None else (first,) + s.shape) for s in self._specs
            ],
        )

    def shuffle(self, buffer_size, seed=None, reshuffle_each_iteration=True):
        """TF's buffered shuffle: each element comes from a random slot of a buffer of
        ``buffer_size`` elements (a buffer as large as the data shuffles it uniformly)."""
        size = int(buffer_size)

        def step(it, rng):
            buf = []
            for e in it:
                if len(buf) < size:
                    buf.append(e)
                    continue
                k = int(rng.integers(size))
                yield buf[k]
                buf[k] = e
            for k in rng.permutation(len(buf)):
                yield buf[k]

        ds = self._then(step)
        ds._seed = seed
        return ds

    def repeat(self, count=None):
        """The pipeline run ``count`` times (for ever when None or -1)."""
        inner = self._make
        times = None if count is None or int(count) < 0 else int(count)

        def make(arrays, rng):
            k = 0
            while times is None or k < times:
                empty = True
                for e in inner(arrays, rng):
                    empty = False
                    yield e
                if empty:
                    return
                k += 1

        return Dataset(self._sources, make, self._structure, self._specs)

    def take(self, count):
        n = int(count)

        def step(it, rng):
            for k, e in enumerate(it):
                if n >= 0 and k >= n:
                    return
                yield e

        return self._then(step)

    def skip(self, count):
        n = int(count)

        def step(it, rng):
            for k, e in enumerate(it):
                if k >= n:
                    yield e

        return self._then(step)

    def prefetch(self, buffer_size=None):
        """Accepted: the reader runs when the session needs an element."""
        return self

    def cache(self, filename=""):
        return self

    def map(self, map_func, num_parallel_calls=None):  # noqa: A003
        """``map_func`` applied to each element (its components as separate arguments when
        the element is a tuple, as in TF)."""
        fn = _Traced(map_func, self._structure, self._specs)
        return self._then(lambda it, rng: (fn(e) for e in it), fn.structure, fn.specs)

    def filter(self, predicate):  # noqa: A003
        fn = _Traced(predicate, self._structure, self._specs)
        return self._then(lambda it, rng: (e for e in it if bool(np.all(fn(e)[0]))))

    def apply(self, transformation_func):
        return transformation_func(self)

    # -- iterators -------------------------------------------------------------------------
    def make_one_shot_iterator(self):
        return Iterator(self, initializable=False)

    def make_initializable_iterator(self, shared_name=None):
        return Iterator(self, initializable=True)

    @property
    def output_types(self):
        return _pack(self._structure, [s.dtype for s in self._specs])

    @property
    def output_shapes(self):
        return _pack(self._structure, [s.shape for s in self._specs])

    def __iter__(self):
        raise GraphcError(
            "a tf.data.Dataset is iterated in graph mode through "
            "dataset.make_one_shot_iterator().get_next()",
            user_location(),
        )


def _file_names(value):
    """File names as ``str``: from a str, a list, or an array of bytes."""
    if isinstance(value, (str, bytes)):
        value = [value]
    return [n.decode() if isinstance(n, bytes) else str(n) for n in np.ravel(value).tolist()]


def _open_text(path, compression, location):
    import gzip
    import io
    import zlib

    try:
        if compression == "GZIP":
            return io.TextIOWrapper(gzip.open(path), encoding="utf-8")
        if compression == "ZLIB":
            with open(path, "rb") as f:
                return io.StringIO(zlib.decompress(f.read()).decode("utf-8"))
        return open(path, encoding="utf-8")  # noqa: SIM115 - the caller closes it
    except OSError as e:
        raise GraphcError(
            f"TextLineDataset cannot read {path}: {e.strerror or e}", location
        ) from None


class TextLineDataset(Dataset):
    """The lines of text files, one ``tf.string`` element per line, without the line
    ending (TF's ``tf.data.TextLineDataset``): files in order, each read when the pipeline
    reaches it. ``compression_type`` "" (none), "GZIP" or "ZLIB"."""

    def __init__(self, filenames, compression_type=None, buffer_size=None, num_parallel_reads=None):
        # a tf.string placeholder of file names is read when the iterator is initialized
        # (sess.run(it.initializer, feed_dict={filenames: [...]}), as in TF's guide
        sources = []
        if isinstance(filenames, Tensor):
            if filenames.op.type == "string_constant":
                filenames = filenames.op.attrs["value"]
            elif filenames.dtype is D.string:
                sources = [filenames]
            else:
                raise GraphcError(
                    f"TextLineDataset takes file names, got {filenames.describe()}",
                    user_location(),
                )
        names = None if sources else _file_names(filenames)
        compression = (compression_type or "").upper()
        if compression not in ("", "GZIP", "ZLIB"):
            raise GraphcError(
                f"TextLineDataset: compression_type must be '', 'GZIP' or 'ZLIB', "
                f"got {compression_type!r}",
                user_location(),
            )
        location = user_location()

        def make(arrays, rng):
            for path in names if names is not None else _file_names(arrays[0]):
                with _open_text(path, compression, location) as f:
                    for line in f:
                        yield [np.array(line.rstrip("\r\n").encode("utf-8"), dtype=object)]

        super().__init__(sources, make, "line", [_Spec(D.string, ())])


class _Traced:
    """A map/filter function built once as a graph of its own, run on numpy elements."""

    def __init__(self, fn, structure, specs):
        from ..ir.graph import Graph
        from ..ops.sources import placeholder

        self.graph = Graph()
        with self.graph.as_default():
            self.inputs = [placeholder(s.dtype, s.shape) for s in specs]
            args = _pack(structure, self.inputs)
            out = fn(*args) if isinstance(args, tuple) else fn(args)
            self.structure = out
            self.outputs = [convert(t) for t in _flatten(out)]
        self.specs = [_Spec(t.dtype, t.shape) for t in self.outputs]
        self._session = None

    def __call__(self, element):
        if self._session is None:
            from ..session import Session

            self._session = Session(graph=self.graph)
        return self._session.run(self.outputs, dict(zip(self.inputs, element, strict=True)))


# --- iterators: graph ops whose kernels hand out elements -------------------------------------

_STATE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # run context -> positions


def _positions(ctx) -> dict:
    state = _STATE.get(ctx)
    if state is None:
        state = _STATE[ctx] = {}
    return state


def _start(iterator, ctx, arrays, dataset=None):
    dataset = dataset or iterator._dataset
    rng = np.random.default_rng(getattr(dataset, "_seed", None))
    _positions(ctx)[iterator] = iter(dataset._make(list(arrays), rng))


def _get_next_kernel(ctx, node, *arrays, iterator, specs):
    positions = _positions(ctx)
    if iterator not in positions:
        if iterator._initializable:
            raise GraphcError(
                "the iterator has not been initialized: run sess.run(iterator.initializer) first",
                iterator._location,
            )
        _start(iterator, ctx, arrays)
    try:
        element = next(positions[iterator])
    except StopIteration:
        raise OutOfRangeError(
            "End of sequence: the dataset has no more elements", iterator._location
        ) from None
    return tuple(np.asarray(v, dtype=s.dtype.np) for v, s in zip(element, specs, strict=True))


def _init_kernel(ctx, node, *arrays, iterator, dataset=None):
    _start(iterator, ctx, arrays, dataset)
    return ()


GET_NEXT = OpDef(
    "iterator_get_next",
    lambda ins, a: [(s.dtype, s.shape) for s in a["specs"]],
    numpy=_get_next_kernel,
    kind="state",
    stateful=True,
    differentiable=False,
    doc="The next element of a tf.data iterator (its kernel runs the Python pipeline).",
)

INIT = OpDef(
    "iterator_init",
    lambda ins, a: [],
    numpy=_init_kernel,
    kind="state",
    stateful=True,
    differentiable=False,
    doc="Restart a tf.data iterator from its source tensors' values.",
)


class Iterator:
    """``get_next()`` gives the element tensors (the same ones at every call, as a TF 1.x
    iterator's ``get_next`` op does); ``initializer`` restarts the pipeline."""

    def __init__(self, dataset, initializable):
        self._dataset = dataset
        self._initializable = initializable
        self._location = user_location()
        self._next = None
        self._init = None

    def __hash__(self):
        return id(self)

    def __eq__(self, other):
        return self is other

    @staticmethod
    def from_structure(output_types, output_shapes=None, shared_name=None, output_classes=None):
        """A reinitializable iterator: ``make_initializer(dataset)`` points it at any
        dataset of this structure (the train/test switch of TF 1.x tutorials)."""
        types = _flatten(output_types)
        shapes = (
            _flatten_shapes(output_shapes, output_types)
            if output_shapes is not None
            else [None] * len(types)
        )
        specs = [
            _Spec(D.as_dtype(t), None if s is None else tuple(s))
            for t, s in zip(types, shapes, strict=True)
        ]
        return Iterator(Dataset([], None, output_types, specs), initializable=True)

    def make_initializer(self, dataset, name=None):
        """The op that restarts this iterator on ``dataset``."""
        if len(dataset._specs) != len(self._dataset._specs) or any(
            a.dtype is not b.dtype
            for a, b in zip(dataset._specs, self._dataset._specs, strict=True)
        ):
            raise GraphcError(
                "make_initializer: the dataset's element types differ from the iterator's",
                user_location(),
            )
        return INIT.build(
            list(dataset._sources),
            {"iterator": self, "dataset": dataset},
            name=name or "MakeIterator",
        )

    @property
    def initializer(self):
        if self._init is None:
            self._init = INIT.build(
                list(self._dataset._sources), {"iterator": self}, name="MakeIterator"
            )
        return self._init

    def get_next(self, name=None):
        if self._next is None:
            ins = [] if self._initializable else list(self._dataset._sources)
            node = GET_NEXT.build(
                ins,
                {"iterator": self, "specs": self._dataset._specs},
                name=name or "IteratorGetNext",
            )
            self._next = _pack(self._dataset._structure, list(node.outputs))
        return self._next

    @property
    def output_types(self):
        return self._dataset.output_types

    @property
    def output_shapes(self):
        return self._dataset.output_shapes


def make_one_shot_iterator(dataset):
    return dataset.make_one_shot_iterator()


def make_initializable_iterator(dataset, shared_name=None):
    return dataset.make_initializable_iterator()


def _get_output_types(obj):
    return obj.output_types


def _get_output_shapes(obj):
    return obj.output_shapes


data = Namespace(
    "data",
    Dataset=Dataset,
    TextLineDataset=TextLineDataset,
    Iterator=Iterator,
    get_output_types=_get_output_types,
    get_output_shapes=_get_output_shapes,
    make_one_shot_iterator=make_one_shot_iterator,
    make_initializable_iterator=make_initializable_iterator,
    experimental=Namespace("data.experimental"),
)
