"""The outer training loop shared by every learner: progress, evaluation, TensorBoard summaries,
a learning-curve CSV, checkpoints with `tf.train.CheckpointManager`, and resuming a killed run."""
from __future__ import annotations

import csv
import json
import os
import time
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
from absl import logging

from tf_metarl import errors
from tf_metarl.collection import EpisodeStats
from tf_metarl.progress import ProgressMeter

CURVE_FILE = "learning_curve.csv"
CURVE_FIELDS = ("env_steps", "wall_time_s", "train_return", "train_episodes", "eval_return", "metric")
RUN_FILE = "run.json"
CONFIG_FILE = "config.json"


class Trainable:
  """What `run_training` and `fit` drive: a learner (train_agent) or a meta-trainer (meta_train).

  Subclasses set `env_steps` (an int64 tf.Variable) and implement `checkpoint_items`,
  `iteration` and `evaluate`; the hooks below default to doing nothing.
  """
  env_steps: tf.Variable

  def checkpoint_items(self) -> Dict[str, object]:
    """Trackables to checkpoint (tf.train.Checkpoint keyword arguments)."""
    raise NotImplementedError

  def iteration(self) -> Tuple[Dict[str, float], EpisodeStats]:
    """One unit of work (collect and update); advances `env_steps`. Returns (scalar metrics,
    episodes finished during it)."""
    raise NotImplementedError

  def evaluate(self, episodes: int) -> Sequence[float]:
    """Returns of `episodes` greedy episodes (empty where the task has no episodic return)."""
    raise NotImplementedError

  def save_extra(self, checkpoint_path: str) -> None:
    """Saves state that lives outside TF variables beside a checkpoint (e.g. a replay buffer)."""

  def restore_extra(self, checkpoint_path: str) -> None:
    """Restores what `save_extra` wrote, after the variables are restored."""

  def curve_metric(self) -> float:
    """A learner-specific number for the learning curve's `metric` column (NaN: none)."""
    return float("nan")


def mean_metrics(updates: Sequence[Mapping[str, object]]) -> Dict[str, float]:
  """Averages each scalar metric over an iteration's updates, ignoring NaN entries (e.g. TD3's
  actor loss on updates that skipped the actor)."""
  names = sorted({k for u in updates for k in u})
  out = {}
  for name in names:
    values = np.array([float(u[name]) for u in updates if name in u], np.float64)
    finite = values[~np.isnan(values)]
    out[name] = float(finite.mean()) if finite.size else float("nan")
  return out


def fit(learner: Trainable, total_steps: int) -> Dict:
  """Trains until `total_steps` environment steps, writing nothing (for workers and tests that
  must not create logdirs). Returns {env_steps, episodes, train_return_last100, metrics}."""
  returns: List[float] = []
  episodes = 0
  metrics: Dict[str, float] = {}
  while int(learner.env_steps.numpy()) < total_steps:
    metrics, stats = learner.iteration()
    returns = (returns + list(stats.returns))[-100:]
    episodes += len(stats.returns)
  return dict(env_steps=int(learner.env_steps.numpy()), episodes=episodes, train_return_last100=_mean(returns),
              metrics=metrics)


def write_config(logdir: str, config: Mapping) -> str:
  """Writes the fully resolved config as `<logdir>/config.json` (replaced on every start, so a
  resumed run records the settings it continued with)."""
  path = os.path.join(logdir, CONFIG_FILE)
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(dict(config), f, indent=2, sort_keys=True, default=_json_default)
  os.replace(tmp, path)
  return path


def _json_default(value):
  if isinstance(value, (np.integer, np.floating)):
    return value.item()
  return str(value)


class LearningCurve:
  """Appends rows to `<logdir>/learning_curve.csv`; on resume drops rows past the restored step."""

  def __init__(self, logdir: str, restored_steps: int):
    self.path = os.path.join(logdir, CURVE_FILE)
    rows = read_learning_curve(self.path) if os.path.exists(self.path) else []
    rows = [r for r in rows if r["env_steps"] <= restored_steps]
    with open(self.path, "w", newline="") as f:
      writer = csv.DictWriter(f, CURVE_FIELDS)
      writer.writeheader()
      writer.writerows(rows)
    self.rows = rows

  def append(self, row: Dict):
    row = {k: row.get(k, "") for k in CURVE_FIELDS}
    with open(self.path, "a", newline="") as f:
      csv.DictWriter(f, CURVE_FIELDS).writerow(row)
    self.rows.append(row)


def read_learning_curve(path: str) -> List[Dict]:
  """Reads a learning-curve CSV into dicts: counts as ints, the rest floats (empty cells NaN)."""
  counts = ("env_steps", "train_episodes")
  with open(path, newline="") as f:
    rows = []
    for r in csv.DictReader(f):
      rows.append({k: (int(float(v)) if k in counts else float(v)) if v not in ("", None) else float("nan")
                   for k, v in r.items()})
    return rows


def _check_run_identity(logdir: str, identity: Dict):
  """Refuses to resume a logdir written by a different environment/objective/seed."""
  path = os.path.join(logdir, RUN_FILE)
  if os.path.exists(path):
    with open(path) as f:
      previous = json.load(f)
    different = {k: (previous.get(k), v) for k, v in identity.items() if previous.get(k) != v}
    if different:
      detail = ", ".join(f"{k}: {a!r} there, {b!r} now" for k, (a, b) in different.items())
      raise errors.CheckpointError(f"{logdir} holds a different run ({detail}); use another --logdir")
  else:
    with open(path, "w") as f:
      json.dump(identity, f, indent=2, sort_keys=True)


def _mean(xs):
  return float(np.mean(xs)) if len(xs) else float("nan")


def run_training(learner: Trainable, total_steps: int, logdir: str, identity: Dict, eval_every: int,
                 eval_episodes: int, checkpoint_every: int, log_every_seconds: float = 10.0,
                 max_checkpoints: int = 2, config: Optional[Mapping] = None) -> Dict:
  """Trains `learner` until it has taken `total_steps` environment steps, with progress lines,
  TensorBoard summaries, a learning curve, checkpoints and resumption.

  `config`: the fully resolved configuration, written to `<logdir>/config.json`.
  Returns the summary dict (also written to `<logdir>/summary.json`).
  """
  os.makedirs(logdir, exist_ok=True)
  _check_run_identity(logdir, identity)
  write_config(logdir, dict(config if config is not None else {}, identity=identity))
  checkpoint = tf.train.Checkpoint(**learner.checkpoint_items())
  manager = tf.train.CheckpointManager(checkpoint, os.path.join(logdir, "checkpoints"), max_to_keep=max_checkpoints)
  restored = 0
  if manager.latest_checkpoint:
    try:
      checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
    except (tf.errors.OpError, AssertionError, ValueError) as e:
      msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
      raise errors.CheckpointError(f"cannot restore {manager.latest_checkpoint}: {msg}") from None
    learner.restore_extra(manager.latest_checkpoint)
    restored = int(learner.env_steps.numpy())
    logging.info("resumed from %s at %d environment steps", manager.latest_checkpoint, restored)
  curve = LearningCurve(logdir, restored)
  writer = tf.summary.create_file_writer(os.path.join(logdir, "tb"))
  meter = ProgressMeter(total_steps, start=restored)
  recent_returns: List[float] = []
  pending_returns: List[float] = []
  last_eval = restored // eval_every * eval_every if eval_every else 0
  last_ckpt = restored
  last_log = time.monotonic()
  start_time = time.monotonic()
  eval_return = float("nan")
  best_eval = max([r["eval_return"] for r in curve.rows if r["eval_return"] == r["eval_return"]] or [float("-inf")])

  def save():
    learner.save_extra(manager.save(checkpoint_number=int(learner.env_steps.numpy())))

  while int(learner.env_steps.numpy()) < total_steps:
    metrics, stats = learner.iteration()
    steps = int(learner.env_steps.numpy())
    pending_returns.extend(stats.returns)
    recent_returns = (recent_returns + stats.returns)[-100:]
    with writer.as_default(step=steps):
      if len(stats.returns) > 20:  # batched environments: one mean per iteration, not thousands of points
        tf.summary.scalar("charts/episodic_return", _mean(stats.returns))
        tf.summary.scalar("charts/episodic_length", _mean(stats.lengths))
      else:
        for ret, length in zip(stats.returns, stats.lengths):
          tf.summary.scalar("charts/episodic_return", ret)
          tf.summary.scalar("charts/episodic_length", length)
      for k, v in metrics.items():
        tf.summary.scalar(k if "/" in k else f"losses/{k}", v)
      tf.summary.scalar("charts/SPS", meter.rate(steps))
    row = None
    if eval_every and (steps - last_eval >= eval_every or steps >= total_steps):
      last_eval = steps // eval_every * eval_every
      eval_return = _mean(learner.evaluate(eval_episodes))
      best_eval = max(best_eval, eval_return)
      with writer.as_default(step=steps):
        tf.summary.scalar("charts/eval_return", eval_return)
      row = dict(eval_return=eval_return)
    if row is not None or stats.returns and len(pending_returns) >= 10:
      metric = learner.curve_metric()
      row = dict(row or {}, metric=metric, env_steps=steps, wall_time_s=round(time.monotonic() - start_time, 3),
                 train_return=_mean(pending_returns), train_episodes=len(pending_returns))
      curve.append(row)
      pending_returns = []
    if checkpoint_every and steps - last_ckpt >= checkpoint_every:
      save()
      last_ckpt = steps
    if time.monotonic() - last_log >= log_every_seconds or steps >= total_steps:
      last_log = time.monotonic()
      logging.info(meter.line(steps, f"return(last 100) {_mean(recent_returns):.1f} | eval {eval_return:.1f}"))
  save()
  writer.flush()
  steps = int(learner.env_steps.numpy())
  summary = dict(identity, env_steps=steps, final_eval_return=eval_return,
                 best_eval_return=best_eval if best_eval > float("-inf") else float("nan"),
                 train_return_last100=_mean(recent_returns),
                 wall_time_s=round(time.monotonic() - start_time, 2),
                 steps_per_second=round(meter.rate(steps), 1), resumed_from=restored, logdir=logdir)
  summary = {k: (None if isinstance(v, float) and v != v else v) for k, v in summary.items()}  # NaN -> null (JSON)
  with open(os.path.join(logdir, "summary.json"), "w") as f:
    json.dump(summary, f, indent=2, sort_keys=True)
  return summary
