"""Critics: a state-value function and twin action-value functions (TD3)."""
from __future__ import annotations

from typing import Sequence

import keras
import tensorflow as tf

from tf_metarl.networks.mlp import MLP


class ValueCritic(keras.Model):
  """V(s): observations [..., obs_dim] -> values [...]."""

  def __init__(self, observation_dim: int, hidden_sizes: Sequence[int] = (64, 64), activation="tanh",
               layer_norm=False, dtype="float32", **kwargs):
    super().__init__(dtype=dtype, **kwargs)
    self.torso = MLP(hidden_sizes, activation, layer_norm, dtype=dtype, name="torso")
    self.head = keras.layers.Dense(1, dtype=dtype, name="head")
    self(tf.zeros([1, observation_dim], dtype))

  def call(self, observations):
    return tf.squeeze(self.head(self.torso(observations)), axis=-1)


class TwinQCritic(keras.Model):
  """Two independent Q(s, a): (observations [..., obs_dim], actions [..., A]) -> [2, ...]."""

  def __init__(self, observation_dim: int, action_dim: int, hidden_sizes: Sequence[int] = (256, 256),
               activation="relu", layer_norm=False, dtype="float32", **kwargs):
    super().__init__(dtype=dtype, **kwargs)
    self.torsos = [MLP(hidden_sizes, activation, layer_norm, dtype=dtype, name=f"q{i}_torso") for i in range(2)]
    self.heads = [keras.layers.Dense(1, dtype=dtype, name=f"q{i}_head") for i in range(2)]
    self((tf.zeros([1, observation_dim], dtype), tf.zeros([1, action_dim], dtype)))

  def call(self, inputs):
    observations, actions = inputs
    x = tf.concat([observations, tf.cast(actions, observations.dtype)], axis=-1)
    return tf.stack([tf.squeeze(h(t(x)), axis=-1) for t, h in zip(self.torsos, self.heads)], axis=0)
