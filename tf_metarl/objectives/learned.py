"""A learned objective: a backward LSTM over a trajectory (the MetaGenRL form, Kirsch et al. 2020).

The network reads, at each step, the reward, discount, episode end, the critic's value of the
current policy's action, and that action, and runs backwards in time so step t sees its future.
Its per-step output is the objective value; the loss is their mean. Gradients reach the policy
through the action and value inputs; meta-gradients reach the network's own parameters.
"""
from __future__ import annotations

from typing import Optional

import keras
import tensorflow as tf

from tf_metarl.objectives.base import OFF_POLICY, Objective

_SCALARS = ("rewards", "discounts", "episode_ends", "q_values")


class BackwardLSTMNetwork(keras.Model):
  """features [B, T, F] -> per-step outputs [B, T]: an optional tanh embedding, an LSTM run backwards
  in time (step t sees steps t..T−1), a linear head, optionally soft-bounded to ±output_bound."""

  def __init__(self, feature_dim: int, units: int = 32, embedding: Optional[int] = 16,
               output_bound: Optional[float] = 10.0, dtype="float32", **kwargs):
    super().__init__(dtype=dtype, **kwargs)
    self.output_bound = None if output_bound is None else float(output_bound)
    self.embed = (keras.layers.Dense(embedding, activation="tanh", dtype=dtype, name="embed")
                  if embedding else None)
    self.lstm = keras.layers.LSTM(units, return_sequences=True, go_backwards=True, dtype=dtype, name="lstm")
    self.head = keras.layers.Dense(1, dtype=dtype, name="head")
    self(tf.zeros([1, 2, feature_dim], dtype))

  def call(self, features):
    hidden = self.lstm(self.embed(features) if self.embed is not None else features)
    hidden = tf.reverse(hidden, axis=[1])  # go_backwards emits outputs in reversed time order.
    out = tf.squeeze(self.head(hidden), -1)
    if self.output_bound is None:
      return out
    return self.output_bound * tf.tanh(out / self.output_bound)


class LSTMObjective(Objective):
  """Learned off-policy objective with a `BackwardLSTMNetwork`; inputs listed in `input_names`."""
  kind = "lstm"
  learner = OFF_POLICY
  action_kinds = ("continuous",)
  input_names = _SCALARS + ("actions",)

  def __init__(self, action_dim: int, units: int = 32, dtype="float32", name=None):
    super().__init__(name=name)
    self.action_dim = int(action_dim)
    self.units = int(units)
    self.network = BackwardLSTMNetwork(len(_SCALARS) + self.action_dim, units, dtype=dtype, name="objective")

  def hyperparameters(self):
    return dict(action_dim=self.action_dim, units=self.units)

  def constraints(self):
    return dict(super().constraints(), action_dim=self.action_dim)

  @staticmethod
  def features(inputs):
    """Stacks the inputs into [B, T, 4 + A] features."""
    scalars = tf.stack([inputs[n] for n in _SCALARS], axis=-1)
    return tf.concat([scalars, inputs["actions"]], axis=-1)

  def _loss(self, inputs):
    per_step = self.network(self.features(inputs))
    return {"per_step": per_step, "loss": tf.reduce_mean(per_step)}
