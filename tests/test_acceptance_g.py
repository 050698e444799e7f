"""Acceptance probes (issue 5: the .g language and the CLI) that found bugs, written from the
SPEC alone: odd but legal files must work, bad ones must fail with exit 1 and a message."""

import contextlib
import io

import graphc
from graphc.cli import main

MODEL = "model bom {\n  input x : f32[2]\n  y = x * 2\n  output y\n}\n"


def _cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def test_a_byte_order_mark_is_whitespace(tmp_path):
    """Editors on Windows save UTF-8 with a BOM; load, check and fmt read such a file, and
    errors keep their line and column."""
    path = tmp_path / "bom.g"
    path.write_text("\ufeff" + MODEL, encoding="utf-8")
    g = graphc.load(str(path))
    assert g.get_tensor_by_name("y").shape == (2,)
    assert _cli("check", str(path))[0] == 0
    code, out, _ = _cli("fmt", str(path))
    assert code == 0 and out.startswith("model bom {")
    bad = tmp_path / "bad.g"
    bad.write_text("\ufeffmodel b {\n  input x : f32[2]\n  y = x * \n}\n", encoding="utf-8")
    code, _, err = _cli("check", str(bad))
    assert code == 1 and "bad.g:4:1:" in err and "Traceback" not in err


def test_a_binary_file_is_named_in_the_error(tmp_path):
    path = tmp_path / "weights.npy"
    path.write_bytes(b"\x93NUMPY\x01\x00\xff\xfe")
    code, _, err = _cli("check", str(path))
    assert code == 1 and "weights.npy" in err and "UTF-8" in err


def test_malformed_option_values_are_bad_usage(tmp_path):
    """Exit 2 is for bad usage (SPEC §8): a --dim or --feed that is not NAME=VALUE is
    rejected by the argument parser, before any file is read."""
    path = tmp_path / "m.g"
    path.write_text(MODEL, encoding="utf-8")
    for argv in (
        ("compile", str(path), "--dim", "N=abc"),
        ("compile", str(path), "--dim", "N"),
        ("run", str(path), "--feed", "x"),
        ("run", str(path), "--feed", "=x.npy"),
    ):
        try:
            code = _cli(*argv)[0]
        except SystemExit as e:  # argparse exits on bad usage
            code = e.code
        assert code == 2, argv
    assert _cli("compile", str(path), "--dim", "N=4")[0] == 0


ADAM_MODEL = """model m {
  input x : f32[N, 2]
  param w : f32[2, 1] = normal(stddev=0.1, seed=1)
  loss = reduce_mean((x @ w - 1.0) ** 2)
  output loss
  train loss with adam(lr=0.1)
}
"""


def test_round_trip_after_an_initializer_names_the_clause_slots():
    """The usual Python steps after loading a model (gc.global_variables_initializer(), which
    groups the optimizer's slot initializers) must keep graph.to_text() loadable and exact:
    the clause is then written out node by node."""
    g = graphc.loads(ADAM_MODEL)
    with graphc.Session(graph=g) as s:
        s.run(graphc.global_variables_initializer())
        text = g.to_text()
        feeds = {"x": [[1.0, 2.0], [3.0, 4.0]]}
        for _ in range(3):
            s.run("train", feeds)
        want = s.run("loss", feeds)
    g2 = graphc.loads(text)
    assert g2.to_text() == text
    with graphc.Session(graph=g2) as s:
        s.run(graphc.global_variables_initializer())
        for _ in range(3):
            s.run("train", feeds)
        assert abs(s.run("loss", feeds) - want) < 1e-6


def test_viz_writes_the_svg_it_is_asked_for(tmp_path, monkeypatch):
    """`graphc viz MODEL.g -o graph.svg` writes graph.svg, with or without Graphviz: without
    it graphc draws the before/after clusters itself."""
    import xml.dom.minidom

    import graphc.cli

    monkeypatch.setattr(graphc.cli.shutil, "which", lambda name: None)  # no `dot` here
    path = tmp_path / "m.g"
    path.write_text(MODEL, encoding="utf-8")
    out = tmp_path / "graph.svg"
    code, _, err = _cli("viz", str(path), "-o", str(out))
    assert code == 0 and "plain layered SVG" in err
    doc = xml.dom.minidom.parseString(out.read_text())
    texts = [t.firstChild.data for t in doc.getElementsByTagName("text") if t.firstChild]
    assert any(t.startswith("before") for t in texts) and any(t.startswith("after") for t in texts)
    assert "x" in texts and "y" in texts
