"""Hand-designed on-policy objectives: REINFORCE with GAE, A2C and PPO-clip.

Each computes its advantages inside, from the critic's values with gradients stopped, so the same
named inputs serve all of them and an exported objective is self-contained. The critic is
regressed towards the same λ-returns through the differentiable `values`.
"""
from __future__ import annotations

import tensorflow as tf

from tf_metarl import returns
from tf_metarl.objectives.base import ON_POLICY, Objective


def _normalise(x):
  mean, variance = tf.nn.moments(x, axes=[0, 1])
  return (x - mean) / (tf.sqrt(variance) + 1e-8)


class _ActorCriticObjective(Objective):
  learner = ON_POLICY
  trains_critic = True

  def __init__(self, gamma=0.99, lam=0.95, value_coef=0.5, entropy_coef=0.0, normalise_advantages=True,
               name=None):
    super().__init__(name=name)
    self.gamma, self.lam = float(gamma), float(lam)
    self.value_coef, self.entropy_coef = float(value_coef), float(entropy_coef)
    self.normalise_advantages = bool(normalise_advantages)

  def hyperparameters(self):
    return dict(gamma=self.gamma, lam=self.lam, value_coef=self.value_coef, entropy_coef=self.entropy_coef,
                normalise_advantages=self.normalise_advantages)

  def _targets(self, inputs):
    """Returns (advantages, λ-returns), both [B, T] with gradients stopped."""
    values = tf.stop_gradient(inputs["values"])
    advantages = returns.generalized_advantage_estimates(
        inputs["rewards"], inputs["discounts"], inputs["episode_ends"], values,
        tf.stop_gradient(inputs["next_values"]), self.gamma, self.lam)
    targets = advantages + values
    if self.normalise_advantages:
      advantages = _normalise(advantages)
    return tf.stop_gradient(advantages), tf.stop_gradient(targets)

  def _combine(self, policy_term, inputs, targets, extra):
    value_term = 0.5 * tf.square(targets - inputs["values"])
    entropies = inputs.get("entropies")
    entropy_term = entropies if entropies is not None else tf.zeros_like(policy_term)
    per_step = policy_term + self.value_coef * value_term - self.entropy_coef * entropy_term
    out = {"per_step": per_step, "loss": tf.reduce_mean(per_step),
           "policy_loss": tf.reduce_mean(policy_term), "value_loss": tf.reduce_mean(value_term),
           "entropy": tf.reduce_mean(entropy_term)}
    out.update(extra)
    return out


class ReinforceObjective(_ActorCriticObjective):
  """REINFORCE with a GAE(λ) advantage: −A_t log π(a_t|s_t) + c_v ½(G^λ_t − V(s_t))²."""
  kind = "reinforce"
  input_names = ("rewards", "discounts", "episode_ends", "values", "next_values", "log_probs")

  def __init__(self, gamma=0.99, lam=0.95, value_coef=0.5, normalise_advantages=True, name=None):
    super().__init__(gamma, lam, value_coef, 0.0, normalise_advantages, name=name)

  def _loss(self, inputs):
    advantages, targets = self._targets(inputs)
    return self._combine(-advantages * inputs["log_probs"], inputs, targets, {})


class A2CObjective(_ActorCriticObjective):
  """A2C: n-step bootstrapped advantages (λ = 1 to the segment's end) and an entropy bonus:
  −A_t log π − c_e H(π) + c_v ½(G_t − V(s_t))²."""
  kind = "a2c"
  input_names = ("rewards", "discounts", "episode_ends", "values", "next_values", "log_probs", "entropies")

  def __init__(self, gamma=0.99, lam=1.0, value_coef=0.5, entropy_coef=0.01, normalise_advantages=False,
               name=None):
    super().__init__(gamma, lam, value_coef, entropy_coef, normalise_advantages, name=name)

  def _loss(self, inputs):
    advantages, targets = self._targets(inputs)
    return self._combine(-advantages * inputs["log_probs"], inputs, targets, {})


class PPOObjective(_ActorCriticObjective):
  """PPO-clip: −min(ρ A, clip(ρ, 1 ± ε) A) − c_e H(π) + c_v ½(G^λ − V)², ρ = exp(log π − log μ).

  Advantages are recomputed from the current critic at every call (per epoch), which Andrychowicz
  et al. (2021, "What matters in on-policy RL") found at least as good as freezing them per rollout.
  """
  kind = "ppo"
  input_names = ("rewards", "discounts", "episode_ends", "values", "next_values", "log_probs",
                 "behaviour_log_probs", "entropies")

  def __init__(self, gamma=0.99, lam=0.95, clip_epsilon=0.2, value_coef=0.5, entropy_coef=0.01,
               normalise_advantages=True, name=None):
    super().__init__(gamma, lam, value_coef, entropy_coef, normalise_advantages, name=name)
    self.clip_epsilon = float(clip_epsilon)

  def hyperparameters(self):
    return dict(super().hyperparameters(), clip_epsilon=self.clip_epsilon)

  def _loss(self, inputs):
    advantages, targets = self._targets(inputs)
    log_ratio = inputs["log_probs"] - inputs["behaviour_log_probs"]
    ratio = tf.exp(log_ratio)
    clipped = tf.clip_by_value(ratio, 1.0 - self.clip_epsilon, 1.0 + self.clip_epsilon)
    policy_term = -tf.minimum(ratio * advantages, clipped * advantages)
    extra = {"clip_fraction": tf.reduce_mean(tf.cast(tf.abs(ratio - 1.0) > self.clip_epsilon, tf.float32)),
             "approx_kl": tf.reduce_mean((ratio - 1.0) - log_ratio)}
    return self._combine(policy_term, inputs, targets, extra)
