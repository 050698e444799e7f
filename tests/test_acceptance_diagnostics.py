"""Acceptance probes (issue 8) that found gaps: a run-time error names the user's line and an
op the user recognises, at every optimization level."""

import inspect

import numpy as np
import pytest

import graphc as gc


@pytest.fixture(autouse=True)
def _fresh_graph():
    gc.reset_default_graph()


@pytest.mark.parametrize("opt", (0, 1, 2))
def test_labels_of_another_batch_name_the_cross_entropy(opt):
    """Labels fed for a batch of 3 against logits of 2: the failing node sits inside the
    composite, and its name says which one (TF's scoping), besides the user's line."""
    x = gc.placeholder(gc.float32, shape=(None, 3))
    labels = gc.placeholder(gc.int32, shape=(None,))
    xent = gc.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=x)
    line = inspect.currentframe().f_lineno - 1
    loss = gc.reduce_mean(xent)
    with gc.Session(optimize=opt) as s:
        with pytest.raises(gc.GraphcError) as e:
            s.run(loss, {x: np.ones((2, 3), np.float32), labels: np.array([0, 1, 2], np.int32)})
    msg = str(e.value)
    assert "sparse_softmax_cross_entropy_with_logits/" in msg
    assert f"test_acceptance_diagnostics.py:{line}" in msg


def test_composites_scope_their_nodes_and_keep_explicit_names():
    x = gc.placeholder(gc.float32, shape=(None, 4))
    assert gc.softmax(x).name.startswith("softmax/")
    assert gc.softmax(x).name.startswith("softmax_1/")
    assert gc.nn.softmax(x, name="probs").name == "probs:0"
    with gc.name_scope("head"):
        assert gc.nn.log_softmax(x).name.startswith("head/log_softmax/")
