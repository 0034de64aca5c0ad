# Every target installs into .venv first when it is missing (from a bare python3).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
INSTALLED := $(VENV)/.installed
EVAL := $(VENV)/.eval-installed
# pytest worker processes (pytest-xdist); each loads JAX and, in the release tests, a 300m model.
TEST_WORKERS ?= 2

JS := tests/js
# transformers.js for the ONNX export's Node check (tests/checkpoint/test_onnx_export.py), where npm is.
JS_DEPS := $(if $(shell command -v npm),js-deps)

.PHONY: js-deps install install-eval install-reference install-llama-cpp fetch demo model-card evaluate test test-fast check-wheel bench lint golden clean

install: $(INSTALLED)

$(INSTALLED): setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[test]'
	touch $@

# The reference implementation and mteb (golden files, benchmarks, the mteb tests), and libtpu (the
# plan tests compile for TPU slices; the rest of the suite runs on the CPU). torch first:
# the pinned CPU build comes from local disk on these machines, where a bare `torch` would pull a
# CUDA build.
install-eval: $(EVAL)

install-reference: install-eval

# llama.cpp (compiled from source, minutes) for scripts/compare_llama_cpp.py.
install-llama-cpp: install
	CMAKE_BUILD_PARALLEL_LEVEL=2 $(PIP) install -q -e '.[llama-cpp]'

$(EVAL): $(INSTALLED) setup.py
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[test,eval,onnx,tpu]'
	touch $@

# onnxruntime-node bundles its CPU libraries; its install script would fetch CUDA ones from NuGet.
js-deps: $(JS)/node_modules/.package-lock.json

$(JS)/node_modules/.package-lock.json: $(JS)/package.json $(JS)/package-lock.json
	cd $(JS) && ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund --loglevel=error

fetch: install
	$(PY) -m embeddinggemma fetch

# Trains the tiny model on the small real corpus (built on first use) and evaluates it.
demo: install
	$(PY) -m embeddinggemma demo

model-card: install
	$(PY) -m embeddinggemma model_card

# The offline suite on the released checkpoint at every Matryoshka dimension.
evaluate: install
	$(PY) -m embeddinggemma evaluate --checkpoint $$($(PY) -m embeddinggemma fetch) --out runs/eval-release

# Fetching first makes a network failure show plainly before the tests that need the weights.
test: install-eval $(JS_DEPS)
	$(PY) -m embeddinggemma fetch > /dev/null
	$(PY) -m embeddinggemma fetch --artefact gemma3-270m-gguf > /dev/null
	$(PY) -m pytest -n $(TEST_WORKERS) tests

# Skips what needs the released weights or the GGUF, and what is marked slow.
test-fast: install-eval $(JS_DEPS)
	$(PY) -m pytest -n $(TEST_WORKERS) -m "not release and not decoder and not slow" tests

# The wheel a user gets from `pip install .`, installed (not editable) with its runtime dependencies
# into a fresh virtual environment: every module imports and every command's --help works.
check-wheel: install
	$(PY) scripts/check_wheel.py

bench: install-eval
	$(PY) -m embeddinggemma fetch > /dev/null
	$(PY) bench/run.py

lint: install
	$(PY) -m ruff check .

golden: install-eval
	$(PY) scripts/make_golden.py
	$(PY) scripts/make_golden_scores.py
	$(PY) scripts/make_golden_decoder.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache $(JS)/node_modules
