"""Functional optimizers: `init(params) -> state`, `update(params, grads, state) -> (params, state)`.

Keras optimizers assign to variables, which cuts the gradient path from θ' back to the
meta-parameters and ties each agent to its own Python object; these return new tensors instead,
so inner updates stay differentiable (FRODO's M inner steps) and N agents' states can be stacked
and updated by one vectorised call (`agents.population`). Params and grads are lists of tensors;
the state is a tuple of tensors (or of lists), so it nests inside an agent's state.

Written by hand (not optax: that is JAX) with Keras's update rules, so a learner moved from a
Keras optimizer to these keeps its behaviour (`tests/test_agents.py` checks Adam and RMSProp
against Keras step by step).
"""
from __future__ import annotations

import dataclasses
from typing import List, Optional, Sequence, Tuple

import tensorflow as tf

from tf_metarl import errors


@dataclasses.dataclass(frozen=True)
class SGD:
  """θ' = θ − α g. State: ()."""
  learning_rate: float

  def init(self, params: Sequence[tf.Tensor]):
    del params
    return ()

  def update(self, params, grads, state, learning_rate=None):
    lr = self.learning_rate if learning_rate is None else learning_rate
    return [p - lr * g for p, g in zip(params, grads)], state


@dataclasses.dataclass(frozen=True)
class RMSProp:
  """RMSProp without momentum: v' = ρ v + (1 − ρ) g², θ' = θ − α g / √(v' + ε). State: ([v],).

  ε sits inside the root so the update stays smooth (differentiable) at g = 0.
  """
  learning_rate: float
  decay: float = 0.99
  epsilon: float = 1e-5

  def init(self, params):
    return ([tf.zeros_like(p) for p in params],)

  def update(self, params, grads, state, learning_rate=None):
    lr = self.learning_rate if learning_rate is None else learning_rate
    squares = [self.decay * v + (1.0 - self.decay) * tf.square(g) for v, g in zip(state[0], grads)]
    new = [p - lr * g / tf.sqrt(v + self.epsilon) for p, g, v in zip(params, grads, squares)]
    return new, (squares,)


@dataclasses.dataclass(frozen=True)
class Adam:
  """Adam as Keras 3 computes it: m' = m + (1 − β1)(g − m), v' = v + (1 − β2)(g² − v),
  θ' = θ − α √(1 − β2^t)/(1 − β1^t) · m' / (√v' + ε). State: (step int64 scalar, [m], [v]).
  `l2` adds l2·θ to g first (an L2 penalty inside the moments, as EPG's reference does)."""
  learning_rate: float
  beta_1: float = 0.9
  beta_2: float = 0.999
  epsilon: float = 1e-7
  l2: float = 0.0

  def init(self, params):
    return (tf.zeros([], tf.int64), [tf.zeros_like(p) for p in params], [tf.zeros_like(p) for p in params])

  def update(self, params, grads, state, learning_rate=None):
    lr = self.learning_rate if learning_rate is None else learning_rate
    step, first, second = state
    step = step + 1
    dtype = params[0].dtype if params else tf.float32
    t = tf.cast(step, dtype)
    if self.l2:
      grads = [g + self.l2 * p for g, p in zip(grads, params)]
    alpha = lr * tf.sqrt(1.0 - tf.pow(tf.cast(self.beta_2, dtype), t)) / (1.0 - tf.pow(tf.cast(self.beta_1, dtype), t))
    first = [m + (g - m) * (1.0 - self.beta_1) for m, g in zip(first, grads)]
    second = [v + (tf.square(g) - v) * (1.0 - self.beta_2) for v, g in zip(second, grads)]
    new = [p - alpha * m / (tf.sqrt(v) + self.epsilon) for p, m, v in zip(params, first, second)]
    return new, (step, first, second)


OPTIMIZERS = {"sgd": SGD, "rmsprop": RMSProp, "adam": Adam}


def make_optimizer(name: str, learning_rate: float, **kwargs):
  """An optimizer by name (`sgd`, `rmsprop`, `adam`), with a one-line ConfigError otherwise."""
  if name not in OPTIMIZERS:
    raise errors.ConfigError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {name!r}")
  return OPTIMIZERS[name](float(learning_rate), **kwargs)


def clip_by_global_norm(grads: List[tf.Tensor], max_norm: Optional[float]) -> Tuple[List[tf.Tensor], tf.Tensor]:
  """Returns (grads scaled to global norm ≤ max_norm (unchanged if None), the norm before clipping).

  The norm is a sum of squares, not `tf.linalg.global_norm`: that uses L2Loss, which
  `tf.vectorized_map` has no converter for and runs as a sequential loop (measured in
  populations: "Using a while_loop for converting L2Loss")."""
  norm = tf.sqrt(tf.add_n([tf.reduce_sum(tf.square(tf.cast(g, tf.float32))) for g in grads])) if grads else (
      tf.constant(0.0))
  if max_norm is None:
    return list(grads), norm
  clipped, _ = tf.clip_by_global_norm(grads, max_norm, use_norm=norm)
  return clipped, norm


def all_finite(tensors: Sequence[tf.Tensor]) -> tf.Tensor:
  """A bool scalar: every floating-point tensor in `tensors` (a nest) is finite."""
  flags = [tf.reduce_all(tf.math.is_finite(t)) for t in tf.nest.flatten(tensors) if t.dtype.is_floating]
  return tf.reduce_all(tf.stack(flags)) if flags else tf.constant(True)


def apply_if_finite(optimizer, params: Sequence[tf.Tensor], grads: Sequence[tf.Tensor], state,
                    learning_rate=None, select: bool = False) -> Tuple[List[tf.Tensor], object, tf.Tensor]:
  """`optimizer.update`, unless a gradient or an updated parameter is non-finite: then the old
  parameters and optimizer state are kept. Returns (params, state, skipped: bool scalar).

  Every agent and meta update goes through here, so nothing non-finite reaches a checkpoint or an
  export. `tf.cond` rather than `tf.where`: gradients through the kept branch only, so an
  enclosing meta-gradient tape never multiplies a NaN by zero (which is NaN).
  `select=True` chooses with `tf.where` instead, for updates no tape differentiates through: under
  `tf.vectorized_map` (populations) a `tf.cond` on a per-member flag becomes dynamic partitions,
  which are slow and which XLA cannot compile.
  """
  new_params, new_state = optimizer.update(params, grads, state, learning_rate)
  finite = all_finite([grads, new_params])
  if select:
    pick = lambda new, old: tf.where(finite, new, old)
    return ([pick(n, o) for n, o in zip(new_params, params)], tf.nest.map_structure(pick, new_state, state),
            tf.logical_not(finite))
  kept = tf.cond(finite, lambda: (list(new_params), new_state), lambda: (list(params), state))
  return list(kept[0]), kept[1], tf.logical_not(finite)
