"""Training a fresh agent with one objective: `--config=configs/train_agent.py[:preset]`.

Presets set the learner to what suits the objective: `ppo` (default), `a2c`, `reinforce` for the
on-policy learner, `td3` for the off-policy one. `--objective` (a name or a SavedModel path) then
picks the loss; an exported objective uses the learner section its metadata names.
"""
import ml_collections

PRESETS = ("ppo", "a2c", "reinforce", "td3")


def get_config(preset: str = "ppo") -> ml_collections.ConfigDict:
  if preset not in PRESETS:
    raise ValueError(f"unknown preset {preset!r}; expected one of {', '.join(PRESETS)}")
  c = ml_collections.ConfigDict()
  c.env = "Pendulum-v1" if preset == "td3" else "CartPole-v1"
  c.objective = preset
  c.seed = 0
  c.steps = 100_000 if preset != "td3" else 30_000
  c.eval_every = 10_000 if preset != "td3" else 5_000
  c.eval_episodes = 5
  c.checkpoint_every = 25_000 if preset != "td3" else 5_000
  c.log_every_seconds = 10.0

  # Hyperparameters of each built-in objective (keyword arguments of its class).
  c.objective_settings = ml_collections.ConfigDict(dict(
      ppo=dict(gamma=0.99, lam=0.95, clip_epsilon=0.2, value_coef=0.5, entropy_coef=0.01),
      a2c=dict(gamma=0.99, lam=1.0, value_coef=0.5, entropy_coef=0.01),
      reinforce=dict(gamma=0.99, lam=0.95, value_coef=0.5),
      td3=dict(),
  ))

  c.on_policy = ml_collections.ConfigDict(dict(
      num_envs=8, rollout_length=64, epochs=4, minibatches=4, learning_rate=2.5e-4, anneal_learning_rate=True,
      max_grad_norm=0.5, hidden_sizes=(64, 64), activation="tanh", layer_norm=False,
      critic_gamma=0.99, critic_lambda=0.95))
  if preset == "a2c":
    c.on_policy.update(dict(rollout_length=16, epochs=1, minibatches=1, learning_rate=7e-4))
  if preset == "reinforce":
    c.on_policy.update(dict(rollout_length=32, epochs=1, minibatches=1, learning_rate=3e-3))

  c.off_policy = ml_collections.ConfigDict(dict(
      num_envs=1, replay_capacity=100_000, warmup_steps=1_000, batch_size=256, sequence_length=1,
      updates_per_step=1.0, actor_learning_rate=1e-3, critic_learning_rate=1e-3, gamma=0.99, tau=0.005,
      policy_delay=2, exploration_noise=0.1, target_noise=0.2, target_noise_clip=0.5,
      hidden_sizes=(256, 256), activation="relu", layer_norm=False))
  return c
