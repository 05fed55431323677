"""The randomised MuJoCo task families of EPG (issue 12): seeded draws, tasks kept through
autoreset, the parameters really changed in the model, one-line errors."""
import gymnasium as gym
import numpy as np
import pytest

import tf_metarl.envs  # noqa: F401  (registers the families)
from tf_metarl import errors
from tf_metarl.envs.gym_envs import make_vector_env


def test_a_seeded_reset_draws_the_task_from_its_seed_alone():
  env = gym.make("tf_metarl/RandomHopper-v5")
  _, first = env.reset(seed=3)
  model = env.unwrapped.model
  gravity, masses = model.opt.gravity[2], model.body_mass[1:].copy()
  _, other = env.reset(seed=4)
  assert other["task"] != first["task"]
  _, again = env.reset(seed=3)
  assert again["task"] == first["task"]
  assert model.opt.gravity[2] == pytest.approx(-9.81 * first["task"]["gravity"][0])
  np.testing.assert_allclose(model.body_mass[1:], masses)
  assert gravity == model.opt.gravity[2]
  # Friction and masses are factors on Hopper-v5's own values, inside the family's ranges.
  nominal = gym.make("Hopper-v5").unwrapped.model
  np.testing.assert_allclose(model.body_mass[1:] / nominal.body_mass[1:], first["task"]["mass"])
  np.testing.assert_allclose(model.geom_friction[:, 0] / nominal.geom_friction[:, 0], first["task"]["friction"][0])
  assert all(0.5 <= f <= 1.5 for f in first["task"]["mass"])


def test_a_vector_env_keeps_each_copys_task_through_autoreset():
  """Copies draw different tasks at the seeded reset and keep them after their episodes end."""
  env = make_vector_env("tf_metarl/RandomHopper-v5", 2, seed=0)
  env.reset(seed=0)
  gravities = [e.unwrapped.model.opt.gravity[2] for e in env.envs]
  assert gravities[0] != gravities[1]
  ended = np.zeros(2, bool)
  for _ in range(300):  # random actions topple the hopper well within 300 steps
    _, _, terminated, truncated, _ = env.step(env.action_space.sample())
    ended |= terminated | truncated
  assert ended.all()
  assert [e.unwrapped.model.opt.gravity[2] for e in env.envs] == gravities


def test_reacher_link_lengths_move_the_fingertip():
  env = gym.make("tf_metarl/RandomReacher-v5", randomize="length=2:2")
  env.reset(seed=0)
  unwrapped = env.unwrapped
  unwrapped.data.qpos[:2] = 0.0  # both joints straight: the fingertip sits at the arm's full reach
  import mujoco
  mujoco.mj_forward(unwrapped.model, unwrapped.data)
  assert unwrapped.get_body_com("fingertip")[0] == pytest.approx(2 * 0.21, abs=1e-6)


def test_forward_backward_hopper_negates_the_forward_reward():
  env = gym.make("tf_metarl/ForwardBackwardHopper-v5")
  directions = {}
  for seed in range(8):
    _, info = env.reset(seed=seed)
    directions.setdefault(info["task"]["direction"], seed)
  assert set(directions) == {-1.0, 1.0}
  rewards = {}
  for direction, seed in directions.items():
    env.reset(seed=seed)
    _, _, _, _, info = env.step(np.zeros(3))
    rewards[direction] = info["reward_forward"]
    assert np.sign(info["reward_forward"]) == np.sign(direction * info["x_velocity"])


def test_a_parameter_the_family_lacks_is_a_one_line_error():
  with pytest.raises(errors.ConfigError, match="cannot randomise mass; its parameters are length"):
    gym.make("tf_metarl/RandomReacher-v5", randomize="mass=0.5:1.5")
  with pytest.raises(errors.ConfigError, match="0 < low <= high"):
    gym.make("tf_metarl/RandomHopper-v5", randomize="gravity=0:1")


def test_the_learners_build_a_family_with_the_ranges_given():
  """train_agent's config.env_randomize reaches a MuJoCo family through the learners' env_kwargs
  (a meta-test on held-out draws)."""
  from tf_metarl.envs.gym_envs import describe_env
  from tf_metarl.learners.on_policy import OnPolicyConfig, OnPolicyLearner
  from tf_metarl.objectives import make_objective
  learner = OnPolicyLearner(describe_env("tf_metarl/RandomReacher-v5"), make_objective("ppo"),
                            OnPolicyConfig(num_envs=2, minibatches=1, hidden_sizes=(8,)), 0, 1000,
                            env_kwargs={"randomize": "length=1.5:1.5"})
  for env in list(learner.env.envs) + [learner.eval_env]:
    env.reset(seed=0)
    assert env.unwrapped.model.body_pos[2, 0] == pytest.approx(0.15)  # body1 sits at the end of link 0
