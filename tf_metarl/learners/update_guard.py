"""Counts the updates skipped for non-finite values (see `agents.optimizers.apply_if_finite`):
in total, and in a row, so a run can stop once it cannot recover (`run_training`)."""
from __future__ import annotations

import tensorflow as tf


class UpdateGuard(tf.Module):
  """Two int64 counters, checkpointed with the learner: `skipped` (all skipped updates) and
  `consecutive` (skipped since the last applied one). `record` works eagerly and in a graph."""

  def __init__(self, name: str = "update_guard"):
    super().__init__(name=name)
    self.skipped = tf.Variable(0, dtype=tf.int64, trainable=False, name="skipped")
    self.consecutive = tf.Variable(0, dtype=tf.int64, trainable=False, name="consecutive")

  def record(self, skipped) -> None:
    """`skipped`: a bool scalar (or a number > 0 meaning skipped) for one update."""
    skipped = tf.convert_to_tensor(skipped)
    if skipped.dtype != tf.bool:
      skipped = tf.greater(skipped, 0)
    self.skipped.assign_add(tf.cast(skipped, tf.int64))
    self.consecutive.assign(tf.where(skipped, self.consecutive + 1, tf.constant(0, tf.int64)))
