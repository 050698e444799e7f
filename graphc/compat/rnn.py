"""Recurrent networks of TF 1.x (``tf.nn.rnn_cell``, ``tf.nn.static_rnn``,
``tf.nn.dynamic_rnn`` and their bidirectional forms).

``static_rnn`` unrolls in Python, as TF did: one cell application per element of its input
list, all sharing the cell's variables (the first step creates them, the others reuse
them). ``dynamic_rnn`` and ``bidirectional_dynamic_rnn`` are one ``scan`` over the time
axis (a loop in the graph), so the sequence length may be known only at run time.
``sequence_length`` masks the steps past each example's length, as TF does: zero
outputs, the state carried through.

The cells follow TF 1.x's math and variable names: ``<scope>/basic_lstm_cell/kernel`` of
shape ``(input_depth + num_units, 4 * num_units)`` with gates in i, j, f, o order and
``forget_bias`` added to f; ``gru_cell/gates/*`` and ``gru_cell/candidate/*``;
``basic_rnn_cell/*``; ``multi_rnn_cell/cell_<k>/...``."""

from __future__ import annotations

from collections import namedtuple

from ..errors import ShapeError, user_location
from ..frontend.control import scan_with_outputs
from ..ir.node import Tensor
from ..ops.array import cast, concat, expand_dims, split, transpose, zeros, zeros_like
from ..ops.array import shape as _shape
from ..ops.elementwise import greater, sigmoid, tanh, where
from ..ops.linalg import matmul
from ..ops.nn import bias_add
from ..ops.reduce import reduce_sum
from ..ops.sources import convert
from ._support import Namespace, missing
from .dynamic import static_value
from .initializers import Constant, Zeros
from .scopes import VariableScope, get_variable, get_variable_scope, variable_scope

LSTMStateTuple = namedtuple("LSTMStateTuple", ["c", "h"])


def _batch_zeros(batch_size, units, dtype):
    """A (batch, units) zero state; ``batch_size`` may be an int or ``tf.shape(x)[0]``."""
    value = static_value(batch_size)
    if value is not None:
        return zeros((int(value), units), dtype=dtype)
    source = (
        batch_size.op.inputs[0].op.inputs[0]
        if isinstance(batch_size, Tensor)
        and batch_size.op.inputs
        and batch_size.op.inputs[0].op.inputs
        else None
    )
    if source is None or source.shape is None:
        raise ShapeError(
            "zero_state needs a batch size that is an int or tf.shape(x)[0]", user_location()
        )
    # zeros of x's run-time batch: sum a zero tensor like x over its other axes
    per_example = reduce_sum(
        zeros_like(source, dtype=dtype), axis=list(range(1, len(source.shape))), keepdims=False
    )
    return per_example[:, None] + zeros((units,), dtype=dtype)


class RNNCell:
    """Base class: ``output, new_state = cell(inputs, state)``; variables are made on the
    first call inside ``<enclosing scope>/<cell name>`` and shared by later calls."""

    _default_name = "rnn_cell"

    def __init__(self, num_units, activation=None, reuse=None, name=None, dtype=None):
        self._num_units = int(num_units)
        self._activation = activation or tanh
        self._reuse = reuse
        self._name = name or self._default_name
        self._scope_name = None  # where the variables live, fixed by the first call

    @property
    def state_size(self):
        return self._num_units

    @property
    def output_size(self):
        return self._num_units

    def zero_state(self, batch_size, dtype):
        return _batch_zeros(batch_size, self._num_units, dtype)

    def __call__(self, inputs, state, scope=None):
        inputs = convert(inputs)
        if self._scope_name is None:
            outer = get_variable_scope()
            self._scope_name = f"{outer.name}/{scope or self._name}".lstrip("/")
            # the enclosing scope's defaults (initializer…) hold for the cell's variables
            self._scope_defaults = (outer.initializer, outer.regularizer, outer.dtype)
            reuse = self._reuse
        else:
            reuse = True
        init, reg, dtype = getattr(self, "_scope_defaults", (None, None, None))
        with variable_scope(
            VariableScope(self._scope_name, initializer=init, regularizer=reg, dtype=dtype),
            reuse=reuse,
        ):
            return self._step(inputs, state)

    def _linear(self, name_scope, parts, units, bias_init):
        """``concat(parts) @ kernel + bias`` with the variables ``[name_scope/]kernel|bias``."""
        x = concat(parts, axis=1)
        depth = x.shape[1]
        if not isinstance(depth, int):
            raise ShapeError(
                f"{type(self).__name__}: the input depth must be static, got {x.describe()}",
                user_location(),
            )

        def make():
            kernel = get_variable("kernel", (depth, units), dtype=x.dtype)
            bias = get_variable("bias", (units,), dtype=x.dtype, initializer=bias_init)
            return bias_add(matmul(x, kernel), bias)

        if name_scope is None:
            return make()
        with variable_scope(name_scope):
            return make()


class BasicRNNCell(RNNCell):
    """``h = activation([x, h] @ kernel + bias)``."""

    _default_name = "basic_rnn_cell"

    def _step(self, inputs, state):
        h = self._activation(self._linear(None, [inputs, state], self._num_units, Zeros()))
        return h, h


class BasicLSTMCell(RNNCell):
    """TF's BasicLSTMCell: gates i, j, f, o from one matmul; ``forget_bias`` on f."""

    _default_name = "basic_lstm_cell"

    def __init__(
        self,
        num_units,
        forget_bias=1.0,
        state_is_tuple=True,
        activation=None,
        reuse=None,
        name=None,
        dtype=None,
    ):
        super().__init__(num_units, activation, reuse, name, dtype)
        self._forget_bias = forget_bias
        self._state_is_tuple = state_is_tuple

    @property
    def state_size(self):
        n = self._num_units
        return LSTMStateTuple(n, n) if self._state_is_tuple else 2 * n

    def zero_state(self, batch_size, dtype):
        # two tensors, as TF makes: a script feeds c and h separately (feed[c], feed[h])
        c = _batch_zeros(batch_size, self._num_units, dtype)
        h = _batch_zeros(batch_size, self._num_units, dtype)
        return LSTMStateTuple(c, h) if self._state_is_tuple else concat([c, h], axis=1)

    def _step(self, inputs, state):
        if self._state_is_tuple:
            c, h = state
        else:
            c, h = split(state, 2, axis=1)
        gates = self._linear(None, [inputs, h], 4 * self._num_units, Zeros())
        i, j, f, o = split(gates, 4, axis=1)
        new_c = c * sigmoid(f + self._forget_bias) + sigmoid(i) * self._activation(j)
        new_h = self._activation(new_c) * sigmoid(o)
        new_state = (
            LSTMStateTuple(new_c, new_h) if self._state_is_tuple else concat([new_c, new_h], axis=1)
        )
        return new_h, new_state


class LSTMCell(BasicLSTMCell):
    """TF's LSTMCell without peepholes, clipping or projections (the same math as
    BasicLSTMCell, variables under ``lstm_cell``)."""

    _default_name = "lstm_cell"

    def __init__(
        self,
        num_units,
        use_peepholes=False,
        cell_clip=None,
        initializer=None,
        num_proj=None,
        proj_clip=None,
        num_unit_shards=None,
        num_proj_shards=None,
        forget_bias=1.0,
        state_is_tuple=True,
        activation=None,
        reuse=None,
        name=None,
        dtype=None,
    ):
        if use_peepholes or cell_clip is not None or num_proj is not None:
            raise missing("nn.rnn_cell", "LSTMCell(use_peepholes/cell_clip/num_proj)")
        super().__init__(num_units, forget_bias, state_is_tuple, activation, reuse, name, dtype)


class GRUCell(RNNCell):
    """TF's GRUCell: reset and update gates (bias 1), then the candidate."""

    _default_name = "gru_cell"

    def _step(self, inputs, state):
        n = self._num_units
        gates = sigmoid(self._linear("gates", [inputs, state], 2 * n, Constant(1.0)))
        r, u = split(gates, 2, axis=1)
        candidate = self._activation(self._linear("candidate", [inputs, r * state], n, Zeros()))
        new_h = u * state + (1 - u) * candidate
        return new_h, new_h


class MultiRNNCell(RNNCell):
    """Cells stacked: each one's output is the next one's input."""

    _default_name = "multi_rnn_cell"

    def __init__(self, cells, state_is_tuple=True):
        super().__init__(0, name=None)
        self._cells = list(cells)

    @property
    def state_size(self):
        return tuple(c.state_size for c in self._cells)

    @property
    def output_size(self):
        return self._cells[-1].output_size

    def zero_state(self, batch_size, dtype):
        return tuple(c.zero_state(batch_size, dtype) for c in self._cells)

    def _step(self, inputs, state):
        x, new_states = inputs, []
        for k, (cell, s) in enumerate(zip(self._cells, state, strict=True)):
            with variable_scope(f"cell_{k}"):
                x, s = cell(x, s)
            new_states.append(s)
        return x, tuple(new_states)


class DropoutWrapper(RNNCell):
    """Dropout on a cell's inputs and outputs (``*_keep_prob``, floats or tensors)."""

    def __init__(
        self,
        cell,
        input_keep_prob=1.0,
        output_keep_prob=1.0,
        state_keep_prob=1.0,
        variational_recurrent=False,
        input_size=None,
        dtype=None,
        seed=None,
    ):
        self._cell, self._seed = cell, seed
        self._in_keep, self._out_keep = input_keep_prob, output_keep_prob

    state_size = property(lambda self: self._cell.state_size)
    output_size = property(lambda self: self._cell.output_size)

    def zero_state(self, batch_size, dtype):
        return self._cell.zero_state(batch_size, dtype)

    def __call__(self, inputs, state, scope=None):
        from .. import nn as _gnn

        def drop(x, keep):
            if isinstance(keep, (int, float)) and keep == 1:
                return x
            return _gnn.dropout(x, keep_prob=keep, seed=self._seed)

        out, new_state = self._cell(drop(convert(inputs), self._in_keep), state, scope)
        return drop(out, self._out_keep), new_state


# --- unrolling --------------------------------------------------------------------------------


def _initial(cell, inputs0, initial_state, dtype):
    if initial_state is not None:
        return initial_state
    if dtype is None:
        raise ShapeError("an RNN without initial_state needs dtype=", user_location())
    x = convert(inputs0)
    batch = x.shape[0] if isinstance(x.shape[0], int) else None
    if batch is not None:
        return cell.zero_state(batch, dtype)
    from ..ops.array import shape as _shape

    return cell.zero_state(_shape(x)[0], dtype)


def _select_state(alive, new, old):
    """``new`` where ``alive`` else ``old``, through nested state tuples (LSTMStateTuple,
    MultiRNNCell's tuple of states)."""
    if isinstance(new, tuple):
        parts = [_select_state(alive, n, o) for n, o in zip(new, old, strict=True)]
        return type(new)(*parts) if hasattr(new, "_fields") else tuple(parts)
    return where(alive, new, old)


def static_rnn(cell, inputs, initial_state=None, dtype=None, sequence_length=None, scope=None):
    """Run ``cell`` over the list ``inputs`` (one (batch, depth) tensor per step); returns
    ``(outputs, final_state)``.

    With ``sequence_length`` (one length per example), step ``t`` of an example with length
    ``<= t`` outputs zeros and leaves its state alone, so the final state is the state after
    the example's last step (TF's rule; the cell still runs on the padding, then is masked)."""
    inputs = list(inputs)
    state = _initial(cell, inputs[0], initial_state, dtype)
    lengths = None if sequence_length is None else cast(convert(sequence_length), "int32")
    outputs = []
    with variable_scope(scope or "rnn"):
        for t, x in enumerate(inputs):
            out, new_state = cell(x, state)
            if lengths is None:
                state = new_state
            else:
                alive = expand_dims(greater(lengths, t), 1)  # (batch, 1)
                out = where(alive, out, zeros_like(out))
                state = _select_state(alive, new_state, state)
            outputs.append(out)
    return outputs, state


def _time_major(x, time_major):
    if x.shape is None or len(x.shape) < 2:  # TF: "Expected input tensor ... rank at least 2"
        raise ShapeError(
            f"an RNN needs inputs of known rank >= 2 ([batch, time, depth]): {x.describe()} "
            "(give the placeholder a shape)",
            user_location(),
        )
    if time_major:
        return x
    return transpose(x, [1, 0] + list(range(2, len(x.shape))))


def _scan_rnn(cell, x, state, lengths, reverse, name):
    """The cell over the time-major ``x`` as one ``scan`` (a loop in the graph, whatever the
    run-time length): returns (time-major outputs, final state). With ``lengths``, step
    ``t`` of an example with length ``<= t`` outputs zeros and keeps its state; run in
    ``reverse`` that makes each example start at its own last step, as TF's backward pass
    over ``reverse_sequence`` does."""
    start = (_shape(x)[0] - 1) if reverse else convert(0)

    def step(carry, xt):
        t, st = carry
        out, new_state = cell(xt, st)
        if lengths is not None:
            alive = expand_dims(greater(lengths, t), 1)  # (batch, 1)
            out = where(alive, out, zeros_like(out))
            new_state = _select_state(alive, new_state, st)
        return (t - 1 if reverse else t + 1, new_state), out

    (_, final), outputs = scan_with_outputs(step, x, (start, state), reverse=reverse, name=name)
    return outputs, final


def dynamic_rnn(
    cell,
    inputs,
    sequence_length=None,
    initial_state=None,
    dtype=None,
    parallel_iterations=None,
    swap_memory=False,
    time_major=False,
    scope=None,
):
    """The cell over the time axis of ``inputs`` ((batch, time, depth), or (time, batch,
    depth) with ``time_major``) as a loop in the graph (``scan``): the time length may be
    unknown until run time. Returns (outputs stacked on that axis, final state)."""
    x = _time_major(convert(inputs), time_major)
    if x.shape is None or len(x.shape) < 3:
        raise ShapeError(
            f"dynamic_rnn needs inputs of rank 3 or more, got {x.describe()}", user_location()
        )
    state = _initial(cell, x[0], initial_state, dtype)
    lengths = None if sequence_length is None else cast(convert(sequence_length), "int32")
    with variable_scope(scope or "rnn"):
        outputs, state = _scan_rnn(cell, x, state, lengths, False, "rnn")
    return _time_major(outputs, time_major), state


def static_bidirectional_rnn(
    cell_fw,
    cell_bw,
    inputs,
    initial_state_fw=None,
    initial_state_bw=None,
    dtype=None,
    sequence_length=None,
    scope=None,
):
    """Forward and backward passes; each output is ``concat([fw, bw])`` for its step."""
    if sequence_length is not None:  # the backward pass would need reverse_sequence
        raise missing("nn", "static_bidirectional_rnn(sequence_length=)")
    inputs = list(inputs)
    with variable_scope(scope or "bidirectional_rnn"):
        with variable_scope("fw"):
            fw, state_fw = static_rnn(cell_fw, inputs, initial_state_fw, dtype)
        with variable_scope("bw"):
            bw, state_bw = static_rnn(cell_bw, inputs[::-1], initial_state_bw, dtype)
    outputs = [concat([f, b], axis=1) for f, b in zip(fw, bw[::-1], strict=True)]
    return outputs, state_fw, state_bw


def bidirectional_dynamic_rnn(
    cell_fw,
    cell_bw,
    inputs,
    sequence_length=None,
    initial_state_fw=None,
    initial_state_bw=None,
    dtype=None,
    parallel_iterations=None,
    swap_memory=False,
    time_major=False,
    scope=None,
):
    """Returns ``((out_fw, out_bw), (state_fw, state_bw))``, outputs stacked in time; the
    backward pass runs each example from its own last step (``sequence_length``)."""
    x = _time_major(convert(inputs), time_major)
    lengths = None if sequence_length is None else cast(convert(sequence_length), "int32")
    with variable_scope(scope or "bidirectional_rnn"):
        with variable_scope("fw"):
            fw, state_fw = _scan_rnn(
                cell_fw, x, _initial(cell_fw, x[0], initial_state_fw, dtype), lengths, False, "fw"
            )
        with variable_scope("bw"):
            bw, state_bw = _scan_rnn(
                cell_bw, x, _initial(cell_bw, x[0], initial_state_bw, dtype), lengths, True, "bw"
            )
    return (_time_major(fw, time_major), _time_major(bw, time_major)), (state_fw, state_bw)


rnn_cell = Namespace(
    "nn.rnn_cell",
    RNNCell=RNNCell,
    BasicRNNCell=BasicRNNCell,
    BasicLSTMCell=BasicLSTMCell,
    LSTMCell=LSTMCell,
    GRUCell=GRUCell,
    MultiRNNCell=MultiRNNCell,
    DropoutWrapper=DropoutWrapper,
    LSTMStateTuple=LSTMStateTuple,
)

# tf.contrib.rnn held the same cells (and static_rnn) before they moved into tf.nn
contrib_rnn = Namespace(
    "contrib.rnn",
    RNNCell=RNNCell,
    BasicRNNCell=BasicRNNCell,
    BasicLSTMCell=BasicLSTMCell,
    LSTMCell=LSTMCell,
    GRUCell=GRUCell,
    MultiRNNCell=MultiRNNCell,
    DropoutWrapper=DropoutWrapper,
    LSTMStateTuple=LSTMStateTuple,
    static_rnn=static_rnn,
    static_bidirectional_rnn=static_bidirectional_rnn,
)
