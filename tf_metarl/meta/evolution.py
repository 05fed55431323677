"""Outer gradient by evolution strategies (EPG; any problem, differentiable or not).

A population of V perturbations η + σ ε_i (antithetic pairs ± ε optional), each evaluated by K
inner steps and the meta-loss from the same inner state and the same seed (common random
numbers); the shaped losses s_i give the estimate g = 1/(Vσ) Σ s_i ε_i of ∇_η E[L(η + σε)].
The meta-loss is minimised (fitness = −loss), so g is applied by the meta-optimizer like any
gradient.

Members run in one graph: a loop over members, or with `vectorize=True` one `tf.vectorized_map`
over them (for problems whose ops pfor can batch), or, for a problem that implements
`population_losses` (EPG), one call of it with all members' η stacked. The loop traces one copy of the member program
per member, so compiled graphs grow with V: beyond a few dozen members, vectorise or evaluate
members remotely with the protocol below.

Fitness-from-seeds protocol, for members evaluated elsewhere (Ray workers): a member is fully
described by (η, noise seed, inner seed, index) (`split_seed` gives the two seeds of an
estimate): `member_eta` rebuilds its parameters, `member_loss` evaluates it, and `gradient`
turns the V scalar losses back into the estimate (ε_i regenerated from the noise seed).
"""
from __future__ import annotations

import dataclasses
from typing import List

import tensorflow as tf

from tf_metarl import errors
from tf_metarl.meta.problem import Episodes, merge_metrics, unroll_and_hold_out
from tf_metarl.networks.normalization import moments

SHAPINGS = ("none", "centered_rank", "z_score")


def shape_losses(losses, shaping: str):
  """Fitness shaping of [V] losses: `none` (raw), `centered_rank` (ranks mapped to [−0.5, 0.5],
  lowest loss −0.5), `z_score` ((L − mean) / std). Non-finite losses (members lost on a remote
  worker) are left out: shaped among the others, and 0 themselves."""
  if shaping not in SHAPINGS:
    raise errors.ConfigError(f"fitness shaping must be one of {', '.join(SHAPINGS)}, got {shaping!r}")
  alive = tf.math.is_finite(losses)
  if shaping == "none":
    return tf.where(alive, losses, 0.0)
  if shaping == "centered_rank":
    # Tied losses share their average rank: members that did equally well get equal weight (an
    # order-dependent tie-break would turn a population without differences into a random step).
    size = tf.reduce_sum(tf.cast(alive, losses.dtype))
    both = tf.logical_and(alive[:, None], alive[None, :])
    below = tf.reduce_sum(tf.cast(tf.logical_and(both, losses[None, :] < losses[:, None]), losses.dtype), axis=1)
    ties = tf.reduce_sum(tf.cast(tf.logical_and(both, tf.equal(losses[None, :], losses[:, None])), losses.dtype), 1)
    ranks = below + (ties - 1.0) / 2.0
    return tf.where(alive, ranks / tf.maximum(size - 1.0, 1.0) - 0.5, 0.0)
  present = tf.boolean_mask(losses, alive)
  mean, variance = moments(present, axes=[0])
  return tf.where(alive, (losses - mean) / (tf.sqrt(variance) + 1e-8), 0.0)


@dataclasses.dataclass(frozen=True)
class EvolutionStrategiesEstimator:
  """population: V members (V/2 antithetic pairs); sigma: perturbation std; unroll_steps: K
  inner steps per member before the meta-loss; vectorize: evaluate members with one
  `tf.vectorized_map` instead of a loop."""
  population: int = 16
  sigma: float = 0.02
  antithetic: bool = True
  shaping: str = "centered_rank"
  unroll_steps: int = 1
  vectorize: bool = False

  def __post_init__(self):
    if self.population < 2 or (self.antithetic and self.population % 2):
      raise errors.ConfigError(f"ES population must be >= 2 (and even with antithetic pairs), got {self.population}")
    if not self.sigma > 0:
      raise errors.ConfigError(f"ES sigma must be > 0, got {self.sigma}")
    shape_losses(tf.zeros([2]), self.shaping)  # validates the name

  @staticmethod
  def split_seed(seed):
    """(noise seed, inner seed) of one estimate."""
    return tf.unstack(tf.random.experimental.stateless_split(seed, num=2))

  def noise(self, eta, noise_seed) -> List[tf.Tensor]:
    """ε for all members, one [V, *shape] tensor per η tensor; with antithetic pairs member
    2j+1 is −(member 2j)."""
    draws = self.population // 2 if self.antithetic else self.population
    seeds = tf.random.experimental.stateless_split(noise_seed, num=max(len(eta), 1))
    out = []
    for i, p in enumerate(eta):
      eps = tf.random.stateless_normal(tf.concat([[draws], tf.shape(p)], 0), seeds[i], dtype=p.dtype)
      if self.antithetic:
        eps = tf.reshape(tf.stack([eps, -eps], axis=1), tf.concat([[self.population], tf.shape(p)], 0))
      out.append(eps)
    return out

  def _perturb(self, eta, eps, sigma):
    return [p + tf.cast(sigma, p.dtype) * e for p, e in zip(eta, eps)]

  def member_eta(self, eta, noise_seed, index: int, sigma=None):
    """η + σ ε_index (σ: this estimate's, default `self.sigma`)."""
    return self._perturb(eta, [n[index] for n in self.noise(eta, noise_seed)], self.sigma if sigma is None else sigma)

  def member_loss(self, problem, eta, state, inner_seed):
    """K inner steps and the meta-loss at η (no gradients). Returns (loss, metrics)."""
    state, batches, held_out, metrics = unroll_and_hold_out(problem, eta, state, inner_seed, self.unroll_steps)
    loss, _ = problem.meta_loss(eta, state, held_out, batches)
    return tf.stop_gradient(loss), metrics

  def gradient(self, eta, noise_seed, losses, sigma=None):
    """The estimate from the members' losses [V] (in member order); members whose loss is not
    finite (lost) are left out, and the average is over the others."""
    losses = tf.convert_to_tensor(losses)
    shaped = shape_losses(losses, self.shaping)
    alive = tf.reduce_sum(tf.cast(tf.math.is_finite(losses), losses.dtype))
    scale = 1.0 / (tf.maximum(alive, 1.0) * tf.cast(self.sigma if sigma is None else sigma, losses.dtype))
    return [scale * tf.tensordot(tf.cast(shaped, n.dtype), n, axes=1) for n in self.noise(eta, noise_seed)]

  def estimate(self, problem, eta, state, seed):
    """Returns (gradient estimate, inner state, metrics): every member starts from `state`, which
    comes back unchanged, or as `population_losses` returns it (EPG counts its epochs there)."""
    noise_seed, inner_seed = self.split_seed(seed)
    noise = self.noise(eta, noise_seed)
    sigma = self.sigma * problem.perturbation_scale(state)  # the problem's schedule (EPG: σ decay)
    if problem.evaluates_remotely():  # members elsewhere, each rebuilt from (η, noise seed, index, σ)
      losses, state, metrics = problem.remote_population_losses(self, eta, noise_seed, sigma, state, inner_seed)
    elif problem.evaluates_populations():  # the problem batches its members itself
      # η + σ ε broadcasts to [V, ...]: every member's η at once.
      losses, state, metrics = problem.population_losses(self._perturb(eta, noise, sigma), state, inner_seed)
    elif self.vectorize:
      member = lambda eps: self.member_loss(problem, self._perturb(eta, eps, sigma), state, inner_seed)
      losses, stacked = tf.vectorized_map(member, noise)
      metrics = _merge_stacked(stacked)
    else:
      losses, parts = [], []
      for i in range(self.population):
        loss, m = self.member_loss(problem, self._perturb(eta, [n[i] for n in noise], sigma), state, inner_seed)
        losses.append(loss)
        parts.append(m)
      losses, metrics = tf.stack(losses), merge_metrics(parts)
    grads = self.gradient(eta, noise_seed, losses, sigma)
    # Over the members that returned (all lost: NaN, which the trainer counts as a skipped step).
    present = tf.boolean_mask(losses, tf.math.is_finite(losses))
    return grads, state, dict(metrics, meta_loss=tf.reduce_mean(present), member_loss_std=tf.math.reduce_std(present),
                              **{"meta/es_sigma": tf.cast(sigma, tf.float32)})


def _merge_stacked(stacked):
  """`merge_metrics` for metrics stacked over members by vectorized_map."""
  out = {}
  for k, v in stacked.items():
    if k == "env_steps":
      out[k] = tf.reduce_sum(v)
    elif k == "episodes":
      out[k] = Episodes(*[tf.reshape(x, [-1]) for x in v])
    else:
      out[k] = tf.reduce_mean(v)
  return out
