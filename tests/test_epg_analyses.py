"""The EPG paper's analyses as a command (issue 12): Spearman's ρ and the buffers read from
recorded data. The command end to end runs in tests/test_binaries.py, on the run that test
meta-trains."""
import os
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
