"""The one meta-trainer: every method's outer loop.

Each `iteration()` is one compiled call: read η and the inner state from variables, ask the
estimator for the outer gradient (`estimate(problem, η, state, seed)`), apply the meta-optimizer
(a functional optimizer, so its state is explicit), and write everything back. A non-finite
gradient, inner parameter or meta-loss, or an estimate the estimator rejects (`reject` in its
metrics: a diverged implicit solve), never reaches η: the step keeps η and the meta-optimizer
state (and, unless only rejected, the inner state) as they were, and counts the skip (`self.guard`, an `UpdateGuard`;
`reliability/skipped_updates` in TensorBoard). It plugs into `learners.loop.run_training`
(progress, TensorBoard, checkpoints, resume) like any learner.

An optional `InnerPhase` runs before each meta-step (Algorithm 2 of Place 2023): inner steps
alone, each its own compiled call, until a convergence test passes or a budget is spent.
"""
from __future__ import annotations

import dataclasses
from typing import List, Optional

import numpy as np
import tensorflow as tf

from tf_metarl import compilation
from tf_metarl.agents.optimizers import all_finite, clip_by_global_norm
from tf_metarl.collection import EpisodeStats
from tf_metarl.learners.loop import Trainable
from tf_metarl import errors
from tf_metarl.learners.update_guard import UpdateGuard
from tf_metarl.meta.implicit import gradient_of
from tf_metarl.meta.problem import InnerProblem, merge_metrics
from tf_metarl.state_variables import StateVariables


@dataclasses.dataclass(frozen=True)
class InnerPhase:
  """Inner steps without a meta-gradient before each meta-step: at least `min_iterations`, at
  most `max_iterations`, stopping once the convergence test passes: the inner loss's gradient
  norm ‖∇_θ L_in(θ, η)‖ on the step's own batch, at the parameters that collected it, is at most
  `tolerance` (stationarity, which the implicit function theorem assumes; a sampled gradient
  has a noise floor, so a tolerance below it spends the whole budget). The estimator's own
  `unroll_steps` still follow. max_iterations = 0: no phase."""
  max_iterations: int = 0
  min_iterations: int = 0
  tolerance: float = 0.0

  def validate(self) -> "InnerPhase":
    if not 0 <= self.min_iterations <= self.max_iterations:
      raise errors.ConfigError(f"inner phase iterations must satisfy 0 <= min <= max, got min {self.min_iterations}, "
                               f"max {self.max_iterations}")
    if not self.tolerance >= 0:
      raise errors.ConfigError(f"inner phase tolerance must be >= 0, got {self.tolerance}")
    return self


class MetaTrainer(Trainable):
  """Args:
    problem: an `InnerProblem`.
    estimator: an outer-gradient estimator (`meta.UnrolledEstimator`, `EvolutionStrategiesEstimator`,
      `ImplicitEstimator`).
    meta_model: the Keras model whose trainable variables are η (exported afterwards); it may
      have none (a fixed-target baseline), in which case only the inner problem advances.
    meta_optimizer: an `agents.optimizers` optimizer.
    seed: seeds η's initial inner state and every iteration's randomness.
    jit_compile: compile the step with XLA (not for tasks stepped in Python; see compilation.py).
    max_grad_norm: clip the meta-gradient's global norm before the meta-optimizer (None: no).
    inner_phase: an `InnerPhase` run before each meta-step (None: none).
  """

  def __init__(self, problem: InnerProblem, estimator, meta_model, meta_optimizer, seed: int,
               jit_compile: bool = compilation.JIT_COMPILE, max_grad_norm: Optional[float] = None,
               inner_phase: Optional[InnerPhase] = None):
    self.jit_compile = bool(jit_compile)
    self._step = tf.function(self._step_graph, jit_compile=jit_compile)
    self._inner_step = tf.function(self._inner_step_graph, jit_compile=jit_compile)
    self.inner_phase = (inner_phase or InnerPhase()).validate()
    self.problem, self.estimator, self.meta_model, self.meta_optimizer = problem, estimator, meta_model, meta_optimizer
    self.seed = int(seed)
    self.max_grad_norm = max_grad_norm
    self.eta = StateVariables(list(meta_model.trainable_variables), name="eta")
    eta = self.eta.read()
    self.state = StateVariables(problem.init(eta, tf.constant([self.seed, -1])), name="inner_state")
    self.meta_optimizer_state = StateVariables(meta_optimizer.init(eta), name="meta_optimizer_state")
    self.env_steps = tf.Variable(problem.init_env_steps, dtype=tf.int64, name="env_steps")
    self.seed_counter = tf.Variable(0, dtype=tf.int64, name="seed_counter")
    self.guard = UpdateGuard()

  def checkpoint_items(self):
    return dict(meta_model=self.meta_model, eta=self.eta, inner_state=self.state,
                meta_optimizer_state=self.meta_optimizer_state, env_steps=self.env_steps,
                seed_counter=self.seed_counter, guard=self.guard)

  def _step_graph(self, seed):
    eta, state, opt_state = self.eta.read(), self.state.read(), self.meta_optimizer_state.read()
    grads, new_state, metrics = self.estimator.estimate(self.problem, eta, state, seed)
    metrics = dict(metrics)
    new_eta, new_opt_state = eta, opt_state
    if eta:
      grads, metrics["meta_grad_norm"] = clip_by_global_norm(list(grads), self.max_grad_norm)
      new_eta, new_opt_state = self.meta_optimizer.update(eta, grads, opt_state)
    # Checked on what could go non-finite (gradients, inner parameters, the meta-loss), not on collected data.
    finite = all_finite([grads, new_eta, self.problem.params(new_state), metrics["meta_loss"]])
    rejected = tf.constant(False)
    if "reject" in metrics:  # the estimator's own verdict (e.g. a diverged implicit solve)
      rejected = tf.convert_to_tensor(metrics.pop("reject"))
      metrics["meta/rejected_estimates"] = tf.cast(rejected, tf.float32)

    def advance_inner():
      self.state.assign(new_state)
      return tf.constant(0, tf.int64)

    def apply():
      self.eta.assign(new_eta)
      self.meta_optimizer_state.assign(new_opt_state)
      return tf.constant(0, tf.int64)

    # A rejected estimate keeps η, but the inner problem's progress (finite) is kept.
    tf.cond(finite, advance_inner, lambda: tf.constant(1, tf.int64))
    skipped = tf.logical_or(tf.logical_not(finite), rejected)
    tf.cond(skipped, lambda: tf.constant(1, tf.int64), apply)
    self.guard.record(skipped)
    return metrics

  def _inner_step_graph(self, seed):
    """One inner step alone; its metrics add `inner/grad_norm`, the convergence test's measure."""
    eta, state = self.eta.read(), self.state.read()
    params = self.problem.params(state)
    new_state, batch, metrics = self.problem.unroll(eta, state, seed)
    grads = gradient_of(lambda p: self.problem.inner_loss(eta, p, batch), params)
    finite = all_finite([self.problem.params(new_state)])

    def advance_inner():
      self.state.assign(new_state)
      return tf.constant(0, tf.int64)

    tf.cond(finite, advance_inner, lambda: tf.constant(1, tf.int64))
    self.guard.record(tf.logical_not(finite))
    return dict(metrics, **{"inner/grad_norm": tf.linalg.global_norm(grads)})

  def _next_seed(self):
    seed = tf.cast(tf.stack([tf.constant(self.seed, tf.int64), self.seed_counter]), tf.int32)
    self.seed_counter.assign_add(1)
    return seed

  def run_inner_phase(self):
    """The inner phase (`InnerPhase`); returns the merged metrics of its steps ({} if none),
    with `inner/phase_iterations` and the last step's `inner/grad_norm`."""
    phase, parts = self.inner_phase, []
    for i in range(phase.max_iterations):
      parts.append(self._inner_step(self._next_seed()))
      if i + 1 >= phase.min_iterations and float(parts[-1]["inner/grad_norm"]) <= phase.tolerance:
        break
    if not parts:
      return {}
    merged = merge_metrics(parts)
    merged["inner/grad_norm"] = parts[-1]["inner/grad_norm"]
    merged["inner/phase_iterations"] = tf.constant(float(len(parts)))
    return merged

  def iteration(self):
    phase = self.run_inner_phase()
    metrics = self._step(self._next_seed())
    if phase:  # steps summed, episodes concatenated, metrics both report averaged over every step
      metrics = merge_metrics([phase, metrics])
    self.env_steps.assign_add(metrics.pop("env_steps"))
    stats = EpisodeStats()
    episodes = metrics.pop("episodes", None)
    if episodes is not None:
      finished = episodes.finished.numpy() > 0
      stats = EpisodeStats(returns=episodes.returns.numpy()[finished].tolist(),
                           lengths=episodes.lengths.numpy()[finished].astype(int).tolist())
    out = {k: float(v) for k, v in metrics.items() if np.ndim(v) == 0}
    out.update(self.problem.report(self.eta.read()))
    eta = [v.numpy() for v in self.eta.leaves]
    if eta:  # a meta-optimisation running away shows here long before anything is non-finite
      out["meta/eta_max_abs"] = float(max(np.max(np.abs(v)) if v.size else 0.0 for v in eta))
    return out, stats

  def evaluate(self, episodes: int) -> List[float]:
    seed = 10_000 * (self.seed + 1) + int(self.env_steps.numpy())
    return self.problem.evaluate(self.state.read(), episodes, seed)

  def curve_metric(self) -> float:
    return float(self.problem.curve_metric(self.state.read()))
