"""In-graph rollouts for TensorFlow-native batched environments (Catch, the random walk).

An environment here is an object with `reset(seed, batch_size) -> state`, `observe(state) ->
[B, O]` and `step_autoreset(state, actions, seed) -> (state, true next observations, rewards,
terminated)`, all pure TensorFlow, so a whole rollout of many copies is one `tf.while_loop`.
"""
from __future__ import annotations

from typing import Callable, Dict, Tuple

import tensorflow as tf

# policy(observations [B, O], seed [2]) -> actions int32 [B]
Policy = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]


def rollout(env, state, policy: Policy, seed: tf.Tensor, length: int) -> Tuple[object, Dict[str, tf.Tensor]]:
  """Runs `length` steps of every copy in graph.

  Returns:
    (final state, dict of time-major [T, B, ...] tensors: observations, actions, rewards,
    next_observations, terminated (float32)).
  """
  seeds = tf.random.experimental.stateless_split(seed, num=2 * length)
  arrays = {k: tf.TensorArray(dtype, size=length) for k, dtype in (
      ("observations", tf.float32), ("actions", tf.int32), ("rewards", tf.float32),
      ("next_observations", tf.float32), ("terminated", tf.float32))}

  def body(t, state, arrays):
    observations = env.observe(state)
    actions = policy(observations, seeds[2 * t])
    state, next_observations, rewards, terminated = env.step_autoreset(state, actions, seeds[2 * t + 1])
    values = dict(observations=observations, actions=actions, rewards=rewards,
                  next_observations=next_observations, terminated=tf.cast(terminated, tf.float32))
    return t + 1, state, {k: arrays[k].write(t, values[k]) for k in arrays}

  _, state, arrays = tf.while_loop(lambda t, *_: t < length, body, (tf.constant(0), state, arrays))
  return state, {k: v.stack() for k, v in arrays.items()}


def batch_major(time_major: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
  """[T, B, ...] rollout dict -> [B, T, ...] batch with `discounts` and `episode_ends` added.

  These environments only terminate (no time limits), so episode ends are the terminations.
  """
  out = {k: tf.transpose(v, [1, 0] + list(range(2, v.shape.rank))) for k, v in time_major.items()}
  out["discounts"] = 1.0 - out["terminated"]
  out["episode_ends"] = out["terminated"]
  return out
