"""The shared run loop's guarantees, on a small stand-in learner (no environment): damaged
checkpoints fall back or fail in one line without touching anything, a stopped and resumed run
equals an uninterrupted one, non-finite updates are skipped and stop the run, nothing non-finite
is checkpointed, and bad settings are refused."""
import os
import signal

import numpy as np
import pytest
import tensorflow as tf

from tf_metarl import errors
from tf_metarl.agents.optimizers import SGD, apply_if_finite
from tf_metarl.collection import EpisodeStats
from tf_metarl.learners.checkpoints import CheckpointStore, checkpoint_numbers, non_finite_entries
from tf_metarl.learners.loop import RunSettings, Trainable, read_learning_curve, run_training
from tf_metarl.learners.update_guard import UpdateGuard

STEP = 10  # environment steps per iteration


class NoisyLearner(Trainable):
  """One parameter moved by random gradients; three random episode returns per iteration (so the
  loop carries unfinished learning-curve rows between iterations). `poison_after`: gradients turn
  NaN past that step. `signal_at`: sends itself SIGTERM at that step."""

  def __init__(self, seed=0, poison_after=None, signal_at=None):
    self.env_steps = tf.Variable(0, dtype=tf.int64)
    self.w = tf.Variable(1.0)
    self.rng = tf.random.Generator.from_seed(seed)
    self.guard = UpdateGuard()
    self.poison_after, self.signal_at = poison_after, signal_at

  def checkpoint_items(self):
    return dict(w=self.w, rng=self.rng, env_steps=self.env_steps, guard=self.guard)

  def iteration(self):
    self.env_steps.assign_add(STEP)
    steps = int(self.env_steps.numpy())
    grad = self.rng.normal([])
    if self.poison_after is not None and steps > self.poison_after:
      grad = grad * np.nan
    (w,), _, skipped = apply_if_finite(SGD(0.1), [self.w], [grad], ())
    self.w.assign(w)
    self.guard.record(skipped)
    if self.signal_at == steps:
      os.kill(os.getpid(), signal.SIGTERM)
    return {"w": float(self.w.numpy())}, EpisodeStats(returns=self.rng.normal([3]).numpy().tolist(), lengths=[1] * 3)

  def evaluate(self, episodes):
    return [float(self.w.numpy())] * episodes


def settings(**overrides):
  values = dict(eval_every=70, eval_episodes=1, checkpoint_every=100, checkpoint_every_seconds=0, log_every_seconds=60)
  values.update(overrides)
  return RunSettings(**values)


def train(logdir, steps, learner=None, **overrides):
  return run_training(learner or NoisyLearner(), steps, str(logdir), {"run": "test"}, settings(**overrides))


def curve(logdir):
  columns = ("env_steps", "train_return", "train_episodes", "eval_return")
  return [[row[c] for c in columns] for row in read_learning_curve(os.path.join(logdir, "learning_curve.csv"))]


def snapshot(directory):
  """{relative path: bytes} of every file under `directory`."""
  out = {}
  for root, _, files in os.walk(directory):
    for name in files:
      path = os.path.join(root, name)
      with open(path, "rb") as f:
        out[os.path.relpath(path, directory)] = f.read()
  return out


def test_a_run_stopped_by_sigterm_resumes_to_the_uninterrupted_run(tmp_path):
  train(tmp_path / "whole", 500)
  with pytest.raises(errors.RunInterrupted, match="stopped by SIGTERM at 230 environment steps") as stop:
    train(tmp_path / "split", 500, NoisyLearner(signal_at=230))
  assert stop.value.signum == signal.SIGTERM
  assert checkpoint_numbers(tmp_path / "split" / "checkpoints")[-1] == 230  # written at the signal, between step checkpoints
  resumed = train(tmp_path / "split", 500)
  assert resumed["resumed_from"] == 230
  whole, split = curve(tmp_path / "whole"), curve(tmp_path / "split")
  assert len(whole) >= 10
  np.testing.assert_array_equal(whole, split)  # rows straddling the stop included: the loop's own state is checkpointed


def test_time_based_checkpoints(tmp_path):
  train(tmp_path, 60, checkpoint_every=0, checkpoint_every_seconds=1e-6)
  assert checkpoint_numbers(tmp_path / "checkpoints") == [50, 60]  # every iteration, the newest two kept


def _truncate_newest_data(ckpt_dir):
  newest = checkpoint_numbers(ckpt_dir)[-1]
  data = [n for n in os.listdir(ckpt_dir) if n.startswith(f"ckpt-{newest}.data")][0]
  with open(ckpt_dir / data, "r+b") as f:
    f.truncate(4)


def _garble_newest_index(ckpt_dir):
  (ckpt_dir / f"ckpt-{checkpoint_numbers(ckpt_dir)[-1]}.index").write_bytes(b"garbage")


def _poison_newest(ckpt_dir):
  """Rewrites the newest checkpoint with a NaN parameter (as a run without guards could have)."""
  path = str(ckpt_dir / f"ckpt-{checkpoint_numbers(ckpt_dir)[-1]}")
  learner = NoisyLearner()
  checkpoint = tf.train.Checkpoint(**learner.checkpoint_items(), loop_state=tf.Variable("{}"))
  checkpoint.restore(path)
  learner.w.assign(np.nan)
  checkpoint.write(path)


@pytest.mark.parametrize("damage, resumed_from", [
    (lambda d: (d / "checkpoint").write_text("garbage"), 300),
    (lambda d: os.remove(d / "checkpoint"), 300),
    (_truncate_newest_data, 200),
    (_garble_newest_index, 200),
    (_poison_newest, 200),
])
def test_damaged_checkpoints_fall_back_and_the_run_goes_on(damage, resumed_from, tmp_path):
  train(tmp_path / "whole", 400)
  with pytest.raises(errors.RunInterrupted):
    train(tmp_path / "run", 400, NoisyLearner(signal_at=300))
  ckpt_dir = tmp_path / "run" / "checkpoints"
  assert checkpoint_numbers(ckpt_dir) == [200, 300]
  damage(ckpt_dir)
  summary = train(tmp_path / "run", 400)
  assert summary["resumed_from"] == resumed_from and summary["env_steps"] == 400
  assert (resumed_from == 300) == (summary["damaged_checkpoints"] == [])
  assert checkpoint_numbers(ckpt_dir) == [300, 400]
  assert all(not non_finite_entries(str(ckpt_dir / f"ckpt-{n}")) for n in (300, 400))
  assert tf.train.latest_checkpoint(str(ckpt_dir)).endswith("ckpt-400")  # the index is rewritten for other tools
  np.testing.assert_array_equal(curve(tmp_path / "whole"), curve(tmp_path / "run"))


def test_when_nothing_restores_one_error_and_nothing_changes(tmp_path):
  train(tmp_path, 300)
  ckpt_dir = tmp_path / "checkpoints"
  for number in checkpoint_numbers(ckpt_dir):
    (ckpt_dir / f"ckpt-{number}.index").write_bytes(b"garbage")
  before = snapshot(tmp_path)
  with pytest.raises(errors.CheckpointError, match=r"no checkpoint in .* restores .*rerun with --fresh") as e:
    train(tmp_path, 400)
  assert "\n" not in str(e.value)
  assert snapshot(tmp_path) == before


def test_fresh_moves_the_old_run_aside(tmp_path):
  logdir = tmp_path / "run"
  train(logdir, 200)
  summary = run_training(NoisyLearner(), 100, str(logdir), {"run": "test"}, settings(), fresh=True)
  assert summary["resumed_from"] == 0
  assert checkpoint_numbers(tmp_path / "run.old-1" / "checkpoints") == [100, 200]


def test_corrupt_run_file_is_one_line(tmp_path):
  train(tmp_path, 100)
  (tmp_path / "run.json").write_text("{not json")
  with pytest.raises(errors.CheckpointError, match=r"run.json is unreadable .*--fresh"):
    train(tmp_path, 200)


def test_non_finite_updates_are_skipped_then_stop_the_run_with_its_checkpoints_finite(tmp_path):
  with pytest.raises(errors.NonFiniteError, match=r"stopped at 300 environment steps: the last 5 updates .* "
                                                 r"last good checkpoint: .*ckpt-200"):
    train(tmp_path, 1000, NoisyLearner(poison_after=250), max_consecutive_skips=5)
  ckpt_dir = tmp_path / "checkpoints"
  assert checkpoint_numbers(ckpt_dir) == [100, 200]
  assert all(not non_finite_entries(str(ckpt_dir / f"ckpt-{n}")) for n in (100, 200))


def test_skipped_updates_are_counted_in_the_summary(tmp_path):
  summary = train(tmp_path, 400, NoisyLearner(poison_after=250), max_consecutive_skips=100)
  assert summary["skipped_updates"] == 15  # steps 260..400
  assert np.isfinite(read_learning_curve(str(tmp_path / "learning_curve.csv"))[-1]["eval_return"])


def test_a_checkpoint_is_never_written_with_non_finite_values(tmp_path):
  learner = NoisyLearner()
  store = CheckpointStore(str(tmp_path), tf.train.Checkpoint(**learner.checkpoint_items()), lambda p: None,
                          lambda p: None)
  store.save(10)
  learner.w.assign(np.inf)
  with pytest.raises(errors.NonFiniteError, match="refusing to checkpoint non-finite values"):
    store.save(20)
  assert checkpoint_numbers(tmp_path) == [10]
  assert not any(name.startswith("ckpt-20") for name in os.listdir(tmp_path))


@pytest.mark.parametrize("overrides, message", [
    (dict(checkpoint_every=-1), "config.checkpoint_every must be >= 0"),
    (dict(eval_episodes=0), "config.eval_episodes must be >= 1 when config.eval_every > 0"),
    (dict(log_every_seconds=0), "config.log_every_seconds must be > 0"),
    (dict(checkpoint_every_seconds=-5.0), "config.checkpoint_every_seconds must be >= 0"),
    (dict(max_consecutive_skips=0), "config.max_consecutive_skips must be >= 1"),
])
def test_nonsensical_run_settings_are_refused_before_anything_is_written(overrides, message, tmp_path):
  with pytest.raises(errors.ConfigError, match=message):
    train(tmp_path / "run", 100, **overrides)
  assert not (tmp_path / "run").exists()


def test_run_settings_from_a_config_check_types():
  with pytest.raises(errors.ConfigError, match="config.eval_every must be int, got 'often'"):
    RunSettings.from_config({"eval_every": "often", "steps": 5})
  assert RunSettings.from_config({"checkpoint_every": 7, "other": 1}).checkpoint_every == 7


def test_a_resume_with_another_eval_every_evaluates_on_its_multiples(tmp_path):
  """Evaluated at 70 and 140 (eval_every=70), stopped at 150; resumed with eval_every=100: the next
  evaluations fall at 200 and 300 (the multiples), not at 240 (the old last one + 100) and 300."""
  train(tmp_path, 150)
  train(tmp_path, 300, eval_every=100)
  evaluated = [row[0] for row in curve(tmp_path) if not np.isnan(row[3])]
  assert evaluated == [70, 140, 150, 200, 300]
