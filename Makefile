# Two entry points: `make demo` (set up, then train a fresh agent with a shipped learned objective) and
# `make test` (set up, then run the test suite). Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The second environment, for TF-Agents (tf_metarl/interop/tf_agents_adapter.py): TensorFlow 2.15.
TFA_PYTHON ?= $(PYTHON)
TFA_VENV ?= .venv-tf-agents
TFA_PY := $(TFA_VENV)/bin/python
TFA_STAMP := $(TFA_VENV)/.installed
TFA_REQUIREMENTS := tf_metarl/interop/requirements-tf-agents.txt
# pytest-xdist workers (one per core on the 2-core CI machine); a test file's tests stay in one worker.
PYTEST_PARALLEL ?= -n 2 --dist loadfile

.PHONY: setup tf-agents-env demo demo-ppo test test-fast test-slow test-tf-agents bazel-test export-ppo clean

setup: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

# TF-Agents' last release pins TensorFlow 2.15 (Python 3.9-3.11): its own virtual environment,
# with nothing of tf_metarl installed; the adapter is imported from the source tree.
tf-agents-env: $(TFA_STAMP)

$(TFA_STAMP): $(TFA_REQUIREMENTS)
	@$(TFA_PYTHON) -c 'import sys; sys.exit(not (3, 9) <= sys.version_info[:2] <= (3, 11))' || \
	  { echo "make tf-agents-env: TensorFlow 2.15 needs Python 3.9-3.11; $(TFA_PYTHON) is not (set TFA_PYTHON=python3.11)"; exit 1; }
	$(TFA_PYTHON) -m venv $(TFA_VENV)
	$(TFA_PY) -m pip install --quiet --upgrade pip
	$(TFA_PY) -m pip install --quiet -r $(TFA_REQUIREMENTS)
	touch $(TFA_STAMP)

# A fresh agent on Pendulum-v1 (an environment it never saw) trained by the MetaGenRL objective
# shipped in export/metagenrl_lunar_cheetah (meta-trained on LunarLanderContinuous-v3 and
# HalfCheetah-v5); a few minutes on 2 cores. Writes runs/demo/learning_curve.png and
# runs/demo/summary.json. `make demo-ppo`: the PPO objective from export/ppo on CartPole-v1.
demo: setup
	rm -rf runs/demo
	$(VENV)/bin/train_agent --objective=export/metagenrl_lunar_cheetah --env=Pendulum-v1 --config.steps=10000 \
	  --config.eval_every=2000 --logdir=runs/demo

demo-ppo: setup
	rm -rf runs/demo-ppo
	$(VENV)/bin/train_agent --env=CartPole-v1 --objective=export/ppo --logdir=runs/demo-ppo

# Bazel first (every BUILD target must build offline with Debian's bazel-bootstrap 4.2.3), then both
# pytest tiers: the default tier (under 3 minutes on 2 cores), then the tests marked `slow`, then the
# TF-Agents adapter's tests in their own environment (make test-tf-agents).
test: setup
	@if command -v bazel >/dev/null 2>&1; then \
	  PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bazel build //... ; \
	else \
	  echo "make test: bazel is not installed (apt-get install bazel-bootstrap); the Bazel build was NOT checked"; \
	fi
	$(PY) -m pytest -q $(PYTEST_PARALLEL) -m "not slow" tests
	$(PY) -m pytest -q $(PYTEST_PARALLEL) --durations=15 -m slow tests
	$(MAKE) --no-print-directory test-tf-agents

# The adapter's tests, in the TF-Agents environment (about a minute, after about a minute of installing).
test-tf-agents: tf-agents-env
	TF_USE_LEGACY_KERAS=1 PYTHONPATH=$(CURDIR) $(TFA_PY) -m pytest -q tests_tf_agents

# The default tier alone (what to run while developing).
test-fast: setup
	$(PY) -m pytest -q $(PYTEST_PARALLEL) -m "not slow" tests

test-slow: setup
	$(PY) -m pytest -q $(PYTEST_PARALLEL) --durations=15 -m slow tests

# The same tests through Bazel (py_test targets run pytest on their file with .venv's python).
bazel-test: setup
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bazel test --action_env=PATH --test_output=errors --local_test_jobs=1 //tests/...

# Re-creates the shipped objective (a new version) through the same exporter.
export-ppo: setup
	$(VENV)/bin/export_objective --objective=ppo --name=ppo --export_dir=export

clean:
	rm -rf runs $(VENV) $(TFA_VENV)
