"""The graphc command: every command and exit code. Each command runs at least once as a
user runs it (a subprocess); the other cases call the same main() in this process, which is
cheaper on a loaded machine and checks the same code."""

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

LIN = """\
# a line through the points
model lin {
  input x : f32[N, 1]
  input y : f32[N, 1]
  param w : f32[1, 1] = zeros()
  param b : f32[1] = zeros()
  pred = x @ w + b
  loss = reduce_mean((pred - y) ** 2)
  output pred, loss
  train loss with sgd(lr=0.5)
}
"""


def graphc(*args, cwd):
    proc = subprocess.run(
        [sys.executable, "-m", "graphc.cli", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def graphc_here(*args, cwd):
    """The same command in this process: main(argv) with stdout and stderr captured."""
    from graphc.cli import main

    out, err, before = io.StringIO(), io.StringIO(), os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main([str(a) for a in args])
            except SystemExit as e:  # argparse's usage errors
                code = e.code
    finally:
        os.chdir(before)
    assert "Traceback" not in err.getvalue(), err.getvalue()
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


@pytest.fixture
def work(tmp_path):
    (tmp_path / "lin.g").write_text(LIN)
    x = np.linspace(0, 1, 17, dtype=np.float32)[:, None]
    np.save(tmp_path / "x.npy", x)
    np.savetxt(tmp_path / "y.csv", 3 * x + 1, delimiter=",")
    np.savez(tmp_path / "data.npz", x=x, y=3 * x + 1)
    return tmp_path


def test_check_and_compile_report_peak_memory(work):
    p = graphc("check", "lin.g", cwd=work)
    assert p.returncode == 0 and "model lin: ok" in p.stdout and "peak memory" in p.stdout
    p = graphc_here("compile", "lin.g", "--dim", "N=17", "-O", "1", cwd=work)
    assert p.returncode == 0, p.stderr
    assert "peak memory:" in p.stdout and "N=17" in p.stdout and "optimize=1" in p.stdout
    assert "prune" in p.stdout and "train:   loss with sgd(lr=0.5)" in p.stdout


def test_compile_emits_ir_dot_and_py(work):
    p = graphc("compile", "lin.g", "--emit", "ir", cwd=work)
    assert p.returncode == 0 and p.stdout.startswith("# plan:") and "fetch %" in p.stdout
    p = graphc_here("compile", "lin.g", "--emit", "dot", "-o", "lin.dot", cwd=work)
    dot = (work / "lin.dot").read_text()
    assert p.returncode == 0 and "cluster_before" in dot and "cluster_after" in dot
    p = graphc_here("compile", "lin.g", "--emit", "py", "-o", "lin_model.py", cwd=work)
    assert p.returncode == 0 and "def train_step(feeds):" in (work / "lin_model.py").read_text()


def test_run_trains_saves_and_restores(work):
    p = graphc(
        "run",
        "lin.g",
        "--feed",
        "x=x.npy",
        "--feed",
        "y=y.csv",
        "--train",
        "200",
        "--save",
        "ckpt",
        "--fetch",
        "loss",
        cwd=work,
    )
    assert p.returncode == 0, p.stderr
    assert "200/200" in p.stderr and "loss" in p.stderr  # the progress bar
    final = float(p.stdout.split("loss = ")[-1])
    assert final < 1e-6
    p = graphc_here(
        "run", "lin.g", "--feed", "data.npz", "--restore", "ckpt", "--fetch", "w,b", cwd=work
    )
    assert p.returncode == 0, p.stderr
    w = float(p.stdout.split("w = [[")[1].split("]")[0])
    assert abs(w - 3.0) < 1e-3


def test_fmt_prints_checks_and_rewrites(work):
    messy = "model m{input x:f32[N,2]   # in\n  y=x*2.0+ x\noutput y}\n"
    (work / "m.g").write_text(messy)
    p = graphc("fmt", "m.g", cwd=work)
    assert p.returncode == 0
    assert p.stdout == (
        "model m {\n  input x : f32[N, 2]  # in\n  y = x * 2.0 + x\n  output y\n}\n"
    )
    assert graphc_here("fmt", "--check", "m.g", cwd=work).returncode == 1
    assert graphc_here("fmt", "-i", "m.g", cwd=work).returncode == 0
    assert (work / "m.g").read_text() == p.stdout
    assert graphc_here("fmt", "--check", "m.g", cwd=work).returncode == 0


def test_viz_writes_svg_or_dot(work):
    p = graphc("viz", "lin.g", "-o", "g.svg", cwd=work)
    assert p.returncode == 0, p.stderr
    out = work / "g.svg" if (work / "g.svg").exists() else work / "g.dot"
    text = out.read_text()
    assert ("<svg" in text) if out.suffix == ".svg" else text.startswith("digraph")


@pytest.mark.parametrize(
    "src, line, words",
    [
        ("model m {\n  input x : f32[N, 3]\n  y = x @@ x\n}", 3, "syntax error"),
        (
            "model m {\n  input x : f32[N, 3]\n  param w : f32[4, 2] = zeros()\n  y = x @ w\n}",
            4,
            "matmul",
        ),
    ],
)
def test_user_errors_exit_1_with_location_and_caret(work, src, line, words):
    (work / "bad.g").write_text(src)
    for run, cmd in ((graphc, "check"), (graphc_here, "compile")):
        p = run(cmd, "bad.g", cwd=work)
        assert p.returncode == 1
        first = p.stderr.splitlines()[0]
        assert first.startswith(f"error: bad.g:{line}:") and words in first
        assert "^" in p.stderr.splitlines()[-1]


def test_other_user_errors_exit_1(work):
    assert graphc_here("check", "missing.g", cwd=work).returncode == 1
    p = graphc_here("run", "lin.g", "--feed", "z=x.npy", cwd=work)
    assert p.returncode == 1 and "no input 'z'" in p.stderr
    p = graphc_here("run", "lin.g", "--feed", "x=x.npy", cwd=work)
    assert p.returncode == 1 and "'y'" in p.stderr  # the missing feed is named
    (work / "bad.npy").write_bytes(b"not an array")
    p = graphc_here("run", "lin.g", "--feed", "x=bad.npy", "--feed", "y=y.csv", cwd=work)
    assert p.returncode == 1 and "cannot read bad.npy" in p.stderr


@pytest.mark.parametrize(
    "args",
    [
        (),
        ("bogus",),
        ("compile",),
        ("run", "lin.g", "--train", "0"),
        ("compile", "lin.g", "--emit", "exe"),
        ("compile", "lin.g", "-O", "7"),
    ],
)
def test_bad_usage_exits_2(work, args):
    p = graphc_here(*args, cwd=work)
    assert p.returncode == 2 and "usage:" in p.stderr


def test_bad_usage_exits_2_from_the_command_line(work):
    p = graphc("compile", "lin.g", "--emit", "exe", cwd=work)
    assert p.returncode == 2 and "invalid choice: 'exe'" in p.stderr


def test_python_dash_m_graphc_is_the_cli(work):
    p = subprocess.run(
        [sys.executable, "-m", "graphc", "check", "lin.g"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0 and "model lin: ok" in p.stdout


def test_pyproject_lists_every_package_so_the_wheel_has_the_grammar():
    """pyproject lists packages by hand (graphc.grammar is mapped from grammar/, which
    packages.find cannot see): the list must cover every folder of modules."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: the dev extra installs tomli
        import tomli as tomllib
    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for p in (ROOT / "graphc").rglob("*.py")
        if "__pycache__" not in p.parts
    }
    assert found | {"graphc.grammar"} == listed
    assert (ROOT / "grammar" / "graphc.lark").is_file()


def test_session_names_a_missing_feed_with_the_compiled_executor():
    """Regression (session.py): once gc.compile planned unfed placeholders as later feeds, a
    run without one failed inside the executor with a ValueError instead of a FeedError."""
    import graphc as gc

    x = gc.placeholder(gc.float32, (None, 1), name="x")
    y = gc.placeholder(gc.float32, (None, 1), name="y")
    with gc.Session() as sess, pytest.raises(gc.FeedError, match="placeholder 'y'"):
        sess.run(gc.reduce_sum(x - y), {x: np.ones((2, 1))})


def test_run_reads_integer_labels_from_csv_and_writes_npz(work):
    (work / "c.g").write_text("model c {\n  input k : i64[N]\n  d = k * 2\n  output d\n}\n")
    (work / "k.csv").write_text("1\n2.0\n3\n")
    p = graphc_here("run", "c.g", "--feed", "k=k.csv", "-o", "out.npz", cwd=work)
    assert p.returncode == 0, p.stderr
    out = np.load(work / "out.npz")["d"]
    np.testing.assert_array_equal(out, [2, 4, 6])
    assert out.dtype == np.int64
    (work / "k.csv").write_text("1.5\n")
    p = graphc_here("run", "c.g", "--feed", "k=k.csv", cwd=work)
    assert p.returncode == 1 and "fractions" in p.stderr
