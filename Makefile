# Two entry points: `make demo` (set up, then train a fresh agent with the shipped objective) and
# `make test` (set up, then run the test suite). Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test benchmark export-ppo clean

setup: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

# A fresh agent on CartPole-v1 trained by the PPO objective loaded from export/ppo (its highest
# version); writes runs/demo/learning_curve.png and runs/demo/summary.json.
demo: setup
	rm -rf runs/demo
	$(VENV)/bin/train_agent --env=CartPole-v1 --objective=export/ppo --logdir=runs/demo

test: setup
	$(PY) -m pytest -q tests

# Re-creates the shipped objective (a new version) through the same exporter.
export-ppo: setup
	$(VENV)/bin/export_objective --objective=ppo --name=ppo --export_dir=export

clean:
	rm -rf runs $(VENV)
