"""The EPG paper's analyses as a command (issue 12): Spearman's ρ, and the command end to end on
a one-epoch run (JSON and PNG written, every analysis present and finite)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_spearman_is_the_correlation_of_ranks():
  sys.path.insert(0, REPO)
  from benchmarks.epg_analyses import spearman
  x = np.array([0.3, -1.0, 2.0, 0.1, 5.0])
  assert spearman(x, np.exp(x)) == pytest.approx(1.0)  # any increasing map
  assert spearman(x, -x ** 3) == pytest.approx(-1.0)
  # ranks [2, 0, 3, 1, 4] against [0, 1, 2, 3, 4]: Pearson of ranks = 1 − 6 Σd² / (n(n² − 1)) = 0.5
  assert spearman(x, np.arange(5.0)) == pytest.approx(1 - 6 * (4 + 1 + 1 + 4 + 0) / (5 * 24))


@pytest.mark.slow
def test_the_analyses_command_on_a_one_epoch_run(tmp_path):
  logdir, out = tmp_path / "run", tmp_path / "docs"
  train = subprocess.run([sys.executable, "-m", "tf_metarl.bin.meta_train", "--config=configs/epg_random_pendulum.py:quick",
                          "--config.epochs=1", "--config.epg.updates=3", f"--logdir={logdir}", "--noplot"],
                         capture_output=True, text=True, cwd=REPO, timeout=600)
  assert train.returncode == 0, train.stderr[-3000:]
  analyses = subprocess.run([sys.executable, "benchmarks/epg_analyses.py", f"--logdir={logdir}", "--runs=2",
                             f"--out={out}"], capture_output=True, text=True, cwd=REPO, timeout=600)
  assert analyses.returncode == 0, analyses.stderr[-3000:]
  record = json.loads((out / "results" / "epg_analyses.json").read_text())
  assert (out / "figures" / "epg_analyses.png").stat().st_size > 10_000
  assert set(record["kl"]) == {"evolved loss, no rewards", "random loss, no rewards", "PPO, with rewards"}
  for kl in record["kl"].values():
    assert np.array(kl["per_run"]).shape == (2, 3) and np.all(np.array(kl["per_run"]) >= 0)
  assert len(record["spearman"]) == 4
  assert all(-1 <= r <= 1 for v in record["spearman"].values() for r in v["per_run"])
  sensitivity = record["sensitivity"]["evolved loss, no rewards"]
  assert set(sensitivity) == {"observations", "behaviour_actions", "episode_ends", "policy_outputs", "memory"}
  assert all(len(v) == 128 and np.all(np.isfinite(v)) for v in sensitivity.values())
  assert sensitivity["observations"][-1] > 0  # the last sample's loss reads its own state


def test_recorded_buffers_are_the_first_transitions_of_each_stream(tmp_path):
  sys.path.insert(0, REPO)
  from benchmarks.epg_analyses import recorded_buffers
  from tests.test_recording import RUN, segment
  from tf_metarl.envs.gym_envs import describe_env
  from tf_metarl.recording import EpisodeRecorder
  info = describe_env("Pendulum-v1")
  data = segment(np.random.default_rng(3), 1, 80, [(0, 39, False), (0, 79, False)])
  recorder = EpisodeRecorder(str(tmp_path / "ds"), info, RUN)
  recorder.add(data)
  recorder.close()
  buffers = recorded_buffers(str(tmp_path / "ds"), info, 2, 32)
  np.testing.assert_array_equal(buffers.observations.numpy()[1], data.observations[0, 40:72])
  np.testing.assert_array_equal(buffers.log_probs.numpy()[0], data.log_probs[0, :32])
  with pytest.raises(SystemExit, match="fewer than N = 64"):
    recorded_buffers(str(tmp_path / "ds"), info, 2, 64)
