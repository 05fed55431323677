"""An actor-critic agent (stochastic policy π_θ and state-value critic V_θ) with explicit state
and a pure update: the on-policy learner's step (PPO, A2C, REINFORCE or any exported objective)
and FRODO's differentiable inner step are both `ActorCritic.update`.

The Keras models only give the networks' structure: every call substitutes parameters
(`functional_call`), so the state can be stacked for a population or differentiated through.
"""
from __future__ import annotations

from typing import Callable, Dict, NamedTuple, Optional, Tuple

import tensorflow as tf

from tf_metarl import losses, returns
from tf_metarl.agents.optimizers import apply_if_finite, clip_by_global_norm
from tf_metarl.networks.functional import functional_call
from tf_metarl.trajectories import Trajectory

# objective_fn(inputs: dict of named [B, T] tensors, see objectives.base.INPUT_DESCRIPTIONS) -> dict with "loss".
ObjectiveFn = Callable[[Dict[str, tf.Tensor]], Dict[str, tf.Tensor]]


class RolloutValues(NamedTuple):
  """V(s_t) and V(s'_t), [B, T]: the values an objective's targets are computed from."""
  values: tf.Tensor
  next_values: tf.Tensor


class ActorCriticState(NamedTuple):
  """policy, critic: lists of parameter tensors (the Keras models' trainable variables' order);
  optimizer: the functional optimizer's state over policy + critic."""
  policy: list
  critic: list
  optimizer: tuple


class ActorCritic:
  """Pure functions over `ActorCriticState` for one policy/critic architecture.

  Args:
    policy: a `networks.policies` model (categorical or Gaussian).
    critic: a `ValueCritic`.
    optimizer: an `agents.optimizers` optimizer over policy + critic parameters.
    max_grad_norm: clip the update's global gradient norm (None: no clipping).
    critic_return: (γ, λ) to regress V on λ-returns with its own loss, for objectives that do not
      train the critic; None when the objective's loss trains it.
    select_skips: skip non-finite updates with `tf.where` rather than `tf.cond` (see
      `optimizers.apply_if_finite`): for agents no meta-gradient differentiates through, trained
      as vectorised populations or under XLA.
  """

  def __init__(self, policy, critic, optimizer, max_grad_norm: Optional[float] = None,
               critic_return: Optional[Tuple[float, float]] = None, select_skips: bool = False):
    self.policy, self.critic, self.optimizer = policy, critic, optimizer
    self.max_grad_norm = max_grad_norm
    self.critic_return = critic_return
    self.select_skips = select_skips

  def init(self) -> ActorCriticState:
    """The state holding the Keras models' current parameters and a fresh optimizer state."""
    policy = [tf.convert_to_tensor(v.value) for v in self.policy.trainable_variables]
    critic = [tf.convert_to_tensor(v.value) for v in self.critic.trainable_variables]
    return ActorCriticState(policy, critic, self.optimizer.init(policy + critic))

  def policy_outputs(self, policy_params, observations):
    """Raw policy outputs [..., P] (logits, or mean and log-std)."""
    return functional_call(self.policy, policy_params, observations)

  def act(self, policy_params, observations, seed) -> Dict[str, tf.Tensor]:
    """Samples actions for observations [N, O]; seed: int32 [2]. Returns actions, log_probs [N], policy_outputs."""
    return self.act_from_outputs(self.policy_outputs(policy_params, observations), seed)

  def act_from_outputs(self, outputs, seed) -> Dict[str, tf.Tensor]:
    """`act` given the policy's outputs [N, P] (a population computes all members' outputs, then
    samples them in one op: stateless sampling has no `tf.vectorized_map` converter)."""
    return self._action_record(outputs, self.policy.sample(outputs, seed))

  def act_from_uniform(self, outputs, uniform) -> Dict[str, tf.Tensor]:
    """`act_from_outputs` with the sampling noise given (uniform in (0, 1), shaped like outputs),
    so copies can share it (common random numbers)."""
    return self._action_record(outputs, self.policy.sample_from_uniform(outputs, uniform))

  def _action_record(self, outputs, actions) -> Dict[str, tf.Tensor]:
    return {"actions": actions, "log_probs": self.policy.log_prob(outputs, actions), "policy_outputs": outputs}

  def greedy(self, policy_params, observations):
    """The policy's mode for observations [N, O]."""
    return self.policy.mode(self.policy_outputs(policy_params, observations))

  def values(self, critic_params, observations):
    return functional_call(self.critic, critic_params, observations)

  def rollout_values(self, critic_params, batch: Trajectory) -> RolloutValues:
    """The critic's V(s_t) and V(s'_t) [B, T] of a batch, to freeze targets per rollout."""
    return RolloutValues(self.values(critic_params, batch.observations),
                         self.values(critic_params, batch.next_observations))

  def rollout_targets(self, critic_params, batch: Trajectory, objective) -> Dict[str, tf.Tensor]:
    """An objective's targets for a whole rollout [B, T] (`Objective.rollout_targets`), from the
    critic's values at collection; constants."""
    values = self.rollout_values(critic_params, batch)
    inputs = {"rewards": batch.rewards, "discounts": batch.discounts, "episode_ends": batch.episode_ends,
              "rollout_values": values.values, "rollout_next_values": values.next_values}
    missing = set(objective.rollout_target_inputs) - set(inputs)
    if missing:
      raise ValueError(f"{objective.kind}.rollout_targets reads inputs the agent does not give: {sorted(missing)}")
    return tf.nest.map_structure(tf.stop_gradient, objective.rollout_targets(inputs))

  def objective_inputs(self, policy_params, critic_params, batch: Trajectory,
                       rollout_values: Optional[RolloutValues] = None) -> Dict[str, tf.Tensor]:
    """Every named objective input for a batch [B, T, ...], differentiable in the parameters.
    `rollout_values`: the values targets are computed from (default: the current critic's)."""
    outputs = self.policy_outputs(policy_params, batch.observations)
    values = self.values(critic_params, batch.observations)
    next_values = self.values(critic_params, batch.next_observations)
    if rollout_values is None:
      rollout_values = RolloutValues(values, next_values)
    return {
        "rewards": batch.rewards,
        "discounts": batch.discounts,
        "episode_ends": batch.episode_ends,
        "values": values,
        "next_values": next_values,
        "rollout_values": tf.stop_gradient(rollout_values.values),
        "rollout_next_values": tf.stop_gradient(rollout_values.next_values),
        "log_probs": self.policy.log_prob(outputs, batch.actions),
        "behaviour_log_probs": batch.log_probs,
        "entropies": self.policy.entropy(outputs),
        "observations": tf.reshape(batch.observations, tf.concat([tf.shape(batch.rewards), [-1]], 0)),
        "behaviour_actions": self.policy.action_features(batch.actions),
        "policy_outputs": self.policy.distribution_parameters(outputs),
        "memory": self.memory_inputs(policy_params, batch.rewards),
    }

  def memory_inputs(self, policy_params, like) -> tf.Tensor:
    """The policy's memory unit output repeated for each step of `like` [B, T]: [B, T, units]
    (units = 0 without a memory unit)."""
    units = getattr(self.policy, "memory_units", 0)
    if not units:
      return tf.zeros(tf.concat([tf.shape(like), [0]], 0), like.dtype)
    memory = functional_call(self.policy, policy_params, tf.zeros([1, self.policy.observation_dim], like.dtype),
                             memory=True)
    return tf.broadcast_to(memory, tf.concat([tf.shape(like), [units]], 0))

  def loss(self, policy_params, critic_params, batch: Trajectory, objective_fn: ObjectiveFn,
           rollout_values: Optional[RolloutValues] = None):
    """Returns (scalar loss, scalar metrics): the objective's loss, plus the critic's own λ-return
    regression when `critic_return` is set."""
    inputs = self.objective_inputs(policy_params, critic_params, batch, rollout_values)
    out = objective_fn(inputs)
    loss = out["loss"]
    metrics = {k: v for k, v in out.items() if v.shape.rank == 0}
    if self.critic_return is not None:
      gamma, lam = self.critic_return
      values = inputs["values"]
      targets = returns.lambda_returns(inputs["rewards"], inputs["discounts"], inputs["episode_ends"],
                                       tf.stop_gradient(values), tf.stop_gradient(inputs["next_values"]), gamma, lam)
      critic_loss = tf.reduce_mean(losses.value_regression(values, tf.stop_gradient(targets)))
      metrics["critic_loss"] = critic_loss
      loss = loss + critic_loss
    return loss, metrics

  def update(self, state: ActorCriticState, batch: Trajectory, objective_fn: ObjectiveFn,
             learning_rate=None, rollout_values: Optional[RolloutValues] = None
             ) -> Tuple[ActorCriticState, Dict[str, tf.Tensor]]:
    """One gradient step on the objective. Differentiable in anything `objective_fn` closes over
    (an enclosing tape sees through it: the inner tape records only θ). `rollout_values` freezes
    the values the objective's targets come from (see `objective_inputs`)."""
    params = list(state.policy) + list(state.critic)
    num_policy = len(state.policy)
    with tf.GradientTape(watch_accessed_variables=False) as tape:
      tape.watch(params)
      loss, metrics = self.loss(params[:num_policy], params[num_policy:], batch, objective_fn, rollout_values)
    grads = tape.gradient(loss, params, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    grads, norm = clip_by_global_norm(grads, self.max_grad_norm)
    params, opt_state, skipped = apply_if_finite(self.optimizer, params, grads, state.optimizer, learning_rate,
                                                 select=self.select_skips)
    metrics = dict(metrics, grad_norm=norm, skipped_updates=tf.cast(skipped, tf.float32))
    return ActorCriticState(params[:num_policy], params[num_policy:], opt_state), metrics
