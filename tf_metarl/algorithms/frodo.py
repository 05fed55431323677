"""FRODO (Xu et al. 2020, "Meta-gradient RL with an objective discovered online") as an inner
problem; the same problem with other target models gives learned γ/λ (Xu et al. 2018) and A2C.

Algorithm (one meta-iteration = `UnrolledEstimator(unroll_steps=M)` on `FrodoProblem`):
  for k = 0 .. M−1:   θ_{k+1} = θ_k − α ∇_θ L_inner(θ_k; η, τ_k)      (differentiable; RMSProp or SGD)
                      τ_{k+1} = rollout of π_{θ_{k+1}}
  L_meta(η) = L_outer(θ_M; τ_M)   [+ b1/|L_outer| · mean_k L_revised(θ_M; τ_k) with the extension]
  η ← η − β ∇_η L_meta             (the meta-trainer's Adam; the gradient flows through all M updates)
τ_M, collected with θ_M, is both the held-out batch of L_outer and, next iteration, the batch of
the first inner update (`reuse_outer_batch`), so an iteration costs M trajectories per copy.

Losses, all `towards_targets` (the actor-critic form with `targets` as the return):
  L_inner = −mean[(G_η − sg V) log π] + c1 ½ mean[(G_η − V)²] − c2 mean[H(π)],  G_η = target model
  L_outer = the same with the canonical n-step return G (bootstrapped from sg V) in place of G_η,
            and its own c1, c2 where set; L_revised = L_outer's form with the inner c1, c2.
Its gradient is ∇_θ L_inner = −[(G_η − V)∇log π + c1 (G_η − V)∇V + c2 ∇H], so the update
θ − α∇_θ L_inner raises log π(a|s) where G_η exceeds V and moves V towards G_η.
"""
from __future__ import annotations

import dataclasses
from typing import Dict, NamedTuple, Optional, Sequence

import keras
import tensorflow as tf

from tf_metarl import errors, losses, returns
from tf_metarl.agents.actor_critic import ActorCritic, ActorCriticState
from tf_metarl.agents.optimizers import make_optimizer
from tf_metarl.algorithms.targets import FrodoTargetNetwork, LearnedLambdaReturn, NStepTarget
from tf_metarl.meta.problem import InnerProblem
from tf_metarl.meta.trainer import MetaTrainer
from tf_metarl.meta.unrolled import UnrolledEstimator
from tf_metarl.networks import CategoricalPolicy, ValueCritic
from tf_metarl.objectives.base import ON_POLICY, Objective
from tf_metarl.tasks import make_task

METHODS = ("frodo", "mgrl", "a2c")


@dataclasses.dataclass
class FrodoConfig:
  """The `frodo` config section: the inner and outer losses and the inner optimizer."""
  inner_steps: int = 3              # M (one inner update per trajectory; M = 1 diverged on Catch)
  inner_optimizer: str = "rmsprop"  # "sgd" or "rmsprop"
  inner_learning_rate: float = 3e-3
  value_coef: float = 0.5           # c1
  entropy_coef: float = 0.01        # c2
  gamma: float = 0.99
  n_step: int = 5                   # n of the canonical return
  extension: bool = False
  extension_coef: float = 0.1       # b1
  # The extension's weight is b1 / max(|L_outer|, this). With 0 (the paper's form) the weight grows
  # without bound as L_outer nears 0; on Catch the revised term then takes over the meta-gradient,
  # G_η's advantages decorrelate from the canonical return's and about 1 seed in 10 stalls
  # (docs/RESULTS.md, FRODO: 9/10 and 9/10 seeds with 0, 10/10 with 0.1).
  extension_scale_floor: float = 0.1
  outer_value_coef: Optional[float] = None    # c1 of the outer loss (None: value_coef)
  outer_entropy_coef: Optional[float] = None  # c2 of the outer loss (None: entropy_coef)


@dataclasses.dataclass
class OnlineMetaConfig:
  """The `learner` config section: task, agent, target model and meta-optimizer; `frodo` nests."""
  env: str = "catch"                   # catch, random_walk, or a discrete-action gymnasium id
  rows: int = 11
  columns: int = 6
  method: str = "frodo"                # frodo, mgrl (learned γ/λ), a2c (fixed n-step target)
  num_envs: int = 16
  trajectory_length: int = 16
  hidden_sizes: tuple = (64,)
  target_units: int = 32
  target_observation_scale: float = 0.1  # weight of G_η's observation inputs (see FrodoTargetNetwork)
  meta_optimizer: str = "adam"
  meta_learning_rate: float = 1e-3
  initial_gamma: float = 0.9    # mgrl
  initial_lambda: float = 0.9   # mgrl
  reuse_outer_batch: bool = True  # the held-out batch becomes the next iteration's first inner batch
  jit_compile: bool = False       # XLA for the meta-step: 1.37x faster on Catch (docs/RESULTS.md); not for gym ids
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
    if self.jit_compile and self.env not in ("catch", "random_walk"):
      raise errors.ConfigError(f"jit_compile needs an in-graph task (catch, random_walk); {self.env} is stepped in Python")
    if self.frodo.inner_steps < 1:
      raise errors.ConfigError(f"frodo.inner_steps (M) must be >= 1, got {self.frodo.inner_steps}")
    if not self.frodo.extension_scale_floor >= 0:
      raise errors.ConfigError(f"frodo.extension_scale_floor must be >= 0, got {self.frodo.extension_scale_floor}")
    if self.frodo.inner_optimizer not in ("sgd", "rmsprop"):
      raise errors.ConfigError(f"frodo.inner_optimizer must be 'sgd' or 'rmsprop', got {self.frodo.inner_optimizer!r}")


def towards_targets(inputs: Dict[str, tf.Tensor], targets, baseline, value_coef, entropy_coef):
  """The actor-critic loss with `targets` as the return: per step [B, T] and parts.

  `baseline` is V with gradients stopped (the advantage does not train the critic); gradients
  flow into `targets`, so a learned target gets its second-order meta-gradient terms.
  """
  return losses.actor_critic(losses.policy_gradient(inputs["log_probs"], targets - baseline), inputs["values"],
                             targets, inputs["entropies"], value_coef, entropy_coef)


class FrodoObjective(Objective):
  """A trained G_η as a shippable objective: the A2C-form loss towards the learned targets.

  Inputs: observations [B, T, O], rewards, discounts, next_values (the target network's inputs),
  values, log_probs, entropies; outputs per_step, loss and `targets` (G_η, [B, T]). Trains a fresh
  agent through the on-policy learner like any objective, critic included.
  """
  kind = "frodo"
  learner = ON_POLICY
  trains_critic = True
  input_names = ("observations", "rewards", "discounts", "next_values", "values", "log_probs", "entropies")
  output_names = ("per_step", "loss", "targets")

  def __init__(self, target_network: FrodoTargetNetwork, observation_dim: int, value_coef: float = 0.5,
               entropy_coef: float = 0.01, name=None):
    super().__init__(name=name)
    self.network = target_network
    self.observation_dim = int(observation_dim)
    self.value_coef, self.entropy_coef = float(value_coef), float(entropy_coef)

  def hyperparameters(self):
    return dict(value_coef=self.value_coef, entropy_coef=self.entropy_coef, observation_dim=self.observation_dim,
                observation_scale=self.network.observation_scale, units=self.network.lstm.units)

  def constraints(self):
    return dict(super().constraints(), observation_dim=self.observation_dim)

  def _loss(self, inputs):
    targets = tf.stop_gradient(self.network.targets(inputs, None, tf.stop_gradient(inputs["next_values"])))
    per_step, parts = towards_targets(inputs, targets, tf.stop_gradient(inputs["values"]), self.value_coef,
                                      self.entropy_coef)
    return dict(parts, per_step=per_step, loss=tf.reduce_mean(per_step), targets=targets)


class FrodoState(NamedTuple):
  """agent: θ and the inner optimizer state; env: the task's state; batch: a trajectory collected
  with the current θ (the next inner batch and the held-out batch), or () without reuse."""
  agent: ActorCriticState
  env: object
  batch: object


class FrodoProblem(InnerProblem):
  """FRODO's inner problem (see the module docstring).

  `semi_gradient_constants`: None in training. A dict makes the problem record the quantities it
  treats as constants (baselines, bootstrap values, the extension's 1/|L_outer|) on a first pass
  and replay them on later ones, so a finite-difference check perturbing η measures the same
  derivative the tape takes; entries are named by their order within a pass (reset by meta_loss).
  """

  def __init__(self, task, agent: ActorCritic, target_model, config: FrodoConfig, num_envs: int,
               trajectory_length: int, reuse_outer_batch: bool = True):
    self.task, self.agent, self.target_model, self.config = task, agent, target_model, config
    self.num_envs, self.trajectory_length = int(num_envs), int(trajectory_length)
    self.reuse_outer_batch = bool(reuse_outer_batch)
    self.steps_per_batch = self.num_envs * self.trajectory_length
    self.init_env_steps = self.steps_per_batch if self.reuse_outer_batch else 0
    self.semi_gradient_constants: Optional[Dict] = None
    self._update_index = 0
    self._greedy_fn = self._greedy  # one object, so the task's compiled evaluation is traced once

  # --- semi-gradient constants -------------------------------------------------------------
  def _constant(self, name, x):
    held = self.semi_gradient_constants
    if held is not None and name in held:
      return held[name]
    value = tf.stop_gradient(x)
    if held is not None:
      held[name] = value
    return value

  # --- collection ----------------------------------------------------------------------------
  def _policy(self, policy_params, observations, seed):
    return self.agent.act(policy_params, observations, seed)

  def _greedy(self, policy_params, observations):
    return self.agent.greedy(policy_params, observations)

  def collect(self, state: FrodoState, seed):
    env, batch, episodes = self.task.rollout(state.env, self._policy, state.agent.policy, seed, self.trajectory_length)
    return state._replace(env=env), batch, {"env_steps": tf.constant(self.steps_per_batch, tf.int64),
                                            "episodes": episodes}

  def init(self, eta, seed):
    state = FrodoState(self.agent.init(), self.task.reset(seed, self.num_envs), ())
    if self.reuse_outer_batch:  # the first batch, collected up front (counted in init_env_steps)
      state, batch, _ = self.collect(state, tf.random.experimental.stateless_fold_in(seed, 1))
      state = state._replace(batch=batch)
    return state

  # --- losses --------------------------------------------------------------------------------
  def _objective(self, eta, name, canonical=False, coefs=None):
    value_coef, entropy_coef = coefs or (self.config.value_coef, self.config.entropy_coef)

    def objective(inputs):
      next_values = self._constant(f"{name}/next_values", inputs["next_values"])
      baseline = self._constant(f"{name}/baseline", inputs["values"])
      if canonical:
        targets = returns.n_step_returns(inputs["rewards"], inputs["discounts"], inputs["episode_ends"], next_values,
                                         self.config.gamma, self.config.n_step)
      else:
        targets = self.target_model.targets(inputs, baseline, next_values, params=eta)
      per_step, parts = towards_targets(inputs, targets, baseline, value_coef, entropy_coef)
      return dict(parts, loss=tf.reduce_mean(per_step))
    return objective

  def inner_loss(self, eta, params, batch):
    num_policy = len(self.agent.policy.trainable_variables)
    return self.agent.loss(params[:num_policy], params[num_policy:], batch, self._objective(eta, "inner"))[0]

  def canonical_loss(self, agent_state: ActorCriticState, batch, name: str, outer: bool):
    """The loss towards the canonical n-step return at θ: the outer loss (its own coefficients
    where set) or the extension's revised loss (the inner coefficients)."""
    coefs = None
    if outer:
      c = self.config
      coefs = (c.value_coef if c.outer_value_coef is None else c.outer_value_coef,
               c.entropy_coef if c.outer_entropy_coef is None else c.outer_entropy_coef)
    objective = self._objective(None, name, canonical=True, coefs=coefs)
    return self.agent.loss(agent_state.policy, agent_state.critic, batch, objective)[0]

  # --- the inner problem -----------------------------------------------------------------------
  def update(self, eta, state: FrodoState, batch):
    name = f"inner{self._update_index}"
    self._update_index += 1
    agent, metrics = self.agent.update(state.agent, batch, self._objective(eta, name))
    return state._replace(agent=agent), {"inner_loss": metrics["loss"], "inner_skipped": metrics["skipped_updates"]}

  def unroll(self, eta, state: FrodoState, seed):
    if self.reuse_outer_batch:
      batch = state.batch
      state, metrics = self.update(eta, state, batch)
      state, fresh, collected = self.collect(state, seed)
      return state._replace(batch=fresh), batch, dict(metrics, **collected)
    state, batch, collected = self.collect(state, seed)
    state, metrics = self.update(eta, state, batch)
    return state, batch, dict(metrics, **collected)

  def meta_batch(self, state: FrodoState, seed):
    if self.reuse_outer_batch:
      return state, state.batch, {}
    return self.collect(state, seed)

  def meta_loss(self, eta, state: FrodoState, batch, inner_batches: Sequence = ()):
    self._update_index = 0
    outer = self.canonical_loss(state.agent, batch, "outer", outer=True)
    meta = outer
    if self.config.extension:
      revised = tf.add_n([self.canonical_loss(state.agent, b, f"revised{k}", outer=False)
                          for k, b in enumerate(inner_batches)]) / len(inner_batches)
      # |L_outer|: the actor-critic loss is often negative (log-probability and entropy terms);
      # dividing by a negative L_outer would flip the revised term into one to maximise.
      magnitude = tf.maximum(tf.abs(self._constant("outer_loss", outer)), self.config.extension_scale_floor)
      scale = self.config.extension_coef / (magnitude + 1e-8)
      meta = outer + scale * revised
    return meta, {"outer_loss": outer}

  def params(self, state: FrodoState):
    return list(state.agent.policy) + list(state.agent.critic)

  def with_params(self, state: FrodoState, params):
    num_policy = len(state.agent.policy)
    return state._replace(agent=state.agent._replace(policy=params[:num_policy], critic=params[num_policy:]))

  # --- reporting -------------------------------------------------------------------------------
  def evaluate(self, state: FrodoState, episodes: int, seed: int):
    return self.task.evaluate(self._greedy_fn, state.agent.policy, episodes, seed)

  def report(self, eta):
    if isinstance(self.target_model, LearnedLambdaReturn):
      gamma, lam = self.target_model.gamma_lambda(eta)
      return {"meta/gamma": float(gamma), "meta/lambda": float(lam)}
    return {}

  def curve_metric(self, state: FrodoState) -> float:
    found = self.task.diagnostics(self.agent.values, state.agent.critic, state.env, self.config.gamma)
    return found.get("charts/value_error", float("nan"))


def make_target_model(config: OnlineMetaConfig, observation_size: int):
  if config.method == "frodo":
    return FrodoTargetNetwork(observation_size, units=config.target_units,
                              observation_scale=config.target_observation_scale)
  if config.method == "mgrl":
    return LearnedLambdaReturn(config.initial_gamma, config.initial_lambda)
  return NStepTarget(config.frodo.gamma, config.frodo.n_step)


class OnlineMetaTrainer(MetaTrainer):
  """The meta-trainer wired for FRODO, learned γ/λ or A2C from a config (what `meta_train` runs).

  Attributes beyond MetaTrainer's: task, target (the meta model), policy and critic (the agent's
  network structure; its parameters live in the inner state, `state.read().agent`).
  """

  def __init__(self, config: OnlineMetaConfig, seed: int, jit_compile: Optional[bool] = None):
    """`jit_compile` overrides `config.jit_compile` (benchmarks compare both)."""
    config.validate()
    self.config = config
    keras.utils.set_random_seed(seed)
    self.task = make_task(config.env, config.num_envs, seed, config.rows, config.columns)
    obs = self.task.observation_size
    self.policy = CategoricalPolicy(obs, self.task.num_actions, config.hidden_sizes, "relu", name="policy")
    self.critic = ValueCritic(obs, config.hidden_sizes, "relu", name="critic")
    self.target = make_target_model(config, obs)
    inner_optimizer = make_optimizer(config.frodo.inner_optimizer, config.frodo.inner_learning_rate)
    agent = ActorCritic(self.policy, self.critic, inner_optimizer)
    problem = FrodoProblem(self.task, agent, self.target, config.frodo, config.num_envs, config.trajectory_length,
                           config.reuse_outer_batch)
    # Keras's meta-optimizer settings (Adam ε 1e-7; RMSprop ρ 0.9, ε 1e-7), as before the port.
    meta_optimizer = (make_optimizer("adam", config.meta_learning_rate) if config.meta_optimizer == "adam" else
                      make_optimizer("rmsprop", config.meta_learning_rate, decay=0.9, epsilon=1e-7))
    super().__init__(problem, UnrolledEstimator(config.frodo.inner_steps), self.target, meta_optimizer, seed,
                     jit_compile=config.jit_compile if jit_compile is None else jit_compile)
    self.steps_per_iteration = problem.steps_per_batch * (config.frodo.inner_steps + (not config.reuse_outer_batch))

  def objective(self) -> FrodoObjective:
    """The meta-learned target as an exportable objective (FRODO only)."""
    if self.config.method != "frodo":
      raise errors.ConfigError(f"only FRODO's target network exports as an objective, not {self.config.method!r}")
    return FrodoObjective(self.target, self.task.observation_size, self.config.frodo.value_coef,
                          self.config.frodo.entropy_coef)
