"""Update targets for the online meta-gradient family, one interface:

  target_model.targets(batch, values, next_values, params=None) -> [B, T]

with `batch` a dict of [B, T] tensors (rewards, discounts, episode_ends, observations [B, T, O]),
`values` and `next_values` the critic's V(s_t), V(s'_t) with gradients stopped. The model's
trainable variables define η; `params` substitutes explicit tensors for them (the meta level
always passes η explicitly), None reads the variables (an exported objective).
"""
from __future__ import annotations

import keras
import tensorflow as tf

from tf_metarl import returns
from tf_metarl.networks.functional import functional_call
from tf_metarl.objectives.learned import BackwardLSTMNetwork


class FrodoTargetNetwork(BackwardLSTMNetwork):
  """G_η (FRODO): a backward LSTM over (observation, reward, discount, next value) with a linear head.

  `observation_scale` multiplies the observation features. On Catch the 66 grid cells otherwise
  outweigh the three scalar inputs: the meta-gradient then fits a state-value-like G whose
  advantages carry no action information, and the agent stalls (docs/RESULTS.md: with the
  meta_train defaults, 0/4 seeds solve Catch in 4 M steps at scale 1, 10/10 at 0.1).
  """

  def __init__(self, observation_dim: int, units: int = 32, observation_scale: float = 1.0, dtype="float32",
               **kwargs):
    self.observation_scale = float(observation_scale)
    super().__init__(observation_dim + 3, units=units, embedding=None, output_bound=None, dtype=dtype,
                     name=kwargs.pop("name", "frodo_target"), **kwargs)

  def features(self, batch, next_values):
    """Stacks [observation_scale · observations, rewards, discounts, next_values] into [B, T, obs_dim + 3]."""
    dtype = batch["observations"].dtype
    scalars = tf.stack([tf.cast(batch["rewards"], dtype), tf.cast(batch["discounts"], dtype),
                        tf.cast(next_values, dtype)], axis=-1)
    return tf.concat([batch["observations"] * tf.constant(self.observation_scale, dtype), scalars], axis=-1)

  def targets(self, batch, values, next_values, params=None):
    del values
    features = self.features(batch, next_values)
    return self(features) if params is None else functional_call(self, params, features)


class LearnedLambdaReturn(keras.Model):
  """λ-return with meta-learned γ = σ(η_γ) and λ = σ(η_λ) (Xu, van Hasselt & Silver 2018)."""

  def __init__(self, initial_gamma: float = 0.9, initial_lambda: float = 0.9, dtype="float32", **kwargs):
    super().__init__(dtype=dtype, name=kwargs.pop("name", "learned_gamma_lambda"), **kwargs)
    logit = lambda p: float(tf.math.log(p / (1.0 - p)))
    self.gamma_logit = self.add_weight(shape=(), name="gamma_logit",
                                       initializer=keras.initializers.Constant(logit(initial_gamma)))
    self.lambda_logit = self.add_weight(shape=(), name="lambda_logit",
                                        initializer=keras.initializers.Constant(logit(initial_lambda)))

  def gamma_lambda(self, params=None):
    """(γ, λ) from η = [γ logit, λ logit] (or the variables)."""
    gamma_logit, lambda_logit = params if params is not None else (self.gamma_logit, self.lambda_logit)
    return tf.sigmoid(gamma_logit), tf.sigmoid(lambda_logit)

  def targets(self, batch, values, next_values, params=None):
    gamma, lam = self.gamma_lambda(params)
    return returns.lambda_returns(batch["rewards"], batch["discounts"], batch["episode_ends"], values, next_values,
                                  tf.cast(gamma, values.dtype), tf.cast(lam, values.dtype))

  def call(self, inputs):  # Keras needs a call; the targets come from `targets`.
    return inputs


class NStepTarget(keras.Model):
  """The canonical n-step return (no meta-parameters): A2C with a fixed target."""

  def __init__(self, gamma: float, n_step: int, **kwargs):
    super().__init__(name=kwargs.pop("name", "n_step_target"), **kwargs)
    self.gamma, self.n_step = float(gamma), int(n_step)

  def targets(self, batch, values, next_values, params=None):
    del values, params
    return returns.n_step_returns(batch["rewards"], batch["discounts"], batch["episode_ends"], next_values,
                                  self.gamma, self.n_step)

  def call(self, inputs):
    return inputs
