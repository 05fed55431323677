"""FRODO's core: n-step returns, differentiable inner optimizers, meta-gradients vs finite differences."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_metarl import returns
from tf_metarl.algorithms.frodo import FrodoConfig, FrodoStep
from tf_metarl.algorithms.targets import FrodoTargetNetwork, LearnedLambdaReturn
from tf_metarl.meta.inner_optimizers import rmsprop
from tf_metarl.networks import CategoricalPolicy, ValueCritic


def reference_n_step(r, d, end, nv, gamma, n):
  B, T = r.shape
  out = np.zeros_like(r)
  for b in range(B):
    for t in range(T):
      total, scale = 0.0, 1.0
      for k in range(min(n, T - t)):
        i = t + k
        total += scale * r[b, i]
        if end[b, i] or k == min(n, T - t) - 1:
          total += scale * gamma * d[b, i] * nv[b, i]
          break
        scale *= gamma * d[b, i]
      out[b, t] = total
  return out


@pytest.mark.parametrize("n", [1, 3, 20])
def test_n_step_returns_match_reference(n):
  rng = np.random.default_rng(0)
  r, nv = rng.normal(size=(3, 8)), rng.normal(size=(3, 8))
  end = (rng.random((3, 8)) < 0.2).astype(np.float64)
  d = np.where(end * (rng.random((3, 8)) < 0.5), 0.0, 1.0)
  got = returns.n_step_returns(tf.constant(r), tf.constant(d), tf.constant(end), tf.constant(nv), 0.9, n).numpy()
  np.testing.assert_allclose(got, reference_n_step(r, d, end, nv, 0.9, n), rtol=1e-10)
  if n >= 8:  # n past the segment: the bootstrapped discounted return
    np.testing.assert_allclose(got, returns.discounted_returns(r, d, end, nv, 0.9).numpy(), rtol=1e-10)


def test_one_step_return_by_hand():
  got = returns.n_step_returns(tf.constant([[1.0, 2.0]]), tf.constant([[1.0, 0.0]]), tf.constant([[0.0, 1.0]]),
                               tf.constant([[5.0, 7.0]]), 0.5, 1)
  np.testing.assert_allclose(got.numpy(), [[1.0 + 0.5 * 5.0, 2.0]])


def test_rmsprop_by_hand():
  params, state = rmsprop([tf.constant(1.0)], [tf.constant(2.0)], [tf.constant(0.5)], 0.1, decay=0.9, epsilon=0.0)
  v = 0.9 * 0.5 + 0.1 * 4.0
  np.testing.assert_allclose(state[0].numpy(), v)
  np.testing.assert_allclose(params[0].numpy(), 1.0 - 0.1 * 2.0 / np.sqrt(v))


def make_problem(config, seed=0, target="frodo"):
  keras.utils.set_random_seed(seed)
  obs_dim, B, T = 4, 2, 5
  policy = CategoricalPolicy(obs_dim, 3, hidden_sizes=(5,), dtype="float64")
  critic = ValueCritic(obs_dim, hidden_sizes=(5,), dtype="float64")
  target_network = (FrodoTargetNetwork(obs_dim, units=4, dtype="float64") if target == "frodo"
                    else LearnedLambdaReturn(0.8, 0.7, dtype="float64"))
  rng = np.random.default_rng(seed)

  def batch():
    end = (rng.random((B, T)) < 0.2).astype(np.float64)
    return {"observations": tf.constant(rng.normal(size=(B, T, obs_dim))),
            "actions": tf.constant(rng.integers(0, 3, size=(B, T)), tf.int32),
            "rewards": tf.constant(rng.normal(size=(B, T))),
            "discounts": tf.constant(1.0 - end * (rng.random((B, T)) < 0.5)),
            "episode_ends": tf.constant(end),
            "next_observations": tf.constant(rng.normal(size=(B, T, obs_dim)))}

  step = FrodoStep(policy, critic, target_network, config)
  return step, [batch() for _ in range(config.inner_steps)], batch()


@pytest.mark.parametrize("inner_steps, optimizer, extension, target", [
    (1, "sgd", False, "frodo"), (3, "sgd", False, "frodo"), (1, "rmsprop", False, "frodo"),
    (3, "rmsprop", False, "frodo"), (1, "rmsprop", True, "frodo"), (3, "rmsprop", True, "frodo"),
    (1, "sgd", False, "gamma_lambda"), (3, "rmsprop", False, "gamma_lambda")])
def test_meta_gradient_matches_central_finite_differences(inner_steps, optimizer, extension, target):
  config = FrodoConfig(inner_steps=inner_steps, inner_optimizer=optimizer, inner_learning_rate=0.05, n_step=3,
                       gamma=0.9, extension=extension, extension_coef=0.3)
  step, inner_batches, outer_batch = make_problem(config, target=target)
  params = step.agent_params()
  eta = step.target_network.trainable_variables
  held = {}  # semi-gradient constants (baselines, bootstrapped targets) recorded at η, replayed below
  with tf.GradientTape() as tape:
    meta = step.meta_loss(params, inner_batches, outer_batch, held=held)["meta_loss"]
  grads = tape.gradient(meta, eta)
  flat = np.concatenate([g.numpy().ravel() for g in grads])
  assert np.linalg.norm(flat) > 1e-8, "∂L_outer/∂η must not vanish: the inner updates must stay differentiable"

  def loss_at(direction, scale):
    for var, base, dv in zip(eta, bases, direction):
      var.assign(base + scale * dv)
    value = float(step.meta_loss(params, inner_batches, outer_batch, held=held)["meta_loss"])
    for var, base in zip(eta, bases):
      var.assign(base)
    return value

  bases = [v.numpy().copy() for v in eta]
  rng = np.random.default_rng(1)
  eps = 1e-6
  for _ in range(3):  # directional derivatives along random directions: g·v against central differences
    direction = [rng.normal(size=b.shape) for b in bases]
    analytic = sum(float(np.sum(g.numpy() * dv)) for g, dv in zip(grads, direction))
    numeric = (loss_at(direction, eps) - loss_at(direction, -eps)) / (2 * eps)
    assert abs(analytic - numeric) <= 1e-4 * abs(numeric) + 1e-12, (analytic, numeric)


def test_outer_loss_uses_canonical_return_not_the_meta_target():
  config = FrodoConfig(inner_steps=1, inner_optimizer="sgd")
  step, inner_batches, outer_batch = make_problem(config)
  eta = step.target_network.trainable_variables
  with tf.GradientTape() as tape:
    outer = step.canonical_loss(step.agent_params(), outer_batch)  # no inner update: independent of η
  assert all(g is None for g in tape.gradient(outer, eta))


def test_semi_gradient_constants_are_replayed():
  config = FrodoConfig(inner_steps=2, inner_optimizer="rmsprop", extension=True)
  step, inner_batches, outer_batch = make_problem(config)
  held = {}
  first = step.meta_loss(step.agent_params(), inner_batches, outer_batch, held=held)["meta_loss"]
  assert set(held) >= {"inner0/baseline", "inner1/next_values", "outer/baseline", "revised1/next_values", "outer_loss"}
  again = step.meta_loss(step.agent_params(), inner_batches, outer_batch, held=held)["meta_loss"]
  np.testing.assert_allclose(again.numpy(), first.numpy(), rtol=1e-12)


@pytest.mark.parametrize("entropy_coef, value_coef, negative", [(2.0, 0.5, True), (0.0, 5.0, False)])
def test_extension_weight_is_b1_over_the_outer_loss_magnitude(entropy_coef, value_coef, negative):
  config = FrodoConfig(inner_steps=2, inner_optimizer="sgd", inner_learning_rate=0.05, extension=True,
                       extension_coef=0.3, entropy_coef=entropy_coef, value_coef=value_coef)
  step, inner_batches, outer_batch = make_problem(config)
  out = step.meta_loss(step.agent_params(), inner_batches, outer_batch)
  outer = float(out["outer_loss"])
  revised = np.mean([float(step.canonical_loss(out["params"], b)) for b in inner_batches])
  assert (outer < 0) == negative
  np.testing.assert_allclose(float(out["meta_loss"]), outer + 0.3 / abs(outer) * revised, rtol=1e-10)


def test_outer_coefficients_override_the_inner_ones():
  step, _, outer_batch = make_problem(FrodoConfig(inner_steps=1, outer_value_coef=0.0, outer_entropy_coef=0.0))
  critic = step.critic.trainable_variables
  params = step.agent_params()
  with tf.GradientTape(persistent=True) as tape:
    tape.watch(params)
    outer = step.canonical_loss(params, outer_batch, outer=True)
    revised = step.canonical_loss(params, outer_batch)  # the inner coefficients (c1 = 0.5)
  num_policy = len(params) - len(critic)
  assert all(g is None or not np.any(g.numpy()) for g in tape.gradient(outer, params[num_policy:]))
  assert any(g is not None and np.any(g.numpy()) for g in tape.gradient(revised, params[num_policy:]))


def test_observation_scale_weights_the_observation_inputs():
  keras.utils.set_random_seed(0)
  rng = np.random.default_rng(0)
  batch = {"observations": tf.constant(rng.normal(size=(2, 5, 4))), "rewards": tf.constant(rng.normal(size=(2, 5))),
           "discounts": tf.ones((2, 5), tf.float64)}
  next_values = tf.constant(rng.normal(size=(2, 5)))
  scaled = FrodoTargetNetwork(4, units=4, observation_scale=0.5, dtype="float64")
  plain = FrodoTargetNetwork(4, units=4, dtype="float64")
  plain.set_weights(scaled.get_weights())
  half = dict(batch, observations=0.5 * batch["observations"])
  np.testing.assert_allclose(scaled.targets(batch, None, next_values).numpy(),
                             plain.targets(half, None, next_values).numpy(), rtol=1e-12)
  blind = FrodoTargetNetwork(4, units=4, observation_scale=0.0, dtype="float64")
  other = dict(batch, observations=batch["observations"] + 1.0)
  np.testing.assert_array_equal(blind.targets(batch, None, next_values).numpy(),
                                blind.targets(other, None, next_values).numpy())
