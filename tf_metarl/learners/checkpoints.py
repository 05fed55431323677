"""A run's numbered checkpoints: written with `tf.train.Checkpoint.write`, restored newest-first
with fallback, pruned only behind checkpoints known to be good.

Layout (`<logdir>/checkpoints/`): `ckpt-<env_steps>.index`, `ckpt-<env_steps>.data-*`, any files a
learner writes beside them (`ckpt-<env_steps>.replay.npz`), and `checkpoint`, the text index that
`tf.train.latest_checkpoint` reads. That index is only a hint for other tools: restoring lists the
`ckpt-*.index` files itself, so a garbled or missing index loses nothing.

Why not `tf.train.CheckpointManager`: it trusts the index file (garbage there means "no
checkpoints", and the run restarts from step 0 beside the good ones), and it deletes by its own
record, not by what was verified.
"""
from __future__ import annotations

import os
import re
from typing import Callable, List, Optional, Tuple

import numpy as np
import tensorflow as tf

from tf_metarl import errors

PREFIX = "ckpt-"
INDEX_FILE = "checkpoint"
_NUMBERED = re.compile(r"^ckpt-(\d+)\.index$")


def checkpoint_numbers(directory: str) -> List[int]:
  """Numbers of the checkpoints in `directory` that have an index file, ascending."""
  if not os.path.isdir(directory):
    return []
  return sorted(int(m.group(1)) for m in map(_NUMBERED.match, os.listdir(directory)) if m)


def non_finite_entries(path: str) -> List[str]:
  """Names of floating-point tensors in checkpoint `path` holding NaN or ±inf. Reads every tensor,
  so a truncated or corrupt data file raises here (tf.errors.OpError or ValueError)."""
  reader = tf.train.load_checkpoint(path)
  bad = []
  for name, dtype in sorted(reader.get_variable_to_dtype_map().items()):
    value = reader.get_tensor(name)  # read even non-float tensors: it proves the data is intact
    if dtype.is_floating and not np.all(np.isfinite(value)):
      bad.append(name)
  return bad


def _reason(exception: BaseException) -> str:
  text = " ".join(str(exception).split())
  return (text or type(exception).__name__)[:200]


class CheckpointStore:
  """Args:
    directory: where the checkpoints live (created on the first save).
    checkpoint: the `tf.train.Checkpoint` of everything to save.
    save_extra, restore_extra: called with a checkpoint path after writing / restoring the
      variables (state kept outside TF variables, e.g. a replay buffer).
    keep: how many verified checkpoints to keep; older ones are deleted once that many newer
      ones exist.
  """

  def __init__(self, directory: str, checkpoint: tf.train.Checkpoint, save_extra: Callable[[str], None],
               restore_extra: Callable[[str], None], keep: int = 2):
    if keep < 1:
      raise errors.ConfigError(f"must keep at least one checkpoint, got {keep}")
    self.directory, self.checkpoint, self.keep = directory, checkpoint, keep
    # `restore` creates the checkpoint's save counter, and a strict match then wants it saved;
    # creating it now makes `write` include it.
    _ = checkpoint.save_counter
    self._save_extra, self._restore_extra = save_extra, restore_extra
    self.good: List[int] = []  # numbers written or restored by this process, ascending
    self.latest: Optional[str] = None

  def path(self, number: int) -> str:
    return os.path.join(self.directory, f"{PREFIX}{number}")

  def _try_restore(self, path: str):
    bad = non_finite_entries(path)
    if bad:
      raise ValueError(f"non-finite values in {', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''}")
    self.checkpoint.restore(path).assert_existing_objects_matched()
    self._restore_extra(path)

  def restore(self) -> Tuple[Optional[str], List[str]]:
    """Restores the newest checkpoint that restores completely (variables finite and matched, extra
    state readable). Returns (its path or None when there are none, one note per damaged
    checkpoint skipped). Raises CheckpointError when checkpoints exist and none restores."""
    numbers = checkpoint_numbers(self.directory)
    skipped = []
    for number in reversed(numbers):
      path = self.path(number)
      try:
        self._try_restore(path)
      except Exception as e:  # TF raises several types for damaged files; each means "try an older one".
        skipped.append(f"{os.path.basename(path)} is damaged ({_reason(e)})")
        continue
      self.good, self.latest = [number], path
      return path, skipped
    if numbers:
      raise errors.CheckpointError(
          f"no checkpoint in {self.directory} restores ({'; '.join(skipped)[:300]}); nothing was changed: "
          "rerun with --fresh to move this logdir aside and start over")
    return None, skipped

  def save(self, number: int) -> str:
    """Writes checkpoint `number` and its extra state, verifies it, rewrites the index and prunes.
    A checkpoint that reads back non-finite is deleted and NonFiniteError raised: no checkpoint
    ever holds a NaN or inf."""
    os.makedirs(self.directory, exist_ok=True)
    path = self.checkpoint.write(self.path(number))
    self._save_extra(path)
    bad = non_finite_entries(path)
    if bad:
      self._delete(number)
      raise errors.NonFiniteError(f"refusing to checkpoint non-finite values ({', '.join(bad[:3])}) at step "
                                  f"{number}; last good checkpoint: {self.latest}")
    self.good = sorted(set(self.good) | {number})
    self.latest = path
    self._prune()
    self._write_index()
    return path

  def _prune(self):
    if len(self.good) < self.keep:
      return
    oldest_kept = self.good[-self.keep]
    for number in checkpoint_numbers(self.directory):
      if number < oldest_kept:
        self._delete(number)
    self.good = self.good[-self.keep:]

  def _delete(self, number: int):
    prefix = f"{PREFIX}{number}."
    for name in os.listdir(self.directory):
      if name.startswith(prefix):
        os.remove(os.path.join(self.directory, name))

  def _write_index(self):
    """The text index `tf.train.latest_checkpoint` reads (written atomically)."""
    names = [f"{PREFIX}{n}" for n in checkpoint_numbers(self.directory) if n in self.good]
    text = f'model_checkpoint_path: "{os.path.basename(self.latest)}"\n'
    text += "".join(f'all_model_checkpoint_paths: "{name}"\n' for name in names)
    tmp = os.path.join(self.directory, INDEX_FILE + ".tmp")
    with open(tmp, "w") as f:
      f.write(text)
    os.replace(tmp, os.path.join(self.directory, INDEX_FILE))
