"""A backward LSTM over per-step features: FRODO's target network builds on it
(`algorithms/targets.py`). MetaGenRL's objective, which must also accept any action dimension and
reset at episode ends, is `objectives/metagenrl.py`."""
from __future__ import annotations

from typing import Optional

import keras
import tensorflow as tf


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
