"""FRODO on the non-stationary 5-state random walk (trajectories of 16 steps)."""
from configs.meta_train_common import base_config


def get_config(variant: str = ""):
  if variant not in ("", "extension"):
    raise ValueError(f"unknown variant {variant!r}; expected '' or 'extension'")
  c = base_config("random_walk", "frodo")
  c.steps = 200_000
  c.eval_every = 0
  c.checkpoint_every = 50_000
  c.frodo.extension = variant == "extension"
  return c
