"""Learned helper-reward weighting with implicit gradients (Place 2023, "Adaptive Reinforcement
Learning with LLM-augmented Reward Functions", sections 3.2–3.3, Algorithm 2) as an inner problem.

  r_η(s, a) = r_p + z_η(s, a) r_h + f_η(s, a),  γ_η           (`networks.LearnedReward`)
  inner:  θ*(η) = argmax_θ V(θ; r_η, γ_η)                       (PPO or REINFORCE, the on-policy learner's updates)
  outer:  max_η V(θ*(η); r_p, γ) − λ_γ γ_η² − λ_r |f_η|²

Algorithm 2, one meta-iteration (`ImplicitEstimator(unroll_steps=K)` on `ImplicitRewardProblem`):
  inner phase: K on-policy iterations on r_η (collect, then all epochs × minibatches), warm-started
               from the previous phase's policy;
  fresh trajectories of the inner solution θ_K (the held-out batch);
  meta-step:   dL/dη = ∂_η L_out − H_ηθ (H_θθ + δI)⁻¹ ∂_θ L_out, with L_out = −V(θ; r_p, γ) + the
               regularisers on the fresh batch and H from the inner loss L_in = −V(θ; r_η, γ_η) on
               the last inner batch, reweighted to θ_K (Remark 2).
Both values are score-function surrogates (`losses.score_function_surrogate`): their first and
second θ-derivatives are the policy-gradient estimates of V and of its Hessian (exact second
order with `hessian_dependence` = 1, per-step terms only with 0), and their mixed ∂η∂θ derivative
runs through the advantages of r_η, γ_η. V(θ; r_p, γ) uses a critic of r_p of its own (the
agent's critic learns r_η).

Methods (`method`): implicit (above); bipars (Hu et al. 2020's MGA: the gradient of L_out after
one SGD step of size α on L_in, which is the implicit estimate with a one-term Neumann series,
x = α b); bipars_em (Hu et al.'s explicit mapping, discrete actions: the policy also takes
z_η(s, a) for every action as input, π_θ(a | s, z_η(s, ·)), and the meta-gradient is the policy
gradient of r_p through that input, ∇_η E[log π_θ(a | s, z_η(s, ·)) Â_p], with θ held
independent of η: `UnrolledEstimator`, whose unroll carries no η-dependence, gives exactly this
term); ppo (no helper, no meta-learning) and ppo_helper (r_p + r_h at face value): baselines
on the same inner learner; dpba (Harutyunyan et al. 2015: a potential Φ(s, a) learned by TD on
−r_h, the agent trained on r_p + γΦ(s', a') − Φ(s, a), nothing meta-learned).
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from tf_metarl import errors, losses, returns
from tf_metarl.agents.actor_critic import ActorCritic, ActorCriticState
from tf_metarl.agents.optimizers import Adam, apply_if_finite
from tf_metarl.config_utils import dataclass_from_config
from tf_metarl.envs import helper_rewards
from tf_metarl.envs.gym_envs import describe_env
from tf_metarl.learners.in_graph_on_policy import agent_iteration_updates
from tf_metarl.learners.on_policy import OnPolicyConfig, make_networks, resolve_minibatch_unit
from tf_metarl.meta.implicit import ImplicitEstimator
from tf_metarl.meta.linear_solvers import ConjugateGradientSolver, DiagonalSolver, NeumannSolver
from tf_metarl.meta.problem import InnerProblem
from tf_metarl.meta.trainer import InnerPhase, MetaTrainer
from tf_metarl.meta.unrolled import UnrolledEstimator
from tf_metarl.networks.functional import functional_call
from tf_metarl.networks.critics import ValueCritic
from tf_metarl.networks.learned_reward import LearnedReward
from tf_metarl.objectives import make_objective
from tf_metarl.tasks import make_task
from tf_metarl.trajectories import Trajectory

METHODS = ("implicit", "bipars", "bipars_em", "ppo", "ppo_helper", "dpba")
SOLVERS = ("neumann", "cg", "diagonal")
INNER_OBJECTIVES = ("ppo", "reinforce")


@dataclasses.dataclass
class ImplicitRewardConfig:
  """The `implicit_reward` config section (the only defaults; configs/implicit_reward_cartpole.py
  overrides some)."""
  env: str = "tf_metarl/CartPole-v1"   # a TensorFlow-native id (discrete or continuous actions)
  helper: str = "harmful"              # envs.helper_rewards: harmful, random, helpful, none, or a SavedModel dir
  helper_seed: int = 0                 # the random helper's function
  helper_scale: float = 1.0            # r_h is the helper's reward times this (a stress test)
  method: str = "implicit"
  inner_objective: str = "ppo"         # or "reinforce"
  inner_iterations: int = 4            # K: on-policy iterations before each meta-step's fresh batch
  # Algorithm 2's convergence test (meta.trainer.InnerPhase): up to this many more inner iterations
  # before the K, stopping once ‖∇_θ L_in‖ on an iteration's batch is <= inner_phase_tolerance.
  inner_phase_max_iterations: int = 0
  inner_phase_min_iterations: int = 0
  inner_phase_tolerance: float = 0.0
  on_policy: OnPolicyConfig = dataclasses.field(default_factory=lambda: OnPolicyConfig(
      learning_rate=5e-4, anneal_learning_rate=False, minibatch_unit="auto", jit_compile=False))
  # the implicit meta-gradient
  solver: str = "neumann"
  neumann_steps: int = 10              # T
  neumann_alpha: float = 1.0           # α of x ← x + α(b − Hx)
  neumann_power_iterations: int = 0    # > 0: the step is α / λ̂_max, λ̂ by this many power iterations
  cg_steps: int = 10
  cg_tolerance: float = 1e-4
  diagonal_probes: int = 4
  damping: float = 0.3                 # δ of H + δI (sampled Hessians are indefinite: |λ_min| ≈ 0.1–0.2 measured on CartPole)
  relative_damping: float = 0.0        # ρ: the solve adds ρ·λ̂_max(H) to δ (damping that follows the Hessian's scale)
  hvp: str = "exact"                   # or "finite_difference" (the paper's gradient-difference trick)
  hessian_dependence: float = 0.0      # λ of the Loaded-DiCE Hessian estimate (1: unbiased, 0: per-step)
  hessian_batch: str = "inner"         # "inner" (reweighted, Remark 2) or "held_out"
  max_residual: float = 10.0           # a solve further off than this has diverged: the meta-step is skipped
  bipars_step: float = 1.0             # α of BiPaRS's one-step approximation
  held_out_batches: int = 1            # fresh batches per meta-step, L_out averaged over them (less variance, more steps)
  # the outer objective
  outer_gamma: float = 0.99
  outer_lambda: float = 0.95
  gamma_regularization: float = 0.0    # λ_γ
  additive_regularization: float = 1e-3  # λ_r
  # the learned reward
  reward_hidden_sizes: tuple = (32,)
  initial_helper_weight: float = 1.0
  initial_discount: float = 0.99
  learn_discount: bool = True
  additive: bool = False
  meta_learning_rate: float = 3e-3
  max_meta_grad_norm: Optional[float] = 1.0

  def validate(self) -> "ImplicitRewardConfig":
    if self.method not in METHODS:
      raise errors.ConfigError(f"implicit_reward.method must be one of {', '.join(METHODS)}, got {self.method!r}")
    if self.solver not in SOLVERS:
      raise errors.ConfigError(f"implicit_reward.solver must be one of {', '.join(SOLVERS)}, got {self.solver!r}")
    if self.inner_objective not in INNER_OBJECTIVES:
      raise errors.ConfigError(f"implicit_reward.inner_objective must be one of {', '.join(INNER_OBJECTIVES)}, "
                               f"got {self.inner_objective!r}")
    for name in ("inner_iterations", "neumann_steps", "cg_steps", "diagonal_probes", "held_out_batches"):
      if int(getattr(self, name)) < 1:
        raise errors.ConfigError(f"implicit_reward.{name} must be >= 1, got {getattr(self, name)}")
    if self.neumann_power_iterations < 0:
      raise errors.ConfigError(f"implicit_reward.neumann_power_iterations must be >= 0, got "
                               f"{self.neumann_power_iterations}")
    if not 0 <= self.inner_phase_min_iterations <= self.inner_phase_max_iterations:
      raise errors.ConfigError("implicit_reward.inner_phase_min_iterations must be in "
                               f"[0, inner_phase_max_iterations = {self.inner_phase_max_iterations}], "
                               f"got {self.inner_phase_min_iterations}")
    if not np.isfinite(self.helper_scale):
      raise errors.ConfigError(f"implicit_reward.helper_scale must be a finite number, got {self.helper_scale}")
    for name in ("gamma_regularization", "additive_regularization", "damping", "relative_damping",
                 "inner_phase_tolerance"):
      value = getattr(self, name)
      if not (value >= 0 and value < float("inf")):
        raise errors.ConfigError(f"implicit_reward.{name} must be a finite number >= 0, got {value}")
    for name in ("neumann_alpha", "bipars_step", "meta_learning_rate", "max_residual"):
      if not getattr(self, name) > 0:
        raise errors.ConfigError(f"implicit_reward.{name} must be > 0, got {getattr(self, name)}")
    if not 0.0 <= self.hessian_dependence <= 1.0:
      raise errors.ConfigError(f"implicit_reward.hessian_dependence must be in [0, 1], got {self.hessian_dependence}")
    for name in ("outer_gamma", "initial_discount"):
      if not 0.0 < getattr(self, name) < 1.0:
        raise errors.ConfigError(f"implicit_reward.{name} must be in (0, 1), got {getattr(self, name)}")
    if self.method == "ppo" and self.helper != "none":
      self.helper = "none"  # the baseline ignores any helper: r_p alone
    self.on_policy.validate()
    return self


def config_from_section(values) -> ImplicitRewardConfig:
  """The validated config of an `implicit_reward` config section (a dict with its `on_policy`
  subsection); unknown keys and wrong types are one-line ConfigErrors."""
  values = dict(values)
  on_policy = dataclass_from_config(OnPolicyConfig, values.pop("on_policy", {}), "implicit_reward.on_policy")
  return dataclass_from_config(ImplicitRewardConfig, dict(values, on_policy=on_policy), "implicit_reward").validate()


class ImplicitRewardState(NamedTuple):
  """agent: the policy, the critic of r_η and their optimizer state; primary_critic,
  primary_optimizer: the critic of r_p (for V(θ; r_p, γ)) and its optimizer state; env: the
  task's state; potential, potential_optimizer: DPBA's Φ and its optimizer state (empty for the
  other methods); policy_eta: the η whose z_η(s, ·) the policy reads as inputs (BiPaRS's explicit
  mapping; the η of the last unroll, held constant; empty for the other methods)."""
  agent: ActorCriticState
  primary_critic: list
  primary_optimizer: tuple
  env: object
  potential: list
  potential_optimizer: tuple
  policy_eta: list


class RewardBatch(NamedTuple):
  """A trajectory (rewards r_p) with what the losses need from collection time: r_h [B, T], the
  critics' values V_η(s), V_η(s') and V_p(s), V_p(s') [B, T]."""
  trajectory: Trajectory
  helper_rewards: tf.Tensor
  values: tf.Tensor
  next_values: tf.Tensor
  primary_values: tf.Tensor
  primary_next_values: tf.Tensor


class ImplicitRewardProblem(InnerProblem):
  """See the module docstring. `reward_model` is the `LearnedReward` whose variables are η."""

  def __init__(self, task, agent: ActorCritic, objective, reward_model: LearnedReward, helper, config:
               ImplicitRewardConfig, on_policy: OnPolicyConfig, primary_critic_init: Sequence[tf.Tensor],
               potential=None):
    """`primary_critic_init`: the r_p critic's initial parameters (same structure as the agent's
    critic); `potential`: DPBA's Φ network over `reward_model.features` (None for other methods)."""
    self.task, self.agent, self.objective, self.reward_model, self.helper = task, agent, objective, reward_model, helper
    self._primary_init = list(primary_critic_init)
    self.potential = potential
    self._potential_init = [tf.convert_to_tensor(v.value) for v in potential.trainable_variables] if potential else []
    self.config, self.on_policy = config, on_policy
    self.primary_optimizer = Adam(on_policy.learning_rate, epsilon=1e-5)
    self.steps_per_batch = on_policy.num_envs * on_policy.rollout_length
    self._greedy_fn = self._greedy
    self.explicit_mapping = config.method == "bipars_em"
    self._num_policy_params = len(agent.policy.trainable_variables)

  # --- the policy's inputs (BiPaRS's explicit mapping) ----------------------------------------
  def policy_inputs(self, eta, observations):
    """The policy's and critics' inputs [..., O (+ num_actions)] for raw observations [..., O]:
    with the explicit mapping, z_η(s, a) of every action appended."""
    if not self.explicit_mapping:
      return observations
    return tf.concat([observations, self.reward_model.helper_weights(eta, observations)], -1)

  def raw_observations(self, observations):
    """The environment's observations [..., O] inside (possibly augmented) policy inputs."""
    return observations[..., :self.reward_model.observation_dim] if self.explicit_mapping else observations

  # --- collection ----------------------------------------------------------------------------
  # The rollout's and evaluation's `policy_params` are the policy's parameters followed by
  # `policy_eta` (empty unless the policy reads z_η).
  def _policy(self, params, observations, seed):
    n = self._num_policy_params
    return self.agent.act(params[:n], self.policy_inputs(params[n:], observations), seed)

  def _greedy(self, params, observations):
    n = self._num_policy_params
    return self.agent.greedy(params[:n], self.policy_inputs(params[n:], observations))

  def _collection_params(self, state: ImplicitRewardState):
    return list(state.agent.policy) + list(state.policy_eta)

  def collect(self, state: ImplicitRewardState, seed):
    env, trajectory, episodes = self.task.rollout(state.env, self._policy, self._collection_params(state), seed,
                                                  self.on_policy.rollout_length)
    if self.helper is None:
      helper = tf.zeros_like(trajectory.rewards)
    else:
      helper = helper_rewards.helper_rewards(self.helper, trajectory.observations, trajectory.actions,
                                             trajectory.next_observations)
    if self.explicit_mapping:  # the agent's inputs, as its policy saw them
      eta = [tf.stop_gradient(e) for e in state.policy_eta]
      trajectory = trajectory._replace(observations=self.policy_inputs(eta, trajectory.observations),
                                       next_observations=self.policy_inputs(eta, trajectory.next_observations))
    values = self.agent.rollout_values(state.agent.critic, trajectory)
    primary = self.agent.rollout_values(state.primary_critic, trajectory)
    batch = RewardBatch(trajectory, tf.stop_gradient(helper), values.values, values.next_values, primary.values,
                        primary.next_values)
    return state._replace(env=env), batch, {"env_steps": tf.constant(self.steps_per_batch, tf.int64),
                                            "episodes": episodes}

  def init(self, eta, seed):
    return ImplicitRewardState(self.agent.init(), [tf.identity(v) for v in self._primary_init],
                               self.primary_optimizer.init(self._primary_init),
                               self.task.reset(seed, self.on_policy.num_envs), list(self._potential_init),
                               self.primary_optimizer.init(self._potential_init) if self.potential else (),
                               [tf.stop_gradient(e) for e in eta] if self.explicit_mapping else [])

  # --- the learned reward --------------------------------------------------------------------
  def shaped(self, eta, batch: RewardBatch):
    """(r_η [B, T], γ_η, z_η [B, T]) of a batch, differentiable in η."""
    t = batch.trajectory
    rewards, gamma, z, _ = self.reward_model.shaped(eta, self.raw_observations(t.observations), t.actions, t.rewards,
                                                    batch.helper_rewards)
    if not self.config.learn_discount:  # γ_η stays in η, unused: its meta-gradient is 0
      gamma = tf.constant(self.config.initial_discount)
    return rewards, gamma, z

  def _inner_objective(self, gamma):
    return self.objective.with_hyperparameters(gamma=gamma) if self.config.learn_discount else self.objective

  # --- the inner problem ---------------------------------------------------------------------
  def _regression_steps(self, params, opt_state, predict, targets):
    """`epochs` full-batch Adam steps of ½(predict(params) − targets)²; returns (params, state, loss)."""
    params = list(params)
    for _ in range(self.on_policy.epochs):
      with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(params)
        loss = tf.reduce_mean(losses.value_regression(predict(params), tf.stop_gradient(targets)))
      grads = tape.gradient(loss, params)
      params, opt_state, _ = apply_if_finite(self.primary_optimizer, params, grads, opt_state, select=True)
    return params, opt_state, loss

  def _primary_update(self, state: ImplicitRewardState, batch: RewardBatch):
    """The r_p critic towards λ-returns of r_p (γ, λ of the outer objective) from its values at
    collection."""
    t, c = batch.trajectory, self.config
    targets = returns.lambda_returns(t.rewards, t.discounts, t.episode_ends, batch.primary_values,
                                     batch.primary_next_values, c.outer_gamma, c.outer_lambda)
    params, opt_state, loss = self._regression_steps(
        state.primary_critic, state.primary_optimizer, lambda p: self.agent.values(p, t.observations), targets)
    return state._replace(primary_critic=params, primary_optimizer=opt_state), loss

  # --- DPBA ------------------------------------------------------------------------------------
  def _potential(self, params, observations, actions):
    """Φ(s, a) [B, T] of `[B, T, ...]` batches."""
    features = self.reward_model.features(observations, actions)
    return tf.reshape(functional_call(self.potential, params, features), tf.shape(observations)[:2])

  def _next_potential(self, params, policy_params, next_observations):
    """Φ(s', a') [B, T]: expected over π(·|s') for discrete actions, at π's mode for continuous."""
    if not self.reward_model.num_actions:
      return self._potential(params, next_observations, self.agent.greedy(policy_params, next_observations))
    probs = tf.nn.softmax(self.agent.policy_outputs(policy_params, next_observations), -1)
    batch = tf.shape(next_observations)[:2]
    values = [self._potential(params, next_observations, tf.fill(batch, a)) for a in range(self.reward_model.num_actions)]
    return tf.reduce_sum(probs * tf.stack(values, -1), -1)

  def _dpba_rewards(self, state: ImplicitRewardState, batch: RewardBatch):
    """(r_p + γΦ(s', a') − Φ(s, a), the TD targets −r_h + γΦ(s', a') of Φ), [B, T] each."""
    t, gamma = batch.trajectory, self.config.initial_discount
    now = self._potential(state.potential, t.observations, t.actions)
    following = gamma * t.discounts * self._next_potential(state.potential, state.agent.policy, t.next_observations)
    return t.rewards + following - now, -batch.helper_rewards + following

  def unroll(self, eta, state: ImplicitRewardState, seed):
    """One on-policy iteration on r_η (η held constant; DPBA: on r_p + F). Returns (state, the
    batch, metrics)."""
    collect_seed, update_seed = tf.unstack(tf.random.experimental.stateless_split(seed, num=2))
    if self.explicit_mapping:  # the policy reads this η's z_η until the next unroll
      state = state._replace(policy_eta=[tf.stop_gradient(e) for e in eta])
    state, batch, collected = self.collect(state, collect_seed)
    eta = [tf.stop_gradient(e) for e in eta]
    rewards, gamma, _ = self.shaped(eta, batch)
    if self.potential is not None:
      rewards, potential_targets = self._dpba_rewards(state, batch)
    shaped = batch.trajectory._replace(rewards=tf.stop_gradient(rewards))
    agent, metrics, _ = agent_iteration_updates(self.agent, self._inner_objective(tf.stop_gradient(gamma)),
                                                self.on_policy, state.agent, shaped, update_seed,
                                                self.on_policy.learning_rate)
    state, primary_loss = self._primary_update(state._replace(agent=agent), batch)
    out = dict(collected, inner_loss=metrics["loss"], primary_value_loss=primary_loss)
    if self.potential is not None:
      t = batch.trajectory
      params, opt_state, out["potential_loss"] = self._regression_steps(
          state.potential, state.potential_optimizer, lambda p: self._potential(p, t.observations, t.actions),
          potential_targets)
      state = state._replace(potential=params, potential_optimizer=opt_state)
    return state, batch, out

  def meta_batch(self, state, seed):
    return self.collect(state, seed)

  def inner_loss(self, eta, params, batch: RewardBatch):
    """L_in(η, θ) = −V(θ; r_η, γ_η) − c_e H(π_θ) as a score-function surrogate (see the module
    docstring); advantages GAE(γ_η, λ) of r_η from the critic at collection, over max(std, 1)."""
    t = batch.trajectory
    rewards, gamma, _ = self.shaped(eta, batch)
    advantages = returns.generalized_advantage_estimates(rewards, t.discounts, t.episode_ends, batch.values,
                                                         batch.next_values, gamma, self.objective.lam)
    # Scaled by a constant 1/max(std, 1): the implicit gradient is invariant to the inner loss's
    # scale (H_ηθ and H_θθ scale together), and this keeps H's spectrum, so the solver's α and δ,
    # comparable across batches; never scaled up, because once the task is solved the advantages'
    # std falls towards 0 and H would explode (measured: Neumann residuals of 1e8).
    advantages = advantages / tf.stop_gradient(tf.maximum(tf.math.reduce_std(advantages), 1.0))
    outputs = functional_call(self.agent.policy, params, t.observations)
    log_probs = self.agent.policy.log_prob(outputs, t.actions)
    per_step = losses.score_function_surrogate(log_probs, t.log_probs, advantages, t.episode_ends,
                                               self.config.hessian_dependence)
    entropy = tf.reduce_mean(self.agent.policy.entropy(outputs))
    return tf.reduce_mean(per_step) - self.objective.entropy_coef * entropy

  def meta_loss(self, eta, state: ImplicitRewardState, batch: RewardBatch, inner_batches: Sequence = ()):
    """L_out = −V(θ; r_p, γ) + λ_γ γ_η² + λ_r |f_η|² on the fresh batch. With the explicit
    mapping the policy's z_η inputs are recomputed from η, so L_out's η-gradient runs through them."""
    c, t = self.config, batch.trajectory
    advantages = returns.generalized_advantage_estimates(t.rewards, t.discounts, t.episode_ends, batch.primary_values,
                                                         batch.primary_next_values, c.outer_gamma, c.outer_lambda)
    inputs = self.policy_inputs(eta, self.raw_observations(t.observations))  # t.observations unless explicit mapping
    log_probs = self.agent.policy.log_prob(functional_call(self.agent.policy, state.agent.policy, inputs), t.actions)
    primary = tf.reduce_mean(losses.score_function_surrogate(log_probs, t.log_probs, advantages, t.episode_ends, 0.0))
    _, gamma, z = self.shaped(eta, batch)
    regularizer = c.gamma_regularization * tf.square(gamma)
    additive = self.reward_model.additive_params(eta)
    if additive:
      regularizer += c.additive_regularization * tf.add_n([tf.reduce_sum(tf.square(p)) for p in additive])
    mean, variance = tf.nn.moments(tf.reshape(z, [-1]), [0])
    # Only the derivatives of `primary` mean something: its value is 0 at the sampling policy.
    return primary + regularizer, {"meta/helper_weight": mean, "meta/helper_weight_std": tf.sqrt(variance),
                                   "meta/gamma": gamma, "meta/regularizer": regularizer}

  def params(self, state: ImplicitRewardState):
    return list(state.agent.policy)

  def with_params(self, state: ImplicitRewardState, params):
    return state._replace(agent=state.agent._replace(policy=list(params)))

  # --- reporting -------------------------------------------------------------------------------
  def evaluate(self, state: ImplicitRewardState, episodes: int, seed: int):
    return self.task.evaluate(self._greedy_fn, self._collection_params(state), episodes, seed)


def make_estimator(config: ImplicitRewardConfig):
  """The outer-gradient estimator of a method (the baselines' only advances the inner problem)."""
  k = config.inner_iterations
  if config.method in ("ppo", "ppo_helper", "dpba", "bipars_em"):
    return UnrolledEstimator(k)  # bipars_em: η reaches L_out only through the policy's inputs
  if config.method == "bipars":
    solver = NeumannSolver(steps=1, alpha=config.bipars_step)
  elif config.solver == "neumann":
    solver = NeumannSolver(steps=config.neumann_steps, alpha=config.neumann_alpha,
                           power_iterations=config.neumann_power_iterations)
  elif config.solver == "cg":
    solver = ConjugateGradientSolver(steps=config.cg_steps, tolerance=config.cg_tolerance)
  else:
    solver = DiagonalSolver(probes=config.diagonal_probes, damping=0.0)
  damping = 0.0 if config.method == "bipars" else config.damping
  relative = 0.0 if config.method == "bipars" else config.relative_damping
  return ImplicitEstimator(solver=solver, unroll_steps=k, hvp=config.hvp, damping=damping, relative_damping=relative,
                           max_residual=None if config.method == "bipars" else config.max_residual,
                           hessian_batch=config.hessian_batch, held_out_batches=config.held_out_batches)


class ImplicitRewardTrainer(MetaTrainer):
  """The meta-trainer wired for the implicit reward method or a baseline, from a config (what
  `meta_train` runs for an `implicit_reward` config). Attributes beyond MetaTrainer's: task,
  helper, reward_model, policy and critic (structure; parameters live in the inner state)."""

  def __init__(self, config: ImplicitRewardConfig, seed: int, jit_compile: bool = False):
    config.validate()
    self.config = config
    env_info = describe_env(config.env)
    self.task = make_task(config.env, config.on_policy.num_envs, seed, continuous=True)
    self.helper = helper_rewards.make_helper(config.helper, config.env, config.helper_seed,
                                             config.helper_scale)
    objective = make_objective(config.inner_objective)
    on_policy = resolve_minibatch_unit(config.on_policy, objective)
    if config.method == "bipars_em":
      if not env_info.num_actions:
        raise errors.ConfigError(f"implicit_reward.method 'bipars_em' feeds z_η(s, a) of every action to the policy "
                                 f"and needs discrete actions; {config.env} has continuous actions")
      obs_size = int(np.prod(env_info.observation_shape))  # the agent's inputs: s and z_η(s, ·)
      env_info = dataclasses.replace(env_info, observation_shape=(obs_size + env_info.num_actions,))
    self.policy, self.critic = make_networks(env_info, on_policy, seed)
    _, primary_critic = make_networks(env_info, on_policy, seed + 7919)
    agent = ActorCritic(self.policy, self.critic, Adam(on_policy.learning_rate, epsilon=1e-5),
                        max_grad_norm=on_policy.max_grad_norm, select_skips=True)
    keras.utils.set_random_seed(seed)
    obs_dim = self.task.observation_size
    num_actions = env_info.num_actions or None
    action_dim = 1 if num_actions else int(len(env_info.action_low))
    if self.helper is not None:
      helper_rewards.check_helper(self.helper, obs_dim, num_actions, action_dim)
    self.reward_model = LearnedReward(obs_dim, num_actions, action_dim, config.reward_hidden_sizes,
                                      config.initial_helper_weight, config.initial_discount, config.additive)
    if config.method in ("ppo", "ppo_helper", "dpba"):
      self.reward_model.trainable = False  # η = []: nothing to meta-learn
    primary_init = [tf.convert_to_tensor(v.value) for v in primary_critic.trainable_variables]
    potential = None
    if config.method in ("dpba", "bipars_em") and self.helper is None:
      raise errors.ConfigError(f"implicit_reward.method {config.method!r} shapes with a helper; helper is 'none'")
    if config.method == "dpba":
      features = int(self.reward_model.features(tf.zeros([1, obs_dim]), tf.zeros([1] + ([] if num_actions else
                                                                                       [action_dim]))).shape[-1])
      potential = ValueCritic(features, on_policy.hidden_sizes, on_policy.activation, name="potential")
    problem = ImplicitRewardProblem(self.task, agent, objective, self.reward_model, self.helper, config, on_policy,
                                    primary_init, potential)
    inner_phase = InnerPhase(config.inner_phase_max_iterations, config.inner_phase_min_iterations,
                             config.inner_phase_tolerance)
    super().__init__(problem, make_estimator(config), self.reward_model, Adam(config.meta_learning_rate), seed,
                     jit_compile=jit_compile, max_grad_norm=config.max_meta_grad_norm, inner_phase=inner_phase)
    fresh = config.held_out_batches if config.method in ("implicit", "bipars") else 1
    self.steps_per_iteration = problem.steps_per_batch * (config.inner_iterations + fresh)

  def export_reward(self, model_dir: str, training_config=None, provenance=None) -> str:
    """Exports r_η, γ_η (`export.learned_reward`), naming the helper and environment."""
    from tf_metarl.export.learned_reward import export_reward
    return export_reward(self.reward_model, model_dir, self.config.helper, self.config.env, self.config.helper_seed,
                         self.config.helper_scale,
                         training_config=training_config, provenance=provenance)
