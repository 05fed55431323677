"""Rank checks for the pure functions of `returns` and `losses` (rlax style: check at the top)."""
from __future__ import annotations

import tensorflow as tf


def check_rank(name: str, x, rank: int):
  """Returns `x` as a tensor; raises ValueError naming it if its static rank is not `rank`."""
  x = tf.convert_to_tensor(x)
  if x.shape.rank is not None and x.shape.rank != rank:
    layout = {1: "[batch]", 2: "[batch, time]", 3: "[batch, time, dim]"}.get(rank, f"rank {rank}")
    raise ValueError(f"{name} must have rank {rank} {layout}, got shape {x.shape}")
  return x
