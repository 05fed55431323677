"""Learned γ and λ (Xu, van Hasselt & Silver 2018) on Catch; `:a2c` gives the fixed n-step A2C baseline."""
from configs.meta_train_common import base_config


def get_config(variant: str = "mgrl"):
  if variant not in ("mgrl", "a2c"):
    raise ValueError(f"unknown variant {variant!r}; expected 'mgrl' or 'a2c'")
  return base_config("catch", variant)
