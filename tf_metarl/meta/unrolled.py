"""Meta-gradients through K differentiable inner updates (MetaGenRL, FRODO, learned γ/λ)."""
from __future__ import annotations

from typing import Callable, List, Sequence, Tuple

import keras
import tensorflow as tf

from tf_metarl.networks.functional import sgd_unroll


def unrolled_meta_gradient(agent_params: Sequence[tf.Tensor], meta_variables: Sequence[tf.Variable],
                           inner_loss: Callable[[List[tf.Tensor]], tf.Tensor],
                           outer_loss: Callable[[List[tf.Tensor]], tf.Tensor],
                           learning_rate, steps: int) -> Tuple[tf.Tensor, List[tf.Tensor], List[tf.Tensor]]:
  """Returns (L_outer(θ_K), ∂L_outer/∂η, θ_K) for θ_K = K SGD steps on `inner_loss` from `agent_params`.

  `inner_loss(θ)` must depend on the meta-variables η (e.g. a learned objective evaluated on the
  agent's outputs under θ, obtained with `functional_call`); `outer_loss(θ)` usually does not.
  The gradient is exact (full backpropagation through every inner step, second order included).
  """
  # Keras 3 variables wrap a tf.Variable; the tape needs the wrapped one to report zero gradients.
  meta_variables = [v.value if isinstance(v, keras.Variable) else v for v in meta_variables]
  with tf.GradientTape() as tape:
    params = sgd_unroll(agent_params, inner_loss, learning_rate, steps)
    loss = outer_loss(params)
  grads = tape.gradient(loss, meta_variables, unconnected_gradients=tf.UnconnectedGradients.ZERO)
  return loss, grads, params
