"""Trains a fresh deterministic agent with twin-Q critics (TD3) and any off-policy actor objective.

The critic is always trained with the TD3 loss (clipped double-Q targets with target-policy
smoothing, Fujimoto et al. 2018). The actor is trained every `policy_delay` critic updates by the
objective, which sees `[B, T]` sequences sampled from replay with the current policy's actions
and their Q-values: `TD3ActorObjective` gives TD3; a learned objective (MetaGenRL) plugs in the same.
"""
from __future__ import annotations

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from tf_metarl import compilation, errors
from tf_metarl.agents.optimizers import Adam
from tf_metarl.agents.td3 import TD3, TD3Settings
from tf_metarl.collection import RolloutCollector, evaluate
from tf_metarl.envs.gym_envs import EnvInfo, make_env, make_vector_env
from tf_metarl.learners.loop import Trainable, mean_metrics
from tf_metarl.learners.update_guard import UpdateGuard
from tf_metarl.learners.replay import SequenceReplay
from tf_metarl.networks import DeterministicPolicy, TwinQCritic
from tf_metarl.objectives.base import Objective
from tf_metarl.state_variables import StateVariables


@dataclasses.dataclass
class OffPolicyConfig:
  num_envs: int = 1
  replay_capacity: int = 100_000   # steps per copy
  warmup_steps: int = 1_000        # uniformly random actions before learning starts (total over copies)
  batch_size: int = 256
  sequence_length: int = 1         # T of the [B, T] sequences the objective sees
  updates_per_step: float = 1.0    # gradient updates per environment step
  actor_learning_rate: float = 1e-3   # what train_agent has always run (the TD3 paper's value)
  critic_learning_rate: float = 1e-3
  gamma: float = 0.99
  tau: float = 0.005
  policy_delay: int = 2
  exploration_noise: float = 0.1   # std, as a fraction of the half action range
  target_noise: float = 0.2
  target_noise_clip: float = 0.5
  hidden_sizes: tuple = (256, 256)
  activation: str = "relu"
  layer_norm: bool = False
  max_grad_norm: float = 0.0       # global-norm clipping of each critic and actor gradient (0: none)
  graph_steps: int = 250           # vector steps per compiled call on TensorFlow-native environments (in-graph learner)
  jit_compile: bool = True         # XLA for that call (in-graph learner; measured 1.2x faster for TD3 on Pendulum)
  learn_during_warmup: bool = False  # update from the first stored sequence per copy, during the random actions
                                     # (MetaGenRL's reference schedule); otherwise from `warmup_steps` on

  def validate(self):
    for name in ("num_envs", "replay_capacity", "batch_size", "sequence_length", "policy_delay", "graph_steps"):
      if int(getattr(self, name)) < 1:
        raise errors.ConfigError(f"off_policy.{name} must be >= 1, got {getattr(self, name)}")
    if self.warmup_steps < self.sequence_length * self.num_envs:
      raise errors.ConfigError(f"off_policy.warmup_steps ({self.warmup_steps}) must cover at least one sequence "
                               f"per copy ({self.sequence_length * self.num_envs})")
    if self.max_grad_norm < 0:
      raise errors.ConfigError(f"off_policy.max_grad_norm must be >= 0 (0: no clipping), got {self.max_grad_norm}")
    if not 0 < self.tau <= 1:
      raise errors.ConfigError(f"off_policy.tau must be in (0, 1], got {self.tau}")

  def update_start(self) -> int:
    """Environment steps (total over copies, warm-start credit included) before the first update."""
    return self.sequence_length * self.num_envs if self.learn_during_warmup else self.warmup_steps


class OffPolicyLearner(Trainable):
  """See the module docstring. The agent is `agents.TD3` (explicit state, pure update); this class
  holds its state in variables (the Keras models' own weights for the four networks), keeps the
  replay buffer, and steps the environments."""

  def __init__(self, env_info: EnvInfo, objective: Objective, config: OffPolicyConfig, seed: int, env_kwargs=None):
    """`env_kwargs`: the gymnasium environments' constructor arguments (e.g. a MuJoCo family's
    `randomize`)."""
    config.validate()
    self.env_kwargs = dict(env_kwargs or {})
    self.env_info, self.objective, self.config, self.seed = env_info, objective, config, seed
    obs_dim = int(np.prod(env_info.observation_shape))
    act_dim = env_info.action_dim
    self.policy, self.target_policy, self.critic, self.target_critic = self._networks(seed)
    self.target_policy.set_weights(self.policy.get_weights())
    self.target_critic.set_weights(self.critic.get_weights())
    settings = TD3Settings(gamma=config.gamma, tau=config.tau, policy_delay=config.policy_delay,
                           target_noise=config.target_noise, target_noise_clip=config.target_noise_clip,
                           episode_step_limit=float(env_info.max_episode_steps or 1000),
                           max_grad_norm=config.max_grad_norm or None)
    self.agent = TD3(self.policy, self.critic, Adam(config.actor_learning_rate), Adam(config.critic_learning_rate),
                     settings)
    initial = self.agent.init()
    self.state = StateVariables(initial._replace(
        policy=self.policy.trainable_variables, critic=self.critic.trainable_variables,
        target_policy=self.target_policy.trainable_variables, target_critic=self.target_critic.trainable_variables),
        name="agent_state")
    self.low, self.high = self.agent.low.numpy(), self.agent.high.numpy()
    self.rng = tf.random.Generator.from_seed(seed)
    self.np_rng = np.random.default_rng(seed)
    self.env_steps = tf.Variable(0, dtype=tf.int64, name="env_steps")
    self.guard = UpdateGuard()
    self.replay = SequenceReplay(config.replay_capacity, config.num_envs * self.members, obs_dim, act_dim,
                                 name="replay")
    self._evaluations = 0
    self._update_credit = 0.0
    self.recorder = None  # a recording.EpisodeRecorder, set by learners.train
    self._replayed = 0  # transitions a warm start put in the replay buffer
    self.replay_source = None  # recorded streams to warm-start from (learners.train: config.replay_from)
    self._make_environments()

  members = 1  # agents trained together (`InGraphOffPolicyLearner` trains populations)

  def _networks(self, seed: int):
    """Fresh policy, target policy, critic and target critic, initialised from `seed`."""
    env_info, config = self.env_info, self.config
    keras.utils.set_random_seed(seed)
    obs_dim = int(np.prod(env_info.observation_shape))
    make_actor = lambda name: DeterministicPolicy(obs_dim, env_info.action_low, env_info.action_high,
                                                  config.hidden_sizes, config.activation, config.layer_norm, name=name)
    make_critic = lambda name: TwinQCritic(obs_dim, env_info.action_dim, config.hidden_sizes, config.activation,
                                           config.layer_norm, name=name)
    return make_actor("policy"), make_actor("target_policy"), make_critic("critic"), make_critic("target_critic")

  def _make_environments(self):
    """Gymnasium copies stepped from Python (`InGraphOffPolicyLearner` replaces them)."""
    self.env = make_vector_env(self.env_info.env_id, self.config.num_envs, self.seed, **self.env_kwargs)
    self.eval_env = make_env(self.env_info.env_id, **self.env_kwargs)
    self.collector = RolloutCollector(self.env, self.seed)

  def checkpoint_items(self):
    return dict(policy=self.policy, target_policy=self.target_policy, critic=self.critic,
                target_critic=self.target_critic, agent_state=self.state, rng=self.rng, env_steps=self.env_steps,
                guard=self.guard)

  def save_extra(self, checkpoint_path):
    """Saves the replay buffer beside the checkpoint (deleted with it: same prefix)."""
    self.replay.save(checkpoint_path + ".replay.npz")

  def restore_extra(self, checkpoint_path):
    self.replay.load(checkpoint_path + ".replay.npz")
    # The NumPy sampler and the environments are reseeded from the step (README: what a resume restores).
    self.np_rng = np.random.default_rng(self.seed + int(self.env_steps.numpy()))
    self.collector = RolloutCollector(self.env, self.seed + int(self.env_steps.numpy()))

  def _seed(self):
    return tf.cast(self.rng.make_seeds(1)[:, 0], tf.int32)

  @tf.function
  def _act(self, observations):
    actions = self.agent.explore(self.state.read().policy, observations, self._seed(), self.config.exploration_noise)
    return {"actions": actions, "log_probs": tf.zeros(tf.shape(actions)[:1]), "policy_outputs": actions}

  def act(self, observations):
    if int(self.env_steps.numpy()) < self.config.warmup_steps:
      actions = self.np_rng.uniform(self.low, self.high,
                                    (observations.shape[0], self.env_info.action_dim)).astype(np.float32)
      return {"actions": actions, "log_probs": np.zeros(len(actions), np.float32), "policy_outputs": actions}
    return {k: v.numpy() for k, v in self._act(tf.constant(observations)).items()}

  def sampled_update(self, seed):
    """One TD3 update on a batch sampled from replay (graph-safe; both learners' only update).
    seed: int32 [2]. Returns the update's metrics."""
    cfg = self.config
    sample_seed, update_seed = tf.unstack(tf.random.experimental.stateless_split(seed, num=2))
    batch = self.replay.sample_sequences(sample_seed, cfg.batch_size, cfg.sequence_length)
    state, metrics = self.agent.update(self.state.read(), batch, update_seed, self.objective)
    self.state.assign(state)
    self.guard.record(metrics["skipped_updates"])
    return metrics

  @tf.function(jit_compile=compilation.JIT_COMPILE)
  def _update(self):
    return self.sampled_update(self._seed())

  @tf.function
  def _greedy(self, observations):
    return self.agent.actions(self.state.read().policy, observations)

  def warm_start(self, streams) -> int:
    """Fills the empty replay buffer with recorded transitions (`recording.replay_streams`, numpy
    `Trajectory` [num_envs, L, ...]), before the first collection; they count toward the
    warm-up but not as this agent's environment steps, also after a resume. Returns the
    transitions added (0 if the buffer already holds data: restored from a checkpoint, which
    holds them)."""
    self._replayed = int(np.prod(streams.rewards.shape))  # the warm-up credit, kept by a resumed run too
    if int(self.replay.size) > 0:
      return 0
    self.replay.add_trajectory(streams)
    return self._replayed

  def iteration(self):
    """One vector step of every copy, then the due gradient updates (metrics averaged over them)."""
    cfg = self.config
    if self.replay_source is not None:  # after any checkpoint restore, which keeps a restored buffer
      self.warm_start(self.replay_source)
      self.replay_source = None
    trajectory, stats = self.collector.collect(self.act, 1)
    if self.recorder is not None:  # train_agent --record: the episodes as an RLDS dataset
      self.recorder.add(trajectory)
    self.replay.add_trajectory(trajectory)
    self.env_steps.assign_add(cfg.num_envs)
    updates = []
    if int(self.env_steps.numpy()) + self._replayed >= cfg.update_start():
      self._update_credit += cfg.updates_per_step * cfg.num_envs
      while self._update_credit >= 1.0:
        self._update_credit -= 1.0
        updates.append(self._update())  # warm-up filled a sequence per copy (OffPolicyConfig.validate)
    metrics = mean_metrics(updates)
    metrics.pop("skipped_updates", None)  # counted by the guard (reliability/skipped_updates)
    return metrics, stats

  def evaluate(self, episodes: int):
    self._evaluations += 1
    act = lambda obs: self._greedy(tf.constant(obs)).numpy()
    return evaluate(self.eval_env, act, episodes, seed=10_000 * (self.seed + 1) + 100 * self._evaluations)
