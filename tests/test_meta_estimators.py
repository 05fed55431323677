"""Conformance of the outer-gradient estimators on a bilevel problem with a closed-form hypergradient.

Inner: L_in(θ, η) = ½ θᵀAθ − θᵀ(Bη + c), so θ*(η) = A⁻¹(Bη + c); inner steps are gradient descent.
Outer: L_out(θ, η) = ½‖θ − t‖² + ½ρ‖η‖², so dL_out(θ*(η), η)/dη = Bᵀ A⁻¹ (θ* − t) + ρ η.
"""
import numpy as np
import pytest
import tensorflow as tf

from tf_metarl.meta.evolution import EvolutionStrategiesEstimator, shape_losses
from tf_metarl.meta.implicit import ImplicitEstimator, hessian_vector_product
from tf_metarl.meta.linear_solvers import ConjugateGradientSolver, DiagonalSolver, ExactSolver, NeumannSolver
from tf_metarl.meta.problem import InnerProblem
from tf_metarl.meta.unrolled import UnrolledEstimator

N_THETA, N_ETA = 4, 3
ALPHA = 0.2  # inner step; A's eigenvalues lie in [1, 3], so GD contracts by ≤ 0.8 per step


class QuadraticProblem(InnerProblem):
  def __init__(self, seed=0, diagonal=False):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(N_THETA, N_THETA)))
    self.eigenvalues = np.linspace(1.0, 3.0, N_THETA)
    a = np.diag(self.eigenvalues) if diagonal else q @ np.diag(self.eigenvalues) @ q.T
    self.A, self.B = tf.constant(a), tf.constant(rng.normal(size=(N_THETA, N_ETA)))
    self.c, self.t = tf.constant(rng.normal(size=N_THETA)), tf.constant(rng.normal(size=N_THETA))
    self.rho = 0.3

  def init(self, eta, seed):
    return (tf.zeros([N_THETA], tf.float64),)

  def inner_loss(self, eta, params, batch):
    theta = params[0]
    return 0.5 * tf.tensordot(theta, tf.linalg.matvec(self.A, theta), 1) - tf.tensordot(
        theta, tf.linalg.matvec(self.B, eta[0]) + self.c, 1)

  def unroll(self, eta, state, seed):
    theta = state[0]
    grad = tf.linalg.matvec(self.A, theta) - tf.linalg.matvec(self.B, eta[0]) - self.c
    return (theta - ALPHA * grad,), (), {"env_steps": tf.constant(1, tf.int64)}

  def meta_batch(self, state, seed):
    return state, (), {}

  def meta_loss(self, eta, state, batch, inner_batches=()):
    return 0.5 * tf.reduce_sum(tf.square(state[0] - self.t)) + 0.5 * self.rho * tf.reduce_sum(tf.square(eta[0])), {}

  def params(self, state):
    return [state[0]]

  def with_params(self, state, params):
    return (params[0],)

  def analytic(self, eta):
    a, b = self.A.numpy(), self.B.numpy()
    theta_star = np.linalg.solve(a, b @ eta + self.c.numpy())
    return b.T @ np.linalg.solve(a, theta_star - self.t.numpy()) + self.rho * eta


ETA = np.array([0.5, -1.0, 0.25])
SEED = tf.constant([1, 2])


def estimate(estimator, problem, state=None):
  eta = [tf.constant(ETA)]
  state = problem.init(eta, SEED) if state is None else state
  grads, new_state, metrics = estimator.estimate(problem, eta, state, SEED)
  return grads[0].numpy(), new_state, metrics


def converged_state(problem, steps=300):
  state = problem.init([tf.constant(ETA)], SEED)
  for _ in range(steps):
    state, _, _ = problem.unroll([tf.constant(ETA)], state, SEED)
  return state


def relative_error(got, want):
  return np.linalg.norm(got - want) / np.linalg.norm(want)


def test_unrolled_backprop_through_many_steps_matches_the_hypergradient():
  problem = QuadraticProblem()
  grads, state, metrics = estimate(UnrolledEstimator(unroll_steps=300), problem)
  assert relative_error(grads, problem.analytic(ETA)) < 1e-8
  assert int(metrics["env_steps"]) == 300
  # Few steps: the exact derivative of a truncated unroll, which is not yet the hypergradient.
  short, _, _ = estimate(UnrolledEstimator(unroll_steps=3), problem)
  assert relative_error(short, problem.analytic(ETA)) > 0.05


class NoisyTargetProblem(QuadraticProblem):
  """The outer target t + ξ with ξ ~ N(0, I) drawn by each held-out batch (recorded when eager)."""

  def __init__(self):
    super().__init__()
    self.drawn = []

  def meta_batch(self, state, seed):
    noise = tf.random.stateless_normal([N_THETA], seed, dtype=tf.float64)
    self.drawn.append(noise.numpy())
    return state, noise, {"env_steps": tf.constant(1, tf.int64)}

  def meta_loss(self, eta, state, batch, inner_batches=()):
    target = self.t + batch
    return 0.5 * tf.reduce_sum(tf.square(state[0] - target)) + 0.5 * self.rho * tf.reduce_sum(tf.square(eta[0])), {}

  def analytic_for(self, noise):
    """The hypergradient with the outer target t + noise."""
    t = self.t
    self.t = t + noise
    try:
      return self.analytic(ETA)
    finally:
      self.t = t


@pytest.mark.parametrize("batches", [1, 4])
def test_implicit_estimate_averages_the_outer_loss_over_its_held_out_batches(batches):
  problem = NoisyTargetProblem()
  state = converged_state(problem)
  grads, _, metrics = estimate(ImplicitEstimator(solver=ExactSolver(), unroll_steps=1, held_out_batches=batches),
                               problem, state)
  assert len(problem.drawn) == batches and int(metrics["env_steps"]) == 1 + batches  # one inner step
  assert len({tuple(d) for d in problem.drawn}) == batches  # independent batches
  np.testing.assert_allclose(grads, problem.analytic_for(np.mean(problem.drawn, 0)), rtol=1e-8)


@pytest.mark.parametrize("solver, tolerance", [(ExactSolver(), 1e-9), (ConjugateGradientSolver(steps=N_THETA), 1e-7)])
def test_implicit_with_exact_and_cg_solves_matches_the_hypergradient(solver, tolerance):
  problem = QuadraticProblem()
  grads, _, metrics = estimate(ImplicitEstimator(solver=solver, unroll_steps=1), problem, converged_state(problem))
  assert relative_error(grads, problem.analytic(ETA)) < tolerance
  assert float(metrics["solver_residual"]) < 1e-6


@pytest.mark.parametrize("steps", [5, 20, 60])
def test_implicit_with_neumann_is_within_its_truncation_bound(steps):
  problem = QuadraticProblem()
  alpha = 1.0 / problem.eigenvalues.max()
  grads, _, metrics = estimate(ImplicitEstimator(solver=NeumannSolver(steps=steps, alpha=alpha), unroll_steps=1),
                               problem, converged_state(problem))
  want = problem.analytic(ETA)
  # ‖v_J − v*‖ ≤ (1 − αμ)^J ‖v*‖ and the error reaches η through Bᵀ.
  theta_star = converged_state(problem)[0].numpy()
  v_star = np.linalg.solve(problem.A.numpy(), theta_star - problem.t.numpy())
  bound = np.linalg.norm(problem.B.numpy(), 2) * (1 - alpha * problem.eigenvalues.min()) ** steps * np.linalg.norm(v_star)
  error = np.linalg.norm(grads - want)
  assert error <= bound * (1 + 1e-6) + 1e-12
  if steps == 5:
    assert error > 1e-3 and float(metrics["solver_residual"]) > 1e-2  # truncation is visible, and reported


def test_implicit_with_finite_difference_hessian_products():
  problem = QuadraticProblem()
  estimator = ImplicitEstimator(solver=ConjugateGradientSolver(steps=N_THETA), unroll_steps=1, hvp="finite_difference")
  grads, _, _ = estimate(estimator, problem, converged_state(problem))
  assert relative_error(grads, problem.analytic(ETA)) < 1e-6


def test_diagonal_solver_is_exact_for_a_diagonal_hessian():
  problem = QuadraticProblem(diagonal=True)
  estimator = ImplicitEstimator(solver=DiagonalSolver(probes=2, damping=0.0), unroll_steps=1)
  grads, _, _ = estimate(estimator, problem, converged_state(problem))
  assert relative_error(grads, problem.analytic(ETA)) < 1e-9
  non_diagonal = QuadraticProblem()
  approx, _, _ = estimate(estimator, non_diagonal, converged_state(non_diagonal))
  assert relative_error(approx, non_diagonal.analytic(ETA)) > 1e-3


def test_neumann_step_relative_to_the_hessians_scale_converges_where_a_fixed_step_diverges():
  rng = np.random.default_rng(5)
  q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
  a = q @ np.diag(np.linspace(5.0, 40.0, 6)) @ q.T  # λ_max = 40: a fixed α = 1 diverges
  b = tf.constant(rng.normal(size=6))
  matvec = lambda v: tf.linalg.matvec(tf.constant(a), v)
  want = np.linalg.solve(a, b.numpy())
  fixed, _ = NeumannSolver(steps=30, alpha=1.0).solve(matvec, b)
  assert not np.all(np.isfinite(fixed.numpy())) or relative_error(fixed.numpy(), want) > 1e3
  scaled, metrics = NeumannSolver(steps=30, alpha=1.0, power_iterations=20).solve(matvec, b, tf.constant([1, 2]))
  assert abs(float(metrics["neumann_step"]) * 40.0 - 1.0) < 0.05  # α / λ̂ with λ̂ ≈ λ_max
  assert relative_error(scaled.numpy(), want) < 0.02  # (1 − 5/40)^30 ≈ 0.018


def test_hessian_vector_products_against_the_matrix():
  problem = QuadraticProblem()
  v = tf.constant(np.random.default_rng(3).normal(size=N_THETA))
  loss = lambda params: problem.inner_loss([tf.constant(ETA)], params, ())
  theta = [tf.constant(np.ones(N_THETA))]
  want = problem.A.numpy() @ v.numpy()
  np.testing.assert_allclose(hessian_vector_product(loss, theta, v).numpy(), want, rtol=1e-12)
  np.testing.assert_allclose(hessian_vector_product(loss, theta, v, "finite_difference").numpy(), want, rtol=1e-7)


@pytest.mark.parametrize("vectorize", [True, pytest.param(False, marks=pytest.mark.slow)])  # the loop: 8 s
def test_evolution_strategies_with_many_samples_matches_the_hypergradient(vectorize):
  problem = QuadraticProblem()
  population = 20_000 if vectorize else 400
  es = EvolutionStrategiesEstimator(population=population, sigma=0.1, shaping="none", unroll_steps=60,
                                    vectorize=vectorize)
  # Compiled where vectorised; the loop runs eagerly here (compiled, it traces one member program
  # per member: 400 × 60 unrolls take minutes to trace).
  estimate_fn = lambda eta, state, seed: es.estimate(problem, eta, state, seed)
  if vectorize:
    estimate_fn = tf.function(estimate_fn)
  grads, state, metrics = estimate_fn([tf.constant(ETA)], problem.init(None, SEED), SEED)
  want = problem.analytic(ETA)
  # A quadratic's Gaussian smoothing has the same gradient; antithetic pairs leave only the
  # sampling error of (1/P) Σ ε εᵀ g, about ‖g‖·√(d/P).
  tolerance = 0.05 if vectorize else 0.35
  assert relative_error(grads[0].numpy(), want) < tolerance
  assert int(metrics["env_steps"]) == population * 60
  np.testing.assert_array_equal(state[0].numpy(), np.zeros(N_THETA))  # members do not move the state


def test_evolution_strategies_fitness_from_seeds_equals_the_in_graph_estimate():
  """Members evaluated one by one from (η, seeds, index), as remote workers would, give the same estimate."""
  problem = QuadraticProblem()
  es = EvolutionStrategiesEstimator(population=8, sigma=0.05, shaping="centered_rank", unroll_steps=5)
  eta = [tf.constant(ETA)]
  state = problem.init(eta, SEED)
  in_graph, _, _ = es.estimate(problem, eta, state, SEED)
  noise_seed, inner_seed = es.split_seed(SEED)
  losses = [es.member_loss(problem, es.member_eta(eta, noise_seed, i), state, inner_seed)[0] for i in range(8)]
  remote = es.gradient(eta, noise_seed, tf.stack(losses))
  np.testing.assert_allclose(remote[0].numpy(), in_graph[0].numpy(), rtol=1e-12)
  # Antithetic: member 2j+1 is the mirror of member 2j.
  np.testing.assert_allclose(es.member_eta(eta, noise_seed, 1)[0].numpy() - ETA,
                             -(es.member_eta(eta, noise_seed, 0)[0].numpy() - ETA), rtol=1e-12)


class BatchedQuadraticProblem(QuadraticProblem):
  """The quadratic problem, evaluating all members in one call (as EPG's population does)."""

  def population_losses(self, stacked_eta, state, seed):
    es = self.es
    losses = tf.map_fn(lambda eta: es.member_loss(self, [eta], state, seed)[0], stacked_eta[0])
    return losses, (state[0] + 1.0,), {"env_steps": tf.constant(0, tf.int64)}


def test_a_problem_that_evaluates_its_population_gives_the_member_by_member_estimate_and_its_state():
  es = EvolutionStrategiesEstimator(population=8, sigma=0.05, shaping="centered_rank", unroll_steps=5)
  problem, batched = QuadraticProblem(), BatchedQuadraticProblem()
  batched.es = es
  assert batched.evaluates_populations() and not problem.evaluates_populations()
  want, state, _ = estimate(es, problem)
  got, new_state, metrics = estimate(es, batched)
  np.testing.assert_allclose(got, want, rtol=1e-12)
  np.testing.assert_array_equal(new_state[0].numpy(), state[0].numpy() + 1.0)  # the problem's own next state
  assert "member_loss_std" in metrics


def test_fitness_shaping():
  losses = tf.constant([3.0, -1.0, 10.0, 0.0])
  np.testing.assert_allclose(shape_losses(losses, "centered_rank").numpy(), [1 / 6, -0.5, 0.5, -1 / 6], rtol=1e-6)
  z = shape_losses(losses, "z_score").numpy()
  assert abs(z.mean()) < 1e-6 and abs(z.std() - 1) < 1e-4
  np.testing.assert_array_equal(shape_losses(losses, "none").numpy(), losses.numpy())


def test_fitness_shaping_gives_ties_one_rank_and_leaves_lost_members_out():
  tied = shape_losses(tf.constant([2.0, 2.0, 2.0, 2.0]), "centered_rank").numpy()
  np.testing.assert_array_equal(tied, np.zeros(4))  # no differences, no step
  np.testing.assert_allclose(shape_losses(tf.constant([1.0, 5.0, 1.0]), "centered_rank").numpy(),
                             [-0.25, 0.5, -0.25])
  nan = float("nan")
  lost = tf.constant([3.0, nan, -1.0, 10.0, 0.0])
  np.testing.assert_allclose(shape_losses(lost, "centered_rank").numpy(), [1 / 6, 0, -0.5, 0.5, -1 / 6], rtol=1e-6)
  z = shape_losses(lost, "z_score").numpy()
  assert z[1] == 0 and abs(np.delete(z, 1).mean()) < 1e-6 and abs(np.delete(z, 1).std() - 1) < 1e-4
  np.testing.assert_array_equal(shape_losses(lost, "none").numpy(), [3, 0, -1, 10, 0])


def test_the_estimate_from_the_members_that_came_back():
  """A lost member (NaN loss) is left out: the estimate equals the one of a population without
  it, its ε weighted 0, the average over the members that remain."""
  es = EvolutionStrategiesEstimator(population=4, sigma=0.5, antithetic=False, shaping="none")
  eta, seed = [tf.constant([1.0, -2.0, 0.5])], tf.constant([3, 4])
  noise = es.noise(eta, seed)[0].numpy()
  losses = np.array([1.0, float("nan"), -2.0, 4.0], np.float32)
  got = es.gradient(eta, seed, tf.constant(losses))[0].numpy()
  keep = [0, 2, 3]
  np.testing.assert_allclose(got, losses[keep] @ noise[keep] / (3 * 0.5), rtol=1e-5)


class ShrinkingQuadraticProblem(QuadraticProblem):
  """The quadratic problem with a σ schedule: this state's perturbations are a quarter of σ."""

  def perturbation_scale(self, state):
    return tf.constant(0.25, tf.float64)


def test_a_problems_sigma_schedule_is_the_estimate_with_that_sigma():
  es = EvolutionStrategiesEstimator(population=8, sigma=0.2, shaping="none", unroll_steps=5)
  quarter = EvolutionStrategiesEstimator(population=8, sigma=0.05, shaping="none", unroll_steps=5)
  want, _, _ = estimate(quarter, QuadraticProblem())
  got, _, metrics = estimate(es, ShrinkingQuadraticProblem())
  np.testing.assert_allclose(got, want, rtol=1e-12)
  assert float(metrics["meta/es_sigma"]) == pytest.approx(0.05)


def test_relative_damping_follows_the_hessians_largest_eigenvalue():
  """With ρ = 0.5 the solve uses H + ρ·λ_max(H)·I = A + 1.5 I (λ_max(A) = 3): the estimate is the
  closed form with that damping, and the metrics report it."""
  problem = QuadraticProblem()
  state = converged_state(problem)
  estimator = ImplicitEstimator(solver=ExactSolver(), unroll_steps=1, relative_damping=0.5, damping_power_iterations=60)
  grads, _, metrics = estimate(estimator, problem, state)
  a, b = problem.A.numpy(), problem.B.numpy()
  theta = np.linalg.solve(a, b @ ETA + problem.c.numpy())
  want = b.T @ np.linalg.solve(a + 1.5 * np.eye(N_THETA), theta - problem.t.numpy()) + problem.rho * ETA
  np.testing.assert_allclose(grads, want, rtol=1e-5)
  assert float(metrics["meta/damping"]) == pytest.approx(1.5, rel=1e-5)
