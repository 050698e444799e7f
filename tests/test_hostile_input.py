"""Hostile and oversized input (issue #16): every limit is a located GraphcError at the
line that passes it, every failure reaches the command line as ``file:line:col`` and exit
1 — never "internal error", a hang, or gigabytes of memory."""

import contextlib
import io
import os
import struct
import tracemalloc
import zipfile

import numpy as np
import pytest

import graphc as gc
from graphc.cli import main
from graphc.frontend import dsl, fmt, parser


def run_cli(*args, env=None):
    out, err = io.StringIO(), io.StringIO()
    old = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([str(a) for a in args])
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return code, out.getvalue(), err.getvalue()


def located(e, line):
    assert isinstance(e, gc.GraphcError)
    assert e.location is not None and e.location.line == line, (e.location, str(e))
    return e


# --- expansion, nesting, sizes ----------------------------------------------------------------


def test_fns_that_double_at_each_level_are_refused_before_building():
    lines = ["fn g0(x) = x * 2.0"]
    lines += [f"fn g{i}(x) = g{i - 1}(x) + g{i - 1}(x)" for i in range(1, 41)]
    lines += ["model m {", "  input x : f32[2]", "  y = g40(x)", "  output y", "}"]
    text = "\n".join(lines)
    assert len(text) < 1300
    with pytest.raises(gc.LimitError, match="expands to more than") as e:
        dsl.loads(text)
    located(e.value, 44)
    assert len(gc.get_default_graph()) < 100  # refused before building anything


def test_a_fn_called_a_few_times_still_builds():
    text = (
        "fn sq(x) = x * x\nfn quad(x) = sq(sq(x))\n"
        "model m {\n input x : f32[2]\n y = quad(x) + quad(x)\n output y\n}\n"
    )
    g = dsl.loads(text)
    with gc.Session(graph=g) as sess:
        assert sess.run("y:0", {"x:0": [1.0, 2.0]}).tolist() == [2.0, 32.0]


def test_long_operator_chains_and_deep_nesting_build_and_format():
    flat = " + ".join(["x"] * 3000)
    deep = "relu(" * 3000 + "x" + ")" * 3000
    text = f"model m {{\n  input x : f32[2]\n  y = {flat}\n  z = {deep}\n  output y, z\n}}\n"
    g = dsl.loads(text)
    with gc.Session(graph=g) as sess:
        y, z = sess.run(["y:0", "z:0"], {"x:0": [1.0, -1.0]})
    assert y.tolist() == [3000.0, -3000.0] and z.tolist() == [1.0, 0.0]
    assert fmt.format_source(text) == text


def test_nesting_past_the_limit_is_located_at_its_line(monkeypatch):
    monkeypatch.setattr(parser, "MAX_NESTING", 200)
    text = "model m {\n  input x : f32[2]\n\n  y = " + "(-" * 300 + "x" + ")" * 300 + "\n}\n"
    with pytest.raises(gc.LimitError, match="nest more than 200") as e:
        dsl.loads(text)
    located(e.value, 4)
    with pytest.raises(gc.LimitError) as e:
        fmt.format_source(text)
    located(e.value, 4)


def test_string_literals_cost_memory_linear_in_their_length():
    text = 'model m {\n  input x : f32[2]\n  y = print(x, message="' + "a" * 200_000 + '")\n}\n'
    tracemalloc.start()
    try:
        parser.parse(text, "big.g")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 40 * 200_000  # was ~440 bytes per character


def test_overlong_lines_are_refused_at_their_line():
    text = "model m {\n  input x : f32[2]\n  y = x\n  # " + "z" * (parser.MAX_LINE + 1) + "\n}\n"
    with pytest.raises(gc.LimitError, match="line 4") as e:
        dsl.loads(text)
    located(e.value, 4)


@pytest.mark.parametrize(
    "literal, message",
    [
        (r'"\x"', "bad string literal"),
        (r'"\N{no such name}"', "bad string literal"),
        ('"a\x00b"', "bad string literal"),
    ],
)
def test_bad_string_literals_are_located_syntax_errors(literal, message):
    text = f"model m {{\n  input x : f32[2]\n  y = print(x, message={literal})\n}}\n"
    with pytest.raises(gc.GSyntaxError, match=message) as e:
        dsl.loads(text)
    located(e.value, 3)


def test_huge_integer_literals_and_dimensions_are_located():
    with pytest.raises(gc.GraphcError, match="digits") as e:
        dsl.loads("model m {\n  input x : f32[2]\n  y = x * " + "9" * 5000 + "\n}\n")
    located(e.value, 3)
    for dim in ("9223372036854775808", "1" + "0" * 40):
        with pytest.raises(gc.ShapeError, match="too large") as e:
            dsl.loads(f"model m {{\n  input x : f32[{dim}, 2]\n}}\n")
        located(e.value, 2)


def test_an_input_whose_default_is_an_expression_keeps_its_name():
    g = dsl.loads(
        "model m {\n  input x : f32[2]\n  input d : f32[2] = x * 2.0\n"
        "  y = d + 1.0\n  output y\n}\n"
    )
    assert g.get_tensor_by_name("d:0").op.type == "placeholder_with_default"
    with gc.Session(graph=g) as sess:
        assert sess.run("y:0", {"x:0": [1.0, 2.0]}).tolist() == [3.0, 5.0]
        assert sess.run("y:0", {"d:0": [0.0, 0.0]}).tolist() == [1.0, 1.0]


# --- what reaches the terminal --------------------------------------------------------------


@pytest.mark.parametrize("sep", ["\x0b", "\x0c", "\x1c", "\x85", "\u2028"])
def test_the_shown_source_line_is_right_after_odd_separators_in_comments(tmp_path, sep):
    path = tmp_path / "m.g"
    path.write_text(
        f"model m {{\n  input x : f32[2]  # a{sep}b\n  y = x + zz\n}}\n", encoding="utf-8"
    )
    code, _, err = run_cli("check", path)
    assert code == 1
    assert f"{path}:3:11: unknown name 'zz'" in err
    assert "\n      y = x + zz\n" in err


def test_control_characters_from_a_file_are_escaped(tmp_path):
    path = tmp_path / "m.g"
    path.write_text(
        'model m {\n  input x : f32[2]\n  y = x * ("\x1b[2J\x07" == zz)  # \x1b]0;t\x07\n}\n',
        encoding="utf-8",
    )
    code, _, err = run_cli("check", path)
    assert code == 1 and "\x1b" not in err and "\x07" not in err
    assert "\\x1b[2J" in err
    lines = err.splitlines()
    caret = next(i for i, line in enumerate(lines) if line.strip() == "^")
    # the caret still points at the column of the error in the escaped line
    src, col = lines[caret - 1], lines[caret].index("^")
    assert src[col:].startswith("zz")


# --- feed files and checkpoints from the command line ---------------------------------------


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "lin.g"
    path.write_text(
        "model m {\n  input x : f32[N, 3]\n  param w : f32[3, 2] = ones()\n"
        "  y = x @ w\n  output y\n}\n"
    )
    np.save(tmp_path / "x.npy", np.ones((4, 3), np.float32))
    return path


def _npy_header(shape, descr="<f4"):
    h = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}"
    h += " " * (118 - len(h)) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h.encode()


def test_an_npy_header_claiming_terabytes_is_refused(model, tmp_path):
    (tmp_path / "huge.npy").write_bytes(_npy_header((1_000_000, 3_000_000)))
    code, _, err = run_cli("run", model, "--feed", f"x={tmp_path / 'huge.npy'}")
    assert code == 1 and "declares shape (1000000, 3000000)" in err and "internal" not in err


def test_empty_and_truncated_npy_files_are_feed_errors(model, tmp_path):
    (tmp_path / "empty.npy").write_bytes(b"")
    (tmp_path / "short.npy").write_bytes(_npy_header((4, 3)) + b"\0" * 10)
    for name in ("empty.npy", "short.npy"):
        code, _, err = run_cli("run", model, "--feed", f"x={tmp_path / name}")
        assert code == 1 and err.startswith("error: cannot read") and "internal" not in err


def test_an_npz_zip_bomb_is_refused_by_its_declared_size(model, tmp_path):
    bomb = tmp_path / "bomb.npz"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        with z.open("x.npy", "w", force_zip64=True) as f:
            f.write(_npy_header((10_000_000, 3)))
            for _ in range(8):
                f.write(b"\0" * (15_000_000))
    assert bomb.stat().st_size < 1_000_000
    for spec in (f"x={bomb}", str(bomb)):
        code, _, err = run_cli(
            "run", model, "--feed", spec, env={"GRAPHC_MAX_FEED_BYTES": "50000000"}
        )
        assert code == 1 and "the limit of 50,000,000" in err, err


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_devices_and_fifos_are_refused_without_blocking(model, tmp_path):
    fifo = tmp_path / "fifo.npy"
    os.mkfifo(fifo)
    code, _, err = run_cli("run", model, "--feed", f"x={fifo}")
    assert code == 1 and "not a regular file" in err
    ck = tmp_path / "ck"
    os.mkfifo(ck)
    for restore in (ck, "/dev/zero"):
        code, _, err = run_cli(
            "run", model, "--feed", f"x={tmp_path / 'x.npy'}", "--restore", restore
        )
        assert code == 1 and "not a regular file" in err


def test_a_repeated_feed_is_an_error(model, tmp_path):
    x = tmp_path / "x.npy"
    code, _, err = run_cli("run", model, "--feed", f"x={x}", "--feed", f"x={x}")
    assert code == 1 and "fed twice" in err
    np.savez(tmp_path / "all.npz", x=np.ones((2, 3), np.float32))
    code, _, err = run_cli("run", model, "--feed", str(tmp_path / "all.npz"), "--feed", f"x={x}")
    assert code == 1 and "fed twice" in err


def test_check_states_the_real_peak_and_run_refuses_what_cannot_fit(tmp_path):
    path = tmp_path / "big.g"
    path.write_text(
        "model m {\n  input x : f32[2]\n  param w : f32[1000000, 1000000]\n"
        "  y = x * 2.0\n  output y\n}\n"
    )
    code, out, _ = run_cli("check", path)
    assert code == 0 and "peak memory 4,000,000,000," in out
    assert "variables 4,000,000,000,000" in out
    np.save(tmp_path / "x.npy", np.ones(2, np.float32))
    code, _, err = run_cli("run", path, "--feed", f"x={tmp_path / 'x.npy'}")
    assert code == 1 and "needs at least 4,000,000,000,0" in err


def test_check_parses_a_file_of_many_models_once(tmp_path, monkeypatch):
    path = tmp_path / "many.g"
    path.write_text(
        "".join(
            f"model m{i} {{\n  input x : f32[2]\n  y = x * 2.0\n  output y\n}}\n" for i in range(30)
        )
    )
    calls = []
    real = dsl.parse

    def counting(text, name):
        calls.append(name)
        return real(text, name)

    monkeypatch.setattr(dsl, "parse", counting)
    code, out, _ = run_cli("check", path)
    assert code == 0 and out.count(": ok,") == 30
    assert len(calls) == 1
