"""The seed examples run as scripts (in subprocesses, with shortened settings) and print
what they claim."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_example(name, *args, cwd=None):
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "examples", name), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd or ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def _floats(pattern, text):
    return [float(v) for v in re.findall(pattern, text)]


def test_linear_regression_prints_falling_cost_and_approaches_least_squares(tmp_path):
    out = run_example(
        "linear_regression.py", "--epochs", "300", "--plot", str(tmp_path / "fit.png")
    )
    costs = _floats(r"Epoch: \d+ cost= ([0-9.]+)", out)
    assert len(costs) == 300 // 50  # every 50 epochs
    assert np.all(np.diff(costs) < 0) and "Optimization Finished!" in out
    (w,) = _floats(r"Training cost= [0-9.]+ W= ([-0-9.]+)", out)
    (ls_w,) = _floats(r"Least-squares fit: W= ([-0-9.]+)", out)
    assert abs(w - ls_w) < 0.1
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "matplotlib is not installed" in out
    else:
        assert (tmp_path / "fit.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_two_layer_network_three_ways_agree(dtype):
    out = run_example("two_layer.py", "--steps", "60", "--dtype", dtype)
    assert "The three agree" in out
    rows = [line.split() for line in out.splitlines() if re.match(r"\s*\d+\s+\d", line)]
    assert [r[0] for r in rows] == ["1", "60"]
    first, last = (np.array(r[1:], dtype=float) for r in rows)
    np.testing.assert_allclose(first, first[0], rtol=1e-5)  # same start, three ways
    assert last.max() < first.min()


def test_mlp_digits_reaches_high_test_accuracy():
    out = run_example("mlp_digits.py", "--epochs", "15")
    (acc,) = _floats(r"final test accuracy: ([0-9.]+)", out)
    if "scikit-learn digits" in out:
        assert acc >= 0.95
    else:
        assert "synthetic" in out and acc >= 0.9
    assert "Total params: 4,810" in out  # graph.summary() of 64-64-10


def test_mlp_digits_synthetic_fallback():
    out = run_example("mlp_digits.py", "--synthetic", "--epochs", "15")
    assert "synthetic" in out
    (acc,) = _floats(r"final test accuracy: ([0-9.]+)", out)
    assert acc >= 0.9


@pytest.mark.parametrize("steps", ["40"])
def test_demo_trains_and_round_trips_a_checkpoint(steps):
    out = run_example("demo.py", "--steps", steps)
    losses = _floats(r"loss ([0-9.e+-]+)\n", out)
    assert losses[-1] < losses[0] / 5
    assert "checkpoint round trip" in out
