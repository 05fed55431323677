"""MetaGenRL meta-trained on LunarLanderContinuous-v3 alone: `meta_train --config=configs/metagenrl_lunar.py`."""
from configs.metagenrl_common import base_config


def get_config(objective: str = "learned"):
  """`:reinforce_offpolicy` or `:td3`: the same population with that fixed objective (baselines)."""
  return base_config(envs=("LunarLanderContinuous-v3",), objective=objective)
