import numpy as np
import pytest

import graphc as gc


@pytest.fixture(autouse=True)
def fresh_graph():
    """Every test starts with an empty default graph."""
    gc.reset_default_graph()
    yield
    gc.reset_default_graph()


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def build_libraries(tmp_path_factory):
    """``build(*modules)``: the compiled-kernel libraries of ``modules`` (``conv_cpu``,
    ``gemm_cpu``, ``winograd_cpu``), built synchronously into a cache of this test session;
    True when every one loaded."""
    from graphc.backends import host_compile

    def build(*modules):
        mp = pytest.MonkeyPatch()
        mp.setenv("GRAPHC_CC_SYNC", "1")
        mp.setenv("GRAPHC_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cc"))
        for module in modules:
            module.request()
        host_compile.wait()
        mp.undo()
        return all(module._state["fn"] is not None for module in modules)

    return build


@pytest.fixture
def cc(monkeypatch, tmp_path_factory):
    """Fused groups compiled synchronously (even the smallest), into a cache of this test
    session."""
    from graphc.backends import numpy_backend

    monkeypatch.setenv("GRAPHC_CC_SYNC", "1")
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cc"))
    monkeypatch.setattr(numpy_backend, "_CC_MIN_ELEMS", 1)
