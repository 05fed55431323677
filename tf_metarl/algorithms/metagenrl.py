"""MetaGenRL (Kirsch, van Steenkiste, Schmidhuber, ICLR 2020): a population of TD3 agents shares
one neural objective L_α, meta-trained through the critics.

For each agent (policy φ, critics θ) and a replayed batch split into K + 1 disjoint parts:

    φ_0 = φ;   φ_{k+1} = φ_k − λ ∇_φ Σ_{b,t} L_α(part k; φ_k)        k = 0 .. K−1   (Eq. 6, Eq. 8)
    meta-objective = mean over the whole batch of Q_θ1(s, π_{φ_K}(s))

and α ascends the population mean of that meta-objective (second order: through every inner
step). Policies themselves follow ∇_φ L_α (annealed from the DDPG gradient −Q over the first
steps); critics are TD3's. Here: the config, those pure functions, `AgentGroup` (the agents of one
training environment, their environment copies and replay), `MetaGenRLProblem` (the inner
problem) and `MetaGenRLTrainer` (the meta-trainer wired from a config).
"""
from __future__ import annotations

import dataclasses
import os
from typing import Callable, Dict, NamedTuple, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf

from tf_metarl import errors
from tf_metarl.agents import population
from tf_metarl.agents.optimizers import Adam
from tf_metarl.agents.td3 import TD3, TD3Settings, TD3State
from tf_metarl.collection import RolloutCollector, evaluate
from tf_metarl.envs.gym_envs import describe_env, make_env, make_vector_env
from tf_metarl.export.saved_model import restore_parameters
from tf_metarl.learners.replay import SequenceReplay
from tf_metarl.meta.problem import Episodes, InnerProblem
from tf_metarl.meta.trainer import MetaTrainer
from tf_metarl.meta.unrolled import UnrolledEstimator
from tf_metarl.networks import DeterministicPolicy, TwinQCritic
from tf_metarl.networks.functional import functional_call
from tf_metarl.objectives.metagenrl import SCALAR_FEATURES, MetaGenRLObjective
from tf_metarl.objectives.registry import make_objective
from tf_metarl.trajectories import Trajectory


OBJECTIVES = ("learned", "reinforce_offpolicy", "td3")


@dataclasses.dataclass
class MetaGenRLConfig:
  """The paper's Tables 3 and 4 (and the reference code where they are silent); defaults live here.

  num_agents: population size, spread evenly over `envs`.
  inner_steps: K, differentiable policy steps per meta-gradient, on disjoint parts of the batch.
  inner_learning_rate: λ, the fixed SGD step of those inner steps.
  anneal_steps: over the first this many steps the policy's gradient moves linearly from the DDPG
    gradient to ∇_φ L_α.
  scalar_features: the objective's scalar inputs (the ablations drop `time`, or both values).
  objective: `learned` (MetaGenRL: L_α, meta-trained), or a fixed built-in objective the same
    population trains with and nothing is meta-learned: `reinforce_offpolicy` (off-policy
    REINFORCE with GAE, the paper's baseline) or `td3` (the DDPG gradient).
  async_envs: each environment's copies step in worker processes, overlapped with the agents'
    TD3 update (the update then samples a replay without the step in flight); otherwise they
    step in this process before the update.
  objective_init: an exported MetaGenRL objective (`meta_train --export`) whose α starts the
    meta-training instead of a random initialisation: to continue meta-training it on other
    environments (a curriculum, a fine-tuning). Its scalar features and units must be this
    config's. Empty: a random α.
  learn_during_warmup: the reference code's schedule (`louiskirsch/metagenrl`, `ray_workers.py`):
    critics, policies and α update from the first stored segment, during the random-action
    steps, and the annealing runs over each agent's first `anneal_steps` steps. Otherwise (the
    paper's wording) updates start after `warmup_steps` and the annealing follows them.
  """
  envs: Tuple[str, ...] = ("LunarLanderContinuous-v3", "HalfCheetah-v5")
  num_agents: int = 20
  hidden_sizes: Tuple[int, ...] = (350, 350, 350)
  layer_norm: bool = True
  batch_size: int = 100
  sequence_length: int = 20
  warmup_steps: int = 10_000
  exploration_noise: float = 0.1
  gamma: float = 0.99
  tau: float = 0.005
  target_noise: float = 0.2
  target_noise_clip: float = 0.5
  policy_delay: int = 2
  learning_rate: float = 1e-3
  objective_learning_rate: float = 1e-3
  max_grad_norm: float = 1.0
  inner_steps: int = 1
  inner_learning_rate: float = 1e-3
  anneal_steps: int = 10_000
  objective_units: int = 32
  scalar_features: Tuple[str, ...] = SCALAR_FEATURES
  replay_capacity: int = 1_000_000
  objective: str = "learned"
  async_envs: bool = False
  learn_during_warmup: bool = False
  objective_init: str = ""

  def validate(self):
    if self.num_agents < 1:
      raise errors.ConfigError(f"num_agents must be >= 1, got {self.num_agents}")
    if not self.envs:
      raise errors.ConfigError("envs must name at least one training environment")
    if len(self.envs) > self.num_agents:
      raise errors.ConfigError(f"{len(self.envs)} training environments need at least as many agents, "
                               f"got num_agents={self.num_agents}")
    if self.inner_steps < 1:
      raise errors.ConfigError(f"inner_steps (K) must be >= 1, got {self.inner_steps}")
    if self.batch_size % (self.inner_steps + 1):
      raise errors.ConfigError(f"batch_size {self.batch_size} must split into inner_steps + 1 = "
                               f"{self.inner_steps + 1} equal parts")
    if self.objective not in OBJECTIVES:
      raise errors.ConfigError(f"objective must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}")
    if self.objective_init and self.objective != "learned":
      raise errors.ConfigError(f"objective_init sets L_α's starting α; the fixed objective {self.objective!r} has none")
    unknown = sorted(set(self.scalar_features) - set(SCALAR_FEATURES))
    if unknown:
      raise errors.ConfigError(f"unknown scalar feature(s) {', '.join(unknown)}; expected a subset of "
                               f"{', '.join(SCALAR_FEATURES)}")
    return self

  def learner_settings(self) -> dict:
    """The agents' settings as `train_agent`'s `off_policy` section: what an agent meta-tested
    with the exported L_α trains with (warm-up, batch of segments, networks, TD3's constants)."""
    return dict(hidden_sizes=list(self.hidden_sizes), layer_norm=self.layer_norm, batch_size=self.batch_size,
                sequence_length=self.sequence_length, warmup_steps=self.warmup_steps,
                exploration_noise=self.exploration_noise, gamma=self.gamma, tau=self.tau,
                target_noise=self.target_noise, target_noise_clip=self.target_noise_clip,
                policy_delay=self.policy_delay, actor_learning_rate=self.learning_rate,
                critic_learning_rate=self.learning_rate, max_grad_norm=self.max_grad_norm,
                learn_during_warmup=self.learn_during_warmup)

  def update_start(self) -> int:
    """Stored steps per agent before the first update: one segment, and with the paper's
    schedule the random-action steps too."""
    return self.sequence_length if self.learn_during_warmup else max(self.warmup_steps, self.sequence_length)

  def anneal_start(self) -> int:
    """The step per agent at which the annealing from the DDPG gradient to L_α begins."""
    return 0 if self.learn_during_warmup else self.warmup_steps


def objective_values(objective: MetaGenRLObjective, eta: Sequence[tf.Tensor], inputs: Dict[str, tf.Tensor]):
  """l_t [B, T] of L_α with parameters η (explicit tensors: differentiable in η)."""
  return functional_call(objective.network, list(eta), inputs)


def annealed_objective(objective: MetaGenRLObjective, eta, progress) -> Callable:
  """The policy's objective for `TD3.update`: per step progress·l_t − (1 − progress)·Q1(s, π(s)),
  averaged (the reference's annealing from the DDPG gradient; `progress` in [0, 1])."""
  def objective_fn(inputs):
    per_step = (progress * objective_values(objective, eta, inputs)
                - (1.0 - progress) * inputs["q_values"])
    return {"per_step": per_step, "loss": tf.reduce_mean(per_step)}
  return objective_fn


def future_policy_values(td3: TD3, objective: MetaGenRLObjective, eta, states: TD3State, batches: Trajectory,
                         inner_steps: int, inner_learning_rate: float, with_alignment: bool = False):
  """Eq. 6 / 8 for a population of N agents of one environment (`states`, `batches` stacked on a
  leading N axis; batches [N, B, T, ...]): K differentiable SGD steps of every policy on Σ L_α
  over disjoint parts of its batch (split on the B axis into K + 1), then each agent's mean of
  Q_θ1(s, π_{φ_K}(s)) over its whole batch. Returns [N], differentiable in η (critics and batches
  are constants here).

  `with_alignment`: also returns, per agent [N], the cosine between the first inner step's
  direction −∇_φ Σ L_α and the DDPG direction ∇_φ mean Q_θ1(s, π_φ(s)) on the same part (a
  diagnostic, gradients stopped: near 0 or below, L_α does not yet move the policy uphill on Q).

  The agents' policy and critic evaluations are vectorised (`tf.vectorized_map`); L_α runs once
  on all agents' inputs (a leading N axis, normalised per agent), because vectorising a gradient
  through its LSTM's while loop is not supported by TensorFlow's pfor (measured: it fails on the
  loop's variant accumulators). Summing the N agents' losses gives each policy its own gradient:
  agent n's loss depends only on its own parameters.
  """
  def split(x, k):
    return tf.split(x, inner_steps + 1, axis=1)[k]

  critics = tf.nest.map_structure(tf.stop_gradient, list(states.critic))
  policies = list(states.policy)
  actor_inputs = population.vectorize(td3.actor_inputs)
  for k in range(inner_steps):
    part = tf.nest.map_structure(lambda x, k=k: split(x, k), batches)
    with tf.GradientTape(watch_accessed_variables=False) as tape:
      tape.watch(policies)
      inner_loss = tf.reduce_sum(objective_values(objective, eta, actor_inputs(policies, critics, part)))
    grads = tape.gradient(inner_loss, policies, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    # Through vectorized_map the gradients arrive as IndexedSlices (per-agent gathers): densify.
    grads = [tf.convert_to_tensor(g) for g in grads]
    if k == 0 and with_alignment:
      alignment = _cosine_per_agent([-tf.stop_gradient(g) for g in grads],
                                    _ddpg_directions(td3, [tf.stop_gradient(p) for p in policies], critics, part))
    policies = [p - inner_learning_rate * g for p, g in zip(policies, grads)]

  values = population.vectorize(lambda p, c, b: _mean_q(td3, p, c, b))(policies, critics, batches)
  return (values, alignment) if with_alignment else values


def _mean_q(td3: TD3, policy, critic, batch: Trajectory) -> tf.Tensor:
  """One agent's mean of Q_θ1(s, π_φ(s)) over a batch's states."""
  return tf.reduce_mean(td3.q_values(critic, batch.observations, td3.actions(policy, batch.observations))[0])


def actions_at_bound(td3: TD3, policies, batches: Trajectory, margin: float = 0.01) -> tf.Tensor:
  """Per agent [N], the fraction of π_φ(s)'s action components over a batch's states that lie
  within `margin` half-ranges of a bound (a diagnostic: near 1, the policies' tanh outputs have
  saturated, so neither L_α's policy gradient nor the meta-gradient reaches them)."""
  def fraction(policy, batch):
    actions = td3.actions(policy, batch.observations)
    low, high = tf.cast(td3.low, actions.dtype), tf.cast(td3.high, actions.dtype)
    return tf.reduce_mean(tf.cast(tf.abs(actions - (low + high) / 2) >= (1.0 - margin) * (high - low) / 2, tf.float32))
  return population.vectorize(fraction)([tf.stop_gradient(p) for p in policies], batches)


def _ddpg_directions(td3: TD3, policies, critics, batches: Trajectory):
  """∇_φ mean Q_θ1(s, π_φ(s)) of every agent (stacked [N, ...] like `policies`)."""
  with tf.GradientTape(watch_accessed_variables=False) as tape:
    tape.watch(policies)
    total = tf.reduce_sum(population.vectorize(lambda p, c, b: _mean_q(td3, p, c, b))(policies, critics, batches))
  return [tf.convert_to_tensor(g) for g in tape.gradient(total, policies,
                                                         unconnected_gradients=tf.UnconnectedGradients.ZERO)]


def _cosine_per_agent(a, b) -> tf.Tensor:
  """Cosine [N] between two parameter lists stacked on a leading agent axis."""
  flat = lambda xs: tf.concat([tf.reshape(x, [tf.shape(x)[0], -1]) for x in xs], axis=1)
  a, b = flat(a), flat(b)
  return tf.reduce_sum(a * b, 1) / tf.maximum(tf.norm(a, axis=1) * tf.norm(b, axis=1), 1e-12)


def population_meta_loss(td3: TD3, objective: MetaGenRLObjective, eta, states: TD3State, batches: Trajectory,
                         inner_steps: int, inner_learning_rate: float, vectorized: bool = True) -> tf.Tensor:
  """−(population mean of `future_policy_values`): the loss α descends. `vectorized=False`
  evaluates the agents one by one (a population of one each), the reference to compare against."""
  if vectorized:
    values = future_policy_values(td3, objective, eta, states, batches, inner_steps, inner_learning_rate)
  else:
    n = int(tf.nest.flatten(states)[0].shape[0])
    one = lambda x, i: x[i:i + 1]
    values = tf.concat([future_policy_values(td3, objective, eta, tf.nest.map_structure(lambda x: one(x, i), states),
                                             tf.nest.map_structure(lambda x: one(x, i), batches), inner_steps,
                                             inner_learning_rate) for i in range(n)], 0)
  return -tf.reduce_mean(values)


class AgentGroup:
  """The agents of one training environment: one TD3 structure (networks sized to it), a vector
  environment with one copy per agent, and a replay with one column per agent (agent i acts in
  copy i and trains on column i only). Python-side state (environments, replay) is stepped from
  the compiled meta-step through `tf.py_function`, as `tasks.GymTask` does."""

  def __init__(self, env_id: str, num_agents: int, config: MetaGenRLConfig, seed: int):
    info = describe_env(env_id)
    if info.action_kind != "continuous":
      raise errors.IncompatibleSpaceError(f"MetaGenRL trains continuous-action agents; {env_id} has "
                                          f"{info.num_actions} discrete actions")
    self.env_id, self.num_agents, self.info, self.config = env_id, int(num_agents), info, config
    self.observation_dim = int(np.prod(info.observation_shape))
    self.action_dim = info.action_dim
    self.make_policy = lambda: DeterministicPolicy(self.observation_dim, info.action_low, info.action_high,
                                                   config.hidden_sizes, "relu", config.layer_norm)
    self.make_critic = lambda: TwinQCritic(self.observation_dim, self.action_dim, config.hidden_sizes, "relu",
                                           config.layer_norm)
    settings = TD3Settings(gamma=config.gamma, tau=config.tau, policy_delay=config.policy_delay,
                           target_noise=config.target_noise, target_noise_clip=config.target_noise_clip,
                           episode_step_limit=float(info.max_episode_steps or 1000),
                           max_grad_norm=config.max_grad_norm)
    self.td3 = TD3(self.make_policy(), self.make_critic(), Adam(config.learning_rate), Adam(config.learning_rate),
                   settings)
    self.collector = RolloutCollector(make_vector_env(env_id, self.num_agents, seed, config.async_envs), seed)
    self.replay = SequenceReplay(config.replay_capacity, self.num_agents, self.observation_dim, self.action_dim)
    self.rng = np.random.default_rng(seed)
    self.eval_env = make_env(env_id)
    self.recent_returns = []
    self.recorder = None  # a recording.EpisodeRecorder (meta_train --record)

  def init(self, seed: int) -> TD3State:
    """Every agent's own initialisation (fresh networks per agent), stacked on a leading N axis."""
    states = []
    for i in range(self.num_agents):
      keras.utils.set_random_seed(seed * 1_000 + i)
      policy, critic = self.make_policy(), self.make_critic()
      states.append(self.td3.init([tf.convert_to_tensor(v.value) for v in policy.trainable_variables],
                                  [tf.convert_to_tensor(v.value) for v in critic.trainable_variables]))
    return population.stack(states)

  # Python side, called through tf.py_function.
  def observations(self):
    return self.collector.observations

  def send(self, actions):
    """Hands the actions [N, A] to every copy (`RolloutCollector.send`): with asynchronous copies
    they step while the caller computes; `receive` completes the step."""
    actions = np.asarray(actions, np.float32)
    self.collector.send({"actions": actions, "log_probs": np.zeros(len(actions), np.float32),
                         "policy_outputs": actions})

  def receive(self):
    """Completes the step `send` began and stores it. Returns (finished [N], returns [N], lengths
    [N]) of episodes that ended at this step."""
    step, stats = self.collector.receive()
    trajectory = Trajectory(*(x[:, None] for x in step))  # [N, 1, ...]
    if self.recorder is not None:  # meta_train --record
      self.recorder.add(trajectory)
    self.replay.add_trajectory(trajectory)
    self.recent_returns = (self.recent_returns + list(stats.returns))[-100:]
    returns, lengths = stats.per_step(self.num_agents, 1)
    return (lengths[:, 0] > 0).astype(np.float32), returns[:, 0], lengths[:, 0]

  def sample(self):
    batch = self.replay.sample_per_copy(self.rng, self.config.batch_size, self.config.sequence_length)
    return tuple(batch)

  # Graph side.
  def update(self, states: TD3State, batches: Trajectory, seed, objective_fn):
    """One TD3 step of every agent (`TD3.population_update`: critics, then, every
    `policy_delay`-th step, policies by `objective_fn` and the target networks). Returns (states,
    metrics [N]: critic_loss, q_mean, objective_loss: the policies' loss, NaN on steps without a
    policy update)."""
    new, metrics = self.td3.population_update(states, batches, seed, objective_fn)
    metrics["objective_loss"] = metrics.pop("actor_loss")
    return new, metrics

  def sample_graph(self) -> Trajectory:
    n, b, t, o, a = (self.num_agents, self.config.batch_size, self.config.sequence_length, self.observation_dim,
                     self.action_dim)
    shapes = dict(observations=[n, b, t, o], actions=[n, b, t, a], next_observations=[n, b, t, o],
                  policy_outputs=[n, b, t, a])
    outputs = tf.py_function(self.sample, [], [tf.float32] * len(Trajectory._fields))
    for name, x in zip(Trajectory._fields, outputs):
      x.set_shape(shapes.get(name, [n, b, t]))
    return Trajectory(*outputs)

  def act_and_send(self, state: TD3State, steps, seed):
    """Exploration actions (uniform random during warm-up) for every copy, handed to the copies
    (`send`, a stateful op: it runs in program order); `receive_graph` completes the step."""
    observations = tf.py_function(self.observations, [], tf.float32)
    observations.set_shape([self.num_agents, self.observation_dim])
    low, high = tf.constant(self.info.action_low, tf.float32), tf.constant(self.info.action_high, tf.float32)
    normal = tf.random.stateless_normal([self.num_agents, 1, self.action_dim], tf.random.experimental.stateless_fold_in(
        seed, 1))
    explore = population.vectorize(
        lambda p, o, z: self.td3.explore(p, o[None], None, self.config.exploration_noise, normal=z)[0])

    def random_actions():
      u = tf.random.stateless_uniform([self.num_agents, self.action_dim], seed)
      return low + u * (high - low)

    actions = tf.cond(steps < self.config.warmup_steps, random_actions,
                      lambda: explore(state.policy, observations, normal))
    return tf.py_function(self.send, [actions], [])

  def receive_graph(self):
    """`receive` from the graph: (finished [N], returns [N], lengths [N])."""
    finished, returns, lengths = tf.py_function(self.receive, [], [tf.float32, tf.float32, tf.int32])
    for x in (finished, returns, lengths):
      x.set_shape([self.num_agents])
    return finished, returns, lengths

  def evaluate(self, state: TD3State, episodes: int, seed: int):
    """Greedy returns of agents 0, 1, ... (one episode each, `episodes` in all, cycling)."""
    out = []
    for k in range(episodes):
      params = population.member(state, k % self.num_agents).policy
      act = lambda obs: self.td3.actions(params, tf.constant(obs)).numpy()
      out += evaluate(self.eval_env, act, 1, seed=seed + k)
    return out


class MetaGenRLState(NamedTuple):
  """groups: one stacked TD3State per training environment; steps: int64 scalar, the environment
  steps each agent has taken."""
  groups: tuple
  steps: tf.Tensor


class MetaGenRLProblem(InnerProblem):
  """MetaGenRL as an inner problem (for `MetaTrainer` with `UnrolledEstimator(1)`).

  `unroll`: `policy_delay` environment steps of every agent, each followed (after warm-up) by a
  TD3 update of every agent on its own replay (critic every step, policy with the annealed L_α on
  every `policy_delay`-th), all agents of a group in one vectorised call. Its result is returned
  with gradients stopped: α's gradient comes only from `meta_loss`, which runs MetaGenRL's own K
  inner steps from the current policies (`future_policy_values`) on fresh replay batches.
  """

  def __init__(self, groups: Sequence[AgentGroup], objective: MetaGenRLObjective, config: MetaGenRLConfig,
               fixed_objective=None):
    """`fixed_objective`: an `Objective` the policies follow instead of L_α (a baseline): no
    annealing, no meta-batch, no meta-loss."""
    self.groups, self.objective, self.config = tuple(groups), objective, config
    self.fixed_objective = fixed_objective
    self.total_agents = sum(g.num_agents for g in self.groups)
    self.warm_start_steps = 0  # recorded steps per agent in the replays (`warm_start`): they count toward warm-up

  def warm_start(self, directory: str) -> int:
    """Fills every agent's replay from datasets recorded with `meta_train --record` (episodes
    dealt to the agents of each environment in turn, `recording.replay_streams`), before the
    first compiled call. The recorded steps per agent (the least over environments) count toward
    `warmup_steps`, not as environment steps. A checkpoint restore afterwards replaces the replays
    with the saved ones, which hold these. Returns the steps per agent."""
    from tf_metarl.recording import population_dataset, replay_streams
    several = len(self.groups) > 1
    lengths = []
    for group in self.groups:
      path = population_dataset(directory, group.env_id, several)
      if not os.path.isdir(path):
        raise errors.ConfigError(f"{directory}: no recorded dataset for {group.env_id} (expected {path}, as "
                                 f"meta_train --record writes)")
      streams = replay_streams(path, group.info, group.num_agents)
      group.replay.add_trajectory(streams)
      lengths.append(int(streams.rewards.shape[1]))
    self.warm_start_steps = min(lengths)
    return self.warm_start_steps

  def init(self, eta, seed):
    seed = int(seed[0].numpy())  # called eagerly, once, by the meta-trainer
    return MetaGenRLState(tuple(g.init(seed + 97 * k) for k, g in enumerate(self.groups)), tf.zeros([], tf.int64))

  def _progress(self, steps):
    """Annealing weight in [0, 1] after `steps` (warm-up credit included: `_warmup_steps`)."""
    annealed = tf.cast(self._warmup_steps(steps) - self.config.anneal_start(), tf.float32)
    return tf.clip_by_value(annealed / max(self.config.anneal_steps, 1), 0.0, 1.0)

  def _warmup_steps(self, steps):
    """The steps warm-up counts: each agent's own, plus the recorded ones its replay started with."""
    return steps + self.warm_start_steps

  def unroll(self, eta, state: MetaGenRLState, seed):
    cfg = self.config
    objective_fn = (self.fixed_objective if self.fixed_objective is not None else
                    annealed_objective(self.objective, eta, self._progress(state.steps)))
    groups, steps = list(state.groups), state.steps
    returns, lengths, finished, losses, policy_losses = [], [], [], [], []
    seeds = tf.random.experimental.stateless_split(seed, num=2 * cfg.policy_delay * len(self.groups))
    for t in range(cfg.policy_delay):
      for k, group in enumerate(self.groups):
        s1, s2 = seeds[2 * (t * len(self.groups) + k)], seeds[2 * (t * len(self.groups) + k) + 1]
        group.act_and_send(groups[k], self._warmup_steps(steps), s1)
        if not cfg.async_envs:  # the step completes before the update samples the replay
          received = group.receive_graph()

        def update(group=group, current=groups[k], s2=s2):
          new, metrics = group.update(current, group.sample_graph(), s2, objective_fn)
          return new, tf.reduce_mean(metrics["critic_loss"]), tf.reduce_mean(metrics["objective_loss"])

        nan = tf.constant(float("nan"))
        # Steps in this agent's replay when the update samples it (with asynchronous copies, this
        # step is still in flight); the update needs one whole segment (and warm-up done: `update_start`).
        stored = self._warmup_steps(steps) + (0 if cfg.async_envs else 1)
        groups[k], loss, policy_loss = tf.cond(stored >= cfg.update_start(), update,
                                               lambda current=groups[k]: (current, nan, nan))
        losses.append(loss), policy_losses.append(policy_loss)
        if cfg.async_envs:  # the copies stepped in their processes while the update ran
          received = group.receive_graph()
        for out, x in zip((finished, returns, lengths), received):
          out.append(x)
      steps = steps + 1
    new_state = tf.nest.map_structure(tf.stop_gradient, MetaGenRLState(tuple(groups), steps))
    metrics = {"env_steps": tf.constant(cfg.policy_delay * self.total_agents, tf.int64),
               "episodes": Episodes(tf.concat(returns, 0), tf.concat(lengths, 0), tf.concat(finished, 0)),
               "critic_loss": _nan_mean(losses), "policy_objective_loss": _nan_mean(policy_losses),
               "meta/anneal_weight": self._progress(steps)}
    return new_state, (), metrics

  def meta_batch(self, state: MetaGenRLState, seed):
    if self.fixed_objective is not None:
      return state, (tf.constant(False), ()), {"env_steps": tf.zeros([], tf.int64)}
    ready = self._warmup_steps(state.steps) >= self.config.update_start()
    batches = tuple(tf.cond(ready, g.sample_graph, lambda g=g: _zeros_batch(g)) for g in self.groups)
    return state, (ready, batches), {"env_steps": tf.zeros([], tf.int64)}

  def meta_loss(self, eta, state: MetaGenRLState, batch, inner_batches=()):
    ready, batches = batch
    cfg = self.config
    if self.fixed_objective is not None:
      return tf.constant(0.0), {}

    def loss():
      values, alignments = zip(*[future_policy_values(g.td3, self.objective, eta, s, b, cfg.inner_steps,
                                                      cfg.inner_learning_rate, with_alignment=True)
                                 for g, s, b in zip(self.groups, state.groups, batches)])
      at_bound = [actions_at_bound(g.td3, list(s.policy), b) for g, s, b in zip(self.groups, state.groups, batches)]
      # Means over all agents.
      return (-tf.reduce_mean(tf.concat(values, 0)), tf.reduce_mean(tf.concat(alignments, 0)),
              tf.reduce_mean(tf.concat(at_bound, 0)))

    nan = tf.constant(float("nan"))
    value, alignment, at_bound = tf.cond(ready, loss, lambda: (tf.constant(0.0), nan, nan))
    return value, {"future_policy_value": -value, "meta/objective_ddpg_alignment": alignment,
                   "meta/policy_actions_at_bound": at_bound}

  def params(self, state: MetaGenRLState):
    """Every agent's policy and critic parameters (what the trainer checks for non-finite values)."""
    return [p for group in state.groups for p in list(group.policy) + list(group.critic)]

  def evaluate(self, state: MetaGenRLState, episodes: int, seed: int):
    return [r for k, g in enumerate(self.groups) for r in g.evaluate(state.groups[k], episodes, seed + 1_000 * k)]

  def recording_sources(self):
    return [(g.env_id, g.info, g) for g in self.groups]

  def report(self, eta):
    return {f"charts/return_{g.env_id}": float(np.mean(g.recent_returns)) for g in self.groups if g.recent_returns}


def _nan_mean(values):
  """Mean ignoring NaN entries, which mark steps without that update (`loop.mean_metrics`'s rule,
  in the graph); NaN if no step had one."""
  x = tf.stack(values)
  present = ~tf.math.is_nan(x)
  count = tf.reduce_sum(tf.cast(present, x.dtype))
  return tf.where(count > 0, tf.reduce_sum(tf.where(present, x, 0.0)) / tf.maximum(count, 1.0), np.nan)


def _zeros_batch(group: AgentGroup) -> Trajectory:
  n, b, t = group.num_agents, group.config.batch_size, group.config.sequence_length
  o, a = group.observation_dim, group.action_dim
  z = lambda *shape: tf.zeros([n, b, t, *shape])
  return Trajectory(observations=z(o), actions=z(a), rewards=z(), next_observations=z(o), terminated=z(),
                    truncated=z(), policy_outputs=z(a), log_probs=z(), episode_steps=z())


def spread_agents(envs: Sequence[str], num_agents: int) -> Dict[str, int]:
  """Agents per environment, as even as possible (the first environments get one more)."""
  base, extra = divmod(num_agents, len(envs))
  return {env: base + (i < extra) for i, env in enumerate(envs)}


class MetaGenRLTrainer(MetaTrainer):
  """The meta-trainer wired for MetaGenRL from a config (what `meta_train` runs for it). Its
  replays are saved beside each checkpoint; the environment copies restart their episodes on
  resume (gymnasium environments cannot be checkpointed)."""

  def __init__(self, config: MetaGenRLConfig, seed: int):
    config.validate()
    self.config = config
    keras.utils.set_random_seed(seed)
    self.objective_model = MetaGenRLObjective(config.scalar_features, config.objective_units)
    if config.objective_init:  # a checkpoint restored later (resume) replaces this α
      restore_parameters(self.objective_model, config.objective_init)
    groups = [AgentGroup(env, n, config, seed + 7_919 * i)
              for i, (env, n) in enumerate(spread_agents(config.envs, config.num_agents).items())]
    fixed = None if config.objective == "learned" else make_objective(config.objective)
    problem = MetaGenRLProblem(groups, self.objective_model, config, fixed)
    # A baseline meta-learns nothing: its meta-model has no parameters (MetaTrainer then only advances the problem).
    meta_model = self.objective_model.network if fixed is None else keras.Sequential([])
    super().__init__(problem, UnrolledEstimator(1), meta_model, Adam(config.objective_learning_rate),
                     seed, jit_compile=False, max_grad_norm=config.max_grad_norm)
    self.steps_per_iteration = config.policy_delay * problem.total_agents

  def objective(self) -> MetaGenRLObjective:
    """L_α as an exportable objective (its network holds the meta-trained α)."""
    if self.config.objective != "learned":
      raise errors.ConfigError(f"a population trained with the fixed objective {self.config.objective!r} has "
                               "nothing meta-learned to export")
    self.objective_model.set_learner_settings(self.config.learner_settings())
    return self.objective_model

  def save_extra(self, checkpoint_path):
    for k, group in enumerate(self.problem.groups):
      group.replay.save(f"{checkpoint_path}.replay{k}.npz")

  def restore_extra(self, checkpoint_path):
    steps = int(self.env_steps.numpy())
    for k, group in enumerate(self.problem.groups):
      group.replay.load(f"{checkpoint_path}.replay{k}.npz")
      group.rng = np.random.default_rng(self.seed + steps + k)
      group.collector = RolloutCollector(group.collector.env, self.seed + steps + k)
