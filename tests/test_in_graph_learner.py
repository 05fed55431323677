"""The on-policy learner on TensorFlow-native environments: each iteration one graph."""
import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from configs import train_agent as train_agent_config
from tf_metarl.envs import describe_env
from tf_metarl.learners import train
from tf_metarl.learners.in_graph_on_policy import InGraphOnPolicyLearner
from tf_metarl.learners.loop import RunSettings, fit, run_training
from tf_metarl.learners.on_policy import OnPolicyConfig, as_units, rollout_extras
from tf_metarl.objectives import PPOObjective
from tf_metarl.objectives.registry import make_objective


def make_learner(env_id="tf_metarl/CartPole-v1", objective="ppo", seed=0, total_steps=20_000, members=1,
                 env_randomize=None, member_settings=None, **config):
  config.setdefault("jit_compile", False)  # XLA (the default) costs seconds of compilation per learner
  return InGraphOnPolicyLearner(describe_env(env_id), make_objective(objective, {}), OnPolicyConfig(**config), seed,
                                total_steps, members=members, env_randomize=env_randomize, member_settings=member_settings)


@pytest.mark.slow
def test_train_agent_picks_the_in_graph_learner_and_ppo_learns_cartpole(tmp_path):
  config = train_agent_config.get_config("ppo")
  config.steps, config.eval_every, config.eval_episodes = 40_960, 40_960, 8
  summary = train("tf_metarl/CartPole-v1", "ppo", 0, str(tmp_path), config.to_dict())
  assert summary["learner"] == "on_policy_in_graph"
  # A random policy balances about 22 steps; PPO's first 40k steps reach a few hundred.
  assert summary["final_eval_return"] > 150, summary
  assert summary["train_return_last100"] > 60, summary


@pytest.mark.slow
def test_an_iteration_reports_episodes_metrics_and_keeps_episodes_running_across_iterations():
  learner = make_learner(num_envs=4, rollout_length=100, epochs=2, minibatches=2)
  lengths = []
  for _ in range(3):
    metrics, stats = learner.iteration()
    lengths += stats.lengths
  assert int(learner.env_steps.numpy()) == 1200
  assert {"loss", "grad_norm", "charts/learning_rate"} <= set(metrics) and np.isfinite(metrics["loss"])
  assert lengths and all(8 <= n <= 500 for n in lengths) and sum(lengths) <= 1200
  # Episodes continue across iterations: a copy's running length survives the iteration boundary.
  assert int(tf.reduce_max(learner.env_state.read().lengths)) > 0


@pytest.mark.slow
def test_a_run_split_in_two_with_a_resume_equals_the_uninterrupted_run(tmp_path):
  settings = RunSettings(checkpoint_every_seconds=0)
  cfg = dict(num_envs=4, rollout_length=32, epochs=2, minibatches=2, jit_compile=True)  # the default, XLA
  whole = make_learner(total_steps=2048, **cfg)
  run_training(whole, 2048, str(tmp_path / "whole"), {"run": "a"}, settings)
  first = make_learner(total_steps=2048, **cfg)
  run_training(first, 1024, str(tmp_path / "split"), {"run": "a"}, settings)
  second = make_learner(total_steps=2048, **cfg)
  summary = run_training(second, 2048, str(tmp_path / "split"), {"run": "a"}, settings)
  assert summary["resumed_from"] == 1024
  for a, b in zip(whole.policy.trainable_variables, second.policy.trainable_variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  np.testing.assert_array_equal(whole.env_state.read().env.physics.numpy(), second.env_state.read().env.physics.numpy())


@pytest.mark.slow
@pytest.mark.parametrize("env_id", ["tf_metarl/Pendulum-v1", "tf_metarl/MountainCarContinuous-v0"])
def test_continuous_actions_are_clipped_for_the_environment_and_recorded_as_sampled(env_id):
  learner = make_learner(env_id, num_envs=4, rollout_length=64, epochs=1, minibatches=1)
  _, trajectory, _ = learner.task.rollout(learner.env_state.read(), learner.agent.act, learner.state.read().policy,
                                          tf.constant([1, 2]), 64)
  actions, rewards = trajectory.actions.numpy()[..., 0], trajectory.rewards.numpy()
  env = learner.task.env
  if env_id == "tf_metarl/MountainCarContinuous-v0":
    assert np.abs(actions).max() > 1.2  # recorded as sampled (an untrained policy's std is about 1)
    # MountainCarContinuous charges 0.1·a² for the action it receives: the clipped one.
    np.testing.assert_allclose(rewards, -0.1 * np.clip(actions, env.low, env.high) ** 2, rtol=1e-5)
  result = fit(learner, 512)
  assert np.isfinite(result["metrics"]["loss"])


@pytest.mark.slow
def test_population_members_start_as_lone_agents_of_their_seeds_and_train_independently():
  team = make_learner(seed=3, members=3, num_envs=4, rollout_length=32, epochs=2, minibatches=2)
  stacked = team.state.read()
  for i in range(3):
    lone = make_learner(seed=3 + i, num_envs=4, rollout_length=32, epochs=2, minibatches=2).state.read()
    for a, b in zip(lone.policy + lone.critic, stacked.policy + stacked.critic):
      np.testing.assert_array_equal(a.numpy(), b[i].numpy())
  before = stacked.policy[0].numpy()
  for _ in range(3):
    metrics, stats = team.iteration()
  after = team.state.read().policy
  assert all(np.abs(after[0].numpy()[i] - before[i]).max() > 0 for i in range(3))  # every member updated
  # Each member learns from its own copies: different data, so members stay different.
  assert np.abs(after[0][0].numpy() - after[0][1].numpy()).max() > 1e-3
  assert any(k.startswith("population/episodic_return_seed") for k in metrics)
  assert int(team.env_state.read().lengths.shape[0]) == 12  # members × num_envs copies


def test_members_act_on_their_own_copies_and_a_population_update_equals_each_members_own_update():
  team = make_learner(members=2, num_envs=4, rollout_length=16, epochs=1, minibatches=1)
  state = team._read_members()
  _, trajectory, _ = team.task.rollout(team.env_state.read(), team._act, state.policy, tf.constant([0, 1]), 16)
  batches = tf.nest.map_structure(lambda x: tf.reshape(x, [2, 4] + x.shape[1:].as_list()), trajectory)
  for i in range(2):  # member i's copies were stepped with member i's policy
    outputs = team.agent.policy_outputs([p[i] for p in state.policy], batches.observations[i])
    np.testing.assert_allclose(team.agent.policy.log_prob(outputs, batches.actions[i]).numpy(),
                               batches.log_probs[i].numpy(), atol=1e-5)
  together, _ = team._per_member(lambda s, b: team.agent.update(s, b, team.objective, 1e-3))(state, batches)
  for i in range(2):
    member = tf.nest.map_structure(lambda x: x[i], state)
    alone, _ = team.agent.update(member, tf.nest.map_structure(lambda x: x[i], batches), team.objective, 1e-3)
    for a, b in zip(alone.policy + alone.critic, together.policy + together.critic):
      np.testing.assert_allclose(a.numpy(), b[i].numpy(), atol=1e-6)


def test_members_train_with_their_own_learning_rates_and_objective_hyperparameters():
  settings = {"learning_rate": [1e-3, 3e-4], "entropy_coef": [0.0, 0.5], "gamma": [0.9, 0.99]}
  team = make_learner(members=2, num_envs=4, rollout_length=16, epochs=1, minibatches=1, learning_rate=2e-3,
                      member_settings=settings)
  state = team._read_members()
  _, trajectory, _ = team.task.rollout(team.env_state.read(), team._act, state.policy, tf.constant([0, 1]), 16)
  batches = tf.nest.map_structure(lambda x: tf.reshape(x, [2, 1, 4] + x.shape[1:].as_list()), trajectory)
  # Half the configured rate, as annealing would: each member's rate is halved too.
  together, _, _, _ = team._updates(state, (batches, ()), tf.constant(1e-3))
  for i in range(2):
    objective = PPOObjective(entropy_coef=settings["entropy_coef"][i], gamma=settings["gamma"][i])
    member = tf.nest.map_structure(lambda x: x[i], state)
    alone, _ = team.agent.update(member, tf.nest.map_structure(lambda x: x[i, 0], batches), objective,
                                 settings["learning_rate"][i] / 2)
    for a, b in zip(alone.policy + alone.critic, together.policy + together.critic):
      np.testing.assert_allclose(a.numpy(), b[i].numpy(), atol=1e-6)
  assert team.summary_extra()["member_settings"] == settings


@pytest.mark.parametrize("settings, message", [
    ({"learning_rate": [1e-3]}, "has 1 values for 2 members"),
    ({"clip": [0.1, 0.2]}, "objective 'ppo' has no numeric hyperparameter\\(s\\) clip"),
    ({"learning_rate": [1e-3, 0.0]}, "member learning rates must be > 0"),
])
def test_member_settings_are_checked(settings, message):
  from tf_metarl import errors
  with pytest.raises(errors.ConfigError, match=message):
    make_learner(members=2, num_envs=4, rollout_length=16, member_settings=settings)


@pytest.mark.slow
def test_train_agent_seeds_reports_every_seed(tmp_path):
  config = train_agent_config.get_config("ppo")
  config.steps, config.eval_every, config.eval_episodes, config.seeds = 2048, 2048, 2, 3
  summary = train("tf_metarl/CartPole-v1", "ppo", 5, str(tmp_path), config.to_dict())
  assert summary["seeds"] == [5, 6, 7] and len(summary["member_final_eval_return"]) == 3
  assert all(r is not None and 8 <= r <= 500 for r in summary["member_final_eval_return"])
  assert summary["env_steps"] == 2048  # per member


def test_a_randomised_task_family_reaches_the_learners_environments():
  learner = make_learner("tf_metarl/Pendulum-v1", num_envs=64, rollout_length=8, epochs=1, minibatches=1,
                         env_randomize={"length": (0.5, 1.5), "gravity": (8.0, 12.0)})
  lengths = learner.env_state.read().env.parameters["length"].numpy()
  assert 0.5 <= lengths.min() and lengths.max() <= 1.5 and lengths.std() > 0.2
  assert np.all(learner.env_state.read().env.parameters["mass"].numpy() == 1.0)


def learner_from_config(members):
  """config -> an in-graph PPO learner of `members` on CartPole (for the shared learner checks)."""
  return lambda config: InGraphOnPolicyLearner(describe_env("tf_metarl/CartPole-v1"), make_objective("ppo", {}),
                                               dataclasses.replace(config, jit_compile=False), 0, 10_000,
                                               members=members)


@pytest.mark.slow
@pytest.mark.parametrize("members", [1, 2])
def test_frozen_targets_in_graph(members):
  from tests.test_learners import assert_frozen_targets_are_the_critics_values_at_collection
  assert_frozen_targets_are_the_critics_values_at_collection(learner_from_config(members))


@pytest.mark.slow
@pytest.mark.parametrize("members", [1, 2])
def test_transition_minibatches_in_graph(members):
  from tests.test_learners import assert_transition_minibatches_use_the_targets_at_collection
  assert_transition_minibatches_use_the_targets_at_collection(learner_from_config(members))


@pytest.mark.slow
@pytest.mark.parametrize("members", [1, 3])
def test_xla_compiled_updates_equal_the_graph_ones(members):
  # XLA draws other random numbers than TensorFlow's kernels, so whole iterations differ; the
  # updates draw none (the shuffle happens before them): on the same data they move the parameters
  # the same way, up to float reordering.
  learner = make_learner(members=members, num_envs=4, rollout_length=32, epochs=2, minibatches=2,
                         minibatch_unit="transitions")
  cfg = learner.config
  state = learner._read_members()
  _, trajectory, _ = learner.task.rollout(learner.env_state.read(), learner._act, state.policy, tf.constant([1, 2]),
                                          cfg.rollout_length)
  trajectory = tf.nest.map_structure(lambda x: tf.reshape(x, [members, cfg.num_envs] + x.shape[1:].as_list()),
                                     trajectory)
  extras = learner._per_member(lambda c, r: rollout_extras(learner.agent, learner.objective, c, r, cfg))(
      state.critic, trajectory)
  units = as_units((trajectory, extras), cfg, leading_axes=1)
  orders = tf.argsort(tf.random.uniform([members, cfg.epochs, 128], seed=0))
  shuffled = tf.nest.map_structure(lambda x: tf.gather(x, orders, axis=1, batch_dims=1), units)
  flat = lambda s: np.concatenate([np.ravel(p) for p in s.policy + s.critic])
  moves = [flat(tf.function(learner._updates, jit_compile=jit)(state, shuffled, tf.constant(2.5e-4))[0]) - flat(state)
           for jit in (False, True)]
  assert np.linalg.norm(moves[0]) > 0
  assert np.linalg.norm(moves[1] - moves[0]) < 1e-4 * np.linalg.norm(moves[0])  # measured: about 1e-6
