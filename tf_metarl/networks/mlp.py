"""Multi-layer perceptron torso shared by policies and critics."""
from __future__ import annotations

from typing import Sequence

import keras

from tf_metarl.networks.normalization import LayerNorm


class MLP(keras.layers.Layer):
  """Dense layers with an activation and optional layer normalisation after each: [..., in] -> [..., h]."""

  def __init__(self, hidden_sizes: Sequence[int], activation: str = "tanh", layer_norm: bool = False,
               **kwargs):
    super().__init__(**kwargs)
    self.hidden_sizes = tuple(int(h) for h in hidden_sizes)
    self._layers = []
    for i, size in enumerate(self.hidden_sizes):
      self._layers.append(keras.layers.Dense(size, dtype=self.dtype_policy, name=f"dense_{i}"))
      if layer_norm:
        self._layers.append(LayerNorm(dtype=self.dtype_policy, name=f"norm_{i}"))  # exact second derivatives
      self._layers.append(keras.layers.Activation(activation, dtype=self.dtype_policy))

  def call(self, x):
    for layer in self._layers:
      x = layer(x)
    return x
