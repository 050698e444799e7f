"""The standalone backend carries graphc's own kernels as text instead of keeping copies."""

import numpy as np

from graphc.backends import standalone
from graphc.ops import array, elementwise, random


def test_attribute_names_do_not_block_carrying_a_kernel():
    # _gather_grad_kernel calls g.reshape; ops.array also defines a function `reshape`,
    # which an attribute name must not be mistaken for.
    library = standalone._kernel_library(array.GATHER_GRAD)
    assert library is not None
    assert library[0][-1].startswith("def _gather_grad_kernel(")


def test_kernels_that_use_builtins_are_carried_with_an_import():
    library = standalone._kernel_library(array.TILE_GRAD)
    assert library is not None and "import builtins" in library[1]


def test_random_draws_are_carried_as_ops_random_text():
    sources, _ = standalone._kernel_library(random.TRUNCATED_NORMAL)
    text = "\n".join(sources)
    assert text.count("def _truncated(") == 1
    assert "redraw values beyond two standard deviations" in text
    sources, _ = standalone._kernel_library(elementwise.SIGMOID)
    assert sources[-1].startswith("def _sigmoid(")


def test_carried_truncated_normal_matches_the_session_draw():
    sources, imports = standalone._kernel_library(random.TRUNCATED_NORMAL)
    ns: dict = {}
    exec(compile("\n".join(imports + sources), "<carried>", "exec"), ns)  # noqa: S102 - graphc's text
    ours = ns["_truncated"](np.random.default_rng(7), (50,), np.dtype("float32"), 0.0, 1.0)
    theirs = random._truncated(np.random.default_rng(7), (50,), np.dtype("float32"), 0.0, 1.0)
    np.testing.assert_array_equal(ours, theirs)
    assert ours.dtype == np.float32 and np.abs(ours).max() <= 2


def test_every_registry_kernel_is_a_named_function_the_emitter_carries():
    """No lambdas or closures in the registry (a user op's Python is the only exception):
    --emit py carries each kernel by its source instead of keeping copies."""
    from graphc.ops.custom import register_op
    from graphc.ops.registry import REGISTRY

    user = register_op.__module__
    # the collectives call MPI: a generated module is one numpy process, it has no job to join
    missing = [
        name
        for name, op in sorted(REGISTRY.items())
        if getattr(op.numpy, "__module__", "") != user
        and not standalone.supports(op)
        and not op.extra.get("collective")
    ]
    assert missing == []
    for name, op in REGISTRY.items():
        k = op.numpy
        if getattr(k, "__module__", "") != user and not isinstance(k, np.ufunc):
            assert k.__name__ != "<lambda>" and k.__qualname__ == k.__name__, name
