"""Shared fields of the MetaGenRL configs (metagenrl_lunar_cheetah, metagenrl_lunar, metagenrl_quick).

The `metagenrl` section comes from `tf_metarl.algorithms.metagenrl.MetaGenRLConfig` (the paper's
Tables 3 and 4) and the run settings from `RunSettings`: defaults live there only. `steps` counts
environment steps summed over the population (20 agents × 50k steps each = 1M).
"""
import ml_collections

from tf_metarl.algorithms.metagenrl import MetaGenRLConfig
from tf_metarl.config_utils import config_from_dataclass
from tf_metarl.learners.loop import RunSettings


def base_config(**metagenrl) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.steps = 1_000_000
  c.update(config_from_dataclass(RunSettings(eval_every=100_000, eval_episodes=4, checkpoint_every=100_000)))
  c.metagenrl = config_from_dataclass(MetaGenRLConfig(**metagenrl))
  return c
