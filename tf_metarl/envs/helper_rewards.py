"""Helper rewards: extra reward signals of unknown quality (a designer's heuristic, a language
model's judgement) that the implicit reward method learns to weight, ignore or negate.

One interface: a helper maps batches of transitions to one reward each,

  r_h = helper(observations [N, O], actions [N] (discrete) or [N, A], next_observations [N, O]) -> [N]

traceable by TensorFlow, so rollouts and meta-steps call it inside compiled graphs.
`helper_rewards` applies one to `[B, T, ...]` batches and checks the shape of what comes back.
Implementations: `CallableHelper` (a TensorFlow function, or a NumPy one run through
`tf.numpy_function`), `SavedModelHelper` (a SavedModel with a `serving_default` signature of
those three inputs and a `helper_rewards` output; `export_helper` writes one), and the named
CartPole helpers of the paper's section 4.1 (`make_helper`).
"""
from __future__ import annotations

import math
import os
from typing import Callable, Optional

import numpy as np
import tensorflow as tf

from tf_metarl import errors
from tf_metarl.trajectories import encode_actions

CARTPOLE_IDS = ("CartPole-v1", "tf_metarl/CartPole-v1", "tf_metarl/ContinuousCartPole-v1")
THETA_INDEX = 2                      # CartPole observation: x, ẋ, θ, θ̇
HARMFUL_ANGLE = 0.1                  # rad: half of CartPole's 0.2095 rad (12°) failure angle
HARMFUL_PENALTY = -0.1
FAILURE_ANGLE = 12 * 2 * math.pi / 360
HELPFUL_DISCOUNT = 0.99              # γ of the helpful helper's potential-based shaping


class HelperReward:
  """Interface (see the module docstring). `name` is recorded in logs and exports."""
  name: str = "helper"

  def __call__(self, observations, actions, next_observations) -> tf.Tensor:
    raise NotImplementedError


def _flat(x, leading):
  return tf.reshape(x, tf.concat([[-1], tf.shape(x)[leading:]], 0))


def helper_rewards(helper: HelperReward, observations, actions, next_observations) -> tf.Tensor:
  """The helper's rewards for `[B, T, ...]` batches, [B, T] float32.

  A helper that returns anything but one value per transition is a one-line
  `errors.HelperRewardError` (at trace time when shapes are static, else when run).
  """
  batch_shape = tf.shape(observations)[:2]
  rewards = helper(_flat(observations, 2), _flat(actions, 2), _flat(next_observations, 2))
  rewards = tf.convert_to_tensor(rewards)
  count = observations.shape[0] * observations.shape[1] if observations.shape[:2].is_fully_defined() else None
  if rewards.shape.rank is not None and (rewards.shape.rank != 1 or (
      count is not None and rewards.shape[0] is not None and rewards.shape[0] != count)):
    raise errors.HelperRewardError(f"helper {helper.name!r} returned shape {rewards.shape.as_list()} for "
                                   f"{count or 'N'} transitions; it must return one reward per transition, [N]")
  tf.debugging.assert_equal(tf.size(rewards), tf.reduce_prod(batch_shape),
                            message=f"helper {helper.name!r} must return one reward per transition")
  return tf.reshape(tf.cast(rewards, tf.float32), batch_shape)


def check_helper(helper: HelperReward, observation_dim: int, num_actions: Optional[int], action_dim: int = 1) -> None:
  """Calls `helper` once on a batch of two zero transitions, so one that does not answer one
  finite reward per transition fails with a one-line error before any training."""
  observations = tf.zeros([1, 2, observation_dim])
  actions = tf.zeros([1, 2], tf.int32) if num_actions else tf.zeros([1, 2, action_dim])
  try:
    rewards = helper_rewards(helper, observations, actions, observations)
  except tf.errors.InvalidArgumentError as e:
    raise errors.HelperRewardError(f"helper {helper.name!r} failed on a batch of 2 transitions: "
                                   f"{e.message.splitlines()[0]}") from None
  if not np.all(np.isfinite(rewards.numpy())):
    raise errors.HelperRewardError(f"helper {helper.name!r} returned non-finite rewards {rewards.numpy().tolist()}")


class CallableHelper(HelperReward):
  """A helper from a function of (observations, actions, next_observations). `numpy=True`: the
  function takes and returns NumPy arrays and runs through `tf.numpy_function` (never
  differentiated, and not XLA-compilable)."""

  def __init__(self, fn: Callable, name: str = "callable", numpy: bool = False):
    self.fn, self.name, self.numpy = fn, name, bool(numpy)

  def __call__(self, observations, actions, next_observations):
    if not self.numpy:
      return self.fn(observations, actions, next_observations)
    out = tf.numpy_function(lambda o, a, n: np.asarray(self.fn(o, a, n), np.float32),
                            [observations, actions, next_observations], tf.float32, stateful=False)
    return out


class SavedModelHelper(HelperReward):
  """A helper loaded from a SavedModel directory (see `export_helper`); TensorFlow only."""

  def __init__(self, path: str):
    if not os.path.isdir(path) or not tf.saved_model.contains_saved_model(path):
      raise errors.NotASavedModelError(f"{path!r} does not hold a SavedModel helper reward")
    self.module = tf.saved_model.load(path)
    if "serving_default" not in self.module.signatures:
      raise errors.HelperRewardError(f"the SavedModel at {path!r} has no serving_default signature")
    self.signature = self.module.signatures["serving_default"]
    self.name = os.path.basename(os.path.normpath(path))

  def __call__(self, observations, actions, next_observations):
    actions = tf.reshape(tf.cast(actions, tf.float32), [tf.shape(observations)[0], -1])  # discrete: [N, 1]
    out = self.signature(observations=tf.cast(observations, tf.float32), actions=actions,
                         next_observations=tf.cast(next_observations, tf.float32))
    if "helper_rewards" not in out:
      raise errors.HelperRewardError(f"helper {self.name!r}: the signature must output 'helper_rewards', "
                                     f"it outputs {sorted(out)}")
    return out["helper_rewards"]


def export_helper(helper: HelperReward, path: str, observation_dim: int, num_actions: Optional[int] = None,
                  action_dim: int = 1) -> str:
  """Writes `helper` as a SavedModel: inputs `observations` [N, O], `actions` [N, A] (float32;
  discrete actions, `num_actions` given, as their index in one column), `next_observations`
  [N, O]; output `helper_rewards` [N]. The helper itself sees actions as the learners give them:
  int32 indices [N] (discrete) or [N, A]. Returns `path`."""
  module = tf.Module()
  width = 1 if num_actions else int(action_dim)

  @tf.function(input_signature=[tf.TensorSpec([None, observation_dim], tf.float32, name="observations"),
                                tf.TensorSpec([None, width], tf.float32, name="actions"),
                                tf.TensorSpec([None, observation_dim], tf.float32, name="next_observations")])
  def serve(observations, actions, next_observations):
    acts = tf.cast(actions[:, 0], tf.int32) if num_actions else actions
    return {"helper_rewards": tf.cast(helper(observations, acts, next_observations), tf.float32)}

  module.serve = serve
  tf.saved_model.save(module, path, signatures={"serving_default": serve})
  return path


# --- the CartPole helpers of the paper's section 4.1 -------------------------------------------------

def harmful_cartpole(observations, actions, next_observations):
  """−0.1 whenever the pole is near upright, |θ| < 0.1 rad (half the failure angle): it pays the
  agent to hold the pole tilted, near where episodes end."""
  del actions, next_observations
  upright = tf.abs(observations[:, THETA_INDEX]) < HARMFUL_ANGLE
  return tf.where(upright, HARMFUL_PENALTY, 0.0)


def helpful_cartpole(observations, actions, next_observations):
  """Potential-based shaping γΦ(s') − Φ(s) with Φ(s) = −|θ| / 0.2095 (0 upright, −1 at the
  failure angle), γ = 0.99: it rewards moves towards upright and leaves the optimal policy as it
  is (Ng et al. 1999; Φ of a terminal state is not zeroed, so that holds up to the last step)."""
  del actions
  potential = lambda obs: -tf.abs(obs[:, THETA_INDEX]) / FAILURE_ANGLE
  return HELPFUL_DISCOUNT * potential(next_observations) - potential(observations)


class RandomHelper(HelperReward):
  """A fixed random function of state and action with values in [−1, 1] and mean about 0:
  sin(w·x + b) of one random Fourier feature of x = (observation, action; discrete actions
  one-hot), w ~ N(0, `frequency`² I) and b ~ U(0, 2π) drawn once from `seed`. With frequency 20
  per unit of input it changes sign every few hundredths of a CartPole velocity unit: no pattern a
  policy could exploit, nothing an agent should trust."""

  def __init__(self, observation_dim: int, num_actions: Optional[int], action_dim: int = 1, seed: int = 0,
               frequency: float = 20.0):
    self.name = f"random{seed}"
    self.num_actions = num_actions
    inputs = observation_dim + (num_actions if num_actions else action_dim)
    rng = np.random.default_rng(seed)
    self.w = tf.constant(rng.normal(0.0, frequency, [inputs]), tf.float32)
    self.b = tf.constant(rng.uniform(0.0, 2 * math.pi), tf.float32)

  def __call__(self, observations, actions, next_observations):
    del next_observations
    x = tf.concat([tf.cast(observations, tf.float32), encode_actions(actions, self.num_actions)], -1)
    return tf.sin(tf.linalg.matvec(x, self.w) + self.b)


class ScaledHelper(HelperReward):
  """`scale` × another helper (a stress test: the harmful helper at 10× outweighs CartPole's +1)."""

  def __init__(self, helper: HelperReward, scale: float):
    self.helper, self.scale = helper, float(scale)
    self.name = f"{helper.name}x{self.scale:g}"

  def __call__(self, observations, actions, next_observations):
    return self.scale * self.helper(observations, actions, next_observations)


HELPERS = ("harmful", "random", "helpful", "none")


def make_helper(name: str, env_id: str, seed: int = 0, scale: float = 1.0) -> Optional[HelperReward]:
  """A named helper for an environment, or a SavedModel helper when `name` is a directory, times
  `scale` (a finite number; 1 leaves it as it is); "none" gives None. Unknown names and
  environments without that helper are one-line errors."""
  if not np.isfinite(scale):
    raise errors.ConfigError(f"a helper's scale must be a finite number, got {scale}")
  helper = _named_helper(name, env_id, seed)
  return ScaledHelper(helper, scale) if helper is not None and scale != 1.0 else helper


def _named_helper(name: str, env_id: str, seed: int) -> Optional[HelperReward]:
  if name == "none":
    return None
  if os.path.isdir(name):
    return SavedModelHelper(name)
  if name not in HELPERS:
    raise errors.ConfigError(f"unknown helper reward {name!r}; known: {', '.join(HELPERS)}, or a SavedModel "
                             f"directory")
  if env_id not in CARTPOLE_IDS:
    raise errors.ConfigError(f"the {name!r} helper is defined for {', '.join(CARTPOLE_IDS)}, not {env_id!r}")
  if name == "harmful":
    return CallableHelper(harmful_cartpole, "harmful")
  if name == "helpful":
    return CallableHelper(helpful_cartpole, "helpful")
  discrete = env_id != "tf_metarl/ContinuousCartPole-v1"
  return RandomHelper(4, 2 if discrete else None, 1, seed)
