"""The distribution: its name, license metadata, extras, and a non-editable install from the
checkout (the grammar ships inside the package and is found there)."""

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_distribution_name_license_and_extras():
    # `graphc` on PyPI is another project with its own `graphc` command
    assert PROJECT["name"] == "graphc-compiler"
    assert PROJECT["scripts"] == {"graphc": "graphc.cli:main"}
    assert PROJECT["license"] == "MIT" and PROJECT["license-files"] == ["LICENSE"]
    assert "MIT License" in (ROOT / "LICENSE").read_text()
    assert (ROOT / "graphc" / "py.typed").exists()
    extras = PROJECT["optional-dependencies"]
    assert {"gpu", "tensorboard", "onnx", "mpi", "examples", "dev"} <= set(extras)
    assert any("[ctk]" in r for r in extras["gpu"])  # CUDA headers without a toolkit
    assert PROJECT["dependencies"] == ["numpy>=1.24", "networkx>=3.0", "lark>=1.1"]
    # the tests of the optional features run in CI: dev installs what they import
    dev = " ".join(extras["dev"])
    for pkg in ("tensorboard", "onnx", "onnxruntime", "matplotlib", "tqdm"):
        assert pkg in dev


def test_every_install_hint_names_the_distribution():
    hints = []
    for path in (
        list((ROOT / "graphc").rglob("*.py"))
        + list((ROOT / "examples").glob("*.py"))
        + [ROOT / "README.md"]
    ):
        text = path.read_text(encoding="utf-8")
        hints += [(path.name, line) for line in text.splitlines() if "pip install" in line]
    assert hints
    for name, line in hints:
        assert "graphc[" not in line.replace("graphc-compiler[", ""), (name, line)


def test_a_non_editable_install_finds_its_grammar(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(
        ROOT,
        src,
        ignore=shutil.ignore_patterns(
            ".venv",
            ".git",
            "build",
            "*.egg-info",
            "__pycache__",
            ".pytest_cache",
            "benchmarks",
            "tests",
        ),
    )
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-v",
            "--no-deps",
            "-w",
            str(tmp_path / "dist"),
            str(src),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    log = out.stdout + out.stderr
    assert "SetuptoolsDeprecationWarning" not in log and "License classifiers" not in log
    (wheel,) = (tmp_path / "dist").glob("graphc_compiler-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        meta = z.read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert {"graphc/grammar/graphc.lark", "graphc/py.typed"} <= names
    assert any(n.endswith("licenses/LICENSE") for n in names)
    assert "License-Expression: MIT" in meta and "Name: graphc-compiler" in meta
    assert "Provides-Extra: onnx" in meta and "Provides-Extra: tensorboard" in meta
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-index",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    # -S: no site hooks, so the editable install of this checkout cannot answer the import
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(target), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
        ),
    }
    code = (
        "import graphc as gc; g = gc.loads('model m { input x : f32[N, 2]\\n y = x * 2\\n "
        "output y }'); print(gc.__file__)"
    )
    run = subprocess.run(
        [sys.executable, "-S", "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().startswith(str(target))
