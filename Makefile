# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export TF_CPP_MIN_LOG_LEVEL ?= 3

.PHONY: install demo test lint benchmark-cnn clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# Train the CNN on the embedded digits, export every TFLite mode, verify each on ai-edge-litert.
demo: $(STAMP)
	$(BIN)/python apps/pipeline.py --out saved_models/demo --overwrite

test: $(STAMP)
	$(BIN)/python -m pytest -q tests --nbmake notebooks

lint: $(STAMP)
	$(BIN)/ruff check bigmodels apps tests benchmarks
	$(BIN)/ruff format --check bigmodels apps tests benchmarks

benchmark-cnn: $(STAMP)
	$(BIN)/python benchmarks/cnn_mnist.py --data ../shared/data/mnist

clean:
	rm -rf $(VENV) saved_models/*/ .pytest_cache
