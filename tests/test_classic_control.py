"""TensorFlow-native classic control against gymnasium's own implementations, step by step."""
import gymnasium as gym
import numpy as np
import pytest
import tensorflow as tf

from tf_metarl import errors
from tf_metarl.envs import batched, classic_control as cc, describe_env

PAIRS = [("tf_metarl/CartPole-v1", "CartPole-v1"), ("tf_metarl/Acrobot-v1", "Acrobot-v1"),
         ("tf_metarl/Pendulum-v1", "Pendulum-v1"), ("tf_metarl/MountainCar-v0", "MountainCar-v0"),
         ("tf_metarl/MountainCarContinuous-v0", "MountainCarContinuous-v0")]


def gym_observation(env):
  inner = env.unwrapped
  if hasattr(inner, "_get_ob"):
    return inner._get_ob()
  if hasattr(inner, "_get_obs"):
    return inner._get_obs()
  return np.array(inner.state, np.float32)


def behaviour(gym_id, rng):
  """Random actions mixed with a controller, so episodes end by termination and by truncation."""
  def act(obs, episode):
    explore = rng.random() < 0.2 or episode % 3 == 0
    if gym_id == "CartPole-v1":
      return int(rng.integers(2)) if explore else int(obs[2] + 0.5 * obs[3] > 0)
    if gym_id == "MountainCar-v0":
      return int(rng.integers(3)) if explore else (2 if obs[1] >= 0 else 0)
    if gym_id == "MountainCarContinuous-v0":  # beyond [−1, 1] too: clipped for the force, not for the cost
      return float(rng.uniform(-1.5, 1.5)) if explore else (1.0 if obs[1] >= 0 else -1.0)
    if gym_id == "Pendulum-v1":
      return float(rng.uniform(-3, 3))
    return int(rng.integers(3))
  return act


def run_side_by_side(native, gym_env, act, steps, seed=0, resync=False, to_native_action=None):
  """Steps `native` (one copy, autoreset) and gymnasium's environment with the same actions from the
  same initial states. resync: copy gymnasium's state into the native one before every step (a
  one-step check along gymnasium's trajectory). Returns (largest |Δ| of observations and rewards,
  flag mismatches, terminations, truncations)."""
  gym_env.reset(seed=seed)
  state = native.reset(tf.constant([seed, 1]), 1)

  def sync_gym(state):
    gym_env.unwrapped.state = np.array(state.physics[0].numpy(), np.float64)

  sync_gym(state)
  obs = gym_observation(gym_env)
  np.testing.assert_allclose(native.observe(state)[0].numpy(), obs, atol=1e-6)
  step = tf.function(native.step_autoreset)
  largest, mismatches, terminations, truncations = 0.0, 0, 0, 0
  for t in range(steps):
    action = act(obs, terminations + truncations)
    if resync:
      state = state._replace(physics=tf.constant([gym_env.unwrapped.state], native.dtype))
    gym_obs, gym_reward, gym_terminated, gym_truncated, _ = gym_env.step(
        action if native.discrete or to_native_action else np.array([action], np.float32))
    native_action = (to_native_action(action) if to_native_action else
                     tf.constant([action], tf.int32) if native.discrete else tf.constant([[action]], tf.float32))
    state, next_obs, reward, terminated, info = step(state, native_action, tf.constant([seed, t + 2]))
    largest = max(largest, float(np.abs(gym_obs - next_obs[0].numpy()).max()), abs(gym_reward - float(reward[0])))
    mismatches += int(bool(terminated[0]) != gym_terminated) + int(bool(info["truncated"][0]) != gym_truncated)
    obs = gym_obs
    if gym_terminated or gym_truncated:
      terminations, truncations = terminations + gym_terminated, truncations + gym_truncated
      gym_env.reset()
      sync_gym(state)
      obs = gym_observation(gym_env)
  return largest, mismatches, terminations, truncations


# Episodes that end by termination / by truncation within 2,000 steps of `behaviour`.
ENDINGS = {"CartPole-v1": (True, True), "Acrobot-v1": (False, True), "Pendulum-v1": (False, True),
           "MountainCar-v0": (True, True), "MountainCarContinuous-v0": (True, True)}


@pytest.mark.slow
@pytest.mark.parametrize("env_id, gym_id", PAIRS)
def test_float64_trajectories_equal_gymnasium_over_thousands_of_steps(env_id, gym_id):
  native = cc.make_native(env_id, dtype=tf.float64)
  largest, mismatches, terminations, truncations = run_side_by_side(
      native, gym.make(gym_id), behaviour(gym_id, np.random.default_rng(0)), 2000)
  # Pendulum-v1 computes the torque term in float32 (the action's dtype), the rest in float64.
  assert largest < (2e-3 if gym_id == "Pendulum-v1" else 1e-5), largest
  assert mismatches == 0
  assert ((terminations > 0), (truncations > 0)) == ENDINGS[gym_id], (terminations, truncations)


@pytest.mark.parametrize("env_id, gym_id", PAIRS)
def test_float32_steps_equal_gymnasium_along_its_trajectory(env_id, gym_id):
  native = cc.make_native(env_id)  # float32, the default
  largest, mismatches, _, _ = run_side_by_side(
      native, gym.make(gym_id), behaviour(gym_id, np.random.default_rng(1)), 600, seed=1, resync=True)
  assert largest < 5e-5 and mismatches == 0, (largest, mismatches)


def test_continuous_cartpole_is_cartpole_with_a_scaled_force():
  native = cc.make_native("tf_metarl/ContinuousCartPole-v1", dtype=tf.float64)
  rng = np.random.default_rng(2)
  largest, mismatches, terminations, truncations = run_side_by_side(
      native, gym.make("CartPole-v1"), behaviour("CartPole-v1", rng), 1500,
      to_native_action=lambda a: tf.constant([[3.0 if a == 1 else -1.0]]))  # +3 clips to +1
  assert largest < 1e-5 and mismatches == 0 and terminations and truncations
  # Half the action is half the force: the discrete CartPole with a 5 N force.
  discrete = cc.CartPole(dtype=tf.float64)
  state = discrete.reset(tf.constant([0, 0]), 1)
  half = state._replace(parameters=dict(state.parameters, force=tf.constant([5.0], tf.float64)))
  expected = discrete.step(half, tf.constant([1]))[0].physics
  np.testing.assert_allclose(native.step(state, tf.constant([[0.5]]))[0].physics, expected, atol=1e-12)


def test_initial_states_follow_gymnasiums_distributions():
  ranges = {"CartPole-v1": [(-0.05, 0.05)] * 4, "Acrobot-v1": [(-0.1, 0.1)] * 4,
            "Pendulum-v1": [(-np.pi, np.pi), (-1.0, 1.0)], "MountainCar-v0": [(-0.6, -0.4), (0.0, 0.0)]}
  for gym_id, bounds in ranges.items():
    physics = cc.make_native("tf_metarl/" + gym_id).reset(tf.constant([3, 4]), 4096).physics.numpy()
    for column, (low, high) in zip(physics.T, bounds):
      assert low <= column.min() and column.max() <= high
      assert column.min() - low <= 0.01 * (high - low) + 1e-9 and high - column.max() <= 0.01 * (high - low) + 1e-9
      assert abs(column.mean() - (low + high) / 2) < 0.03 * (high - low) + 1e-9


def test_autoreset_per_copy_and_time_limit_in_an_in_graph_rollout():
  env = batched.EpisodeCounting(cc.MountainCar(max_episode_steps=7))
  push_right = lambda obs, seed: tf.fill([3], 2)
  state = env.reset(tf.constant([0, 1]), 3)
  state = state._replace(env=state.env._replace(physics=tf.constant([[0.45, 0.06], [-0.5, 0.0], [-0.5, 0.0]])))
  _, out = tf.function(lambda s: batched.rollout(env, s, push_right, tf.constant([5, 6]), 20))(state)
  terminated, truncated = out["terminated"].numpy().T, out["truncated"].numpy().T
  assert terminated[0, 0] == 1 and terminated[1:, 0].sum() == 0  # reaches the goal at once
  np.testing.assert_array_equal(np.flatnonzero(truncated[1]), [6, 13])  # 7-step episodes
  np.testing.assert_array_equal(out["episode_lengths"].numpy().T[1, [6, 13]], [7, 7])
  np.testing.assert_array_equal(out["episode_steps"].numpy().T[1, :9], [0, 1, 2, 3, 4, 5, 6, 0, 1])
  # After an end the copy continues from a fresh start; the recorded next observation is the last one.
  assert -0.6 <= out["observations"].numpy()[1, 0, 0] <= -0.4
  batch = batched.batch_major(out)
  np.testing.assert_array_equal(batch["episode_ends"].numpy(), np.maximum(terminated, truncated))
  np.testing.assert_array_equal(batch["discounts"].numpy(), 1 - terminated)


def test_randomised_parameters_are_drawn_per_copy_reported_and_used():
  ranges = {"mass": (0.5, 2.0), "length": (0.5, 1.5), "gravity": (8.0, 12.0)}
  env = cc.Pendulum(randomize=ranges, dtype=tf.float64)
  state = env.reset(tf.constant([0, 9]), 256)
  for name, (low, high) in ranges.items():
    values = state.parameters[name].numpy()
    assert low <= values.min() and values.max() <= high and values.std() > 0.2 * (high - low)
  assert np.all(state.parameters["max_torque"].numpy() == 2.0)
  next_state, _, _, _, info = env.step_autoreset(state, tf.zeros([256, 1]), tf.constant([1, 1]))
  np.testing.assert_allclose(info["parameters/mass"].numpy(), state.parameters["mass"].numpy(), rtol=1e-6)
  assert set(info) == {"truncated", "parameters/gravity", "parameters/length", "parameters/mass"}
  np.testing.assert_array_equal(next_state.parameters["mass"], state.parameters["mass"])  # kept within an episode
  # A reset draws a new task.
  redrawn = env.reset(tf.constant([0, 10]), 256).parameters["mass"].numpy()
  assert np.mean(np.abs(redrawn - state.parameters["mass"].numpy())) > 0.2


@pytest.mark.parametrize("keep_tasks", [False, True])
def test_autoreset_draws_a_new_task_unless_copies_keep_theirs(keep_tasks):
  env = cc.Pendulum(randomize={"mass": (0.5, 2.0)}, max_episode_steps=2, keep_tasks=keep_tasks)
  state = env.reset(tf.constant([0, 9]), 64)
  for step in range(2):  # the second step ends every episode (time limit)
    state, _, _, _, info = env.step_autoreset(state, tf.zeros([64, 1]), tf.constant([1, step]))
  assert np.all(info["truncated"].numpy())
  changed = np.abs(state.parameters["mass"].numpy() - info["parameters/mass"].numpy())
  assert (changed.max() == 0) if keep_tasks else (changed.mean() > 0.2)
  assert np.all(state.steps.numpy() == 0)  # a new episode either way


def test_a_reset_period_repeats_tasks_and_initial_states_every_period_copies():
  env = cc.Pendulum(randomize={"mass": (0.5, 2.0)}, reset_period=3)
  state = env.reset(tf.constant([0, 9]), 12)
  mass, physics = state.parameters["mass"].numpy(), state.physics.numpy()
  np.testing.assert_array_equal(mass.reshape(4, 3), np.tile(mass[:3], (4, 1)))
  np.testing.assert_array_equal(physics.reshape(4, 3, -1), np.tile(physics[:3], (4, 1, 1)))
  assert len(set(mass[:3].tolist())) == 3


GYM_PARAMETER_NAMES = {
    "CartPole-v1": {"gravity": "gravity", "cart_mass": "masscart", "pole_mass": "masspole",
                    "half_length": "length", "force": "force_mag"},
    "Acrobot-v1": {"link_mass_1": "LINK_MASS_1", "link_mass_2": "LINK_MASS_2", "link_length_1": "LINK_LENGTH_1",
                   "link_com_1": "LINK_COM_POS_1", "link_com_2": "LINK_COM_POS_2", "link_moi": "LINK_MOI"},
    "Pendulum-v1": {"mass": "m", "length": "l", "gravity": "g", "max_torque": "max_torque"},
    "MountainCar-v0": {"force": "force", "gravity": "gravity"},
    "MountainCarContinuous-v0": {"power": "power"},
}


@pytest.mark.parametrize("env_id, gym_id", PAIRS)
def test_a_randomised_task_equals_gymnasium_with_those_constants(env_id, gym_id):
  names = GYM_PARAMETER_NAMES[gym_id]
  randomize = {name: (0.8 * cc.ENVIRONMENTS[env_id].PARAMETERS[name].default,
                      1.25 * cc.ENVIRONMENTS[env_id].PARAMETERS[name].default) for name in names}
  native = cc.make_native(env_id, randomize=randomize, dtype=tf.float64, max_episode_steps=10_000)
  state = native.reset(tf.constant([4, 2]), 1)
  gym_env = gym.make(gym_id, max_episode_steps=10_000)
  for name, attribute in names.items():
    setattr(gym_env.unwrapped, attribute, float(state.parameters[name][0]))
  inner = gym_env.unwrapped
  if gym_id == "CartPole-v1":  # derived constants gymnasium computes once
    inner.total_mass = inner.masspole + inner.masscart
    inner.polemass_length = inner.masspole * inner.length
  gym_env.reset(seed=4)
  inner.state = np.array(state.physics[0].numpy())
  step = tf.function(native.step)
  rng = np.random.default_rng(4)
  for t in range(100):
    action = behaviour(gym_id, rng)(gym_observation(gym_env), 1)
    gym_obs, gym_reward, gym_terminated, _, _ = gym_env.step(
        action if native.discrete else np.array([action], np.float32))
    state, reward, terminated, _ = step(
        state, tf.constant([action]) if native.discrete else tf.constant([[action]], tf.float32))
    np.testing.assert_allclose(native.observe(state)[0].numpy(), gym_obs, atol=2e-3 if gym_id == "Pendulum-v1" else 1e-5)
    assert abs(float(reward[0]) - gym_reward) < 1e-3 and bool(terminated[0]) == gym_terminated
    if gym_terminated:
      break


@pytest.mark.parametrize("kwargs, message", [
    (dict(randomize={"mass": (2.0, 1.0)}), "empty"),
    (dict(randomize={"mass": (-1.0, 1.0)}), "must stay above 0"),
    (dict(randomize={"mass": (1.0, float("inf"))}), "not finite"),
    (dict(randomize={"weight": (1.0, 2.0)}), "has no parameter 'weight'"),
    (dict(randomize={"mass": 1.0}), "must be (low, high)"),
    (dict(max_episode_steps=0), "max_episode_steps must be positive"),
])
def test_bad_parameter_ranges_are_one_line_errors(kwargs, message):
  with pytest.raises(errors.ConfigError, match=None) as raised:
    cc.Pendulum(**kwargs)
  assert message in str(raised.value) and "\n" not in str(raised.value)


def test_unknown_native_id_is_a_one_line_error():
  with pytest.raises(errors.UnknownEnvironmentError, match="not a TensorFlow-native environment"):
    cc.make_native("tf_metarl/Hopper-v5")


@pytest.mark.parametrize("env_id", sorted(cc.ENVIRONMENTS))
def test_gymnasium_twins_are_registered_with_the_originals_time_limits(env_id):
  from gymnasium.utils.env_checker import check_env
  info = describe_env(env_id)
  native = cc.ENVIRONMENTS[env_id]
  assert info.max_episode_steps == native.max_episode_steps and info.observation_shape == (native.observation_size,)
  env = gym.make(env_id)
  check_env(env.unwrapped, skip_render_check=True)
  obs, _ = env.reset(seed=0)
  assert obs.dtype == np.float32 and env.observation_space.contains(obs)


def test_twin_reports_its_randomised_task_and_truncates_at_the_limit():
  env = gym.make("tf_metarl/Pendulum-v1", randomize={"length": (0.5, 1.5)})
  _, info = env.reset(seed=3)
  assert 0.5 <= info["length"] <= 1.5
  for t in range(200):
    _, _, terminated, truncated, step_info = env.step(np.zeros(1, np.float32))
    assert step_info == info and not terminated
  assert truncated and t == 199


def test_native_discrete_ids_make_in_graph_tasks_whose_greedy_evaluation_counts_truncations():
  from tf_metarl.tasks import BatchedTask, make_task
  task = make_task("tf_metarl/CartPole-v1", 4, seed=0)
  assert isinstance(task, BatchedTask) and task.num_actions == 2 and task.observation_size == 4
  balance = lambda params, obs: tf.cast(obs[:, 2] + 0.5 * obs[:, 3] > 0, tf.int32)
  assert task.evaluate(balance, [], episodes=3, seed=0) == [500.0, 500.0, 500.0]
  with pytest.raises(errors.IncompatibleSpaceError, match="continuous actions"):
    make_task("tf_metarl/Pendulum-v1", 4, seed=0)
