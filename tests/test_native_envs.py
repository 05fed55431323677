"""TensorFlow-native Catch and random walk: dynamics, in-graph rollouts, and their gymnasium twins."""
import gymnasium as gym
import numpy as np
import pytest
import tensorflow as tf

from tf_metarl.envs import describe_env
from tf_metarl.envs.catch import Catch, CatchState
from tf_metarl.envs.random_walk import SWITCH_EVERY, RandomWalk, RandomWalkEnv, RandomWalkState


def test_catch_matches_its_gymnasium_twin_step_by_step():
  rng = np.random.default_rng(0)
  env = gym.make("tf_metarl/Catch-v0", rows=7, columns=4)
  catch = Catch(rows=7, columns=4)
  for episode in range(5):
    obs, _ = env.reset(seed=episode)
    column = int(np.argmax(obs[:4]))
    state = CatchState(tf.constant([0]), tf.constant([column]), tf.constant([2]))
    np.testing.assert_array_equal(catch.observe(state).numpy()[0], obs)
    for t in range(6):
      action = int(rng.integers(0, 3))
      obs, reward, terminated, truncated, _ = env.step(action)
      state, tf_reward, tf_terminated = catch.step(state, tf.constant([action]))
      np.testing.assert_array_equal(catch.observe(state).numpy()[0], obs)
      assert (float(tf_reward[0]), bool(tf_terminated[0]), truncated) == (reward, terminated, False)
    assert terminated and reward in (-1.0, 1.0)  # an episode lasts rows − 1 steps


def test_catch_reward_is_plus_one_only_under_the_pellet():
  catch = Catch(rows=3, columns=5)
  state = CatchState(tf.constant([1, 1, 1]), tf.constant([2, 2, 0]), tf.constant([2, 1, 0]))
  _, rewards, terminated = catch.step(state, tf.constant([1, 1, 0]))  # stay, stay, left (clipped at the wall)
  np.testing.assert_array_equal(rewards.numpy(), [1.0, -1.0, 1.0])
  assert terminated.numpy().all()


def tracking_policy(catch):
  """Moves the paddle towards the pellet's column: catches every pellet."""
  def policy(observations, seed):
    board = tf.reshape(observations, [-1, catch.rows, catch.columns])
    pellet = tf.argmax(tf.reduce_sum(board[:, :-1], axis=1), axis=-1, output_type=tf.int32)
    paddle = tf.argmax(board[:, -1], axis=-1, output_type=tf.int32)
    both = tf.reduce_max(board[:, -1], axis=-1) > 1.5  # pellet on the bottom row, on the paddle
    pellet = tf.where(both, paddle, pellet)
    return tf.sign(pellet - paddle) + 1
  return policy


def test_in_graph_rollout_with_autoreset():
  catch = Catch()
  batch, length = 64, 50
  state = catch.reset(tf.constant([1, 2]), batch)
  rollout = tf.function(lambda s, seed: catch.rollout(s, tracking_policy(catch), seed, length))
  state, out = rollout(state, tf.constant([3, 4]))
  assert out["observations"].shape == (length, batch, 66) and out["actions"].dtype == tf.int32
  terminated = out["terminated"].numpy()
  rewards = out["rewards"].numpy()
  # Episodes last rows − 1 = 10 steps, all copies in lockstep; a tracking paddle always catches.
  np.testing.assert_array_equal(np.flatnonzero(terminated[:, 0]), [9, 19, 29, 39, 49])
  assert np.all(rewards[terminated == 1] == 1.0) and np.all(rewards[terminated == 0] == 0.0)
  # After a termination the next observation is the final board; the next step starts a new episode.
  obs = out["observations"].numpy().reshape(length, batch, 11, 6)
  assert np.all(obs[10, :, 0].sum(-1) == 1)  # pellet back on the top row
  np.testing.assert_array_equal(out["next_observations"][:-1].numpy()[terminated[:-1] == 0],
                                out["observations"][1:].numpy()[terminated[:-1] == 0])
  # Starting columns vary across copies and episodes.
  assert len(set(np.argmax(obs[0, :, 0], -1))) > 3


def test_random_walk_dynamics_and_switching_left_reward():
  walk = RandomWalk()
  left_edge = RandomWalkState(tf.constant([0, 0]), tf.constant([0, SWITCH_EVERY]))
  moved_left = None
  for k in range(20):  # find a seed whose moves go left for both copies
    state, next_obs, rewards, terminated = walk.step_autoreset(left_edge, tf.zeros([2], tf.int32), tf.constant([k, 0]))
    if terminated.numpy().all():
      moved_left = rewards.numpy()
      assert np.all(next_obs.numpy() == 0) and np.all(state.position.numpy() == 2)
      break
  np.testing.assert_array_equal(moved_left, [0.0, -1.0])  # phase 0 pays 0, phase 1 pays −1
  right_edge = RandomWalkState(tf.constant([4]), tf.constant([0]))
  outcomes = {tuple(np.round(walk.step_autoreset(right_edge, tf.zeros([1], tf.int32), tf.constant([k, 1]))[2].numpy(), 3)) for k in range(20)}
  assert outcomes == {(0.0,), (1.0,)}


def test_random_walk_true_values():
  np.testing.assert_allclose(RandomWalk.true_values(1.0, 0), [1 / 6, 2 / 6, 3 / 6, 4 / 6, 5 / 6])
  np.testing.assert_allclose(RandomWalk.true_values(1.0, SWITCH_EVERY), [-4 / 6, -2 / 6, 0, 2 / 6, 4 / 6], atol=1e-12)


def test_random_walk_gymnasium_twin_values():
  env = RandomWalkEnv()
  env.reset(seed=0)
  returns, total = [], 0.0
  while env.total_steps < SWITCH_EVERY - 10:
    _, reward, terminated, _, _ = env.step(0)
    total += reward
    if terminated:
      returns.append(total)
      total = 0.0
      env.reset()
  # From the centre the walk leaves on the right with probability ½ (true value 0.5 in phase 0).
  assert abs(np.mean(returns) - 0.5) < 0.15 and set(returns) <= {0.0, 1.0}
  while env.total_steps < SWITCH_EVERY + 200:
    _, reward, terminated, _, _ = env.step(0)
    if terminated:
      assert reward in (1.0, -1.0)
      env.reset()


@pytest.mark.parametrize("env_id, num_actions, obs_dim", [("tf_metarl/Catch-v0", 3, 66), ("tf_metarl/RandomWalk-v0", 1, 5)])
def test_registered_with_gymnasium(env_id, num_actions, obs_dim):
  info = describe_env(env_id)
  assert info.num_actions == num_actions and info.observation_shape == (obs_dim,)


def test_episode_counting_records_each_steps_index_within_its_episode():
  from tf_metarl.envs.batched import EpisodeCounting, rollout
  from tf_metarl.envs.catch import Catch
  env = EpisodeCounting(Catch(4, 3))  # every episode lasts 3 steps
  policy = lambda obs, seed: tf.zeros([2], tf.int32)
  _, time_major = rollout(env, env.reset(tf.constant([0, 1]), 2), policy, tf.constant([2, 3]), 7)
  np.testing.assert_array_equal(time_major["episode_steps"].numpy().T, [[0, 1, 2, 0, 1, 2, 0]] * 2)


def test_contextual_bandit_rewards_the_known_best_action_and_ends_by_truncation():
  from tf_metarl.envs.bandit import EPISODE_STEPS, best_actions
  env = gym.make("tf_metarl/ContextualBandit-v0")
  info = describe_env("tf_metarl/ContextualBandit-v0")
  assert (info.action_kind, info.action_dim, info.observation_shape, info.max_episode_steps) == (
      "continuous", 2, (4,), EPISODE_STEPS)
  context, _ = env.reset(seed=3)
  best, off = [], []
  probe = gym.make("tf_metarl/ContextualBandit-v0").unwrapped  # scores another action in the same context
  probe.reset(seed=0)
  for t in range(EPISODE_STEPS):
    a_star = best_actions(context)
    assert np.all(np.abs(a_star) < 1.0)  # the best policy is not at a bound
    probe._context = context
    off.append(probe.step(np.clip(a_star + 0.5, -1, 1))[1])
    context, reward, terminated, truncated, _ = env.step(a_star)
    best.append(reward)
    assert not terminated and truncated == (t == EPISODE_STEPS - 1)
  np.testing.assert_allclose(best, 0.0, atol=1e-6)
  assert max(off) < -0.01
  # The next context does not depend on the action.
  first = gym.make("tf_metarl/ContextualBandit-v0")
  second = gym.make("tf_metarl/ContextualBandit-v0")
  first.reset(seed=5), second.reset(seed=5)
  np.testing.assert_array_equal(first.step(np.ones(2))[0], second.step(-np.ones(2))[0])


def test_contextual_bandit_at_bound_puts_most_best_actions_at_a_bound():
  from tf_metarl.envs.bandit import best_actions
  contexts = np.random.default_rng(1).uniform(-1, 1, (4000, 4))
  at_bound = lambda scale: np.mean(np.abs(best_actions(contexts, scale)) >= 1.0)
  assert at_bound(0.8) == 0.0 and 0.8 < at_bound(10.0) < 0.95
  env = gym.make("tf_metarl/ContextualBanditAtBound-v0")
  context, _ = env.reset(seed=0)
  context, reward, *_ = env.step(best_actions(context, 0.8))
  assert reward < -1e-3  # the other bandit's best action is not this one's
  assert env.step(best_actions(context, 10.0))[1] == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("env_id, action_dim", [("tf_metarl/ContextualBandit1D-v0", 1),
                                                ("tf_metarl/ContextualBandit6D-v0", 6)])
def test_contextual_bandits_of_other_action_dimensions_share_the_first_rows_of_the_task(env_id, action_dim):
  from tf_metarl.envs.bandit import best_actions
  assert describe_env(env_id).action_dim == action_dim
  contexts = np.random.default_rng(2).uniform(-1, 1, (8, 4))
  rows = min(action_dim, 2)
  np.testing.assert_allclose(best_actions(contexts, action_dim=action_dim)[:, :rows], best_actions(contexts)[:, :rows])
  env = gym.make(env_id)
  context, _ = env.reset(seed=0)
  assert env.step(best_actions(context, action_dim=action_dim))[1] == pytest.approx(0.0, abs=1e-6)


def test_delayed_bandit_pays_the_bandits_summed_regrets_at_its_last_step():
  from tf_metarl.envs.bandit import EPISODE_STEPS, best_actions
  delayed, plain = gym.make("tf_metarl/ContextualBanditDelayed-v0"), gym.make("tf_metarl/ContextualBandit-v0")
  assert describe_env("tf_metarl/ContextualBanditDelayed-v0").observation_shape == (6,)
  observation, _ = delayed.reset(seed=4)
  context, _ = plain.reset(seed=4)
  actions = np.random.default_rng(0).uniform(-1, 1, (EPISODE_STEPS, 2))
  regrets = []
  for t, action in enumerate(actions):
    np.testing.assert_array_equal(observation[:4], context)  # the same contexts as the bandit
    assert observation[4] == pytest.approx(t / EPISODE_STEPS)
    assert observation[5] == pytest.approx(sum(regrets) / EPISODE_STEPS, rel=1e-5)
    observation, reward, terminated, _, _ = delayed.step(action)
    context, regret, *_ = plain.step(action)
    regrets.append(regret)
    assert terminated == (t == EPISODE_STEPS - 1)
    assert reward == (pytest.approx(sum(regrets)) if terminated else 0.0)
  assert sum(regrets) < -1.0
  observation, _ = delayed.reset(seed=5)
  for t in range(EPISODE_STEPS):  # the best action every step: nothing to pay
    observation, reward, *_ = delayed.step(best_actions(observation[:4]))
  assert reward == pytest.approx(0.0, abs=1e-5)


def test_contextual_reach_moves_a_position_that_the_reward_scores():
  from tf_metarl.envs.bandit import REACH_STEP, best_actions
  env = gym.make("tf_metarl/ContextualReach-v0")
  observation, _ = env.reset(seed=1)
  context = observation[:4].copy()
  np.testing.assert_array_equal(observation[4:], 0.0)
  target = best_actions(context)
  observation, reward, *_ = env.step(np.float32([1.0, -0.5]))
  np.testing.assert_allclose(observation[4:], [REACH_STEP, -0.5 * REACH_STEP], atol=1e-6)
  assert reward == pytest.approx(-np.mean((observation[4:] - target) ** 2), rel=1e-5)
  rewards = []
  for _ in range(6):  # move straight at the target: the regret vanishes within 4 more steps
    np.testing.assert_array_equal(observation[:4], context)  # one context per episode
    observation, reward, *_ = env.step(np.clip((target - observation[4:]) / REACH_STEP, -1, 1))
    rewards.append(reward)
  assert rewards[0] < -1e-3 and rewards[-1] == pytest.approx(0.0, abs=1e-6)
  # Unlike the bandit's, the next observation depends on the action.
  first, second = gym.make("tf_metarl/ContextualReach-v0"), gym.make("tf_metarl/ContextualReach-v0")
  first.reset(seed=5), second.reset(seed=5)
  assert not np.array_equal(first.step(np.ones(2))[0], second.step(-np.ones(2))[0])
