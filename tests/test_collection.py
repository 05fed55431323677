"""Trajectory bookkeeping on a hand-made environment, checked exactly."""
import numpy as np
import pytest
import tensorflow as tf

from tf_metarl import errors
from tf_metarl.collection import RolloutCollector
from tf_metarl.envs import describe_env, make_vector_env
from tf_metarl.trajectories import Trajectory, concat_time

SCRIPT = np.array([[0, 0, 0, 0, 1, 0],   # copy 0: truncated after 3 steps, then terminated by action 1
                   [1, 1, 0, 0, 0, 0]])  # copy 1: two one-step terminated episodes, then a truncated one


def scripted_act(counter):
  def act(observations):
    t = counter[0]
    counter[0] += 1
    return {"actions": SCRIPT[:, t], "log_probs": np.full(2, -0.5, np.float32),
            "policy_outputs": np.zeros((2, 2), np.float32)}
  return act


def collect_in_two_segments():
  env = make_vector_env("ScriptedEnv-v0", num_envs=2, seed=0)
  collector = RolloutCollector(env, seed=0)
  act = scripted_act([0])
  first, stats1 = collector.collect(act, 3)
  second, stats2 = collector.collect(act, 3)
  return concat_time([first, second]), stats1.returns + stats2.returns, stats1.lengths + stats2.lengths, collector


def test_bookkeeping_is_exact():
  traj, episode_returns, lengths, collector = collect_in_two_segments()
  np.testing.assert_array_equal(traj.observations[0], [[0, 0], [1, 0], [2, 0], [0, 1], [1, 1], [0, 2]])
  # At the truncation (copy 0, step 2) the next observation is the episode's last one, not the reset one.
  np.testing.assert_array_equal(traj.next_observations[0], [[1, 0], [2, 0], [3, 0], [1, 1], [2, 1], [1, 2]])
  np.testing.assert_array_equal(traj.rewards[0], [1, 2, 3, 11, 12, 21])
  np.testing.assert_array_equal(traj.terminated[0], [0, 0, 0, 0, 1, 0])
  np.testing.assert_array_equal(traj.truncated[0], [0, 0, 1, 0, 0, 0])
  np.testing.assert_array_equal(traj.observations[1], [[0, 0], [0, 1], [0, 2], [1, 2], [2, 2], [0, 3]])
  np.testing.assert_array_equal(traj.next_observations[1], [[1, 0], [1, 1], [1, 2], [2, 2], [3, 2], [1, 3]])
  np.testing.assert_array_equal(traj.rewards[1], [1, 11, 21, 22, 23, 31])
  np.testing.assert_array_equal(traj.terminated[1], [1, 1, 0, 0, 0, 0])
  np.testing.assert_array_equal(traj.truncated[1], [0, 0, 0, 0, 1, 0])
  np.testing.assert_array_equal(traj.discounts, 1 - traj.terminated)
  np.testing.assert_array_equal(traj.episode_ends, np.maximum(traj.terminated, traj.truncated))
  np.testing.assert_array_equal(traj.actions, SCRIPT)
  np.testing.assert_array_equal(traj.episode_steps, [[0, 1, 2, 0, 1, 0], [0, 0, 0, 1, 2, 0]])  # across segments too
  assert traj.actions.dtype == np.int32 and traj.log_probs.shape == (2, 6)
  assert sorted(zip(episode_returns, lengths)) == [(1, 1), (6, 3), (11, 1), (23, 2), (66, 3)]
  assert collector.total_steps == 12


def test_single_environment_is_collected_as_one_copy():
  import gymnasium as gym
  collector = RolloutCollector(gym.make("ScriptedEnv-v0"), seed=0)
  act = lambda obs: {"actions": np.zeros(1, np.int64), "log_probs": np.zeros(1, np.float32),
                     "policy_outputs": np.zeros((1, 2), np.float32)}
  traj, stats = collector.collect(act, 4)
  np.testing.assert_array_equal(traj.next_observations[0], [[1, 0], [2, 0], [3, 0], [1, 1]])
  np.testing.assert_array_equal(traj.truncated[0], [0, 0, 1, 0])
  assert stats.returns == [6.0]


def test_next_step_autoreset_is_refused():
  import gymnasium as gym
  env = gym.make_vec("ScriptedEnv-v0", num_envs=1, vectorization_mode="sync")
  with pytest.raises(errors.IncompatibleSpaceError, match="SAME_STEP"):
    RolloutCollector(env)


def test_trajectory_is_a_tf_nest_structure():
  traj, *_ = collect_in_two_segments()
  tensors = tf.nest.map_structure(tf.constant, traj)
  assert isinstance(tensors, Trajectory)
  assert len(tf.nest.flatten(tensors)) == len(Trajectory._fields)
  np.testing.assert_array_equal(tensors.episode_ends.numpy(), traj.episode_ends)


def test_continuous_actions_are_clipped_for_the_env_but_stored_raw():
  env = make_vector_env("Pendulum-v1", num_envs=1, seed=0)
  collector = RolloutCollector(env, seed=0)
  act = lambda obs: {"actions": np.array([[5.0]], np.float32), "log_probs": np.zeros(1, np.float32),
                     "policy_outputs": np.zeros((1, 2), np.float32)}
  traj, _ = collector.collect(act, 1)
  assert traj.actions[0, 0, 0] == 5.0
  np.testing.assert_array_equal(collector.env_actions(np.array([[5.0]])), [[2.0]])


def test_describe_env_and_unknown_ids():
  info = describe_env("Pendulum-v1")
  assert info.action_kind == "continuous" and info.action_low == (-2.0,) and info.observation_shape == (3,)
  assert describe_env("CartPole-v1").num_actions == 2
  with pytest.raises(errors.UnknownEnvironmentError, match="unknown environment id 'CartPol-v1'.*CartPole-v1"):
    describe_env("CartPol-v1")


if __name__ == "__main__":
  import sys
  sys.exit(pytest.main([__file__, "-q"]))


def test_mujoco_warnings_go_to_the_log_once_and_leave_no_file(tmp_path, monkeypatch, caplog):
  from tf_metarl.envs.gym_envs import make_env, make_vector_env
  monkeypatch.chdir(tmp_path)
  make_vector_env("HalfCheetah-v5", 2).close()
  make_env("HalfCheetah-v5").close()
  assert not (tmp_path / "MUJOCO_LOG.TXT").exists()  # MuJoCo's default handler writes it here


def test_an_asynchronous_vector_env_collects_the_same_steps_through_send_and_receive():
  """Worker-process copies (stepped by `send` / `receive`, as MetaGenRL overlaps them with its
  update) give the synchronous copies' trajectory and episodes exactly."""
  env = make_vector_env("ScriptedEnv-v0", num_envs=2, seed=0, asynchronous=True)
  try:
    collector = RolloutCollector(env, seed=0)
    act = scripted_act([0])
    steps = []
    for _ in range(6):
      collector.send(act(collector.observations))
      steps.append(collector.receive())
    with pytest.raises(RuntimeError, match="without send"):
      collector.receive()
  finally:
    env.close()
  expected, returns, lengths, _ = collect_in_two_segments()
  for name in Trajectory._fields:
    np.testing.assert_array_equal(np.stack([getattr(s, name) for s, _ in steps], axis=1), getattr(expected, name),
                                  err_msg=name)
  assert [r for _, stats in steps for r in stats.returns] == returns
  assert [n for _, stats in steps for n in stats.lengths] == lengths
