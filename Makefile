PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test test-fast bench lint clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

demo: $(VENV)/.installed
	$(BIN)/python examples/demo.py
	$(BIN)/graphc compile examples/two_layer.g --dim N=64
	$(BIN)/python examples/linreg_data.py build/demo
	$(BIN)/graphc run examples/linear_regression.g --feed x=build/demo/x.npy --feed y=build/demo/y.npy --train 500 --fetch loss,w,b

test: $(VENV)/.installed
	$(BIN)/python -m pytest tests

# the same without the long end-to-end runs (@pytest.mark.slow): for the edit-test loop
test-fast: $(VENV)/.installed
	$(BIN)/python -m pytest tests -m "not slow"

bench: $(VENV)/.installed
	$(BIN)/python -m benchmarks --workload all

lint: $(VENV)/.installed
	$(BIN)/ruff check graphc tests benchmarks examples
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) build *.egg-info
