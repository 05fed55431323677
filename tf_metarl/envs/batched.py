"""In-graph rollouts for TensorFlow-native batched environments (Catch, the random walk).

An environment here is an object with `reset(seed, batch_size) -> state`, `observe(state) ->
[B, O]` and `step_autoreset(state, actions, seed) -> (state, true next observations, rewards,
terminated[, info])`, all pure TensorFlow, so a whole rollout of many copies is one
`tf.while_loop`. An optional fifth element `info` is a dict of [B] tensors recorded per step;
environments with time limits put `truncated` (bool [B]) there, and autoreset copies that
terminated or were truncated.
"""
from __future__ import annotations

from typing import Callable, Dict, NamedTuple, Tuple, Union

import tensorflow as tf

# policy(observations [B, O], seed [2]) -> actions [B], or a dict with "actions" and any other
# [B, ...] outputs to record (e.g. "log_probs", "policy_outputs").
Policy = Callable[[tf.Tensor, tf.Tensor], Union[tf.Tensor, Dict[str, tf.Tensor]]]


def _step(env, state, actions, seed):
  out = env.step_autoreset(state, actions, seed)
  return out if len(out) == 5 else tuple(out) + ({},)


def _float_flags(info):
  """`truncated` is recorded as float32, like `terminated`."""
  return {k: tf.cast(v, tf.float32) if k == "truncated" else v for k, v in info.items()}


def rollout(env, state, policy: Policy, seed: tf.Tensor, length: int) -> Tuple[object, Dict[str, tf.Tensor]]:
  """Runs `length` steps of every copy in graph.

  Returns:
    (final state, dict of time-major [T, B, ...] tensors: observations, rewards,
    next_observations, terminated (float32), every output of the policy (at least actions)
    and every `info` entry of the environment).
  """
  seeds = tf.random.experimental.stateless_split(seed, num=2 * length)
  observations = env.observe(state)
  first = policy(observations, seeds[0])
  first = first if isinstance(first, dict) else {"actions": first}
  _, _, _, _, first_info = _step(env, state, first["actions"], seeds[1])
  specs = dict(observations=observations.dtype, rewards=tf.float32, next_observations=tf.float32,
               terminated=tf.float32, **{k: v.dtype for k, v in first.items()},
               **{k: v.dtype for k, v in _float_flags(first_info).items()})
  arrays = {k: tf.TensorArray(dtype, size=length) for k, dtype in specs.items()}

  def body(t, state, arrays):
    observations = env.observe(state)
    out = policy(observations, seeds[2 * t])
    out = out if isinstance(out, dict) else {"actions": out}
    state, next_observations, rewards, terminated, info = _step(env, state, out["actions"], seeds[2 * t + 1])
    values = dict(observations=observations, rewards=rewards, next_observations=next_observations,
                  terminated=tf.cast(terminated, tf.float32), **out, **_float_flags(info))
    return t + 1, state, {k: arrays[k].write(t, values[k]) for k in arrays}

  _, state, arrays = tf.while_loop(lambda t, *_: t < length, body, (tf.constant(0), state, arrays))
  return state, {k: v.stack() for k, v in arrays.items()}


def batch_major(time_major: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
  """[T, B, ...] rollout dict -> [B, T, ...] batch with `discounts` (0 after terminations) and
  `episode_ends` (terminations and truncations) added; `truncated` is zeros where the environment
  has no time limit."""
  out = {k: tf.transpose(v, [1, 0] + list(range(2, v.shape.rank))) for k, v in time_major.items()}
  out.setdefault("truncated", tf.zeros_like(out["terminated"]))
  out["discounts"] = 1.0 - out["terminated"]
  out["episode_ends"] = tf.maximum(out["terminated"], out["truncated"])
  return out


class CountedState(NamedTuple):
  """An environment's state with per-copy running episode return (float32 [B]) and length (int32 [B])."""
  env: object
  returns: tf.Tensor
  lengths: tf.Tensor


class EpisodeCounting:
  """Wraps a batched environment to report finished episodes: `info["episode_returns"]` and
  `info["episode_lengths"]` hold an episode's return and length at the step it ends, terminated
  or truncated (else 0); `info["episode_steps"]` each step's index within its episode;
  `info["truncated"]` is always present (all False without a time limit)."""

  def __init__(self, env):
    self.env = env

  def reset(self, seed, batch_size: int) -> CountedState:
    return CountedState(self.env.reset(seed, batch_size), tf.zeros([batch_size]), tf.zeros([batch_size], tf.int32))

  def observe(self, state: CountedState):
    return self.env.observe(state.env)

  def step_autoreset(self, state: CountedState, actions, seed):
    inner, next_observations, rewards, terminated, info = _step(self.env, state.env, actions, seed)
    returns, lengths = state.returns + rewards, state.lengths + 1
    truncated = info.get("truncated", tf.zeros_like(terminated))
    ended = terminated | truncated
    info = dict(info, episode_returns=tf.where(ended, returns, 0.0), episode_lengths=tf.where(ended, lengths, 0),
                episode_steps=tf.cast(state.lengths, tf.float32),  # this step's index within its episode
                truncated=truncated)
    state = CountedState(inner, tf.where(ended, 0.0, returns), tf.where(ended, 0, lengths))
    return state, next_observations, rewards, terminated, info


class ClippedActions:
  """Wraps a continuous-action batched environment so it receives actions clipped to [low, high]
  while rollouts record the policy's own actions, as `collection.RolloutCollector` does with
  gymnasium's Box bounds (the learners' convention: the log-probabilities stay those of the
  sampled actions)."""

  def __init__(self, env, low: float, high: float):
    self.env, self.low, self.high = env, float(low), float(high)
    self.observation_size = env.observation_size

  def reset(self, seed, batch_size: int):
    return self.env.reset(seed, batch_size)

  def observe(self, state):
    return self.env.observe(state)

  def step_autoreset(self, state, actions, seed):
    return _step(self.env, state, tf.clip_by_value(actions, self.low, self.high), seed)
