"""Registers tf_metarl's environments with gymnasium (idempotent; done on `import tf_metarl.envs`)."""
import gymnasium as gym

from tf_metarl.envs import bandit, classic_control, mujoco_families

ENVIRONMENTS = {
    "tf_metarl/Catch-v0": "tf_metarl.envs.catch:CatchEnv",
    "tf_metarl/RandomWalk-v0": "tf_metarl.envs.random_walk:RandomWalkEnv",
}
# The contextual bandits and their variants (`envs/bandit.py`), id -> (class, keyword arguments); their
# episodes last bandit.EPISODE_STEPS steps.
BANDITS = {
    "tf_metarl/ContextualBandit-v0": ("ContextualBanditEnv", {}),
    "tf_metarl/ContextualBanditAtBound-v0": ("ContextualBanditEnv", {"best_action_scale": 10.0}),
    "tf_metarl/ContextualBandit1D-v0": ("ContextualBanditEnv", {"action_dim": 1}),
    "tf_metarl/ContextualBandit6D-v0": ("ContextualBanditEnv", {"action_dim": 6}),
    "tf_metarl/ContextualBanditDelayed-v0": ("ContextualBanditEnv", {"delayed_reward": True}),
    "tf_metarl/ContextualReach-v0": ("ContextualReachEnv", {}),
}
# Gymnasium twins of the TensorFlow-native classic-control environments, with the originals' time limits.
NATIVE_TWINS = {env_id: env_class.max_episode_steps for env_id, env_class in classic_control.ENVIRONMENTS.items()}


def register_all():
  for env_id, entry_point in ENVIRONMENTS.items():
    if env_id not in gym.registry:
      gym.register(env_id, entry_point=entry_point)
  for env_id, (class_name, kwargs) in BANDITS.items():
    if env_id not in gym.registry:
      gym.register(env_id, entry_point=f"tf_metarl.envs.bandit:{class_name}",
                   max_episode_steps=bandit.EPISODE_STEPS, kwargs=kwargs)
  for env_id, limit in NATIVE_TWINS.items():
    if env_id not in gym.registry:
      gym.register(env_id, entry_point="tf_metarl.envs.classic_control:NativeGymEnv", max_episode_steps=limit,
                   kwargs={"env_id": env_id})
  for env_id, (entry_point, limit, _) in mujoco_families.FAMILIES.items():
    if env_id not in gym.registry:
      gym.register(env_id, entry_point=entry_point, max_episode_steps=limit)
