"""Shared test set-up: quiet TensorFlow and a hand-made environment with exact bookkeeping."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class ScriptedEnv(gym.Env):
  """obs = [step within episode, episode index]; reward = 10·episode + step + 1.

  Action 1 terminates the episode at that step; otherwise a TimeLimit of 3 steps truncates it.
  """
  observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
  action_space = gym.spaces.Discrete(2)

  def __init__(self):
    self.episode = -1
    self.t = 0

  def reset(self, *, seed=None, options=None):
    super().reset(seed=seed)
    self.episode += 1
    self.t = 0
    return np.array([self.t, self.episode], np.float32), {}

  def step(self, action):
    reward = 10.0 * self.episode + self.t + 1
    self.t += 1
    return np.array([self.t, self.episode], np.float32), reward, bool(action == 1), False, {}


if "ScriptedEnv-v0" not in gym.registry:
  gym.register("ScriptedEnv-v0", entry_point=ScriptedEnv, max_episode_steps=3)


@pytest.fixture
def repo_root():
  return REPO


def run_tensorflow_only(script: str, *args) -> dict:
  """Runs `script` (Python that imports TensorFlow, never tf_metarl, and prints one JSON line last)
  in a fresh process with `args` as sys.argv[1:]; returns that JSON."""
  import json
  import subprocess
  import sys
  result = subprocess.run([sys.executable, "-c", script + "assert 'tf_metarl' not in sys.modules\n", *map(str, args)],
                          capture_output=True, text=True, timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  assert result.returncode == 0, result.stderr[-2000:]
  return json.loads(result.stdout.strip().splitlines()[-1])
