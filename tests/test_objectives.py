"""Hand-designed objectives against hand-computed values; input validation."""
import numpy as np
import pytest
import tensorflow as tf

from tf_metarl import errors
from tf_metarl.objectives import (A2CObjective, LSTMObjective, PPOObjective, ReinforceObjective, TD3ActorObjective,
                                  make_objective)


def one_step_inputs(**overrides):
  base = dict(rewards=[[1.0]], discounts=[[0.0]], episode_ends=[[1.0]], values=[[0.25]], next_values=[[9.0]],
              log_probs=[[np.log(0.5)]], behaviour_log_probs=[[np.log(0.25)]], entropies=[[0.7]])
  base.update(overrides)
  return {k: tf.constant(v, tf.float32) for k, v in base.items()}


def test_ppo_clips_the_ratio():
  # One terminated step: A = r − V = 0.75 (not normalised), ratio = 0.5/0.25 = 2 > 1 + ε.
  ppo = PPOObjective(gamma=0.9, lam=0.95, clip_epsilon=0.2, value_coef=0.5, entropy_coef=0.1,
                     normalise_advantages=False)
  out = ppo(one_step_inputs())
  policy = -min(2.0 * 0.75, 1.2 * 0.75)
  value = 0.5 * (1.0 - 0.25) ** 2
  np.testing.assert_allclose(out["policy_loss"].numpy(), policy, rtol=1e-6)
  np.testing.assert_allclose(out["loss"].numpy(), policy + 0.5 * value - 0.1 * 0.7, rtol=1e-6)
  assert out["clip_fraction"].numpy() == 1.0


def test_ppo_gradient_vanishes_when_clipped_and_not_otherwise():
  ppo = PPOObjective(normalise_advantages=False)
  for behaviour, expect_zero in ((np.log(0.25), True), (np.log(0.45), False)):
    log_probs = tf.Variable([[np.log(0.5)]], dtype=tf.float32)
    with tf.GradientTape() as tape:
      loss = ppo(dict(one_step_inputs(behaviour_log_probs=[[behaviour]]), log_probs=log_probs))["policy_loss"]
    grad = tape.gradient(loss, log_probs).numpy()
    assert (abs(grad[0, 0]) < 1e-8) == expect_zero, (behaviour, grad)


def test_a2c_uses_bootstrapped_returns_and_entropy():
  a2c = A2CObjective(gamma=0.5, value_coef=1.0, entropy_coef=0.1)
  inputs = one_step_inputs(discounts=[[1.0, 1.0]], episode_ends=[[0.0, 0.0]], rewards=[[1.0, 2.0]],
                           values=[[0.0, 0.0]], next_values=[[0.0, 4.0]], log_probs=[[-1.0, -2.0]],
                           behaviour_log_probs=[[0.0, 0.0]], entropies=[[0.5, 0.5]])
  out = a2c(inputs)
  g1 = 2.0 + 0.5 * 4.0
  g0 = 1.0 + 0.5 * g1
  policy = -(g0 * -1.0 + g1 * -2.0) / 2
  value = 0.5 * (g0 ** 2 + g1 ** 2) / 2
  np.testing.assert_allclose(out["loss"].numpy(), policy + value - 0.1 * 0.5, rtol=1e-6)


def test_reinforce_has_no_entropy_input():
  assert "entropies" not in ReinforceObjective().input_names
  out = ReinforceObjective(normalise_advantages=False, value_coef=0.0)(one_step_inputs())
  np.testing.assert_allclose(out["loss"].numpy(), -0.75 * np.log(0.5), rtol=1e-6)


def test_td3_actor_loss_is_negative_q():
  q = tf.Variable([[1.0, 3.0]])
  with tf.GradientTape() as tape:
    loss = TD3ActorObjective()({"q_values": q})["loss"]
  assert loss.numpy() == -2.0
  np.testing.assert_allclose(tape.gradient(loss, q).numpy(), [[-0.5, -0.5]])


def test_lstm_objective_reads_the_future_and_is_differentiable_in_actions():
  objective = LSTMObjective(action_dim=2, units=8)
  inputs = {n: tf.random.normal([3, 6]) for n in ("rewards", "discounts", "episode_ends", "q_values")}
  actions = tf.Variable(tf.random.normal([3, 6, 2]))
  with tf.GradientTape() as tape:
    out = objective(dict(inputs, actions=actions))
  grad = tape.gradient(out["loss"], actions)
  assert out["per_step"].shape == (3, 6) and np.all(np.isfinite(grad.numpy())) and np.any(grad.numpy() != 0)
  # Run backwards: changing the last reward changes earlier outputs; changing the first does not change later ones.
  later = dict(inputs, actions=actions, rewards=tf.tensor_scatter_nd_add(inputs["rewards"], [[0, 5]], [3.0]))
  earlier = dict(inputs, actions=actions, rewards=tf.tensor_scatter_nd_add(inputs["rewards"], [[0, 0]], [3.0]))
  base = out["per_step"].numpy()
  assert np.abs(objective(later)["per_step"].numpy()[0, 0] - base[0, 0]) > 1e-6
  np.testing.assert_allclose(objective(earlier)["per_step"].numpy()[0, 1:], base[0, 1:], rtol=1e-6)


def test_inputs_are_validated_with_the_expected_spec():
  ppo = PPOObjective()
  with pytest.raises(errors.ObjectiveInputError, match="missing input.*entropies: float32\\[\\?,\\?\\]"):
    ppo({k: v for k, v in one_step_inputs().items() if k != "entropies"})
  with pytest.raises(errors.ObjectiveInputError, match="input rewards has shape \\[1\\], expected rewards"):
    ppo(dict(one_step_inputs(), rewards=tf.constant([1.0])))
  with pytest.raises(errors.ObjectiveInputError, match="rewards has dtype int32"):
    ppo(dict(one_step_inputs(), rewards=tf.constant([[1]])))


def test_registry():
  assert isinstance(make_objective("ppo", {"clip_epsilon": 0.1}), PPOObjective)
  with pytest.raises(errors.ConfigError, match="bad hyperparameters for objective 'td3'"):
    make_objective("td3", {"clip_epsilon": 0.1})
  with pytest.raises(errors.ConfigError, match="unknown objective 'dqn'"):
    make_objective("dqn")


if __name__ == "__main__":
  import sys
  sys.exit(pytest.main([__file__, "-q"]))
