"""Trains a fresh stochastic agent (policy and state-value critic) with any on-policy objective.

Each iteration collects `rollout_length` steps from `num_envs` copies, then runs `epochs` passes
over `minibatches` splits of the copies (whole segments, so objectives that compute returns
inside see contiguous time), or, with `minibatch_unit="transitions"`, of the rollout's single
transitions with the objective's targets computed once per rollout (purejaxrl's PPO). The
objective's loss trains the policy, and the critic too when the objective says it does
(`trains_critic`); otherwise the critic regresses λ-returns on its own.
"""
from __future__ import annotations

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from tf_metarl import compilation, errors
from tf_metarl.agents.actor_critic import ActorCritic
from tf_metarl.agents.optimizers import Adam
from tf_metarl.collection import RolloutCollector, evaluate
from tf_metarl.envs.gym_envs import EnvInfo, make_env, make_vector_env
from tf_metarl.learners.loop import Trainable, mean_metrics
from tf_metarl.learners.update_guard import UpdateGuard
from tf_metarl.networks import ValueCritic, make_policy
from tf_metarl.objectives.base import Objective
from tf_metarl.state_variables import StateVariables
from tf_metarl.trajectories import Trajectory


MINIBATCH_UNITS = ("copies", "transitions", "auto")


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
  jit_compile: bool = True  # XLA for the rollout and for the updates on TensorFlow-native environments (in-graph learner)
  # Compute the objective's targets (advantages, λ-returns) from the critic as it was at collection,
  # for all epochs of an iteration (purejaxrl's PPO), instead of the current critic at every update.
  freeze_targets: bool = False
  # What minibatches are made of: "copies" (whole segments of environment copies), "transitions"
  # (shuffled single steps, with the objective's targets computed once per rollout from the critic
  # at collection; needs an objective that computes its targets per rollout: ppo, a2c, reinforce),
  # or "auto" (transitions where the objective can, else copies; the learner records which).
  minibatch_unit: str = "copies"

  def validate(self):
    for name in ("num_envs", "rollout_length", "epochs", "minibatches"):
      if int(getattr(self, name)) < 1:
        raise errors.ConfigError(f"on_policy.{name} must be >= 1, got {getattr(self, name)}")
    if self.minibatch_unit not in MINIBATCH_UNITS:
      raise errors.ConfigError(f"on_policy.minibatch_unit must be one of {', '.join(MINIBATCH_UNITS)}, "
                               f"got {self.minibatch_unit!r}")
    if self.minibatch_unit != "copies" and (self.num_envs * self.rollout_length) % self.minibatches:
      raise errors.ConfigError(f"on_policy.minibatches ({self.minibatches}) must divide the rollout's "
                               f"{self.num_envs * self.rollout_length} transitions (num_envs × rollout_length)")
    if self.minibatch_unit == "copies" and self.num_envs % self.minibatches:
      raise errors.ConfigError(f"on_policy.num_envs ({self.num_envs}) must be divisible by on_policy.minibatches "
                               f"({self.minibatches}): minibatches split whole environment copies")
    if not self.learning_rate > 0:
      raise errors.ConfigError(f"on_policy.learning_rate must be > 0, got {self.learning_rate}")


def make_networks(env_info: EnvInfo, config: OnPolicyConfig, seed: int, memory_units: int = 0):
  """(stochastic policy, state-value critic) of an agent of `seed`, freshly initialised; the
  policy carries a memory unit of `memory_units` when an objective reads one (EPG)."""
  keras.utils.set_random_seed(seed)
  obs_dim = int(np.prod(env_info.observation_shape))
  policy = make_policy(env_info, "stochastic", config.hidden_sizes, config.activation, config.layer_norm,
                       memory_units=memory_units)
  critic = ValueCritic(obs_dim, config.hidden_sizes, config.activation, config.layer_norm, name="critic")
  return policy, critic


def check_rollout_fits(objective: Objective, config: OnPolicyConfig) -> None:
  """A one-line ConfigError if the objective reads longer buffers than a rollout (EPG's receptive field)."""
  min_steps = int(objective.constraints().get("min_time_steps") or 0)
  if config.rollout_length < min_steps:
    raise errors.ConfigError(f"objective {objective.kind!r} reads buffers of at least {min_steps} steps (its "
                             f"receptive field); on_policy.rollout_length is {config.rollout_length}")


def resolve_minibatch_unit(config: OnPolicyConfig, objective: Objective) -> OnPolicyConfig:
  """`config` with `minibatch_unit` "auto" resolved for this objective; "transitions" with an
  objective that cannot compute its targets per rollout is a one-line ConfigError."""
  can = objective.computes_rollout_targets
  if config.minibatch_unit == "transitions" and not can:
    raise errors.ConfigError(f"on_policy.minibatch_unit='transitions' needs an objective that computes its targets "
                             f"once per rollout (ppo, a2c, reinforce); {objective.kind!r} does not (use 'copies' "
                             f"or 'auto')")
  if config.minibatch_unit == "auto":
    config = dataclasses.replace(config, minibatch_unit="transitions" if can else "copies")
    config.validate()
  return config


def _by_transitions(config: OnPolicyConfig) -> bool:
  if config.minibatch_unit == "auto":
    raise ValueError("on_policy.minibatch_unit 'auto' must be resolved first (resolve_minibatch_unit)")
  return config.minibatch_unit == "transitions"


def minibatch_units(config: OnPolicyConfig) -> int:
  """How many units an iteration's minibatches split: copies, or transitions."""
  return config.num_envs * config.rollout_length if _by_transitions(config) else config.num_envs


def as_units(tree, config: OnPolicyConfig, leading_axes: int = 0):
  """A rollout's tensors [..., B, T, ...] (`leading_axes` axes before B, e.g. a population's) as
  the units minibatches gather from: unchanged (copies), or [..., B · T, 1, ...] (transitions)."""
  if not _by_transitions(config):
    return tree

  def flatten(x):
    shape = x.shape.as_list()
    return tf.reshape(x, shape[:leading_axes] + [-1, 1] + shape[leading_axes + 2:])

  return tf.nest.map_structure(flatten, tree)


def has_rollout_extras(config: OnPolicyConfig) -> bool:
  """Whether `rollout_extras` computes anything for this config."""
  return _by_transitions(config) or config.freeze_targets


def rollout_extras(agent: ActorCritic, objective: Objective, critic_params, trajectory: Trajectory,
                   config: OnPolicyConfig):
  """What every update of an iteration shares, from the critic at collection: the objective's
  targets (minibatches of transitions), the critic's values (`freeze_targets`), or nothing."""
  if _by_transitions(config):
    return agent.rollout_targets(critic_params, trajectory, objective)
  if config.freeze_targets:
    return agent.rollout_values(critic_params, trajectory)
  return ()


def minibatch_update(agent: ActorCritic, objective: Objective, config: OnPolicyConfig, learning_rate):
  """update(state, batch, extras) -> (state, metrics): one `ActorCritic.update` on a minibatch and
  its share of `rollout_extras`."""
  if _by_transitions(config):
    return lambda state, batch, targets: agent.update(
        state, batch, lambda inputs: objective.loss_from_targets(inputs, targets), learning_rate)
  if config.freeze_targets:
    return lambda state, batch, values: agent.update(state, batch, objective, learning_rate, values)
  return lambda state, batch, _: agent.update(state, batch, objective, learning_rate)


class OnPolicyLearner(Trainable):
  """See the module docstring. `total_steps` sets the learning-rate annealing horizon.

  The agent is `agents.ActorCritic` (explicit state, pure update); this class holds its state in
  variables (the Keras models' own weights, so `policy` and `critic` stay current), steps the
  environments, anneals the learning rate and averages the metrics of an iteration's updates.
  """

  def __init__(self, env_info: EnvInfo, objective: Objective, config: OnPolicyConfig, seed: int, total_steps: int,
               reward_transform=None, env_kwargs=None):
    """`reward_transform`: trajectory -> trajectory with the rewards to train on (a learned
    reward, `train_agent --reward`); episode returns stay the environment's. `env_kwargs`: the
    gymnasium environments' constructor arguments (e.g. a MuJoCo family's `randomize`)."""
    self.env_kwargs = dict(env_kwargs or {})
    config.validate()
    self.reward_transform = reward_transform
    config = resolve_minibatch_unit(config, objective)
    self.env_info, self.objective, self.config, self.seed = env_info, objective, config, seed
    self.total_steps = total_steps
    self.memory_units = int(objective.constraints().get("memory_units") or 0)  # EPG's loss reads a memory unit
    check_rollout_fits(objective, config)
    self.policy, self.critic = make_networks(env_info, config, seed, self.memory_units)
    critic_return = None if objective.trains_critic else (config.critic_gamma, config.critic_lambda)
    self.agent = ActorCritic(self.policy, self.critic, Adam(config.learning_rate, epsilon=1e-5),
                             max_grad_norm=config.max_grad_norm, critic_return=critic_return)
    initial = self.agent.init()
    self.state = StateVariables(initial._replace(policy=self.policy.trainable_variables,
                                                 critic=self.critic.trainable_variables), name="agent_state")
    self.learning_rate = tf.Variable(config.learning_rate, dtype=tf.float32, trainable=False)
    self.rng = tf.random.Generator.from_seed(seed)
    self.env_steps = tf.Variable(0, dtype=tf.int64, name="env_steps")
    self.guard = UpdateGuard()
    self._evaluations = 0
    self.recorder = None  # a recording.EpisodeRecorder, set by learners.train
    self._make_environments()

  def _make_environments(self):
    """Gymnasium copies stepped from Python (`InGraphOnPolicyLearner` replaces them)."""
    self.env = make_vector_env(self.env_info.env_id, self.config.num_envs, self.seed, **self.env_kwargs)
    self.eval_env = make_env(self.env_info.env_id, **self.env_kwargs)
    self.collector = RolloutCollector(self.env, self.seed)

  def checkpoint_items(self):
    return dict(policy=self.policy, critic=self.critic, agent_state=self.state, rng=self.rng,
                env_steps=self.env_steps, guard=self.guard)

  def restore_extra(self, checkpoint_path):
    # Environments are not checkpointed: restart their episodes with a seed that differs per resume.
    self.collector = RolloutCollector(self.env, self.seed + int(self.env_steps.numpy()))

  @tf.function
  def _act(self, observations):
    seed = tf.cast(self.rng.make_seeds(1)[:, 0], tf.int32)
    return self.agent.act(self.state.read().policy, observations, seed)

  @tf.function
  def _greedy(self, observations):
    return self.agent.greedy(self.state.read().policy, observations)

  def act(self, observations):
    return {k: v.numpy() for k, v in self._act(tf.constant(observations)).items()}

  @tf.function(jit_compile=compilation.JIT_COMPILE)
  def _rollout_extras(self, trajectory: Trajectory):
    return rollout_extras(self.agent, self.objective, self.state.read().critic, trajectory, self.config)

  @tf.function(jit_compile=compilation.JIT_COMPILE)
  def _train_step(self, batch: Trajectory, extras):
    update = minibatch_update(self.agent, self.objective, self.config, self.learning_rate)
    state, metrics = update(self.state.read(), batch, extras)
    self.state.assign(state)
    self.guard.record(metrics["skipped_updates"])
    return metrics

  def _anneal_learning_rate(self):
    cfg = self.config
    if cfg.anneal_learning_rate:
      frac = 1.0 - float(self.env_steps.numpy()) / max(self.total_steps, 1)
      self.learning_rate.assign(cfg.learning_rate * max(frac, 0.0))

  def iteration(self):
    cfg = self.config
    self._anneal_learning_rate()
    trajectory, stats = self.collector.collect(self.act, cfg.rollout_length)
    if self.recorder is not None:  # train_agent --record: the episodes as an RLDS dataset
      self.recorder.add(trajectory)
    self.env_steps.assign_add(cfg.num_envs * cfg.rollout_length)
    trajectory = tf.nest.map_structure(tf.constant, trajectory)
    if self.reward_transform is not None:
      trajectory = self.reward_transform(trajectory)
    extras = self._rollout_extras(trajectory) if has_rollout_extras(cfg) else ()
    units = as_units((trajectory, extras), cfg)
    count = minibatch_units(cfg)
    size = count // cfg.minibatches
    updates = []
    for _ in range(cfg.epochs):
      order = np.random.default_rng(int(self.rng.uniform_full_int([], tf.int64).numpy()) % (2**32)).permutation(count)
      for k in range(cfg.minibatches):
        idx = order[k * size:(k + 1) * size]
        updates.append(self._train_step(*tf.nest.map_structure(lambda x: tf.gather(x, idx), units)))
    metrics = mean_metrics(updates)
    metrics.pop("skipped_updates", None)  # counted by the guard (reliability/skipped_updates)
    metrics["charts/learning_rate"] = float(self.learning_rate.numpy())
    return metrics, stats

  def evaluate(self, episodes: int):
    self._evaluations += 1
    act = lambda obs: self.collector.env_actions(self._greedy(tf.constant(obs)).numpy())
    return evaluate(self.eval_env, act, episodes, seed=10_000 * (self.seed + 1) + 100 * self._evaluations)
