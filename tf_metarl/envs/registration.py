"""Registers tf_metarl's environments with gymnasium (idempotent; done on `import tf_metarl.envs`)."""
import gymnasium as gym

ENVIRONMENTS = {
    "tf_metarl/Catch-v0": "tf_metarl.envs.catch:CatchEnv",
    "tf_metarl/RandomWalk-v0": "tf_metarl.envs.random_walk:RandomWalkEnv",
}


def register_all():
  for env_id, entry_point in ENVIRONMENTS.items():
    if env_id not in gym.registry:
      gym.register(env_id, entry_point=entry_point)
