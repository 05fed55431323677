"""TD3 (Fujimoto et al. 2018) with explicit state and pure updates: twin-Q critics with clipped
double-Q targets and target-policy smoothing, a deterministic actor trained every `policy_delay`
critic updates by any off-policy objective (TD3's −Q1, or a learned objective), Polyak-averaged
target networks. The off-policy learner wraps it; MetaGenRL stacks N of these states
(`agents.population`).
"""
from __future__ import annotations

import dataclasses
from typing import Dict, NamedTuple, Optional, Tuple

import numpy as np
import tensorflow as tf

from tf_metarl import losses
from tf_metarl.agents import population
from tf_metarl.agents.actor_critic import ObjectiveFn
from tf_metarl.agents.optimizers import apply_if_finite, clip_by_global_norm
from tf_metarl.networks.functional import functional_call
from tf_metarl.trajectories import Trajectory


class TD3State(NamedTuple):
  """Parameter lists of the actor, twin critic and their target copies; functional optimizer
  states; `updates`: critic updates taken so far (int64 scalar)."""
  policy: list
  critic: list
  target_policy: list
  target_critic: list
  actor_optimizer: tuple
  critic_optimizer: tuple
  updates: tf.Tensor


@dataclasses.dataclass(frozen=True)
class TD3Settings:
  gamma: float = 0.99
  tau: float = 0.005
  policy_delay: int = 2
  target_noise: float = 0.2        # std of the target-policy smoothing noise, in half action ranges
  target_noise_clip: float = 0.5
  episode_step_limit: float = 1000.0  # divides `episode_steps` into the objectives' `time` input
  max_grad_norm: Optional[float] = None  # global-norm clipping of each critic and actor gradient


class TD3:
  """Pure functions over `TD3State` for a `DeterministicPolicy` and a `TwinQCritic`."""

  def __init__(self, policy, critic, actor_optimizer, critic_optimizer, settings: TD3Settings = TD3Settings(),
               select_skips: bool = False):
    """select_skips: skip non-finite updates with `tf.where` rather than `tf.cond`
    (`optimizers.apply_if_finite`): for updates no tape differentiates through, vectorised
    (populations) and XLA-compiled."""
    self.select_skips = select_skips
    self.policy, self.critic = policy, critic
    self.actor_optimizer, self.critic_optimizer = actor_optimizer, critic_optimizer
    self.settings = settings
    low, high = np.asarray(policy.action_low, np.float32), np.asarray(policy.action_high, np.float32)
    self.low, self.high, self.half_range = tf.constant(low), tf.constant(high), tf.constant((high - low) / 2)

  def init(self, policy_params=None, critic_params=None) -> TD3State:
    """Parameters given (a population member's own initialisation) or the Keras models' current
    ones, identical target copies, fresh optimizer states."""
    policy = list(policy_params) if policy_params is not None else [
        tf.convert_to_tensor(v.value) for v in self.policy.trainable_variables]
    critic = list(critic_params) if critic_params is not None else [
        tf.convert_to_tensor(v.value) for v in self.critic.trainable_variables]
    return TD3State(policy, critic, list(policy), list(critic), self.actor_optimizer.init(policy),
                    self.critic_optimizer.init(critic), tf.zeros([], tf.int64))

  def actions(self, policy_params, observations):
    """π(s) for observations [..., O] -> [..., A], within the action bounds."""
    return functional_call(self.policy, policy_params, observations)

  def explore(self, policy_params, observations, seed, noise_std: float, normal=None):
    """π(s) + N(0, (noise_std · half range)²), clipped to the bounds; observations [N, O]; seed int32 [2].
    `normal`: standard-normal draws of the actions' shape to use instead of drawing from `seed`
    (populations draw all agents' noise in one op: stateless RNG ops have no vectorized_map converter)."""
    actions = self.actions(policy_params, observations)
    if normal is None:
      normal = tf.random.stateless_normal(tf.shape(actions), seed, dtype=actions.dtype)
    noise = normal * noise_std * self.half_range
    return tf.clip_by_value(actions + noise, self.low, self.high)

  def q_values(self, critic_params, observations, actions):
    """[2, ...]: both critics' Q(s, a)."""
    return functional_call(self.critic, critic_params, (observations, actions))

  def critic_update(self, state: TD3State, batch: Trajectory, seed, normal=None) -> Tuple[TD3State, Dict[str, tf.Tensor]]:
    """`normal`: standard-normal draws shaped like `batch.actions` for the target-policy smoothing,
    instead of drawing them from `seed` (see `explore`)."""
    s = self.settings
    dtype = batch.actions.dtype  # float64 in finite-difference tests
    if normal is None:
      normal = tf.random.stateless_normal(tf.shape(batch.actions), seed, dtype=dtype)
    noise = tf.clip_by_value(normal * s.target_noise,
                             -s.target_noise_clip, s.target_noise_clip) * tf.cast(self.half_range, dtype)
    next_actions = tf.clip_by_value(self.actions(state.target_policy, batch.next_observations) + noise,
                                    tf.cast(self.low, dtype), tf.cast(self.high, dtype))
    next_q = self.q_values(state.target_critic, batch.next_observations, next_actions)
    targets = tf.stop_gradient(losses.clipped_double_q_targets(batch.rewards, batch.discounts, next_q, s.gamma))
    params = list(state.critic)
    with tf.GradientTape(watch_accessed_variables=False) as tape:
      tape.watch(params)
      q = self.q_values(params, batch.observations, batch.actions)
      loss = losses.twin_q_regression(q, targets)
    grads, _ = clip_by_global_norm(tape.gradient(loss, params), self.settings.max_grad_norm)
    critic, opt_state, skipped = apply_if_finite(self.critic_optimizer, params, grads, state.critic_optimizer,
                                                 select=self.select_skips)
    state = state._replace(critic=critic, critic_optimizer=opt_state, updates=state.updates + 1)
    return state, {"critic_loss": loss, "q_mean": tf.reduce_mean(q), "skipped_updates": tf.cast(skipped, tf.float32)}

  def actor_inputs(self, policy_params, critic_params, batch: Trajectory) -> Dict[str, tf.Tensor]:
    """Named objective inputs (off-policy), differentiable in the actor's parameters through
    `actions` and `q_values` only. `values` V(s_t) = Q1(s_t, π(s_t)) and `next_values`
    V(s'_t) = Q1(s'_t, π(s'_t)) are held constant; `time` is the episode step over the limit."""
    actions = self.actions(policy_params, batch.observations)
    q_values = self.q_values(critic_params, batch.observations, actions)[0]
    next_actions = self.actions(policy_params, batch.next_observations)
    next_values = self.q_values(critic_params, batch.next_observations, next_actions)[0]
    dtype = q_values.dtype
    time = tf.clip_by_value(tf.cast(batch.episode_steps, dtype) / self.settings.episode_step_limit, 0.0, 1.0)
    return {"rewards": batch.rewards, "discounts": batch.discounts, "episode_ends": batch.episode_ends,
            "q_values": q_values, "values": tf.stop_gradient(q_values), "next_values": tf.stop_gradient(next_values),
            "time": time, "actions": actions, "behaviour_actions": batch.actions}

  def actor_update(self, state: TD3State, batch: Trajectory, objective_fn: ObjectiveFn):
    """One actor step on the objective, then Polyak averaging of both target networks."""
    params = list(state.policy)
    with tf.GradientTape(watch_accessed_variables=False) as tape:
      tape.watch(params)
      loss = objective_fn(self.actor_inputs(params, state.critic, batch))["loss"]
    grads = tape.gradient(loss, params, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    grads, _ = clip_by_global_norm(grads, self.settings.max_grad_norm)
    policy, opt_state, skipped = apply_if_finite(self.actor_optimizer, params, grads, state.actor_optimizer,
                                                 select=self.select_skips)
    tau = self.settings.tau
    polyak = lambda targets, sources: [(1.0 - tau) * t + tau * x for t, x in zip(targets, sources)]
    state = state._replace(policy=policy, actor_optimizer=opt_state,
                           target_policy=polyak(state.target_policy, policy),
                           target_critic=polyak(state.target_critic, state.critic))
    return state, {"actor_loss": loss, "skipped_updates": tf.cast(skipped, tf.float32)}

  def update(self, state: TD3State, batch: Trajectory, seed, objective_fn: ObjectiveFn):
    """A critic update, then the actor update when `updates` is a multiple of `policy_delay`.

    Returns (state, metrics): critic_loss, q_mean, actor_loss (NaN where the actor was not
    updated: average it with a NaN-aware mean), skipped_updates (1.0 where a non-finite gradient
    or parameter made the critic or actor step keep its old parameters).
    """
    state, metrics = self.critic_update(state, batch, seed)

    def with_actor():
      new, m = self.actor_update(state, batch, objective_fn)
      return new, m["actor_loss"], m["skipped_updates"]

    def without_actor():
      return state, tf.constant(np.nan, metrics["critic_loss"].dtype), tf.constant(0.0)

    state, actor_loss, actor_skipped = tf.cond(state.updates % self.settings.policy_delay == 0, with_actor,
                                               without_actor)
    skipped = tf.maximum(metrics["skipped_updates"], actor_skipped)
    return state, dict(metrics, actor_loss=actor_loss, skipped_updates=skipped)

  def population_update(self, states: TD3State, batches: Trajectory, seed, objective_fn: ObjectiveFn):
    """`update` of N agents at once: states and batches stacked on a leading N axis
    (`agents.population`), one seed int32 [2] for all (the smoothing noise is drawn in one op).
    The agents update in lockstep, so the policy-delay decision is taken once, from agent 0's
    counter: a tf.cond inside vectorized_map would run both branches.

    Returns (states, metrics [N]: critic_loss, q_mean, actor_loss (NaN on steps without an actor
    update), skipped_updates)."""
    normal = tf.random.stateless_normal(tf.shape(batches.actions), seed, dtype=batches.actions.dtype)
    new, metrics = population.vectorize(lambda st, b, z: self.critic_update(st, b, None, normal=z))(
        states, batches, normal)
    actor_step = population.vectorize(lambda st, b: self.actor_update(st, b, objective_fn))

    def with_actor():
      updated, m = actor_step(new, batches)
      return updated, m["actor_loss"], m["skipped_updates"]

    def without_actor():
      size = tf.shape(metrics["critic_loss"])
      return new, tf.fill(size, tf.constant(np.nan, metrics["critic_loss"].dtype)), tf.zeros(size)

    new, actor_loss, actor_skipped = tf.cond(new.updates[0] % self.settings.policy_delay == 0, with_actor,
                                             without_actor)
    return new, dict(metrics, actor_loss=actor_loss,
                     skipped_updates=tf.maximum(metrics["skipped_updates"], actor_skipped))
