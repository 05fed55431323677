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

Two variants each add one property of reinforcement learning back, to find which one stops a
meta-learner that learns on the bandit:
- `tf_metarl/ContextualBanditDelayed-v0` (credit assignment through time): the same regrets, summed
  and paid at the episode's last step, which terminates the episode; every other step pays 0. The
  observation appends the time t / EPISODE_STEPS and the unpaid sum / EPISODE_STEPS, so it stays
  Markov. Q(s_t, a) = γ^(T-1-t)·(r_t(a) + terms free of a): ∇_a Q still points at a*(s_t), but a
  critic learns it only by bootstrapping back through up to T - 1 steps of zero reward.
- `tf_metarl/ContextualReach-v0` (actions that change what comes next): the context is drawn once per
  episode and a*(c) becomes a point to reach. The observation is [c, p], the position p starts at
  0 and moves p' = clip(p + REACH_STEP·a, -1, 1), and r = -mean_d (p'_d - a*_d(c))². Reaching a* takes
  up to 4 steps, so Q depends on where the action leaves p and a critic must bootstrap V(p') to
  learn it. Moving straight at a* is optimal, so ∇_a r and ∇_a Q agree in direction.
"""
from __future__ import annotations

import functools

import gymnasium as gym
import numpy as np

OBSERVATION_DIM = 4
ACTION_DIM = 2
EPISODE_STEPS = 20
BEST_ACTION_SCALE = 0.8  # a* stays inside the bounds, so the best policy is not at a bound
REACH_STEP = 0.25  # ContextualReach: how far one action of norm 1 per component moves the position


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
  `action_dim`: the number of action components; `delayed_reward`: pay the episode's summed regrets
  at its last step (`ContextualBanditDelayed-v0`)."""
  metadata = {"render_modes": []}

  def __init__(self, best_action_scale: float = BEST_ACTION_SCALE, action_dim: int = ACTION_DIM,
               delayed_reward: bool = False):
    self.best_action_scale = float(best_action_scale)
    self.action_dim = int(action_dim)
    self.delayed_reward = bool(delayed_reward)
    low, high = [-1.0] * OBSERVATION_DIM, [1.0] * OBSERVATION_DIM
    if self.delayed_reward:  # time in [0, 1], unpaid sum / EPISODE_STEPS in [-4, 0]
      low, high = low + [0.0, -4.0], high + [1.0, 0.0]
    self.observation_space = gym.spaces.Box(np.float32(low), np.float32(high), dtype=np.float32)
    self.action_space = gym.spaces.Box(-1.0, 1.0, (self.action_dim,), np.float32)
    self._context = None
    self._step = 0
    self._unpaid = 0.0

  def _observe(self):
    self._context = self.np_random.uniform(-1.0, 1.0, OBSERVATION_DIM).astype(np.float32)
    if not self.delayed_reward:
      return self._context.copy()
    extra = [self._step / EPISODE_STEPS, self._unpaid / EPISODE_STEPS]
    return np.concatenate([self._context, np.float32(extra)])

  def reset(self, *, seed=None, options=None):
    super().reset(seed=seed)
    self._step, self._unpaid = 0, 0.0
    return self._observe(), {}

  def step(self, action):
    action = np.clip(np.asarray(action, np.float64), -1.0, 1.0)
    regret = -float(np.mean((action - best_actions(self._context, self.best_action_scale, self.action_dim)) ** 2))
    if not self.delayed_reward:
      return self._observe(), regret, False, False, {}
    self._step += 1
    self._unpaid += regret
    if self._step < EPISODE_STEPS:
      return self._observe(), 0.0, False, False, {}
    return self._observe(), self._unpaid, True, False, {}


class ContextualReachEnv(gym.Env):
  """`tf_metarl/ContextualReach-v0` (see the module docstring): observation [c (OBSERVATION_DIM),
  p (action_dim)], float32; the target a*(c) = BEST_ACTION_SCALE·tanh(W c) is inside the bounds."""
  metadata = {"render_modes": []}

  def __init__(self, action_dim: int = ACTION_DIM):
    self.action_dim = int(action_dim)
    self.observation_space = gym.spaces.Box(-1.0, 1.0, (OBSERVATION_DIM + self.action_dim,), np.float32)
    self.action_space = gym.spaces.Box(-1.0, 1.0, (self.action_dim,), np.float32)
    self._context = None
    self._position = None

  def _observe(self):
    return np.concatenate([self._context, self._position]).astype(np.float32)

  def reset(self, *, seed=None, options=None):
    super().reset(seed=seed)
    self._context = self.np_random.uniform(-1.0, 1.0, OBSERVATION_DIM).astype(np.float32)
    self._position = np.zeros(self.action_dim)
    return self._observe(), {}

  def step(self, action):
    action = np.clip(np.asarray(action, np.float64), -1.0, 1.0)
    self._position = np.clip(self._position + REACH_STEP * action, -1.0, 1.0)
    target = best_actions(self._context, action_dim=self.action_dim)
    return self._observe(), -float(np.mean((self._position - target) ** 2)), False, False, {}
