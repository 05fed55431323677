"""Online meta-gradient training on TensorFlow-native batched environments: FRODO, learned γ/λ, A2C.

Each iteration, in one `tf.function`: M times, roll out a trajectory of every copy in graph with
the current agent θ_k and take a differentiable inner update θ_k -> θ_{k+1}; roll out one more
(held-out) trajectory with θ_M; compute the outer loss there and, through all M updates, its
gradient with respect to η; step η with the meta-optimizer; keep θ_M. With `reuse_outer_batch`
(the default) the held-out trajectory, collected with θ_M, is the next iteration's first inner
batch, which starts from θ_M: still on-policy, and an iteration costs M trajectories per copy,
not M + 1. With no meta-parameters (the `a2c` method) it is plain A2C with a fixed n-step target.
Plugs into `learners.loop.run_training` (progress, TensorBoard, checkpoints, resume). Any
discrete-action gymnasium id works too (e.g. CartPole-v1): stepped in Python, see `_gym_iteration`.
"""
from __future__ import annotations

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from tf_metarl import errors
from tf_metarl.algorithms.frodo import FrodoConfig, FrodoObjective, FrodoStep, trajectory_dict
from tf_metarl.algorithms.targets import FrodoTargetNetwork, LearnedLambdaReturn, NStepTarget
from tf_metarl.collection import EpisodeStats, RolloutCollector, evaluate
from tf_metarl.envs.batched import batch_major, rollout
from tf_metarl.envs.catch import NUM_ACTIONS, Catch
from tf_metarl.envs.gym_envs import describe_env, make_env, make_vector_env
from tf_metarl.envs.random_walk import RandomWalk
from tf_metarl.networks import CategoricalPolicy, ValueCritic
from tf_metarl.networks.functional import functional_call

METHODS = ("frodo", "mgrl", "a2c")
ENVIRONMENTS = ("catch", "random_walk")  # TF-native and batched; any other value is a gymnasium id


@dataclasses.dataclass
class OnlineMetaConfig:
  env: str = "catch"
  rows: int = 11
  columns: int = 6
  method: str = "frodo"
  num_envs: int = 1024
  trajectory_length: int = 16
  hidden_sizes: tuple = (64,)
  target_units: int = 32
  target_observation_scale: float = 0.1  # FRODO: weight of the observation inputs of G_η (see FrodoTargetNetwork)
  meta_optimizer: str = "adam"
  meta_learning_rate: float = 1e-3
  initial_gamma: float = 0.9    # mgrl
  initial_lambda: float = 0.9   # mgrl
  reuse_outer_batch: bool = True  # the held-out batch becomes the next iteration's first inner batch
  frodo: FrodoConfig = dataclasses.field(default_factory=FrodoConfig)

  def validate(self):
    if not isinstance(self.env, str) or not self.env:
      raise errors.ConfigError(f"env must be 'catch', 'random_walk' or a gymnasium id, got {self.env!r}")
    if self.method not in METHODS:
      raise errors.ConfigError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
    if self.meta_optimizer not in ("adam", "rmsprop"):
      raise errors.ConfigError(f"meta_optimizer must be 'adam' or 'rmsprop', got {self.meta_optimizer!r}")
    if self.env == "catch" and (self.rows < 2 or self.columns < 1):
      raise errors.ConfigError(f"Catch needs rows >= 2 and columns >= 1, got {self.rows}x{self.columns}")
    if not self.target_observation_scale >= 0:
      raise errors.ConfigError(f"target_observation_scale must be >= 0, got {self.target_observation_scale}")
    for name in ("num_envs", "trajectory_length", "target_units"):
      if int(getattr(self, name)) < 1:
        raise errors.ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
    if self.frodo.inner_steps < 1:
      raise errors.ConfigError(f"frodo.inner_steps (M) must be >= 1, got {self.frodo.inner_steps}")
    if self.frodo.inner_optimizer not in ("sgd", "rmsprop"):
      raise errors.ConfigError(f"frodo.inner_optimizer must be 'sgd' or 'rmsprop', got {self.frodo.inner_optimizer!r}")


class OnlineMetaLearner:
  """See the module docstring. `seed` seeds networks, environments and action sampling."""

  def __init__(self, config: OnlineMetaConfig, seed: int):
    config.validate()
    self.config, self.seed = config, seed
    keras.utils.set_random_seed(seed)
    self.native = config.env in ENVIRONMENTS
    if config.env == "catch":
      self.env, num_actions = Catch(config.rows, config.columns), NUM_ACTIONS
    elif config.env == "random_walk":
      self.env, num_actions = RandomWalk(), 1
    else:  # A gymnasium environment, stepped in Python; the iteration runs eagerly (see `_gym_iteration`).
      info = describe_env(config.env)
      if info.action_kind != "discrete":
        raise errors.IncompatibleSpaceError(
            f"online meta-gradient methods need discrete actions; {config.env} has continuous actions")
      self.env, num_actions = None, info.num_actions
      self.collector = RolloutCollector(make_vector_env(config.env, config.num_envs, seed), seed)
      self.eval_env = make_env(config.env)
      self.rng = tf.random.Generator.from_seed(seed)
    obs_dim = self.env.observation_size if self.native else int(np.prod(info.observation_shape))
    self.observation_size = obs_dim
    self.policy = CategoricalPolicy(obs_dim, num_actions, config.hidden_sizes, "relu", name="policy")
    self.critic = ValueCritic(obs_dim, config.hidden_sizes, "relu", name="critic")
    if config.method == "frodo":
      self.target = FrodoTargetNetwork(obs_dim, units=config.target_units,
                                       observation_scale=config.target_observation_scale)
    elif config.method == "mgrl":
      self.target = LearnedLambdaReturn(config.initial_gamma, config.initial_lambda)
    else:
      self.target = NStepTarget(config.frodo.gamma, config.frodo.n_step)
    self.step = FrodoStep(self.policy, self.critic, self.target, config.frodo)
    self.agent_variables = self.policy.trainable_variables + self.critic.trainable_variables
    self.meta_variables = self.target.trainable_variables
    init_state = self.step.init_optimizer_state([v.value for v in self.agent_variables])
    self.inner_optimizer_state = [tf.Variable(s, trainable=False) for s in init_state] if init_state else []
    optimizer = keras.optimizers.Adam if config.meta_optimizer == "adam" else keras.optimizers.RMSprop
    self.meta_optimizer = optimizer(config.meta_learning_rate)
    if self.meta_variables:
      self.meta_optimizer.build(self.meta_variables)
    if self.native:
      state = self.env.reset(tf.constant([seed, 0]), config.num_envs)
      self.env_state = tf.nest.map_structure(lambda x: tf.Variable(x, trainable=False), state)
    self.seed_counter = tf.Variable(0, dtype=tf.int64, name="seed_counter")
    self.env_steps = tf.Variable(0, dtype=tf.int64, name="env_steps")
    self.steps_per_batch = config.num_envs * config.trajectory_length
    new_batches = config.frodo.inner_steps + (0 if config.reuse_outer_batch else 1)
    self.steps_per_iteration = self.steps_per_batch * new_batches
    self.carried_batch = None  # the previous held-out batch (reuse_outer_batch)
    if self.native and config.reuse_outer_batch:  # collect the first one now; checkpointed from here on
      state, time_major = rollout(self.env, self.env_state, self._sampler(self._params()),
                                  tf.constant([seed, -1]), config.trajectory_length)
      tf.nest.map_structure(lambda var, value: var.assign(value), self.env_state, state)
      self.carried_batch = {k: tf.Variable(v, trainable=False, name=f"carried_{k}")
                            for k, v in batch_major(time_major).items()}
      self.env_steps.assign_add(self.steps_per_batch)

  def checkpoint_items(self):
    items = dict(policy=self.policy, critic=self.critic, env_steps=self.env_steps, seed_counter=self.seed_counter,
                 inner_optimizer_state=list(self.inner_optimizer_state))
    if self.native:
      items["env_state"] = list(self.env_state)
      if self.carried_batch is not None:
        items["carried_batch"] = dict(self.carried_batch)
    else:  # gymnasium copies are not checkpointed: a resumed run starts fresh episodes
      items["rng"] = self.rng
    if self.meta_variables:
      items.update(target=self.target, meta_optimizer=self.meta_optimizer)
    return items

  def _params(self):
    """θ as tensors (a snapshot of the agent's variables)."""
    return [tf.convert_to_tensor(v.value) for v in self.agent_variables]

  def _sampler(self, params):
    policy_params = [tf.stop_gradient(p) for p in params[:len(self.policy.trainable_variables)]]

    def act(observations, seed):
      logits = functional_call(self.policy, policy_params, observations)
      return tf.random.stateless_categorical(logits, 1, seed, dtype=tf.int32)[:, 0]
    return act

  def _meta_step(self, collect):
    """One meta-iteration given `collect(params, k) -> batch` (k = M: the held-out batch).

    M differentiable inner updates, the outer objective at θ_M, the meta-gradient step on η, and
    θ_M and the inner optimizer state written back. Returns (metrics, the batches new this
    iteration: all M + 1, or M without the carried first one; the held-out batch last).
    """
    params = [tf.identity(v) for v in self.agent_variables]
    opt_state = [tf.identity(v) for v in self.inner_optimizer_state] or None
    steps = self.config.frodo.inner_steps
    batches, inner_losses = [], []
    with tf.GradientTape(watch_accessed_variables=False) as tape:
      tape.watch([v.value for v in self.meta_variables])  # the tf.Variables inside Keras variables
      for k in range(steps):
        batch = collect(params, k)
        params, opt_state, inner_loss = self.step.inner_update(params, batch, opt_state, k=k)
        batches.append(batch)
        inner_losses.append(inner_loss)
      outer_batch = collect(params, steps)
      out = self.step.outer_objective(params, batches, outer_batch)
    metrics = {"outer_loss": out["outer_loss"], "meta_loss": out["meta_loss"],
               "inner_loss": tf.add_n(inner_losses) / len(inner_losses)}
    if self.meta_variables:
      grads = tape.gradient(out["meta_loss"], [v.value for v in self.meta_variables])
      metrics["meta_grad_norm"] = tf.linalg.global_norm(grads)
      self.meta_optimizer.apply_gradients(zip(grads, self.meta_variables))
    for var, value in zip(self.agent_variables, params):
      var.assign(tf.stop_gradient(value))
    for var, value in zip(self.inner_optimizer_state, opt_state or []):
      var.assign(tf.stop_gradient(value))
    fresh = batches[1:] if self.config.reuse_outer_batch else batches
    return metrics, fresh + [outer_batch]

  def _carried(self):
    return {k: v.read_value() for k, v in self.carried_batch.items()}

  def _carry(self, batch):
    for k, v in self.carried_batch.items():
      v.assign(batch[k])

  @tf.function
  def _iteration(self, seed):
    cfg = self.config
    seeds = tf.random.experimental.stateless_split(seed, num=cfg.frodo.inner_steps + 1)
    env_state = [tf.nest.map_structure(tf.identity, self.env_state)]  # threaded through `collect`

    def collect(params, k):
      if k == 0 and cfg.reuse_outer_batch:
        return self._carried()
      env_state[0], time_major = rollout(self.env, env_state[0], self._sampler(params), seeds[k],
                                         cfg.trajectory_length)
      return batch_major(time_major)

    metrics, all_batches = self._meta_step(collect)
    if cfg.reuse_outer_batch:
      self._carry(all_batches[-1])
    tf.nest.map_structure(lambda var, value: var.assign(value), self.env_state, env_state[0])
    terminated = tf.concat([tf.reshape(b["terminated"], [-1]) for b in all_batches], 0)
    rewards = tf.concat([tf.reshape(b["rewards"], [-1]) for b in all_batches], 0)
    # Both environments pay only on the terminating step, so an episode's return is that reward.
    episode_returns = tf.boolean_mask(rewards, terminated > 0)
    return metrics, episode_returns

  def _gym_iteration(self):
    """The same iteration on a gymnasium vector env, whose stepping is Python. The M + 1 batches are
    collected first, each with the θ_k of a first-order pass of the inner updates (compiled); then
    one compiled `_meta_step` replays the M updates differentiably on them (same θ_k) and steps η.
    Returns (metrics, episode statistics, 1 if a first held-out batch had to be collected)."""
    cfg = self.config
    stats = EpisodeStats()

    def collect(params):
      policy_params = params[:len(self.policy.trainable_variables)]

      def act(observations):
        seed = tf.cast(self.rng.make_seeds(1)[:, 0], tf.int32)
        actions, log_probs, logits = self._gym_act(policy_params, tf.constant(observations), seed)
        return {"actions": actions.numpy(), "log_probs": log_probs.numpy(), "policy_outputs": logits.numpy()}
      trajectory, episodes = self.collector.collect(act, cfg.trajectory_length)
      stats.returns.extend(episodes.returns)
      stats.lengths.extend(episodes.lengths)
      return trajectory_dict(trajectory)

    primed = 0
    if cfg.reuse_outer_batch and self.carried_batch is None:  # first iteration, or resumed: gym envs restart
      self.carried_batch, primed = collect(self._params()), 1
    params = self._params()
    opt_state = [v.value() for v in self.inner_optimizer_state] or None
    batches = []
    for k in range(cfg.frodo.inner_steps):
      batches.append(self.carried_batch if k == 0 and cfg.reuse_outer_batch else collect(params))
      params, opt_state = self._gym_first_order_update(params, batches[-1], opt_state)
    batches.append(collect(params))
    metrics = self._gym_meta_step(batches)
    if cfg.reuse_outer_batch:
      self.carried_batch = batches[-1]
    return metrics, stats, primed

  @tf.function
  def _gym_act(self, policy_params, observations, seed):
    logits = functional_call(self.policy, policy_params, observations)
    actions = tf.random.stateless_categorical(logits, 1, seed, dtype=tf.int32)[:, 0]
    return actions, self.policy.log_prob(logits, actions), logits

  @tf.function
  def _gym_first_order_update(self, params, batch, opt_state):
    params, opt_state, _ = self.step.inner_update(params, batch, opt_state)
    return params, opt_state

  @tf.function
  def _gym_meta_step(self, batches):
    return self._meta_step(lambda params, k: batches[k])[0]

  def iteration(self):
    if self.native:
      seed = tf.stack([tf.constant(self.seed, tf.int64), self.seed_counter])
      self.seed_counter.assign_add(1)
      metrics, episode_returns = self._iteration(tf.cast(seed, tf.int32))
      returns = episode_returns.numpy().tolist()
      stats = EpisodeStats(returns=returns, lengths=[0] * len(returns))
      primed = 0
    else:
      metrics, stats, primed = self._gym_iteration()
    self.env_steps.assign_add(self.steps_per_iteration + primed * self.steps_per_batch)
    metrics = {k: float(v) for k, v in metrics.items()}
    if self.config.method == "mgrl":
      metrics["meta/gamma"] = float(self.target.gamma)
      metrics["meta/lambda"] = float(self.target.lam)
    if self.config.env == "random_walk":
      metrics["charts/value_error"] = self.curve_metric()
    return metrics, stats

  def objective(self) -> FrodoObjective:
    """The meta-learned target as an exportable objective (FRODO only)."""
    if self.config.method != "frodo":
      raise errors.ConfigError(f"only FRODO's target network exports as an objective, not {self.config.method!r}")
    return FrodoObjective(self.target, self.observation_size, self.config.frodo.value_coef,
                          self.config.frodo.entropy_coef)

  def curve_metric(self) -> float:
    """Catch: none (NaN). Random walk: RMS error of V over the 5 states against the true values
    under the reward phase now in force (with the canonical γ)."""
    if self.config.env != "random_walk":
      return float("nan")
    values = self.critic(tf.eye(5)).numpy()
    truth = RandomWalk.true_values(self.config.frodo.gamma, int(self.env_state.total_steps[0].numpy()))
    return float(np.sqrt(np.mean((values - truth) ** 2)))

  def evaluate(self, episodes: int):
    """Returns of `episodes` greedy episodes (Catch: one per copy, in graph). Random walk: none."""
    if not self.native:
      greedy = lambda obs: self.policy.mode(self.policy(tf.constant(obs))).numpy()
      return evaluate(self.eval_env, greedy, episodes, seed=10_000 * (self.seed + 1) + int(self.env_steps.numpy()))
    if self.config.env != "catch":
      return []
    return self._greedy_catch_returns(episodes).numpy().tolist()

  @tf.function
  def _greedy_catch_returns(self, episodes: int):
    """Returns [episodes] of the greedy policy, one Catch episode per copy, in one graph."""
    greedy = lambda obs, seed: tf.argmax(self.policy(obs), axis=-1, output_type=tf.int32)
    state = self.env.reset(tf.constant([self.seed, 7]), episodes)
    _, out = rollout(self.env, state, greedy, tf.constant([0, 0]), self.env.rows - 1)
    return tf.reduce_sum(out["rewards"], axis=0)
