"""Explicit state held in variables: what a learner or meta-trainer checkpoints between calls of
its pure, compiled step (`read` the state, call the step, `assign` the result)."""
from __future__ import annotations

import keras
import tensorflow as tf


def _underlying(x):
  """The tf.Variable inside a Keras 3 variable (checkpoints and assignment use it)."""
  return x.value if isinstance(x, keras.Variable) else x


class StateVariables(tf.Module):
  """Variables mirroring a nest of tensors.

  Leaves that already are variables (e.g. a Keras model's weights) are used as they are, so the
  model stays in sync with the state; other leaves get new non-trainable variables.
  """

  def __init__(self, state, name: str = "state"):
    super().__init__(name=name)
    structure = tf.nest.map_structure(
        lambda x: _underlying(x) if isinstance(x, (tf.Variable, keras.Variable)) else tf.Variable(x, trainable=False),
        state)
    self._structure = structure
    self.leaves = tf.nest.flatten(structure)  # tracked by checkpoints in this order

  def read(self):
    """The state as tensors (same structure as given)."""
    return tf.nest.map_structure(lambda v: v.read_value(), self._structure)

  def assign(self, state):
    """Writes `state` (same structure) into the variables."""
    tf.nest.assert_same_structure(self._structure, state)
    for variable, value in zip(self.leaves, tf.nest.flatten(state)):
      variable.assign(value)
