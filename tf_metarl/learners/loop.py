"""The outer training loop shared by every learner: progress, evaluation, TensorBoard summaries,
a learning-curve CSV, checkpoints with `tf.train.CheckpointManager`, and resuming a killed run."""
from __future__ import annotations

import csv
import dataclasses
import json
import os
import signal
import threading
import time
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
from absl import logging

from tf_metarl import errors
from tf_metarl.collection import EpisodeStats
from tf_metarl.config_utils import dataclass_from_config
from tf_metarl.file_checks import check_writable_directory
from tf_metarl.learners.checkpoints import CheckpointStore
from tf_metarl.learners.update_guard import UpdateGuard
from tf_metarl.progress import ProgressMeter

CURVE_FILE = "learning_curve.csv"
CURVE_FIELDS = ("env_steps", "wall_time_s", "train_return", "train_episodes", "eval_return", "metric")
RUN_FILE = "run.json"
CONFIG_FILE = "config.json"


class Trainable:
  """What `run_training` and `fit` drive: a learner (train_agent) or a meta-trainer (meta_train).

  Subclasses set `env_steps` (an int64 tf.Variable) and implement `checkpoint_items`,
  `iteration` and `evaluate`; the hooks below default to doing nothing. Those whose updates can
  be skipped for non-finite values set `guard` (an `UpdateGuard`, included in their checkpoint).
  """
  env_steps: tf.Variable
  guard: Optional[UpdateGuard] = None

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

  def summary_extra(self) -> Dict[str, object]:
    """Learner-specific entries for the run summary (e.g. a population's per-seed returns)."""
    return {}


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
    try:
      with open(path) as f:
        previous = json.load(f)
      if not isinstance(previous, dict):
        raise ValueError(f"a JSON {type(previous).__name__}, not an object")
    except (OSError, ValueError) as e:
      raise errors.CheckpointError(f"{path} is unreadable ({' '.join(str(e).split())}); rerun with --fresh to move "
                                   "this logdir aside and start over") from None
    different = {k: (previous.get(k), v) for k, v in identity.items() if previous.get(k) != v}
    if different:
      detail = ", ".join(f"{k}: {a!r} there, {b!r} now" for k, (a, b) in different.items())
      raise errors.CheckpointError(f"{logdir} holds a different run ({detail}); use another --logdir")
  else:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
      json.dump(identity, f, indent=2, sort_keys=True)
    os.replace(tmp, path)


def evaluation_due(steps: int, last_eval: int, eval_every: int) -> bool:
  """Whether `steps` crossed a multiple of `eval_every` since the last evaluation (at `last_eval`
  environment steps). Evaluations fall on the multiples' crossings, also after a resume that
  changed `eval_every` (the last one is then at a multiple of the old value)."""
  return steps // eval_every > last_eval // eval_every


def _mean(xs):
  return float(np.mean(xs)) if len(xs) else float("nan")


@dataclasses.dataclass
class RunSettings:
  """How `run_training` evaluates, checkpoints, logs and gives up. Top-level keys of the configs.

  eval_every: environment steps between greedy evaluations (0: none).
  eval_episodes: episodes per evaluation.
  checkpoint_every: environment steps between checkpoints (0: only by time, at a stop signal and
    at the end).
  checkpoint_every_seconds: wall-clock seconds between checkpoints (0: not by time).
  log_every_seconds: seconds between progress lines.
  keep_checkpoints: verified checkpoints kept on disk.
  max_consecutive_skips: stop (with a one-line error, checkpoints intact) once this many updates in
    a row were skipped for non-finite gradients or parameters.
  """
  eval_every: int = 0
  eval_episodes: int = 5
  checkpoint_every: int = 0
  checkpoint_every_seconds: float = 300.0
  log_every_seconds: float = 10.0
  keep_checkpoints: int = 2
  max_consecutive_skips: int = 100

  def validate(self) -> "RunSettings":
    def need(ok, name, what):
      if not ok:
        raise errors.ConfigError(f"config.{name} must be {what}, got {getattr(self, name)!r}")
    need(self.eval_every >= 0, "eval_every", ">= 0 (0: no evaluation)")
    need(self.eval_episodes >= 1 or self.eval_every == 0, "eval_episodes", ">= 1 when config.eval_every > 0")
    need(self.eval_episodes >= 0, "eval_episodes", ">= 0")
    need(self.checkpoint_every >= 0, "checkpoint_every", ">= 0 (0: checkpoints by time and at the end only)")
    need(self.checkpoint_every_seconds >= 0, "checkpoint_every_seconds", ">= 0 (0: not by time)")
    need(self.log_every_seconds > 0, "log_every_seconds", "> 0")
    need(self.keep_checkpoints >= 1, "keep_checkpoints", ">= 1")
    need(self.max_consecutive_skips >= 1, "max_consecutive_skips", ">= 1")
    return self

  @classmethod
  def from_config(cls, config: Mapping) -> "RunSettings":
    """The settings among a config's top-level keys (others ignored), validated."""
    names = {f.name for f in dataclasses.fields(cls)}
    return dataclass_from_config(cls, {k: v for k, v in dict(config).items() if k in names}, "").validate()


def check_logdir(logdir: str) -> None:
  """Raises ConfigError unless `logdir` is a writable directory or can be created as one (checked
  before any training starts; nothing is created here)."""
  check_writable_directory(logdir, f"--logdir {logdir}")


def move_aside(logdir: str) -> Optional[str]:
  """`--fresh`: renames a non-empty `logdir` to `<logdir>.old-<n>` (nothing is deleted); returns
  the new name, or None when there was nothing to move."""
  if not os.path.isdir(logdir) or not os.listdir(logdir):
    return None
  n = 1
  while os.path.exists(f"{os.path.normpath(logdir)}.old-{n}"):
    n += 1
  moved = f"{os.path.normpath(logdir)}.old-{n}"
  os.rename(logdir, moved)
  logging.info("--fresh: moved the previous run in %s to %s", logdir, moved)
  return moved


class _StopSignals:
  """Within the block, SIGINT and SIGTERM set `received` instead of killing the process, so the loop
  can checkpoint and stop cleanly. Only in the main thread (Python's rule for signal handlers)."""

  def __init__(self):
    self.received: Optional[int] = None
    self._previous = {}

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      for signum in (signal.SIGINT, signal.SIGTERM):
        self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def _handle(self, signum, frame):
    self.received = signum

  def __exit__(self, *exc):
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)


class _LoopState:
  """What the loop itself carries between iterations, checkpointed as one JSON string variable so a
  resumed run writes the same learning-curve rows as an uninterrupted one."""

  def __init__(self):
    self.variable = tf.Variable("{}", dtype=tf.string, trainable=False, name="loop_state")
    self.pending_returns: List[float] = []
    self.recent_returns: List[float] = []
    self.last_eval = 0
    self.eval_return = float("nan")
    self.best_eval = float("-inf")
    self.wall_time = 0.0

  _FIELDS = ("pending_returns", "recent_returns", "last_eval", "eval_return", "best_eval", "wall_time")

  def store(self):
    self.variable.assign(json.dumps({k: getattr(self, k) for k in self._FIELDS}))

  def load(self):
    values = json.loads(self.variable.numpy().decode())
    for k in self._FIELDS:
      if k in values:
        setattr(self, k, values[k])


def run_training(learner: Trainable, total_steps: int, logdir: str, identity: Dict, settings: RunSettings,
                 config: Optional[Mapping] = None, fresh: bool = False) -> Dict:
  """Trains `learner` until it has taken `total_steps` environment steps, with progress lines,
  TensorBoard summaries, a learning curve, checkpoints and resumption.

  Checkpoints are written every `settings.checkpoint_every` steps, every
  `settings.checkpoint_every_seconds`, at SIGINT/SIGTERM (then RunInterrupted is raised) and at the
  end; a rerun with the same logdir restores the newest one that restores completely. Updates
  skipped for non-finite values are counted (`learner.guard`); `settings.max_consecutive_skips` in a
  row stop the run with NonFiniteError, its checkpoints untouched.
  `config`: the fully resolved configuration, written to `<logdir>/config.json`.
  `fresh`: move an existing logdir aside (`move_aside`) instead of resuming it.
  Returns the summary dict (also written to `<logdir>/summary.json`).
  """
  settings.validate()
  check_logdir(logdir)
  if fresh:
    move_aside(logdir)
  os.makedirs(logdir, exist_ok=True)
  _check_run_identity(logdir, identity)
  loop_state = _LoopState()
  guard = learner.guard
  store = CheckpointStore(os.path.join(logdir, "checkpoints"),
                          tf.train.Checkpoint(**learner.checkpoint_items(), loop_state=loop_state.variable),
                          learner.save_extra, learner.restore_extra, keep=settings.keep_checkpoints)
  restored_path, damaged = store.restore()
  write_config(logdir, dict(config if config is not None else {}, identity=identity))
  restored = 0
  if restored_path:
    loop_state.load()
    restored = int(learner.env_steps.numpy())
    for note in damaged:
      logging.warning("not restored: %s", note)
    logging.info("resumed from %s at %d environment steps", restored_path, restored)
  curve = LearningCurve(logdir, restored)
  writer = tf.summary.create_file_writer(os.path.join(logdir, "tb"))
  meter = ProgressMeter(total_steps, start=restored)
  st = loop_state
  if not restored_path:
    st.best_eval = max([r["eval_return"] for r in curve.rows if r["eval_return"] == r["eval_return"]]
                       or [float("-inf")])
  eval_every = settings.eval_every
  last_ckpt, last_ckpt_time = restored, time.monotonic()
  last_log = time.monotonic()
  start_time = time.monotonic() - st.wall_time

  def save():
    st.wall_time = time.monotonic() - start_time
    st.store()
    return store.save(int(learner.env_steps.numpy()))

  with _StopSignals() as stop:
    while int(learner.env_steps.numpy()) < total_steps:
      metrics, stats = learner.iteration()
      steps = int(learner.env_steps.numpy())
      st.pending_returns.extend(stats.returns)
      st.recent_returns = (st.recent_returns + list(stats.returns))[-100:]
      skipped = int(guard.skipped.numpy()) if guard is not None else 0
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
        tf.summary.scalar("reliability/skipped_updates", skipped)
      if guard is not None and int(guard.consecutive.numpy()) >= settings.max_consecutive_skips:
        writer.flush()
        raise errors.NonFiniteError(
            f"stopped at {steps:,} environment steps: the last {int(guard.consecutive.numpy())} updates had non-finite "
            f"gradients or parameters and were skipped; last good checkpoint: {store.latest or 'none'}")
      row = None
      if eval_every and (evaluation_due(steps, st.last_eval, eval_every) or steps >= total_steps):
        st.last_eval = steps // eval_every * eval_every
        st.eval_return = _mean(learner.evaluate(settings.eval_episodes))
        st.best_eval = max(st.best_eval, st.eval_return)
        with writer.as_default(step=steps):
          tf.summary.scalar("charts/eval_return", st.eval_return)
        row = dict(eval_return=st.eval_return)
      if row is not None or stats.returns and len(st.pending_returns) >= 10:
        row = dict(row or {}, metric=learner.curve_metric(), env_steps=steps,
                   wall_time_s=round(time.monotonic() - start_time, 3),
                   train_return=_mean(st.pending_returns), train_episodes=len(st.pending_returns))
        curve.append(row)
        st.pending_returns = []
      if ((settings.checkpoint_every and steps - last_ckpt >= settings.checkpoint_every)
          or (settings.checkpoint_every_seconds and time.monotonic() - last_ckpt_time >= settings.checkpoint_every_seconds)):
        save()
        last_ckpt, last_ckpt_time = steps, time.monotonic()
      if time.monotonic() - last_log >= settings.log_every_seconds or steps >= total_steps:
        last_log = time.monotonic()
        extra = f"return(last 100) {_mean(st.recent_returns):.1f} | eval {st.eval_return:.1f}"
        logging.info(meter.line(steps, extra + (f" | skipped updates {skipped}" if skipped else "")))
      if stop.received is not None and steps < total_steps:
        path = save()
        writer.flush()
        name = signal.Signals(stop.received).name
        raise errors.RunInterrupted(f"stopped by {name} at {steps:,} environment steps; checkpoint {path} written; "
                                    "rerun the same command to resume", stop.received)
  save()
  writer.flush()
  steps = int(learner.env_steps.numpy())
  summary = dict(identity, env_steps=steps, final_eval_return=st.eval_return,
                 best_eval_return=st.best_eval if st.best_eval > float("-inf") else float("nan"),
                 train_return_last100=_mean(st.recent_returns),
                 wall_time_s=round(time.monotonic() - start_time, 2),
                 steps_per_second=round(meter.rate(steps), 1), resumed_from=restored,
                 skipped_updates=int(guard.skipped.numpy()) if guard is not None else 0,
                 damaged_checkpoints=damaged, logdir=logdir, **learner.summary_extra())
  summary = {k: (None if isinstance(v, float) and v != v else v) for k, v in summary.items()}  # NaN -> null (JSON)
  with open(os.path.join(logdir, "summary.json"), "w") as f:
    json.dump(summary, f, indent=2, sort_keys=True)
  return summary
