"""Explicit-state agents: functional optimizers against Keras, pure updates, populations."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_metarl import losses
from tf_metarl.agents import TD3, ActorCritic, Adam, RMSProp, SGD, TD3Settings
from tf_metarl.agents import population
from tf_metarl.agents.optimizers import apply_if_finite, clip_by_global_norm, make_optimizer
from tf_metarl import errors
from tf_metarl.learners.loop import mean_metrics
from tf_metarl.networks import CategoricalPolicy, DeterministicPolicy, TwinQCritic, ValueCritic
from tf_metarl.objectives import PPOObjective, TD3ActorObjective
from tf_metarl.trajectories import Trajectory


@pytest.mark.parametrize("ours, theirs", [
    (Adam(0.05), lambda: keras.optimizers.Adam(0.05)),
    (Adam(0.01, epsilon=1e-5), lambda: keras.optimizers.Adam(0.01, epsilon=1e-5)),
    (RMSProp(0.01, decay=0.9, epsilon=1e-7), lambda: keras.optimizers.RMSprop(0.01, rho=0.9, epsilon=1e-7)),
    (SGD(0.1), lambda: keras.optimizers.SGD(0.1)),
])
def test_functional_optimizers_follow_keras_step_by_step(ours, theirs):
  rng = np.random.default_rng(0)
  variables = [tf.Variable(rng.normal(size=(3, 2))), tf.Variable(rng.normal(size=(2,)))]
  keras_optimizer = theirs()
  keras_optimizer.build(variables)
  params = [tf.constant(v.numpy()) for v in variables]
  state = ours.init(params)
  for _ in range(5):
    grads = [tf.constant(rng.normal(size=v.shape)) for v in variables]
    keras_optimizer.apply_gradients(zip(grads, variables))
    params, state = ours.update(params, grads, state)
    for p, v in zip(params, variables):
      np.testing.assert_allclose(p.numpy(), v.numpy(), rtol=1e-6, atol=1e-7)  # Keras keeps lr in float32


def test_optimizer_names_and_clipping():
  assert isinstance(make_optimizer("adam", 1e-3), Adam)
  with pytest.raises(errors.ConfigError, match="optimizer must be one of sgd, rmsprop, adam, got 'adamw'"):
    make_optimizer("adamw", 1e-3)
  grads, norm = clip_by_global_norm([tf.constant([3.0]), tf.constant([4.0])], 1.0)
  assert float(norm) == 5.0
  np.testing.assert_allclose([g.numpy()[0] for g in grads], [0.6, 0.8], rtol=1e-6)


@pytest.mark.parametrize("grad, learning_rate", [(np.nan, 0.1), (np.inf, 0.1), (1.0, 1e39)])
def test_apply_if_finite_keeps_params_and_state_when_a_gradient_or_result_is_not_finite(grad, learning_rate):
  params = [tf.constant([1.0, 2.0])]
  optimizer = Adam(0.1)
  state = optimizer.update(params, [tf.constant([0.5, 0.5])], optimizer.init(params))[1]  # non-trivial state
  new, new_state, skipped = apply_if_finite(SGD(0.1), params, [tf.constant([grad, 0.0])], (), learning_rate)
  assert bool(skipped)
  np.testing.assert_array_equal(new[0].numpy(), params[0].numpy())
  new, kept_state, skipped = apply_if_finite(optimizer, params, [tf.constant([grad, 0.0])], state)
  assert bool(skipped) == (learning_rate == 0.1)
  if skipped:
    for a, b in zip(tf.nest.flatten(kept_state), tf.nest.flatten(state)):
      np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_a_skipped_inner_update_passes_a_finite_meta_gradient():
  """Through the kept branch only: d(params after a skipped step)/dη is 0 (tf.where would give NaN)."""
  eta = tf.Variable(2.0)
  params = [tf.constant([1.0])]
  with tf.GradientTape() as tape:
    grads = [eta * tf.constant([np.nan])]  # the inner gradient depends on η and is NaN
    new, _, skipped = apply_if_finite(SGD(0.1), params, grads, ())
    outer = tf.reduce_sum(new[0] * eta)
  assert bool(skipped)
  assert float(tape.gradient(outer, eta)) == pytest.approx(1.0)  # only the direct term


def test_agent_updates_skip_non_finite_losses():
  keras.utils.set_random_seed(0)
  rng = np.random.default_rng(0)
  policy, critic = CategoricalPolicy(4, 3, (8,)), ValueCritic(4, (8,))
  agent = ActorCritic(policy, critic, Adam(0.1))
  batch = random_batch(rng, 2, 6, 4, rng.integers(0, 3, size=(2, 6)).astype(np.int32))
  poisoned = lambda inputs: {k: v * np.nan for k, v in PPOObjective()(inputs).items()}
  state = agent.init()
  new, metrics = agent.update(state, batch, poisoned)
  assert float(metrics["skipped_updates"]) == 1.0
  for a, b in zip(tf.nest.flatten(new), tf.nest.flatten(state)):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  td3 = make_td3()
  batch = random_batch(rng, 5, 1, 3, rng.uniform(-2, 2, size=(5, 1, 1)).astype(np.float32))
  batch = batch._replace(rewards=batch.rewards * np.nan)
  state = td3.init()
  new, metrics = td3.update(state, batch, tf.constant([0, 0]), TD3ActorObjective())
  assert float(metrics["skipped_updates"]) == 1.0
  for a, b in zip(new.critic, state.critic):
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def random_batch(rng, b, t, obs_dim, actions):
  terminated = (rng.random((b, t)) < 0.1).astype(np.float32)
  return Trajectory(observations=tf.constant(rng.normal(size=(b, t, obs_dim)), tf.float32),
                    actions=tf.constant(actions),
                    rewards=tf.constant(rng.normal(size=(b, t)), tf.float32),
                    next_observations=tf.constant(rng.normal(size=(b, t, obs_dim)), tf.float32),
                    terminated=tf.constant(terminated), truncated=tf.zeros((b, t)),
                    policy_outputs=tf.zeros((b, t, 1)), log_probs=tf.constant(rng.normal(size=(b, t)) - 1.0, tf.float32),
                    episode_steps=tf.constant(np.tile(np.arange(t), (b, 1)), tf.float32))


def test_actor_critic_update_is_sgd_on_the_objective_loss():
  keras.utils.set_random_seed(0)
  rng = np.random.default_rng(0)
  policy, critic = CategoricalPolicy(4, 3, (8,)), ValueCritic(4, (8,))
  agent = ActorCritic(policy, critic, SGD(0.1))
  batch = random_batch(rng, 2, 6, 4, rng.integers(0, 3, size=(2, 6)).astype(np.int32))
  objective = PPOObjective()
  state = agent.init()
  with tf.GradientTape() as tape:
    loss = objective({**{"rewards": batch.rewards, "discounts": batch.discounts, "episode_ends": batch.episode_ends,
                         "behaviour_log_probs": batch.log_probs},
                      "values": critic(batch.observations), "next_values": critic(batch.next_observations),
                      "rollout_values": critic(batch.observations),
                      "rollout_next_values": critic(batch.next_observations),
                      "log_probs": policy.log_prob(policy(batch.observations), batch.actions),
                      "entropies": policy.entropy(policy(batch.observations))})["loss"]
  variables = policy.trainable_variables + critic.trainable_variables
  grads = tape.gradient(loss, variables)
  new, metrics = agent.update(state, batch, objective)
  for p, v, g in zip(list(new.policy) + list(new.critic), variables, grads):
    np.testing.assert_allclose(p.numpy(), v.numpy() - 0.1 * g.numpy(), rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(float(metrics["loss"]), float(loss), rtol=1e-6)


def make_td3(seed=0, hidden=(16,), target_noise=0.0):
  keras.utils.set_random_seed(seed)
  policy = DeterministicPolicy(3, [-2.0], [2.0], hidden)
  critic = TwinQCritic(3, 1, hidden)
  return TD3(policy, critic, SGD(0.01), SGD(0.1), TD3Settings(gamma=0.9, tau=0.5, policy_delay=2,
                                                              target_noise=target_noise, target_noise_clip=0.5))


def test_td3_critic_update_regresses_clipped_double_q_targets():
  td3 = make_td3()
  rng = np.random.default_rng(1)
  batch = random_batch(rng, 5, 1, 3, rng.uniform(-2, 2, size=(5, 1, 1)).astype(np.float32))
  state = td3.init()
  next_q = td3.q_values(state.target_critic, batch.next_observations,
                        td3.actions(state.target_policy, batch.next_observations))
  targets = batch.rewards + 0.9 * batch.discounts * tf.reduce_min(next_q, axis=0)
  params = list(state.critic)
  with tf.GradientTape() as tape:
    tape.watch(params)
    q = td3.q_values(params, batch.observations, batch.actions)
    loss = tf.reduce_sum(tf.reduce_mean(tf.square(q - targets[None]), axis=[1, 2]))
  grads = tape.gradient(loss, params)
  new, metrics = td3.critic_update(state, batch, tf.constant([0, 0]))
  np.testing.assert_allclose(float(metrics["critic_loss"]), float(loss), rtol=1e-6)
  for p, old, g in zip(new.critic, state.critic, grads):
    np.testing.assert_allclose(p.numpy(), old.numpy() - 0.1 * g.numpy(), rtol=1e-5, atol=1e-7)
  assert int(new.updates) == 1


def test_td3_actor_moves_only_every_policy_delay_updates_and_polyak_averages():
  td3 = make_td3()
  rng = np.random.default_rng(2)
  batch = random_batch(rng, 8, 1, 3, rng.uniform(-2, 2, size=(8, 1, 1)).astype(np.float32))
  state = td3.init()
  state, m1 = td3.update(state, batch, tf.constant([0, 1]), TD3ActorObjective())  # updates = 1: no actor step
  assert np.isnan(float(m1["actor_loss"]))
  np.testing.assert_array_equal(state.policy[0].numpy(), td3.init().policy[0].numpy())
  before = state
  state, m2 = td3.update(state, batch, tf.constant([0, 2]), TD3ActorObjective())  # updates = 2: actor step
  assert np.isfinite(float(m2["actor_loss"]))
  assert not np.array_equal(state.policy[0].numpy(), before.policy[0].numpy())
  for target, old_target, new in zip(state.target_policy, before.target_policy, state.policy):
    np.testing.assert_allclose(target.numpy(), 0.5 * old_target.numpy() + 0.5 * new.numpy(), rtol=1e-6)
  # Nan-aware averaging over the iteration's updates reports the one actor loss.
  assert mean_metrics([m1, m2])["actor_loss"] == pytest.approx(float(m2["actor_loss"]))


def test_population_update_equals_a_loop_of_single_updates():
  members = [make_td3(seed=s) for s in range(3)]
  td3 = members[0]
  rng = np.random.default_rng(3)
  batches = [random_batch(rng, 6, 1, 3, rng.uniform(-2, 2, size=(6, 1, 1)).astype(np.float32)) for _ in range(3)]
  states = [m.init() for m in members]
  seeds = population.member_seeds(tf.constant([4, 5]), 3)
  update = lambda state, batch, seed: td3.update(state, batch, seed, TD3ActorObjective())
  stacked, metrics = population.vectorize(update)(population.stack(states), population.stack(batches), seeds)
  for i, (state, batch) in enumerate(zip(states, batches)):
    single, single_metrics = update(state, batch, seeds[i])
    for a, b in zip(tf.nest.flatten(population.member(stacked, i)), tf.nest.flatten(single)):
      np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(metrics["critic_loss"][i].numpy(), single_metrics["critic_loss"].numpy(), rtol=1e-5)
  assert len(population.unstack(stacked, 3)) == 3


def test_td3_population_update_is_each_agents_own_update_in_lockstep_with_the_policy_delay():
  td3 = make_td3(target_noise=0.3)  # the smoothing noise matters
  rng = np.random.default_rng(4)
  batches = [random_batch(rng, 6, 1, 3, rng.uniform(-2, 2, size=(6, 1, 1)).astype(np.float32)) for _ in range(3)]
  states = [make_td3(seed=s).init() for s in range(3)]
  stacked, batch = population.stack(states), population.stack(batches)
  seed = tf.constant([7, 8])
  normal = tf.random.stateless_normal(tf.shape(batch.actions), seed)  # drawn for all agents in one op
  first, m1 = td3.population_update(stacked, batch, seed, TD3ActorObjective())  # updates = 1: critics only
  second, m2 = td3.population_update(first, batch, seed, TD3ActorObjective())  # updates = 2: actors too
  assert np.isnan(m1["actor_loss"].numpy()).all() and np.isfinite(m2["actor_loss"].numpy()).all()
  for i, (state, own) in enumerate(zip(states, batches)):
    alone, _ = td3.critic_update(state, own, None, normal=normal[i])
    for a, b in zip(tf.nest.flatten(population.member(first, i)), tf.nest.flatten(alone)):
      np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
    alone, _ = td3.critic_update(alone, own, None, normal=normal[i])
    alone, metrics = td3.actor_update(alone, own, TD3ActorObjective())
    for a, b in zip(tf.nest.flatten(population.member(second, i)), tf.nest.flatten(alone)):
      np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m2["actor_loss"][i].numpy(), metrics["actor_loss"].numpy(), rtol=1e-5)


def test_losses_by_hand():
  log_probs = tf.constant([[-1.0, -2.0]])
  np.testing.assert_allclose(losses.policy_gradient(log_probs, tf.constant([[2.0, -1.0]])).numpy(), [[2.0, -2.0]])
  term, diag = losses.ppo_clip(tf.math.log(tf.constant([[1.5, 0.5]])), tf.zeros((1, 2)), tf.constant([[1.0, -1.0]]), 0.2)
  np.testing.assert_allclose(term.numpy(), [[-1.2, 0.8]], rtol=1e-6)  # min(ρA, clip(ρ)A)
  assert float(diag["clip_fraction"]) == 1.0
  per_step, parts = losses.actor_critic(tf.constant([[1.0]]), tf.constant([[2.0]]), tf.constant([[4.0]]),
                                        tf.constant([[0.5]]), 0.5, 0.1)
  np.testing.assert_allclose(per_step.numpy(), [[1.0 + 0.5 * 0.5 * 4.0 - 0.05]])
  q = tf.constant([[[1.0]], [[3.0]]])
  np.testing.assert_allclose(losses.clipped_double_q_targets(tf.constant([[1.0]]), tf.constant([[1.0]]), q, 0.5).numpy(),
                             [[1.5]])
  assert float(losses.twin_q_regression(q, tf.constant([[2.0]]))) == 2.0
  with pytest.raises(ValueError, match=r"log_probs must have rank 2 \[batch, time\]"):
    losses.policy_gradient(tf.zeros([3]), tf.zeros([3]))
