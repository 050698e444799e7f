"""The README's runnable Python examples run, and print what the README shows.

An example is a ```python block that starts with an import; the plain ``` block right
after it, if any, is its output ("..." lines in it stand for lines left out)."""

import pathlib
import re

import pytest

import graphc as gc

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def _examples():
    blocks = re.findall(r"```(\w*)\n(.*?)```", README.read_text(), re.S)
    for k, (lang, code) in enumerate(blocks):
        if lang == "python" and code.startswith("import numpy as np\nimport graphc as gc") \
                or lang == "python" and code.startswith("import graphc as gc\n"):
            after = blocks[k + 1] if k + 1 < len(blocks) else ("", "")
            shown = after[1] if after[0] == "" and not after[1].startswith(("graphc ", "$")) \
                else None
            yield pytest.param(code, shown, id=f"block{k}")


EXAMPLES = list(_examples())


def test_the_readme_has_runnable_examples():
    assert len(EXAMPLES) >= 3


@pytest.mark.parametrize("code,shown", EXAMPLES)
def test_readme_example(code, shown, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    # the printed losses are the numpy tiles' digits; compiled CPU loops (host_compile, when
    # a C++ compiler is present) round the last of them differently
    monkeypatch.setenv("GRAPHC_NO_CC", "1")
    with gc.Graph().as_default():
        exec(compile(code, "mlp.py", "exec"), {})  # noqa: S102 - the README's own text
    printed = capsys.readouterr().out.splitlines()
    if shown is None:
        return
    expected = shown.strip("\n").splitlines()
    if any(line.strip() == "..." for line in expected):
        missing = [line for line in expected if line.strip() != "..." and line not in printed]
        assert missing == []
    else:
        assert printed == expected
