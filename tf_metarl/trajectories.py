"""The experience structure shared by every learner, objective and exporter.

All fields are batch-major: `[B, T, ...]` for B environment copies (or sampled sequences) and T
consecutive steps. Step t holds `observations[:, t]`, the action taken there, the reward received,
and `next_observations[:, t]`: the true next observation, which on truncation is the last
observation of the episode (not the first of the next one), so returns can bootstrap from it.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np
import tensorflow as tf


class Trajectory(NamedTuple):
  """A batch of experience; a NamedTuple, so `tf.nest` maps over it natively.

  Attributes:
    observations: float32 [B, T, *obs_shape].
    actions: int32 [B, T] (discrete) or float32 [B, T, action_dim] (continuous).
    rewards: float32 [B, T].
    next_observations: float32 [B, T, *obs_shape], the true successor of `observations`.
    terminated: float32 [B, T], 1 where the episode reached a terminal state (no bootstrap).
    truncated: float32 [B, T], 1 where it was cut by a time limit (bootstrap from next value).
    policy_outputs: float32 [B, T, P], raw outputs of the behaviour policy (logits, mean/log-std,
      or the deterministic action).
    log_probs: float32 [B, T], behaviour log-probability of `actions` (0 for deterministic policies).
    episode_steps: float32 [B, T], the step's index within its episode (0 at an episode's first
      step); MetaGenRL's objective reads it as time (divided by the time limit).
  """
  observations: np.ndarray
  actions: np.ndarray
  rewards: np.ndarray
  next_observations: np.ndarray
  terminated: np.ndarray
  truncated: np.ndarray
  policy_outputs: np.ndarray
  log_probs: np.ndarray
  episode_steps: np.ndarray

  @property
  def discounts(self):
    """Environment discount per step, [B, T]: 0 where terminated, else 1 (the agent's γ is separate)."""
    return 1.0 - self.terminated

  @property
  def episode_ends(self):
    """1 where an episode ended for any reason, [B, T]: recursions over time must not cross it."""
    return tf.maximum(self.terminated, self.truncated) if tf.is_tensor(self.terminated) else np.maximum(
        self.terminated, self.truncated)


def concat_time(parts):
  """Concatenates trajectories along the time axis."""
  return tf.nest.map_structure(lambda *xs: np.concatenate(xs, axis=1), *parts)


def encode_actions(actions, num_actions: Optional[int], action_dim: Optional[int] = None) -> tf.Tensor:
  """Flat actions as features [N, ·]: one-hot for `num_actions` discrete actions, else the raw
  values ([N, `action_dim`], or [N, -1] when it is not given)."""
  if num_actions:
    return tf.one_hot(tf.cast(tf.reshape(actions, [-1]), tf.int32), num_actions)
  return tf.reshape(tf.cast(actions, tf.float32), [-1, action_dim or tf.size(actions) // tf.shape(actions)[0]])
