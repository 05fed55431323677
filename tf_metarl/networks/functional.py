"""Evaluating Keras models with substituted parameters, so inner updates stay differentiable.

`keras.Model.stateless_call` evaluates a model with given trainable values instead of its
variables. With θ' = θ − α ∇θ L(θ, η) computed under an outer `tf.GradientTape`, gradients of an
outer loss of θ' flow back to η through every inner step (second-order meta-gradients).
"""
from __future__ import annotations

from typing import Sequence

import keras
import tensorflow as tf


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
