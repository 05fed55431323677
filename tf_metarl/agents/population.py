"""Populations: N agents' states stacked on a leading axis and updated by one vectorised call.

Any pure update of `agents` (or any function of nests of tensors) runs for all members at once
with `vectorize(fn)`: `tf.vectorized_map` turns the per-member program (functional Keras calls,
gradient tapes, optimizer steps) into batched kernels. Members get their own parameters,
optimizer states, batches and seeds; arguments that are not stacked (a shared learned
objective) are closed over.
"""
from __future__ import annotations

from typing import Callable, List, Sequence

import tensorflow as tf


def stack(states: Sequence) -> object:
  """[state_1, ..., state_N] (same structure) -> one state whose leaves have a leading N axis."""
  return tf.nest.map_structure(lambda *xs: tf.stack(xs), *states)


def unstack(stacked, size: int) -> List:
  """The inverse of `stack`: N states."""
  return [tf.nest.map_structure(lambda x, i=i: x[i], stacked) for i in range(size)]


def member(stacked, index: int):
  """Member `index` of a stacked state."""
  return tf.nest.map_structure(lambda x: x[index], stacked)


def vectorize(fn: Callable) -> Callable:
  """fn(*args) for one member -> f(*stacked_args) for all members (every argument stacked on axis 0)."""

  def vectorized(*stacked_args):
    return tf.vectorized_map(lambda args: fn(*args), stacked_args)

  return vectorized


def member_seeds(seed, size: int):
  """N independent stateless seeds int32 [N, 2] from one seed [2]."""
  return tf.random.experimental.stateless_split(seed, num=size)
