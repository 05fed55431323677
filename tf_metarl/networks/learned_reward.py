"""The learned reward of the implicit reward method (Place 2023, section 3.2):

  r_η(s, a) = r_p(s, a) + z_η(s, a) · r_h(s, a) + f_η(s, a),   discount γ_η = sigmoid(logit) ∈ (0, 1)

r_p: the environment's reward; r_h: a helper reward (`envs.helper_rewards`); z_η: the helper's
learned weight (it may down-weight, zero or negate it); f_η: an optional learned additive term.
η is this model's trainable variables (Keras's order: the discount logit, z_η's layers, f_η's
layers when it has one); `shaped` takes η as explicit tensors, so estimators differentiate
through it without assigning variables.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import keras
import tensorflow as tf

from tf_metarl.trajectories import encode_actions
from tf_metarl.networks.functional import functional_call


class _Head(keras.Model):
  """An MLP from (observation, encoded action) to one value per row; its last layer starts at
  zero weights and bias `initial`, so the head starts constant."""

  def __init__(self, input_dim: int, hidden_sizes: Sequence[int], initial: float, name=None):
    super().__init__(name=name)
    self.hidden = [keras.layers.Dense(u, activation="tanh") for u in hidden_sizes]
    self.out = keras.layers.Dense(1, kernel_initializer="zeros",
                                  bias_initializer=keras.initializers.Constant(float(initial)))
    self.build((None, input_dim))

  def build(self, input_shape):
    size = input_shape[-1]
    for layer in self.hidden:
      layer.build((None, size))
      size = layer.units
    self.out.build((None, size))
    self.built = True

  def call(self, x):
    for layer in self.hidden:
      x = layer(x)
    return self.out(x)[:, 0]


class LearnedReward(keras.Model):
  """z_η, γ_η and optionally f_η for one observation and action space.

  Args:
    observation_dim: O.
    num_actions: for discrete actions (one-hot encoded), else None.
    action_dim: A for continuous actions.
    hidden_sizes: z_η's and f_η's hidden tanh layers.
    initial_helper_weight: z_η's value before training (1: the helper taken at face value).
    initial_discount: γ_η before training.
    additive: whether f_η exists (off by default, as in the paper).
  """

  def __init__(self, observation_dim: int, num_actions: Optional[int], action_dim: int = 1,
               hidden_sizes: Sequence[int] = (32,), initial_helper_weight: float = 1.0,
               initial_discount: float = 0.99, additive: bool = False, name="learned_reward"):
    super().__init__(name=name)
    if not 0.0 < initial_discount < 1.0:
      raise ValueError(f"initial_discount must be in (0, 1), got {initial_discount}")
    self.observation_dim, self.num_actions, self.action_dim = int(observation_dim), num_actions, int(action_dim)
    self.additive = bool(additive)
    input_dim = self.observation_dim + (num_actions if num_actions else self.action_dim)
    self.weight_head = _Head(input_dim, hidden_sizes, initial_helper_weight, name="helper_weight")
    self.discount_logit = self.add_weight(
        name="discount_logit", shape=(), trainable=True,
        initializer=keras.initializers.Constant(math.log(initial_discount / (1.0 - initial_discount))))
    self.additive_head = _Head(input_dim, hidden_sizes, 0.0, name="additive") if self.additive else None
    self.built = True
    position = {id(v): i for i, v in enumerate(self.trainable_variables)}
    self._discount_index = position[id(self.discount_logit)]
    self._additive_indices = [position[id(v)] for v in self.additive_head.trainable_variables] if self.additive else []

  def features(self, observations, actions):
    """[N, O + action encoding]: observations with one-hot (discrete) or raw (continuous) actions."""
    encoded = encode_actions(actions, self.num_actions, self.action_dim)
    return tf.concat([tf.reshape(tf.cast(observations, tf.float32), [-1, self.observation_dim]), encoded], -1)

  def call(self, features):
    """[N, 3]: z_η, f_η (0 without it) and γ_η per row."""
    z = self.weight_head(features)
    f = self.additive_head(features) if self.additive else tf.zeros_like(z)
    gamma = tf.sigmoid(self.discount_logit) * tf.ones_like(z)
    return tf.stack([z, f, gamma], -1)

  def shaped(self, eta, observations, actions, rewards, helper_rewards):
    """r_η for `[B, T, ...]` batches with η = `eta` (a list like `trainable_variables`).

    Returns (shaped rewards [B, T], γ_η scalar, z_η [B, T], f_η [B, T])."""
    batch_shape = tf.shape(rewards)
    features = self.features(observations, actions)
    if not self.trainable_variables:  # frozen (a baseline): η is empty, the variables hold the values
      out, gamma = self(features), tf.sigmoid(tf.convert_to_tensor(self.discount_logit.value))
    else:
      out, gamma = functional_call(self, eta, features), tf.sigmoid(self.discount_logit_of(eta))
    z, f = tf.reshape(out[:, 0], batch_shape), tf.reshape(out[:, 1], batch_shape)
    return rewards + z * helper_rewards + f, gamma, z, f

  def helper_weights(self, eta, observations):
    """z_η(s, a) for every discrete action a: observations [..., O] -> [..., num_actions]
    (BiPaRS's explicit mapping feeds these to the policy as inputs)."""
    if not self.num_actions:
      raise ValueError("helper_weights needs discrete actions (z_η(s, a) for every action a)")
    flat = tf.reshape(tf.cast(observations, tf.float32), [-1, self.observation_dim])
    rows = tf.shape(flat)[:1]
    weights = [functional_call(self, eta, self.features(flat, tf.fill(rows, a)))[:, 0] for a in range(self.num_actions)]
    return tf.reshape(tf.stack(weights, -1), tf.concat([tf.shape(observations)[:-1], [self.num_actions]], 0))

  def discount_logit_of(self, eta):
    """The discount logit inside η."""
    return eta[self._discount_index]

  def additive_params(self, eta):
    """f_η's parameters inside η ([] without f_η or when frozen), for the regulariser λ_r |f_η|²."""
    return [eta[i] for i in self._additive_indices] if eta else []
