"""The outer training loop shared by every learner: progress, evaluation, TensorBoard summaries,
a learning-curve CSV, checkpoints with `tf.train.CheckpointManager`, and resuming a killed run."""
from __future__ import annotations

import csv
import json
import os
import time
from typing import Dict, List

import numpy as np
import tensorflow as tf
from absl import logging

from tf_metarl import errors
from tf_metarl.progress import ProgressMeter

CURVE_FILE = "learning_curve.csv"
CURVE_FIELDS = ("env_steps", "wall_time_s", "train_return", "train_episodes", "eval_return", "metric")
RUN_FILE = "run.json"


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


def run_training(learner, total_steps: int, logdir: str, identity: Dict, eval_every: int,
                 eval_episodes: int, checkpoint_every: int, log_every_seconds: float = 10.0,
                 max_checkpoints: int = 2) -> Dict:
  """Trains `learner` until it has taken `total_steps` environment steps.

  `learner` provides: `env_steps` (tf.Variable int64), `checkpoint_items()` (dict of trackables),
  `iteration()` -> (metrics dict of floats, EpisodeStats), `evaluate(episodes)` -> list of returns,
  and optionally `save_extra(path)` / `restore_extra(path)` for state outside TF variables and
  `curve_metric()` -> float, a learner-specific number for the curve's `metric` column.

  Returns the summary dict (also written to `<logdir>/summary.json`).
  """
  os.makedirs(logdir, exist_ok=True)
  _check_run_identity(logdir, identity)
  checkpoint = tf.train.Checkpoint(**learner.checkpoint_items())
  manager = tf.train.CheckpointManager(checkpoint, os.path.join(logdir, "checkpoints"), max_to_keep=max_checkpoints)
  restored = 0
  if manager.latest_checkpoint:
    try:
      checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
    except (tf.errors.OpError, AssertionError, ValueError) as e:
      msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
      raise errors.CheckpointError(f"cannot restore {manager.latest_checkpoint}: {msg}") from None
    if hasattr(learner, "restore_extra"):
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
    path = manager.save(checkpoint_number=int(learner.env_steps.numpy()))
    if hasattr(learner, "save_extra"):
      learner.save_extra(path)

  while int(learner.env_steps.numpy()) < total_steps:
    metrics, stats = learner.iteration()
    steps = int(learner.env_steps.numpy())
    pending_returns.extend(stats.returns)
    recent_returns = (recent_returns + stats.returns)[-100:]
    with writer.as_default(step=steps):
      if len(stats.returns) > 20:  # batched environments: one mean per iteration, not thousands of points
        tf.summary.scalar("charts/episodic_return", _mean(stats.returns))
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
      metric = learner.curve_metric() if hasattr(learner, "curve_metric") else float("nan")
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
