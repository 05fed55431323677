"""MetaGenRL meta-trained on LunarLanderContinuous-v3 alone: `meta_train --config=configs/metagenrl_lunar.py`."""
from configs.metagenrl_common import variant_config


def get_config(variant: str = "learned"):
  """`:reinforce_offpolicy` or `:td3`: the same population with that fixed objective (baselines);
  `,cpu` appended (`:learned,cpu`): the budget a 2-core CPU host allows (`metagenrl_common.CPU_BUDGET`);
  `,no_time`, `,no_values`, `,k3`: the paper's ablations (`metagenrl_common.ABLATIONS`);
  `,reference_schedule`: updates and annealing from the first step, as the reference code does."""
  return variant_config(("LunarLanderContinuous-v3",), variant)
