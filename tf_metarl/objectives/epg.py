"""Evolved Policy Gradients' learned loss L_φ (Houthooft et al., NeurIPS 2018, sections 3 and 4.1).

L_φ reads the agent's N most recent transitions as a buffer [B, N, ·] (B independent buffers,
e.g. a population's agents) and scores each of them:

  x_t = (s_t, a_t, d_t [, r_t]) normalised by running statistics, then π_θ(·|s_t), memory
  context = Dense(32, leaky ReLU)(mean over time of
            Conv1D(8, kernel 4, stride 2, leaky ReLU)(Conv1D(8, kernel 8, stride 7, leaky ReLU)(x)))
  l_t = Dense(1)(Dense(16, leaky ReLU)(x_t, context))

and the loss is the mean of l_t over the last M samples. The policy's gradient comes through
π_θ(·|s_t) (probabilities, or mean and log-std) and through the memory unit's output (a 32-unit tanh
layer of a constant input that the policy carries and only the loss reads: `networks.policies`).
Rewards are not an input, so an agent trained by L_φ alone learns without them; the
forward-backward variant (`reward_input=True`) feeds r_t, as the paper does for the Hopper whose
reward direction is drawn per environment. The reference code (`openai/EPG`, `losses.py`) uses
other layer sizes (16 and 32 channels, kernel 6 stride 5) and feeds rewards to every variant; this
follows the paper's text. As in the reference, the convolutions' output is averaged over time
before the context layer, so any buffer at least as long as the receptive field (29 samples) works.
"""
from __future__ import annotations

import keras
import tensorflow as tf

from tf_metarl import errors
from tf_metarl.networks.functional import functional_call
from tf_metarl.networks.normalization import RunningNormalizer
from tf_metarl.objectives.base import ON_POLICY, Objective, validate_inputs

CONVOLUTIONS = ((8, 8, 7), (8, 4, 2))  # (channels, kernel, stride), the paper's section 4.1
RECEPTIVE_FIELD = CONVOLUTIONS[0][1] + (CONVOLUTIONS[1][1] - 1) * CONVOLUTIONS[0][2]  # 29 samples
LEAK = 0.2  # leaky ReLU slope (Keras's default for LeakyReLU is 0.3; 0.2 is chainer's, which the reference used)


def _leaky_relu(x):
  return tf.nn.leaky_relu(x, LEAK)


class FramedConv1D(keras.layers.Layer):
  """A 'valid' 1-D convolution over time, [B, N, C] -> [B, (N − kernel) // stride + 1, channels],
  as windows (`tf.signal.frame`) times the kernel (`tf.einsum`). By hand because `tf.vectorized_map`
  cannot batch a convolution whose filter differs per member (measured: "Input 'filter' of op
  'Conv2D' expected to be loop invariant"), and ES evaluates a population of losses at once."""

  def __init__(self, channels: int, kernel_size: int, stride: int, activation=None, **kwargs):
    super().__init__(**kwargs)
    self.channels, self.kernel_size, self.stride = int(channels), int(kernel_size), int(stride)
    self.activation = activation
    self.kernel_initializer = keras.initializers.GlorotUniform()
    self.bias_initializer = keras.initializers.Zeros()

  def build(self, input_shape):
    self.kernel = self.add_weight(shape=(self.kernel_size, int(input_shape[-1]), self.channels),
                                  initializer=self.kernel_initializer, name="kernel")
    self.bias = self.add_weight(shape=(self.channels,), initializer=self.bias_initializer, name="bias")

  def call(self, x):
    windows = tf.signal.frame(x, self.kernel_size, self.stride, axis=1)  # [B, L, kernel, C]
    out = tf.einsum("blkc,kco->blo", windows, tf.cast(self.kernel, x.dtype)) + tf.cast(self.bias, x.dtype)
    return self.activation(out) if self.activation is not None else out


class EPGLossNetwork(keras.Model):
  """(raw features [B, N, R], policy features [B, N, P]) -> per-sample losses [B, N]: the raw
  environment features (s, a, d [, r]) pass through the running normaliser, the policy features
  (π_θ(·|s), memory) do not."""

  def __init__(self, raw_size: int, policy_size: int, context_units: int = 32, hidden_units: int = 16,
               dtype="float32", **kwargs):
    super().__init__(dtype=dtype, **kwargs)
    self.raw_size, self.policy_size = int(raw_size), int(policy_size)
    self.normalizer = RunningNormalizer(self.raw_size, dtype=dtype, name="normalizer")
    self.convolutions = [FramedConv1D(c, k, s, activation=_leaky_relu, dtype=dtype, name=f"conv_{i}")
                         for i, (c, k, s) in enumerate(CONVOLUTIONS)]
    self.context = keras.layers.Dense(context_units, activation=_leaky_relu, dtype=dtype, name="context")
    self.hidden = keras.layers.Dense(hidden_units, activation=_leaky_relu, dtype=dtype, name="hidden")
    self.out = keras.layers.Dense(1, dtype=dtype, name="out")
    self((tf.zeros([1, RECEPTIVE_FIELD, self.raw_size], dtype), tf.zeros([1, RECEPTIVE_FIELD, self.policy_size], dtype)))

  def call(self, inputs):
    raw, policy = inputs
    features = tf.concat([self.normalizer(raw), policy], axis=-1)  # [B, N, F]
    hidden = features
    for conv in self.convolutions:
      hidden = conv(hidden)
    context = self.context(tf.reduce_mean(hidden, axis=1))  # [B, C]
    context = tf.broadcast_to(context[:, None, :], tf.concat([tf.shape(features)[:2], tf.shape(context)[1:]], 0))
    return tf.squeeze(self.out(self.hidden(tf.concat([features, context], axis=-1))), -1)


class EPGObjective(Objective):
  """L_φ as an on-policy objective for one observation and action space.

  Args:
    observation_dim: O.
    num_actions: discrete actions (one-hot actions and probabilities, P = num_actions), or None.
    action_dim: continuous action dimension A (policy outputs P = 2A: mean and log-std).
    memory_units: the policy's memory unit size the loss reads.
    reward_input: feed r_t (the forward-backward variant).
    loss_window: M, the number of most recent samples the loss averages.
  """
  kind = "epg"
  learner = ON_POLICY

  def __init__(self, observation_dim: int, num_actions: int | None = None, action_dim: int | None = None,
               memory_units: int = 32, reward_input: bool = False, loss_window: int = 128, context_units: int = 32,
               hidden_units: int = 16, dtype="float32", name=None):
    super().__init__(name=name)
    if (num_actions is None) == (action_dim is None):
      raise errors.ConfigError("an EPG loss needs exactly one of num_actions (discrete) or action_dim (continuous)")
    if loss_window < 1:
      raise errors.ConfigError(f"EPG loss_window must be >= 1, got {loss_window}")
    self.observation_dim, self.num_actions, self.action_dim = int(observation_dim), num_actions, action_dim
    self.memory_units, self.reward_input, self.loss_window = int(memory_units), bool(reward_input), int(loss_window)
    self.action_kinds = ("discrete",) if num_actions else ("continuous",)
    self.action_features = int(num_actions or action_dim)
    self.policy_output_dim = int(num_actions) if num_actions else 2 * int(action_dim)
    self.input_names = ("observations", "behaviour_actions", "episode_ends", "policy_outputs", "memory") + (
        ("rewards",) if self.reward_input else ())
    raw_size = self.observation_dim + self.action_features + 1 + int(self.reward_input)
    self.network = EPGLossNetwork(raw_size, self.policy_output_dim + self.memory_units, context_units, hidden_units,
                                  dtype=dtype, name="epg_loss")
    self.context_units, self.hidden_units = int(context_units), int(hidden_units)

  def hyperparameters(self):
    return dict(observation_dim=self.observation_dim, num_actions=self.num_actions, action_dim=self.action_dim,
                memory_units=self.memory_units, reward_input=self.reward_input, loss_window=self.loss_window,
                context_units=self.context_units, hidden_units=self.hidden_units)

  def constraints(self):
    return dict(super().constraints(), observation_dim=self.observation_dim, action_dim=self.action_dim,
                num_actions=self.num_actions, policy_output_dim=self.policy_output_dim,
                memory_units=self.memory_units, min_time_steps=RECEPTIVE_FIELD)

  def features(self, inputs):
    """(raw [B, N, R], policy [B, N, P]) from named inputs; raw in the normaliser's order."""
    return self._raw(inputs), tf.concat([inputs["policy_outputs"], inputs["memory"]], -1)

  def _raw(self, inputs):
    """(s, a, d [, r]) [B, N, R] from named inputs: the part the running statistics normalise."""
    raw = [inputs["observations"], inputs["behaviour_actions"], inputs["episode_ends"][..., None]]
    if self.reward_input:
      raw.append(inputs["rewards"][..., None])
    return tf.concat(raw, -1)

  def per_sample(self, inputs, params=None):
    """l_t [B, N]; `params`: φ as explicit tensors (ES members), default the model's own."""
    steps = inputs["episode_ends"].shape[1]
    if steps is not None and steps < RECEPTIVE_FIELD:
      raise errors.ObjectiveInputError(f"epg: a buffer of {steps} steps is shorter than the loss's receptive field "
                                       f"of {RECEPTIVE_FIELD} steps")
    check = tf.debugging.assert_greater_equal(
        tf.shape(inputs["episode_ends"])[1], RECEPTIVE_FIELD,
        message=f"epg: the buffer is shorter than the loss's receptive field of {RECEPTIVE_FIELD} steps")
    with tf.control_dependencies([check]):
      features = self.features(inputs)
    if params is None:
      return self.network(features)
    return functional_call(self.network, params, features)

  def loss_with(self, inputs, params):
    """The loss at φ = `params` (explicit tensors: an ES member's perturbed loss) on named inputs."""
    return self.loss_from_per_sample(self.per_sample(validate_inputs(self.input_specs(), inputs, self.kind), params))

  def loss_from_per_sample(self, per_sample):
    """The mean of the last `loss_window` samples of each buffer."""
    return tf.reduce_mean(per_sample[:, -self.loss_window:])

  def _loss(self, inputs):
    per_step = self.per_sample(inputs)
    return {"per_step": per_step, "loss": self.loss_from_per_sample(per_step)}

  def raw_features(self, trajectory, policy) -> tf.Tensor:
    """The normalised part of the inputs, (s, a, d [, r]) [B, T, R], of a `Trajectory` collected
    by `policy` (its `action_features`): what the running statistics are computed from."""
    return self._raw({"observations": tf.cast(trajectory.observations, tf.float32),
                      "behaviour_actions": policy.action_features(trajectory.actions),
                      "episode_ends": trajectory.episode_ends, "rewards": trajectory.rewards})

  @property
  def normalizer(self):
    """The running statistics (update them between ES epochs, never inside a member's inner
    training: every member must see the same loss)."""
    return self.network.normalizer
