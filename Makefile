# `make run` and `make test` bootstrap .venv from nothing, install the tested pins, then go.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export MUJOCO_GL ?= disable
export PYTHONHASHSEED ?= 0

.PHONY: run test lint bench clean

# CPU torch off this box too: the CPU wheel index serves torch==2.13.0+cpu, which pip ranks
# above PyPI's CUDA build of the same version (several GB). Torch goes in alone first, so the
# index is asked once (its dependencies come from PyPI in the next step); where it cannot be reached (an offline mirror), pip warns, retries
# for a few seconds and falls back to what PyPI or a local wheel offers.
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu

$(STAMP): pyproject.toml constraints.txt examples/rlbench-sb3/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip>=25.1"
	$(PY) -m pip install -q --no-deps -c constraints.txt torch --extra-index-url $(TORCH_INDEX)
	$(PY) -m pip install -q -c constraints.txt -e ".[all]" -e examples/rlbench-sb3 --group dev
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/rlbench nightly --profile quick --out runs/nightly

# The fault kill matrix (`rlbench faults verify`) runs here, once: its pytest twin,
# tests/faults/test_kill_matrix.py, is marked slow so the default pytest run skips it.
test: $(STAMP)
	$(PY) -m pytest -p no:cacheprovider
	$(VENV)/bin/rlbench faults verify
	$(VENV)/bin/asv check --python=same

lint: $(STAMP)
	$(VENV)/bin/ruff check rlbench tests benchmarks scripts

# `make bench` = one quick pass of every asv suite in .venv, recorded under HEAD's hash in
# .asv/results; `make bench ASV_ARGS=` for full timings, `ASV_ARGS="--quick -b peers"` for
# the peer ratios.
ASV_ARGS ?= --quick
bench: $(STAMP)
	$(VENV)/bin/asv machine --yes > /dev/null
	$(VENV)/bin/asv run --python=same --set-commit-hash=$$(git rev-parse HEAD) --show-stderr $(ASV_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .asv
