"""Tasks: what an inner problem collects experience from, behind one interface.

  task = make_task("catch" | "random_walk" | <gymnasium id>, num_envs, seed)
  env_state = task.reset(seed, num_envs)
  env_state, trajectory, episodes = task.rollout(env_state, policy_fn, policy_params, seed, length)

`policy_fn(policy_params, observations [N, O], seed [2]) -> {"actions", "log_probs",
"policy_outputs"}` is pure, so the same code collects in graph (Catch, the random walk: the
whole rollout is one `tf.while_loop`) or from Python gymnasium environments (the rollout runs as
a `tf.py_function` that steps them with a compiled policy; gradients never flow through it).
Either way the result is a `Trajectory` [num_envs, length, ...] and `Episodes` of the episodes
that ended, so inner problems and estimators never branch on where data comes from.
"""
from __future__ import annotations

from typing import Callable, Dict, List

import numpy as np
import tensorflow as tf

from tf_metarl import errors
from tf_metarl.collection import RolloutCollector, evaluate
from tf_metarl.envs import batched, classic_control
from tf_metarl.envs.catch import NUM_ACTIONS, Catch
from tf_metarl.envs.gym_envs import DISCRETE, EnvInfo, describe_env, make_env, make_vector_env
from tf_metarl.envs.random_walk import NUM_STATES, RandomWalk
from tf_metarl.meta.problem import Episodes
from tf_metarl.trajectories import Trajectory

PolicyFn = Callable[[List[tf.Tensor], tf.Tensor, tf.Tensor], Dict[str, tf.Tensor]]


class Task:
  """Interface; see the module docstring. `observation_size`, `num_actions` describe the spaces."""
  name: str
  observation_size: int
  num_actions: int

  def reset(self, seed, num_envs: int):
    raise NotImplementedError

  def rollout(self, env_state, policy_fn: PolicyFn, policy_params, seed, length: int):
    raise NotImplementedError

  def evaluate(self, greedy_fn, policy_params, episodes: int, seed: int) -> List[float]:
    """Returns of `episodes` greedy episodes (`greedy_fn(params, observations) -> actions`)."""
    return []

  def diagnostics(self, value_fn, critic_params, env_state, gamma: float) -> Dict[str, float]:
    """Task-specific measurements of the agent (e.g. value error); `value_fn(params, obs) -> V`."""
    return {}


def to_trajectory(time_major: Dict[str, tf.Tensor]) -> Trajectory:
  """A rollout's time-major dict as a batch-major `Trajectory` (nothing is truncated; log_probs
  and policy_outputs are zeros / the actions where the policy did not return them)."""
  batch = batched.batch_major(time_major)
  log_probs = batch.get("log_probs", tf.zeros_like(batch["rewards"]))
  outputs = batch.get("policy_outputs", tf.cast(batch["actions"], tf.float32)[..., None])
  return Trajectory(observations=batch["observations"], actions=batch["actions"], rewards=batch["rewards"],
                    next_observations=batch["next_observations"], terminated=batch["terminated"],
                    truncated=batch["truncated"], policy_outputs=outputs, log_probs=log_probs,
                    episode_steps=batch.get("episode_steps", tf.zeros_like(batch["rewards"])))


def _flat_episodes(time_major) -> Episodes:
  ends = tf.maximum(time_major["terminated"], time_major["truncated"])
  return Episodes(tf.reshape(time_major["episode_returns"], [-1]), tf.reshape(time_major["episode_lengths"], [-1]),
                  tf.reshape(ends, [-1]))


class BatchedTask(Task):
  """A TensorFlow-native batched environment (`envs.batched` protocol); everything in graph."""

  def __init__(self, name: str, env, num_actions: int, evaluation_steps: int = 0):
    self.name, self.env, self.num_actions = name, env, int(num_actions)
    self.observation_size = int(env.observation_size)
    self._counting = batched.EpisodeCounting(env)
    self.evaluation_steps = int(evaluation_steps)
    self._greedy_returns = tf.function(self._greedy_returns_graph)
    # A recording.EpisodeRecorder (meta_train --record), attached before the first trace: every
    # rollout is then handed to it from the graph (a tf.py_function; stateful, so tf.function
    # runs the taps in program order, which is collection order). Not under XLA.
    self.recorder = None

  @property
  def env_info(self) -> EnvInfo:
    """The spaces a recording of this task declares (its gymnasium twin's, with this instance's sizes)."""
    if not self.num_actions:  # continuous: a classic-control id, whose twin describes it
      return describe_env(self.name)
    return EnvInfo(self.name, (self.observation_size,), DISCRETE, num_actions=self.num_actions,
                   max_episode_steps=self.evaluation_steps or None)

  def reset(self, seed, num_envs: int):
    if self.recorder is not None:  # the copies restart: what they were in ends here
      tf.py_function(self.recorder.end_open_episodes, [], [])
    return self._counting.reset(seed, num_envs)

  def rollout(self, env_state, policy_fn, policy_params, seed, length: int):
    params = [tf.stop_gradient(p) for p in policy_params]  # collection is never differentiated
    policy = lambda observations, s: policy_fn(params, observations, s)
    env_state, time_major = batched.rollout(self._counting, env_state, policy, seed, length)
    trajectory = to_trajectory(time_major)
    if self.recorder is not None:
      tf.py_function(lambda *fields: self.recorder.add(Trajectory(*[f.numpy() for f in fields])), list(trajectory), [])
    return env_state, trajectory, _flat_episodes(time_major)

  def _greedy_returns_graph(self, greedy_fn, policy_params, episodes: int, seed):
    """Each copy's first episode (copies that do not finish within `evaluation_steps` score 0)."""
    state = self._counting.reset(seed, episodes)
    policy = lambda observations, s: greedy_fn(policy_params, observations)
    _, out = batched.rollout(self._counting, state, policy, seed, self.evaluation_steps)
    ends = tf.maximum(out["terminated"], out["truncated"]) > 0
    first = tf.logical_and(ends, tf.equal(tf.cumsum(tf.cast(ends, tf.int32), axis=0), 1))
    return tf.reduce_sum(tf.where(first, out["episode_returns"], 0.0), axis=0)

  def evaluate(self, greedy_fn, policy_params, episodes: int, seed: int) -> List[float]:
    if not self.evaluation_steps or episodes <= 0:
      return []
    return self._greedy_returns(greedy_fn, policy_params, episodes, tf.constant([seed % (2**31), 7])).numpy().tolist()


class RandomWalkTask(BatchedTask):
  """The non-stationary random walk: no episodic score; its diagnostic is the critic's RMS error
  over the 5 states against the true values of the reward phase in force."""

  def __init__(self):
    super().__init__("random_walk", RandomWalk(), num_actions=1)

  def diagnostics(self, value_fn, critic_params, env_state, gamma: float):
    values = value_fn(critic_params, tf.eye(NUM_STATES)).numpy()
    truth = RandomWalk.true_values(gamma, int(env_state.env.total_steps[0].numpy()))
    return {"charts/value_error": float(np.sqrt(np.mean((values - truth) ** 2)))}


class GymTask(Task):
  """A gymnasium environment: Python copies stepped inside a `tf.py_function`.

  The copies live in this object, so `env_state` is a placeholder and episodes in progress are
  not checkpointed (a resumed run starts fresh episodes). `reset(seed)` starts new episodes in
  every copy, copy i seeded from (seed, i) (a randomised family draws its tasks there).
  `continuous`: also accept continuous actions (clipped to the bounds for the environment and
  recorded as sampled; `num_actions` is then 0 and `action_dim` their size). `env_kwargs` go to
  every copy's constructor (e.g. a family's `randomize` ranges).
  """

  def __init__(self, env_id: str, num_envs: int, seed: int, continuous: bool = False, env_kwargs=None):
    info = describe_env(env_id)
    if info.action_kind != DISCRETE and not continuous:
      raise errors.IncompatibleSpaceError(
          f"online meta-gradient methods need discrete actions; {env_id} has continuous actions")
    self.name, self.num_envs, self.env_info = env_id, int(num_envs), info
    self.recorder = None  # a recording.EpisodeRecorder (meta_train --record)
    self.observation_size = int(np.prod(info.observation_shape))
    self.num_actions = int(info.num_actions or 0)
    self.action_dim = info.action_dim
    self._outputs = self.num_actions or 2 * self.action_dim  # logits, or Gaussian (mean, log std)
    self.collector = RolloutCollector(make_vector_env(env_id, num_envs, seed, **(env_kwargs or {})), seed)
    self.eval_env = make_env(env_id, **(env_kwargs or {}))
    self._compiled = {}

  def reset(self, seed, num_envs: int):
    if num_envs != self.num_envs:
      raise errors.ConfigError(f"{self.name}: built for {self.num_envs} copies, asked for {num_envs}")

    def reset_copies(seed_value):
      if self.recorder is not None:  # the copies restart: what they were in ends here
        self.recorder.end_open_episodes()
      self.collector.reset((int(seed_value[0]) * 1_000_003 + int(seed_value[1])) % (2**31))
      return np.int32(0)

    if seed is None:  # the copies as they are (reset when this task was built)
      return tf.zeros([], tf.int32)
    state = tf.py_function(reset_copies, [tf.cast(seed, tf.int32)], tf.int32)
    state.set_shape([])
    return state

  def _compiled_fn(self, fn):
    if fn not in self._compiled:
      self._compiled[fn] = tf.function(fn)
    return self._compiled[fn]

  def rollout(self, env_state, policy_fn, policy_params, seed, length: int):
    act = self._compiled_fn(policy_fn)
    num_params = len(policy_params)

    def collect(seed_value, *params):
      counter = [0]

      def act_numpy(observations):
        step_seed = tf.stack([seed_value[0], seed_value[1] * 100_003 + counter[0]])
        counter[0] += 1
        return {k: v.numpy() for k, v in act(list(params[:num_params]), tf.constant(observations), step_seed).items()}
      trajectory, stats = self.collector.collect(act_numpy, length)
      if self.recorder is not None:
        self.recorder.add(trajectory)
      return tuple(trajectory) + stats.per_step(self.num_envs, length)

    action_dtype = tf.int32 if self.num_actions else tf.float32
    dtypes = [tf.float32, action_dtype, tf.float32, tf.float32, tf.float32, tf.float32, tf.float32, tf.float32,
              tf.float32, tf.float32, tf.int32]
    params = [tf.stop_gradient(p) for p in policy_params]  # collection is never differentiated
    with tf.control_dependencies([env_state]):  # after the reset that precedes it
      outputs = tf.py_function(collect, [tf.cast(seed, tf.int32)] + params, dtypes)
    b, t, o = self.num_envs, length, self.observation_size
    actions = [b, t] if self.num_actions else [b, t, self.action_dim]
    shapes = [[b, t, o], actions, [b, t], [b, t, o], [b, t], [b, t], [b, t, self._outputs], [b, t], [b, t], [b, t],
              [b, t]]
    for x, shape in zip(outputs, shapes):
      x.set_shape(shape)
    num_fields = len(Trajectory._fields)
    trajectory = Trajectory(*outputs[:num_fields])
    ends = tf.maximum(trajectory.terminated, trajectory.truncated)
    time_major = lambda x: tf.reshape(tf.transpose(x), [-1])  # [b, t] -> [t·b], as BatchedTask orders episodes
    episodes = Episodes(time_major(outputs[num_fields]), time_major(outputs[num_fields + 1]), time_major(ends))
    return env_state, trajectory, episodes

  def evaluate(self, greedy_fn, policy_params, episodes: int, seed: int) -> List[float]:
    greedy = self._compiled_fn(greedy_fn)
    return evaluate(self.eval_env, lambda obs: greedy(policy_params, tf.constant(obs)).numpy(), episodes, seed=seed)


def make_task(name: str, num_envs: int, seed: int, rows: int = 11, columns: int = 6,
              continuous: bool = False) -> Task:
  """`catch` (rows × columns), `random_walk`, a discrete-action TensorFlow-native id (e.g.
  `tf_metarl/CartPole-v1`: collected in graph), or any discrete-action gymnasium id.
  `continuous`: also accept continuous-action ids (actions clipped to the bounds for the
  environment and recorded as sampled; `num_actions` is then 0)."""
  if name == "catch":
    return BatchedTask("catch", Catch(rows, columns), NUM_ACTIONS, evaluation_steps=rows - 1)
  if name == "random_walk":
    return RandomWalkTask()
  if classic_control.is_native(name):
    env = classic_control.make_native(name)
    if not env.discrete and continuous:
      return BatchedTask(name, batched.ClippedActions(env, env.action_low, env.action_high), 0,
                         evaluation_steps=env.max_episode_steps)
    if not env.discrete:
      raise errors.IncompatibleSpaceError(
          f"online meta-gradient methods need discrete actions; {name} has continuous actions")
    return BatchedTask(name, env, env.num_actions, evaluation_steps=env.max_episode_steps)
  return GymTask(name, num_envs, seed, continuous=continuous)
