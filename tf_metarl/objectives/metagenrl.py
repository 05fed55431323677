"""MetaGenRL's neural objective L_α (Kirsch, van Steenkiste, Schmidhuber, ICLR 2020, Eq. 7 and
appendix B), in the form that transfers across action dimensions.

Per step t of a replayed segment it reads the reward r_t, the critic's value estimates V_t and
V_{t+1} (held constant; V_{t+1} masked by the discount, i.e. 0 after termination), the time within
the episode in [0, 1], and the actions: the buffer action a_t and the policy's action π_φ(s_t),
stacked per action dimension to [B, T, D, 2], embedded by kernel-size-1 layers shared across the
D dimensions and averaged over D. So one objective accepts any number of action dimensions, and
the policy's gradient comes only through π_φ(s_t). An LSTM runs backwards in time (step t sees
t..T−1 of its own episode: the state is reset where an episode ends), and each output becomes
l_t = s·tanh(y_t / s), s = 1000. The loss is the mean of l_t, as the reference trains its policies
(`pi_obj_loss`); MetaGenRL's differentiable inner step differentiates the sum Σ_{b,t} l_t, as the
reference does, so its step size 1e-3 means the same (`algorithms/metagenrl.py`).

Where the paper is silent this follows the reference code (`louiskirsch/metagenrl`, `model.py`,
`Objective._create_objective`): rewards and values are z-normalised over the batch, the scalar
inputs pass through their own small network (2 × 32 units, then 8) before the LSTM, hidden
layers use half ReLU and half square units, and the action embedding and output head use layer
normalisation.
"""
from __future__ import annotations

from typing import Sequence

import keras
import tensorflow as tf

from tf_metarl import errors
from tf_metarl.networks.normalization import LayerNorm, z_normalise
from tf_metarl.objectives.base import OFF_POLICY, Objective

SCALAR_FEATURES = ("rewards", "time", "next_values", "values")


class HalfReluHalfSquare(keras.layers.Layer):
  """Splits the last axis in two: ReLU on the first half, x² on the second (the paper's mixed units)."""

  def call(self, x):
    half = x.shape[-1] // 2
    return tf.concat([tf.nn.relu(x[..., :half]), tf.square(x[..., half:])], axis=-1)


class MixedMLP(keras.layers.Layer):
  """`hidden` Dense(units) layers with mixed ReLU/square units (each optionally layer-normalised),
  then a linear Dense(output_units) if output_units > 0. Acts on the last axis of inputs of any
  rank (a `keras.Sequential` would fix the rank it was built with)."""

  def __init__(self, hidden: int, units: int, output_units: int, layer_norm: bool, **kwargs):
    super().__init__(**kwargs)
    dtype = kwargs.get("dtype")
    self.stack = []
    for i in range(hidden):
      self.stack += [keras.layers.Dense(units, dtype=dtype, name=f"dense_{i}"), HalfReluHalfSquare(dtype=dtype)]
      if layer_norm:
        self.stack.append(LayerNorm(dtype=dtype, name=f"layer_norm_{i}"))
    if output_units:
      self.stack.append(keras.layers.Dense(output_units, dtype=dtype, name="out"))

  def call(self, x):
    for layer in self.stack:
      x = layer(x)
    return x


class MetaGenRLNetwork(keras.Model):
  """Named inputs -> per-step objective values [B, T]. See the module docstring.

  Args:
    scalar_features: which of SCALAR_FEATURES to read (the paper's ablations drop `time`, or
      `values` and `next_values`).
    units: LSTM units; embedding / head layers use `hidden_units`.
    output_scale: s in l_t = s·tanh(y_t / s).
  """

  def __init__(self, scalar_features: Sequence[str] = SCALAR_FEATURES, units: int = 32, hidden_units: int = 32,
               scalar_embedding: int = 8, output_scale: float = 1000.0, dtype="float32", **kwargs):
    super().__init__(dtype=dtype, **kwargs)
    self.scalar_features = tuple(scalar_features)
    self.output_scale = float(output_scale)
    self.units = int(units)
    self.action_embedding = MixedMLP(3, hidden_units, 0, True, dtype=dtype, name="action_embedding")
    self.scalar_embedding = (MixedMLP(2, hidden_units, scalar_embedding, False, dtype=dtype, name="scalar_embedding")
                             if self.scalar_features else None)
    self.cell = keras.layers.LSTMCell(units, dtype=dtype, name="lstm_cell")
    self.head = MixedMLP(2, hidden_units, 1, True, dtype=dtype, name="head")
    probe = tf.zeros([1, 2], dtype)
    self({"rewards": probe, "discounts": probe, "episode_ends": probe, "values": probe, "next_values": probe,
          "time": probe, "actions": tf.zeros([1, 2, 1], dtype), "behaviour_actions": tf.zeros([1, 2, 1], dtype)})

  def scalar_inputs(self, inputs) -> tf.Tensor:
    """[..., B, T, len(scalar_features)]: normalised reward, time, masked V_{t+1}, V_t. Rewards and
    values are normalised over each batch's [B, T] (per agent when a population's inputs carry a
    leading agent axis)."""
    values = tf.stop_gradient(tf.stack([inputs["values"], inputs["next_values"]], axis=-1))
    values = z_normalise(values, [-3, -2, -1])  # one normalisation for V_t and V_{t+1}
    columns = {"rewards": z_normalise(inputs["rewards"], [-2, -1]), "time": inputs["time"],
               "next_values": values[..., 1] * inputs["discounts"], "values": values[..., 0]}
    return tf.stack([columns[n] for n in self.scalar_features], axis=-1)

  def call(self, inputs):
    """Scalar inputs [..., B, T], actions [..., B, T, D] -> l_t [..., B, T]. Leading axes (a
    population's agents) are independent batches: one LSTM call runs all of them."""
    actions = tf.stack([inputs["behaviour_actions"], inputs["actions"]], axis=-1)  # [..., B, T, D, 2]
    features = [tf.reduce_mean(self.action_embedding(actions), axis=-2)]  # mean over D: any action dimension
    if self.scalar_embedding is not None:
      features.append(self.scalar_embedding(self.scalar_inputs(inputs)))
    features = tf.concat(features, axis=-1)
    leading = tf.shape(inputs["episode_ends"])
    steps = inputs["episode_ends"].shape[-1] or leading[-1]  # static where known (see _backward_lstm)
    flat = tf.reshape(features, [-1, steps, features.shape[-1]])
    outputs = self._backward_lstm(flat, tf.reshape(inputs["episode_ends"], [-1, steps]))
    y = tf.reshape(tf.squeeze(self.head(outputs), -1), leading)
    return self.output_scale * tf.tanh(y / self.output_scale)

  def _backward_lstm(self, features, episode_ends):
    """features [B, T, F] -> [B, T, units], run from t = T−1 down to 0, with the state zeroed
    after each step that ends an episode (so step t never sees the next episode); by hand
    because `keras.layers.LSTM` cannot reset its state mid-sequence.

    With a static T (training: replayed segments of fixed length) the loop is unrolled in Python,
    as the reference's `static_rnn`: no while loop, so `tf.vectorized_map` can vectorise a
    population's gradients through it (pfor cannot vectorise gradients through a while loop's
    accumulators). With a dynamic T (an export's signature) it is a `tf.scan`.
    """
    batch = tf.shape(features)[0]
    zeros = tf.zeros([batch, self.units], features.dtype)

    def step(h, c, feature, ends):
      keep = (1.0 - ends)[:, None]  # step t ends its episode: forget what came after it
      out, (h, c) = self.cell(feature, [h * keep, c * keep])
      return h, c, out

    steps = features.shape[1]
    if steps is not None:
      h, c, outputs = zeros, zeros, [None] * steps
      for t in reversed(range(steps)):
        h, c, outputs[t] = step(h, c, features[:, t], episode_ends[:, t])
      return tf.stack(outputs, axis=1)
    reversed_inputs = (tf.reverse(tf.transpose(features, [1, 0, 2]), [0]),
                       tf.reverse(tf.transpose(episode_ends, [1, 0]), [0]))
    _, _, outputs = tf.scan(lambda carry, x: step(carry[0], carry[1], *x), reversed_inputs,
                            initializer=(zeros, zeros, zeros))
    return tf.transpose(tf.reverse(outputs, [0]), [1, 0, 2])


class MetaGenRLObjective(Objective):
  """L_α as an off-policy objective for continuous actions of any dimension (`action_dim: null`)."""
  kind = "metagenrl"
  learner = OFF_POLICY
  action_kinds = ("continuous",)
  input_names = ("rewards", "discounts", "episode_ends", "values", "next_values", "time", "actions",
                 "behaviour_actions")

  def __init__(self, scalar_features: Sequence[str] = SCALAR_FEATURES, units: int = 32, output_scale: float = 1000.0,
               dtype="float32", name=None):
    super().__init__(name=name)
    unknown = sorted(set(scalar_features) - set(SCALAR_FEATURES))
    if unknown:
      raise errors.ConfigError(f"unknown MetaGenRL scalar feature(s) {', '.join(unknown)}; "
                               f"expected a subset of {', '.join(SCALAR_FEATURES)}")
    self.network = MetaGenRLNetwork(scalar_features, units, output_scale=output_scale, dtype=dtype, name="objective")

  def input_specs(self):
    """As the base class's, in the network's dtype (float64 for finite-difference checks)."""
    dtype = tf.as_dtype(self.network.dtype)
    return {n: tf.TensorSpec(s.shape, dtype, name=n) for n, s in super().input_specs().items()}

  def hyperparameters(self):
    return dict(scalar_features=list(self.network.scalar_features), units=self.network.units,
                output_scale=self.network.output_scale)

  def _loss(self, inputs):
    per_step = self.network(inputs)
    return {"per_step": per_step, "loss": tf.reduce_mean(per_step)}
