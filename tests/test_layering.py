"""STYLE principle 1: data flows one way (IR -> ops -> autodiff -> passes -> plan -> backends
-> session -> training helpers -> front ends -> CLI); no module imports a later stage, not
even inside a function."""

import ast
import pathlib

import graphc

STAGES = {"errors": 0, "dtypes": 0, "shapes": 0, "ir": 1, "ops": 2, "autodiff": 3,
          "passes": 4, "plan": 5, "compiler": 5, "backends": 6, "session": 7, "train": 8,
          "layers": 8, "data": 8, "checkpoint": 8, "nn": 8, "frontend": 9, "compat": 9,
          "cli": 10}

# Known exceptions, each a debt to pay off rather than a licence: the .g printer lives in ir/
# but spells dtypes and constants with the front end's name tables, and --emit py runs
# the initializers in a Session.
KNOWN = {("graphc.ir.printer", "graphc.frontend.names"),
         ("graphc.backends.standalone", "graphc.session")}


def _stage(module):
    parts = module.split(".")
    return STAGES.get(parts[1]) if len(parts) > 1 else None


def _imports(path, module):
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
            if node.module:
                yield ".".join(base + [node.module])
            else:
                yield from (".".join(base + [a.name]) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module.startswith("graphc"):
            yield node.module


def test_no_module_imports_a_later_stage():
    root = pathlib.Path(graphc.__file__).parent
    later = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        here = _stage(module)
        for target in _imports(path, module) if here is not None else ():
            there = _stage(target)
            if there is not None and there > here and (module, target) not in KNOWN:
                later.append(f"{module} imports {target}")
    assert later == []
