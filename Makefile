# `make run` and `make test` bootstrap .venv from nothing, install the tested pins, then go.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export MUJOCO_GL ?= disable
export PYTHONHASHSEED ?= 0

.PHONY: run test lint bench bench-gate clean peers-cleanrl

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
	$(VENV)/bin/ruff check rlbench tests benchmarks scripts examples

# `make bench` = one quick pass of every asv suite in .venv, recorded under HEAD's hash in
# .asv/results; `make bench ASV_ARGS=` for full timings, `ASV_ARGS="--quick -b peers"` for
# the peer ratios.
ASV_ARGS ?= --quick
# `make bench-gate`: the hot paths against the newest pytest-benchmark save (make one with
# `pytest tests/benchmarks --benchmark-enable --benchmark-autosave` on the base commit);
# exit 1 when a median is more than 15% slower. Same-commit spread on a shared VM is up to 2x:
# set BENCH_FAIL (e.g. median:100%) there.
BENCH_FAIL ?= median:15%
bench-gate: $(STAMP)
	$(PY) -m pytest tests/benchmarks -p no:cacheprovider --benchmark-enable \
		--benchmark-compare --benchmark-compare-fail=$(BENCH_FAIL)

bench: $(STAMP)
	$(VENV)/bin/asv machine --yes > /dev/null
	$(VENV)/bin/asv run --python=same --set-commit-hash=$$(git rev-parse HEAD) --show-stderr $(ASV_ARGS)

# `make peers-cleanrl`: CleanRL's own cleanrl/dqn.py, cleanrl/sac_continuous_action.py and
# cleanrl_utils/, unmodified, for scripts/vs_cleanrl.py, in a venv of its own under .peers/
# (CleanRL's code reads the gymnasium 0.29 info keys, final_info / final_observation, which our gymnasium 1.x
# renamed). Torch is ours (CPU 2.13.0, as above), not CleanRL's pin 2.4.1; the other pins
# come from constraints.txt. The source is `git archive` of CLEANRL_REF, recorded in
# .peers/cleanrl-src/COMMIT: from CLEANRL_SRC (a checkout or a bare repo) when given, else
# a shallow clone of CLEANRL_URL. Idempotent: `rm -rf .peers` to redo.
PEERS := .peers
CLEANRL_VENV := $(PEERS)/cleanrl-venv
CLEANRL_PY := $(CLEANRL_VENV)/bin/python
CLEANRL_DIR := $(PEERS)/cleanrl-src
CLEANRL_URL ?= https://github.com/vwxyzjn/cleanrl
CLEANRL_SRC ?=
# The commit the README's CleanRL numbers were measured against (`make peers-cleanrl
# CLEANRL_REF=HEAD` for CleanRL's newest).
CLEANRL_REF ?= fe8d8a03c41a7ef5b523e2e354bd01c363e786bb
CLEANRL_GYMNASIUM ?= 0.29.1

peers-cleanrl: $(CLEANRL_VENV)/.installed $(CLEANRL_DIR)/COMMIT

$(CLEANRL_VENV)/.installed: constraints.txt
	test -x $(CLEANRL_PY) || $(PYTHON) -m venv $(CLEANRL_VENV)
	$(CLEANRL_PY) -m pip install -q --upgrade "pip>=25.1"
	$(CLEANRL_PY) -m pip install -q --no-deps -c constraints.txt torch --extra-index-url $(TORCH_INDEX)
	grep -v -i '^gymnasium==' constraints.txt > $(PEERS)/cleanrl-constraints.txt
	$(CLEANRL_PY) -m pip install -q -c $(PEERS)/cleanrl-constraints.txt torch \
	    gymnasium==$(CLEANRL_GYMNASIUM) numpy tyro tensorboard
	touch $@

$(CLEANRL_DIR)/COMMIT:
	rm -rf $(CLEANRL_DIR) $(CLEANRL_DIR).tmp $(PEERS)/cleanrl-clone
	mkdir -p $(CLEANRL_DIR).tmp
	set -e; src="$(CLEANRL_SRC)"; \
	if [ -z "$$src" ]; then \
	    git clone -q --filter=blob:none $(CLEANRL_URL) $(PEERS)/cleanrl-clone; src=$(PEERS)/cleanrl-clone; \
	fi; \
	git -C "$$src" archive $(CLEANRL_REF) cleanrl/dqn.py cleanrl/sac_continuous_action.py cleanrl_utils | tar -x -C $(CLEANRL_DIR).tmp; \
	git -C "$$src" rev-parse $(CLEANRL_REF) > $(CLEANRL_DIR).tmp/COMMIT
	rm -rf $(PEERS)/cleanrl-clone
	mv $(CLEANRL_DIR).tmp $(CLEANRL_DIR)

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .asv
