"""Randomised MuJoCo task families (Evolved Policy Gradients, issue 12): gymnasium environments
whose physical parameters are drawn per environment from a seeded sampler.

  tf_metarl/RandomHopper-v5           gravity, friction, body masses of Hopper-v5
  tf_metarl/RandomReacher-v5          the two link lengths of Reacher-v5
  tf_metarl/ForwardBackwardHopper-v5  Hopper-v5 rewarded for running forward (+1) or backward (−1)

A task is drawn at every seeded reset (`reset(seed=s)`: the draw depends on s alone) and kept
through unseeded resets, which is what autoreset in a vector env does; so an inner training,
seeded once, keeps its environment over all its episodes, as EPG's do. `info["task"]` reports
the draw (factors on the nominal values; the direction for the forward-backward Hopper).

Ranges (`randomize="gravity=0.5:1.5,mass=0.5:1.5"`, the format of the classic-control families)
are factors on the nominal values, drawn uniformly: one factor for gravity, one for the sliding
friction of every geom, one per body for the masses (inertias scale with them), one per link for
the Reacher's lengths (the link's capsule and the position of the body it carries scale; its mass
does not). A name the family does not have is a one-line error.
"""
from __future__ import annotations

from typing import Callable, Dict, NamedTuple, Optional

import gymnasium as gym
import numpy as np

from tf_metarl import errors
from tf_metarl.envs.classic_control import parse_ranges


class Parameter(NamedTuple):
  """A randomisable parameter: `size(model)` factors, written by `apply(model, nominal, factors)`
  onto a model whose values are `nominal` (a copy of the model's arrays taken at construction)."""
  size: Callable
  apply: Callable


def _scale_gravity(model, nominal, factors):
  model.opt.gravity[:] = nominal["gravity"] * factors[0]


def _scale_friction(model, nominal, factors):
  model.geom_friction[:, 0] = nominal["geom_friction"][:, 0] * factors[0]


def _scale_masses(model, nominal, factors):
  model.body_mass[1:] = nominal["body_mass"][1:] * factors
  model.body_inertia[1:] = nominal["body_inertia"][1:] * factors[:, None]


def _reacher_link(link: str, carried: str):
  """Scales a capsule along x (its centre and half-length) and the position of the body it carries."""

  def apply(model, nominal, factor):
    import mujoco
    geom = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, link)
    body = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, carried)
    model.geom_pos[geom, 0] = nominal["geom_pos"][geom, 0] * factor
    model.geom_size[geom, 1] = nominal["geom_size"][geom, 1] * factor
    model.body_pos[body, 0] = nominal["body_pos"][body, 0] * factor

  return apply


def _scale_lengths(model, nominal, factors):
  _reacher_link("link0", "body1")(model, nominal, factors[0])
  _reacher_link("link1", "fingertip")(model, nominal, factors[1])


HOPPER_PARAMETERS = {
    "gravity": Parameter(lambda m: 1, _scale_gravity),
    "friction": Parameter(lambda m: 1, _scale_friction),
    "mass": Parameter(lambda m: m.nbody - 1, _scale_masses),
}
REACHER_PARAMETERS = {"length": Parameter(lambda m: 2, _scale_lengths)}
NOMINAL_FIELDS = ("body_mass", "body_inertia", "body_pos", "geom_friction", "geom_pos", "geom_size")

# The families' default ranges (training) and the held-out ones meta-tests use: outside them.
HOPPER_RANGES = "gravity=0.5:1.5,friction=0.5:1.5,mass=0.5:1.5"
HOPPER_HELD_OUT = "gravity=1.5:1.8,friction=0.3:0.5,mass=1.5:1.8"
REACHER_RANGES = "length=0.6:1.4"
REACHER_HELD_OUT = "length=1.4:1.7"


def task_rng(seed: int) -> np.random.Generator:
  """The task sampler of a seeded reset: its own stream, independent of the environment's."""
  return np.random.default_rng([int(seed) % (2**32), 0x7A5C])


class RandomizedMujoco(gym.Wrapper):
  """A MuJoCo environment whose parameters (`parameters`: name -> `Parameter`) are redrawn from
  `ranges` ("name=low:high,...") at every seeded reset; see the module docstring."""

  def __init__(self, env: gym.Env, parameters: Dict[str, Parameter], ranges: str):
    super().__init__(env)
    self.ranges = parse_ranges(ranges)
    unknown = sorted(set(self.ranges) - set(parameters))
    if unknown:
      raise errors.ConfigError(f"{env.spec.id if env.spec else type(env.unwrapped).__name__}: cannot randomise "
                               f"{', '.join(unknown)}; its parameters are {', '.join(parameters)}")
    for name, (low, high) in self.ranges.items():
      if not 0 < low <= high:
        raise errors.ConfigError(f"the range of {name} must satisfy 0 < low <= high (factors), got {low}:{high}")
    self.parameters = parameters
    model = env.unwrapped.model
    self._nominal = {name: np.array(getattr(model, name)) for name in NOMINAL_FIELDS}
    self._nominal["gravity"] = np.array(model.opt.gravity)
    self.task: Optional[Dict[str, np.ndarray]] = None

  def draw(self, seed: Optional[int]) -> Dict[str, np.ndarray]:
    rng = task_rng(seed) if seed is not None else self.env.unwrapped.np_random
    model = self.env.unwrapped.model
    return {name: rng.uniform(low, high, size=self.parameters[name].size(model))
            for name, (low, high) in self.ranges.items()}

  def set_task(self, task: Dict[str, np.ndarray]) -> None:
    model = self.env.unwrapped.model
    for name in self.parameters:  # parameters not drawn keep their nominal values
      if name in task:
        self.parameters[name].apply(model, self._nominal, np.asarray(task[name], np.float64))
    self.task = task

  def reset(self, *, seed=None, options=None):
    if seed is not None or self.task is None:
      self.set_task(self.draw(seed))
    obs, info = self.env.reset(seed=seed, options=options)
    return obs, dict(info, task={k: v.tolist() for k, v in self.task.items()})


class ForwardBackward(gym.Wrapper):
  """Hopper rewarded for running in a direction drawn at every seeded reset (±1, even odds) and
  kept through unseeded ones: the forward reward's weight is multiplied by it. The observation
  does not show it; only the reward does (EPG feeds the reward to its loss for this family)."""

  def __init__(self, env: gym.Env):
    super().__init__(env)
    self._nominal_weight = float(env.unwrapped._forward_reward_weight)
    self.direction: Optional[float] = None

  def reset(self, *, seed=None, options=None):
    if seed is not None or self.direction is None:
      rng = task_rng(seed) if seed is not None else self.env.unwrapped.np_random
      self.direction = float(rng.choice([-1.0, 1.0]))
      self.env.unwrapped._forward_reward_weight = self._nominal_weight * self.direction
    obs, info = self.env.reset(seed=seed, options=options)
    return obs, dict(info, task={"direction": self.direction})


def _hopper(**kwargs):
  from gymnasium.envs.mujoco.hopper_v5 import HopperEnv
  return HopperEnv(**kwargs)


def random_hopper(randomize: str = HOPPER_RANGES, **kwargs) -> gym.Env:
  return RandomizedMujoco(_hopper(**kwargs), HOPPER_PARAMETERS, randomize)


def random_reacher(randomize: str = REACHER_RANGES, **kwargs) -> gym.Env:
  from gymnasium.envs.mujoco.reacher_v5 import ReacherEnv
  return RandomizedMujoco(ReacherEnv(**kwargs), REACHER_PARAMETERS, randomize)


def forward_backward_hopper(**kwargs) -> gym.Env:
  return ForwardBackward(_hopper(**kwargs))


# id -> (entry point, time limit, held-out ranges): registered by envs.registration.
FAMILIES = {
    "tf_metarl/RandomHopper-v5": ("tf_metarl.envs.mujoco_families:random_hopper", 1000, HOPPER_HELD_OUT),
    "tf_metarl/RandomReacher-v5": ("tf_metarl.envs.mujoco_families:random_reacher", 50, REACHER_HELD_OUT),
    "tf_metarl/ForwardBackwardHopper-v5": ("tf_metarl.envs.mujoco_families:forward_backward_hopper", 1000, ""),
}
