"""Learners: train a fresh agent with any objective (the meta-test path of every method)."""
from tf_metarl.learners.train import check_compatible, train

__all__ = ["check_compatible", "train"]
