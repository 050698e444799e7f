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
