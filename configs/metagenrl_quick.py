"""A MetaGenRL run of a few minutes on 2 CPU cores (smoke runs and tests): 4 small agents on
Pendulum-v1 and MountainCarContinuous-v0. `meta_train --config=configs/metagenrl_quick.py`."""
from configs.metagenrl_common import base_config


def get_config():
  c = base_config(envs=("Pendulum-v1", "MountainCarContinuous-v0"), num_agents=4, hidden_sizes=(64, 64),
                  batch_size=16, sequence_length=10, warmup_steps=500, anneal_steps=500, replay_capacity=20_000,
                  objective_units=16)
  c.steps = 4 * 2_000
  c.eval_every = 4 * 1_000
  c.checkpoint_every = 4 * 1_000
  return c
