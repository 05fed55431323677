"""Solvers for A x = b with A given only as a matrix-vector product (a Hessian-vector product):
the inverse-Hessian-vector step of implicit differentiation. Vectors are flat tensors [n].

`solve(matvec, b, seed) -> (x, metrics)`. Written here (about 60 lines) rather than taken from a
library: `tf.linalg.experimental.conjugate_gradient` needs a LinearOperator per call and offers
no Neumann series or Hutchinson diagonal, and the JAX solvers (jaxopt) do not run on TF tensors.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import tensorflow as tf

MatVec = Callable[[tf.Tensor], tf.Tensor]


def _dot(a, b):
  return tf.reduce_sum(a * b)


def largest_eigenvalue(matvec: MatVec, like, iterations: int, seed=None):
  """λ̂ ≈ the largest |eigenvalue| of a symmetric A by `iterations` power iterations from a random
  start shaped like `like` (each one product; a Rayleigh estimate never exceeds λ_max)."""
  seed = tf.constant([0, 0]) if seed is None else seed
  v = tf.random.stateless_normal(tf.shape(like), seed, dtype=like.dtype)
  estimate = tf.constant(0.0, like.dtype)
  for _ in range(iterations):
    v = v / (tf.norm(v) + 1e-30)
    av = matvec(v)
    estimate = tf.abs(_dot(v, av))
    v = av
  return estimate


@dataclasses.dataclass(frozen=True)
class NeumannSolver:
  """Truncated Neumann / Richardson series x_J = α Σ_{j<J} (I − αA)^j b.

  Converges for symmetric positive-definite A when 0 < α < 2/λ_max; with eigenvalues in
  [μ, L] and α ≤ 1/L the error is at most (1 − αμ)^J ‖A⁻¹b‖. With `power_iterations` > 0, α is
  relative to A's scale: the step is α / λ̂, λ̂ the largest |eigenvalue| estimated by that many
  power iterations from a random start (each one more product), so α = 1 keeps αA's spectrum in
  (0, 1] whatever the Hessian's scale (a Rayleigh estimate never exceeds λ_max; the series still
  converges while it exceeds λ_max / 2).
  """
  steps: int = 20
  alpha: float = 0.1
  power_iterations: int = 0

  def step_size(self, matvec: MatVec, b, seed=None):
    """α, or α / λ̂ with power iterations."""
    if not self.power_iterations:
      return tf.constant(self.alpha, b.dtype)
    return self.alpha / (largest_eigenvalue(matvec, b, self.power_iterations, seed) + 1e-12)

  def solve(self, matvec: MatVec, b, seed=None):
    alpha = self.step_size(matvec, b, seed)
    term = b
    x = alpha * b
    for _ in range(self.steps - 1):
      term = term - alpha * matvec(term)
      x = x + alpha * term
    return x, ({"neumann_step": alpha} if self.power_iterations else {})


@dataclasses.dataclass(frozen=True)
class ConjugateGradientSolver:
  """Conjugate gradient for symmetric positive-definite A, `steps` iterations at most, stopping
  (by masking further updates) once ‖r‖ ≤ tolerance · ‖b‖."""
  steps: int = 20
  tolerance: float = 1e-6

  def solve(self, matvec: MatVec, b, seed=None):
    del seed
    x = tf.zeros_like(b)
    r = b
    p = r
    rr = _dot(r, r)
    threshold = (self.tolerance ** 2) * _dot(b, b)
    for _ in range(self.steps):
      active = tf.cast(rr > threshold, b.dtype)
      ap = matvec(p)
      alpha = active * rr / (_dot(p, ap) + 1e-30)
      x = x + alpha * p
      r = r - alpha * ap
      new_rr = _dot(r, r)
      p = r + active * (new_rr / (rr + 1e-30)) * p
      rr = new_rr
    return x, {"cg_residual_norm": tf.sqrt(rr)}


@dataclasses.dataclass(frozen=True)
class DiagonalSolver:
  """x = b / (diag(A) + damping), diag(A) estimated with Hutchinson's estimator
  E[z ⊙ A z] over Rademacher probes z (exact when A is diagonal)."""
  probes: int = 10
  damping: float = 1e-3

  def solve(self, matvec: MatVec, b, seed=None):
    seed = tf.constant([0, 0]) if seed is None else seed
    seeds = tf.random.experimental.stateless_split(seed, num=self.probes)
    diagonal = tf.zeros_like(b)
    for k in range(self.probes):
      z = tf.cast(2 * tf.random.stateless_uniform(tf.shape(b), seeds[k], 0, 2, dtype=tf.int32) - 1, b.dtype)
      diagonal += z * matvec(z) / self.probes
    return b / (diagonal + self.damping), {"mean_hessian_diagonal": tf.reduce_mean(diagonal)}


@dataclasses.dataclass(frozen=True)
class ExactSolver:
  """Materialises A with n matrix-vector products and solves densely: for small problems and
  tests only (n = number of inner parameters)."""

  def solve(self, matvec: MatVec, b, seed=None):
    del seed
    n = int(b.shape[0])
    columns = [matvec(tf.one_hot(i, n, dtype=b.dtype)) for i in range(n)]
    matrix = tf.stack(columns, axis=1)
    return tf.linalg.solve(matrix, b[:, None])[:, 0], {}


SOLVERS = {"neumann": NeumannSolver, "cg": ConjugateGradientSolver, "diagonal": DiagonalSolver,
           "exact": ExactSolver}
