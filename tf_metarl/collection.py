"""Collects `Trajectory` batches from a gymnasium vector environment.

The collector keeps the current observation of every copy between calls, so consecutive segments
continue the same episodes, and it keeps per-copy running returns to report finished episodes.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Dict, List, Tuple

import gymnasium as gym
import numpy as np

from tf_metarl import errors
from tf_metarl.envs.gym_envs import as_vector_env
from tf_metarl.trajectories import Trajectory

# act_fn(observations [N, *obs]) -> {"actions", "log_probs" [N], "policy_outputs" [N, P]}.
ActFn = Callable[[np.ndarray], Dict[str, np.ndarray]]


@dataclasses.dataclass
class EpisodeStats:
  """Returns and lengths of episodes that finished during a collection call, and where each
  ended: (copy, step within the collected segment)."""
  returns: List[float] = dataclasses.field(default_factory=list)
  lengths: List[int] = dataclasses.field(default_factory=list)
  positions: List[Tuple[int, int]] = dataclasses.field(default_factory=list)

  def per_step(self, num_envs: int, num_steps: int) -> Tuple[np.ndarray, np.ndarray]:
    """(returns float32 [num_envs, num_steps], lengths int32 [...]): each finished episode's return
    and length at the step where it ended, 0 elsewhere (a length is never 0 where one ended)."""
    returns = np.zeros((num_envs, num_steps), np.float32)
    lengths = np.zeros((num_envs, num_steps), np.int32)
    for (copy, t), ret, length in zip(self.positions, self.returns, self.lengths):
      returns[copy, t], lengths[copy, t] = ret, length
    return returns, lengths


class RolloutCollector:
  """Steps a vector environment (created with SAME_STEP autoreset) with a policy.

  Args:
    env: a gymnasium vector environment whose `step` resets finished copies in the same call and
      reports their last observation in `infos["final_obs"]` (see `envs.make_vector_env`), or a
      single gymnasium environment (wrapped as one copy).
    seed: seeds the first reset.
  """

  def __init__(self, env, seed: int = 0):
    env = as_vector_env(env)
    mode = env.metadata.get("autoreset_mode")
    if mode is not None and mode != gym.vector.AutoresetMode.SAME_STEP:
      raise errors.IncompatibleSpaceError(
          f"the collector needs a vector env with autoreset_mode=SAME_STEP (see envs.make_vector_env), got {mode}")
    self.env = env
    self.num_envs = env.num_envs
    space = env.single_action_space
    self._bounds = (space.low, space.high) if isinstance(space, gym.spaces.Box) else None
    self._discrete = isinstance(space, gym.spaces.Discrete)
    self.total_steps = 0
    self.reset(seed)

  def reset(self, seed: int) -> None:
    """Starts new episodes in every copy (seeded: copy i with seed + i)."""
    obs, _ = self.env.reset(seed=int(seed))
    self.observations = np.asarray(obs, np.float32)
    self._running_return = np.zeros(self.num_envs, np.float64)
    self._running_length = np.zeros(self.num_envs, np.int64)
    self._pending = None  # the actions `send` handed over, until `receive`

  def env_actions(self, actions: np.ndarray) -> np.ndarray:
    """Maps policy actions to what the environment accepts (clipped to a Box's bounds)."""
    if self._bounds is not None:
      return np.clip(actions, self._bounds[0], self._bounds[1])
    return actions

  def collect(self, act_fn: ActFn, num_steps: int):
    """Runs `num_steps` steps in every copy.

    Returns:
      (trajectory [num_envs, num_steps, ...] of numpy arrays, EpisodeStats of finished episodes).
    """
    steps, stats = [], EpisodeStats()
    for t in range(num_steps):
      self.send(act_fn(self.observations))
      step, step_stats = self.receive()
      steps.append(step)
      stats.returns += step_stats.returns
      stats.lengths += step_stats.lengths
      stats.positions += [(i, t) for i, _ in step_stats.positions]
    trajectory = Trajectory(*(np.stack(v, axis=1) for v in zip(*steps)))
    return trajectory, stats

  def send(self, out: Dict[str, np.ndarray]) -> None:
    """First half of one step of every copy: hands the actions of `out` (an ActFn's result for
    `self.observations`) to the environment. An asynchronous vector environment
    (`make_vector_env(..., asynchronous=True)`) starts stepping its worker processes and returns at
    once, so the caller can compute (a TD3 update) while they step; `receive` waits for them."""
    if self._pending is not None:
      raise RuntimeError("RolloutCollector.send called twice without receive")
    actions = np.asarray(out["actions"])
    if isinstance(self.env, gym.vector.AsyncVectorEnv):
      self.env.step_async(self.env_actions(actions))
    self._pending = out

  def receive(self) -> Tuple[Trajectory, EpisodeStats]:
    """Second half of the step `send` began: (one step, Trajectory fields [num_envs], EpisodeStats
    of the episodes that ended in it, positions (copy, 0))."""
    out, self._pending = self._pending, None
    if out is None:
      raise RuntimeError("RolloutCollector.receive called without send")
    actions = np.asarray(out["actions"])
    if isinstance(self.env, gym.vector.AsyncVectorEnv):
      next_obs, rewards, terminated, truncated, infos = self.env.step_wait()
    else:
      next_obs, rewards, terminated, truncated, infos = self.env.step(self.env_actions(actions))
    next_obs = np.asarray(next_obs, np.float32)
    true_next = next_obs.copy()
    ended = np.logical_or(terminated, truncated)
    if "final_obs" in infos:
      for i in np.flatnonzero(infos.get("_final_obs", ended)):
        true_next[i] = np.asarray(infos["final_obs"][i], np.float32)
    step = Trajectory(observations=self.observations,
                      actions=actions.astype(np.int32 if self._discrete else np.float32),
                      rewards=np.asarray(rewards, np.float32), next_observations=true_next,
                      terminated=np.asarray(terminated, np.float32), truncated=np.asarray(truncated, np.float32),
                      policy_outputs=np.asarray(out["policy_outputs"], np.float32),
                      log_probs=np.asarray(out["log_probs"], np.float32),
                      episode_steps=self._running_length.astype(np.float32))
    stats = EpisodeStats()
    self._running_return += rewards
    self._running_length += 1
    for i in np.flatnonzero(ended):
      stats.returns.append(float(self._running_return[i]))
      stats.lengths.append(int(self._running_length[i]))
      stats.positions.append((int(i), 0))
      self._running_return[i] = 0.0
      self._running_length[i] = 0
    self.observations = next_obs
    self.total_steps += self.num_envs
    return step, stats


def evaluate(env: gym.Env, act_fn: Callable[[np.ndarray], np.ndarray], episodes: int, seed: int) -> List[float]:
  """Runs `episodes` full episodes of a single environment with a greedy policy; returns their returns.

  `act_fn` maps one observation batch [1, *obs] to environment-ready actions [1, ...].
  """
  returns = []
  for k in range(episodes):
    obs, _ = env.reset(seed=seed + k)
    total, done = 0.0, False
    while not done:
      action = act_fn(np.asarray(obs, np.float32)[None])[0]
      obs, reward, terminated, truncated, _ = env.step(action)
      total += float(reward)
      done = terminated or truncated
    returns.append(total)
  return returns
