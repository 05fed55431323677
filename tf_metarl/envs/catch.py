"""Catch, TensorFlow-native and batched, plus a gymnasium version with identical dynamics.

A pellet starts at a random column of the top row and falls one row per step; the paddle, on
the bottom row, starts in the middle column and moves left (action 0), stays (1) or moves right
(2), clipped at the walls. When the pellet reaches the bottom row the episode terminates with
reward +1 if the paddle is under it and −1 otherwise (0 on every other step), so an episode lasts
`rows − 1` steps. Observations are the board, flattened: `rows × columns` floats, 1 at the pellet
and at the paddle. The reimplementation report's board is 11 rows × 6 columns (the default).

The batched version is a set of pure functions over a `CatchState` of `[B]` tensors, so a whole
rollout of many copies runs inside one `tf.function` (see `rollout`), as gymnax does in JAX.
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Tuple

import gymnasium as gym
import numpy as np
import tensorflow as tf

from tf_metarl.envs import batched

DEFAULT_ROWS = 11
DEFAULT_COLUMNS = 6
NUM_ACTIONS = 3


class CatchState(NamedTuple):
  """Batched state; all int32 [B]."""
  pellet_row: tf.Tensor
  pellet_column: tf.Tensor
  paddle_column: tf.Tensor


class Catch:
  """Batched Catch dynamics as pure TensorFlow functions (no Python state besides the sizes)."""

  def __init__(self, rows: int = DEFAULT_ROWS, columns: int = DEFAULT_COLUMNS):
    if rows < 2 or columns < 1:
      raise ValueError(f"Catch needs at least 2 rows and 1 column, got {rows}x{columns}")
    self.rows, self.columns = int(rows), int(columns)
    self.observation_size = self.rows * self.columns

  def reset(self, seed: tf.Tensor, batch_size: int) -> CatchState:
    """New episodes: pellet at a uniformly random column of row 0, paddle in the middle. seed: [2] int."""
    column = tf.random.stateless_uniform([batch_size], seed, 0, self.columns, dtype=tf.int32)
    return CatchState(tf.zeros([batch_size], tf.int32), column,
                      tf.fill([batch_size], tf.constant(self.columns // 2, tf.int32)))

  def observe(self, state: CatchState) -> tf.Tensor:
    """Board as float32 [B, rows·columns]."""
    pellet = state.pellet_row * self.columns + state.pellet_column
    paddle = (self.rows - 1) * self.columns + state.paddle_column
    return (tf.one_hot(pellet, self.observation_size, dtype=tf.float32) +
            tf.one_hot(paddle, self.observation_size, dtype=tf.float32))

  def step(self, state: CatchState, actions: tf.Tensor):
    """One step of every copy (no reset). actions: int32 [B] in {0, 1, 2}.

    Returns (next_state, rewards float32 [B], terminated bool [B]).
    """
    paddle = tf.clip_by_value(state.paddle_column + tf.cast(actions, tf.int32) - 1, 0, self.columns - 1)
    row = state.pellet_row + 1
    terminated = row >= self.rows - 1
    caught = tf.equal(paddle, state.pellet_column)
    rewards = tf.where(terminated, tf.where(caught, 1.0, -1.0), 0.0)
    return CatchState(row, state.pellet_column, paddle), rewards, terminated

  def step_autoreset(self, state: CatchState, actions: tf.Tensor, seed: tf.Tensor):
    """`step`, then copies whose episode ended start a new one (SAME_STEP autoreset).

    Returns (state to continue from, true next observation [B, O], rewards [B], terminated [B]).
    """
    next_state, rewards, terminated = self.step(state, actions)
    final_observation = self.observe(next_state)
    fresh = self.reset(seed, tf.shape(actions)[0])
    continued = CatchState(*[tf.where(terminated, f, n) for f, n in zip(fresh, next_state)])
    return continued, final_observation, rewards, terminated

  def rollout(self, state: CatchState, policy: Callable[[tf.Tensor, tf.Tensor], tf.Tensor], seed: tf.Tensor,
              length: int) -> Tuple[CatchState, dict]:
    """`length` steps of every copy in graph; see `envs.batched.rollout`."""
    return batched.rollout(self, state, policy, seed, length)


class CatchEnv(gym.Env):
  """Gymnasium Catch (`tf_metarl/Catch-v0`): the dynamics of `Catch`, one copy, in NumPy."""
  metadata = {"render_modes": []}

  def __init__(self, rows: int = DEFAULT_ROWS, columns: int = DEFAULT_COLUMNS):
    self.rows, self.columns = int(rows), int(columns)
    self.observation_space = gym.spaces.Box(0.0, 1.0, (self.rows * self.columns,), np.float32)
    self.action_space = gym.spaces.Discrete(NUM_ACTIONS)
    self._state = None

  def _observe(self):
    board = np.zeros(self.rows * self.columns, np.float32)
    row, column, paddle = self._state
    board[row * self.columns + column] += 1.0
    board[(self.rows - 1) * self.columns + paddle] += 1.0
    return board

  def reset(self, *, seed=None, options=None):
    super().reset(seed=seed)
    self._state = (0, int(self.np_random.integers(0, self.columns)), self.columns // 2)
    return self._observe(), {}

  def step(self, action):
    if self._state is None:
      raise RuntimeError("call reset() before step()")
    row, column, paddle = self._state
    paddle = int(np.clip(paddle + int(action) - 1, 0, self.columns - 1))
    row += 1
    terminated = row >= self.rows - 1
    reward = (1.0 if paddle == column else -1.0) if terminated else 0.0
    self._state = (row, column, paddle)
    return self._observe(), reward, terminated, False, {}
