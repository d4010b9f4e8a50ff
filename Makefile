# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export TF_CPP_MIN_LOG_LEVEL ?= 3

WEB := bigmodels/web
WEB_STAMP := $(WEB)/runtime/.installed
# apt-get needs root; CI runs as root, a developer's machine may need sudo.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install demo test lint benchmark-cnn benchmark-browser web chromium clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# Train the CNN on the embedded digits, export every TFLite mode, verify each on ai-edge-litert.
demo: $(STAMP)
	$(BIN)/python apps/pipeline.py --out saved_models/demo --overwrite

# The browser page's runtime: LiteRT.js from package-lock.json (npm ci), copied beside the page.
$(WEB_STAMP): $(STAMP) $(WEB)/package.json $(WEB)/package-lock.json $(WEB)/vendor.py $(WEB)/unicode_tables.py
	@command -v npm >/dev/null 2>&1 || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q nodejs npm; }
	cd $(WEB) && npm ci --no-audit --no-fund --loglevel=error
	$(BIN)/python -m bigmodels.web.vendor
	touch $@

web: $(WEB_STAMP)

# Debian's Chromium, which the browser tests drive headless (Playwright with executable_path).
chromium:
	@command -v chromium >/dev/null 2>&1 || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium; }

# BIGMODELS_REQUIRE_BROWSER=1: a browser test that lacks node or Chromium fails instead of skipping.
# Two workers (pytest-xdist): many tests wait on subprocesses, the browser or file I/O, so two
# processes keep both cores busy; worksteal evens out the long tests. One TensorFlow thread per
# operation (TF_NUM_INTRAOP_THREADS, inherited by the apps the tests run): two workers of two
# threads each oversubscribed the 2 cores (the suite took 15:51 instead of 17:53 on idle cores).
test: $(STAMP) web chromium
	TF_NUM_INTRAOP_THREADS=1 OMP_NUM_THREADS=1 BIGMODELS_REQUIRE_BROWSER=1 $(BIN)/python -m pytest -q -n 2 --dist worksteal --durations=25 tests --nbmake notebooks

lint: $(STAMP)
	$(BIN)/ruff check bigmodels apps tests benchmarks
	$(BIN)/ruff format --check bigmodels apps tests benchmarks

benchmark-cnn: $(STAMP)
	$(BIN)/python benchmarks/cnn_mnist.py --data ../shared/data/mnist

benchmark-browser: $(STAMP) web chromium
	$(BIN)/python benchmarks/browser.py

# Only what these targets wrote: saved_models/ also holds the shipped reference bundles and the
# users' own run folders.
clean:
	rm -rf $(VENV) saved_models/demo .pytest_cache $(WEB)/node_modules $(WEB)/runtime
