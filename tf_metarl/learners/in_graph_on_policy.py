"""The on-policy learner on a TensorFlow-native environment: a whole iteration is one graph, for
one agent or for a population of agents (seeds) trained together.

Collection of all copies (`tasks.BatchedTask.rollout`, a `tf.while_loop`), then every epoch and
minibatch of `agents.ActorCritic.update` (another `tf.while_loop`), run as one `tf.function`;
Python only anneals the learning rate, logs and checkpoints between iterations. The agent, its
objective, its settings (`OnPolicyConfig`) and its update are those of `OnPolicyLearner`, so the
two paths train the same agent; this one also checkpoints the environments' state, so a resumed
run continues the same episodes. `train_agent` picks it for `tf_metarl/<id>` environments
(`envs.classic_control`).

Population (`members` > 1): see `learners.in_graph_population`; members may also have their own
learning rates and objective hyperparameters (`member_settings`).
"""
from __future__ import annotations

from typing import Dict

import tensorflow as tf

from tf_metarl import errors
from tf_metarl.agents.actor_critic import ActorCritic
from tf_metarl.envs import batched, classic_control
from tf_metarl.learners.in_graph_population import InGraphPopulation
from tf_metarl.learners.on_policy import (OnPolicyLearner, as_units, has_rollout_extras, make_networks,
                                          minibatch_units, minibatch_update, rollout_extras)
from tf_metarl.state_variables import StateVariables
from tf_metarl.tasks import BatchedTask


def nan_masked(metrics: Dict[str, tf.Tensor]):
  """(values with NaN as 0, 1 where a value is a number) per metric, to average over updates."""
  finite = {k: tf.cast(tf.logical_not(tf.math.is_nan(v)), tf.float32) for k, v in metrics.items()}
  return {k: tf.where(finite[k] > 0, v, 0.0) for k, v in metrics.items()}, finite


def shuffle_units(units, config, seed, members: int):
  """Every epoch's shuffle of an iteration's units ([members, units, ...], see `as_units`) at
  once: [members, epochs, units, ...]. One sort of [members, epochs, units] costs about what one
  of [members, units] does, and inside an XLA-compiled graph sorts and gathers are slow
  (measured: 12 ms per sort, 0.26 ms per gathered field), so this runs before the updates' graph."""
  orders = tf.argsort(tf.random.stateless_uniform([members, config.epochs, minibatch_units(config)], seed))
  return tf.nest.map_structure(lambda x: tf.gather(x, orders, axis=1, batch_dims=1), units)


def minibatch_updates(member_update, state, shuffled, config, members: int):
  """`epochs` × `minibatches` updates of every member: epoch e's minibatches are consecutive runs
  of `shuffled[:, e]` (from `shuffle_units`: [members, epochs, units, ...]), each applied by
  `member_update(state, batch, extras) -> (state, metrics with "skipped_updates")` over the
  stacked members. Returns (state, metric sums and counts of finite values over updates,
  float32 [epochs · minibatches]: 1 where any member's update was skipped)."""
  size = minibatch_units(config) // config.minibatches

  def update(k, agent_state):
    begin = tf.stack([0, k // config.minibatches, (k % config.minibatches) * size])

    def minibatch(x):  # tf.slice: XLA turns a strided slice with a tensor start into a slow gather (measured)
      rest = x.shape[3:].as_list()
      return tf.slice(x, tf.concat([begin, tf.zeros([len(rest)], tf.int32)], 0), [members, 1, size] + rest)[:, 0]

    batch, batch_extras = tf.nest.map_structure(minibatch, shuffled)
    agent_state, metrics = member_update(agent_state, batch, batch_extras)
    return (agent_state, tf.reduce_max(metrics["skipped_updates"]),
            nan_masked({k: v for k, v in metrics.items() if k != "skipped_updates"}))

  total = config.epochs * config.minibatches
  state, skip, (sums, counts) = update(tf.constant(0), state)
  skipped = tf.TensorArray(tf.float32, size=total, element_shape=[]).write(0, skip)

  def body(k, agent_state, skipped, sums, counts):
    agent_state, skip, (values, finite) = update(k, agent_state)
    return (k + 1, agent_state, skipped.write(k, skip), tf.nest.map_structure(tf.add, sums, values),
            tf.nest.map_structure(tf.add, counts, finite))

  _, state, skipped, sums, counts = tf.while_loop(lambda k, *_: k < total, body,
                                                  (tf.constant(1), state, skipped, sums, counts))
  return state, sums, counts, skipped.stack()


def mean_of_sums(sums, counts):
  """Per-metric means over updates from `minibatch_updates`' sums and counts (NaN: none finite)."""
  return {k: tf.reduce_mean(tf.math.divide_no_nan(sums[k], counts[k]) + tf.where(counts[k] > 0, 0.0, float("nan")))
          for k in sums}


def agent_iteration_updates(agent: ActorCritic, objective, config, state, trajectory, seed, learning_rate):
  """One agent's whole update phase of an on-policy iteration on its rollout (`trajectory`
  [num_envs, T, ...]): the objective's rollout targets where the config asks for them, then
  `epochs` × `minibatches` updates, as the learner runs them for each member. For inner problems
  that train an agent in graph (the implicit reward method). Returns (state, mean metrics,
  skipped-update flags [epochs · minibatches])."""
  extras = rollout_extras(agent, objective, state.critic, trajectory, config) if has_rollout_extras(config) else ()
  units = tf.nest.map_structure(lambda x: x[None], as_units((trajectory, extras), config))
  shuffled = shuffle_units(units, config, seed, members=1)
  one = minibatch_update(agent, objective, config, learning_rate)

  def member_update(stacked, batch, batch_extras):
    first = lambda tree: tf.nest.map_structure(lambda x: x[0], tree)
    new_state, metrics = one(first(stacked), first(batch), first(batch_extras))
    return tf.nest.map_structure(lambda x: x[None], (new_state, metrics))

  stacked, sums, counts, skipped = minibatch_updates(member_update, tf.nest.map_structure(lambda x: x[None], state),
                                                     shuffled, config, members=1)
  return tf.nest.map_structure(lambda x: x[0], stacked), mean_of_sums(sums, counts), skipped


class InGraphOnPolicyLearner(InGraphPopulation, OnPolicyLearner):
  """`OnPolicyLearner` on TensorFlow-native batched copies, for `members` agents (see the module
  docstring). `env_info.env_id` must be a `tf_metarl/<id>` of `envs.classic_control`;
  `env_randomize` ({parameter: (low, high)}) trains on that randomised task family."""

  def __init__(self, env_info, objective, config, seed: int, total_steps: int, members: int = 1,
               env_randomize=None, member_settings=None, reward_transform=None):
    self._init_members(members)
    self.env_randomize = dict(env_randomize or {})
    self.member_settings = {k: [float(v) for v in vs] for k, vs in (member_settings or {}).items()}
    for name, values in self.member_settings.items():
      if len(values) != self.members:
        raise errors.ConfigError(f"member setting {name} has {len(values)} values for {self.members} members")
    objective.with_hyperparameters(**{k: 1.0 for k in self.member_settings if k != "learning_rate"})  # names known?
    if any(v <= 0 for v in self.member_settings.get("learning_rate", [])):
      raise errors.ConfigError(f"member learning rates must be > 0, got {self.member_settings['learning_rate']}")
    self._settings = {k: tf.constant(v, tf.float32) for k, v in sorted(self.member_settings.items())}
    super().__init__(env_info, objective, config, seed, total_steps, reward_transform)
    self.agent.select_skips = True  # never differentiated through; vectorised and XLA-compilable
    self._stack_members(seed)

  def _fresh_state(self, seed: int):
    """The initial state a lone agent of `seed` would start from."""
    return ActorCritic(*make_networks(self.env_info, self.config, seed, self.memory_units), self.agent.optimizer).init()

  def _make_environments(self):
    native = classic_control.make_native(self.env_info.env_id, randomize=self.env_randomize)
    env = native if native.discrete else batched.ClippedActions(native, native.action_low, native.action_high)
    self.task = BatchedTask(self.env_info.env_id, env, self.env_info.num_actions,
                            evaluation_steps=native.max_episode_steps)
    copies = self.members * self.config.num_envs
    self.env_state = StateVariables(self.task.reset(tf.constant([self.seed % (2**31), 11]), copies), name="env_state")
    # Three graphs in one: the rollout and the updates each compile with XLA in seconds (when
    # `jit_compile`), the sorting and gathering between them run faster without it (measured).
    self._iteration_graph = tf.function(self._iteration_step)
    self._rollout_graph = tf.function(
        lambda env_state, policy, seed: self.task.rollout(env_state, self._act, policy, seed, self.config.rollout_length),
        jit_compile=self.config.jit_compile)
    self._updates_graph = tf.function(self._updates, jit_compile=self.config.jit_compile)
    self._greedy_fn = self._greedy_members  # one object, so the evaluation graph is traced once

  def checkpoint_items(self):
    return dict(super().checkpoint_items(), env_state=self.env_state)

  def restore_extra(self, checkpoint_path):
    """The environments' state is in the checkpoint: nothing to restart. Their episodes go on,
    so a recorder skips to each copy's next episode."""
    if self.recorder is not None:
      self.recorder.join_mid_episode()

  def _member_greedy(self, policy, observations):
    return self.agent.greedy(policy, observations)

  def _act(self, policy_params, observations, seed):
    """All members act: observations [members · num_envs, O] -> outputs [members · num_envs, ...].
    The members' networks run vectorised; their actions are sampled in one op: stateless sampling
    has no `tf.vectorized_map` converter (measured without XLA, 64 steps of 5 members: 23 ms
    sampled per member, 18 ms in one op)."""
    outputs = self._per_member(self.agent.policy_outputs)(policy_params, self._split_copies(observations))
    return self.agent.act_from_outputs(self._merge_copies(outputs), seed)

  def _member(self, settings, learning_rate):
    """(objective, learning rate) of one member given its `member_settings` (scalars): the shared
    objective with its hyperparameters replaced, the rate scaled as the shared one is annealed."""
    objective = self.objective
    overrides = {k: v for k, v in settings.items() if k != "learning_rate"}
    if overrides:
      objective = objective.with_hyperparameters(**overrides)
    if "learning_rate" in settings:
      learning_rate = settings["learning_rate"] * learning_rate / self.config.learning_rate
    return objective, learning_rate

  def _iteration_step(self, seed, learning_rate):
    """Collect, then `epochs` × `minibatches` updates of every member. Returns (metrics averaged
    over updates and members, episodes, and, when a recorder is attached at the first call, the
    rollout [members · num_envs, T, ...] with the environment's rewards; else ())."""
    cfg, members = self.config, self.members
    rollout_seed, shuffle_seed = tf.unstack(tf.random.experimental.stateless_split(seed, num=2))
    state = self._read_members()
    env_state, trajectory, episodes = self._rollout_graph(self.env_state.read(), state.policy, rollout_seed)
    recorded = trajectory if self.recorder is not None else ()  # decided when traced: see `iteration`
    if self.reward_transform is not None:  # a learned reward; episodes keep the environment's returns
      trajectory = self.reward_transform(trajectory)
    trajectory = tf.nest.map_structure(self._split_copies, trajectory)
    extras = ()
    if has_rollout_extras(cfg):
      extras = self._per_member(lambda critic, rollout, settings: rollout_extras(
          self.agent, self._member(settings, learning_rate)[0], critic, rollout, cfg))(
              state.critic, trajectory, self._settings)
    units = as_units((trajectory, extras), cfg, leading_axes=1)
    shuffled = shuffle_units(units, cfg, shuffle_seed, members)
    state, sums, counts, skipped = self._updates_graph(state, shuffled, learning_rate)
    for k in range(cfg.epochs * cfg.minibatches):
      self.guard.record(skipped[k])
    self._assign_members(state)
    self.env_state.assign(env_state)
    return mean_of_sums(sums, counts), episodes, recorded

  def _updates(self, state, shuffled, learning_rate):
    """Every member's `minibatch_updates`, in a separate graph so that XLA (`jit_compile`)
    compiles the updates, which it does in seconds, without the rollout."""
    cfg = self.config

    def one_member(agent_state, batch, batch_extras, settings):
      objective, rate = self._member(settings, learning_rate)
      return minibatch_update(self.agent, objective, cfg, rate)(agent_state, batch, batch_extras)

    member_update = self._per_member(one_member)
    return minibatch_updates(lambda agent_state, batch, extras: member_update(agent_state, batch, extras,
                                                                              self._settings),
                             state, shuffled, cfg, self.members)

  def iteration(self):
    cfg = self.config
    self._anneal_learning_rate()
    seed = tf.cast(self.rng.make_seeds(1)[:, 0], tf.int32)
    metrics, episodes, recorded = self._iteration_graph(seed, self.learning_rate)
    if self.recorder is not None:  # train_agent --record
      if not recorded:
        raise RuntimeError("a recorder was attached after the iteration graph was traced; attach it before the "
                           "first iteration")
      self.recorder.add(tf.nest.map_structure(lambda x: x.numpy(), recorded))
    self.env_steps.assign_add(cfg.num_envs * cfg.rollout_length)
    metrics = {k: float(v) for k, v in metrics.items()}
    metrics["charts/learning_rate"] = float(self.learning_rate.numpy())
    stats = self._member_episodes(episodes.returns.numpy(), episodes.lengths.numpy(), episodes.finished.numpy(),
                                  metrics)
    return metrics, stats
