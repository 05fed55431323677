"""A replay buffer of per-copy contiguous steps that samples `[B, T]` sequences.

Storage is `[capacity, num_envs, ...]`: the collector adds one step of every copy at a time, so
steps of one copy are contiguous in time and sequences never mix copies. Sequences may cross
episode boundaries; `terminated`/`truncated` mark them, as in a collected `Trajectory`.
"""
from __future__ import annotations

import os
import zipfile

import numpy as np

from tf_metarl import errors
from tf_metarl.trajectories import Trajectory

_FIELDS = ("observations", "actions", "rewards", "next_observations", "terminated", "truncated", "episode_steps")


class SequenceReplay:
  """Circular buffer; `capacity` counts steps per environment copy."""

  def __init__(self, capacity: int, num_envs: int, observation_dim: int, action_dim: int):
    self.capacity, self.num_envs = int(capacity), int(num_envs)
    shapes = dict(observations=(observation_dim,), actions=(action_dim,), rewards=(), next_observations=(observation_dim,),
                  terminated=(), truncated=(), episode_steps=())
    self.data = {k: np.zeros((self.capacity, self.num_envs) + shapes[k], np.float32) for k in _FIELDS}
    self.position = 0  # next row to write
    self.size = 0      # rows filled

  def add(self, **step):
    """Adds one step of all copies: each field has leading dimension `num_envs`."""
    for k in _FIELDS:
      self.data[k][self.position] = step[k]
    self.position = (self.position + 1) % self.capacity
    self.size = min(self.size + 1, self.capacity)

  def add_trajectory(self, trajectory: Trajectory):
    """Adds every time step of a collected trajectory [num_envs, T, ...], in order."""
    for t in range(trajectory.rewards.shape[1]):
      self.add(**{k: getattr(trajectory, k)[:, t] for k in _FIELDS})

  def sample(self, rng: np.random.Generator, batch_size: int, length: int) -> Trajectory:
    """Samples `batch_size` sequences of `length` consecutive steps of one copy each.

    Returns a Trajectory of float32 arrays [batch_size, length, ...]; `policy_outputs` holds the
    stored actions and `log_probs` zeros (deterministic behaviour).
    """
    if self.size < length:
      raise ValueError(f"replay holds {self.size} steps per copy, fewer than the sequence length {length}")
    oldest = self.position if self.size == self.capacity else 0
    starts = (oldest + rng.integers(0, self.size - length + 1, batch_size)) % self.capacity
    rows = (starts[:, None] + np.arange(length)[None, :]) % self.capacity  # [B, T]
    copies = np.broadcast_to(rng.integers(0, self.num_envs, batch_size)[:, None], rows.shape)
    batch = {k: self.data[k][rows, copies] for k in _FIELDS}
    return Trajectory(policy_outputs=batch["actions"], log_probs=np.zeros_like(batch["rewards"]), **batch)

  def sample_per_copy(self, rng: np.random.Generator, batch_size: int, length: int) -> Trajectory:
    """`batch_size` sequences of `length` steps from every copy: arrays [num_envs, batch_size,
    length, ...] (a population whose agent i owns copy i trains on its own experience)."""
    if self.size < length:
      raise ValueError(f"replay holds {self.size} steps per copy, fewer than the sequence length {length}")
    oldest = self.position if self.size == self.capacity else 0
    starts = (oldest + rng.integers(0, self.size - length + 1, (self.num_envs, batch_size))) % self.capacity
    rows = (starts[..., None] + np.arange(length)) % self.capacity  # [N, B, T]
    copies = np.broadcast_to(np.arange(self.num_envs)[:, None, None], rows.shape)
    batch = {k: self.data[k][rows, copies] for k in _FIELDS}
    return Trajectory(policy_outputs=batch["actions"], log_probs=np.zeros_like(batch["rewards"]), **batch)

  def state(self):
    return dict(position=np.array(self.position), size=np.array(self.size), **self.data)

  def save(self, path: str) -> None:
    """Writes the buffer to `path` (.npz) through a temporary file, so a crash leaves no partial file."""
    tmp = path + ".tmp.npz"
    np.savez(tmp, **self.state())
    os.replace(tmp, path)

  def load(self, path: str) -> None:
    """Reads what `save` wrote; a missing, truncated or mismatched file is a one-line CheckpointError."""
    try:
      with np.load(path) as state:
        self.load_state(state)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
      raise errors.CheckpointError(f"cannot restore replay buffer {path}: {e}") from None

  def load_state(self, state):
    for k in _FIELDS:
      if k not in state or state[k].shape != self.data[k].shape:
        have = state[k].shape if k in state else "nothing"
        raise ValueError(f"replay field {k} has shape {have}, expected {self.data[k].shape}")
      self.data[k][...] = state[k]
    self.position, self.size = int(state["position"]), int(state["size"])
