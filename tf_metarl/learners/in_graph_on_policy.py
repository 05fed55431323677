"""The on-policy learner on a TensorFlow-native environment: a whole iteration is one graph.

Collection of all copies (`tasks.BatchedTask.rollout`, a `tf.while_loop`), then every epoch and
minibatch of `agents.ActorCritic.update` (another `tf.while_loop`), run as one `tf.function`;
Python only anneals the learning rate, logs and checkpoints between iterations. The agent, its
objective, its settings (`OnPolicyConfig`) and its update are those of `OnPolicyLearner`, so the
two paths train the same agent; this one also checkpoints the environments' state, so a resumed
run continues the same episodes. `train_agent` picks it for `tf_metarl/<id>` environments
(`envs.classic_control`).
"""
from __future__ import annotations

from typing import Dict

import tensorflow as tf

from tf_metarl.collection import EpisodeStats
from tf_metarl.envs import batched, classic_control
from tf_metarl.learners.on_policy import OnPolicyLearner
from tf_metarl.state_variables import StateVariables
from tf_metarl.tasks import BatchedTask


def _nan_masked(metrics: Dict[str, tf.Tensor]):
  """(values with NaN as 0, 1 where a value is a number) per metric, to average over updates."""
  finite = {k: tf.cast(tf.logical_not(tf.math.is_nan(v)), tf.float32) for k, v in metrics.items()}
  return {k: tf.where(finite[k] > 0, v, 0.0) for k, v in metrics.items()}, finite


class InGraphOnPolicyLearner(OnPolicyLearner):
  """`OnPolicyLearner` whose environments are TensorFlow-native batched copies (see the module
  docstring). `env_info.env_id` must be a `tf_metarl/<id>` of `envs.classic_control`."""

  def _make_environments(self):
    native = classic_control.make_native(self.env_info.env_id)
    env = native if native.discrete else batched.ClippedActions(native, native.action_low, native.action_high)
    self.task = BatchedTask(self.env_info.env_id, env, self.env_info.num_actions,
                            evaluation_steps=native.max_episode_steps)
    self.env_state = StateVariables(self.task.reset(tf.constant([self.seed % (2**31), 11]), self.config.num_envs),
                                    name="env_state")
    self._iteration_graph = tf.function(self._iteration_step, jit_compile=self.config.jit_compile)
    self._greedy_fn = self.agent.greedy  # one object, so the evaluation graph is traced once

  def checkpoint_items(self):
    return dict(super().checkpoint_items(), env_state=self.env_state)

  def restore_extra(self, checkpoint_path):
    """The environments' state is in the checkpoint: nothing to restart."""

  def _iteration_step(self, seed, learning_rate):
    """Collect, then `epochs` × `minibatches` updates. Returns (mean metrics, episodes)."""
    cfg = self.config
    rollout_seed, shuffle_seed = tf.unstack(tf.random.experimental.stateless_split(seed, num=2))
    state = self.state.read()
    env_state, trajectory, episodes = self.task.rollout(self.env_state.read(), self.agent.act, state.policy,
                                                        rollout_seed, cfg.rollout_length)
    size = cfg.num_envs // cfg.minibatches
    epoch_seeds = tf.random.experimental.stateless_split(shuffle_seed, num=cfg.epochs)

    def update(k, agent_state):
      order = tf.argsort(tf.random.stateless_uniform([cfg.num_envs], epoch_seeds[k // cfg.minibatches]))
      copies = order[(k % cfg.minibatches) * size:(k % cfg.minibatches + 1) * size]
      batch = tf.nest.map_structure(lambda x: tf.gather(x, copies), trajectory)
      agent_state, metrics = self.agent.update(agent_state, batch, self.objective, learning_rate)
      self.guard.record(metrics["skipped_updates"])
      return agent_state, _nan_masked({k: v for k, v in metrics.items() if k != "skipped_updates"})

    state, (sums, counts) = update(tf.constant(0), state)

    def body(k, agent_state, sums, counts):
      agent_state, (values, finite) = update(k, agent_state)
      return (k + 1, agent_state, tf.nest.map_structure(tf.add, sums, values),
              tf.nest.map_structure(tf.add, counts, finite))

    _, state, sums, counts = tf.while_loop(lambda k, *_: k < cfg.epochs * cfg.minibatches, body,
                                           (tf.constant(1), state, sums, counts))
    self.state.assign(state)
    self.env_state.assign(env_state)
    means = {k: tf.math.divide_no_nan(sums[k], counts[k]) + tf.where(counts[k] > 0, 0.0, float("nan")) for k in sums}
    return means, episodes

  def iteration(self):
    cfg = self.config
    self._anneal_learning_rate()
    seed = tf.cast(self.rng.make_seeds(1)[:, 0], tf.int32)
    metrics, episodes = self._iteration_graph(seed, self.learning_rate)
    self.env_steps.assign_add(cfg.num_envs * cfg.rollout_length)
    ended = episodes.finished.numpy() > 0
    stats = EpisodeStats(returns=episodes.returns.numpy()[ended].tolist(),
                         lengths=episodes.lengths.numpy()[ended].astype(int).tolist())
    metrics = {k: float(v) for k, v in metrics.items()}
    metrics["charts/learning_rate"] = float(self.learning_rate.numpy())
    return metrics, stats

  def evaluate(self, episodes: int):
    self._evaluations += 1
    return self.task.evaluate(self._greedy_fn, self.state.read().policy, episodes,
                              seed=10_000 * (self.seed + 1) + 100 * self._evaluations)
