"""``tf.summary`` of TF 1.x, accepted as no-ops.

graphc writes no TensorBoard event files. So that tutorial scripts that log summaries still
run, each summary op is a ``no_op`` (fetching it gives ``None``) and ``FileWriter`` accepts
and drops what it is given; the first use warns once, saying so."""

from __future__ import annotations

from ..ops.state import no_op
from ._support import module_getattr, warn_once

_WHY = ("tf.summary: graphc does not write TensorBoard summaries; summary ops are no-ops "
        "and FileWriter writes nothing")


def _summary_op(name=None, *args, **kwargs):
    warn_once("summary", _WHY)
    return no_op(name="summary")


scalar = histogram = image = audio = text = tensor_summary = _summary_op


def merge_all(key="summaries", scope=None, name=None):
    return _summary_op()


def merge(inputs, collections=None, name=None):
    return _summary_op()


class FileWriter:
    """Accepts TF's FileWriter calls and writes nothing."""

    def __init__(self, logdir=None, graph=None, *args, **kwargs):
        warn_once("summary", _WHY)
        self.logdir = logdir

    def add_summary(self, summary, global_step=None):
        pass

    def add_graph(self, graph, global_step=None, **kwargs):
        pass

    def add_run_metadata(self, run_metadata, tag, global_step=None):
        pass

    def add_session_log(self, session_log, global_step=None):
        pass

    def get_logdir(self):
        return self.logdir

    def flush(self):
        pass

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


__getattr__ = module_getattr("summary")
