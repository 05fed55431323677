"""Returns and advantages against hand-computed values."""
import numpy as np
import pytest
import tensorflow as tf

from tf_metarl import returns


def numpy_gae(r, d, end, v, nv, gamma, lam):
  adv = np.zeros_like(r)
  for b in range(r.shape[0]):
    nxt = 0.0
    for t in reversed(range(r.shape[1])):
      delta = r[b, t] + gamma * d[b, t] * nv[b, t] - v[b, t]
      nxt = delta + gamma * lam * (1 - end[b, t]) * nxt
      adv[b, t] = nxt
  return adv


def test_gae_hand_computed_two_steps():
  # One copy, two steps, no episode end: A_1 = r_1 + γV'_1 − V_1; A_0 = δ_0 + γλ A_1.
  r, v, nv = [[1.0, 2.0]], [[0.5, 0.25]], [[0.25, 4.0]]
  gamma, lam = 0.9, 0.5
  a1 = 2.0 + 0.9 * 4.0 - 0.25
  a0 = (1.0 + 0.9 * 0.25 - 0.5) + 0.9 * 0.5 * a1
  out = returns.generalized_advantage_estimates(tf.constant(r), tf.ones([1, 2]), tf.zeros([1, 2]), tf.constant(v),
                                                tf.constant(nv), gamma, lam)
  np.testing.assert_allclose(out.numpy(), [[a0, a1]], rtol=1e-6)


def test_termination_does_not_bootstrap_and_truncation_does():
  r = tf.constant([[1.0, 1.0]])
  v = tf.zeros([1, 2])
  nv = tf.constant([[5.0, 7.0]])
  terminated = returns.generalized_advantage_estimates(r, tf.constant([[0.0, 1.0]]), tf.constant([[1.0, 0.0]]),
                                                       v, nv, 0.5, 1.0)
  truncated = returns.generalized_advantage_estimates(r, tf.constant([[1.0, 1.0]]), tf.constant([[1.0, 0.0]]),
                                                      v, nv, 0.5, 1.0)
  # Step 0 terminated: A_0 = r_0 = 1, nothing from step 1 (the next episode) leaks in.
  np.testing.assert_allclose(terminated.numpy(), [[1.0, 1.0 + 0.5 * 7.0]], rtol=1e-6)
  # Step 0 truncated: A_0 = r_0 + γ V(final obs) = 1 + 0.5·5, still nothing from step 1.
  np.testing.assert_allclose(truncated.numpy(), [[1.0 + 0.5 * 5.0, 1.0 + 0.5 * 7.0]], rtol=1e-6)


@pytest.mark.parametrize("lam", [0.0, 0.7, 1.0])
def test_gae_matches_reference_loop(lam):
  rng = np.random.default_rng(0)
  shape = (3, 9)
  r, v, nv = (rng.normal(size=shape).astype(np.float32) for _ in range(3))
  end = (rng.random(shape) < 0.25).astype(np.float32)
  d = np.where(end * (rng.random(shape) < 0.5), 0.0, 1.0).astype(np.float32)
  got = returns.generalized_advantage_estimates(r, d, end, v, nv, 0.95, lam).numpy()
  np.testing.assert_allclose(got, numpy_gae(r, d, end, v, nv, 0.95, lam), rtol=1e-5, atol=1e-5)


def test_lambda_one_gae_equals_discounted_returns_minus_values():
  rng = np.random.default_rng(1)
  shape = (2, 7)
  r, v, nv = (rng.normal(size=shape).astype(np.float32) for _ in range(3))
  end = np.zeros(shape, np.float32)
  end[0, 2] = 1.0
  d = np.ones(shape, np.float32)
  d[0, 2] = 0.0  # terminated
  end[1, 4] = 1.0  # truncated
  # Within an episode the next value is the value of the next step (what a critic gives).
  inside = end[:, :-1] == 0
  nv[:, :-1] = np.where(inside, v[:, 1:], nv[:, :-1])
  gae = returns.generalized_advantage_estimates(r, d, end, v, nv, 0.9, 1.0).numpy()
  g = returns.discounted_returns(r, d, end, nv, 0.9).numpy()
  np.testing.assert_allclose(gae, g - v, rtol=1e-5, atol=1e-5)
  # By hand: copy 0, step 2 terminated, so G_2 = r_2 and G_1 = r_1 + 0.9 r_2.
  np.testing.assert_allclose(g[0, 1], r[0, 1] + 0.9 * r[0, 2], rtol=1e-6)


def test_rank_is_checked():
  with pytest.raises(ValueError, match="rank 2"):
    returns.generalized_advantage_estimates(tf.zeros([3]), tf.zeros([3]), tf.zeros([3]), tf.zeros([3]),
                                            tf.zeros([3]), 0.9, 0.9)


if __name__ == "__main__":
  import sys
  sys.exit(pytest.main([__file__, "-q"]))
