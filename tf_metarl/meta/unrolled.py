"""Outer gradient by backpropagation through K unrolled inner steps (FRODO, MetaGenRL).

With θ_{k+1} = update(η, θ_k, batch_k) differentiable (functional calls, functional optimizers),
the gradient of the meta-loss at θ_K with respect to η is exact, second-order terms included.
"""
from __future__ import annotations

import dataclasses

import tensorflow as tf

from tf_metarl.meta.problem import unroll_and_hold_out


@dataclasses.dataclass(frozen=True)
class UnrolledEstimator:
  """K inner steps under one tape, then the meta-loss on a held-out batch.

  Returns the inner state after the K steps (truncated backpropagation: the next call starts
  from it, with gradients stopped).
  """
  unroll_steps: int = 1

  def estimate(self, problem, eta, state, seed):
    """Returns (∂L_meta/∂η as a list like η, new state, metrics incl. `meta_loss`)."""
    with tf.GradientTape(watch_accessed_variables=False) as tape:
      tape.watch(eta)
      state, batches, held_out, metrics = unroll_and_hold_out(problem, eta, state, seed, self.unroll_steps)
      loss, meta_metrics = problem.meta_loss(eta, state, held_out, batches)
    grads = tape.gradient(loss, eta, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    state = tf.nest.map_structure(tf.stop_gradient, state)
    return grads, state, dict(metrics, meta_loss=loss, **meta_metrics)
