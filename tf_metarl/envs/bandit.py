"""A continuous contextual bandit with a known best action: a diagnostic for learned objectives.

Each step shows a context s ~ U(-1, 1)^4, independent of everything before; the action a in
[-1, 1]^2 earns r = -mean_d (a_d - a*_d(s))², with a*(s) = 0.8·tanh(W s) for one fixed matrix W
(the same in every copy, so the task is one function to learn). Episodes last `EPISODE_STEPS`
steps and are truncated, never terminated, so replayed segments are whole episodes.

`tf_metarl/ContextualBanditAtBound-v0` is the same task with a*(s) = clip(10·tanh(W s), -1, 1): the
best action sits at a bound for about 88% of the action components (TD3's Pendulum-v1 policies
put 88–93% there: bang-bang swing-up), where a tanh policy's gradient vanishes.
`tf_metarl/ContextualBandit1D-v0` and `tf_metarl/ContextualBandit6D-v0` are the first task with 1
and 6 action dimensions (W's first rows are shared): unseen action dimensions for an objective
meta-trained on the 2-dimensional one.

Why it exists: the action cannot change what comes next, so Q(s, a) = r(s, a) + a constant,
∇_a Q points at a*(s), and a policy's regret E[-r(s, π(s))] is its exact distance from the best
policy. A learned objective (MetaGenRL's L_α) meta-trained here has a stationary, nearly noise-free
signal; whether it learns to point uphill here separates a meta-learner that cannot learn from one
that lacks budget on harder environments (docs/RESULTS.md, MetaGenRL).
"""
from __future__ import annotations

import functools

import gymnasium as gym
import numpy as np

OBSERVATION_DIM = 4
ACTION_DIM = 2
EPISODE_STEPS = 20
BEST_ACTION_SCALE = 0.8  # a* stays inside the bounds, so the best policy is not at a bound


@functools.lru_cache(maxsize=None)
def best_action_matrix(action_dim: int = ACTION_DIM) -> np.ndarray:
  """W [action_dim, OBSERVATION_DIM], fixed (read-only, computed once per action_dim): entries
  N(0, 1) from seed 0, row by row (so the first rows are the same for every action_dim)."""
  matrix = np.random.default_rng(0).standard_normal((action_dim, OBSERVATION_DIM))
  matrix.setflags(write=False)
  return matrix


def best_actions(observations: np.ndarray, scale: float = BEST_ACTION_SCALE, action_dim: int = ACTION_DIM) -> np.ndarray:
  """a*(s) [..., action_dim] for contexts [..., OBSERVATION_DIM]: clip(scale·tanh(W s), -1, 1)."""
  matrix = best_action_matrix(action_dim)
  return np.clip(scale * np.tanh(np.asarray(observations, np.float64) @ matrix.T), -1.0, 1.0)


class ContextualBanditEnv(gym.Env):
  """`tf_metarl/ContextualBandit-v0` (see the module docstring); float32 observations and actions.
  `best_action_scale`: the scale of a*(s) before clipping (10.0: `ContextualBanditAtBound-v0`);
  `action_dim`: the number of action components."""
  metadata = {"render_modes": []}

  def __init__(self, best_action_scale: float = BEST_ACTION_SCALE, action_dim: int = ACTION_DIM):
    self.best_action_scale = float(best_action_scale)
    self.action_dim = int(action_dim)
    self.observation_space = gym.spaces.Box(-1.0, 1.0, (OBSERVATION_DIM,), np.float32)
    self.action_space = gym.spaces.Box(-1.0, 1.0, (self.action_dim,), np.float32)
    self._context = None

  def _draw(self):
    self._context = self.np_random.uniform(-1.0, 1.0, OBSERVATION_DIM).astype(np.float32)
    return self._context.copy()

  def reset(self, *, seed=None, options=None):
    super().reset(seed=seed)
    return self._draw(), {}

  def step(self, action):
    action = np.clip(np.asarray(action, np.float64), -1.0, 1.0)
    reward = -float(np.mean((action - best_actions(self._context, self.best_action_scale, self.action_dim)) ** 2))
    return self._draw(), reward, False, False, {}
