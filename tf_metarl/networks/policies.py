"""Policies: Keras models mapping observations [..., obs_dim] to raw outputs [..., P].

Raw outputs are plain tensors (logits, mean and log-std, or actions) so they can be stored in a
`Trajectory` as behaviour outputs and recomputed with substituted parameters; each policy turns
them into a TFP distribution (or a deterministic action) with the same methods:
`sample`, `mode`, `log_prob`, `entropy`, and into `distribution_parameters` (what a learned loss
reads). A stochastic policy may carry EPG's memory unit (Houthooft et al. 2018): `memory_units`
tanh units of a constant input, trained with the policy by the loss and read only by the loss
(`memory_output`); it never affects actions.
"""
from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tf_metarl import errors
from tf_metarl.envs.gym_envs import CONTINUOUS, DISCRETE, EnvInfo
from tf_metarl.networks.mlp import MLP

tfd = tfp.distributions


class _Policy(keras.Model):
  """Base: an MLP torso and a linear head (and an optional memory unit); built on construction so
  its variables exist. Subclasses implement `outputs(observations)`."""
  stochastic = True

  def __init__(self, observation_dim: int, output_size: int, hidden_sizes: Sequence[int],
               activation: str, layer_norm: bool, dtype: str, head_scale: float = 0.01, memory_units: int = 0,
               **kwargs):
    super().__init__(dtype=dtype, **kwargs)
    self.observation_dim = int(observation_dim)
    self.output_size = int(output_size)
    self.memory_units = int(memory_units)
    self.torso = MLP(hidden_sizes, activation, layer_norm, dtype=dtype, name="torso")
    self.head = keras.layers.Dense(output_size, dtype=dtype, name="head",
                                   kernel_initializer=keras.initializers.VarianceScaling(head_scale))
    self.memory = (keras.layers.Dense(self.memory_units, activation="tanh", dtype=dtype, name="memory")
                   if self.memory_units else None)
    self.build_for_observations()

  def build_for_observations(self):
    self(tf.zeros([1, self.observation_dim], self.dtype))

  def build(self, input_shape):
    if self.memory is not None:
      self.memory.build((1, 1))

  def call(self, observations, memory: bool = False):
    """Raw outputs [..., P]; with memory=True the memory unit's output [memory_units] instead."""
    if memory:
      if self.memory is None:
        raise errors.ConfigError(f"{self.name} has no memory unit (memory_units = 0)")
      return self.memory(tf.ones([1, 1], self.dtype))[0]
    return self.outputs(observations)

  def outputs(self, observations):
    raise NotImplementedError

  def action_features(self, actions) -> tf.Tensor:
    """Actions [..., ] (discrete) or [..., A] as float features [..., A']: one-hot or as they are."""
    return tf.cast(actions, self.dtype)

  def distribution_parameters(self, outputs) -> tf.Tensor:
    """π(·|s) as features [..., P']: probabilities (categorical) or mean and log-std (Gaussian)."""
    return outputs


class CategoricalPolicy(_Policy):
  """π(a|s) = Categorical(logits); outputs: logits [..., num_actions]."""
  action_kind = DISCRETE

  def __init__(self, observation_dim: int, num_actions: int, hidden_sizes=(64, 64), activation="tanh",
               layer_norm=False, dtype="float32", memory_units: int = 0, **kwargs):
    self.num_actions = int(num_actions)
    super().__init__(observation_dim, num_actions, hidden_sizes, activation, layer_norm, dtype,
                     memory_units=memory_units, **kwargs)

  def outputs(self, observations):
    return self.head(self.torso(observations))

  def action_features(self, actions):
    return tf.one_hot(tf.cast(actions, tf.int32), self.num_actions, dtype=self.dtype)

  def distribution_parameters(self, outputs):
    return tf.nn.softmax(outputs, axis=-1)

  def distribution(self, outputs):
    return tfd.Categorical(logits=outputs)

  def sample(self, outputs, seed):
    return tf.cast(self.distribution(outputs).sample(seed=seed), tf.int32)

  def sample_from_uniform(self, outputs, uniform):
    """A sample given uniform noise in (0, 1) shaped like `outputs` (Gumbel-max), so copies can
    share noise (common random numbers)."""
    return tf.argmax(outputs - tf.math.log(-tf.math.log(uniform)), axis=-1, output_type=tf.int32)

  def mode(self, outputs):
    return tf.argmax(outputs, axis=-1, output_type=tf.int32)

  def log_prob(self, outputs, actions):
    return self.distribution(outputs).log_prob(actions)

  def entropy(self, outputs):
    return self.distribution(outputs).entropy()


class GaussianPolicy(_Policy):
  """π(a|s) = N(mean(s), diag(exp(log_std))²) with a state-independent log-std.

  Outputs: concat(mean, log_std) [..., 2 * action_dim]. Samples are unbounded; the collector clips
  them to the action space when stepping the environment.
  """
  action_kind = CONTINUOUS

  def __init__(self, observation_dim: int, action_dim: int, hidden_sizes=(64, 64), activation="tanh",
               layer_norm=False, initial_log_std=0.0, dtype="float32", memory_units: int = 0, **kwargs):
    self.action_dim = int(action_dim)
    self.initial_log_std = float(initial_log_std)
    super().__init__(observation_dim, action_dim, hidden_sizes, activation, layer_norm, dtype,
                     memory_units=memory_units, **kwargs)

  def build(self, input_shape):
    super().build(input_shape)
    self.log_std = self.add_weight(shape=(self.action_dim,), name="log_std",
                                   initializer=keras.initializers.Constant(self.initial_log_std))

  def outputs(self, observations):
    mean = self.head(self.torso(observations))
    log_std = tf.broadcast_to(tf.cast(self.log_std, mean.dtype), tf.shape(mean))
    return tf.concat([mean, log_std], axis=-1)

  def distribution(self, outputs):
    mean, log_std = tf.split(outputs, 2, axis=-1)
    return tfd.Independent(tfd.Normal(mean, tf.exp(log_std)), reinterpreted_batch_ndims=1)

  def sample(self, outputs, seed):
    return self.distribution(outputs).sample(seed=seed)

  def sample_from_uniform(self, outputs, uniform):
    """A sample given uniform noise in (0, 1) shaped like `outputs` (its first half is used: the
    inverse normal CDF), so copies can share noise (common random numbers)."""
    mean, log_std = tf.split(outputs, 2, axis=-1)
    return mean + tf.exp(log_std) * tf.math.ndtri(tf.split(uniform, 2, axis=-1)[0])

  def mode(self, outputs):
    return tf.split(outputs, 2, axis=-1)[0]

  def log_prob(self, outputs, actions):
    return self.distribution(outputs).log_prob(actions)

  def entropy(self, outputs):
    return self.distribution(outputs).entropy()


class DeterministicPolicy(_Policy):
  """a = low + (tanh(f(s)) + 1) / 2 · (high − low); outputs: the action [..., action_dim]."""
  action_kind = CONTINUOUS
  stochastic = False

  def __init__(self, observation_dim: int, action_low, action_high, hidden_sizes=(256, 256),
               activation="relu", layer_norm=False, dtype="float32", **kwargs):
    self.action_low = np.asarray(action_low, np.float64)
    self.action_high = np.asarray(action_high, np.float64)
    super().__init__(observation_dim, len(self.action_low), hidden_sizes, activation, layer_norm, dtype,
                     head_scale=1.0, **kwargs)

  def outputs(self, observations):
    squashed = tf.tanh(self.head(self.torso(observations)))
    low = tf.constant(self.action_low, squashed.dtype)
    high = tf.constant(self.action_high, squashed.dtype)
    return low + (squashed + 1.0) * 0.5 * (high - low)

  def sample(self, outputs, seed):
    del seed
    return outputs

  def mode(self, outputs):
    return outputs

  def log_prob(self, outputs, actions):
    return tf.zeros(tf.shape(outputs)[:-1], outputs.dtype)

  def entropy(self, outputs):
    return tf.zeros(tf.shape(outputs)[:-1], outputs.dtype)


def make_policy(env_info: EnvInfo, kind: str, hidden_sizes, activation, layer_norm=False,
                dtype="float32", memory_units: int = 0) -> _Policy:
  """Builds the policy of a `kind` ("stochastic" or "deterministic") that fits the environment;
  `memory_units` > 0 gives a stochastic policy EPG's memory unit."""
  obs_dim = int(np.prod(env_info.observation_shape))
  if kind == "deterministic":
    if env_info.action_kind != CONTINUOUS:
      raise errors.IncompatibleSpaceError(
          f"a deterministic policy needs continuous (Box) actions; {env_info.env_id} has "
          f"{env_info.num_actions} discrete actions")
    return DeterministicPolicy(obs_dim, env_info.action_low, env_info.action_high, hidden_sizes, activation,
                               layer_norm, dtype=dtype, name="policy")
  if kind != "stochastic":
    raise errors.ConfigError(f"policy kind must be 'stochastic' or 'deterministic', got {kind!r}")
  if env_info.action_kind == DISCRETE:
    return CategoricalPolicy(obs_dim, env_info.num_actions, hidden_sizes, activation, layer_norm, dtype=dtype,
                             memory_units=memory_units, name="policy")
  return GaussianPolicy(obs_dim, env_info.action_dim, hidden_sizes, activation, layer_norm, dtype=dtype,
                        memory_units=memory_units, name="policy")
