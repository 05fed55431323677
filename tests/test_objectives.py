"""Hand-designed objectives against hand-computed values; input validation."""
import numpy as np
import pytest
import tensorflow as tf

from tf_metarl import errors
from tf_metarl.objectives import (A2CObjective, MetaGenRLObjective, PPOObjective, ReinforceObjective, TD3ActorObjective,
                                  make_objective)


def one_step_inputs(**overrides):
  base = dict(rewards=[[1.0]], discounts=[[0.0]], episode_ends=[[1.0]], values=[[0.25]], next_values=[[9.0]],
              log_probs=[[np.log(0.5)]], behaviour_log_probs=[[np.log(0.25)]], entropies=[[0.7]])
  base.update(overrides)
  # As the learner does by default: targets from the current critic's values.
  base.setdefault("rollout_values", base["values"])
  base.setdefault("rollout_next_values", base["next_values"])
  return {k: tf.constant(v, tf.float32) for k, v in base.items()}


def test_targets_come_from_the_rollout_values_and_the_critic_regresses_its_current_values():
  # One terminated step, targets from rollout V = 0.5: A = 1 − 0.5 = 0.5, λ-return 1.0; the value
  # loss regresses the current V = 0.25 towards it.
  ppo = PPOObjective(clip_epsilon=0.2, value_coef=0.5, entropy_coef=0.0, normalise_advantages=False)
  out = ppo(one_step_inputs(rollout_values=[[0.5]]))
  np.testing.assert_allclose(out["policy_loss"].numpy(), -min(2.0 * 0.5, 1.2 * 0.5), rtol=1e-6)
  np.testing.assert_allclose(out["value_loss"].numpy(), 0.5 * (1.0 - 0.25) ** 2, rtol=1e-6)
  values = tf.Variable([[0.25]])
  rollout = tf.Variable([[0.5]])
  with tf.GradientTape(persistent=True) as tape:
    loss = ppo(dict(one_step_inputs(), values=values, rollout_values=rollout))["loss"]
  assert tape.gradient(loss, rollout) is None  # constant: only the critic's current values train it
  assert abs(float(tape.gradient(loss, values)[0, 0])) > 0


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


def metagenrl_inputs(rng, b=3, t=8, d=2, dtype=np.float32):
  inputs = {n: tf.constant(rng.normal(size=(b, t)), dtype) for n in ("rewards", "values", "next_values")}
  inputs.update(discounts=tf.ones([b, t], dtype), episode_ends=tf.zeros([b, t], dtype),
                time=tf.constant(np.tile(np.arange(t) / 100.0, (b, 1)), dtype),
                actions=tf.constant(rng.normal(size=(b, t, d)), dtype),
                behaviour_actions=tf.constant(rng.normal(size=(b, t, d)), dtype))
  return inputs


def test_metagenrl_objective_reads_only_the_future_of_its_own_episode():
  rng = np.random.default_rng(0)
  objective = MetaGenRLObjective()
  inputs = metagenrl_inputs(rng)
  inputs["episode_ends"] = tf.constant([[0, 0, 1, 0, 0, 0, 0, 0]] * 3, tf.float32)  # an episode ends at t = 2
  base = objective(inputs)["per_step"].numpy()
  moved = inputs["behaviour_actions"].numpy()
  moved[0, 5] += 1.0  # actions are not normalised over the batch, so only the LSTM carries this change
  changed = objective(dict(inputs, behaviour_actions=tf.constant(moved)))["per_step"].numpy()
  assert np.all(np.abs(changed[0, 3:6] - base[0, 3:6]) > 1e-7)  # t = 3..5 see step 5 (same episode, backwards)
  np.testing.assert_array_equal(changed[0, 6:], base[0, 6:])     # later steps do not
  np.testing.assert_array_equal(changed[0, :3], base[0, :3])     # the previous episode does not
  np.testing.assert_array_equal(changed[1:], base[1:])


def test_metagenrl_objective_takes_any_action_dimension_and_ignores_their_order():
  rng = np.random.default_rng(1)
  objective = MetaGenRLObjective()
  for d in (1, 3, 6):
    inputs = metagenrl_inputs(rng, d=d)
    out = objective(inputs)["per_step"].numpy()
    order = rng.permutation(d)
    permuted = {k: (tf.gather(v, order, axis=2) if k in ("actions", "behaviour_actions") else v) for k, v in inputs.items()}
    np.testing.assert_allclose(objective(permuted)["per_step"].numpy(), out, rtol=1e-5, atol=1e-5)
  huge = metagenrl_inputs(rng)
  huge["actions"] = huge["actions"] * 1e4
  assert np.all(np.abs(objective(huge)["per_step"].numpy()) <= 1000.0)  # l_t = 1000 tanh(y / 1000)


def test_metagenrl_objective_gradient_reaches_the_policy_only_through_its_actions():
  rng = np.random.default_rng(2)
  objective = MetaGenRLObjective(dtype="float64")
  inputs = metagenrl_inputs(rng, b=2, t=5, d=2, dtype=np.float64)
  values, actions = tf.Variable(inputs["values"]), tf.Variable(inputs["actions"])
  with tf.GradientTape(persistent=True) as tape:
    loss = objective(dict(inputs, values=values, actions=actions))["loss"]
  assert tape.gradient(loss, values) is None  # values are held constant
  grad = tape.gradient(loss, actions).numpy()
  eps = 1e-6
  for index in [(0, 0, 0), (1, 3, 1), (0, 4, 1)]:  # central differences, float64
    delta = np.zeros(actions.shape)
    delta[index] = eps
    up = objective(dict(inputs, actions=inputs["actions"] + delta))["loss"].numpy()
    down = objective(dict(inputs, actions=inputs["actions"] - delta))["loss"].numpy()
    np.testing.assert_allclose(grad[index], (up - down) / (2 * eps), rtol=1e-5, atol=1e-8)


def test_metagenrl_ablations_and_bad_features():
  rng = np.random.default_rng(3)
  inputs = metagenrl_inputs(rng)
  without_values = MetaGenRLObjective(scalar_features=("rewards", "time"))
  base = without_values(inputs)["per_step"].numpy()
  np.testing.assert_array_equal(without_values(dict(inputs, values=inputs["values"] * 5.0))["per_step"].numpy(), base)
  assert MetaGenRLObjective(scalar_features=())(inputs)["per_step"].shape == (3, 8)
  with pytest.raises(errors.ConfigError, match="unknown MetaGenRL scalar feature\\(s\\) reward"):
    MetaGenRLObjective(scalar_features=("reward",))


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


def test_off_policy_reinforce_by_hand():
  """Two steps, no termination, γ = 0.5, λ = 1: δ = r + γV' − V; A_1 = δ_1, A_0 = δ_0 + γ A_1."""
  from tf_metarl.objectives import OffPolicyReinforceObjective
  objective = OffPolicyReinforceObjective(gamma=0.5, lam=1.0)
  actions = tf.Variable([[[0.0, 1.0], [1.0, 1.0]]])
  inputs = dict(rewards=tf.constant([[1.0, 2.0]]), discounts=tf.ones([1, 2]), episode_ends=tf.zeros([1, 2]),
                values=tf.constant([[0.5, 1.0]]), next_values=tf.constant([[1.0, 4.0]]),
                behaviour_actions=tf.constant([[[1.0, 1.0], [1.0, 3.0]]]))
  deltas = np.array([1.0 + 0.5 * 1.0 - 0.5, 2.0 + 0.5 * 4.0 - 1.0])   # [1, 3]
  advantages = np.array([deltas[0] + 0.5 * deltas[1], deltas[1]])     # [2.5, 3]
  squared = np.array([(1.0 + 0.0) / 2, (0.0 + 4.0) / 2])             # mean over D of (a_b − a)²
  with tf.GradientTape() as tape:
    out = objective(dict(inputs, actions=actions))
  np.testing.assert_allclose(out["per_step"].numpy(), [advantages * squared], rtol=1e-6)
  # ∂/∂a of A · mean_d (a_b − a)² = −A (a_b − a) (D = 2), averaged over the 2 steps.
  expected = -np.array([[advantages[0] * np.array([1.0, 0.0]), advantages[1] * np.array([0.0, 2.0])]]) / 2
  np.testing.assert_allclose(tape.gradient(out["loss"], actions).numpy(), expected, rtol=1e-6)
  assert make_objective("reinforce_offpolicy").kind == "reinforce_offpolicy"


@pytest.mark.parametrize("make", [PPOObjective, A2CObjective, ReinforceObjective])
def test_targets_computed_once_per_rollout_give_the_same_loss_on_shuffled_single_transitions(make):
  # A rollout [4, 6] with an episode end inside: the loss on it equals the loss on its 24 steps as
  # shuffled [24, 1] single transitions given the rollout's targets. Computing GAE on the single
  # transitions instead would cut every recursion after one step.
  rng = np.random.default_rng(0)
  shape = (4, 6)
  ends = np.zeros(shape, np.float32)
  ends[1, 2] = 1.0
  inputs = dict(rewards=rng.normal(size=shape), discounts=1.0 - ends, episode_ends=ends,
                values=rng.normal(size=shape), next_values=rng.normal(size=shape), log_probs=rng.normal(size=shape) - 1,
                behaviour_log_probs=rng.normal(size=shape) - 1, entropies=rng.uniform(size=shape))
  inputs["rollout_values"], inputs["rollout_next_values"] = inputs["values"], inputs["next_values"]
  inputs = {k: tf.constant(v, tf.float32) for k, v in inputs.items()}
  objective = make()
  assert objective.computes_rollout_targets
  targets = objective.rollout_targets({k: inputs[k] for k in objective.rollout_target_inputs})
  order = rng.permutation(24)
  flat = lambda x: tf.gather(tf.reshape(x, [24, 1]), order)
  shuffled = objective.loss_from_targets({k: flat(v) for k, v in inputs.items()},
                                         {k: flat(v) for k, v in targets.items()})
  np.testing.assert_allclose(shuffled["loss"].numpy(), objective(inputs)["loss"].numpy(), rtol=1e-5)
  per_step_gae = objective({k: flat(v) for k, v in inputs.items()})["loss"].numpy()
  assert abs(per_step_gae - objective(inputs)["loss"].numpy()) > 1e-3


def test_learned_objectives_do_not_compute_targets_per_rollout():
  objective = MetaGenRLObjective()
  assert not objective.computes_rollout_targets
  with pytest.raises(errors.ConfigError, match="does not compute its targets per rollout"):
    objective.rollout_targets({})
