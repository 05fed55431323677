"""Shared fields of the online meta-gradient configs (frodo_catch, frodo_random_walk, mgrl_catch).

The `learner` and `frodo` sections come from the dataclasses that define their defaults
(`tf_metarl.algorithms.frodo.OnlineMetaConfig`, `FrodoConfig`): defaults live there only.
"""
import ml_collections

from tf_metarl.algorithms.frodo import OnlineMetaConfig
from tf_metarl.config_utils import config_from_dataclass


def base_config(env: str, method: str) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.steps = 3_000_000
  c.eval_every = 100_000
  c.eval_episodes = 256
  c.checkpoint_every = 500_000
  c.log_every_seconds = 10.0
  learner = config_from_dataclass(OnlineMetaConfig(env=env, method=method))
  c.frodo = learner.frodo
  del learner["frodo"]
  c.learner = learner
  return c
