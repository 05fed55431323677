"""Per-step losses as pure functions of `[B, T]` tensors (rlax style: one stream of experience per
row, batched from outside, shapes checked at the top).

Nothing here stops gradients: callers decide which inputs are constants (a learner stops the
advantage's gradient; FRODO lets gradients flow into its learned targets, so η gets its
meta-gradient). Every function returns per-step values `[B, T]` unless stated; reduce with a mean.
"""
from __future__ import annotations

from typing import Dict, Tuple

import tensorflow as tf

from tf_metarl import returns
from tf_metarl.shapes import check_rank


def policy_gradient(log_probs, advantages):
  """REINFORCE / A2C policy term −A_t log π(a_t|s_t), [B, T]."""
  log_probs = check_rank("log_probs", log_probs, 2)
  return -advantages * log_probs


def ppo_clip(log_probs, behaviour_log_probs, advantages, clip_epsilon: float) -> Tuple[tf.Tensor, Dict[str, tf.Tensor]]:
  """PPO-clip policy term −min(ρ A, clip(ρ, 1 ± ε) A), ρ = exp(log π − log μ), [B, T].

  Returns (per-step term, {"clip_fraction", "approx_kl"} scalars).
  """
  log_probs = check_rank("log_probs", log_probs, 2)
  log_ratio = log_probs - behaviour_log_probs
  ratio = tf.exp(log_ratio)
  clipped = tf.clip_by_value(ratio, 1.0 - clip_epsilon, 1.0 + clip_epsilon)
  term = -tf.minimum(ratio * advantages, clipped * advantages)
  diagnostics = {"clip_fraction": tf.reduce_mean(tf.cast(tf.abs(ratio - 1.0) > clip_epsilon, log_probs.dtype)),
                 "approx_kl": tf.reduce_mean((ratio - 1.0) - log_ratio)}
  return term, diagnostics


def value_regression(values, value_targets):
  """½ (G_t − V(s_t))², [B, T]."""
  values = check_rank("values", values, 2)
  return 0.5 * tf.square(value_targets - values)


def actor_critic(policy_term, values, value_targets, entropies, value_coef, entropy_coef) -> Tuple[tf.Tensor, Dict]:
  """The actor-critic combination: policy term + c_v ½(G − V)² − c_e H(π), [B, T].

  `entropies` may be None (no bonus). Returns (per-step loss, {"policy_loss", "value_loss",
  "entropy"} scalar means).
  """
  policy_term = check_rank("policy_term", policy_term, 2)
  value_term = value_regression(values, value_targets)
  entropy_term = tf.zeros_like(policy_term) if entropies is None else check_rank("entropies", entropies, 2)
  per_step = policy_term + value_coef * value_term - entropy_coef * entropy_term
  return per_step, {"policy_loss": tf.reduce_mean(policy_term), "value_loss": tf.reduce_mean(value_term),
                    "entropy": tf.reduce_mean(entropy_term)}


def deterministic_policy_gradient(q_values):
  """DDPG / TD3 actor term −Q(s_t, π(s_t)), [B, T]."""
  return -check_rank("q_values", q_values, 2)


def off_policy_reinforce(actions, behaviour_actions, advantages):
  """A_t · mean_d (a_t − π(s_t))², [B, T], for deterministic policies (actions [B, T, D]): the
  off-policy REINFORCE of MetaGenRL's baselines (the reference code's `reinforce` objective)."""
  actions = check_rank("actions", actions, 3)
  return advantages * tf.reduce_mean(tf.square(behaviour_actions - actions), axis=-1)


def clipped_double_q_targets(rewards, discounts, next_q_values, gamma):
  """TD3 critic targets r_t + γ d_t min_i Q_i'(s'_t, ã'_t), [B, T]; `next_q_values` is [2, B, T]."""
  rewards = check_rank("rewards", rewards, 2)
  next_q_values = check_rank("next_q_values", next_q_values, 3)
  return rewards + gamma * discounts * tf.reduce_min(next_q_values, axis=0)


def twin_q_regression(q_values, q_targets):
  """TD3 critic loss: Σ_i mean_{b,t} (Q_i(s_t, a_t) − y_t)², a scalar; `q_values` is [2, B, T]."""
  q_values = check_rank("q_values", q_values, 3)
  return tf.reduce_sum(tf.reduce_mean(tf.square(q_values - q_targets[None]), axis=[1, 2]))


def score_function_surrogate(log_probs, behaviour_log_probs, advantages, episode_ends, dependence: float):
  """A surrogate of −J(θ) whose derivatives of every order are score-function estimates (Loaded
  DiCE, Farquhar et al. 2019), importance-weighted to the behaviour policy μ (Place 2023, Remark 2),
  per step [B, T]:

    −[exp(w_t) − exp(w_t − ℓ_t)] A_t,   ℓ_t = log π(a_t|s_t) − log μ(a_t|s_t),
    w_t = Σ_{t' ≤ t, same episode} λ^{t−t'} ℓ_t'          (λ = `dependence`).

  Its value is 0 at π = μ, and its gradient there −A_t ∇log π_t (the policy gradient) for every
  λ; with λ = 0 its gradient is −ρ_t A_t ∇log π_t everywhere (per-step importance weights, ρ_t =
  exp ℓ_t), the form an inner loss reusing older data needs. At π = μ its Hessian is −Σ_t A_t [∇²log π_t + ∇ℓ_t ∇ℓ_t^T + ∇ℓ_t ∇u_t^T +
  ∇u_t ∇ℓ_t^T] with u_t = λ w_{t−1}: with λ = 1 and A_t the (discounted) return from t, less any
  baseline of s_t, an unbiased estimate of ∇²J; with λ = 0 only the per-step terms: biased, and
  of far less variance on long episodes.
  `advantages` are constants to θ (they may depend on other parameters, e.g. a learned reward).
  """
  log_probs = check_rank("log_probs", log_probs, 2)
  log_ratios = log_probs - behaviour_log_probs
  cumulative = returns.forward_discounted_sums(log_ratios, episode_ends, dependence)
  return -(tf.exp(cumulative) - tf.exp(cumulative - log_ratios)) * advantages
