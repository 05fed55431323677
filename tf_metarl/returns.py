"""Returns and advantages as pure functions of batch-major `[B, T]` tensors.

Conventions (as in rlax, batched from outside): for step t, `values[:, t] = V(s_t)` and
`next_values[:, t] = V(s'_t)` of the true next observation; `discounts[:, t]` is 0 where the episode
terminated at t and 1 otherwise; `episode_ends[:, t]` is 1 where it ended for any reason
(termination or truncation). Bootstrapping uses `gamma * discounts * next_values`, so a truncated
episode bootstraps from its last observation and a terminated one does not; recursions stop at
`episode_ends`, so nothing leaks from one episode into the next.
"""
from __future__ import annotations

import tensorflow as tf

from tf_metarl.shapes import check_rank


# Up to this many static steps the recursion is unrolled: `tf.scan` inside `tf.vectorized_map`
# (populations) becomes a TensorList while loop that XLA cannot compile, and the unrolled form is
# the same arithmetic in the same order (bit-identical results).
MAX_UNROLLED_STEPS = 256


def _reverse_recursion(deltas, coefficients):
  """Computes y_t = deltas_t + coefficients_t * y_{t+1}, y_T = 0, over the time axis of [B, T]."""
  steps = deltas.shape[1]
  if steps is not None and steps <= MAX_UNROLLED_STEPS:
    ys, carry = [], tf.zeros_like(deltas[:, 0])
    for t in reversed(range(steps)):
      carry = deltas[:, t] + coefficients[:, t] * carry
      ys.append(carry)
    return tf.stack(ys[::-1], axis=1) if ys else tf.zeros_like(deltas)
  deltas_tm = tf.transpose(deltas)  # [T, B]: tf.scan iterates the leading axis.
  coefficients_tm = tf.transpose(coefficients)
  ys = tf.scan(lambda carry, x: x[0] + x[1] * carry, (deltas_tm, coefficients_tm),
               initializer=tf.zeros_like(deltas_tm[0]), reverse=True)
  return tf.transpose(ys)


def td_errors(rewards, discounts, values, next_values, gamma):
  """One-step TD errors δ_t = r_t + γ d_t V(s'_t) − V(s_t), [B, T]."""
  rewards = check_rank("rewards", rewards, 2)
  return rewards + gamma * discounts * next_values - values


def generalized_advantage_estimates(rewards, discounts, episode_ends, values, next_values, gamma, lam):
  """GAE(γ, λ) advantages, [B, T]; λ = 1 gives bootstrapped Monte Carlo (n-step to segment end).

  A_t = δ_t + γ λ (1 − end_t) A_{t+1}, with A after the last step = 0 (the last step bootstraps
  through its δ from `next_values`).
  """
  for name, x in (("rewards", rewards), ("discounts", discounts), ("episode_ends", episode_ends),
                  ("values", values), ("next_values", next_values)):
    check_rank(name, x, 2)
  deltas = td_errors(rewards, discounts, values, next_values, gamma)
  return _reverse_recursion(deltas, gamma * lam * (1.0 - episode_ends))


def lambda_returns(rewards, discounts, episode_ends, values, next_values, gamma, lam):
  """λ-returns G^λ_t = A^GAE_t + V(s_t), [B, T]."""
  return generalized_advantage_estimates(rewards, discounts, episode_ends, values, next_values, gamma,
                                         lam) + values


def discounted_returns(rewards, discounts, episode_ends, bootstrap_values, gamma):
  """Discounted returns inside each episode, [B, T], bootstrapping `bootstrap_values` ([B, T]) at
  the last step of the segment and at truncations: G_t = r_t + γ d_t [end_t V'_t + (1 − end_t) G_{t+1}],
  where V'_t is only used where the recursion stops (an episode end or the segment's last step)."""
  rewards = check_rank("rewards", rewards, 2)
  last = tf.one_hot(tf.shape(rewards)[1] - 1, tf.shape(rewards)[1], dtype=rewards.dtype)[None, :]
  stop = tf.maximum(episode_ends, last)
  deltas = rewards + gamma * discounts * stop * bootstrap_values
  return _reverse_recursion(deltas, gamma * discounts * (1.0 - stop))


def n_step_returns(rewards, discounts, episode_ends, next_values, gamma, n: int):
  """n-step bootstrapped returns inside each episode, [B, T]:

  G_t = Σ_{k<m} γ^k r_{t+k} (discounted by d) + γ^m d·V'(the step where it stops), where the sum
  stops after n steps, at an episode end, or at the segment's last step, whichever comes first;
  it bootstraps from `next_values` of the step where it stops (zero weight after termination).
  """
  rewards = check_rank("rewards", rewards, 2)
  if n < 1:
    raise ValueError(f"n must be >= 1, got {n}")
  length = rewards.shape[1]
  if length is None:
    raise ValueError("n_step_returns needs a static time dimension")
  outputs = []
  for t in range(length):  # Python loop over a static T: each G_t is a short sum (n terms).
    total = tf.zeros_like(rewards[:, 0])
    scale = tf.ones_like(rewards[:, 0])
    for k in range(min(n, length - t)):
      i = t + k
      total += scale * rewards[:, i]
      stop = episode_ends[:, i] if k < min(n, length - t) - 1 else tf.ones_like(rewards[:, i])
      stop = tf.maximum(stop, episode_ends[:, i])
      total += scale * gamma * discounts[:, i] * stop * next_values[:, i]
      scale = scale * gamma * discounts[:, i] * (1.0 - stop)
    outputs.append(total)
  return tf.stack(outputs, axis=1)


def forward_discounted_sums(values, episode_ends, decay):
  """y_t = x_t + decay (1 − end_{t−1}) y_{t−1}, y_{−1} = 0, over the time axis of [B, T]: sums of
  the past within each episode, weighted by decay^age (the cumulative log-ratios of the
  score-function surrogate in `losses.score_function_surrogate`)."""
  values = check_rank("values", values, 2)
  continues = 1.0 - tf.concat([tf.ones_like(episode_ends[:, :1]), episode_ends[:, :-1]], axis=1)
  flipped = _reverse_recursion(tf.reverse(values, [1]), tf.reverse(decay * continues, [1]))
  return tf.reverse(flipped, [1])
