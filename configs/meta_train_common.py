"""Shared fields of the online meta-gradient configs (frodo_catch, frodo_random_walk, mgrl_catch)."""
import ml_collections


def base_config(env: str, method: str) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.steps = 3_000_000
  c.eval_every = 100_000
  c.eval_episodes = 256
  c.checkpoint_every = 500_000
  c.log_every_seconds = 10.0
  c.learner = ml_collections.ConfigDict(dict(
      env=env, rows=11, columns=6, method=method, num_envs=16, trajectory_length=16, hidden_sizes=(64,),
      target_units=32, target_observation_scale=0.1,
      meta_optimizer="adam", meta_learning_rate=1e-3, initial_gamma=0.9, initial_lambda=0.9,
      reuse_outer_batch=True))
  c.frodo = ml_collections.ConfigDict(dict(
      inner_steps=3, inner_optimizer="rmsprop", inner_learning_rate=3e-3, value_coef=0.5, entropy_coef=0.01,
      gamma=0.99, n_step=5, extension=False, extension_coef=0.1,
      outer_value_coef=ml_collections.config_dict.placeholder(float),
      outer_entropy_coef=ml_collections.config_dict.placeholder(float)))
  return c
