"""The non-stationary 5-state random walk, TensorFlow-native and batched, plus a gymnasium version.

States 0..4, start in the centre (2); each step moves left or right with probability ½ whatever
the action (a Markov reward process: the action space has one action). Stepping off the right
end terminates with reward +1; off the left end with reward 0, or −1 in alternate phases: the
left reward switches every `switch_every` steps (960 by default) counted over the copy's
lifetime, starting at 0. Observations are one-hot states (5 floats).
"""
from __future__ import annotations

from typing import NamedTuple

import gymnasium as gym
import numpy as np
import tensorflow as tf

NUM_STATES = 5
SWITCH_EVERY = 960


def left_reward(total_steps):
  """0 in even phases of `SWITCH_EVERY` steps, −1 in odd ones, as an integer (ints, arrays, int tensors)."""
  return -((total_steps // SWITCH_EVERY) % 2)


class RandomWalkState(NamedTuple):
  """Batched state; int32 [B]."""
  position: tf.Tensor
  total_steps: tf.Tensor


class RandomWalk:
  """Batched random-walk dynamics as pure TensorFlow functions."""
  observation_size = NUM_STATES

  def reset(self, seed: tf.Tensor, batch_size: int) -> RandomWalkState:
    """Every copy starts in the centre with its phase counter at 0 (`seed` is unused: no randomness)."""
    del seed
    return RandomWalkState(tf.fill([batch_size], NUM_STATES // 2), tf.zeros([batch_size], tf.int32))

  def observe(self, state: RandomWalkState) -> tf.Tensor:
    return tf.one_hot(state.position, NUM_STATES, dtype=tf.float32)

  def step_autoreset(self, state: RandomWalkState, actions: tf.Tensor, seed: tf.Tensor):
    """One step with SAME_STEP autoreset (`actions` are ignored: a reward process).

    Returns (state, true next observation, rewards, terminated).
    A terminated copy's true next observation is all zeros (off the board: a terminal state).
    """
    moves = 2 * tf.random.stateless_uniform(tf.shape(state.position), seed, 0, 2, dtype=tf.int32) - 1
    position = state.position + moves
    off_left, off_right = position < 0, position >= NUM_STATES
    terminated = off_left | off_right
    rewards = tf.where(off_right, 1.0, tf.where(off_left, tf.cast(left_reward(state.total_steps), tf.float32), 0.0))
    next_observation = tf.one_hot(position, NUM_STATES, dtype=tf.float32)  # zeros when off the board
    position = tf.where(terminated, NUM_STATES // 2, position)
    return RandomWalkState(position, state.total_steps + 1), next_observation, rewards, terminated

  @staticmethod
  def true_values(gamma: float, total_steps: int):
    """V(s) of the 5 states under the phase in force at `total_steps`, float64 [5] (a linear solve)."""
    p = np.zeros((NUM_STATES, NUM_STATES))
    r = np.zeros(NUM_STATES)
    for s in range(NUM_STATES):
      for move in (-1, 1):
        nxt = s + move
        if nxt < 0:
          r[s] += 0.5 * left_reward(total_steps)
        elif nxt >= NUM_STATES:
          r[s] += 0.5
        else:
          p[s, nxt] += 0.5
    return np.linalg.solve(np.eye(NUM_STATES) - gamma * p, r)


class RandomWalkEnv(gym.Env):
  """Gymnasium random walk (`tf_metarl/RandomWalk-v0`); the phase counter survives resets."""
  metadata = {"render_modes": []}
  observation_space = gym.spaces.Box(0.0, 1.0, (NUM_STATES,), np.float32)
  action_space = gym.spaces.Discrete(1)

  def __init__(self):
    self.total_steps = 0
    self.position = None

  def reset(self, *, seed=None, options=None):
    super().reset(seed=seed)
    self.position = NUM_STATES // 2
    return np.eye(NUM_STATES, dtype=np.float32)[self.position], {}

  def step(self, action):
    if self.position is None:
      raise RuntimeError("call reset() before step()")
    reward_left = left_reward(self.total_steps)
    self.total_steps += 1
    self.position += 1 if self.np_random.random() < 0.5 else -1
    if self.position >= NUM_STATES:
      return np.zeros(NUM_STATES, np.float32), 1.0, True, False, {}
    if self.position < 0:
      return np.zeros(NUM_STATES, np.float32), float(reward_left), True, False, {}
    return np.eye(NUM_STATES, dtype=np.float32)[self.position], 0.0, False, False, {}
