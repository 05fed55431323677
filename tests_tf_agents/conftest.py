"""Tests of `tf_metarl.interop.tf_agents_adapter`, run in the TF-Agents environment
(`make tf-agents-env`; TF 2.15, TF-Agents 0.19), never beside the rest of tf_metarl. `make test`
runs them after the main suite."""
import os
import sys

# Before TensorFlow is imported: TF-Agents' networks are Keras 2 (tf-keras).
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
