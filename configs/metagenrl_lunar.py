"""MetaGenRL meta-trained on LunarLanderContinuous-v3 alone: `meta_train --config=configs/metagenrl_lunar.py`."""
from configs.metagenrl_common import base_config


def get_config():
  return base_config(envs=("LunarLanderContinuous-v3",))
