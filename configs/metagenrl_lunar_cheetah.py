"""MetaGenRL meta-trained on LunarLanderContinuous-v3 and HalfCheetah-v5 (the paper's setting):
`meta_train --config=configs/metagenrl_lunar_cheetah.py --export=export/metagenrl_lunar_cheetah`."""
from configs.metagenrl_common import base_config


def get_config():
  return base_config(envs=("LunarLanderContinuous-v3", "HalfCheetah-v5"))
