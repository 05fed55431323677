"""Trains a fresh stochastic agent (policy and state-value critic) with any on-policy objective.

Each iteration collects `rollout_length` steps from `num_envs` copies, then runs `epochs` passes
over `minibatches` splits of the copies (whole segments, so objectives that compute returns
inside see contiguous time). The objective's loss trains the policy, and the critic too when the
objective says it does (`trains_critic`); otherwise the critic regresses λ-returns on its own.
"""
from __future__ import annotations

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from tf_metarl import compilation, errors, returns
from tf_metarl.collection import RolloutCollector, evaluate
from tf_metarl.envs.gym_envs import EnvInfo, make_env, make_vector_env
from tf_metarl.networks import ValueCritic, make_policy
from tf_metarl.objectives.base import Objective
from tf_metarl.trajectories import Trajectory


@dataclasses.dataclass
class OnPolicyConfig:
  num_envs: int = 8
  rollout_length: int = 64
  epochs: int = 4
  minibatches: int = 4
  learning_rate: float = 2.5e-4
  anneal_learning_rate: bool = True
  max_grad_norm: float = 0.5
  hidden_sizes: tuple = (64, 64)
  activation: str = "tanh"
  layer_norm: bool = False
  critic_gamma: float = 0.99  # for the critic's own loss, used only when the objective does not train it
  critic_lambda: float = 0.95

  def validate(self):
    for name in ("num_envs", "rollout_length", "epochs", "minibatches"):
      if int(getattr(self, name)) < 1:
        raise errors.ConfigError(f"on_policy.{name} must be >= 1, got {getattr(self, name)}")
    if self.num_envs % self.minibatches:
      raise errors.ConfigError(f"on_policy.num_envs ({self.num_envs}) must be divisible by on_policy.minibatches "
                               f"({self.minibatches}): minibatches split whole environment copies")
    if not self.learning_rate > 0:
      raise errors.ConfigError(f"on_policy.learning_rate must be > 0, got {self.learning_rate}")


def on_policy_inputs(policy, critic, batch: Trajectory):
  """The named objective inputs for a batch, from the current policy and critic (differentiable)."""
  outputs = policy(batch.observations)
  return {
      "rewards": batch.rewards,
      "discounts": batch.discounts,
      "episode_ends": batch.episode_ends,
      "values": critic(batch.observations),
      "next_values": critic(batch.next_observations),
      "log_probs": policy.log_prob(outputs, batch.actions),
      "behaviour_log_probs": batch.log_probs,
      "entropies": policy.entropy(outputs),
      "observations": tf.reshape(batch.observations, tf.concat([tf.shape(batch.rewards), [-1]], 0)),
  }


class OnPolicyLearner:
  """See the module docstring. `total_steps` sets the learning-rate annealing horizon."""

  def __init__(self, env_info: EnvInfo, objective: Objective, config: OnPolicyConfig, seed: int, total_steps: int):
    config.validate()
    self.env_info, self.objective, self.config, self.seed = env_info, objective, config, seed
    self.total_steps = total_steps
    keras.utils.set_random_seed(seed)
    obs_dim = int(np.prod(env_info.observation_shape))
    self.policy = make_policy(env_info, "stochastic", config.hidden_sizes, config.activation, config.layer_norm)
    self.critic = ValueCritic(obs_dim, config.hidden_sizes, config.activation, config.layer_norm, name="critic")
    self.variables = self.policy.trainable_variables + self.critic.trainable_variables
    self.optimizer = keras.optimizers.Adam(config.learning_rate, epsilon=1e-5)
    self.optimizer.build(self.variables)
    self.rng = tf.random.Generator.from_seed(seed)
    self.env_steps = tf.Variable(0, dtype=tf.int64, name="env_steps")
    self.env = make_vector_env(env_info.env_id, config.num_envs, seed)
    self.eval_env = make_env(env_info.env_id)
    self.collector = RolloutCollector(self.env, seed)
    self._evaluations = 0

  def checkpoint_items(self):
    return dict(policy=self.policy, critic=self.critic, optimizer=self.optimizer, rng=self.rng,
                env_steps=self.env_steps)

  def restore_extra(self, checkpoint_path):
    # Environments are not checkpointed: restart their episodes with a seed that differs per resume.
    self.collector = RolloutCollector(self.env, self.seed + int(self.env_steps.numpy()))

  @tf.function
  def _act(self, observations):
    outputs = self.policy(observations)
    actions = self.policy.sample(outputs, seed=tf.cast(self.rng.make_seeds(1)[:, 0], tf.int32))
    return {"actions": actions, "log_probs": self.policy.log_prob(outputs, actions), "policy_outputs": outputs}

  @tf.function
  def _greedy(self, observations):
    return self.policy.mode(self.policy(observations))

  def act(self, observations):
    return {k: v.numpy() for k, v in self._act(tf.constant(observations)).items()}

  @tf.function(jit_compile=compilation.JIT_COMPILE)
  def _train_step(self, batch: Trajectory):
    with tf.GradientTape() as tape:
      inputs = on_policy_inputs(self.policy, self.critic, batch)
      out = self.objective(inputs)
      loss = out["loss"]
      metrics = {k: v for k, v in out.items() if v.shape.rank == 0}  # scalars only (not per_step, targets)
      if not self.objective.trains_critic:
        targets = returns.lambda_returns(inputs["rewards"], inputs["discounts"], inputs["episode_ends"],
                                         tf.stop_gradient(inputs["values"]), tf.stop_gradient(inputs["next_values"]),
                                         self.config.critic_gamma, self.config.critic_lambda)
        critic_loss = 0.5 * tf.reduce_mean(tf.square(tf.stop_gradient(targets) - inputs["values"]))
        metrics["critic_loss"] = critic_loss
        loss = loss + critic_loss
    grads = tape.gradient(loss, self.variables, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    grads, norm = tf.clip_by_global_norm(grads, self.config.max_grad_norm)
    self.optimizer.apply_gradients(zip(grads, self.variables))
    metrics["grad_norm"] = norm
    return metrics

  def iteration(self):
    cfg = self.config
    if cfg.anneal_learning_rate:
      frac = 1.0 - float(self.env_steps.numpy()) / max(self.total_steps, 1)
      self.optimizer.learning_rate.assign(cfg.learning_rate * max(frac, 0.0))
    trajectory, stats = self.collector.collect(self.act, cfg.rollout_length)
    self.env_steps.assign_add(cfg.num_envs * cfg.rollout_length)
    size = cfg.num_envs // cfg.minibatches
    sums = {}
    for _ in range(cfg.epochs):
      order = np.random.default_rng(int(self.rng.uniform_full_int([], tf.int64).numpy()) % (2**32)).permutation(cfg.num_envs)
      for k in range(cfg.minibatches):
        idx = order[k * size:(k + 1) * size]
        metrics = self._train_step(tf.nest.map_structure(lambda x: tf.constant(x[idx]), trajectory))
        for name, value in metrics.items():
          sums[name] = sums.get(name, 0.0) + float(value)
    updates = cfg.epochs * cfg.minibatches
    metrics = {k: v / updates for k, v in sums.items()}
    metrics["charts/learning_rate"] = float(self.optimizer.learning_rate.numpy())
    return metrics, stats

  def evaluate(self, episodes: int):
    self._evaluations += 1
    act = lambda obs: self.collector.env_actions(self._greedy(tf.constant(obs)).numpy())
    return evaluate(self.eval_env, act, episodes, seed=10_000 * (self.seed + 1) + 100 * self._evaluations)
