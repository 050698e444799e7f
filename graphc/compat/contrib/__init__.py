"""``tf.contrib`` of TF 1.x: the pieces of it that classic tutorials use.

``tf.contrib`` was never part of TF's stable API; graphc provides ``contrib.layers``
(``fully_connected``, ``batch_norm``, ``dropout``, ``conv2d``, ``max_pool2d``, ``flatten``,
the initializers and regularizers), ``contrib.framework.arg_scope``, ``contrib.slim`` (the
same layers), ``contrib.rnn`` (the cells and ``static_rnn``) and ``contrib.seq2seq``
(``sequence_loss``, and ``TrainingHelper``, ``GreedyEmbeddingHelper``, ``BasicDecoder``,
``dynamic_decode``). It imports as a package, as TF's did:
``from graphc.compat.v1.contrib import rnn`` and ``import graphc.compat.v1.contrib.layers``
work besides ``tf.contrib.layers``. Anything else in it raises ``MissingAPIError``."""

from __future__ import annotations

from .._support import module_getattr
from . import framework, layers, rnn, seq2seq, slim  # noqa: F401

__getattr__ = module_getattr("contrib")
