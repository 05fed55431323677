"""Normalisation with exact second derivatives.

`tf.nn.moments` and Keras 3's `LayerNormalization` (which calls it) compute the variance around
`stop_gradient(mean)`: first derivatives stay exact (∂var/∂mean = 0 at the mean), but second
derivatives do not. Measured here: a mixed derivative ∂²/∂η∂x through one Keras
LayerNormalization was 222.4 by the tape against 34.9 by central differences (float64). Meta-
gradients (MetaGenRL's ∇_α through ∇_φ L_α, K ≥ 2 inner steps through layer-normalised policies)
need them exact, so these are written by hand.
"""
from __future__ import annotations

import keras
import tensorflow as tf


def moments(x: tf.Tensor, axes, keepdims: bool = False):
  """(mean, variance) over `axes`, differentiable to any order."""
  mean = tf.reduce_mean(x, axis=axes, keepdims=True)
  variance = tf.reduce_mean(tf.square(x - mean), axis=axes, keepdims=True)
  if not keepdims:
    mean, variance = tf.squeeze(mean, axes), tf.squeeze(variance, axes)
  return mean, variance


def z_normalise(x: tf.Tensor, axes, epsilon: float = 1e-8) -> tf.Tensor:
  """(x − mean) / sqrt(var + ε) over `axes`."""
  mean, variance = moments(x, axes, keepdims=True)
  return (x - mean) * tf.math.rsqrt(variance + epsilon)


class LayerNorm(keras.layers.Layer):
  """Layer normalisation over the last axis with learned scale and offset (Keras's defaults:
  ε = 1e-3, scale 1, offset 0), exact to any order of differentiation."""

  def __init__(self, epsilon: float = 1e-3, **kwargs):
    super().__init__(**kwargs)
    self.epsilon = float(epsilon)

  def build(self, input_shape):
    size = int(input_shape[-1])
    self.gamma = self.add_weight(shape=(size,), initializer="ones", name="gamma")
    self.beta = self.add_weight(shape=(size,), initializer="zeros", name="beta")

  def call(self, x):
    return z_normalise(x, [-1], self.epsilon) * self.gamma + self.beta


class RunningNormalizer(keras.layers.Layer):
  """x [..., F] -> (x − mean) / sqrt(var + ε), clipped to ±`clip`, with running statistics over
  everything passed to `update` (non-trainable weights: an ES perturbation or a functional call
  never changes them, and an export bakes them in). Starts as the identity (mean 0, var 1)."""

  def __init__(self, size: int, epsilon: float = 1e-8, clip: float = 10.0, **kwargs):
    super().__init__(**kwargs)
    self.size, self.epsilon, self.clip = int(size), float(epsilon), float(clip)
    self.count = self.add_weight(shape=(), initializer="zeros", trainable=False, name="count")
    self.mean = self.add_weight(shape=(self.size,), initializer="zeros", trainable=False, name="mean")
    self.variance = self.add_weight(shape=(self.size,), initializer="ones", trainable=False, name="variance")

  def call(self, x):
    normalised = (x - tf.cast(self.mean, x.dtype)) * tf.math.rsqrt(tf.cast(self.variance, x.dtype) + self.epsilon)
    return tf.clip_by_value(normalised, -self.clip, self.clip)

  def update(self, x) -> None:
    """Merges the statistics of samples x [..., F]."""
    x = tf.reshape(tf.cast(x, self.mean.dtype), [-1, self.size])
    batch_mean, batch_variance = moments(x, [0])
    self.merge(tf.cast(tf.shape(x)[0], self.count.dtype), batch_mean, batch_variance)

  def merge(self, batch_count, batch_mean, batch_variance) -> None:
    """Merges the count, mean [F] and (population) variance [F] of a batch (Chan et al.'s
    parallel update); an empty batch changes nothing."""
    batch_count = tf.cast(batch_count, self.count.dtype)
    count = tf.maximum(self.count + batch_count, 1.0)
    delta = batch_mean - self.mean
    first = tf.equal(self.count, 0.0)
    mean = tf.where(first, batch_mean, self.mean + delta * batch_count / count)
    m2 = self.variance * self.count + batch_variance * batch_count + tf.square(delta) * self.count * batch_count / count
    variance = tf.where(first, batch_variance, m2 / count)
    empty = tf.equal(batch_count, 0.0)
    mean, variance = tf.where(empty, self.mean, mean), tf.where(empty, self.variance, variance)
    self.count.assign(self.count + batch_count)
    self.mean.assign(mean)
    self.variance.assign(variance)
