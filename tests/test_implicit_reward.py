"""The implicit reward method (Place 2023): its second-order estimates against exact values, its
meta-gradient's sign against the analytic one, and the method end to end on CartPole."""

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import run_tensorflow_only
from tf_metarl import errors, losses
from tf_metarl.algorithms.implicit_reward import ImplicitRewardConfig, ImplicitRewardTrainer
from tf_metarl.envs import helper_rewards
from tf_metarl.learners.on_policy import OnPolicyConfig
from tf_metarl.meta.implicit import ImplicitEstimator, flatten, hessian_vector_product
from tf_metarl.meta.linear_solvers import ConjugateGradientSolver, ExactSolver
from tf_metarl.meta.problem import InnerProblem
from tf_metarl.meta.trainer import InnerPhase

# --- a tabular MDP: exact values by dynamic programming over state distributions -----------------
S, A, HORIZON, GAMMA = 2, 2, 3, 0.9
RNG = np.random.default_rng(0)
P = RNG.dirichlet(np.ones(S), size=(S, A))          # P[s, a, s']
R_P = RNG.normal(size=(S, A))
R_H = RNG.normal(size=(S, A))
INIT = np.array([0.7, 0.3])


def exact_value(theta, eta):
  """V(θ, η) = E Σ_t γ^t (r_p + η r_h)(s_t, a_t), exactly (differentiable in θ [S, A] and η [])."""
  pi = tf.nn.softmax(theta, axis=-1)
  reward = tf.constant(R_P) + eta * tf.constant(R_H)
  d, value = tf.constant(INIT), tf.constant(0.0, tf.float64)
  for t in range(HORIZON):
    value += GAMMA**t * tf.reduce_sum(d[:, None] * pi * reward)
    d = tf.einsum("s,sa,sap->p", d, pi, tf.constant(P))
  return value


def sample_episodes(theta, n, seed):
  rng = np.random.default_rng(seed)
  pi = tf.nn.softmax(theta, axis=-1).numpy()
  states, actions = np.zeros([n, HORIZON], np.int64), np.zeros([n, HORIZON], np.int64)
  s = (rng.random(n) > INIT[0]).astype(np.int64)
  for t in range(HORIZON):
    a = (rng.random(n) > pi[s, 0]).astype(np.int64)
    states[:, t], actions[:, t] = s, a
    s = (rng.random(n) > P[s, a, 0]).astype(np.int64)
  return states, actions


def sampled_loss(theta, eta, states, actions, dependence):
  """−V as the score-function surrogate on sampled episodes (one per row, [N, HORIZON])."""
  log_probs = tf.gather_nd(tf.nn.log_softmax(theta, -1), tf.stack([states, actions], -1))
  rewards = tf.gather_nd(tf.constant(R_P) + eta * tf.constant(R_H), tf.stack([states, actions], -1))
  discounted = rewards * GAMMA ** tf.range(HORIZON, dtype=tf.float64)
  returns_from_t = tf.cumsum(discounted, axis=1, reverse=True)  # Σ_{t' ≥ t} γ^t' r_t'
  ends = tf.one_hot(HORIZON - 1, HORIZON, dtype=tf.float64)[None] * tf.ones_like(rewards)
  per_step = losses.score_function_surrogate(log_probs, tf.stop_gradient(log_probs), returns_from_t, ends, dependence)
  return tf.reduce_sum(tf.reduce_mean(per_step, 0))


def second_order_products(loss_fn, theta, eta, v):
  """(H_θθ v, H_ηθ v) of loss_fn(θ, η) by double backpropagation."""
  with tf.GradientTape(persistent=True) as outer:
    outer.watch([theta, eta])
    with tf.GradientTape() as inner:
      inner.watch(theta)
      loss = loss_fn(theta, eta)
    dot = tf.reduce_sum(inner.gradient(loss, theta) * v)
  return outer.gradient(dot, theta).numpy(), outer.gradient(dot, eta).numpy()


def test_score_function_second_derivatives_converge_to_the_exact_ones_on_a_tabular_mdp():
  theta = tf.constant(RNG.normal(size=(S, A)))
  eta = tf.constant(0.7, tf.float64)
  v = tf.constant(RNG.normal(size=(S, A)))
  exact_hv, exact_mixed = second_order_products(lambda t, e: -exact_value(t, e), theta, eta, v)
  errors_by_n = {}
  for n in (1_000, 200_000):
    states, actions = sample_episodes(theta, n, seed=n)
    hv, mixed = second_order_products(lambda t, e: sampled_loss(t, e, states, actions, 1.0), theta, eta, v)
    errors_by_n[n] = (np.linalg.norm(hv - exact_hv) / np.linalg.norm(exact_hv), abs(mixed - exact_mixed) /
                      abs(exact_mixed))
  big = errors_by_n[200_000]
  assert big[0] < 0.05 and big[1] < 0.05, errors_by_n
  assert big[0] < errors_by_n[1_000][0] / 3 and big[1] < errors_by_n[1_000][1] / 3, errors_by_n
  # Without the cross-time terms (dependence 0) the Hessian estimate stays biased however many samples.
  states, actions = sample_episodes(theta, 200_000, seed=1)
  hv0, _ = second_order_products(lambda t, e: sampled_loss(t, e, states, actions, 0.0), theta, eta, v)
  assert np.linalg.norm(hv0 - exact_hv) / np.linalg.norm(exact_hv) > 0.1


def test_surrogate_gradient_is_the_policy_gradient_and_per_step_importance_weighted_at_dependence_0():
  behaviour = tf.constant([[-0.7, -0.9, -0.4, -1.1]])
  advantages = tf.constant([[1.0, -2.0, 0.5, 3.0]])
  ends = tf.constant([[0.0, 1.0, 0.0, 0.0]])

  def grad(log_probs, dependence):
    with tf.GradientTape() as tape:
      tape.watch(log_probs)
      loss = tf.reduce_sum(losses.score_function_surrogate(log_probs, behaviour, advantages, ends, dependence))
    return loss.numpy(), tape.gradient(loss, log_probs).numpy()

  for dependence in (0.0, 0.5, 1.0):  # at π = μ: value 0, gradient −A_t per log π_t
    value, g = grad(tf.constant(behaviour.numpy()), dependence)  # a separate tensor of equal values
    assert value == 0.0
    np.testing.assert_allclose(g, -advantages.numpy(), rtol=1e-6)
  log_probs = tf.constant([[-0.5, -1.0, -0.2, -1.3]])
  _, g = grad(log_probs, 0.0)  # off-policy, dependence 0: −ρ_t A_t
  np.testing.assert_allclose(g, -np.exp((log_probs - behaviour).numpy()) * advantages.numpy(), rtol=1e-6)


# --- a one-state bandit with a helper reward: analytic hypergradient ------------------------------
K, TAU = 3, 0.5
BANDIT_R_P = np.array([1.0, 0.0, 0.5])


def logits(theta):
  """K logits from K − 1 free ones (the last fixed at 0: softmax is shift-invariant, so the
  Hessian in all K logits would be singular)."""
  return tf.concat([theta, tf.zeros([1], theta.dtype)], 0)


class HelperBandit(InnerProblem):
  """Inner: max_θ E_π[r_p + z r_h] + τ H(π) (θ: K − 1 free logits), so π* = softmax((r_p + z r_h)/τ).
  Outer: max E_π*[r_p]. η = [z]. `samples`: the losses are score-function surrogates on that many
  sampled actions (as the RL method's), else exact expectations."""

  def __init__(self, helper, samples=0, optimizer="sgd"):
    self.r_h, self.samples, self.optimizer = tf.constant(helper, tf.float64), samples, optimizer

  def init(self, eta, seed):
    theta = tf.zeros([K - 1], tf.float64) if self.optimizer == "sgd" else tf.constant([2.0, -1.0], tf.float64)
    return (theta, tf.zeros([K - 1], tf.float64), tf.zeros([K - 1], tf.float64), tf.constant(0.0, tf.float64))

  def _objective(self, theta, rewards, actions):
    pi = tf.nn.softmax(logits(theta))
    entropy = -tf.reduce_sum(pi * tf.nn.log_softmax(logits(theta)))
    if actions is None:
      return -tf.reduce_sum(pi * rewards) - TAU * entropy
    log_probs = tf.gather(tf.nn.log_softmax(logits(theta)), actions)[:, None]  # [N, T = 1]
    advantages = tf.gather(rewards, actions)[:, None]
    surrogate = losses.score_function_surrogate(log_probs, tf.stop_gradient(log_probs), advantages,
                                                tf.zeros_like(advantages), 0.0)
    return tf.reduce_mean(surrogate) - TAU * entropy

  def inner_loss(self, eta, params, batch):
    return self._objective(params[0], tf.constant(BANDIT_R_P) + eta[0] * self.r_h, batch)

  def unroll(self, eta, state, seed):  # exact gradient steps on the inner objective (SGD or Adam)
    theta, m, v, t = state
    with tf.GradientTape() as tape:
      tape.watch(theta)
      loss = self.inner_loss(eta, [theta], None)
    g = tape.gradient(loss, theta)
    if self.optimizer == "sgd":
      return (theta - 0.5 * g, m, v, t), None, {}
    t = t + 1
    m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
    step = 0.05 * (m / (1 - 0.9**t)) / (tf.sqrt(v / (1 - 0.999**t)) + 1e-12)
    return (theta - step, m, v, t), None, {}

  def meta_batch(self, state, seed):
    if not self.samples:
      return state, None, {}
    tiled = tf.cast(tf.tile(logits(state[0])[None], [self.samples, 1]), tf.float32)
    return state, tf.random.stateless_categorical(tiled, 1, seed)[:, 0], {}

  def meta_loss(self, eta, state, batch, inner_batches=()):
    theta = logits(state[0])
    if batch is None:
      return -tf.reduce_sum(tf.nn.softmax(theta) * tf.constant(BANDIT_R_P)), {}
    log_probs = tf.gather(tf.nn.log_softmax(theta), batch)[:, None]
    advantages = tf.gather(tf.constant(BANDIT_R_P), batch)[:, None]
    return tf.reduce_mean(losses.score_function_surrogate(log_probs, tf.stop_gradient(log_probs), advantages,
                                                          tf.zeros_like(advantages), 0.0)), {}

  def params(self, state):
    return [state[0]]

  def with_params(self, state, params):
    return (params[0],) + tuple(state[1:])


def analytic_bandit_gradient(helper, z):
  """d(−E_π*[r_p])/dz = −Cov_π*(r_p, r_h) / τ."""
  pi = np.exp((BANDIT_R_P + z * np.asarray(helper)) / TAU)
  pi /= pi.sum()
  covariance = np.sum(pi * BANDIT_R_P * helper) - np.sum(pi * BANDIT_R_P) * np.sum(pi * helper)
  return -covariance / TAU


def implicit_bandit_gradient(problem, z, solver=None):
  eta = [tf.constant([z], tf.float64)[0]]
  state = problem.init(eta, tf.constant([0, 0]))
  step = tf.function(lambda state: problem.unroll(eta, state, None)[0])
  for _ in range(2000):
    state = step(state)
  estimator = ImplicitEstimator(solver=solver or ExactSolver(), unroll_steps=0)
  grads, _, metrics = estimator.estimate(problem, eta, state, tf.constant([3, 4]))
  return float(grads[0]), state, metrics


HARMFUL = [-1.0, 0.5, 0.0]   # anti-correlated with r_p
HELPFUL = [1.0, -0.5, 0.2]


@pytest.mark.slow
@pytest.mark.parametrize("helper,sign", [(HARMFUL, 1.0), (HELPFUL, -1.0)])
def test_bandit_meta_gradient_on_the_helper_weight_matches_the_analytic_one(helper, sign):
  want = analytic_bandit_gradient(helper, 1.0)
  assert np.sign(want) == sign  # a harmful helper's weight should go down, a helpful one's up
  exact, _, _ = implicit_bandit_gradient(HelperBandit(helper), 1.0)
  np.testing.assert_allclose(exact, want, rtol=1e-3)
  # The RL estimator: score-function surrogates on sampled actions (CG solve, as in training).
  sampled, _, metrics = implicit_bandit_gradient(HelperBandit(helper, samples=200_000), 1.0,
                                                 ConjugateGradientSolver(steps=10))
  assert np.sign(sampled) == sign
  np.testing.assert_allclose(sampled, want, rtol=0.1)
  assert float(metrics["solver_residual"]) < 1e-3


def test_implicit_gradient_does_not_depend_on_how_the_inner_problem_was_optimised():
  by_sgd, state_sgd, _ = implicit_bandit_gradient(HelperBandit(HARMFUL, optimizer="sgd"), 0.3)
  by_adam, state_adam, _ = implicit_bandit_gradient(HelperBandit(HARMFUL, optimizer="adam"), 0.3)
  # Different paths (start, optimizer) to the same θ*.
  np.testing.assert_allclose(state_sgd[0].numpy(), state_adam[0].numpy(), atol=1e-6)
  np.testing.assert_allclose(by_sgd, by_adam, rtol=1e-5)
  np.testing.assert_allclose(by_sgd, analytic_bandit_gradient(HARMFUL, 0.3), rtol=1e-5)


# --- helper rewards -------------------------------------------------------------------------------
def cartpole_batch(seed=0, batch=3, time=4):
  rng = np.random.default_rng(seed)
  obs = tf.constant(rng.normal(0, [0.5, 0.5, 0.08, 0.5], size=(batch, time, 4)), tf.float32)
  actions = tf.constant(rng.integers(0, 2, size=(batch, time)), tf.int32)
  return obs, actions, obs * 0.9


def test_cartpole_helpers_follow_their_definitions():
  obs, actions, next_obs = cartpole_batch()
  theta, next_theta = obs[..., 2].numpy(), next_obs[..., 2].numpy()
  harmful = helper_rewards.helper_rewards(helper_rewards.make_helper("harmful", "CartPole-v1"), obs, actions, next_obs)
  np.testing.assert_allclose(harmful.numpy(), np.where(np.abs(theta) < 0.1, -0.1, 0.0))
  tenfold = helper_rewards.make_helper("harmful", "CartPole-v1", scale=10.0)
  np.testing.assert_allclose(helper_rewards.helper_rewards(tenfold, obs, actions, next_obs).numpy(), 10 * harmful.numpy())
  with pytest.raises(errors.ConfigError, match="scale"):
    helper_rewards.make_helper("harmful", "CartPole-v1", scale=float("nan"))
  helpful = helper_rewards.helper_rewards(helper_rewards.make_helper("helpful", "tf_metarl/CartPole-v1"), obs, actions,
                                          next_obs)
  failure = 12 * 2 * np.pi / 360
  np.testing.assert_allclose(helpful.numpy(), -0.99 * np.abs(next_theta) / failure + np.abs(theta) / failure, rtol=1e-5)
  random_a = helper_rewards.make_helper("random", "CartPole-v1", seed=1)
  values = helper_rewards.helper_rewards(random_a, obs, actions, next_obs).numpy()
  assert np.all(np.abs(values) <= 1.0) and values.std() > 0.3
  again = helper_rewards.helper_rewards(helper_rewards.make_helper("random", "CartPole-v1", seed=1), obs, actions,
                                        next_obs).numpy()
  other = helper_rewards.helper_rewards(helper_rewards.make_helper("random", "CartPole-v1", seed=2), obs, actions,
                                        next_obs).numpy()
  np.testing.assert_array_equal(values, again)
  assert np.abs(values - other).max() > 0.5
  assert helper_rewards.make_helper("none", "CartPole-v1") is None


def test_saved_model_and_numpy_helpers_answer_like_the_function(tmp_path):
  obs, actions, next_obs = cartpole_batch()
  helper = helper_rewards.make_helper("random", "CartPole-v1", seed=3)
  want = helper_rewards.helper_rewards(helper, obs, actions, next_obs).numpy()
  path = helper_rewards.export_helper(helper, str(tmp_path / "random3"), observation_dim=4, num_actions=2)
  loaded = helper_rewards.make_helper(path, "CartPole-v1")
  assert isinstance(loaded, helper_rewards.SavedModelHelper)
  np.testing.assert_allclose(helper_rewards.helper_rewards(loaded, obs, actions, next_obs).numpy(), want, rtol=1e-6)
  continuous = helper_rewards.make_helper("random", "tf_metarl/ContinuousCartPole-v1", seed=3)
  forces = tf.random.stateless_normal([3, 4, 1], [5, 6])
  want_continuous = helper_rewards.helper_rewards(continuous, obs, forces, next_obs).numpy()
  path = helper_rewards.export_helper(continuous, str(tmp_path / "random3c"), observation_dim=4, action_dim=1)
  np.testing.assert_allclose(helper_rewards.helper_rewards(helper_rewards.make_helper(path, "CartPole-v1"), obs, forces,
                                                           next_obs).numpy(), want_continuous, rtol=1e-6)
  in_numpy = helper_rewards.CallableHelper(lambda o, a, n: helper(o, a, n).numpy(), numpy=True)
  compiled = tf.function(lambda o, a, n: helper_rewards.helper_rewards(in_numpy, o, a, n))
  np.testing.assert_allclose(compiled(obs, actions, next_obs).numpy(), want, rtol=1e-6)


def test_helpers_that_do_not_answer_one_reward_per_transition_are_one_line_errors():
  two_columns = helper_rewards.CallableHelper(lambda o, a, n: tf.zeros([tf.shape(o)[0], 2]), "two_columns")
  with pytest.raises(errors.HelperRewardError, match="two_columns.*one reward per transition"):
    helper_rewards.check_helper(two_columns, 4, 2)
  too_few = helper_rewards.CallableHelper(lambda o, a, n: tf.zeros([1]), "too_few")
  with pytest.raises(errors.HelperRewardError, match="too_few"):
    helper_rewards.check_helper(too_few, 4, 2)
  with pytest.raises(errors.ConfigError, match="unknown helper reward 'nonsense'"):
    helper_rewards.make_helper("nonsense", "CartPole-v1")
  with pytest.raises(errors.ConfigError, match="defined for"):
    helper_rewards.make_helper("harmful", "tf_metarl/Pendulum-v1")


# --- the method on CartPole ------------------------------------------------------------------------
def small_config(**overrides):
  values = dict(inner_iterations=1, reward_hidden_sizes=(8,), neumann_steps=3,
                on_policy=OnPolicyConfig(num_envs=2, rollout_length=16, epochs=1, minibatches=2, learning_rate=1e-3,
                                         anneal_learning_rate=False, hidden_sizes=(8,), minibatch_unit="auto",
                                         jit_compile=False))
  values.update(overrides)
  return ImplicitRewardConfig(**values)


def eta_values(trainer):
  return [v.numpy().copy() for v in trainer.eta.leaves]


@pytest.mark.slow
@pytest.mark.parametrize("env, held_out", [("tf_metarl/CartPole-v1", 1), ("tf_metarl/ContinuousCartPole-v1", 1),
                                           ("tf_metarl/CartPole-v1", 3)])
def test_meta_iterations_move_eta_count_steps_and_log_the_helper_weight(env, held_out):
  trainer = ImplicitRewardTrainer(small_config(helper="random", env=env, held_out_batches=held_out), seed=0)
  before = eta_values(trainer)
  for _ in range(2):
    metrics, _ = trainer.iteration()
  # (K + fresh) batches of 2 × 16 per iteration
  assert int(trainer.env_steps.numpy()) == 2 * (1 + held_out) * 32 == 2 * trainer.steps_per_iteration
  assert any(np.abs(a - b).max() > 0 for a, b in zip(before, eta_values(trainer)))
  for key in ("meta/helper_weight", "meta/gamma", "solver_residual", "meta/rejected_estimates"):
    assert np.isfinite(metrics[key]), key
  assert metrics["meta/rejected_estimates"] == 0.0 and int(trainer.guard.skipped.numpy()) == 0


@pytest.mark.slow
def test_a_diverged_solve_is_skipped_with_eta_unchanged_and_the_inner_progress_kept():
  trainer = ImplicitRewardTrainer(small_config(helper="harmful", max_residual=1e-12), seed=0)
  before, policy_before = eta_values(trainer), [p.numpy() for p in trainer.state.read().agent.policy]
  for _ in range(2):
    metrics, _ = trainer.iteration()
  assert metrics["meta/rejected_estimates"] == 1.0 and int(trainer.guard.skipped.numpy()) == 2
  for a, b in zip(before, eta_values(trainer)):
    np.testing.assert_array_equal(a, b)
  assert any(np.abs(a - b.numpy()).max() > 0 for a, b in zip(policy_before, trainer.state.read().agent.policy))


@pytest.mark.slow
def test_the_inner_phase_runs_until_its_convergence_test_passes_or_its_budget_is_spent():
  trainer = ImplicitRewardTrainer(small_config(helper="harmful", inner_phase_max_iterations=3), seed=0)
  eta_before = eta_values(trainer)
  policy_before = [p.numpy() for p in trainer.state.read().agent.policy]
  phase = trainer.run_inner_phase()  # tolerance 0: never converged, the whole budget
  assert float(phase["inner/phase_iterations"]) == 3 and int(phase["env_steps"]) == 3 * 32
  assert float(phase["inner/grad_norm"]) > 0
  assert any(np.abs(a - b.numpy()).max() > 0 for a, b in zip(policy_before, trainer.state.read().agent.policy))
  for a, b in zip(eta_before, eta_values(trainer)):  # inner steps alone never touch η
    np.testing.assert_array_equal(a, b)
  steps = int(trainer.env_steps.numpy())
  metrics, stats = trainer.iteration()  # the phase, then K = 1 inner iteration, the fresh batch, the meta-step
  assert int(trainer.env_steps.numpy()) - steps == (3 + 1 + 1) * 32 and metrics["inner/phase_iterations"] == 3
  trainer.inner_phase = InnerPhase(max_iterations=3, min_iterations=2, tolerance=float("inf"))
  metrics, _ = trainer.iteration()  # passes at once, after the minimum
  assert metrics["inner/phase_iterations"] == 2
  with pytest.raises(errors.ConfigError, match="inner_phase_min_iterations"):
    small_config(inner_phase_min_iterations=2, inner_phase_max_iterations=1).validate()


@pytest.mark.slow
def test_baselines_shape_rewards_as_named_and_learn_nothing():
  for method, helper, scale in (("ppo_helper", "harmful", 1.0), ("ppo", "harmful", 0.0)):
    trainer = ImplicitRewardTrainer(small_config(method=method, helper=helper), seed=0)
    assert trainer.eta.leaves == [] or not trainer.eta.leaves
    state, batch, _ = trainer.problem.collect(trainer.state.read(), tf.constant([1, 2]))
    rewards, gamma, z = trainer.problem.shaped([], batch)
    np.testing.assert_allclose(rewards.numpy(), batch.trajectory.rewards.numpy() + scale * batch.helper_rewards.numpy(),
                               rtol=1e-6)
    assert abs(float(gamma) - 0.99) < 1e-6
    if method == "ppo":
      assert trainer.helper is None and np.all(batch.helper_rewards.numpy() == 0)


@pytest.mark.slow
def test_gradient_difference_hessian_products_match_exact_ones_on_the_policy_inner_loss():
  trainer = ImplicitRewardTrainer(small_config(helper="random"), seed=1)
  problem = trainer.problem
  state, batch, _ = problem.collect(trainer.state.read(), tf.constant([3, 4]))
  theta = problem.params(state)
  eta = trainer.eta.read()
  inner = lambda params: problem.inner_loss(eta, params, batch)
  vector = tf.random.stateless_normal([int(flatten(theta).shape[0])], [5, 6])
  exact = hessian_vector_product(inner, theta, vector, "exact").numpy()
  approx = hessian_vector_product(inner, theta, vector, "finite_difference", 1e-2).numpy()
  assert np.linalg.norm(exact) > 0
  assert np.linalg.norm(approx - exact) / np.linalg.norm(exact) < 0.05


# --- export and training on a learned reward -------------------------------------------------------
@pytest.mark.slow
def test_exported_reward_answers_like_the_model_in_a_tensorflow_only_process(tmp_path):
  from tf_metarl.export.learned_reward import export_reward, load_reward
  from tf_metarl.networks.learned_reward import LearnedReward
  model = LearnedReward(4, 2, hidden_sizes=(8,), initial_helper_weight=-0.5, initial_discount=0.95)
  model.weight_head.hidden[0].kernel.assign(tf.random.stateless_normal([6, 8], [1, 2]))  # z varies with (s, a)
  model.weight_head.out.kernel.assign(tf.random.stateless_normal([8, 1], [3, 4]))
  path = export_reward(model, str(tmp_path / "reward"), "random", "tf_metarl/CartPole-v1", helper_seed=3,
                       helper_scale=2.0)
  obs, actions, _ = cartpole_batch(seed=2)
  rewards, helper = tf.ones([3, 4]), tf.constant(np.linspace(-1, 1, 12).reshape(3, 4), tf.float32)
  want, gamma, z, _ = model.shaped(list(model.trainable_variables), obs, actions, rewards, helper)
  assert np.std(z.numpy()) > 1e-3
  loaded = load_reward(str(tmp_path / "reward"))
  got, discount = loaded.shaped(obs, actions, rewards, helper)
  np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6)
  assert abs(float(discount) - 0.95) < 1e-6 and loaded.helper_name == "random" and loaded.helper_seed == 3
  assert loaded.helper_scale == 2.0
  np.save(tmp_path / "inputs.npy", {"observations": obs.numpy(), "actions": actions.numpy(),
                                    "rewards": rewards.numpy(), "helper_rewards": helper.numpy()})
  script = (
      "import json, sys, numpy as np, tensorflow as tf\n"
      "inputs = np.load(sys.argv[2], allow_pickle=True).item()\n"
      "model = tf.saved_model.load(sys.argv[1])\n"
      "out = model.signatures['serving_default'](**{k: tf.constant(v) for k, v in inputs.items()})\n"
      "meta = json.loads(model.signatures['get_metadata']()['metadata'].numpy())\n"
      "print(json.dumps({'shaped': out['shaped_rewards'].numpy().tolist(), 'discount': float(out['discount']),\n"
      "                  'helper': meta['helper']}))\n")
  answer = run_tensorflow_only(script, path, tmp_path / "inputs.npy")
  np.testing.assert_allclose(answer["shaped"], want.numpy(), rtol=1e-6)
  assert abs(answer["discount"] - 0.95) < 1e-6 and answer["helper"] == {"name": "random", "seed": 3, "scale": 2.0}


@pytest.mark.slow
def test_a_learned_reward_replaces_the_rewards_the_learner_trains_on(tmp_path):
  from tf_metarl.envs.gym_envs import describe_env
  from tf_metarl.export.learned_reward import export_reward, load_reward
  from tf_metarl.learners.in_graph_on_policy import InGraphOnPolicyLearner
  from tf_metarl.networks.learned_reward import LearnedReward
  from tf_metarl.objectives import make_objective
  export_reward(LearnedReward(4, 2, initial_helper_weight=5.0), str(tmp_path / "reward"), "harmful", "CartPole-v1")
  reward = load_reward(str(tmp_path / "reward"))
  obs, actions, next_obs = cartpole_batch(seed=4)
  from tf_metarl.trajectories import Trajectory
  zeros = tf.zeros([3, 4])
  trajectory = Trajectory(obs, actions, tf.ones([3, 4]), next_obs, zeros, zeros, tf.zeros([3, 4, 2]), zeros, zeros)
  helper = helper_rewards.make_helper("harmful", "CartPole-v1")
  shaped = reward.transform(helper)(trajectory).rewards.numpy()
  np.testing.assert_allclose(shaped, 1.0 + 5.0 * np.where(np.abs(obs[..., 2].numpy()) < 0.1, -0.1, 0.0), rtol=1e-6)
  # The learner trains on what the transform returns: the identity changes nothing, zeroed rewards do.
  config = OnPolicyConfig(num_envs=2, rollout_length=8, epochs=1, minibatches=1, hidden_sizes=(8,), jit_compile=False)
  info = describe_env("tf_metarl/CartPole-v1")
  params = {}
  for name, transform in (("none", None), ("identity", lambda t: t),
                          ("zero", lambda t: t._replace(rewards=tf.zeros_like(t.rewards)))):
    learner = InGraphOnPolicyLearner(info, make_objective("a2c"), config, 0, 1000, reward_transform=transform)
    learner.iteration()
    params[name] = [v.numpy() for v in learner.policy.trainable_variables]
  for a, b in zip(params["none"], params["identity"]):
    np.testing.assert_array_equal(a, b)
  assert any(np.abs(a - b).max() > 1e-6 for a, b in zip(params["none"], params["zero"]))


@pytest.mark.slow
def test_dpba_shapes_with_the_potential_difference_and_learns_its_potential_by_td():
  trainer = ImplicitRewardTrainer(small_config(method="dpba", helper="harmful"), seed=0)
  problem = trainer.problem
  initial = [p.numpy() for p in trainer.state.read().potential]
  losses_seen = []
  for _ in range(3):
    metrics, _ = trainer.iteration()
    losses_seen.append(metrics["potential_loss"])
  state = trainer.state.read()
  assert any(np.abs(a - b.numpy()).max() > 0 for a, b in zip(initial, state.potential))
  _, batch, _ = problem.collect(state, tf.constant([7, 8]))
  shaped, targets = problem._dpba_rewards(state, batch)
  t = batch.trajectory
  phi = problem._potential(state.potential, t.observations, t.actions).numpy()
  probs = tf.nn.softmax(problem.agent.policy_outputs(state.agent.policy, t.next_observations), -1).numpy()
  phi_next = sum(probs[..., a] * problem._potential(state.potential, t.next_observations,
                                                    tf.fill(tf.shape(t.actions), a)).numpy() for a in range(2))
  following = 0.99 * t.discounts.numpy() * phi_next
  np.testing.assert_allclose(shaped.numpy(), t.rewards.numpy() + following - phi, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(targets.numpy(), -batch.helper_rewards.numpy() + following, rtol=1e-5, atol=1e-6)
  assert trainer.eta.leaves == [] and all(np.isfinite(losses_seen))


@pytest.mark.slow
def test_bipars_explicit_mapping_feeds_z_to_the_policy_and_its_meta_gradient_runs_through_that_input():
  from tf_metarl.meta.problem import unroll_and_hold_out
  trainer = ImplicitRewardTrainer(small_config(method="bipars_em", helper="random"), seed=0)
  problem, eta = trainer.problem, trainer.eta.read()
  state = trainer.state.read()
  # The agent's inputs: the observation and z_η(s, a) of both actions, from the η of the last unroll.
  _, batch, _ = problem.collect(state, tf.constant([1, 2]))
  obs = batch.trajectory.observations.numpy()
  assert obs.shape[-1] == 4 + 2
  z = trainer.reward_model.helper_weights(state.policy_eta, obs[..., :4]).numpy()
  np.testing.assert_allclose(obs[..., 4:], z, rtol=1e-6)
  taken = problem.shaped(eta, batch)[2].numpy()  # z_η(s, a_t) of the taken action, from the raw observation
  np.testing.assert_allclose(taken, np.take_along_axis(z, batch.trajectory.actions.numpy()[..., None], -1)[..., 0],
                             rtol=1e-5)

  # The estimate is exactly ∂_η L_out on the fresh batch: the K inner iterations carry no η-dependence.
  seed = tf.constant([5, 6])
  grads, _, _ = trainer.estimator.estimate(problem, eta, state, seed)
  after, _, held_out, _ = unroll_and_hold_out(problem, eta, state, seed, 1)
  with tf.GradientTape() as tape:
    tape.watch(eta)
    loss, _ = problem.meta_loss(eta, after, held_out)
  direct = tape.gradient(loss, eta, unconnected_gradients=tf.UnconnectedGradients.ZERO)
  for a, b in zip(grads, direct):
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-7)
  flat = flatten(direct).numpy()
  z_params = [i for i, v in enumerate(trainer.reward_model.trainable_variables) if "discount" not in v.name]
  assert max(np.abs(direct[i].numpy()).max() for i in z_params) > 0  # it reaches z_η's parameters

  # ... and it is L_out's derivative: central differences along a random direction of η.
  direction = [tf.random.stateless_normal(tf.shape(e), [7, i]) for i, e in enumerate(eta)]
  step = 1e-2
  moved = lambda s: float(problem.meta_loss([e + s * d for e, d in zip(eta, direction)], after, held_out)[0])
  numeric = (moved(step) - moved(-step)) / (2 * step)
  analytic = float(np.dot(flat, flatten(direction).numpy()))
  assert abs(analytic) > 1e-4
  assert abs(numeric - analytic) <= 0.05 * abs(analytic)

  # A meta-iteration moves η; its unroll's policy read the η before the step.
  before = eta_values(trainer)
  trainer.iteration()
  assert any(np.abs(a - b).max() > 0 for a, b in zip(before, eta_values(trainer)))
  for a, b in zip(before, trainer.state.read().policy_eta):
    np.testing.assert_array_equal(a, b.numpy())
  with pytest.raises(errors.ConfigError, match="needs discrete actions"):
    ImplicitRewardTrainer(small_config(method="bipars_em", helper="random", env="tf_metarl/ContinuousCartPole-v1"), 0)


@pytest.mark.slow
def test_a_resumed_meta_training_equals_an_uninterrupted_one(tmp_path):
  """The inner state (agent, both critics, environment, the η the policy reads), η, the
  meta-optimizer and the seed counter are checkpointed: stopping half-way and resuming writes
  the same learning curve and ends at the same η as one uninterrupted run."""
  from tf_metarl.learners.loop import RunSettings, read_learning_curve, run_training

  def train(logdir, steps):
    trainer = ImplicitRewardTrainer(small_config(method="bipars_em", helper="random"), seed=3)
    summary = run_training(trainer, steps, str(logdir), {"m": "resume"},
                           RunSettings(eval_every=64, eval_episodes=2, checkpoint_every=64, log_every_seconds=60))
    return summary, eta_values(trainer)

  _, whole_eta = train(tmp_path / "whole", 320)
  train(tmp_path / "split", 128)
  resumed, split_eta = train(tmp_path / "split", 320)
  assert resumed["resumed_from"] >= 128
  columns = ("env_steps", "train_return", "train_episodes", "eval_return")
  whole, split = (read_learning_curve(str(tmp_path / d / "learning_curve.csv")) for d in ("whole", "split"))
  assert len(whole) == len(split) >= 4
  np.testing.assert_array_equal([[r[c] for c in columns] for r in whole], [[r[c] for c in columns] for r in split])
  for a, b in zip(whole_eta, split_eta):
    np.testing.assert_array_equal(a, b)
