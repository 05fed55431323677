"""Networks, functional evaluation, and second-order meta-gradients against finite differences."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_metarl import errors
from tf_metarl.envs import describe_env
from tf_metarl.meta import unrolled_meta_gradient
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


def _meta_problem():
  """A categorical policy θ trained by an inner loss weighted by a learned per-step weight w_η(r, t)."""
  keras.utils.set_random_seed(3)
  policy = CategoricalPolicy(3, 2, hidden_sizes=(6,), dtype="float64")
  weighting = keras.Sequential([keras.Input((2,), dtype="float64"),
                                keras.layers.Dense(3, activation="tanh", dtype="float64"),
                                keras.layers.Dense(1, dtype="float64")])
  rng = np.random.default_rng(0)
  obs_in, obs_out = (tf.constant(rng.normal(size=(2, 5, 3))) for _ in range(2))
  act_in, act_out = (tf.constant(rng.integers(0, 2, size=(2, 5)), tf.int32) for _ in range(2))
  rewards_in = tf.constant(rng.normal(size=(2, 5)))
  returns_out = tf.constant(rng.normal(size=(2, 5)))
  time = tf.broadcast_to(tf.range(5, dtype=tf.float64)[None] / 5.0, [2, 5])
  features = tf.stack([rewards_in, time], axis=-1)

  def inner_loss(params):
    log_probs = policy.log_prob(functional_call(policy, params, obs_in), act_in)
    weights = tf.reshape(weighting(tf.reshape(features, [-1, 2])), [2, 5])  # depends on η
    return -tf.reduce_mean(weights * log_probs)

  def outer_loss(params):
    log_probs = policy.log_prob(functional_call(policy, params, obs_out), act_out)
    return -tf.reduce_mean(returns_out * log_probs)

  theta0 = [tf.identity(v) for v in policy.trainable_variables]
  return theta0, weighting, inner_loss, outer_loss


@pytest.mark.parametrize("steps", [1, 3])
def test_meta_gradient_matches_central_finite_differences(steps):
  theta0, weighting, inner_loss, outer_loss = _meta_problem()
  lr = 0.5
  _, grads, _ = unrolled_meta_gradient(theta0, weighting.trainable_variables, inner_loss, outer_loss, lr, steps)
  analytic = np.concatenate([g.numpy().ravel() for g in grads])
  assert np.linalg.norm(analytic) > 1e-6, "meta-gradient should not vanish"

  def outer_after_inner():
    with tf.GradientTape(persistent=False):
      _, _, params = unrolled_meta_gradient(theta0, [], inner_loss, outer_loss, lr, steps)
    return float(outer_loss(params))

  eps = 1e-6
  numeric = []
  for var in weighting.trainable_variables:
    base = var.numpy()
    for index in np.ndindex(base.shape):
      values = []
      for sign in (1, -1):
        perturbed = base.copy()
        perturbed[index] += sign * eps
        var.assign(perturbed)
        values.append(outer_after_inner())
      var.assign(base)
      numeric.append((values[0] - values[1]) / (2 * eps))
  numeric = np.array(numeric)
  rel = np.linalg.norm(analytic - numeric) / np.linalg.norm(numeric)
  assert rel < 1e-4, (rel, analytic, numeric)


def test_meta_gradient_is_zero_without_inner_steps():
  theta0, weighting, inner_loss, outer_loss = _meta_problem()
  _, grads, _ = unrolled_meta_gradient(theta0, weighting.trainable_variables, inner_loss, outer_loss, 0.5, 0)
  assert all(np.all(g.numpy() == 0) for g in grads)


if __name__ == "__main__":
  import sys
  sys.exit(pytest.main([__file__, "-q"]))
