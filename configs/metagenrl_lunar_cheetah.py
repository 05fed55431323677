"""MetaGenRL meta-trained on LunarLanderContinuous-v3 and HalfCheetah-v5 (the paper's setting):
`meta_train --config=configs/metagenrl_lunar_cheetah.py --export=export/metagenrl_lunar_cheetah`."""
from configs.metagenrl_common import base_config


def get_config(objective: str = "learned"):
  """`:reinforce_offpolicy` or `:td3`: the same population with that fixed objective (baselines)."""
  return base_config(envs=("LunarLanderContinuous-v3", "HalfCheetah-v5"), objective=objective)
