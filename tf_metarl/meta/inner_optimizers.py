"""Differentiable inner-loop optimizers: functional updates on lists of tensors.

Keras optimizers assign to variables, which cuts the gradient path from θ' back to the
meta-parameters; these return new tensors instead, so any number of inner updates stays
differentiable (the reimplementation report's PyTorch listing stepped a real optimizer in the
inner loop, so no meta-gradient could flow through θ).
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import tensorflow as tf


def sgd(params: Sequence[tf.Tensor], grads: Sequence[tf.Tensor], state, learning_rate):
  """θ' = θ − α g. `state` is unused (None)."""
  return [p - learning_rate * g for p, g in zip(params, grads)], state


def rmsprop_init(params: Sequence[tf.Tensor]) -> List[tf.Tensor]:
  return [tf.zeros_like(p) for p in params]


def rmsprop(params: Sequence[tf.Tensor], grads: Sequence[tf.Tensor], state: Sequence[tf.Tensor], learning_rate,
            decay: float = 0.99, epsilon: float = 1e-5) -> Tuple[List[tf.Tensor], List[tf.Tensor]]:
  """RMSProp (no momentum): v' = ρ v + (1 − ρ) g², θ' = θ − α g / √(v' + ε).

  ε sits inside the root so the update stays smooth (differentiable) at g = 0.
  """
  new_state = [decay * v + (1.0 - decay) * tf.square(g) for v, g in zip(state, grads)]
  new_params = [p - learning_rate * g / tf.sqrt(v + epsilon) for p, g, v in zip(params, grads, new_state)]
  return new_params, new_state


INNER_OPTIMIZERS = {"sgd": (sgd, lambda params: None), "rmsprop": (rmsprop, rmsprop_init)}
