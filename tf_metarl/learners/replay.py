"""A replay buffer of per-copy contiguous steps that samples `[B, T]` sequences.

Storage is TensorFlow variables of `capacity × num_envs` rows (step t of copy i in row
`t · num_envs + i`; `data` shows them as `[capacity, num_envs, ...]`): a collector adds one step of every
copy at a time, so steps of one copy are contiguous in time and sequences never mix copies.
Sequences may cross episode boundaries; `terminated`/`truncated` mark them, as in a collected
`Trajectory`. The same buffer serves learners that step gymnasium from Python (`add`,
`add_trajectory`, `sample`, `sample_per_copy`: NumPy in and out) and learners whose whole step is
one graph (`insert` and `sample_sequences` inside a `tf.function`): one sampling routine for both.
"""
from __future__ import annotations

import os
import zipfile

import numpy as np
import tensorflow as tf

from tf_metarl import errors
from tf_metarl.trajectories import Trajectory

_FIELDS = ("observations", "actions", "rewards", "next_observations", "terminated", "truncated", "episode_steps")


def _as_seed(rng) -> tf.Tensor:
  """A stateless seed int32 [2] from a NumPy generator or a seed tensor."""
  if isinstance(rng, np.random.Generator):
    return tf.constant(rng.integers(0, 2**31 - 1, 2), tf.int32)
  return tf.convert_to_tensor(rng, tf.int32)


class SequenceReplay(tf.Module):
  """Circular buffer; `capacity` counts steps per environment copy."""

  def __init__(self, capacity: int, num_envs: int, observation_dim: int, action_dim: int, name=None):
    super().__init__(name=name)
    self.capacity, self.num_envs = int(capacity), int(num_envs)
    shapes = dict(observations=(observation_dim,), actions=(action_dim,), rewards=(), next_observations=(observation_dim,),
                  terminated=(), truncated=(), episode_steps=())
    self._shapes = shapes
    # Flat rows: XLA compiles gathers and scatters of whole rows of a variable (ResourceGather,
    # ResourceScatterUpdate), not ResourceGatherNd.
    self.buffers = {k: tf.Variable(tf.zeros((self.capacity * self.num_envs,) + shapes[k]), trainable=False, name=k)
                    for k in _FIELDS}
    self.next_row = tf.Variable(0, dtype=tf.int32, trainable=False, name="position")  # next row to write
    self.rows_filled = tf.Variable(0, dtype=tf.int32, trainable=False, name="size")
    self._add_graph = tf.function(self._add_steps)
    self._sample_graph = tf.function(self.sample_sequences)

  @property
  def position(self) -> int:
    return int(self.next_row.numpy())

  @property
  def size(self) -> int:
    """Rows filled (steps per copy)."""
    return int(self.rows_filled.numpy())

  @property
  def data(self):
    """The stored fields as NumPy arrays [capacity, num_envs, ...]."""
    return {k: v.numpy().reshape((self.capacity, self.num_envs) + self._shapes[k]) for k, v in self.buffers.items()}

  # --- graph side ---
  def insert(self, step) -> None:
    """Adds one step of all copies (inside a graph or eagerly): `step` maps every field to a
    tensor with leading dimension `num_envs`."""
    row = self.next_row.read_value()
    rows = row * self.num_envs + tf.range(self.num_envs)
    for k in _FIELDS:
      self.buffers[k].scatter_update(tf.IndexedSlices(tf.cast(step[k], tf.float32), rows))
    self.next_row.assign((row + 1) % self.capacity)
    self.rows_filled.assign(tf.minimum(self.rows_filled + 1, self.capacity))

  def sample_sequences(self, seed, batch_size: int, length: int, per_copy: bool = False, groups: int = 0) -> Trajectory:
    """Samples sequences of `length` consecutive steps of one copy each (graph-safe; the buffer must
    hold at least `length` steps per copy). seed: int32 [2].

    Returns a Trajectory of float32 tensors [batch_size, length, ...] (copies drawn uniformly); with
    `groups` = G > 0, [G, batch_size, length, ...]: group g's sequences come from its own copies
    (the g-th of G equal consecutive runs of copies: a population whose member g owns them trains
    on its own experience); `per_copy` is `groups` = num_envs. `policy_outputs` holds the stored
    actions and `log_probs` zeros (deterministic behaviour).
    """
    groups = self.num_envs if per_copy else int(groups)
    if groups and self.num_envs % groups:
      raise ValueError(f"{self.num_envs} replay copies do not split into {groups} equal groups")
    start_seed, copy_seed = tf.unstack(tf.random.experimental.stateless_split(seed, num=2))
    size = self.rows_filled.read_value()
    oldest = tf.where(size == self.capacity, self.next_row.read_value(), 0)
    shape = [groups, batch_size] if groups else [batch_size]
    starts = (oldest + tf.random.stateless_uniform(shape, start_seed, 0, size - length + 1, tf.int32)) % self.capacity
    rows = (starts[..., None] + tf.range(length)) % self.capacity  # [..., T]
    own = self.num_envs // groups if groups else self.num_envs  # copies each group draws from
    copies = tf.random.stateless_uniform(shape, copy_seed, 0, own, tf.int32)
    if groups:
      copies += own * tf.range(groups)[:, None]
    index = rows * self.num_envs + tf.broadcast_to(copies[..., None], tf.shape(rows))
    batch = {k: tf.gather(self.buffers[k], index) for k in _FIELDS}
    return Trajectory(policy_outputs=batch["actions"], log_probs=tf.zeros_like(batch["rewards"]), **batch)

  def _add_steps(self, steps):
    """Adds steps [num_envs, T, ...] in time order."""
    for t in tf.range(tf.shape(steps["rewards"])[1]):
      self.insert({k: v[:, t] for k, v in steps.items()})

  # --- Python side (NumPy in and out) ---
  def add(self, **step):
    """Adds one step of all copies: each field has leading dimension `num_envs`."""
    self.insert({k: tf.constant(np.asarray(step[k], np.float32)) for k in _FIELDS})

  def add_trajectory(self, trajectory: Trajectory):
    """Adds every time step of a collected trajectory [num_envs, T, ...], in order."""
    self._add_graph({k: tf.constant(np.asarray(getattr(trajectory, k), np.float32)) for k in _FIELDS})

  def latest(self, steps: int) -> Trajectory:
    """The last `steps` steps of every copy, in time order: NumPy `Trajectory` [num_envs, steps,
    ...] (`log_probs` zeros, `policy_outputs` the actions, as `sample_sequences` gives them)."""
    if not 0 < steps <= self.size:
      raise ValueError(f"replay holds {self.size} steps per copy; cannot read the last {steps}")
    rows = (self.position - steps + np.arange(steps)) % self.capacity
    index = rows[None, :] * self.num_envs + np.arange(self.num_envs)[:, None]  # [num_envs, steps]: only these rows
    data = {k: tf.gather(v, index).numpy() for k, v in self.buffers.items()}
    return Trajectory(policy_outputs=data["actions"], log_probs=np.zeros_like(data["rewards"]), **data)

  def _checked_sample(self, rng, batch_size: int, length: int, per_copy: bool) -> Trajectory:
    if self.size < length:
      raise ValueError(f"replay holds {self.size} steps per copy, fewer than the sequence length {length}")
    batch = self._sample_graph(_as_seed(rng), int(batch_size), int(length), per_copy)
    return Trajectory(*[x.numpy() for x in batch])

  def sample(self, rng, batch_size: int, length: int) -> Trajectory:
    """`batch_size` sequences of `length` steps (see `sample_sequences`); rng: a NumPy generator
    (a seed is drawn from it) or a seed int32 [2]. Returns NumPy arrays [batch_size, length, ...]."""
    return self._checked_sample(rng, batch_size, length, per_copy=False)

  def sample_per_copy(self, rng, batch_size: int, length: int) -> Trajectory:
    """`batch_size` sequences of `length` steps from every copy: arrays [num_envs, batch_size,
    length, ...]."""
    return self._checked_sample(rng, batch_size, length, per_copy=True)

  # --- persistence ---
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
      shape = (self.capacity, self.num_envs) + self._shapes[k]
      if k not in state or state[k].shape != shape:
        have = state[k].shape if k in state else "nothing"
        raise ValueError(f"replay field {k} has shape {have}, expected {shape}")
    for k in _FIELDS:
      self.buffers[k].assign(np.reshape(state[k], (-1,) + self._shapes[k]))
    self.next_row.assign(int(state["position"]))
    self.rows_filled.assign(int(state["size"]))
