"""Networks, functional evaluation, and second-order meta-gradients against finite differences."""
import numpy as np
import pytest
import tensorflow as tf

from tf_metarl import errors
from tf_metarl.envs import describe_env
from tf_metarl.networks import (CategoricalPolicy, DeterministicPolicy, GaussianPolicy, TwinQCritic, ValueCritic,
                                functional_call, make_policy)


def test_policy_outputs_and_distributions():
  obs = tf.random.normal([4, 7, 3])
  cat = CategoricalPolicy(3, 5, hidden_sizes=(8,))
  out = cat(obs)
  assert out.shape == (4, 7, 5)
  actions = cat.sample(out, seed=tf.constant([1, 2]))
  np.testing.assert_allclose(cat.log_prob(out, actions).numpy(),
                             tf.gather(tf.nn.log_softmax(out), actions, batch_dims=2).numpy(), rtol=1e-5, atol=1e-6)
  gauss = GaussianPolicy(3, 2, hidden_sizes=(8,), initial_log_std=-1.0)
  out = gauss(obs)
  assert out.shape == (4, 7, 4)
  np.testing.assert_allclose(out[..., 2:].numpy(), -1.0)
  mean = gauss.mode(out)
  expected = 2 * (-0.5 * np.log(2 * np.pi) + 1.0) * np.ones([4, 7])  # log N(μ; μ, e^-1) = −½log 2π + 1, two dims
  np.testing.assert_allclose(gauss.log_prob(out, mean).numpy(), expected, rtol=1e-5)
  det = DeterministicPolicy(3, [-2.0, 0.0], [2.0, 1.0], hidden_sizes=(8,))
  a = det(100.0 * obs).numpy()
  assert a.shape == (4, 7, 2) and np.all(a[..., 0] >= -2) and np.all(a[..., 0] <= 2) and np.all(a[..., 1] >= 0)
  assert ValueCritic(3, (8,))(obs).shape == (4, 7)
  assert TwinQCritic(3, 2, (8,))((obs, tf.zeros([4, 7, 2]))).shape == (2, 4, 7)


def test_layer_norm_option_adds_parameters():
  plain, normed = CategoricalPolicy(3, 2, (8, 8)), CategoricalPolicy(3, 2, (8, 8), layer_norm=True)
  assert len(normed.trainable_variables) == len(plain.trainable_variables) + 4


def test_functional_call_matches_and_substitutes():
  policy = GaussianPolicy(3, 2, hidden_sizes=(8,))
  obs = tf.random.normal([5, 3])
  np.testing.assert_allclose(functional_call(policy, [v.value for v in policy.trainable_variables], obs).numpy(),
                             policy(obs).numpy(), rtol=1e-6)
  zeros = [tf.zeros_like(v) for v in policy.trainable_variables]
  np.testing.assert_allclose(functional_call(policy, zeros, obs).numpy(), 0.0)
  with pytest.raises(ValueError, match="expected 5 parameter tensors"):
    functional_call(policy, zeros[:2], obs)


def test_make_policy_rejects_deterministic_on_discrete():
  with pytest.raises(errors.IncompatibleSpaceError, match="continuous"):
    make_policy(describe_env("CartPole-v1"), "deterministic", (8,), "relu")


if __name__ == "__main__":
  import sys
  sys.exit(pytest.main([__file__, "-q"]))


def test_layer_norm_second_derivatives_match_finite_differences():
  """A mixed derivative ∂²/∂η∂x through LayerNorm (Keras's LayerNormalization gets this wrong:
  222.4 vs 34.9 measured, it stops gradients through the mean; swapping it in fails this test)."""
  import keras
  from tf_metarl.networks.functional import functional_call
  from tf_metarl.networks.normalization import LayerNorm
  rng = np.random.default_rng(0)
  x0 = tf.constant(rng.normal(size=(5, 3, 2)))
  weights = tf.constant(rng.normal(size=(5, 3, 2)))
  model = keras.Sequential([keras.layers.Dense(8, dtype="float64"), LayerNorm(dtype="float64")])
  model(x0)
  eta = [tf.identity(v) for v in model.trainable_variables]
  direction = [tf.constant(rng.normal(size=e.shape)) for e in eta]

  def input_gradient(params):
    x = tf.identity(x0)
    with tf.GradientTape() as tape:
      tape.watch(x)
      y = functional_call(model, params, x)
      loss = tf.reduce_sum(0.5 * tf.square(y) + y * tf.range(8, dtype=tf.float64))
    return tf.reduce_sum(tape.gradient(loss, x) * weights)

  with tf.GradientTape() as tape:
    tape.watch(eta)
    value = input_gradient(eta)
  analytic = sum(float(tf.reduce_sum(g * d)) for g, d in zip(tape.gradient(value, eta), direction))
  eps = 1e-6
  numeric = (float(input_gradient([e + eps * d for e, d in zip(eta, direction)]))
             - float(input_gradient([e - eps * d for e, d in zip(eta, direction)]))) / (2 * eps)
  np.testing.assert_allclose(analytic, numeric, rtol=1e-6)


def test_stateless_initial_values_draw_as_the_keras_initializers_do():
  from tf_metarl.networks.functional import stateless_initial_values
  policy = GaussianPolicy(3, 2, (64, 64), initial_log_std=-0.5, memory_units=32)
  draws = [stateless_initial_values(policy, tf.constant([i, 7])) for i in range(20)]
  again = stateless_initial_values(policy, tf.constant([0, 7]))
  for k, variable in enumerate(policy.trainable_variables):
    values = np.stack([d[k].numpy() for d in draws])
    np.testing.assert_array_equal(again[k].numpy(), values[0])  # a seed gives one draw
    if "kernel" not in variable.path:  # constants: biases, the log-std
      np.testing.assert_array_equal(values, np.broadcast_to(variable.numpy(), values.shape))
      continue
    fan_in, fan_out = variable.shape
    if "head" in variable.path:  # VarianceScaling(0.01): truncated normal, std sqrt(0.01 / fan_in)
      expected = np.sqrt(0.01 / fan_in)
    else:  # Glorot uniform
      limit = np.sqrt(6.0 / (fan_in + fan_out))
      expected = limit / np.sqrt(3.0)
      assert np.abs(values).max() <= limit
    assert abs(values.std() / expected - 1.0) < 0.05, variable.path
    assert np.abs(values[0] - values[1]).max() > 0  # seeds differ


def test_sampling_from_shared_uniform_noise_has_the_policys_distribution():
  rng = np.random.default_rng(0)
  uniform = tf.constant(rng.uniform(1e-7, 1.0, size=(20_000, 4)), tf.float32)
  gaussian = GaussianPolicy(3, 2, (8,))
  outputs = tf.tile(tf.constant([[1.0, -2.0, np.log(0.5), np.log(2.0)]]), [20_000, 1])
  samples = gaussian.sample_from_uniform(outputs, uniform).numpy()
  np.testing.assert_allclose(samples.mean(0), [1.0, -2.0], atol=0.04)
  np.testing.assert_allclose(samples.std(0), [0.5, 2.0], rtol=0.03)
  categorical = CategoricalPolicy(3, 4, (8,))
  logits = tf.tile(tf.math.log(tf.constant([[0.1, 0.2, 0.3, 0.4]])), [20_000, 1])
  counts = np.bincount(categorical.sample_from_uniform(logits, uniform).numpy(), minlength=4) / 20_000
  np.testing.assert_allclose(counts, [0.1, 0.2, 0.3, 0.4], atol=0.015)
