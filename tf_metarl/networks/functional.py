"""Evaluating Keras models with substituted parameters, so inner updates stay differentiable.

`keras.Model.stateless_call` evaluates a model with given trainable values instead of its
variables. With θ' = θ − α ∇θ L(θ, η) computed under an outer `tf.GradientTape`, gradients of an
outer loss of θ' flow back to η through every inner step (second-order meta-gradients).
"""
from __future__ import annotations

from typing import List, Sequence

import keras
import numpy as np
import tensorflow as tf

from tf_metarl import errors


def functional_call(model: keras.Model, trainable_values: Sequence[tf.Tensor], *args, **kwargs):
  """Evaluates `model(*args)` with `trainable_values` in place of `model.trainable_variables`.

  Non-trainable state (e.g. normalisation statistics) is read from the model and not updated.
  """
  if len(trainable_values) != len(model.trainable_variables):
    raise ValueError(f"{model.name}: expected {len(model.trainable_variables)} parameter tensors, "
                     f"got {len(trainable_values)}")
  outputs, _ = model.stateless_call(list(trainable_values), [v.value for v in model.non_trainable_variables],
                                    *args, **kwargs)
  return outputs


def _fans(shape):
  """(fan_in, fan_out) as Keras's initializers count them."""
  if len(shape) == 1:
    return shape[0], shape[0]
  receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
  return shape[-2] * receptive, shape[-1] * receptive


def _variance_scaling(initializer, shape, seed, dtype):
  fan_in, fan_out = _fans(shape)
  n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[initializer.mode]
  scale = initializer.scale / max(1.0, n)
  if initializer.distribution == "truncated_normal":  # stddev of a normal truncated at ±2 stddev
    return tf.random.stateless_truncated_normal(shape, seed, 0.0, np.sqrt(scale) / 0.87962566103423978, dtype)
  if initializer.distribution == "untruncated_normal":
    return tf.random.stateless_normal(shape, seed, 0.0, np.sqrt(scale), dtype)
  limit = np.sqrt(3.0 * scale)
  return tf.random.stateless_uniform(shape, seed, -limit, limit, dtype)


def stateless_initial_values(model: keras.Model, seed) -> List[tf.Tensor]:
  """Fresh initial parameters of `model` drawn from `seed` (int32 [2]), as its initializers would
  draw them but with stateless ops, so a compiled graph can start new agents (EPG's inner
  trainings). Kernels whose initializer is a VarianceScaling (Glorot, He, LeCun, the policies'
  scaled heads) are redrawn; parameters with constant initializers (biases, a log-std) keep the
  value they were built with. In `model.trainable_variables` order. Written by hand because Keras
  initializers take Python seeds, not tensors; the formulas are Keras's own.

  Raises:
    ConfigError: a parameter has a random initializer other than VarianceScaling.
  """
  initializers = {}
  for layer in model._flatten_layers(include_self=True):
    for attribute in ("kernel", "bias", "embeddings"):
      initializer = getattr(layer, f"{attribute}_initializer", None)
      if initializer is None:
        continue
      variable = getattr(layer, f"_{attribute}", None)
      if variable is None:
        variable = getattr(layer, attribute, None)
      if variable is not None:
        initializers[id(variable)] = initializer
  variables = model.trainable_variables
  seeds = tf.random.experimental.stateless_split(seed, num=max(len(variables), 1))
  out = []
  for i, variable in enumerate(variables):
    initializer = initializers.get(id(variable))
    if isinstance(initializer, keras.initializers.VarianceScaling):
      out.append(_variance_scaling(initializer, variable.shape.as_list() if hasattr(variable.shape, "as_list")
                                   else list(variable.shape), seeds[i], variable.dtype))
    elif initializer is None or isinstance(initializer, (keras.initializers.Zeros, keras.initializers.Ones,
                                                         keras.initializers.Constant)):
      out.append(tf.convert_to_tensor(variable.value))
    else:
      raise errors.ConfigError(f"{model.name}: cannot redraw {variable.path} (initializer "
                               f"{type(initializer).__name__}) in a graph; only VarianceScaling kernels and constants")
  return out
