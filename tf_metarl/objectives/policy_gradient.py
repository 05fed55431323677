"""Hand-designed on-policy objectives: REINFORCE with GAE, A2C and PPO-clip, thin wrappers over
`tf_metarl.losses`.

Each computes its advantages inside, from the critic's values with gradients stopped
(`rollout_values`: the current critic's, or the critic's at collection when the learner freezes
targets per rollout), so the same named inputs serve all of them and an exported objective is
self-contained. The critic is regressed towards the same λ-returns through the differentiable
`values`.
"""
from __future__ import annotations

import tensorflow as tf

from tf_metarl import losses, returns
from tf_metarl.networks.normalization import moments
from tf_metarl.objectives.base import ON_POLICY, Objective, validate_inputs


def _normalise(x):
  mean, variance = moments(x, axes=[0, 1])
  return (x - mean) / (tf.sqrt(variance) + 1e-8)


class _ActorCriticObjective(Objective):
  """−A_t log π(a_t|s_t) − c_e H(π) + c_v ½(G^λ_t − V(s_t))², A = GAE(γ, λ) with gradients stopped.

  Subclasses change the defaults, the inputs they read, and (PPO) the policy term.
  """
  learner = ON_POLICY
  trains_critic = True

  def __init__(self, gamma, lam, value_coef, entropy_coef, normalise_advantages, name=None):
    super().__init__(name=name)
    self.gamma, self.lam = float(gamma), float(lam)
    self.value_coef, self.entropy_coef = float(value_coef), float(entropy_coef)
    self.normalise_advantages = bool(normalise_advantages)

  def hyperparameters(self):
    return dict(gamma=self.gamma, lam=self.lam, value_coef=self.value_coef, entropy_coef=self.entropy_coef,
                normalise_advantages=self.normalise_advantages)

  computes_rollout_targets = True
  rollout_target_inputs = ("rewards", "discounts", "episode_ends", "rollout_values", "rollout_next_values")

  def rollout_targets(self, inputs):
    """{"advantages": GAE(γ, λ) (not normalised), "value_targets": λ-returns}, both [B, T] with
    gradients stopped, from `rollout_values` (the current critic's values unless the learner froze
    them at collection). Needs whole trajectories: the recursion runs over time."""
    values = tf.stop_gradient(inputs["rollout_values"])
    advantages = returns.generalized_advantage_estimates(
        inputs["rewards"], inputs["discounts"], inputs["episode_ends"], values,
        tf.stop_gradient(inputs["rollout_next_values"]), self.gamma, self.lam)
    return {"advantages": tf.stop_gradient(advantages), "value_targets": tf.stop_gradient(advantages + values)}

  def _policy_term(self, inputs, advantages):
    """Returns (per-step policy term [B, T], extra scalar diagnostics)."""
    return losses.policy_gradient(inputs["log_probs"], advantages), {}

  def loss_from_targets(self, inputs, targets):
    return self._loss_from_targets(validate_inputs(self.input_specs(), inputs, self.kind), targets)

  def _loss_from_targets(self, inputs, targets):
    """The loss on a batch given its targets; advantages are normalised over this batch."""
    advantages = targets["advantages"]
    if self.normalise_advantages:
      advantages = _normalise(advantages)
    policy_term, extra = self._policy_term(inputs, advantages)
    per_step, parts = losses.actor_critic(policy_term, inputs["values"], targets["value_targets"],
                                          inputs.get("entropies"), self.value_coef, self.entropy_coef)
    return dict(parts, per_step=per_step, loss=tf.reduce_mean(per_step), **extra)

  def _loss(self, inputs):
    return self._loss_from_targets(inputs, self.rollout_targets(inputs))


class ReinforceObjective(_ActorCriticObjective):
  """REINFORCE with a GAE(λ) advantage: −A_t log π(a_t|s_t) + c_v ½(G^λ_t − V(s_t))²."""
  kind = "reinforce"
  input_names = ("rewards", "discounts", "episode_ends", "values", "rollout_values", "rollout_next_values", "log_probs")

  def __init__(self, gamma=0.99, lam=0.95, value_coef=0.5, normalise_advantages=True, name=None):
    super().__init__(gamma, lam, value_coef, 0.0, normalise_advantages, name=name)


class A2CObjective(_ActorCriticObjective):
  """A2C: n-step bootstrapped advantages (λ = 1 to the segment's end) and an entropy bonus:
  −A_t log π − c_e H(π) + c_v ½(G_t − V(s_t))²."""
  kind = "a2c"
  input_names = ("rewards", "discounts", "episode_ends", "values", "rollout_values", "rollout_next_values", "log_probs",
                 "entropies")

  def __init__(self, gamma=0.99, lam=1.0, value_coef=0.5, entropy_coef=0.01, normalise_advantages=False,
               name=None):
    super().__init__(gamma, lam, value_coef, entropy_coef, normalise_advantages, name=name)


class PPOObjective(_ActorCriticObjective):
  """PPO-clip: −min(ρ A, clip(ρ, 1 ± ε) A) − c_e H(π) + c_v ½(G^λ − V)², ρ = exp(log π − log μ).

  Advantages come from `rollout_values`: the current critic's at every call (per epoch) by default,
  which Andrychowicz et al. (2021, "What matters in on-policy RL") found at least as good as
  freezing them per rollout; or frozen at collection (`on_policy.freeze_targets`, as purejaxrl).
  """
  kind = "ppo"
  input_names = ("rewards", "discounts", "episode_ends", "values", "rollout_values", "rollout_next_values",
                 "log_probs", "behaviour_log_probs", "entropies")

  def __init__(self, gamma=0.99, lam=0.95, clip_epsilon=0.2, value_coef=0.5, entropy_coef=0.01,
               normalise_advantages=True, name=None):
    super().__init__(gamma, lam, value_coef, entropy_coef, normalise_advantages, name=name)
    self.clip_epsilon = float(clip_epsilon)

  def hyperparameters(self):
    return dict(super().hyperparameters(), clip_epsilon=self.clip_epsilon)

  def _policy_term(self, inputs, advantages):
    return losses.ppo_clip(inputs["log_probs"], inputs["behaviour_log_probs"], advantages, self.clip_epsilon)
