"""Exported tf_metarl objectives as the losses of TF-Agents agents.

This module imports only TensorFlow and TF-Agents, never the rest of tf_metarl: it runs in the
TF-Agents environment (`make tf-agents-env`: TF-Agents 0.19, its last release, with the
TensorFlow 2.15 and TensorFlow Probability 0.23 it pins, which cannot be installed beside
tf_metarl's TensorFlow 2.21), with `TF_USE_LEGACY_KERAS=1` set before TensorFlow is imported
(TF-Agents' networks are Keras 2). The export is read with `tf.saved_model.load` alone; its
`serving_default` signature is the loss, and gradients flow through it into the agent's networks.

- `LearnedObjectiveTd3Agent`: a `Td3Agent` whose actor loss is an exported off-policy objective
  (MetaGenRL's L_α). It trains on replayed sequences, not pairs: pass `[B, T + 1]` experience
  (`replay_buffer.as_dataset(num_steps=T + 1)`), collected with its `collect_policy`, which
  records each step's index within its episode (`policy_info["episode_step"]`) because L_α reads
  the time within the episode. The critics keep TD3's own loss, on every transition of the
  sequences that does not cross an episode boundary.
- `LearnedObjectivePPOAgent`: a `PPOAgent` whose `get_loss` is an exported on-policy objective
  (PPO's, FRODO's, or any export whose inputs are among log-probabilities, entropies, values,
  rewards and observations). If the objective does not train the critic itself, TF-Agents' value
  loss is added. (EPG's losses also read the policy's outputs and memory unit: not supported.)

Mapping of TF-Agents' batched data `[B, T]` onto the objective's named inputs (tf_metarl's
conventions: `docs/ARCHITECTURE.md`, `objectives/base.py`):
  rewards, discounts   the reward after the step's action and the next step's discount
                       (0 at termination, 1 at truncation);
  episode_ends         1 where the next step is LAST, at the between-episode step (LAST → FIRST)
                       and where the window ends (so no return reaches past what was sampled);
  values, next_values  V(s_t) and V(s'_t) (PPO: the value network; TD3: Q1(s, π(s)), held constant);
  time                 the episode step over `episode_step_limit`, clipped to [0, 1];
  observations         the observation, flattened to [B, T, O] (PPO).
Steps the data cannot say anything about (the between-episode step; PPO's last step) get weight 0
in the mean of the objective's per-step losses.
"""
from __future__ import annotations

import json
import os
from typing import Iterable

import tensorflow as tf
from tf_agents.agents import data_converter, tf_agent
from tf_agents.agents.ppo import ppo_agent, ppo_utils
from tf_agents.agents.td3 import td3_agent
from tf_agents.networks import network
from tf_agents.policies import tf_policy
from tf_agents.trajectories import policy_step
from tf_agents.trajectories import time_step as ts
from tf_agents.utils import common

# Export formats this adapter reads (the "format" field of the export's metadata; tf_metarl's
# `export/saved_model.FORMAT`). A newer export is refused rather than misread.
SUPPORTED_FORMATS = ("tf_metarl.objective/1",)
OFF_POLICY_INPUTS = frozenset({"rewards", "discounts", "episode_ends", "values", "next_values", "time", "actions",
                               "behaviour_actions"})
ON_POLICY_INPUTS = frozenset({"rewards", "discounts", "episode_ends", "values", "next_values", "log_probs",
                              "behaviour_log_probs", "entropies", "observations"})


class ExportError(ValueError):
  """An export this adapter cannot use; the message is one line naming the export and why."""


def _version_dir(path: str) -> str:
  """`path` itself if it is a SavedModel, else its highest integer version (TF Serving's layout)."""
  if not os.path.isdir(path):
    raise ExportError(f"{path}: no such export directory")
  if os.path.exists(os.path.join(path, "saved_model.pb")):
    return path
  versions = sorted(int(d) for d in os.listdir(path) if d.isdigit() and os.path.isdir(os.path.join(path, d)))
  if not versions:
    raise ExportError(f"{path}: not a SavedModel and holds no integer version directory")
  return os.path.join(path, str(versions[-1]))


class ExportedObjective:
  """An exported objective loaded with TensorFlow alone.

  `per_step(inputs)`: float32 [B, T] from named float32 inputs ([B, T], or [B, T, A] for actions),
  differentiable in the inputs. `metadata`: the export's assets/objective.json.
  """

  def __init__(self, path: str):
    self.path = _version_dir(path)
    try:
      self._module = tf.saved_model.load(self.path)
    except (OSError, ValueError, tf.errors.OpError) as e:
      first_line = (str(e).strip().splitlines() or [type(e).__name__])[0]
      raise ExportError(f"{self.path}: cannot be loaded as a SavedModel ({first_line})") from None
    if not hasattr(self._module, "get_metadata") or "serving_default" not in self._module.signatures:
      raise ExportError(f"{self.path}: not a tf_metarl objective (no get_metadata or serving_default)")
    self.metadata = json.loads(self._module.get_metadata()["metadata"].numpy().decode())
    fmt = self.metadata.get("format")
    if fmt not in SUPPORTED_FORMATS:
      raise ExportError(f"{self.path}: export format {fmt!r} is not one this adapter reads "
                        f"({', '.join(SUPPORTED_FORMATS)}); use the adapter of the tf_metarl that wrote it")
    self._signature = self._module.signatures["serving_default"]
    self.input_names = tuple(sorted(self._signature.structured_input_signature[1]))
    # TensorFlow 2.15 cannot differentiate an eager call of a loaded function that holds variables
    # ("a variable without handle data"), nor an eager call of a tf.function that was traced
    # inside another one first; its own tf.function for eager calls it can.
    self._eager_per_step = tf.function(lambda inputs: self._signature(**inputs)["per_step"], reduce_retracing=True)

  @property
  def trains_critic(self) -> bool:
    return bool(self.metadata.get("trains_critic", False))

  def require(self, learner: str, available: Iterable[str], agent: str, time_step_spec, action_spec) -> None:
    """Refuses, in one line, an objective `agent` cannot feed or that was made for other spaces."""
    if self.metadata.get("learner") != learner:
      raise ExportError(f"{self.path}: a {self.metadata.get('learner')} objective ({self.metadata.get('kind')}) "
                        f"cannot be the loss of a {agent} agent, which needs a {learner} objective")
    missing = sorted(set(self.input_names) - set(available))
    if missing:
      raise ExportError(f"{self.path}: the objective reads {', '.join(missing)}, which a {agent} agent does not "
                        f"provide (it provides {', '.join(sorted(available))})")
    action = tf.nest.flatten(action_spec)[0]
    action_kind = "continuous" if action.dtype.is_floating else "discrete"
    kinds = self.metadata.get("action_kinds", [])
    if action_kind not in kinds:
      raise ExportError(f"{self.path}: the objective was made for {' or '.join(kinds)} actions, not {action_kind}")
    constraints = self.metadata.get("constraints", {})
    sizes = {"observation_dim": int(tf.nest.flatten(time_step_spec.observation)[0].shape.num_elements()),
             "action_dim": int(action.shape.num_elements()) if action_kind == "continuous" else None}
    for name, size in sizes.items():
      if constraints.get(name) is not None and size is not None and constraints[name] != size:
        raise ExportError(f"{self.path}: the objective was made for {name} {constraints[name]}, the agent's is {size}")

  def per_step(self, inputs) -> tf.Tensor:
    inputs = {n: tf.cast(inputs[n], tf.float32) for n in self.input_names}
    if tf.inside_function():
      return self._signature(**inputs)["per_step"]
    return self._eager_per_step(inputs)


def _masked_mean(per_step, weights):
  weights = tf.cast(weights, per_step.dtype)
  return tf.reduce_sum(per_step * weights) / tf.maximum(tf.reduce_sum(weights), 1.0)


def _flat_observations(observation):
  """[B, T, ...] -> [B, T, O] (float32), as the objectives' `observations` input."""
  x = tf.cast(tf.nest.flatten(observation)[0], tf.float32)
  return tf.reshape(x, tf.concat([tf.shape(x)[:2], [-1]], axis=0))


def _merge_batch_time(x):
  """[B, T, ...] -> [B·T, ...] (TF-Agents' DDPG/TD3 networks accept one outer dimension only)."""
  return tf.reshape(x, tf.concat([[-1], tf.shape(x)[2:]], axis=0))


def _split_batch_time(x, like):
  return tf.reshape(x, tf.concat([tf.shape(like)[:2], tf.shape(x)[1:]], axis=0))


class EpisodeStepPolicy(tf_policy.TFPolicy):
  """Acts like `policy` and records each step's index within its episode in
  `policy_info["episode_step"]` (int32; 0 at the first step). The count is the policy state,
  which TF-Agents resets to 0 at every FIRST step (`automatic_state_reset`)."""

  def __init__(self, policy: tf_policy.TFPolicy, name=None):
    spec = tf.TensorSpec([], tf.int32, name="episode_step")
    super().__init__(policy.time_step_spec, policy.action_spec, policy_state_spec=spec,
                     info_spec={"episode_step": spec}, clip=False, name=name)
    self._wrapped = policy

  def _variables(self):
    return self._wrapped.variables()

  def _action(self, time_step, policy_state, seed):
    step = self._wrapped.action(time_step, (), seed)
    return policy_step.PolicyStep(step.action, policy_state + 1, {"episode_step": policy_state})


class LearnedObjectiveTd3Agent(td3_agent.Td3Agent):
  """TF-Agents TD3 whose actor loss is an exported off-policy objective (see the module docstring).

  Args: those of `Td3Agent`, plus
    objective: an `ExportedObjective` or the path of an export.
    episode_step_limit: the environment's step limit (the objective's `time` input is the episode
      step divided by it).
  """

  def __init__(self, time_step_spec, action_spec, actor_network, critic_network, actor_optimizer, critic_optimizer,
               *, objective, episode_step_limit: int, **td3_kwargs):
    super().__init__(time_step_spec, action_spec, actor_network, critic_network, actor_optimizer, critic_optimizer,
                     **td3_kwargs)
    self._objective = objective if isinstance(objective, ExportedObjective) else ExportedObjective(objective)
    self._objective.require("off_policy", OFF_POLICY_INPUTS, "TD3", time_step_spec, action_spec)
    if episode_step_limit <= 0:
      raise ValueError(f"episode_step_limit must be positive, got {episode_step_limit}")
    self._episode_step_limit = float(episode_step_limit)
    # TFAgent derives the collect data spec and the data contexts from the collect policy: derive
    # them again from the step-counting one, with sequences of any length instead of TD3's pairs.
    tf_agent.TFAgent.__init__(self, time_step_spec, action_spec, self._policy, EpisodeStepPolicy(self._collect_policy),
                              train_sequence_length=None, debug_summaries=self._debug_summaries,
                              summarize_grads_and_vars=self._summarize_grads_and_vars,
                              train_step_counter=self.train_step_counter)
    self._as_transition = data_converter.AsTransition(self.data_context, squeeze_time_dim=False)

  def _train(self, experience, weights=None):
    time_steps, policy_steps, next_time_steps = self._as_transition(experience)  # [B, T]
    # A LAST step's successor is the next episode's first step: not a transition.
    valid = tf.cast(~time_steps.is_last(), tf.float32)
    if weights is not None:
      valid *= tf.cast(weights, tf.float32)[:, None]
    critic_variables = list({id(v): v for v in self._critic_network_1.trainable_variables +
                             self._critic_network_2.trainable_variables}.values())
    with tf.GradientTape(watch_accessed_variables=False) as tape:
      tape.watch(critic_variables)
      flat_valid = _merge_batch_time(valid)
      critic_loss = self.critic_loss(tf.nest.map_structure(_merge_batch_time, time_steps),
                                     _merge_batch_time(policy_steps.action),
                                     tf.nest.map_structure(_merge_batch_time, next_time_steps),
                                     weights=flat_valid * tf.cast(tf.size(flat_valid), tf.float32) /
                                     tf.maximum(tf.reduce_sum(flat_valid), 1.0),
                                     training=True)
    tf.debugging.check_numerics(critic_loss, "Critic loss is inf or nan.")
    self._apply_gradients(tape.gradient(critic_loss, critic_variables), critic_variables, self._critic_optimizer)

    actor_variables = self._actor_network.trainable_variables
    with tf.GradientTape(watch_accessed_variables=False) as tape:
      tape.watch(actor_variables)
      actor_loss = self.actor_loss(time_steps, valid, training=True, behaviour_actions=policy_steps.action,
                                   next_time_steps=next_time_steps,
                                   episode_steps=policy_steps.info["episode_step"])
    tf.debugging.check_numerics(actor_loss, "Actor loss is inf or nan.")
    # Differentiated here, not inside the cond as Td3Agent does: a cond branch that captures the
    # loaded signature's call loses its variables' handle data, and the gradient fails.
    actor_gradients = tape.gradient(actor_loss, actor_variables)

    def optimize_actor():
      self._apply_gradients(actor_gradients, actor_variables, self._actor_optimizer)
      return tf.no_op()

    tf.cond(tf.equal(tf.math.mod(self.train_step_counter, self._actor_update_period), 0), optimize_actor, tf.no_op)
    self.train_step_counter.assign_add(1)
    self._update_target()
    return tf_agent.LossInfo(actor_loss + critic_loss, td3_agent.Td3Info(actor_loss, critic_loss))

  def actor_loss(self, time_steps, weights=None, training=False, *, behaviour_actions=None, next_time_steps=None,
                 episode_steps=None):
    """The objective's mean per-step loss over `[B, T]` sequences; `weights` [B, T] (0 drops a step)."""
    if next_time_steps is None or episode_steps is None or behaviour_actions is None:
      raise ValueError("LearnedObjectiveTd3Agent's actor loss reads whole sequences: call train() with [B, T + 1] "
                       "experience collected by its collect_policy")
    observations, next_observations = time_steps.observation, next_time_steps.observation

    def policy(obs):
      actions, _ = self._actor_network(_merge_batch_time(obs), training=training)
      return _split_batch_time(actions, obs)

    def q1(obs, actions):
      q, _ = self._critic_network_1((_merge_batch_time(obs), _merge_batch_time(actions)), training=False)
      return tf.reshape(q, tf.shape(obs)[:2])

    actions = policy(observations)
    ends = time_steps.is_last() | next_time_steps.is_last()
    inputs = {
        "rewards": next_time_steps.reward,
        "discounts": next_time_steps.discount,
        "episode_ends": tf.cast(ends, tf.float32),
        "values": tf.stop_gradient(q1(observations, actions)),
        "next_values": tf.stop_gradient(q1(next_observations, policy(next_observations))),
        "time": tf.clip_by_value(tf.cast(episode_steps, tf.float32) / self._episode_step_limit, 0.0, 1.0),
        "actions": actions,
        "behaviour_actions": behaviour_actions,
    }
    weights = tf.ones_like(inputs["rewards"]) if weights is None else weights
    return _masked_mean(self._objective.per_step(inputs), weights)


class LearnedObjectivePPOAgent(ppo_agent.PPOAgent):
  """TF-Agents PPO whose loss is an exported on-policy objective (see the module docstring).

  Args: those of `PPOAgent`, plus `objective`: an `ExportedObjective` or the path of an export.
  TF-Agents' own returns and advantages are ignored: the objective computes its own from rewards
  and values.
  """

  def __init__(self, time_step_spec, action_spec, *, objective, **ppo_kwargs):
    super().__init__(time_step_spec, action_spec, **ppo_kwargs)
    self._objective = objective if isinstance(objective, ExportedObjective) else ExportedObjective(objective)
    self._objective.require("on_policy", ON_POLICY_INPUTS, "PPO", time_step_spec, action_spec)

  def _loss(self, experience, weights=None, training=False):
    """`agent.loss(experience)`: the loss one epoch of `train` descends, on `[B, T]` experience
    (PPOAgent itself does not implement it); prepared as `PPOAgent._train` prepares it."""
    processed = self._as_trajectory(experience)
    if self._compute_value_and_advantage_in_train:
      processed = self._preprocess(processed)
    mask = ppo_utils.make_trajectory_mask(processed)
    weights = mask if weights is None else mask * weights
    info = processed.policy_info
    old_distribution = ppo_utils.distribution_from_spec(
        self._action_distribution_spec, info["dist_params"],
        legacy_distribution_network=isinstance(self._actor_net, network.DistributionNetwork))
    behaviour_log_probs = common.log_probability(old_distribution, processed.action, self.action_spec)
    time_steps = ts.TimeStep(step_type=processed.step_type, reward=processed.reward, discount=processed.discount,
                             observation=processed.observation)
    return self.get_loss(time_steps, processed.action, behaviour_log_probs, info["return"], info["advantage"],
                         info["dist_params"], weights, self.train_step_counter, debug_summaries=False,
                         old_value_predictions=info["value_prediction"], training=training)

  def get_loss(self, time_steps, actions, act_log_probs, returns, normalized_advantages,
               action_distribution_parameters, weights, train_step, debug_summaries, old_value_predictions=None,
               training=False):
    batch_size = tf.shape(time_steps.step_type)[0]
    distribution = self._collect_policy._distribution(  # pylint: disable=protected-access (as PPOAgent.get_loss)
        time_steps, self._collect_policy.get_initial_state(batch_size), training=training).action
    values, _ = self._value_net(time_steps.observation, step_type=time_steps.step_type, training=training)
    steps = tf.shape(values)[1]
    is_last = time_steps.is_last()
    next_is_last = tf.concat([is_last[:, 1:], tf.ones_like(is_last[:, :1])], axis=1)
    # The window's last step has no next observation (its weight is 0); the one before it
    # bootstraps from V(s_{T-1}), as TF-Agents' own returns do.
    window_end = tf.range(steps)[None, :] >= steps - 2
    inputs = {
        "rewards": time_steps.reward,
        "discounts": time_steps.discount,
        "episode_ends": tf.cast(is_last | next_is_last | window_end, tf.float32),
        "values": values,
        "next_values": tf.stop_gradient(tf.concat([values[:, 1:], values[:, -1:]], axis=1)),
        "log_probs": common.log_probability(distribution, actions, self.action_spec),
        "behaviour_log_probs": tf.stop_gradient(act_log_probs),
        "entropies": common.entropy(distribution, self.action_spec),
        "observations": _flat_observations(time_steps.observation),
    }
    objective_loss = _masked_mean(self._objective.per_step(inputs), weights)
    value_loss = tf.zeros_like(objective_loss)
    if not self._objective.trains_critic:
      value_loss = self.value_estimation_loss(time_steps, returns, weights, old_value_predictions=old_value_predictions,
                                              debug_summaries=debug_summaries, training=training)
    zero = tf.zeros_like(objective_loss)
    return tf_agent.LossInfo(objective_loss + value_loss,
                             ppo_agent.PPOLossInfo(policy_gradient_loss=objective_loss, value_estimation_loss=value_loss,
                                                   l2_regularization_loss=zero, entropy_regularization_loss=zero,
                                                   kl_penalty_loss=zero, clip_fraction=zero))
