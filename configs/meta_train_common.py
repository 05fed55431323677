"""Shared fields of the online meta-gradient configs (frodo_catch, frodo_random_walk, mgrl_catch).

The run settings (evaluation, checkpoints by steps and time, logging) come from `RunSettings`,
the `learner` and `frodo` sections from `tf_metarl.algorithms.frodo.OnlineMetaConfig` and
`FrodoConfig`: defaults live there only.
"""
import ml_collections

from tf_metarl.algorithms.frodo import OnlineMetaConfig
from tf_metarl.config_utils import config_from_dataclass
from tf_metarl.learners.loop import RunSettings


def base_config(env: str, method: str) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.steps = 3_000_000
  c.update(config_from_dataclass(RunSettings(eval_every=100_000, eval_episodes=256, checkpoint_every=500_000)))
  learner = config_from_dataclass(OnlineMetaConfig(env=env, method=method))
  c.frodo = learner.frodo
  del learner["frodo"]
  c.learner = learner
  return c
