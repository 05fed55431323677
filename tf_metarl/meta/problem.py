"""The inner problem: what a meta-learner learns on (learned_optimization's split, in TensorFlow).

η (the meta-parameters) is always a list of tensors passed in explicitly, never read from
variables, so an estimator can differentiate with respect to it (unrolled backpropagation,
implicit differentiation) or evaluate many perturbed copies η + σε (evolution strategies).
The inner state is a nest of tensors (agent parameters and optimizer state, environment state,
any carried batch) passed in and out; the meta-trainer keeps it in variables between steps.

A new method is a new `InnerProblem` (its algorithm box), not a new training loop.
"""
from __future__ import annotations

from typing import Dict, List, NamedTuple, Sequence, Tuple

import tensorflow as tf


class Episodes(NamedTuple):
  """Per-step episode bookkeeping of a collection, flattened to [N]: `finished` is 1 where an
  episode ended at that step, with its undiscounted `returns` and `lengths` there (else 0).
  Tasks flatten time-major ([T, copies] -> [T·copies]), so a reshape recovers each copy's."""
  returns: tf.Tensor
  lengths: tf.Tensor
  finished: tf.Tensor


def no_episodes() -> Episodes:
  return Episodes(tf.zeros([0]), tf.zeros([0], tf.int32), tf.zeros([0]))


class InnerProblem:
  """Interface. Collect-like methods return metrics with `env_steps` (int64 scalar: environment
  steps they consumed) and `episodes` (`Episodes`); estimators sum the first and concatenate the
  second across everything they run, so the trainer counts every step any member took."""

  # Environment steps `init` consumes (e.g. a first batch collected up front).
  init_env_steps: int = 0

  def init(self, eta: List[tf.Tensor], seed) -> object:
    """The initial inner state for meta-parameters η and a seed (int32 [2])."""
    raise NotImplementedError

  def unroll(self, eta, state, seed) -> Tuple[object, object, Dict]:
    """One inner step (collect and update). Returns (state, the batch the update used, metrics)."""
    raise NotImplementedError

  def meta_batch(self, state, seed) -> Tuple[object, object, Dict]:
    """The held-out batch for the meta-loss, collected with the current inner parameters.
    Returns (state, batch, metrics)."""
    raise NotImplementedError

  def meta_loss(self, eta, state, batch, inner_batches: Sequence = ()) -> Tuple[tf.Tensor, Dict]:
    """The outer objective to minimise at the current inner state. Returns (scalar, metrics)."""
    raise NotImplementedError

  # For evolution strategies on problems that batch members themselves (EPG's population of inner
  # trainings): every member's meta-loss at once.
  def population_losses(self, stacked_eta: List[tf.Tensor], state, seed) -> Tuple[tf.Tensor, object, Dict]:
    """Meta-losses [V] of V members, member i at η_i (`stacked_eta`: η's tensors with a leading V
    axis), all from `state` and `seed`. Returns (losses, the state to continue from, metrics)."""
    raise NotImplementedError

  @classmethod
  def evaluates_populations(cls) -> bool:
    return cls.population_losses is not InnerProblem.population_losses

  # For evolution strategies with members evaluated in other processes (`meta.remote`).
  def remote_population_losses(self, estimator, eta, noise_seed, sigma, state, seed
                               ) -> Tuple[tf.Tensor, object, Dict]:
    """Meta-losses [V] of the estimator's members, member i at `estimator.member_eta(eta,
    noise_seed, i, sigma)`, evaluated elsewhere (NaN for a member that was lost). Returns (losses,
    the state to continue from, metrics)."""
    raise NotImplementedError

  def perturbation_scale(self, state) -> tf.Tensor:
    """A factor on the ES perturbation σ at this state (a σ schedule); 1 by default."""
    return tf.constant(1.0)

  def evaluates_remotely(self) -> bool:
    return False

  # For implicit differentiation: the inner objective whose θ-gradient vanishes at θ*(η).
  def inner_loss(self, eta, params: List[tf.Tensor], batch) -> tf.Tensor:
    raise NotImplementedError

  def params(self, state) -> List[tf.Tensor]:
    """The inner parameters θ inside a state."""
    raise NotImplementedError

  def with_params(self, state, params: List[tf.Tensor]):
    """A copy of `state` with θ replaced."""
    raise NotImplementedError

  def recording_sources(self) -> List:
    """(env id, `EnvInfo`, source) for each environment this problem collects in (`meta_train
    --record`); a source's `recorder` (a `recording.EpisodeRecorder`, None by default) gets every
    trajectory it collects. Default: the problem's `task` (`tasks.GymTask` steps its copies from
    Python; `tasks.BatchedTask` hands its rollouts out of the graph)."""
    task = getattr(self, "task", None)
    if task is not None and hasattr(task, "recorder"):
      return [(task.name, task.env_info, task)]
    return []

  # Reporting hooks for the meta-trainer (eager, outside the compiled step).
  def evaluate(self, state, episodes: int, seed: int) -> List[float]:
    """Returns of greedy episodes of the current inner agent (empty: not episodic)."""
    return []

  def report(self, eta) -> Dict[str, float]:
    """Extra scalars to log (e.g. meta/gamma)."""
    return {}

  def curve_metric(self, state) -> float:
    """The learning curve's `metric` column (NaN: none)."""
    return float("nan")


def unroll_and_hold_out(problem: InnerProblem, eta, state, seed, steps: int):
  """`steps` inner steps, then the held-out batch: what every estimator runs before its
  meta-loss. Returns (state, inner batches, held-out batch, merged metrics)."""
  seeds = tf.random.experimental.stateless_split(seed, num=steps + 1)
  batches, parts = [], []
  for k in range(steps):
    state, batch, metrics = problem.unroll(eta, state, seeds[k])
    batches.append(batch)
    parts.append(metrics)
  state, held_out, metrics = problem.meta_batch(state, seeds[-1])
  parts.append(metrics)
  return state, batches, held_out, merge_metrics(parts)


def merge_metrics(parts: Sequence[Dict]) -> Dict:
  """Combines the metrics of several unrolls: `env_steps` summed, `episodes` concatenated, other
  scalars averaged (non-scalars dropped)."""
  merged: Dict = {"env_steps": tf.zeros([], tf.int64)}
  episodes = [p["episodes"] for p in parts if "episodes" in p]
  if episodes:
    merged["episodes"] = Episodes(*[tf.concat(list(xs), 0) for xs in zip(*episodes)])
  scalars: Dict[str, list] = {}
  for p in parts:
    for k, v in p.items():
      if k == "env_steps":
        merged["env_steps"] += tf.cast(v, tf.int64)
      elif k != "episodes" and tf.convert_to_tensor(v).shape.rank == 0:
        scalars.setdefault(k, []).append(tf.cast(v, tf.float32))
  for k, vs in scalars.items():
    merged[k] = tf.add_n(vs) / len(vs)
  return merged
