"""``tf.train`` of TF 1.x: graphc's ``gc.train`` (optimizers with TF's names and defaults,
``Saver``, global steps, ``exponential_decay``), looked up when first used. The input-queue
machinery of TF 1.x (readers, ``batch``, ``QueueRunner``, ``Coordinator``) runs
Python-side, inside ``session.run`` (``compat/queues.py``, ``compat/fifo_queue.py``)."""

from __future__ import annotations

from ._support import missing
from .fifo_queue import QueueRunner, add_queue_runner  # noqa: F401 - tf.train's queue runners
from .queues import (  # noqa: F401 - tf.train's input path, Python-side
    Coordinator,
    batch,
    input_producer,
    range_input_producer,
    shuffle_batch,
    slice_input_producer,
    start_queue_runners,
    string_input_producer,
)
from .train_extra import (  # noqa: F401 - schedules and moving averages
    ExponentialMovingAverage,
    cosine_decay,
    global_step,
    inverse_time_decay,
    natural_exp_decay,
    piecewise_constant,
    polynomial_decay,
)

_QUEUES = {
    "batch_join",
    "shuffle_batch_join",
}


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    from .. import train as _train  # imported on first use: it is a later stage

    if name not in _QUEUES:
        if hasattr(_train, name):
            return getattr(_train, name)
    raise missing("train", name, [*globals(), *getattr(_train, "__all__", ())])


class CheckpointState:
    """What ``get_checkpoint_state`` returns: the newest checkpoint's path."""

    def __init__(self, path):
        self.model_checkpoint_path = path
        self.all_model_checkpoint_paths = [path]

    def __repr__(self):
        return f"model_checkpoint_path: {self.model_checkpoint_path!r}"


def get_checkpoint_state(checkpoint_dir, latest_filename=None):
    """The newest checkpoint a Saver wrote in ``checkpoint_dir``, or None (TF's falsy
    answer when there is none)."""
    from ..checkpoint import latest_checkpoint

    path = latest_checkpoint(checkpoint_dir)
    return CheckpointState(path) if path is not None else None


def checkpoint_exists(checkpoint_prefix):
    import os

    return os.path.exists(checkpoint_prefix)
