"""Registers tf_metarl's environments with gymnasium (idempotent; done on `import tf_metarl.envs`)."""
import gymnasium as gym

from tf_metarl.envs import bandit, classic_control, mujoco_families

ENVIRONMENTS = {
    "tf_metarl/Catch-v0": "tf_metarl.envs.catch:CatchEnv",
    "tf_metarl/RandomWalk-v0": "tf_metarl.envs.random_walk:RandomWalkEnv",
}
# id -> (entry point, time limit, keyword arguments): environments whose episodes end by truncation only.
TIME_LIMITED = {
    "tf_metarl/ContextualBandit-v0": ("tf_metarl.envs.bandit:ContextualBanditEnv", bandit.EPISODE_STEPS, {}),
    "tf_metarl/ContextualBanditAtBound-v0": ("tf_metarl.envs.bandit:ContextualBanditEnv", bandit.EPISODE_STEPS,
                                             {"best_action_scale": 10.0}),
    "tf_metarl/ContextualBandit1D-v0": ("tf_metarl.envs.bandit:ContextualBanditEnv", bandit.EPISODE_STEPS,
                                        {"action_dim": 1}),
    "tf_metarl/ContextualBandit6D-v0": ("tf_metarl.envs.bandit:ContextualBanditEnv", bandit.EPISODE_STEPS,
                                        {"action_dim": 6}),
}
# Gymnasium twins of the TensorFlow-native classic-control environments, with the originals' time limits.
NATIVE_TWINS = {env_id: env_class.max_episode_steps for env_id, env_class in classic_control.ENVIRONMENTS.items()}


def register_all():
  for env_id, entry_point in ENVIRONMENTS.items():
    if env_id not in gym.registry:
      gym.register(env_id, entry_point=entry_point)
  for env_id, (entry_point, limit, kwargs) in TIME_LIMITED.items():
    if env_id not in gym.registry:
      gym.register(env_id, entry_point=entry_point, max_episode_steps=limit, kwargs=kwargs)
  for env_id, limit in NATIVE_TWINS.items():
    if env_id not in gym.registry:
      gym.register(env_id, entry_point="tf_metarl.envs.classic_control:NativeGymEnv", max_episode_steps=limit,
                   kwargs={"env_id": env_id})
  for env_id, (entry_point, limit, _) in mujoco_families.FAMILIES.items():
    if env_id not in gym.registry:
      gym.register(env_id, entry_point=entry_point, max_episode_steps=limit)
