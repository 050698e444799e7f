"""The issue-18 benchmark workloads build and run with graphc alone (peers join only where
importable; the test environment has none)."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import models
from benchmarks.workloads import WORKLOADS


def test_the_runner_lists_the_model_workloads():
    assert {"lstm", "cnn", "dropout-mlp", "cnn-script"} <= set(WORKLOADS)


@pytest.mark.parametrize("name", ["lstm", "cnn", "dropout-mlp"])
def test_each_training_step_runs_and_updates(name):
    step = WORKLOADS[name]()["graphc"]
    losses = [float(step()[1]) for _ in range(3)]
    assert all(np.isfinite(losses)) and len(set(losses)) > 1  # the weights move


def test_the_tutorial_script_trains_and_evaluates_the_whole_test_set():
    accuracy = models.tutorial_cnn_script(models.graphc_tf(), steps=3, n_test=300)
    assert 0.0 <= float(accuracy) <= 1.0


def test_synthetic_digits_are_mnist_shaped():
    x, y = models.mnist_like(50)
    assert x.shape == (50, 784) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    np.testing.assert_array_equal(y.sum(axis=1), 1.0)
