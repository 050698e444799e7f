PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test bench lint clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

demo: $(VENV)/.installed
	$(BIN)/python examples/demo.py
	$(BIN)/graphc compile examples/two_layer.g --dim N=64
	$(BIN)/python -c "import numpy as np, os; os.makedirs('build/demo', exist_ok=True); r = np.random.default_rng(0); x = r.standard_normal((64, 1000)).astype('f4'); np.save('build/demo/x.npy', x); np.save('build/demo/y.npy', 2 * x[:, :10])"
	$(BIN)/graphc run examples/two_layer.g --feed x=build/demo/x.npy --feed y=build/demo/y.npy --train 200 --fetch loss

test: $(VENV)/.installed
	$(BIN)/python -m pytest tests

bench: $(VENV)/.installed
	$(BIN)/python -m benchmarks --workload all

lint: $(VENV)/.installed
	$(BIN)/ruff check graphc tests benchmarks examples

clean:
	rm -rf $(VENV) build *.egg-info
