"""The off-policy (TD3) learner on TensorFlow-native environments: collection, replay insertion and
updates of many vector steps in one compiled call."""
import numpy as np
import pytest
import tensorflow as tf

from configs import train_agent as train_agent_config
from tf_metarl.envs import describe_env
from tf_metarl.learners import train
from tf_metarl.learners.in_graph_off_policy import InGraphOffPolicyLearner
from tf_metarl.learners.loop import RunSettings, run_training
from tf_metarl.learners.off_policy import OffPolicyConfig
from tf_metarl.objectives.registry import make_objective

SMALL = dict(hidden_sizes=(32, 32), batch_size=16, replay_capacity=1_000, jit_compile=False)  # XLA: slower to build


def make_learner(env_id="tf_metarl/Pendulum-v1", seed=0, members=1, **config):
  return InGraphOffPolicyLearner(describe_env(env_id), make_objective("td3", {}), OffPolicyConfig(**config), seed,
                                 members=members)


def expected_updates(config, vector_steps):
  """The gymnasium path's count: after each vector step at or past warm-up, credit += rate · copies."""
  credit, updates = 0.0, 0
  for step in range(1, vector_steps + 1):
    if step * config.num_envs >= config.update_start():
      credit += config.updates_per_step * config.num_envs
      updates += int(credit)
      credit -= int(credit)
  return updates


@pytest.mark.parametrize("rate, learn_during_warmup", [(2.0, False), pytest.param(0.5, False, marks=pytest.mark.slow),
                                                    (2.0, True)])  # updates from the first segment
def test_a_call_steps_every_copy_fills_replay_in_order_and_updates_as_the_gymnasium_path(rate, learn_during_warmup):
  learner = make_learner(num_envs=2, graph_steps=60, warmup_steps=40, updates_per_step=rate,
                         learn_during_warmup=learn_during_warmup, sequence_length=3, **SMALL)
  metrics, stats = learner.iteration()
  assert int(learner.env_steps.numpy()) == 120 and learner.replay.size == 60
  assert int(learner.state.read().updates.numpy()) == expected_updates(learner.config, 60)
  assert np.isfinite(metrics["critic_loss"]) and np.isfinite(metrics["actor_loss"])
  data = learner.replay.data
  # Consecutive rows of a copy continue one another (Pendulum never terminates; 60 < its 200-step limit).
  np.testing.assert_allclose(data["observations"][1:60], data["next_observations"][:59], atol=1e-6)
  np.testing.assert_array_equal(data["episode_steps"][:60, 0], np.arange(60))
  assert stats.returns == []  # no episode ends within 60 steps


def test_warm_up_actions_are_uniform_then_the_policy_explores_around_its_action():
  learner = make_learner(num_envs=50, graph_steps=4, warmup_steps=100, updates_per_step=0.0, **SMALL)
  learner.iteration()  # steps 50 .. 200: the first two vector steps are warm-up
  data = learner.replay.data
  actions, observations = data["actions"][:4], data["observations"][:4]
  warm = actions[:2].ravel()
  assert warm.min() < -1.5 and warm.max() > 1.5 and abs(warm.std() - 4 / np.sqrt(12)) < 0.2  # U(-2, 2)
  policy = learner.agent.actions(learner.state.read().policy, tf.constant(observations[2:])).numpy()
  residual = (actions[2:] - policy).ravel()
  assert abs(residual.std() - 0.1 * 2.0) < 0.03 and abs(residual.mean()) < 0.05  # exploration noise 0.1 half ranges


@pytest.mark.slow
@pytest.mark.parametrize("members", [1, 2])
def test_a_run_split_in_two_with_a_resume_equals_the_uninterrupted_run(tmp_path, members):
  settings = RunSettings(checkpoint_every_seconds=0, eval_every=0)
  cfg = dict(num_envs=2, graph_steps=25, warmup_steps=20, members=members,
             **dict(SMALL, jit_compile=True))  # the default, XLA
  whole = make_learner(**cfg)
  run_training(whole, 200, str(tmp_path / "whole"), {"run": "a"}, settings)
  first = make_learner(**cfg)
  run_training(first, 100, str(tmp_path / "split"), {"run": "a"}, settings)
  second = make_learner(**cfg)
  summary = run_training(second, 200, str(tmp_path / "split"), {"run": "a"}, settings)
  assert summary["resumed_from"] == 100
  for a, b in zip(whole.state.read().policy + whole.state.read().critic,
                  second.state.read().policy + second.state.read().critic):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  np.testing.assert_array_equal(whole.replay.data["observations"], second.replay.data["observations"])
  np.testing.assert_array_equal(whole.env_state.read().env.physics.numpy(), second.env_state.read().env.physics.numpy())


def test_population_members_start_as_lone_agents_act_on_their_own_copies_and_train_apart():
  cfg = dict(num_envs=3, graph_steps=30, warmup_steps=30, updates_per_step=0.0, **SMALL)
  team = make_learner(seed=4, members=2, **cfg)
  start = team.state.read()
  for i in range(2):
    lone = make_learner(seed=4 + i, **cfg).state.read()
    for a, b in zip(lone.policy + lone.critic, start.policy + start.critic):
      np.testing.assert_array_equal(a.numpy(), b[i].numpy())
  team.iteration()  # 10 warm-up steps per copy, then 20 steps of exploration (no updates: the policies stay)
  assert int(team.env_steps.numpy()) == 90 and team.replay.num_envs == 6  # steps per member; members × copies
  data = team.replay.data
  observations, actions = data["observations"][10:30], data["actions"][10:30]  # [steps, copies, ...] after warm-up
  for i in range(2):  # member i's copies 3i .. 3i + 2 follow its own policy, plus noise of 0.1 half ranges
    own = slice(3 * i, 3 * i + 3)
    residual = {j: actions[:, own] - team.agent.actions([p[j] for p in start.policy],
                                                        tf.constant(observations[:, own])).numpy() for j in range(2)}
    assert abs(residual[i].std() - 0.2) < 0.05 and abs(residual[1 - i]).max() > 0.5
  metrics = team.sampled_update(tf.constant([1, 2]))
  metrics = team.sampled_update(tf.constant([3, 4]))  # the second update moves the policies too (delay 2)
  now = team.state.read()
  assert list(now.updates.numpy()) == [2, 2]  # lockstep
  for i in range(2):
    for old, new in ((start.policy[0], now.policy[0]), (start.critic[0], now.critic[0])):
      assert np.abs(new[i].numpy() - old[i].numpy()).max() > 0  # every member moved
  assert np.isfinite(float(metrics["critic_loss"])) and np.isfinite(float(metrics["actor_loss"]))
  returns = team.evaluate(2)
  assert len(returns) == 4 and all(np.isfinite(team.member_eval_returns))
  assert team.summary_extra()["seeds"] == [4, 5]


def test_discrete_environments_are_refused_in_one_line():
  from tf_metarl import errors
  with pytest.raises(errors.IncompatibleSpaceError, match="continuous actions; tf_metarl/CartPole-v1"):
    make_learner("tf_metarl/CartPole-v1", **SMALL)


@pytest.mark.slow
def test_train_agent_picks_the_in_graph_learner_and_td3_learns_pendulum(tmp_path):
  config = train_agent_config.get_config("td3")
  config.steps, config.eval_every, config.eval_episodes = 8_000, 8_000, 10
  config.off_policy.hidden_sizes, config.off_policy.batch_size = (64, 64), 128  # the preset's 256 × 256 is slower
  summary = train("tf_metarl/Pendulum-v1", "td3", 0, str(tmp_path), config.to_dict())
  assert summary["learner"] == "off_policy_in_graph"
  # A random policy scores about −1,200 on Pendulum; TD3 swings up within about 8k steps (−199 here).
  assert summary["final_eval_return"] > -400, summary


@pytest.mark.slow
def test_train_agent_seeds_trains_td3_agents_together_and_every_seed_learns_pendulum(tmp_path):
  config = train_agent_config.get_config("td3")
  config.steps, config.eval_every, config.eval_episodes, config.seeds = 8_000, 8_000, 10, 3
  config.off_policy.hidden_sizes, config.off_policy.batch_size = (64, 64), 128
  summary = train("tf_metarl/Pendulum-v1", "td3", 0, str(tmp_path), config.to_dict())
  assert summary["learner"] == "off_policy_in_graph" and summary["seeds"] == [0, 1, 2]
  assert summary["env_steps"] == 8_000  # per member
  # A random policy scores about −1,200; each seed's greedy return after 8k steps of its own.
  assert all(r > -400 for r in summary["member_final_eval_return"]), summary
