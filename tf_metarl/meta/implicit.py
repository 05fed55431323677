"""Outer gradient by implicit differentiation (the LLM-augmented reward method's estimator).

At an inner optimum θ*(η), ∇_θ L_in(θ*, η) = 0, so dθ*/dη = −H_θθ⁻¹ H_θη and

  dL_out/dη = ∂_η L_out − H_ηθ v,   v = H_θθ⁻¹ ∂_θ L_out,

with H = second derivatives of L_in at θ*. v comes from a pluggable solver
(`meta.linear_solvers`) that sees H_θθ only through Hessian-vector products: exact (double
backpropagation) or the gradient-difference approximation
H v ≈ (∇L(θ + εv) − ∇L(θ − εv)) / 2ε. The mixed term H_ηθ v is the η-gradient of
⟨∇_θ L_in(θ*, η), v⟩ with v held constant. The solve's relative residual ‖H v − b‖/‖b‖ is
reported, so a user can see when the approximation is poor.
"""
from __future__ import annotations

import dataclasses

import tensorflow as tf

from tf_metarl import errors
from tf_metarl.meta.linear_solvers import NeumannSolver, largest_eigenvalue
from tf_metarl.meta.problem import merge_metrics, unroll_and_hold_out

HVP_MODES = ("exact", "finite_difference")


def flatten(tensors):
  return tf.concat([tf.reshape(t, [-1]) for t in tensors], 0)


def unflatten(vector, like):
  sizes = [int(tf.size(t)) for t in like]
  return [tf.reshape(part, tf.shape(t)) for part, t in zip(tf.split(vector, sizes), like)]


def gradient_of(loss_fn, params):
  with tf.GradientTape(watch_accessed_variables=False) as tape:
    tape.watch(params)
    loss = loss_fn(params)
  return tape.gradient(loss, params, unconnected_gradients=tf.UnconnectedGradients.ZERO)


def hessian_vector_product(loss_fn, params, vector, mode: str = "exact", epsilon: float = 1e-3):
  """H v for the Hessian of `loss_fn` at `params` (a list); `vector` is flat [n]. Returns flat [n]."""
  if mode == "exact":
    with tf.GradientTape(watch_accessed_variables=False) as outer:
      outer.watch(params)
      grads = gradient_of(loss_fn, params)
      dot = tf.reduce_sum(flatten(grads) * tf.stop_gradient(vector))
    return flatten(outer.gradient(dot, params, unconnected_gradients=tf.UnconnectedGradients.ZERO))
  if mode == "finite_difference":
    # ε relative to the scales of θ and v, so the step is neither lost in rounding nor nonlocal.
    scale = epsilon * (1.0 + tf.norm(flatten(params))) / (tf.norm(vector) + 1e-12)
    step = unflatten(scale * vector, params)
    plus = flatten(gradient_of(loss_fn, [p + s for p, s in zip(params, step)]))
    minus = flatten(gradient_of(loss_fn, [p - s for p, s in zip(params, step)]))
    return (plus - minus) / (2.0 * scale)
  raise errors.ConfigError(f"hessian-vector product mode must be one of {', '.join(HVP_MODES)}, got {mode!r}")


HESSIAN_BATCHES = ("inner", "held_out")


@dataclasses.dataclass(frozen=True)
class ImplicitEstimator:
  """Args:
    solver: an inverse-Hessian-vector solver (`meta.linear_solvers`).
    unroll_steps: inner steps K taken (without differentiation) to approach θ*(η) from the
      current state.
    hvp: "exact" or "finite_difference" Hessian-vector products.
    hvp_epsilon: the finite difference's relative step.
    damping: δ ≥ 0, the solve uses H + δI (a sampled Hessian may be indefinite or singular).
    relative_damping: ρ ≥ 0 adds ρ·λ̂_max(H) to δ, λ̂ by `damping_power_iterations` power
      iterations, so the damping follows the Hessian's scale (a helper reward ten times larger
      scales H tenfold; a fixed δ then damps ten times less).
    max_residual: a solve whose relative residual ‖(H + δI)v − b‖/‖b‖ is above this, or not
      finite, has diverged: the estimate is rejected (`reject` in the metrics; the meta-trainer
      then skips the step and counts it) instead of reaching η. None: never rejected.
    hessian_batch: the batch of the inner loss's second derivatives: "inner" (the last of the
      K inner batches, independent of the held-out batch; an RL inner loss reweights it to the
      current policy) or "held_out" (the outer loss's batch; with K = 0 the only one).
    held_out_batches: fresh batches the outer loss L_out averages over (collected one after
      another after the K inner steps): its gradients ∂_θ L_out and ∂_η L_out are the means of
      the per-batch ones, so the estimate's variance falls with their number, at the price of
      their environment steps.
  """
  solver: object = NeumannSolver()
  unroll_steps: int = 1
  hvp: str = "exact"
  hvp_epsilon: float = 1e-3
  damping: float = 0.0
  relative_damping: float = 0.0
  damping_power_iterations: int = 10
  max_residual: float | None = None
  hessian_batch: str = "inner"
  held_out_batches: int = 1

  def estimate(self, problem, eta, state, seed):
    if self.hvp not in HVP_MODES:
      raise errors.ConfigError(f"hvp must be one of {', '.join(HVP_MODES)}, got {self.hvp!r}")
    if self.hessian_batch not in HESSIAN_BATCHES:
      raise errors.ConfigError(f"hessian_batch must be one of {', '.join(HESSIAN_BATCHES)}, got {self.hessian_batch!r}")
    if not (self.damping >= 0 and self.relative_damping >= 0):
      raise errors.ConfigError(f"damping and relative damping must be >= 0, got {self.damping}, {self.relative_damping}")
    if int(self.held_out_batches) < 1:
      raise errors.ConfigError(f"held_out_batches must be >= 1, got {self.held_out_batches}")
    state, batches, held_out, metrics = unroll_and_hold_out(problem, eta, state, seed, self.unroll_steps)
    held, parts = [held_out], [metrics]
    for j in range(1, self.held_out_batches):
      state, batch, extra = problem.meta_batch(state, tf.random.experimental.stateless_fold_in(seed, 1000 + j))
      held.append(batch)
      parts.append(extra)
    metrics = merge_metrics(parts) if len(parts) > 1 else metrics
    state = tf.nest.map_structure(tf.stop_gradient, state)
    theta = problem.params(state)
    inner_batch = batches[-1] if batches and self.hessian_batch == "inner" else held_out

    with tf.GradientTape(persistent=True, watch_accessed_variables=False) as tape:
      tape.watch(theta)
      tape.watch(eta)
      losses = [problem.meta_loss(eta, problem.with_params(state, theta), batch, batches) for batch in held]
      outer = tf.add_n([loss for loss, _ in losses]) / len(losses)
      meta_metrics = losses[0][1]
      if len(losses) > 1:  # scalars averaged over the batches
        meta_metrics = {k: v for k, v in merge_metrics([m for _, m in losses]).items() if k != "env_steps"}
    b = flatten(tape.gradient(outer, theta, unconnected_gradients=tf.UnconnectedGradients.ZERO))
    direct = tape.gradient(outer, eta, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    del tape

    inner = lambda params: problem.inner_loss(eta, params, inner_batch)
    hvp = lambda v: hessian_vector_product(inner, theta, v, self.hvp, self.hvp_epsilon)
    damping = tf.constant(self.damping, b.dtype)
    damping_metrics = {}
    if self.relative_damping:
      scale = largest_eigenvalue(hvp, b, self.damping_power_iterations, tf.random.experimental.stateless_fold_in(seed, 2))
      damping = damping + self.relative_damping * scale
      damping_metrics = {"meta/damping": damping, "meta/hessian_scale": scale}
    matvec = lambda v: hvp(v) + damping * v
    v, solver_metrics = self.solver.solve(matvec, b, tf.random.experimental.stateless_fold_in(seed, 1))
    v = tf.stop_gradient(v)
    residual = tf.norm(matvec(v) - b) / (tf.norm(b) + 1e-12)

    with tf.GradientTape(watch_accessed_variables=False) as tape:
      tape.watch(eta)
      dot = tf.reduce_sum(flatten(gradient_of(lambda params: problem.inner_loss(eta, params, inner_batch), theta)) * v)
    mixed = tape.gradient(dot, eta, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    grads = [d - m for d, m in zip(direct, mixed)]
    out = dict(metrics, meta_loss=outer, solver_residual=residual, **meta_metrics, **solver_metrics, **damping_metrics)
    if self.max_residual is not None:
      out["reject"] = tf.logical_not(residual <= self.max_residual)  # NaN compares False: rejected
    return grads, state, out
