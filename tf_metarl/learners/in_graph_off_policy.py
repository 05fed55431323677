"""The off-policy (TD3) learner on a TensorFlow-native environment: collection, replay insertion
and the TD3 updates of `graph_steps` vector steps are one compiled call.

Same agent (`agents.TD3`), objective, config and replay buffer (`learners.replay.SequenceReplay`,
whose storage is TensorFlow variables) as `OffPolicyLearner`; per vector step, inside a
`tf.while_loop`: every copy acts (uniformly random actions until `warmup_steps`, then π(s) plus
Gaussian exploration noise), the environments step (`tasks.BatchedTask.rollout` of length 1), the
step is inserted into replay, and the due updates run (`updates_per_step` per environment step,
with the same fractional credit as the gymnasium path). Python only logs, evaluates and
checkpoints between calls (and, with `--record`, writes each call's steps, read back from the
replay, to the dataset). The environments' state, the replay buffer and the update credit are
in the checkpoint, so a resumed run continues exactly. `train_agent` picks it for off-policy
objectives on `tf_metarl/<id>` environments with continuous actions.

Population (`members` > 1, `train_agent --seeds`; `learners.in_graph_population`): one replay
buffer of `members × num_envs` copies, from which member i samples only its own copies
(`SequenceReplay.sample_sequences(groups=members)`), and one `TD3.population_update` of every
member per update; the members' update counts agree, so they update in lockstep.
"""
from __future__ import annotations

import tensorflow as tf

from tf_metarl import errors
from tf_metarl.envs import batched, classic_control
from tf_metarl.learners.in_graph_on_policy import nan_masked
from tf_metarl.learners.in_graph_population import InGraphPopulation
from tf_metarl.learners.off_policy import OffPolicyLearner
from tf_metarl.state_variables import StateVariables
from tf_metarl.tasks import BatchedTask


class InGraphOffPolicyLearner(InGraphPopulation, OffPolicyLearner):
  """`OffPolicyLearner` on TensorFlow-native batched copies, for `members` agents (see the module
  docstring); `env_randomize` ({parameter: (low, high)}) trains on that randomised task family."""

  def __init__(self, env_info, objective, config, seed: int, env_randomize=None, members: int = 1):
    if env_info.action_kind != "continuous":
      raise errors.IncompatibleSpaceError(f"the off-policy learner needs continuous actions; {env_info.env_id} "
                                          "has discrete ones")
    self._init_members(members)
    self.env_randomize = dict(env_randomize or {})
    super().__init__(env_info, objective, config, seed)
    self.agent.select_skips = True  # never differentiated through; vectorised and XLA-compilable
    self._stack_members(seed)

  def _fresh_state(self, seed: int):
    """The initial state a lone agent of `seed` would start from (its networks built in the same order)."""
    policy, _, critic, _ = self._networks(seed)
    return self.agent.init([tf.convert_to_tensor(v.value) for v in policy.trainable_variables],
                           [tf.convert_to_tensor(v.value) for v in critic.trainable_variables])

  def _member_greedy(self, policy, observations):
    return self.agent.actions(policy, observations)

  def _make_environments(self):
    native = classic_control.make_native(self.env_info.env_id, randomize=self.env_randomize)
    env = batched.ClippedActions(native, native.action_low, native.action_high)
    self.task = BatchedTask(self.env_info.env_id, env, self.env_info.action_dim,
                            evaluation_steps=native.max_episode_steps)
    copies = self.members * self.config.num_envs
    self.env_state = StateVariables(self.task.reset(tf.constant([self.seed % (2**31), 13]), copies), name="env_state")
    self.update_credit = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="update_credit")
    self._call_graph = tf.function(self._call, jit_compile=self.config.jit_compile)
    self._greedy_fn = self._greedy_members  # one object, so the evaluation graph is traced once

  def checkpoint_items(self):
    return dict(super().checkpoint_items(), env_state=self.env_state, replay=self.replay,
                update_credit=self.update_credit)

  def save_extra(self, checkpoint_path):
    """The replay buffer is in the checkpoint itself."""

  def restore_extra(self, checkpoint_path):
    """Environments, replay and credit are in the checkpoint: nothing to restart. The episodes
    go on, so a recorder skips to each copy's next episode."""
    if self.recorder is not None:
      self.recorder.join_mid_episode()

  def _behaviour(self, policy_params, observations, seed, explore):
    """Warm-up: uniform in the bounds; after: each member's π(s) plus exploration noise (drawn for
    all copies in one op: stateless sampling has no `tf.vectorized_map` converter).
    policy_params: the members' stacked parameters; observations [members · num_envs, O]."""
    random_seed, noise_seed = tf.unstack(tf.random.experimental.stateless_split(seed, num=2))
    shape = [self.members * self.config.num_envs, self.env_info.action_dim]
    random_actions = self.agent.low + (self.agent.high - self.agent.low) * tf.random.stateless_uniform(shape, random_seed)
    normal = self._split_copies(tf.random.stateless_normal(shape, noise_seed))
    explore_members = self._per_member(
        lambda params, own, z: self.agent.explore(params, own, None, self.config.exploration_noise, normal=z))
    noisy = self._merge_copies(explore_members(policy_params, self._split_copies(observations), normal))
    actions = tf.where(explore, noisy, random_actions)
    return {"actions": actions, "log_probs": tf.zeros(tf.shape(actions)[:1]), "policy_outputs": actions}

  def sampled_update(self, seed):
    """A lone agent: `OffPolicyLearner.sampled_update`. A population: one `TD3.population_update`
    of every member on a batch from its own copies. Returns metrics averaged over members."""
    if self.members == 1:
      return super().sampled_update(seed)
    cfg = self.config
    sample_seed, update_seed = tf.unstack(tf.random.experimental.stateless_split(seed, num=2))
    batches = self.replay.sample_sequences(sample_seed, cfg.batch_size, cfg.sequence_length, groups=self.members)
    state, metrics = self.agent.population_update(self.state.read(), batches, update_seed, self.objective)
    self.state.assign(state)
    self.guard.record(tf.reduce_max(metrics["skipped_updates"]))
    return {k: tf.reduce_mean(v) for k, v in metrics.items()}

  def _call(self, seed):
    """`graph_steps` vector steps with their updates. Returns (metrics summed and counted over
    updates, finished-episode returns, lengths and flags [graph_steps · members · num_envs])."""
    cfg = self.config
    seeds = tf.random.experimental.stateless_split(seed, num=cfg.graph_steps)
    zero = {"critic_loss": 0.0, "q_mean": 0.0, "actor_loss": 0.0}

    def vector_step(t, sums, counts, returns, lengths, finished):
      step_seed, update_seed = tf.unstack(tf.random.experimental.stateless_split(seeds[t], num=2))
      explore = self.env_steps >= cfg.warmup_steps
      act = lambda params, observations, s: self._behaviour(params, observations, s, explore)
      env_state, trajectory, episodes = self.task.rollout(self.env_state.read(), act, self._read_members().policy,
                                                          step_seed, 1)
      self.env_state.assign(env_state)
      self.replay.insert({k: getattr(trajectory, k)[:, 0] for k in ("observations", "actions", "rewards",
                                                                    "next_observations", "terminated", "truncated",
                                                                    "episode_steps")})
      self.env_steps.assign_add(cfg.num_envs)  # each member's steps
      learning = self.env_steps >= cfg.update_start()
      credit = self.update_credit + tf.where(learning, tf.constant(cfg.updates_per_step * cfg.num_envs, tf.float64),
                                             0.0)
      due = tf.cast(tf.floor(credit), tf.int32)
      self.update_credit.assign(credit - tf.cast(due, tf.float64))

      def update(k, sums, counts):
        metrics = self.sampled_update(tf.random.experimental.stateless_fold_in(update_seed, k))  # XLA: no split
        values, finite = nan_masked({k: metrics[k] for k in zero})
        return k + 1, {k: sums[k] + values[k] for k in zero}, {k: counts[k] + finite[k] for k in zero}

      _, sums, counts = tf.while_loop(lambda k, *_: k < due, update, (tf.constant(0), sums, counts))
      return (t + 1, sums, counts, returns.write(t, episodes.returns), lengths.write(t, tf.cast(episodes.lengths, tf.float32)),
              finished.write(t, tf.cast(episodes.finished, tf.float32)))

    arrays = [tf.TensorArray(dtype, size=cfg.graph_steps, element_shape=[self.members * cfg.num_envs])
              for dtype in (tf.float32, tf.float32, tf.float32)]
    _, sums, counts, returns, lengths, finished = tf.while_loop(
        lambda t, *_: t < cfg.graph_steps, vector_step,
        (tf.constant(0), dict(zero), dict(zero), *arrays))
    return sums, counts, tf.reshape(returns.stack(), [-1]), tf.reshape(lengths.stack(), [-1]), \
        tf.reshape(finished.stack(), [-1])

  def iteration(self):
    sums, counts, returns, lengths, finished = self._call_graph(self._seed())
    if self.recorder is not None:  # train_agent --record: the call's steps, read back from the replay
      self.recorder.add(self.replay.latest(self.config.graph_steps))
    metrics = {k: float(sums[k] / counts[k]) for k in sums if float(counts[k]) > 0}
    return metrics, self._member_episodes(returns.numpy(), lengths.numpy(), finished.numpy(), metrics)
