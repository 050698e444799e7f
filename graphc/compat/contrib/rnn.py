"""``tf.contrib.rnn``: the RNN cells (``BasicRNNCell``, ``BasicLSTMCell``, ``LSTMCell``,
``GRUCell``, ``MultiRNNCell``, ``DropoutWrapper``) and ``static_rnn`` (see
graphc.compat.rnn: TF 1.x's math and variable names, unrolled over static time steps)."""

from __future__ import annotations

from .._support import module_getattr
from ..rnn import (  # noqa: F401
    BasicLSTMCell,
    BasicRNNCell,
    DropoutWrapper,
    GRUCell,
    LSTMCell,
    LSTMStateTuple,
    MultiRNNCell,
    RNNCell,
    static_bidirectional_rnn,
    static_rnn,
)

__getattr__ = module_getattr("contrib.rnn")
