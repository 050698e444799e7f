"""``tf.summary`` of TF 1.x, writing real TensorBoard event files through ``gc.summary``.

``scalar``, ``histogram``, ``text``, ``merge``, ``merge_all`` and ``FileWriter`` are
graphc's own (``graphc/summary.py``, TensorBoard's protocol buffers and event writer, the
``tensorboard`` extra). ``image``, ``audio`` and ``tensor_summary`` are still accepted as
no-ops that warn once, so tutorial scripts that log them keep running."""

from __future__ import annotations

from ..ops.state import no_op
from ..summary import SUMMARIES, FileWriter, histogram, merge, merge_all, scalar, text  # noqa: F401
from ._support import module_getattr, warn_once


def _unsupported(kind):
    def summary_op(name=None, *args, **kwargs):
        warn_once(
            f"summary.{kind}",
            f"tf.summary.{kind}: graphc writes scalar, histogram and "
            f"text summaries; {kind} summaries are no-ops (fetching one gives None)",
        )
        return no_op(name="summary")

    summary_op.__name__ = kind
    return summary_op


image = _unsupported("image")
audio = _unsupported("audio")
tensor_summary = _unsupported("tensor_summary")


class FileWriterCache:
    """``tf.summary.FileWriterCache.get(logdir)``: one writer per directory."""

    _writers: dict = {}

    @classmethod
    def get(cls, logdir):
        if logdir not in cls._writers:
            cls._writers[logdir] = FileWriter(logdir)
        return cls._writers[logdir]

    @classmethod
    def clear(cls):
        for w in cls._writers.values():
            w.close()
        cls._writers.clear()


__getattr__ = module_getattr("summary")
