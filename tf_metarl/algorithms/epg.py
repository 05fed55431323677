"""Evolved Policy Gradients (Houthooft et al., NeurIPS 2018): a learned loss L_φ evolved by
evolution strategies over inner trainings on randomised environments (the paper's Algorithm 1).

One ES epoch, in one graph (`EPGProblem.population_losses`, which `meta.EvolutionStrategiesEstimator`
calls with all V perturbed losses φ + σε_v stacked):

  for each member v and each of its W inner runs w (P = V·W agents, stacked):
    a fresh agent (policy with a memory unit, critic) and a task drawn from the family: run w of
    every member gets the same agent, task and action noise (common random numbers)
    U times: M steps in its own environment copy, then θ ← θ − δ∇θ L̂ on the buffer of its N most
    recent transitions, L̂ = (1 − α) L_{φ_v} + α L_PPO (α annealed from 1 to 0 over ES epochs)
    fitness F = R_K + (1/K) Σ_k ((k+1)/K) R_k over its K episode returns (the paper's footnote)
  member loss = −(mean fitness of its W runs); the estimator turns the V losses into φ's update.

The inner agents are `agents.ActorCritic` states stacked on a leading axis and updated through
`tf.vectorized_map` (`agents.population`); all P environment copies are one batched
`envs.classic_control` environment whose copies keep their task (`keep_tasks`). The loss's input
normalisation statistics are updated once per epoch from everything the epoch collected.

With `backend="ray"` the same epoch runs as one Ray task per member (`remote_population_losses`,
`evaluate_member`): each rebuilds its φ_v from φ, the noise seed and its index, and runs
`train_population` for its W runs on its own copies (gymnasium families such as
`tf_metarl/RandomHopper-v5` included); a member that is lost drops out of the estimate.
"""
from __future__ import annotations

import dataclasses
import functools
import json
from typing import NamedTuple, Optional, Tuple

import keras
import numpy as np
import tensorflow as tf

from tf_metarl import errors
from tf_metarl.agents import population
from tf_metarl.agents.actor_critic import ActorCritic
from tf_metarl.agents.optimizers import SGD, Adam
from tf_metarl.config_utils import dataclass_from_config
from tf_metarl.envs import batched, classic_control
from tf_metarl.envs.gym_envs import describe_env
from tf_metarl.learners.on_policy import OnPolicyConfig, make_networks
from tf_metarl.meta.evolution import SHAPINGS, EvolutionStrategiesEstimator
from tf_metarl.meta.problem import Episodes, InnerProblem
from tf_metarl.meta.remote import RayMembers
from tf_metarl.meta.trainer import MetaTrainer
from tf_metarl.networks.functional import stateless_initial_values
from tf_metarl.objectives.epg import RECEPTIVE_FIELD, EPGObjective
from tf_metarl.objectives.policy_gradient import PPOObjective
from tf_metarl.tasks import BatchedTask, GymTask, Task
from tf_metarl.trajectories import Trajectory


BACKENDS = ("graph", "ray")
META_OPTIMIZERS = ("adam", "sgd")


@dataclasses.dataclass
class EPGConfig:
  """The `epg` config section (the only defaults; configs/epg_random_pendulum.py overrides some)."""
  env: str = "tf_metarl/Pendulum-v1"
  randomize: str = "mass=0.5:1.5,length=0.5:1.5,gravity=8:12"  # the task family (name=low:high)
  held_out: str = "mass=1.5:2.0,length=1.5:2.0,gravity=12:14"  # meta-test draws outside it
  max_episode_steps: int = 0           # the environment's time limit (0: its own, 200 for Pendulum)
  # the inner training
  updates: int = 64                    # U
  update_every: int = 128              # M: environment steps between updates, the loss's window
  buffer_size: int = 128               # N >= M: the transitions the loss reads
  gradient_steps: int = 1              # gradient steps on L̂ per update
  inner_learning_rate: float = 1e-3    # δ (Adam)
  inner_max_grad_norm: float = 0.5
  runs_per_member: int = 2             # W: inner trainings averaged per perturbation
  hidden_sizes: tuple = (64, 64)       # the policy's 2 × 64 tanh units
  memory_units: int = 32
  reward_input: bool = False           # the forward-backward variant feeds r_t to the loss
  ppo_anneal_epochs: int = 50          # α from 1 to 0 over this many ES epochs (0: α = 0 throughout)
  # evolution strategies
  population: int = 16                 # V (antithetic pairs)
  sigma: float = 0.01
  sigma_decay: float = 1.0             # σ_k = σ · decay^k at epoch k (OpenES practice; 1: constant, as the paper)
  sigma_min: float = 0.0               # σ's floor under decay
  antithetic: bool = True
  shaping: str = "centered_rank"
  meta_optimizer: str = "adam"         # adam: Adam (β1 = 0) on the estimate, as the reference; sgd: the paper's
  #                                      φ ← φ + lr/(Vσ) Σ F_i ε_i
  meta_learning_rate: float = 1e-2
  l2: float = 1e-3                     # the reference's outer L2 penalty on φ (Adam)
  # where the inner trainings run
  backend: str = "graph"               # graph: all in one compiled computation (tf_metarl/... envs);
  #                                      ray: one Ray task per member (any environment, e.g. MuJoCo)
  ray_address: str = ""                # "": start Ray on this machine; auto, host:port or ray://host:port
  ray_workers: int = 0                 # worker processes when Ray starts here (0: one per core)
  member_timeout_s: float = 0.0        # a member not back this long after its epoch began is lost (0: no limit)
  jit_compile: bool = False            # compile the in-graph epoch with XLA (graph backend only): 5.3x
  #                                      faster on random Pendulum (RESULTS.md), at a longer first call

  def validate(self) -> "EPGConfig":
    for name in ("updates", "update_every", "buffer_size", "gradient_steps", "runs_per_member", "memory_units"):
      if int(getattr(self, name)) < 1:
        raise errors.ConfigError(f"epg.{name} must be >= 1, got {getattr(self, name)}")
    if self.buffer_size < self.update_every:
      raise errors.ConfigError(f"epg.buffer_size ({self.buffer_size}) must be >= epg.update_every "
                               f"({self.update_every})")
    if self.buffer_size < RECEPTIVE_FIELD:
      raise errors.ConfigError(f"epg.buffer_size ({self.buffer_size}) is shorter than the loss's receptive field "
                               f"of {RECEPTIVE_FIELD} steps")
    if self.backend not in BACKENDS:
      raise errors.ConfigError(f"epg.backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
    if self.backend == "graph" and not classic_control.is_native(self.env):
      raise errors.ConfigError(f"epg.env must be a TensorFlow-native environment (tf_metarl/...) for the in-graph "
                               f"path, got {self.env!r}; use epg.backend=ray for gymnasium environments")
    if self.jit_compile and self.backend != "graph":
      raise errors.ConfigError(f"epg.jit_compile applies to the in-graph path (epg.backend=graph), got "
                               f"epg.backend={self.backend}")
    if self.max_episode_steps and not classic_control.is_native(self.env):
      raise errors.ConfigError(f"epg.max_episode_steps applies to tf_metarl/ classic-control environments; "
                               f"{self.env} keeps its registered time limit")
    if self.ray_workers < 0 or self.member_timeout_s < 0:
      raise errors.ConfigError("epg.ray_workers and epg.member_timeout_s must be >= 0")
    for ranges in (self.randomize, self.held_out):
      parsed = classic_control.parse_ranges(ranges)
      if classic_control.is_native(self.env):  # names and bounds the environment has: a one-line error now
        classic_control.make_native(self.env, randomize=parsed)
    if self.shaping not in SHAPINGS:
      raise errors.ConfigError(f"epg.shaping must be one of {', '.join(SHAPINGS)}, got {self.shaping!r}")
    if self.meta_optimizer not in META_OPTIMIZERS:
      raise errors.ConfigError(f"epg.meta_optimizer must be one of {', '.join(META_OPTIMIZERS)}, got "
                               f"{self.meta_optimizer!r}")
    if not (0 < self.sigma_decay <= 1 and 0 <= self.sigma_min <= self.sigma):
      raise errors.ConfigError(f"epg.sigma_decay must be in (0, 1] and epg.sigma_min in [0, sigma], got "
                               f"{self.sigma_decay} and {self.sigma_min}")
    for name in ("inner_learning_rate", "sigma", "meta_learning_rate"):
      if not getattr(self, name) > 0:
        raise errors.ConfigError(f"epg.{name} must be > 0, got {getattr(self, name)}")
    if self.l2 < 0 or self.ppo_anneal_epochs < 0 or self.max_episode_steps < 0:
      raise errors.ConfigError("epg.l2, epg.ppo_anneal_epochs and epg.max_episode_steps must be >= 0")
    self.estimator()  # ES settings that cannot work (population, antithetic pairs)
    return self

  @property
  def epoch_steps(self) -> int:
    """Environment steps of one ES epoch: V × W inner trainings of U × M steps."""
    return self.population * self.runs_per_member * self.updates * self.update_every

  def learner_settings(self) -> dict:
    """The on-policy learner's settings that train an agent as an inner training does (recorded in
    the export; `train_agent` adopts them): one environment, an update every M steps, one
    gradient step per update on the whole (ordered) buffer. The learner's buffer is its rollout,
    so N = M there. Without XLA: with the exported loss inside, an XLA-compiled update took 12 s
    per iteration against 0.04 s without (measured, Pendulum, one environment; the same loss
    unexported compiles once and takes 0.01 s)."""
    return dict(num_envs=1, rollout_length=self.update_every, epochs=self.gradient_steps, minibatches=1,
                minibatch_unit="copies", learning_rate=self.inner_learning_rate, anneal_learning_rate=False,
                max_grad_norm=self.inner_max_grad_norm, hidden_sizes=list(self.hidden_sizes), jit_compile=False)

  def estimator(self) -> EvolutionStrategiesEstimator:
    return EvolutionStrategiesEstimator(population=self.population, sigma=self.sigma, antithetic=self.antithetic,
                                        shaping=self.shaping)


def config_from_section(values) -> EPGConfig:
  return dataclass_from_config(EPGConfig, dict(values), "epg").validate()


class EPGState(NamedTuple):
  """What persists between ES epochs besides φ: the epoch count (α's schedule)."""
  epoch: tf.Tensor


def ppo_weight(epoch, anneal_epochs: int):
  """α of L̂ = (1 − α) L_φ + α L_PPO: 1 at epoch 0, falling linearly to 0 at `anneal_epochs`."""
  if anneal_epochs <= 0:
    return tf.constant(0.0)
  return tf.maximum(0.0, 1.0 - tf.cast(epoch, tf.float32) / float(anneal_epochs))


def last_finished(values, finished, previous):
  """Per run, the value [T, P] at the last step where an episode finished, else `previous` [P]."""
  steps = tf.range(tf.shape(finished)[0], dtype=tf.float32)[:, None]
  last_step = tf.reduce_max(tf.where(finished > 0, steps, -1.0), axis=0)  # [P]
  value = tf.reduce_sum(tf.where(tf.equal(steps, last_step[None]), tf.cast(values, tf.float32), 0.0), axis=0)
  return tf.where(last_step >= 0, value, previous)


def episode_fitness(returns, finished, count, weighted, last):
  """Accumulates the footnote's fitness over one collection of P runs. returns, finished:
  [T, P] time-major (an episode's return where it finished); count, weighted, last: [P] so far
  (episodes K, Σ_k (k+1) R_k with k from 0, the last R). Returns the updated (count, weighted, last)."""
  index = count[None] + tf.cumsum(finished, axis=0)  # k + 1 of each finished episode
  weighted = weighted + tf.reduce_sum(finished * index * returns, axis=0)
  return count + tf.reduce_sum(finished, axis=0), weighted, last_finished(returns, finished, last)


def fitness_from(count, weighted, last):
  """F = R_K + (1/K²) Σ_k (k+1) R_k per run [P]; 0 for a run without a finished episode."""
  return tf.where(count > 0, last + tf.math.divide_no_nan(weighted, tf.square(count)), 0.0)


UPDATE_METRICS = ("epg_loss", "ppo_loss", "grad_norm")


class RunResults(NamedTuple):
  """What a population of inner trainings did, per run [P]: the footnote's fitness, the number of
  episodes, the last episode's return and length; the raw inputs' moments (count, Σx, Σx²); the
  mean update metrics; the trained agents (stacked); the learning curve [U, P]: the mean return of
  the episodes each run finished in each collection (NaN where none did); `policy_kl` [U, P]: the
  KL divergence KL(π_before ‖ π_after) of each update, averaged over the buffer's states (the
  paper's Figure 6). Runs evaluated on Ray bring back neither agents nor curves (None)."""
  fitness: tf.Tensor
  episodes: tf.Tensor
  last_return: tf.Tensor
  last_length: tf.Tensor
  raw_moments: tuple
  update_metrics: dict
  agents: object
  curve: tf.Tensor
  policy_kl: tf.Tensor = None


class EPGProblem(InnerProblem):
  """Args:
    config: an `EPGConfig`.
    objective: the `EPGObjective` whose trainable variables are φ (η).
    seed: the agents' networks are built from it (their parameters are redrawn for every run).
  """

  def __init__(self, config: EPGConfig, objective: EPGObjective, seed: int, members: Optional[RayMembers] = None):
    self.config = config.validate()
    self.objective = objective
    self.seed = int(seed)
    env_info = describe_env(config.env)
    self.env_info = env_info
    self.task = self._family(config.randomize, config.runs_per_member, reset_period=config.runs_per_member)
    self._test_tasks = {}
    self._meta_test_graphs = {}
    self.members = members  # evaluate members on Ray (`remote_population_losses`) rather than in one graph
    self.member_fn = evaluate_member  # what a Ray task runs for one member
    self.policy, self.critic = make_networks(env_info, OnPolicyConfig(hidden_sizes=tuple(config.hidden_sizes)), seed,
                                             config.memory_units)
    self.agent = ActorCritic(self.policy, self.critic, Adam(config.inner_learning_rate, epsilon=1e-5),
                             max_grad_norm=config.inner_max_grad_norm, select_skips=True)
    self.ppo = PPOObjective()
    self.steps_per_run = config.updates * config.update_every

  def _family(self, ranges: str, copies: int, reset_period: int = 0) -> Task:
    """The randomised task family of `ranges`, each environment copy keeping its task. In graph
    (tf_metarl/ ids; any number of copies), with `reset_period` W run w of every member draws the
    same task and initial states; a gymnasium family (`copies` Python environments, its ranges as
    the `randomize` argument) draws its tasks from the seed of each reset, the same for every
    member."""
    if not classic_control.is_native(self.config.env):
      return GymTask(self.config.env, copies, self.seed, continuous=True,
                     env_kwargs={"randomize": ranges} if ranges else None)
    native = classic_control.make_native(self.config.env, randomize=classic_control.parse_ranges(ranges),
                                         keep_tasks=True, max_episode_steps=self.config.max_episode_steps or None,
                                         reset_period=reset_period)
    env = native if native.discrete else batched.ClippedActions(native, native.action_low, native.action_high)
    return BatchedTask(self.config.env, env, self.env_info.num_actions, evaluation_steps=native.max_episode_steps)

  def test_task(self, held_out: bool, runs: int) -> Task:
    """The meta-test family (the training ranges or the held-out ones) for `runs` runs."""
    key = (held_out, 0 if classic_control.is_native(self.config.env) else runs)
    if key not in self._test_tasks:
      self._test_tasks[key] = self._family(self.config.held_out if held_out else self.config.randomize, runs)
    return self._test_tasks[key]

  def init(self, eta, seed) -> EPGState:
    return EPGState(epoch=tf.constant(0, tf.int64))

  def perturbation_scale(self, state: EPGState):
    """σ's decay: σ_k = σ · max(decay^k, sigma_min / σ) at epoch k."""
    c = self.config
    decayed = tf.pow(tf.constant(c.sigma_decay, tf.float32), tf.cast(state.epoch, tf.float32))
    return tf.maximum(decayed, c.sigma_min / c.sigma)

  # --- one epoch: the whole population of inner trainings -----------------------------------
  def fresh_agents(self, seed, count: int):
    """`count` freshly initialised agent states, stacked [count, ...]."""
    states = []
    for s in tf.unstack(tf.random.experimental.stateless_split(seed, num=count)):
      policy_seed, critic_seed = tf.unstack(tf.random.experimental.stateless_split(s, num=2))
      policy = stateless_initial_values(self.policy, policy_seed)
      critic = stateless_initial_values(self.critic, critic_seed)
      states.append(self.agent.init()._replace(policy=policy, critic=critic,
                                               optimizer=self.agent.optimizer.init(policy + critic)))
    return population.stack(states)

  def _act_fn(self, runs: int):
    """The policy of P = V × `runs` agents, each in its own environment copy: observations [P, O]
    -> actions [P, ...]. Run w of every member draws the same noise (common random numbers: with
    equal losses, members' runs would be identical)."""

    def act(stacked_policy, observations, seed):
      outputs = population.vectorize(lambda params, obs: self.agent.policy_outputs(params, obs[None])[0])(
          stacked_policy, observations)
      members = outputs.shape[0] // runs
      uniform = tf.random.stateless_uniform([runs, outputs.shape[-1]], seed, minval=1e-7, maxval=1.0)
      return self.agent.act_from_uniform(outputs, tf.tile(uniform, [members, 1]))

    return act

  def _loss_fn(self, phi, alpha):
    """L̂ for one agent, given its member's φ (explicit tensors)."""
    window = self.config.update_every

    def objective_fn(inputs):
      learned = self.objective.loss_with(inputs, phi)
      recent = {k: v[:, -window:] for k, v in inputs.items()}
      ppo = self.ppo(recent)
      return {"loss": (1.0 - alpha) * learned + alpha * ppo["loss"], "epg_loss": learned, "ppo_loss": ppo["loss"]}

    return objective_fn

  def _update(self, stacked_agents, buffer, stacked_phi, alpha):
    """One update of every agent on its buffer ([P, N, ...]; each agent's batch is [1, N, ...])."""

    def one(state, batch, phi):
      batch = tf.nest.map_structure(lambda x: x[None], batch)
      metrics = {}
      for _ in range(self.config.gradient_steps):
        state, metrics = self.agent.update(state, batch, self._loss_fn(phi, alpha))
      return state, metrics

    return population.vectorize(one)(stacked_agents, buffer, stacked_phi)

  def train_population(self, stacked_phi, runs: int, alpha, seed, task: Task) -> RunResults:
    """Trains V × `runs` fresh agents, run w of member v with loss φ_v (`stacked_phi` [V, ...]) on
    task w of `task`'s family (the same agent and task for run w of every member), and returns
    what they did; no side effects (the normalisation statistics are read, not updated)."""
    c = self.config
    members = int(stacked_phi[0].shape[0])
    size = members * runs
    agent_seed, env_seed, loop_seed = tf.unstack(tf.random.experimental.stateless_split(seed, num=3))
    tile = lambda tree: tf.nest.map_structure(lambda x: tf.tile(x, [members] + [1] * (x.shape.rank - 1)), tree)
    agents = tile(self.fresh_agents(agent_seed, runs))
    env_state = task.reset(env_seed, size)  # the training family repeats its draws every `runs` copies
    phi = [tf.repeat(p, runs, axis=0) for p in stacked_phi]  # [P, ...]: agent i = member i // runs
    zeros = tf.zeros([size], tf.float32)
    raw_size = self.objective.normalizer.size
    moments_sum = (tf.zeros([]), tf.zeros([raw_size]), tf.zeros([raw_size]))  # count, Σx, Σx²
    act = self._act_fn(runs)

    def body(u, agents, env_state, buffer, count, weighted, last, last_length, sums, metric_sums, curve, kl):
      rollout_seed = tf.random.experimental.stateless_fold_in(loop_seed, u)
      env_state, trajectory, episodes = task.rollout(env_state, act, agents.policy, rollout_seed, c.update_every)
      finished = tf.reshape(episodes.finished, [c.update_every, size])
      returns = tf.reshape(episodes.returns, [c.update_every, size])
      count, weighted, last = episode_fitness(returns, finished, count, weighted, last)
      ended = tf.reduce_sum(finished, axis=0)
      curve = curve.write(u, tf.where(ended > 0, tf.reduce_sum(finished * returns, 0) / tf.maximum(ended, 1.0),
                                      float("nan")))
      last_length = last_finished(tf.reshape(episodes.lengths, [c.update_every, size]), finished, last_length)
      buffer = tf.nest.map_structure(lambda old, new: tf.concat([old, new], 1)[:, -c.buffer_size:], buffer, trajectory)
      raw = tf.reshape(self.objective.raw_features(trajectory, self.policy), [-1, raw_size])
      sums = (sums[0] + tf.cast(tf.shape(raw)[0], tf.float32), sums[1] + tf.reduce_sum(raw, 0),
              sums[2] + tf.reduce_sum(tf.square(raw), 0))
      before = self._buffer_policies(agents, buffer)
      agents, metrics = self._update(agents, buffer, phi, alpha)
      kl = kl.write(u, tf.reduce_mean(before.kl_divergence(self._buffer_policies(agents, buffer)), axis=1))
      metric_sums = tuple(s + tf.reduce_mean(metrics[n]) for s, n in zip(metric_sums, UPDATE_METRICS))
      return u + 1, agents, env_state, buffer, count, weighted, last, last_length, sums, metric_sums, curve, kl

    per_update = lambda: tf.TensorArray(tf.float32, size=c.updates, element_shape=[size])
    loop = (tf.constant(0), agents, env_state, self._empty_buffer(size), zeros, zeros, zeros, zeros, moments_sum,
            tuple(tf.zeros([]) for _ in UPDATE_METRICS), per_update(), per_update())
    _, agents, _, _, count, weighted, last, last_length, sums, metric_sums, curve, kl = tf.while_loop(
        lambda u, *_: u < c.updates, body, loop)
    return RunResults(fitness=fitness_from(count, weighted, last), episodes=count, last_return=last,
                      last_length=last_length, raw_moments=sums,
                      update_metrics={n: s / float(c.updates) for n, s in zip(UPDATE_METRICS, metric_sums)},
                      agents=agents, curve=curve.stack(), policy_kl=kl.stack())

  def _buffer_policies(self, agents, buffer):
    """π(·|s) of every agent at every state of its buffer: a distribution with batch [P, N]."""
    outputs = population.vectorize(lambda params, obs: self.agent.policy_outputs(params, obs))(
        agents.policy, buffer.observations)
    return self.policy.distribution(outputs)

  def population_losses(self, stacked_eta, state: EPGState, seed):
    c = self.config
    members, runs = int(stacked_eta[0].shape[0]), c.runs_per_member
    alpha = ppo_weight(state.epoch, c.ppo_anneal_epochs)
    results = self.train_population(stacked_eta, runs, alpha, seed, self.task)
    return self._epoch_outcome(results, members, alpha, state, {})

  def _epoch_outcome(self, results: RunResults, members: int, alpha, state: EPGState, extra: dict):
    """What both paths do with an epoch's runs: the members' losses (−mean fitness of their W
    runs; NaN for a lost member), the statistics merged, the metrics (over the runs that came
    back)."""
    runs = self.config.runs_per_member
    count, total, squares = results.raw_moments
    mean = total / tf.maximum(count, 1.0)
    self.objective.normalizer.merge(count, mean, tf.maximum(squares / tf.maximum(count, 1.0) - tf.square(mean), 0.0))
    back = tf.math.is_finite(results.fitness)  # [P]
    # Each run's last episode: the training return the trainer logs (what an inner training ends at).
    episodes = Episodes(tf.where(back, results.last_return, 0.0), tf.cast(results.last_length, tf.int32),
                        tf.cast(tf.logical_and(back, results.episodes > 0), tf.float32))
    present = lambda x: tf.reduce_mean(tf.boolean_mask(x, back))
    steps = tf.reduce_sum(tf.cast(back, tf.int64)) * self.steps_per_run
    metrics = {"env_steps": steps, "episodes": episodes, "epg/run_fitness": results.fitness,
               "epg/fitness": present(results.fitness), "epg/episodes_per_run": present(results.episodes),
               "epg/ppo_weight": alpha, **extra}
    metrics.update({f"epg/{n}": v for n, v in results.update_metrics.items()})
    member_fitness = tf.reduce_mean(tf.reshape(results.fitness, [members, runs]), axis=1)
    return -member_fitness, EPGState(state.epoch + 1), metrics

  # --- the same epoch on Ray: one task per member -------------------------------------------
  def evaluates_remotely(self) -> bool:
    return self.members is not None

  def remote_population_losses(self, estimator, eta, noise_seed, sigma, state: EPGState, seed):
    c = self.config
    alpha = ppo_weight(state.epoch, c.ppo_anneal_epochs)
    normalizer = [tf.convert_to_tensor(v) for v in self.objective.normalizer.variables]
    raw_size, size = self.objective.normalizer.size, c.population * c.runs_per_member
    outputs = tf.py_function(
        functools.partial(self._run_members, len(eta)), [noise_seed, sigma, seed, alpha] + list(eta) + normalizer,
        [tf.float32] * 4 + [tf.float32] * 3 + [tf.float32] * (len(UPDATE_METRICS) + 3))
    shapes = [[size]] * 4 + [[], [raw_size], [raw_size]] + [[]] * (len(UPDATE_METRICS) + 3)
    for x, shape in zip(outputs, shapes):
      x.set_shape(shape)
    fitness, episodes, last_return, last_length = outputs[:4]
    update_metrics = dict(zip(UPDATE_METRICS, outputs[7:7 + len(UPDATE_METRICS)]))
    lost, sent, received = outputs[7 + len(UPDATE_METRICS):]
    results = RunResults(fitness=fitness, episodes=episodes, last_return=last_return, last_length=last_length,
                         raw_moments=tuple(outputs[4:7]), update_metrics=update_metrics, agents=None, curve=None)
    extra = {"epg/lost_members": lost, "epg/bytes_sent": sent, "epg/bytes_received": received}
    return self._epoch_outcome(results, c.population, alpha, state, extra)

  def _run_members(self, num_eta, noise_seed, sigma, seed, alpha, *tensors):
    """(Eager, inside the py_function.) Every member as a Ray task; the arrays of `RunResults`."""
    c = self.config
    shared = {"config": dataclasses.asdict(c), "seed": self.seed, "noise_seed": noise_seed.numpy(),
              "sigma": float(sigma),
              "inner_seed": seed.numpy(), "alpha": float(alpha), "eta": [t.numpy() for t in tensors[:num_eta]],
              "normalizer": [t.numpy() for t in tensors[num_eta:]]}
    results, report = self.members.map(self.member_fn, shared, list(range(c.population)))
    runs, raw_size = c.runs_per_member, self.objective.normalizer.size
    per_run = {k: np.full([c.population, runs], np.nan if k == "fitness" else 0.0, np.float32)
               for k in ("fitness", "episodes", "last_return", "last_length")}
    moments = [np.zeros([], np.float32), np.zeros([raw_size], np.float32), np.zeros([raw_size], np.float32)]
    metric_sums = np.zeros([len(UPDATE_METRICS)], np.float32)
    for member, result in enumerate(results):
      if result is None:
        continue
      for k in per_run:
        per_run[k][member] = result[k]
      moments = [m + r for m, r in zip(moments, result["raw_moments"])]
      metric_sums += [result["update_metrics"][n] for n in UPDATE_METRICS]
    back = max(1, c.population - len(report.lost))
    return ([per_run[k].reshape(-1) for k in ("fitness", "episodes", "last_return", "last_length")] + moments
            + list(metric_sums / back) + [np.float32(len(report.lost)), np.float32(report.bytes_sent),
                                          np.float32(report.bytes_received)])

  # --- meta-test: fresh agents trained by the current loss alone, without rewards ------------
  def meta_test(self, runs: int, seed, held_out: bool = False, ppo_weight=0.0) -> RunResults:
    """`runs` fresh agents trained with the current φ (the loss model's own parameters) and α =
    `ppo_weight` (0: the learned loss alone, without rewards; 1: PPO alone, the baseline) on the
    training family or the held-out one."""
    phi = [tf.convert_to_tensor(v)[None] for v in self.objective.network.trainable_variables]
    return self.train_population(phi, runs, tf.cast(ppo_weight, tf.float32), seed, self.test_task(held_out, runs))

  def compiled_meta_test(self, runs: int, held_out: bool = False):
    """`meta_test` compiled once per number of runs and family: (seed, ppo_weight) -> RunResults
    (α is a tensor argument, so the learned loss and PPO share one graph), with XLA under
    `epg.jit_compile`."""
    key = (runs, held_out)
    if key not in self._meta_test_graphs:
      self._meta_test_graphs[key] = tf.function(lambda s, a: self.meta_test(runs, s, held_out, a),
                                                jit_compile=self.config.jit_compile)
    graph = self._meta_test_graphs[key]
    return lambda seed, ppo_weight=0.0: graph(tf.convert_to_tensor(seed, tf.int32), tf.constant(ppo_weight, tf.float32))

  def evaluate(self, state, episodes: int, seed: int):
    """The last episode's return of `episodes` meta-test runs on the training family."""
    if episodes <= 0:
      return []
    return self.compiled_meta_test(episodes)([seed % (2**31), 5]).last_return.numpy().tolist()

  def _empty_buffer(self, size: int) -> Trajectory:
    """[P, N, ...] zeros (the paper pads the buffer with zeros before it fills)."""
    c, obs_dim = self.config, int(np.prod(self.env_info.observation_shape))
    steps = c.buffer_size
    if self.env_info.num_actions:
      actions, outputs = tf.zeros([size, steps], tf.int32), tf.zeros([size, steps, self.env_info.num_actions])
    else:
      actions = tf.zeros([size, steps, self.env_info.action_dim])
      outputs = tf.zeros([size, steps, 2 * self.env_info.action_dim])
    zeros = tf.zeros([size, steps])
    return Trajectory(observations=tf.zeros([size, steps, obs_dim]), actions=actions, rewards=zeros,
                      next_observations=tf.zeros([size, steps, obs_dim]), terminated=zeros, truncated=zeros,
                      policy_outputs=outputs, log_probs=zeros, episode_steps=zeros)

  def recording_sources(self):
    """The training family's task in graph: every inner run's episodes (V × W copies), each epoch's
    fresh runs starting new ones. On Ray the experience stays on the workers: nothing to record."""
    return [] if self.config.backend == "ray" else super().recording_sources()

  # The ES estimator only calls population_losses; these complete the interface.
  def unroll(self, eta, state, seed) -> Tuple[object, object, dict]:
    raise errors.ConfigError("EPG's inner trainings run whole, through population_losses")

  def meta_batch(self, state, seed):
    raise errors.ConfigError("EPG's inner trainings run whole, through population_losses")

  def params(self, state):
    return []

  def with_params(self, state, params):
    return state


class EPGTrainer(MetaTrainer):
  """The meta-trainer wired for EPG from a config: φ = the `EPGObjective`'s network, the ES
  estimator, Adam (β1 = 0, the L2 penalty) on its estimate, as the reference."""

  def __init__(self, config: EPGConfig, seed: int):
    config.validate()
    self.config = config
    members = None
    if config.backend == "ray":  # an unreachable address fails here, before anything runs
      members = RayMembers(config.ray_address, config.ray_workers, config.member_timeout_s)
    self._objective = build_objective(config, seed)
    problem = EPGProblem(config, self._objective, seed, members)
    meta_optimizer = (SGD(config.meta_learning_rate) if config.meta_optimizer == "sgd" else
                      Adam(config.meta_learning_rate, beta_1=0.0, l2=config.l2))
    super().__init__(problem, config.estimator(), self._objective.network, meta_optimizer, seed,
                     jit_compile=config.jit_compile)

  @classmethod
  def from_logdir(cls, logdir: str):
    """The trainer of a `meta_train` run with its latest checkpoint restored. Returns (trainer,
    the run's config as a dict, the restored checkpoint's path)."""
    import os
    from tf_metarl.learners.checkpoints import CheckpointStore
    try:
      with open(os.path.join(logdir, "config.json")) as f:
        config = json.load(f)
      section = config_from_section(config["epg"])
    except (OSError, ValueError, KeyError) as e:
      raise errors.ConfigError(f"{logdir}: not an EPG meta_train run ({type(e).__name__}: {e})") from None
    trainer = cls(section, int(config["seed"]))
    store = CheckpointStore(os.path.join(logdir, "checkpoints"), tf.train.Checkpoint(**trainer.checkpoint_items()),
                            lambda path: None, lambda path: None)
    restored, damaged = store.restore()
    if not restored:
      raise errors.ConfigError(f"{logdir}: no checkpoint to restore ({'; '.join(damaged) or 'none written'})")
    return trainer, config, restored

  def objective(self) -> EPGObjective:
    """The learned loss L_φ (what `meta_train --export` exports)."""
    return self._objective


def build_objective(config: EPGConfig, seed: int) -> EPGObjective:
  """A freshly initialised L_φ for `config`'s environment (φ drawn from `seed`)."""
  env_info = describe_env(config.env)
  keras.utils.set_random_seed(seed)  # φ's initial draw
  objective = EPGObjective(int(np.prod(env_info.observation_shape)), num_actions=env_info.num_actions or None,
                           action_dim=None if env_info.num_actions else env_info.action_dim,
                           memory_units=config.memory_units, reward_input=config.reward_input,
                           loss_window=config.update_every)
  objective.set_learner_settings(config.learner_settings())
  return objective


@functools.lru_cache(maxsize=2)
def _member_trainer(config_json: str, seed: int):
  """(Per worker process, built once per config.) The problem and its compiled inner training
  of one member: (φ_member stacked [1, ...], α, seed) -> `RunResults`."""
  config = config_from_section(json.loads(config_json))
  problem = EPGProblem(config, build_objective(config, seed), seed)
  runs = config.runs_per_member
  train = tf.function(lambda phi, alpha, s: problem.train_population(phi, runs, alpha, s, problem.task))
  return problem, train


def evaluate_member(shared: dict, index: int) -> dict:
  """One ES member's W inner trainings, in this process (what a Ray task runs). `shared`: the
  config, seeds, α, φ and the loss's normalisation statistics of the epoch; the member's φ is
  rebuilt from φ and the noise seed (`EvolutionStrategiesEstimator.member_eta`), so only seeds
  and an index travel per member. Returns numpy arrays: per run fitness, episodes, last return
  and length [W]; the raw inputs' moments; the mean update metrics."""
  problem, train = _member_trainer(json.dumps(shared["config"], sort_keys=True), int(shared["seed"]))
  for variable, value in zip(problem.objective.normalizer.variables, shared["normalizer"]):
    variable.assign(value)
  eta = [tf.constant(v) for v in shared["eta"]]
  phi = problem.config.estimator().member_eta(eta, tf.constant(shared["noise_seed"]), index, shared["sigma"])
  results = train([p[None] for p in phi], tf.constant(shared["alpha"], tf.float32), tf.constant(shared["inner_seed"]))
  return {"fitness": results.fitness.numpy(), "episodes": results.episodes.numpy(),
          "last_return": results.last_return.numpy(), "last_length": results.last_length.numpy(),
          "raw_moments": [m.numpy() for m in results.raw_moments],
          "update_metrics": {k: float(v) for k, v in results.update_metrics.items()}}