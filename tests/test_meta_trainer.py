"""The meta-trainer: it reaches the bilevel optimum, and non-finite gradients never reach η."""
import keras
import numpy as np
import tensorflow as tf

from tests.test_meta_estimators import N_ETA, QuadraticProblem
from tf_metarl.agents import SGD
from tf_metarl.learners.loop import fit
from tf_metarl.meta.implicit import ImplicitEstimator
from tf_metarl.meta.linear_solvers import ExactSolver
from tf_metarl.meta.trainer import MetaTrainer


class Eta(keras.Model):
  """Holds η as one trainable vector (the meta model)."""

  def __init__(self, initial):
    super().__init__()
    self.eta = self.add_weight(shape=(N_ETA,), dtype="float64", initializer=keras.initializers.Constant(initial))

  def call(self, inputs):
    return inputs


class WarmStartedQuadratic(QuadraticProblem):
  """Starts from θ* of η = 0, so each meta-step's implicit gradient is taken near an optimum."""

  def init(self, eta, seed):
    return (tf.linalg.solve(self.A, self.c[:, None])[:, 0],)  # θ*(0) = A⁻¹c


def bilevel_optimum(problem):
  """argmin_η L_out(θ*(η), η): the normal equations of ½‖A⁻¹(Bη + c) − t‖² + ½ρ‖η‖²."""
  a, b = problem.A.numpy(), problem.B.numpy()
  m = np.linalg.solve(a, b)
  r = np.linalg.solve(a, problem.c.numpy()) - problem.t.numpy()
  return np.linalg.solve(m.T @ m + problem.rho * np.eye(N_ETA), -m.T @ r)


def test_meta_trainer_drives_eta_to_the_bilevel_optimum():
  problem = WarmStartedQuadratic()
  model = Eta(0.0)
  trainer = MetaTrainer(problem, ImplicitEstimator(solver=ExactSolver(), unroll_steps=40), model, SGD(0.3), seed=0)
  summary = fit(trainer, total_steps=40 * 150)  # the problem counts one step per inner update
  assert summary["env_steps"] == 40 * 150
  np.testing.assert_allclose(model.eta.numpy(), bilevel_optimum(problem), rtol=1e-4, atol=1e-6)
  assert trainer.guard.skipped.numpy() == 0


class PoisonedQuadratic(WarmStartedQuadratic):
  """Its meta-loss turns NaN when η[0] exceeds a threshold."""

  def meta_loss(self, eta, state, batch, inner_batches=()):
    loss, metrics = super().meta_loss(eta, state, batch, inner_batches)
    return loss * tf.where(eta[0][0] > 0.05, tf.constant(np.nan, tf.float64), 1.0), metrics  # NaN gradients too


def test_non_finite_meta_gradients_are_skipped_and_counted():
  problem = PoisonedQuadratic()
  model = Eta([0.1, 0.0, 0.0])
  trainer = MetaTrainer(problem, ImplicitEstimator(solver=ExactSolver(), unroll_steps=2), model, SGD(0.3), seed=0)
  eta_before = model.eta.numpy().copy()
  state_before = [x.numpy() for x in tf.nest.flatten(trainer.state.read())]
  metrics, _ = trainer.iteration()
  metrics, _ = trainer.iteration()
  assert trainer.guard.skipped.numpy() == 2 and trainer.guard.consecutive.numpy() == 2
  np.testing.assert_array_equal(model.eta.numpy(), eta_before)
  for a, b in zip(state_before, tf.nest.flatten(trainer.state.read())):
    np.testing.assert_array_equal(a, b.numpy())
  assert np.isfinite(model.eta.numpy()).all()
