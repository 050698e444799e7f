"""examples/basics.py runs as a script and prints what its comments promise."""

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_basics_example_runs():
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "basics.py")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "a + b = 5" in text and "a * b = 6" in text
    assert "x + y = 5" in text and "x * y = 6" in text
    assert "[[12.]]" in text
    assert "static shape (3, 4)" in text
    assert "after v.assign_add(5): [[6.0, 6.0], [6.0, 6.0]]" in text
    assert "Traceback" not in out.stderr
