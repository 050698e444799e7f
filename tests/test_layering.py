"""STYLE principle 1: data flows one way (IR -> ops -> autodiff -> passes -> plan -> backends
-> session -> training helpers -> front ends -> CLI, with the package's public API on top); no
module imports a later stage, not even inside a function. Every module has a stage."""

import ast
import pathlib
import subprocess
import sys

import graphc

# Stage of each top-level module or package of graphc (a dotted name below overrides its
# package's stage).
STAGES = {
    "errors": 0,
    "dtypes": 0,
    "shapes": 0,
    "fileio": 0,
    "_kwargs": 0,
    "optimizers": 8,
    "ir": 1,
    "diagnostics": 1,
    "ops": 2,
    "autodiff": 3,
    "passes": 4,
    "plan": 5,
    "compiler": 5,
    "backends": 6,
    "session": 7,
    "test": 8,
    "train": 8,
    "layers": 8,
    "data": 8,
    "checkpoint": 8,
    "nn": 8,
    "distributed": 8,
    "frontend": 9,
    "cli": 10,
    "__main__": 10,
    # drawing with the plan; summaries and the fit loop with training; ONNX with the
    # front ends it mirrors; the training flags with the CLI
    "svg": 5,
    "viz": 5,
    "summary": 8,
    "fit": 8,
    "onnx": 9,
    "cli_train": 10,
    "compat": 12,
}  # the TF 1.x layer is a user of the public API (``import graphc``)
# The backend registry is plain data that gc.compile reads (a backend's tile size): it sits
# with the compiler, below the backends it names by string.
MODULE_STAGES = {"graphc": 11, "graphc.backends": 5}

# Known exceptions. The .g front end resolves a call by name in the public API (``gc.*``,
# ``gc.nn.*``), and the public API re-exports the front end's ``load``: a cycle, broken by
# importing the API when a file is loaded, not when the front end is.
# Jupyter asks a Graph itself for its picture (Graph._repr_svg_ draws with graphc.viz).
KNOWN = {
    ("graphc.frontend.names", "graphc"),
    ("graphc.frontend.dsl", "graphc"),
    ("graphc.ir.graph", "graphc.viz"),
}

ROOT = pathlib.Path(graphc.__file__).parent


def _modules():
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        yield path, ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _stage(module):
    if module in MODULE_STAGES:
        return MODULE_STAGES[module]
    parts = module.split(".")
    return STAGES.get(parts[1]) if len(parts) > 1 else None


def _imports(path, module):
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
            if node.module:
                yield ".".join(base + [node.module])
            else:
                yield from (".".join(base + [a.name]) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module.startswith("graphc"):
            yield node.module
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.startswith("graphc"))


def test_every_module_has_a_stage():
    assert [m for _, m in _modules() if _stage(m) is None] == []


def test_no_module_imports_a_later_stage():
    later = []
    for path, module in _modules():
        here = _stage(module)
        for target in _imports(path, module):
            there = _stage(target)
            if there is not None and there > here and (module, target) not in KNOWN:
                later.append(f"{module} imports {target}")
    assert later == []


def test_the_emitter_and_the_printer_stay_below_session_and_frontend():
    """The two debts this test used to list: --emit py ran the initializers in a Session,
    and the .g printer spelled dtypes with the front end's tables."""
    paths = {m: p for p, m in _modules()}
    for module, forbidden in (
        ("graphc.backends.standalone", "graphc.session"),
        ("graphc.ir.printer", "graphc.frontend"),
    ):
        targets = list(_imports(paths[module], module))
        assert targets and not any(t.startswith(forbidden) for t in targets), module


def test_import_graphc_in_a_fresh_interpreter():
    """``import graphc`` alone: no cycle, no optional dependency, every stage importable."""
    code = (
        "import sys, graphc, graphc.cli, graphc.compat.v1, graphc.backends.standalone\n"
        "assert 'cupy' not in sys.modules and 'graphc.backends.cupy_backend' not in "
        "sys.modules\n"
        "import graphc.backends as B\n"
        "assert {'numpy', 'cupy', 'reference'} <= set(B.available_backends())\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
