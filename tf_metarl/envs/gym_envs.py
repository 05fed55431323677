"""Gymnasium environment factories with validated ids and a compact description of their spaces."""
from __future__ import annotations

import dataclasses
import difflib
from typing import Optional, Tuple

import gymnasium as gym
import numpy as np
from absl import logging

from tf_metarl import errors

DISCRETE = "discrete"
CONTINUOUS = "continuous"


@dataclasses.dataclass(frozen=True)
class EnvInfo:
  """What networks and objectives need to know about an environment.

  Attributes:
    env_id: the gymnasium id.
    observation_shape: shape of one observation (float32 vector observations only).
    action_kind: `"discrete"` or `"continuous"`.
    num_actions: number of discrete actions (discrete only, else 0).
    action_low, action_high: bounds of a Box action space, shape [action_dim] (continuous only).
    max_episode_steps: the id's time limit (None: none registered).
  """
  env_id: str
  observation_shape: Tuple[int, ...]
  action_kind: str
  num_actions: int = 0
  action_low: Optional[Tuple[float, ...]] = None
  action_high: Optional[Tuple[float, ...]] = None
  max_episode_steps: Optional[int] = None

  @property
  def action_dim(self) -> int:
    """Size of the action vector: 1 for discrete (an index), else the Box dimension."""
    return len(self.action_low) if self.action_kind == CONTINUOUS else 1

  def to_json(self) -> dict:
    return dataclasses.asdict(self)


def _route_mujoco_warnings() -> None:
  """MuJoCo prints its warnings to stderr and appends them to MUJOCO_LOG.TXT in the working
  directory; gymnasium's v5 models trigger one (`settotalmass` is deprecated in MuJoCo 4) for
  every copy. MuJoCo has one process-wide hook for them: route them to absl logging, each
  distinct message once."""
  try:
    import mujoco
  except ImportError:
    return
  if getattr(mujoco.get_mju_user_warning(), "_tf_metarl", False):
    return
  seen = set()

  def warn(message):
    if message not in seen:
      seen.add(message)
      logging.warning("MuJoCo: %s", message)
  warn._tf_metarl = True
  mujoco.set_mju_user_warning(warn)


def _check_id(env_id: str) -> None:
  if not isinstance(env_id, str) or not env_id:
    raise errors.UnknownEnvironmentError(f"environment id must be a non-empty string, got {env_id!r}")
  if env_id not in gym.registry:
    close = difflib.get_close_matches(env_id, list(gym.registry), n=3, cutoff=0.75)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise errors.UnknownEnvironmentError(f"unknown environment id {env_id!r}: not registered with gymnasium{hint}")


def make_env(env_id: str, **kwargs) -> gym.Env:
  """Creates one gymnasium environment, with a one-line error for unknown ids or missing extras."""
  _check_id(env_id)
  _route_mujoco_warnings()
  try:
    return gym.make(env_id, **kwargs)
  except gym.error.DependencyNotInstalled as e:
    raise errors.UnknownEnvironmentError(f"environment {env_id!r} needs an extra that is not installed: {e}") from None


def make_vector_env(env_id: str, num_envs: int, seed: int = 0, asynchronous: bool = False,
                    **kwargs) -> gym.vector.VectorEnv:
  """Creates `num_envs` copies that reset in the same step (final observation in infos).

  `asynchronous`: the copies step in worker processes (gymnasium's `AsyncVectorEnv`), so a caller
  can compute between `step_async` and `step_wait` (`RolloutCollector.send` / `receive`);
  otherwise they step one after the other in this process.

  With `SAME_STEP` autoreset, `step` returns the first observation of the next episode for copies
  whose episode ended, and the true last observation under `infos["final_obs"]`; collection uses
  it to bootstrap truncated episodes. `kwargs` go to every copy's constructor.
  """
  _check_id(env_id)
  if num_envs < 1:
    raise errors.ConfigError(f"num_envs must be >= 1, got {num_envs}")
  _route_mujoco_warnings()
  try:
    env = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="async" if asynchronous else "sync",
                       vector_kwargs=dict(autoreset_mode=gym.vector.AutoresetMode.SAME_STEP), **kwargs)
  except gym.error.DependencyNotInstalled as e:
    raise errors.UnknownEnvironmentError(f"environment {env_id!r} needs an extra that is not installed: {e}") from None
  env.action_space.seed(seed)  # The first reset (and its seed) is the collector's.
  return env


def as_vector_env(env) -> gym.vector.VectorEnv:
  """Returns `env` if it is a vector env, else wraps a single env as a one-copy SAME_STEP vector env."""
  if isinstance(env, gym.vector.VectorEnv):
    return env
  if not isinstance(env, gym.Env):
    raise errors.IncompatibleSpaceError(f"expected a gymnasium Env or VectorEnv, got {type(env).__name__}")
  return gym.vector.SyncVectorEnv([lambda: env], autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)


def describe_spaces(env_id: str, observation_space: gym.Space, action_space: gym.Space) -> EnvInfo:
  """Builds an `EnvInfo` from single-copy spaces, rejecting spaces the networks cannot handle."""
  if not isinstance(observation_space, gym.spaces.Box) or len(observation_space.shape) != 1:
    raise errors.IncompatibleSpaceError(
        f"{env_id}: only flat Box observations are supported, got {observation_space}")
  obs_shape = tuple(int(d) for d in observation_space.shape)
  if isinstance(action_space, gym.spaces.Discrete):
    return EnvInfo(env_id, obs_shape, DISCRETE, num_actions=int(action_space.n))
  if isinstance(action_space, gym.spaces.Box) and len(action_space.shape) == 1:
    low, high = np.asarray(action_space.low, np.float64), np.asarray(action_space.high, np.float64)
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
      raise errors.IncompatibleSpaceError(f"{env_id}: continuous actions must be bounded, got {action_space}")
    return EnvInfo(env_id, obs_shape, CONTINUOUS, action_low=tuple(low.tolist()), action_high=tuple(high.tolist()))
  raise errors.IncompatibleSpaceError(
      f"{env_id}: only Discrete or flat Box action spaces are supported, got {action_space}")


def describe_env(env_id: str) -> EnvInfo:
  """Returns the `EnvInfo` of a registered gymnasium id (creates and closes one copy)."""
  env = make_env(env_id)
  try:
    info = describe_spaces(env_id, env.observation_space, env.action_space)
    limit = env.spec.max_episode_steps if env.spec is not None else None
    return dataclasses.replace(info, max_episode_steps=None if limit is None else int(limit))
  finally:
    env.close()
