"""Gymnasium's classic-control environments, TensorFlow-native and batched, with randomised tasks.

CartPole-v1, a continuous-action CartPole, Acrobot-v1, Pendulum-v1, MountainCar-v0 and
MountainCarContinuous-v0 as pure functions over a `ClassicState` of batched tensors (the
`envs.batched` protocol), so a rollout of thousands of copies, and a whole training run around it,
is one `tf.function`, as gymnax does in JAX. Each reproduces gymnasium 1.4's equations, constants,
initial-state distribution, termination and time limit (`tests/test_classic_control.py` checks them
step by step against gymnasium's own implementation); gymnasium twins are registered as
`tf_metarl/<id>`.

Randomised task families: every physical parameter (`Environment.PARAMETERS`) can be drawn per copy
at each reset (or, with `keep_tasks`, once per copy), uniformly from a range (with `reset_period`
p, copies c and c + kp draw the same task and initial state: common random numbers), e.g.
`Pendulum(randomize={"mass": (0.5, 2.0)})`. The draw is
part of the state, so one batch holds many tasks, and each step reports the parameters of its
episode in `info["parameters/<name>"]`.

Dynamics run in `dtype` (float32 by default; float64 reproduces gymnasium's NumPy arithmetic over
thousands of steps). Observations and rewards are float32 either way.

Written by hand because no TensorFlow implementation of these environments is maintained (gymnax
is the JAX one); the equations follow gymnasium's source line by line.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Dict, Mapping, NamedTuple, Optional, Tuple

import gymnasium as gym
import numpy as np
import tensorflow as tf

from tf_metarl import errors


class ClassicState(NamedTuple):
  """Batched state.

  physics: [B, S] in the environment's dtype (the gymnasium environment's `state`).
  parameters: name -> [B] physical parameters of each copy's current task.
  steps: int32 [B], steps taken in the current episode (for the time limit).
  """
  physics: tf.Tensor
  parameters: Dict[str, tf.Tensor]
  steps: tf.Tensor


@dataclasses.dataclass(frozen=True)
class Parameter:
  """A physical parameter: its gymnasium value and the physical range (`minimum` excluded)."""
  default: float
  minimum: float = 0.0
  unit: str = ""


class Environment:
  """Base of the batched classic-control environments; subclasses define the equations.

  Discrete environments take int32 actions [B] in [0, num_actions); continuous ones float32
  [B, action_dim] (gymnasium clips them as the original does; the original's action space is
  `action_low`..`action_high`).
  """
  gym_id: str
  PARAMETERS: Dict[str, Parameter]
  physics_size: int
  observation_size: int
  max_episode_steps: int
  observation_high: Tuple[float, ...]
  num_actions: Optional[int] = None  # discrete
  action_dim: Optional[int] = None  # continuous
  action_low: float = -1.0
  action_high: float = 1.0

  def __init__(self, randomize: Optional[Mapping[str, Tuple[float, float]]] = None, dtype=tf.float32,
               max_episode_steps: Optional[int] = None, keep_tasks: bool = False, reset_period: int = 0):
    self.dtype = tf.as_dtype(dtype)
    self.keep_tasks = bool(keep_tasks)
    if int(reset_period) < 0:
      raise errors.ConfigError(f"{type(self).__name__}: reset_period must be >= 0, got {reset_period}")
    self.reset_period = int(reset_period)
    self.randomize = {}
    for name, bounds in dict(randomize or {}).items():
      if name not in self.PARAMETERS:
        raise errors.ConfigError(f"{type(self).__name__} has no parameter {name!r}; "
                                 f"it has {', '.join(sorted(self.PARAMETERS))}")
      try:
        low, high = (float(b) for b in bounds)
      except (TypeError, ValueError):
        raise errors.ConfigError(f"{type(self).__name__}: the range of {name} must be (low, high), got {bounds!r}")
      if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise errors.ConfigError(f"{type(self).__name__}: the range of {name} is empty or not finite: ({low}, {high})")
      if low <= self.PARAMETERS[name].minimum:
        raise errors.ConfigError(f"{type(self).__name__}: {name} must stay above {self.PARAMETERS[name].minimum:g}, "
                                 f"got the range ({low:g}, {high:g})")
      self.randomize[name] = (low, high)
    if max_episode_steps is not None and int(max_episode_steps) < 1:
      raise errors.ConfigError(f"{type(self).__name__}: max_episode_steps must be positive, got {max_episode_steps}")
    self.max_episode_steps = int(max_episode_steps or type(self).max_episode_steps)

  @property
  def discrete(self) -> bool:
    return self.num_actions is not None

  # --- the equations, in subclasses ---
  def initial_physics(self, seed: tf.Tensor, batch_size, parameters) -> tf.Tensor:
    raise NotImplementedError

  def dynamics(self, physics, parameters, actions):
    """-> (next physics [B, S], rewards [B] in dtype, terminated bool [B])."""
    raise NotImplementedError

  def observations(self, physics) -> tf.Tensor:
    """Physics [B, S] -> observations [B, O] in dtype."""
    return physics

  # --- the batched protocol ---
  def draw_parameters(self, seed: tf.Tensor, batch_size) -> Dict[str, tf.Tensor]:
    """Each copy's task: defaults, with the randomised parameters drawn uniformly. seed: [2] int."""
    seeds = tf.random.experimental.stateless_split(seed, num=max(len(self.randomize), 1))
    out = {}
    for name, parameter in self.PARAMETERS.items():
      out[name] = tf.fill([batch_size], tf.constant(parameter.default, self.dtype))
    for i, (name, (low, high)) in enumerate(sorted(self.randomize.items())):
      out[name] = tf.random.stateless_uniform([batch_size], seeds[i], low, high, dtype=self.dtype)
    return out

  def reset(self, seed: tf.Tensor, batch_size) -> ClassicState:
    """New episodes (and new tasks) for `batch_size` copies. seed: [2] int."""
    task_seed, state_seed = tf.unstack(tf.random.experimental.stateless_split(seed, num=2))
    draws = self.reset_period or batch_size
    parameters = self.draw_parameters(task_seed, draws)
    physics = self.initial_physics(state_seed, draws, parameters)
    if self.reset_period:  # copies c and c + k·period draw alike (common random numbers)
      repeat = lambda x: tf.tile(x, tf.concat([[batch_size // draws], tf.ones([tf.rank(x) - 1], tf.int32)], 0))
      parameters, physics = tf.nest.map_structure(repeat, (parameters, physics))
    return ClassicState(physics, parameters, tf.zeros([batch_size], tf.int32))

  def observe(self, state: ClassicState) -> tf.Tensor:
    """float32 [B, O]."""
    return tf.cast(self.observations(state.physics), tf.float32)

  def step(self, state: ClassicState, actions):
    """One step of every copy, no reset.

    Returns (next state, rewards float32 [B], terminated bool [B], truncated bool [B]); truncated
    marks the step that reaches the time limit, as gymnasium's `TimeLimit` does.
    """
    physics, rewards, terminated = self.dynamics(state.physics, state.parameters, actions)
    steps = state.steps + 1
    return (ClassicState(physics, state.parameters, steps), tf.cast(rewards, tf.float32), terminated,
            steps >= self.max_episode_steps)

  def step_autoreset(self, state: ClassicState, actions, seed: tf.Tensor):
    """`step`, then copies whose episode ended (terminated or truncated) start a new episode of a
    newly drawn task (SAME_STEP autoreset), or of the same task with `keep_tasks` (each copy then
    keeps the task of its first reset: an EPG inner training's environment).

    Returns (state to continue from, true next observations float32 [B, O], rewards float32 [B],
    terminated bool [B], info: truncated bool [B] and the stepped episode's randomised
    parameters, float32 [B] each, under "parameters/<name>").
    """
    next_state, rewards, terminated, truncated = self.step(state, actions)
    ended = terminated | truncated
    fresh = self.reset(seed, tf.shape(ended)[0])
    if self.keep_tasks:
      fresh = fresh._replace(parameters=state.parameters)
    continued = tf.nest.map_structure(
        lambda f, n: tf.where(tf.reshape(ended, [-1] + [1] * (n.shape.rank - 1)), f, n), fresh, next_state)
    info = {"truncated": truncated}
    info.update({f"parameters/{name}": tf.cast(state.parameters[name], tf.float32) for name in sorted(self.randomize)})
    return continued, self.observe(next_state), rewards, terminated, info

  def _uniform(self, seed, shape, low, high):
    return tf.random.stateless_uniform(shape, seed, low, high, dtype=self.dtype)

  def _continuous_action(self, actions):
    return tf.cast(tf.reshape(actions, [-1, self.action_dim])[:, 0], self.dtype)


class CartPole(Environment):
  """CartPole-v1: push left (0) or right (1) with a fixed force; +1 per step, including the last;
  terminates when |x| > 2.4 or |θ| > 12°; 500 steps. Physics (x, ẋ, θ, θ̇), Euler steps of 0.02 s."""
  gym_id = "CartPole-v1"
  PARAMETERS = {"gravity": Parameter(9.8, unit="m/s²"), "cart_mass": Parameter(1.0, unit="kg"),
                "pole_mass": Parameter(0.1, unit="kg"), "half_length": Parameter(0.5, unit="m"),
                "force": Parameter(10.0, unit="N")}
  physics_size = observation_size = 4
  max_episode_steps = 500
  observation_high = (4.8, np.inf, 12 * 2 * math.pi / 360 * 2, np.inf)
  num_actions = 2
  TAU = 0.02
  X_THRESHOLD = 2.4
  THETA_THRESHOLD = 12 * 2 * math.pi / 360

  def initial_physics(self, seed, batch_size, parameters):
    return self._uniform(seed, [batch_size, 4], -0.05, 0.05)

  def applied_force(self, parameters, actions):
    return tf.where(tf.equal(tf.cast(actions, tf.int32), 1), parameters["force"], -parameters["force"])

  def dynamics(self, physics, parameters, actions):
    x, x_dot, theta, theta_dot = tf.unstack(physics, axis=-1)
    p = parameters
    force = self.applied_force(p, actions)
    total_mass = p["pole_mass"] + p["cart_mass"]
    polemass_length = p["pole_mass"] * p["half_length"]
    cos, sin = tf.cos(theta), tf.sin(theta)
    temp = (force + polemass_length * tf.square(theta_dot) * sin) / total_mass
    theta_acc = (p["gravity"] * sin - cos * temp) / (
        p["half_length"] * (4.0 / 3.0 - p["pole_mass"] * tf.square(cos) / total_mass))
    x_acc = temp - polemass_length * theta_acc * cos / total_mass
    x, x_dot = x + self.TAU * x_dot, x_dot + self.TAU * x_acc
    theta, theta_dot = theta + self.TAU * theta_dot, theta_dot + self.TAU * theta_acc
    terminated = ((x < -self.X_THRESHOLD) | (x > self.X_THRESHOLD) | (theta < -self.THETA_THRESHOLD) |
                  (theta > self.THETA_THRESHOLD))
    return tf.stack([x, x_dot, theta, theta_dot], axis=-1), tf.ones_like(x), terminated


class ContinuousCartPole(CartPole):
  """CartPole with a continuous action a ∈ [−1, 1] (clipped): the force is `force`·a; otherwise
  CartPole-v1 exactly. Gymnasium has no such environment; `tf_metarl/ContinuousCartPole-v1`."""
  gym_id = None
  num_actions = None
  action_dim = 1

  def applied_force(self, parameters, actions):
    return parameters["force"] * tf.clip_by_value(self._continuous_action(actions), -1.0, 1.0)


class Acrobot(Environment):
  """Acrobot-v1 ("book" dynamics): torque −1, 0, +1 (actions 0, 1, 2) on the joint between the
  links; −1 per step until the tip rises one link length above the pivot (terminated, reward 0);
  500 steps. Physics (θ₁, θ₂, θ̇₁, θ̇₂), one RK4 step of 0.2 s."""
  gym_id = "Acrobot-v1"
  PARAMETERS = {"link_mass_1": Parameter(1.0, unit="kg"), "link_mass_2": Parameter(1.0, unit="kg"),
                "link_length_1": Parameter(1.0, unit="m"), "link_com_1": Parameter(0.5, unit="m"),
                "link_com_2": Parameter(0.5, unit="m"), "link_moi": Parameter(1.0, unit="kg m²"),
                "gravity": Parameter(9.8, unit="m/s²"), "torque": Parameter(1.0, unit="N m")}
  physics_size = 4
  observation_size = 6
  max_episode_steps = 500
  MAX_VEL_1, MAX_VEL_2 = 4 * math.pi, 9 * math.pi
  observation_high = (1.0, 1.0, 1.0, 1.0, MAX_VEL_1, MAX_VEL_2)
  num_actions = 3
  DT = 0.2

  def initial_physics(self, seed, batch_size, parameters):
    return self._uniform(seed, [batch_size, 4], -0.1, 0.1)

  def _derivatives(self, s, torque, p):
    theta1, theta2, dtheta1, dtheta2 = tf.unstack(s, axis=-1)
    m1, m2, l1 = p["link_mass_1"], p["link_mass_2"], p["link_length_1"]
    lc1, lc2, moi, g = p["link_com_1"], p["link_com_2"], p["link_moi"], p["gravity"]
    d1 = m1 * lc1**2 + m2 * (l1**2 + lc2**2 + 2 * l1 * lc2 * tf.cos(theta2)) + 2 * moi
    d2 = m2 * (lc2**2 + l1 * lc2 * tf.cos(theta2)) + moi
    phi2 = m2 * lc2 * g * tf.cos(theta1 + theta2 - math.pi / 2.0)
    phi1 = (-m2 * l1 * lc2 * dtheta2**2 * tf.sin(theta2) - 2 * m2 * l1 * lc2 * dtheta2 * dtheta1 * tf.sin(theta2) +
            (m1 * lc1 + m2 * l1) * g * tf.cos(theta1 - math.pi / 2) + phi2)
    ddtheta2 = ((torque + d2 / d1 * phi1 - m2 * l1 * lc2 * dtheta1**2 * tf.sin(theta2) - phi2) /
                (m2 * lc2**2 + moi - d2**2 / d1))
    ddtheta1 = -(d2 * ddtheta2 + phi1) / d1
    return tf.stack([dtheta1, dtheta2, ddtheta1, ddtheta2], axis=-1)

  @staticmethod
  def _wrap(x, low, high):
    """gymnasium's `wrap` (subtract or add the period until inside [low, high]) without a loop."""
    period = high - low
    x = tf.where(x > high, x - period * tf.math.ceil((x - high) / period), x)
    return tf.where(x < low, x + period * tf.math.ceil((low - x) / period), x)

  def dynamics(self, physics, parameters, actions):
    torque = (tf.cast(actions, self.dtype) - 1.0) * parameters["torque"]
    dt = self.DT
    k1 = self._derivatives(physics, torque, parameters)
    k2 = self._derivatives(physics + dt / 2.0 * k1, torque, parameters)
    k3 = self._derivatives(physics + dt / 2.0 * k2, torque, parameters)
    k4 = self._derivatives(physics + dt * k3, torque, parameters)
    s = physics + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
    theta1, theta2, dtheta1, dtheta2 = tf.unstack(s, axis=-1)
    s = tf.stack([self._wrap(theta1, -math.pi, math.pi), self._wrap(theta2, -math.pi, math.pi),
                  tf.clip_by_value(dtheta1, -self.MAX_VEL_1, self.MAX_VEL_1),
                  tf.clip_by_value(dtheta2, -self.MAX_VEL_2, self.MAX_VEL_2)], axis=-1)
    terminated = -tf.cos(s[:, 0]) - tf.cos(s[:, 1] + s[:, 0]) > 1.0
    return s, tf.where(terminated, 0.0, -1.0), terminated

  def observations(self, physics):
    theta1, theta2, dtheta1, dtheta2 = tf.unstack(physics, axis=-1)
    return tf.stack([tf.cos(theta1), tf.sin(theta1), tf.cos(theta2), tf.sin(theta2), dtheta1, dtheta2], axis=-1)


class Pendulum(Environment):
  """Pendulum-v1: torque in [−max_torque, max_torque] (clipped); cost θ² + 0.1 θ̇² + 0.001 u²
  (θ normalised to [−π, π)); never terminates; 200 steps. Physics (θ, θ̇), semi-implicit Euler
  steps of 0.05 s, |θ̇| ≤ 8. Observations (cos θ, sin θ, θ̇)."""
  gym_id = "Pendulum-v1"
  PARAMETERS = {"mass": Parameter(1.0, unit="kg"), "length": Parameter(1.0, unit="m"),
                "gravity": Parameter(10.0, unit="m/s²"), "max_torque": Parameter(2.0, unit="N m")}
  physics_size = 2
  observation_size = 3
  max_episode_steps = 200
  MAX_SPEED = 8.0
  observation_high = (1.0, 1.0, MAX_SPEED)
  action_dim = 1
  action_low, action_high = -2.0, 2.0
  DT = 0.05

  def initial_physics(self, seed, batch_size, parameters):
    return self._uniform(seed, [batch_size, 2], -1.0, 1.0) * tf.constant([math.pi, 1.0], self.dtype)

  def dynamics(self, physics, parameters, actions):
    theta, theta_dot = tf.unstack(physics, axis=-1)
    m, length, g = parameters["mass"], parameters["length"], parameters["gravity"]
    max_torque = parameters["max_torque"]
    u = tf.clip_by_value(self._continuous_action(actions), -max_torque, max_torque)
    normalised = tf.math.floormod(theta + math.pi, 2 * math.pi) - math.pi
    costs = normalised**2 + 0.1 * theta_dot**2 + 0.001 * u**2
    theta_dot = theta_dot + (3 * g / (2 * length) * tf.sin(theta) + 3.0 / (m * length**2) * u) * self.DT
    theta_dot = tf.clip_by_value(theta_dot, -self.MAX_SPEED, self.MAX_SPEED)
    theta = theta + theta_dot * self.DT
    return tf.stack([theta, theta_dot], axis=-1), -costs, tf.zeros_like(theta, tf.bool)

  def observations(self, physics):
    theta, theta_dot = tf.unstack(physics, axis=-1)
    return tf.stack([tf.cos(theta), tf.sin(theta), theta_dot], axis=-1)


class MountainCar(Environment):
  """MountainCar-v0: accelerate left (0), not (1) or right (2); −1 per step until position ≥ 0.5
  (terminated); 200 steps. Physics (position, velocity), |velocity| ≤ 0.07, position in
  [−1.2, 0.6] with an inelastic left wall."""
  gym_id = "MountainCar-v0"
  PARAMETERS = {"force": Parameter(0.001), "gravity": Parameter(0.0025)}
  physics_size = observation_size = 2
  max_episode_steps = 200
  MIN_POSITION, MAX_POSITION, MAX_SPEED = -1.2, 0.6, 0.07
  GOAL_POSITION, GOAL_VELOCITY = 0.5, 0.0
  observation_high = (MAX_POSITION, MAX_SPEED)
  num_actions = 3

  def initial_physics(self, seed, batch_size, parameters):
    position = self._uniform(seed, [batch_size], -0.6, -0.4)
    return tf.stack([position, tf.zeros_like(position)], axis=-1)

  def acceleration(self, parameters, actions):
    """-> (acceleration from the action [B], rewards [B] before the goal bonus)."""
    return (tf.cast(actions, self.dtype) - 1.0) * parameters["force"], -tf.ones_like(parameters["force"])

  def dynamics(self, physics, parameters, actions):
    position, velocity = tf.unstack(physics, axis=-1)
    push, rewards = self.acceleration(parameters, actions)
    velocity = velocity + (push - tf.cos(3 * position) * parameters["gravity"])
    velocity = tf.clip_by_value(velocity, -self.MAX_SPEED, self.MAX_SPEED)
    position = tf.clip_by_value(position + velocity, self.MIN_POSITION, self.MAX_POSITION)
    velocity = tf.where((position <= self.MIN_POSITION) & (velocity < 0), tf.zeros_like(velocity), velocity)
    terminated = (position >= self.GOAL_POSITION) & (velocity >= self.GOAL_VELOCITY)
    return tf.stack([position, velocity], axis=-1), self.goal_rewards(rewards, terminated), terminated

  def goal_rewards(self, rewards, terminated):
    return rewards


class MountainCarContinuous(MountainCar):
  """MountainCarContinuous-v0: force a ∈ [−1, 1] (clipped) times `power`; reward 100 at the goal
  (position ≥ 0.45, terminated) minus 0.1 a² (the unclipped action, as gymnasium); 999 steps."""
  gym_id = "MountainCarContinuous-v0"
  PARAMETERS = {"power": Parameter(0.0015), "gravity": Parameter(0.0025)}
  max_episode_steps = 999
  GOAL_POSITION = 0.45
  num_actions = None
  action_dim = 1

  def acceleration(self, parameters, actions):
    action = self._continuous_action(actions)
    return tf.clip_by_value(action, -1.0, 1.0) * parameters["power"], -0.1 * action**2

  def goal_rewards(self, rewards, terminated):
    return rewards + tf.where(terminated, tf.constant(100.0, self.dtype), tf.constant(0.0, self.dtype))


ENVIRONMENTS = {
    "tf_metarl/CartPole-v1": CartPole,
    "tf_metarl/ContinuousCartPole-v1": ContinuousCartPole,
    "tf_metarl/Acrobot-v1": Acrobot,
    "tf_metarl/Pendulum-v1": Pendulum,
    "tf_metarl/MountainCar-v0": MountainCar,
    "tf_metarl/MountainCarContinuous-v0": MountainCarContinuous,
}


def parse_ranges(text: str) -> Dict[str, Tuple[float, float]]:
  """"mass=0.5:2.0,length=0.5:1.5" -> {"mass": (0.5, 2.0), "length": (0.5, 1.5)} ("" -> {})."""
  ranges = {}
  for item in filter(None, (part.strip() for part in str(text or "").split(","))):
    name, _, bounds = item.partition("=")
    low, colon, high = bounds.partition(":")
    try:
      if not name.strip() or not colon:
        raise ValueError
      ranges[name.strip()] = (float(low), float(high))
    except ValueError:
      raise errors.ConfigError(f"parameter ranges are name=low:high separated by commas (e.g. mass=0.5:2.0), "
                               f"got {item!r}") from None
  return ranges


def is_native(env_id: str) -> bool:
  """Whether `env_id` names a TensorFlow-native batched environment."""
  return env_id in ENVIRONMENTS


def make_native(env_id: str, **kwargs) -> Environment:
  """The batched environment of a `tf_metarl/...` id; kwargs: randomize, dtype, max_episode_steps,
  keep_tasks, reset_period."""
  if env_id not in ENVIRONMENTS:
    raise errors.UnknownEnvironmentError(
        f"{env_id!r} is not a TensorFlow-native environment; those are {', '.join(ENVIRONMENTS)}")
  return ENVIRONMENTS[env_id](**kwargs)


class NativeGymEnv(gym.Env):
  """The gymnasium twin of a batched environment: one copy, stepped by the same TensorFlow
  functions (compiled once), so every gymnasium path runs the same dynamics. The registered ids
  carry the original's time limit (gymnasium's `TimeLimit`), so `step` never truncates by itself.
  `info` holds the episode's randomised parameters."""
  metadata = {"render_modes": []}

  def __init__(self, env_id: str, randomize=None):
    self.native = make_native(env_id, randomize=randomize)
    high = np.array(self.native.observation_high, np.float32)
    self.observation_space = gym.spaces.Box(-high, high, dtype=np.float32)
    if self.native.discrete:
      self.action_space = gym.spaces.Discrete(self.native.num_actions)
      action_spec = tf.TensorSpec([1], tf.int32)
    else:
      self.action_space = gym.spaces.Box(self.native.action_low, self.native.action_high,
                                         (self.native.action_dim,), np.float32)
      action_spec = tf.TensorSpec([1, self.native.action_dim], tf.float32)
    self._reset = tf.function(lambda seed: self._outputs(self.native.reset(seed, 1)),
                              input_signature=[tf.TensorSpec([2], tf.int32)])
    state_spec = tf.nest.map_structure(lambda t: tf.TensorSpec.from_tensor(t), self.native.reset(tf.constant([0, 0]), 1))
    self._step = tf.function(self._step_graph, input_signature=[state_spec, action_spec])
    self._state = None

  def _outputs(self, state):
    return state, self.native.observe(state)[0]

  def _step_graph(self, state, actions):
    state, rewards, terminated, _ = self.native.step(state, actions)
    return state, self.native.observe(state)[0], rewards[0], terminated[0]

  def _info(self):
    return {name: float(self._state.parameters[name][0]) for name in sorted(self.native.randomize)}

  def reset(self, *, seed=None, options=None):
    super().reset(seed=seed)
    self._state, observation = self._reset(tf.constant(self.np_random.integers(0, 2**31 - 1, size=2), tf.int32))
    return observation.numpy(), self._info()

  def step(self, action):
    if self._state is None:
      raise RuntimeError("call reset() before step()")
    if self.native.discrete:
      action = tf.constant([int(action)], tf.int32)
    else:
      action = tf.constant(np.asarray(action, np.float32).reshape(1, -1))
    self._state, observation, reward, terminated = self._step(self._state, action)
    return observation.numpy(), float(reward), bool(terminated), False, self._info()
