"""Keras 3 policies and critics, and functional (substituted-parameter) evaluation."""
from tf_metarl.networks.critics import TwinQCritic, ValueCritic
from tf_metarl.networks.functional import functional_call
from tf_metarl.networks.policies import CategoricalPolicy, DeterministicPolicy, GaussianPolicy, make_policy

__all__ = ["CategoricalPolicy", "DeterministicPolicy", "GaussianPolicy", "make_policy", "TwinQCritic",
           "ValueCritic", "functional_call"]
