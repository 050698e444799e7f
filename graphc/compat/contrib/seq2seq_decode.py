"""``tf.contrib.seq2seq``'s decoding loop: ``TrainingHelper``, ``GreedyEmbeddingHelper``,
``BasicDecoder`` and ``dynamic_decode``, with TF 1.x's semantics.

``dynamic_decode`` runs ``decoder.step`` until every example is finished (or
``maximum_iterations``), as TF's ``while_loop`` does, and returns ``(outputs, final_state,
final_sequence_lengths)`` with the outputs stacked over the steps taken. In graphc it is two
loops in the graph, so that the outputs are differentiable:

1. the number of steps: a ``while_loop`` over the decoder (for a greedy helper: decoding
   until every example has emitted ``end_token``), or, for ``TrainingHelper``, whose
   examples finish at their ``sequence_length``, the largest length (no loop);
2. the decoding itself: one ``scan`` over that many steps, carrying (finished, state,
   next inputs, lengths) and stacking each step's ``BasicDecoderOutput``. Its gradient is a
   reverse scan, as for ``dynamic_rnn``; a ``while_loop`` whose outputs grew every iteration
   could not record them for its gradient.

The first loop's float work is repeated by the second (only with a greedy helper: an
inference path); training through ``TrainingHelper`` runs the decoder once.
"""

from __future__ import annotations

from collections import namedtuple

from ... import dtypes as D
from ...errors import ShapeError, user_location
from ...frontend.control import cond, scan_with_outputs, while_loop
from ...ir.node import TensorShape
from ...ops.array import (
    cast,
    concat,
    expand_dims,
    fill_like,
    gather,
    transpose,
    zeros,
    zeros_like,
)
from ...ops.elementwise import (
    equal,
    greater_equal,
    less,
    less_equal,
    logical_not,
    logical_or,
    maximum,
    minimum,
    where,
)
from ...ops.reduce import argmax, reduce_all, reduce_max
from ...ops.sources import convert

BasicDecoderOutput = namedtuple("BasicDecoderOutput", ["rnn_output", "sample_id"])


def _time_major(x, time_major):
    if time_major:
        return x
    if x.shape is None or len(x.shape) < 2:
        raise ShapeError(f"seq2seq needs (batch, time, ...) inputs, got {x.describe()}")
    return transpose(x, [1, 0] + list(range(2, len(x.shape))))


def _map(fn, structure):
    """``fn`` over the tensors of a nested tuple (an LSTMStateTuple, a decoder output)."""
    if isinstance(structure, tuple):
        parts = [_map(fn, s) for s in structure]
        return type(structure)(*parts) if hasattr(structure, "_fields") else tuple(parts)
    return fn(structure)


def _map2(fn, a, b):
    if isinstance(a, tuple):
        parts = [_map2(fn, x, y) for x, y in zip(a, b, strict=True)]
        return type(a)(*parts) if hasattr(a, "_fields") else tuple(parts)
    return fn(a, b)


def _masked(finished, new, old):
    """``old`` where the example is finished, else ``new`` (finished: (batch,) bools)."""

    def pick(n, o):
        f = finished
        for _ in range(len(n.shape) - 1 if n.shape is not None else 0):
            f = expand_dims(f, -1)
        return where(f, o, n)

    return _map2(pick, new, old)


def _sample_argmax(outputs):
    return cast(argmax(outputs, axis=-1), D.int32)


class Helper:
    """TF's ``Helper`` interface: ``initialize() -> (finished, first_inputs)``,
    ``sample(time, outputs, state) -> sample_ids``, ``next_inputs(time, outputs, state,
    sample_ids) -> (finished, next_inputs, next_state)``."""

    @property
    def sample_ids_dtype(self):
        return D.int32

    @property
    def sample_ids_shape(self):
        return TensorShape([])


class TrainingHelper(Helper):
    """Teacher forcing: step ``t`` reads ``inputs[:, t]`` (``inputs[t]`` if ``time_major``);
    an example is finished once ``t + 1 >= sequence_length``."""

    def __init__(self, inputs, sequence_length, time_major=False, name=None):
        self._inputs = _time_major(convert(inputs), time_major)  # (time, batch, depth)
        self._lengths = cast(convert(sequence_length), D.int32)
        if self._lengths.shape is None or len(self._lengths.shape) != 1:
            raise ShapeError(
                f"TrainingHelper: sequence_length must be a vector, got {self._lengths.describe()}",
                user_location(),
            )
        self._zero_inputs = zeros_like(self._inputs[0])

    @property
    def inputs(self):
        return self._inputs

    @property
    def sequence_length(self):
        return self._lengths

    @property
    def batch_size(self):
        return self._lengths.shape[0]

    def initialize(self, name=None):
        finished = less_equal(self._lengths, 0)
        first = cond(reduce_all(finished), lambda: self._zero_inputs, lambda: self._inputs[0])
        return finished, first

    def sample(self, time, outputs, state, name=None):
        return _sample_argmax(outputs)

    def next_inputs(self, time, outputs, state, sample_ids, name=None):
        next_time = time + 1
        finished = greater_equal(next_time, self._lengths)
        inputs = self._inputs
        next_inputs = cond(
            reduce_all(finished),
            lambda: self._zero_inputs,
            lambda: gather(inputs, next_time, axis=0),
        )
        return finished, next_inputs, state

    def _num_steps(self, maximum_iterations):
        """How many steps dynamic_decode takes: the longest example (no loop needed)."""
        n = maximum(reduce_max(self._lengths), 0)
        return n if maximum_iterations is None else minimum(n, maximum_iterations)


class GreedyEmbeddingHelper(Helper):
    """Inference: each step feeds back the embedding of its argmax; an example is finished
    once it emits ``end_token``. ``embedding`` is the embedding matrix or a callable of the
    ids."""

    def __init__(self, embedding, start_tokens, end_token):
        if callable(embedding):
            self._embed = embedding
        else:
            params = convert(embedding)
            self._embed = lambda ids: gather(params, ids, axis=0)
        self._start_tokens = cast(convert(start_tokens), D.int32)
        self._end_token = cast(convert(end_token), D.int32)
        if self._start_tokens.shape is None or len(self._start_tokens.shape) != 1:
            raise ShapeError(
                "GreedyEmbeddingHelper: start_tokens must be a vector, got "
                f"{self._start_tokens.describe()}",
                user_location(),
            )
        if self._end_token.shape != ():
            raise ShapeError(
                f"GreedyEmbeddingHelper: end_token must be a scalar, got "
                f"{self._end_token.describe()}",
                user_location(),
            )
        self._start_inputs = self._embed(self._start_tokens)

    @property
    def batch_size(self):
        return self._start_tokens.shape[0]

    def initialize(self, name=None):
        return fill_like(self._start_tokens, False, dtype=D.bool_), self._start_inputs

    def sample(self, time, outputs, state, name=None):
        return _sample_argmax(outputs)

    def next_inputs(self, time, outputs, state, sample_ids, name=None):
        finished = equal(sample_ids, self._end_token)
        start = self._start_inputs
        next_inputs = cond(reduce_all(finished), lambda: start, lambda: self._embed(sample_ids))
        return finished, next_inputs, state


class BasicDecoder:
    """One step: ``cell(inputs, state)``, then ``output_layer`` (a layer or any callable)
    on the cell's output, the helper's sample and next inputs."""

    def __init__(self, cell, helper, initial_state, output_layer=None):
        self._cell, self._helper = cell, helper
        self._initial_state = initial_state
        self._output_layer = output_layer

    @property
    def batch_size(self):
        return self._helper.batch_size

    @property
    def tracks_own_finished(self):
        return False

    def initialize(self, name=None):
        return self._helper.initialize() + (self._initial_state,)

    def step(self, time, inputs, state, name=None):
        cell_outputs, cell_state = self._cell(inputs, state)
        if self._output_layer is not None:
            cell_outputs = self._output_layer(cell_outputs)
        sample_ids = self._helper.sample(time, cell_outputs, cell_state)
        finished, next_inputs, next_state = self._helper.next_inputs(
            time, cell_outputs, cell_state, sample_ids
        )
        return BasicDecoderOutput(cell_outputs, sample_ids), next_state, next_inputs, finished


def _clock(n):
    """The vector ``[0, 1, ..., n - 1]`` for a run-time scalar ``n`` (a counting loop)."""
    _, ticks = while_loop(
        lambda i, acc: less(i, n),
        lambda i, acc: (i + 1, concat([acc, expand_dims(i, 0)], 0)),
        (convert(0), zeros((0,), D.int32)),
        shape_invariants=(TensorShape([]), TensorShape([None])),
    )
    return ticks


def dynamic_decode(
    decoder,
    output_time_major=False,
    impute_finished=False,
    maximum_iterations=None,
    parallel_iterations=32,
    swap_memory=False,
    scope=None,
):
    """Decode until every example is finished (or ``maximum_iterations`` steps): returns
    ``(final_outputs, final_state, final_sequence_lengths)``, the outputs a
    ``BasicDecoderOutput`` of (batch, steps, ...) tensors ((steps, batch, ...) with
    ``output_time_major``). With ``impute_finished``, a finished example's outputs are
    zeros and its state is carried through unchanged (see the module docstring)."""
    finished, inputs, state = decoder.initialize()
    max_it = None
    if maximum_iterations is not None:
        max_it = cast(convert(maximum_iterations), D.int32)
        if max_it.shape != ():
            raise ShapeError("dynamic_decode: maximum_iterations must be a scalar", user_location())
        finished = logical_or(finished, less_equal(max_it, 0))
    lengths = fill_like(finished, 0, dtype=D.int32)
    own = getattr(decoder, "tracks_own_finished", False)

    def step(time, finished, state, inputs, lengths):
        outputs, dec_state, next_inputs, dec_finished = decoder.step(time, inputs, state)
        next_finished = dec_finished if own else logical_or(dec_finished, finished)
        if max_it is not None:
            next_finished = logical_or(next_finished, greater_equal(time + 1, max_it))
        next_lengths = where(logical_not(finished), fill_like(lengths, 0) + (time + 1), lengths)
        if impute_finished:
            outputs = _masked(finished, outputs, _map(zeros_like, outputs))
            dec_state = _masked(finished, dec_state, state)
        return next_finished, dec_state, next_inputs, next_lengths, outputs

    helper = getattr(decoder, "_helper", None)
    if isinstance(helper, TrainingHelper) and not own:
        n_steps = helper._num_steps(max_it)
    else:  # run the decoder until every example is finished, counting the steps

        def more(time, finished, state, inputs, lengths):
            return logical_not(reduce_all(finished))

        def go(time, finished, state, inputs, lengths):
            f, s, i, n, _ = step(time, finished, state, inputs, lengths)
            return time + 1, f, s, i, n

        n_steps = while_loop(more, go, (convert(0), finished, state, inputs, lengths))[0]

    def body(carry, time):
        f, s, i, n, out = step(time, *carry)
        return (f, s, i, n), out

    (_, final_state, _, final_lengths), outputs = scan_with_outputs(
        body, _clock(n_steps), (finished, state, inputs, lengths), name=scope or "decoder"
    )
    if not output_time_major:
        outputs = _map(lambda t: _time_major(t, False), outputs)
    return outputs, final_state, final_lengths


__all__ = [
    "BasicDecoder",
    "BasicDecoderOutput",
    "GreedyEmbeddingHelper",
    "Helper",
    "TrainingHelper",
    "dynamic_decode",
]
