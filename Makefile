# Two commands for a fresh machine:  make demo  (set up + run the embedded digits experiment)
#                                    make test  (set up + run the test suite)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
MODEL_DIR ?= runs/digits

.PHONY: setup demo test test-fast tensorboard experiments clean

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(PY) scripts/run.py --flagfile=flags/digits.cfg --model_dir=$(MODEL_DIR)

# Two test processes (pytest-xdist), each test file in one of them (its module fixtures built once).
test: setup
	$(PY) -m pytest -q -n 2 --dist loadfile

# Every day: no end-to-end runs (the tests marked slow), in two processes, a few minutes.
test-fast: setup
	$(PY) -m pytest -q -n 2 --dist loadfile -m "not slow"

tensorboard: setup
	$(VENV)/bin/tensorboard --logdir $(MODEL_DIR)/tensorboard --host 127.0.0.1

clean:
	rm -rf runs

experiments: setup
	$(PY) scripts/experiment.py --flagfile=flags/experiments/methods_digits.cfg
	$(PY) scripts/experiment.py --flagfile=flags/experiments/hint_location_digits.cfg
	$(PY) scripts/experiment.py --flagfile=flags/experiments/depth_digits.cfg
