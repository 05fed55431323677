"""FRODO's core: n-step returns, differentiable inner optimizers, meta-gradients vs finite differences."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_metarl import returns
from tf_metarl.agents import ActorCritic, RMSProp, make_optimizer
from tf_metarl.algorithms.frodo import FrodoConfig, FrodoProblem
from tf_metarl.algorithms.targets import FrodoTargetNetwork, LearnedLambdaReturn
from tf_metarl.meta.problem import Episodes
from tf_metarl.meta.trainer import MetaTrainer
from tf_metarl.meta.unrolled import UnrolledEstimator
from tf_metarl.networks import CategoricalPolicy, ValueCritic
from tf_metarl.trajectories import Trajectory


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
  params, state = RMSProp(0.1, decay=0.9, epsilon=0.0).update([tf.constant(1.0)], [tf.constant(2.0)],
                                                              ([tf.constant(0.5)],))
  v = 0.9 * 0.5 + 0.1 * 4.0
  np.testing.assert_allclose(state[0][0].numpy(), v)
  np.testing.assert_allclose(params[0].numpy(), 1.0 - 0.1 * 2.0 / np.sqrt(v))


class FixedBatches:
  """A task that serves pre-made batches in order: its state is the index of the next one."""
  observation_size, num_actions = 4, 3

  def __init__(self, batches):
    self.stacked = tf.nest.map_structure(lambda *xs: tf.stack(xs), *batches)

  def reset(self, seed, num_envs):
    return tf.constant(0)

  def rollout(self, env_state, policy_fn, policy_params, seed, length):
    batch = tf.nest.map_structure(lambda x: tf.gather(x, env_state), self.stacked)
    n = tf.size(batch.rewards)
    return env_state + 1, batch, Episodes(tf.zeros([n], batch.rewards.dtype), tf.zeros([n], tf.int32),
                                          tf.zeros([n], batch.rewards.dtype))


def make_problem(config, seed=0, target="frodo"):
  """FRODO on M + 1 fixed float64 batches (B = 2, T = 5): M inner updates, then the held-out one."""
  keras.utils.set_random_seed(seed)
  obs_dim, B, T = 4, 2, 5
  policy = CategoricalPolicy(obs_dim, 3, hidden_sizes=(5,), dtype="float64")
  critic = ValueCritic(obs_dim, hidden_sizes=(5,), dtype="float64")
  target_network = (FrodoTargetNetwork(obs_dim, units=4, dtype="float64") if target == "frodo"
                    else LearnedLambdaReturn(0.8, 0.7, dtype="float64"))
  rng = np.random.default_rng(seed)

  def batch():
    end = (rng.random((B, T)) < 0.2).astype(np.float64)
    terminated = end * (rng.random((B, T)) < 0.5)
    return Trajectory(observations=tf.constant(rng.normal(size=(B, T, obs_dim))),
                      actions=tf.constant(rng.integers(0, 3, size=(B, T)), tf.int32),
                      rewards=tf.constant(rng.normal(size=(B, T))),
                      next_observations=tf.constant(rng.normal(size=(B, T, obs_dim))),
                      terminated=tf.constant(terminated), truncated=tf.constant(end - terminated),
                      policy_outputs=tf.zeros((B, T, 3), tf.float64), log_probs=tf.zeros((B, T), tf.float64),
                      episode_steps=tf.zeros((B, T), tf.float64))

  agent = ActorCritic(policy, critic, make_optimizer(config.inner_optimizer, config.inner_learning_rate))
  task = FixedBatches([batch() for _ in range(config.inner_steps + 1)])
  problem = FrodoProblem(task, agent, target_network, config, num_envs=B, trajectory_length=T)
  return problem, target_network


def eta_of(model):
  return [tf.convert_to_tensor(v) for v in model.trainable_variables]


def meta_loss_at(problem, eta, seed=tf.constant([0, 0])):
  """M unrolls and the meta-loss from a fresh initial state (the fixed batches restart)."""
  state = problem.init(eta, seed)
  batches = []
  for _ in range(problem.config.inner_steps):
    state, batch, _ = problem.unroll(eta, state, seed)
    batches.append(batch)
  state, held_out, _ = problem.meta_batch(state, seed)
  return problem.meta_loss(eta, state, held_out, batches)[0], state


@pytest.mark.parametrize("inner_steps, optimizer, extension, target", [
    (1, "sgd", False, "frodo"), (3, "sgd", False, "frodo"), (1, "rmsprop", False, "frodo"),
    (3, "rmsprop", False, "frodo"), (1, "rmsprop", True, "frodo"), (3, "rmsprop", True, "frodo"),
    (1, "sgd", False, "gamma_lambda"), (3, "rmsprop", False, "gamma_lambda")])
def test_meta_gradient_matches_central_finite_differences(inner_steps, optimizer, extension, target):
  """The estimator the meta-trainer uses (UnrolledEstimator over FrodoProblem) against central
  differences of the same meta-loss, with the semi-gradient constants held fixed."""
  config = FrodoConfig(inner_steps=inner_steps, inner_optimizer=optimizer, inner_learning_rate=0.05, n_step=3,
                       gamma=0.9, extension=extension, extension_coef=0.3)
  problem, model = make_problem(config, target=target)
  problem.semi_gradient_constants = {}  # recorded at η by the estimate, replayed by every evaluation below
  eta = eta_of(model)
  seed = tf.constant([0, 0])
  grads, _, _ = UnrolledEstimator(unroll_steps=inner_steps).estimate(problem, eta, problem.init(eta, seed), seed)
  flat = np.concatenate([g.numpy().ravel() for g in grads])
  assert np.linalg.norm(flat) > 1e-8, "∂L_outer/∂η must not vanish: the inner updates must stay differentiable"
  rng = np.random.default_rng(1)
  eps = 1e-6
  for _ in range(3):  # directional derivatives along random directions: g·v against central differences
    direction = [rng.normal(size=e.shape) for e in eta]
    analytic = sum(float(np.sum(g.numpy() * dv)) for g, dv in zip(grads, direction))
    shifted = lambda s: float(meta_loss_at(problem, [e + s * dv for e, dv in zip(eta, direction)])[0])
    numeric = (shifted(eps) - shifted(-eps)) / (2 * eps)
    assert abs(analytic - numeric) <= 1e-4 * abs(numeric) + 1e-12, (analytic, numeric)


@pytest.mark.parametrize("flip", [False, True])
def test_one_meta_step_lowers_the_meta_loss(flip):
  """One step of the meta-trainer on fixed batches must lower the meta-loss on those batches;
  the same step applied with the opposite sign must raise it (so the test can fail)."""
  config = FrodoConfig(inner_steps=2, inner_optimizer="rmsprop", inner_learning_rate=0.05, n_step=3, gamma=0.9)
  problem, model = make_problem(config)
  eta = eta_of(model)
  grads, _, _ = UnrolledEstimator(unroll_steps=2).estimate(problem, eta, problem.init(eta, tf.constant([0, 0])),
                                                           tf.constant([0, 0]))
  # A step of length 1e-2 along the gradient: small enough for the first-order decrease to show.
  learning_rate = 1e-2 / float(tf.linalg.global_norm(grads))
  trainer = MetaTrainer(problem, UnrolledEstimator(unroll_steps=2), model,
                        make_optimizer("sgd", -learning_rate if flip else learning_rate), seed=0)
  before = float(meta_loss_at(problem, eta)[0])
  trainer.iteration()
  after = float(meta_loss_at(problem, trainer.eta.read())[0])
  assert (after > before) if flip else (after < before), (before, after)


def test_outer_loss_uses_canonical_return_not_the_meta_target():
  problem, model = make_problem(FrodoConfig(inner_steps=1, inner_optimizer="sgd"))
  eta = eta_of(model)
  state = problem.init(eta, tf.constant([0, 0]))
  with tf.GradientTape() as tape:
    tape.watch(eta)
    outer, _ = problem.meta_loss(eta, state, state.batch)  # no inner update: independent of η
  assert all(g is None for g in tape.gradient(outer, eta))


def test_semi_gradient_constants_are_replayed():
  problem, model = make_problem(FrodoConfig(inner_steps=2, inner_optimizer="rmsprop", extension=True))
  problem.semi_gradient_constants = {}
  first, _ = meta_loss_at(problem, eta_of(model))
  assert set(problem.semi_gradient_constants) >= {"inner0/baseline", "inner1/next_values", "outer/baseline",
                                                  "revised1/next_values", "outer_loss"}
  again, _ = meta_loss_at(problem, eta_of(model))
  np.testing.assert_allclose(again.numpy(), first.numpy(), rtol=1e-12)


@pytest.mark.parametrize("entropy_coef, value_coef, negative, floor", [(2.0, 0.5, True, 0.0), (0.0, 5.0, False, 0.0),
                                                                     (2.0, 0.5, True, 1e3)])
def test_extension_weight_is_b1_over_the_outer_loss_magnitude(entropy_coef, value_coef, negative, floor):
  config = FrodoConfig(inner_steps=2, inner_optimizer="sgd", inner_learning_rate=0.05, extension=True,
                       extension_coef=0.3, entropy_coef=entropy_coef, value_coef=value_coef,
                       extension_scale_floor=floor)
  problem, model = make_problem(config)
  eta = eta_of(model)
  state = problem.init(eta, tf.constant([0, 0]))
  inner_batches = []
  for _ in range(2):
    state, batch, _ = problem.unroll(eta, state, tf.constant([0, 0]))
    inner_batches.append(batch)
  meta, metrics = problem.meta_loss(eta, state, state.batch, inner_batches)
  outer = float(metrics["outer_loss"])
  revised = np.mean([float(problem.canonical_loss(state.agent, b, "r", outer=False)) for b in inner_batches])
  assert (outer < 0) == negative
  # rtol 1e-8: the implementation guards the division with |L_outer| + 1e-8.
  assert abs(outer) < 1e3  # so the floor of the third case binds
  np.testing.assert_allclose(float(meta), outer + 0.3 / max(abs(outer), floor) * revised, rtol=1e-8)


def test_outer_coefficients_override_the_inner_ones():
  problem, model = make_problem(FrodoConfig(inner_steps=1, outer_value_coef=0.0, outer_entropy_coef=0.0))
  state = problem.init(eta_of(model), tf.constant([0, 0]))
  critic = list(state.agent.critic)
  with tf.GradientTape(persistent=True) as tape:
    tape.watch(critic)
    agent = state.agent._replace(critic=critic)
    outer = problem.canonical_loss(agent, state.batch, "o", outer=True)
    revised = problem.canonical_loss(agent, state.batch, "r", outer=False)  # the inner coefficients (c1 = 0.5)
  assert all(g is None or not np.any(g.numpy()) for g in tape.gradient(outer, critic))
  assert any(g is not None and np.any(g.numpy()) for g in tape.gradient(revised, critic))


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
  # Explicit η gives the same targets as the variables.
  np.testing.assert_allclose(scaled.targets(batch, None, next_values, params=eta_of(scaled)).numpy(),
                             scaled.targets(batch, None, next_values).numpy(), rtol=1e-12)
  blind = FrodoTargetNetwork(4, units=4, observation_scale=0.0, dtype="float64")
  other = dict(batch, observations=batch["observations"] + 1.0)
  np.testing.assert_array_equal(blind.targets(batch, None, next_values).numpy(),
                                blind.targets(other, None, next_values).numpy())
