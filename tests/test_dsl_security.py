"""A .g file can never run code: not through the parser, not through names or strings that
reach generated source, not through a checkpoint or a feed file. Each hostile input below
would create a marker file if any of it were executed."""

import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

import graphc as gc
from graphc.backends.standalone import emit_module

MARKER = "pwned"
PAYLOAD = f"__import__('os').system('touch {MARKER}')"


class _Evil:
    """Unpickling this runs a shell command."""

    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


@pytest.fixture
def cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    assert not (tmp_path / MARKER).exists(), "hostile input executed code"


@pytest.mark.parametrize(
    "body, error",
    [
        (f"y = {PAYLOAD}", "syntax error"),  # single quotes are not .g strings
        ('y = __import__("os")', "unknown function '__import__'"),
        ('y = eval("1 + 1")', "unknown function 'eval'"),
        ('y = exec("import os")', "unknown function 'exec'"),
        ('y = open("/etc/passwd")', "unknown function 'open'"),
        ('y = getattr(x, "__class__")', "unknown function 'getattr'"),
        ("y = op.__class__(x)", "no op named '__class__'"),
        ('y = os.system("touch pwned")', "only op.NAME"),
        ('y = register_op("evil", x)', "unknown function 'register_op'"),
        ("y = x.__class__", "syntax error"),
        ("y = __builtins__", "unknown name '__builtins__'"),
        ("y = `a'); import os; (\"` + x", "syntax error"),
        ("y = x + 1 ; import os", "syntax error"),
    ],
)
def test_code_in_names_is_only_an_error(cwd, body, error):
    with pytest.raises(gc.GraphcError, match=error.replace("(", r"\(").replace(")", r"\)")):
        gc.loads("model m {\n  input x : f32[3]\n  " + body + "\n}", graph=gc.Graph())


HOSTILE = (
    "fn __init__(__class__) = __class__ * 2.0\n"
    "model `evil'name` {\n"
    "  input x : f32[N, 2]\n"
    "  __dict__ = __init__(x)\n"
    '  shout = print(__dict__, message="\\"); import os; os.system(\'touch pwned\'); (\\"\\n'
    + PAYLOAD
    + '")\n'
    "  q = check_numerics(shout, message=" + json.dumps("'''\n" + PAYLOAD) + ")\n"
    "  output q\n"
    "}\n"
)


def test_hostile_strings_stay_strings_through_print_and_emit(cwd, capfd):
    with pytest.raises(gc.GSyntaxError):  # a quote cannot appear in a name
        gc.loads(HOSTILE, graph=gc.Graph())
    src = HOSTILE.replace("`evil'name`", "evil")
    g = gc.loads(src, graph=gc.Graph())
    message = g.get_operation_by_name("shout").attrs["message"]
    assert message.startswith('"); import os;') and PAYLOAD in message
    with gc.Session(graph=g) as sess:
        sess.run("q", {"x": np.ones((1, 2))})
    # the text printer escapes it, and loading the text gives back the same string
    g2 = gc.loads(g.to_text(), graph=gc.Graph())
    assert g2.get_operation_by_name("shout").attrs["message"] == message
    # the generated module holds it as an inert literal
    source = emit_module(g)
    compile(source, "model.py", "exec")
    (cwd / "model.py").write_text(source)
    p = subprocess.run(
        [
            sys.executable,
            "-c",
            "import numpy as np, model; print(model.run({'x': np.ones((1, 2), np.float32)})['q'])",
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    assert PAYLOAD in p.stdout  # printed, not run


def test_python_graph_with_hostile_names_and_attrs(cwd):
    x = gc.placeholder(gc.float32, shape=(2,), name="x'); import os; #\nbad")
    y = gc.print(x, message="'''\n" + PAYLOAD + "\n'''", name="__import__('os')")
    g = gc.get_default_graph()
    assert all(
        set(op.name) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-/")
        for op in g.get_operations()
    )
    text = g.to_text()
    g2 = gc.loads(text, graph=gc.Graph())
    assert g2.get_operation_by_name(y.op.name).attrs["message"] == y.op.attrs["message"]
    g.add_to_collection("graphc.outputs", y)
    ns = {}
    exec(compile(emit_module(g), "model.py", "exec"), ns)  # defines functions only
    ns["run"]({x.op.name: np.ones(2, np.float32)})


def test_pickled_checkpoint_and_feeds_are_refused(cwd):
    (cwd / "m.g").write_text(
        "model m {\n  input x : f32[N, 1]\n  param w : f32[1, 1] = ones()\n"
        "  y = x @ w\n  output y\n}\n"
    )
    (cwd / "evil.ckpt").write_bytes(pickle.dumps(_Evil()))
    np.save(cwd / "x.npy", np.array([_Evil()], dtype=object), allow_pickle=True)
    np.save(cwd / "ok.npy", np.ones((2, 1), np.float32))
    for args in (
        ["--feed", "x=ok.npy", "--restore", "evil.ckpt"],
        ["--feed", "x=x.npy"],
        ["--feed", "x=ok.npy", "--restore", "x.npy"],
    ):
        p = subprocess.run(
            [sys.executable, "-m", "graphc.cli", "run", "m.g", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert p.returncode == 1, (args, p.stderr)
        assert "Traceback" not in p.stderr and p.stderr.startswith("error:")
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "graphc.cli",
            "compile",
            "m.g",
            "--emit",
            "py",
            "--restore",
            "evil.ckpt",
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 1 and "Traceback" not in p.stderr
