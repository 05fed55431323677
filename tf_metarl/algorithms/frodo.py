"""FRODO (Xu et al. 2020, "Meta-gradient RL with an objective discovered online"): the core step.

The same step serves learned γ/λ (Xu et al. 2018) and plain A2C: only the target model differs
(`algorithms.targets`). A meta-network G_η (an LSTM run backwards over the trajectory, reading observation, reward,
discount and the agent's next-state value) outputs the update target. The agent (policy π_θ and
critic V_θ) takes M inner A2C-form updates towards G_η, all differentiable:

  L_inner(θ; η) = −mean[(G_η − sg V_θ) log π_θ(a|s)] + c1 · ½ mean[(G_η − V_θ)²] − c2 · mean[H(π_θ)]

whose θ-gradient is the issue's (G_η − V)∇log π + c1 (G_η − V)∇V + c2 ∇H. The outer loss is the
same form on a held-out trajectory with the canonical n-step return G in place of G_η, evaluated
at θ_M; ∂L_outer/∂η flows back through every inner update. With `extension=True` (the
reimplementation report's fix for an untrained meta-network misleading the agent early on) the
meta-objective adds (b1 / |L_outer|) × the revised inner loss, which uses G instead of G_η, at θ_M
(1/|L_outer| held constant).
"""
from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional, Sequence

import tensorflow as tf

from tf_metarl import returns
from tf_metarl.meta.inner_optimizers import INNER_OPTIMIZERS
from tf_metarl.algorithms.targets import FrodoTargetNetwork
from tf_metarl.networks.functional import functional_call
from tf_metarl.objectives.base import ON_POLICY, Objective


@dataclasses.dataclass
class FrodoConfig:
  inner_steps: int = 1              # M
  inner_optimizer: str = "rmsprop"  # "sgd" or "rmsprop"
  inner_learning_rate: float = 1e-3
  value_coef: float = 0.5           # c1
  entropy_coef: float = 0.01        # c2
  gamma: float = 0.99
  n_step: int = 5                   # n of the canonical return
  extension: bool = False
  extension_coef: float = 0.1       # b1
  outer_value_coef: Optional[float] = None    # c1 of the outer loss (None: value_coef)
  outer_entropy_coef: Optional[float] = None  # c2 of the outer loss (None: entropy_coef)


def a2c_form_loss(log_probs, values, entropies, targets, baseline, value_coef, entropy_coef):
  """The actor-critic loss with `targets` as the return, [B, T] inputs -> scalar.

  `baseline` is V with gradients stopped (the advantage does not train the critic); gradients
  flow into `targets`, so a learned target gets its second-order meta-gradient terms.
  """
  advantages = targets - baseline
  return (-tf.reduce_mean(advantages * log_probs) + value_coef * 0.5 * tf.reduce_mean(tf.square(targets - values))
          - entropy_coef * tf.reduce_mean(entropies))


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
    next_values = tf.stop_gradient(inputs["next_values"])
    targets = tf.stop_gradient(self.network.targets(inputs, None, next_values))
    values = inputs["values"]
    advantages = targets - tf.stop_gradient(values)
    per_step = (-advantages * inputs["log_probs"] + self.value_coef * 0.5 * tf.square(targets - values)
                - self.entropy_coef * inputs["entropies"])
    return {"per_step": per_step, "loss": tf.reduce_mean(per_step), "targets": targets}


def _stop(held: Optional[Dict], name: str, x):
  """tf.stop_gradient(x), optionally recorded in / replayed from `held`.

  Semi-gradient quantities (baselines, bootstrapped targets, the extension's 1/L_outer) are
  constants to the meta-gradient. Replaying the values recorded at η lets a finite-difference
  check perturb η while holding them fixed, so it measures the same derivative the tape computes.
  """
  if held is not None and name in held:
    return held[name]
  value = tf.stop_gradient(x)
  if held is not None:
    held[name] = value
  return value


class FrodoStep:
  """Computes FRODO's meta-loss for an agent (policy, critic) and a target network.

  Batches are dicts of `[B, T, ...]` tensors: observations, actions, rewards, discounts,
  episode_ends, next_observations (a `Trajectory` converted with `trajectory_dict`).
  """

  def __init__(self, policy, critic, target_network, config: FrodoConfig):
    """`target_network`: any target model of `algorithms.targets` (its variables are η)."""
    if config.inner_optimizer not in INNER_OPTIMIZERS:
      raise ValueError(f"inner_optimizer must be one of {', '.join(INNER_OPTIMIZERS)}, got {config.inner_optimizer!r}")
    self.policy, self.critic, self.target_network, self.config = policy, critic, target_network, config
    self._num_policy = len(policy.trainable_variables)

  def agent_params(self) -> List[tf.Tensor]:
    return [v.value for v in self.policy.trainable_variables + self.critic.trainable_variables]

  def _agent_outputs(self, params, batch):
    policy_params, critic_params = params[:self._num_policy], params[self._num_policy:]
    outputs = functional_call(self.policy, policy_params, batch["observations"])
    values = functional_call(self.critic, critic_params, batch["observations"])
    next_values = functional_call(self.critic, critic_params, batch["next_observations"])
    return (self.policy.log_prob(outputs, batch["actions"]), values, next_values, self.policy.entropy(outputs))

  def _loss(self, params, batch, use_meta_target: bool, held, name: str, coefs=None):
    log_probs, values, next_values, entropies = self._agent_outputs(params, batch)
    next_values = _stop(held, f"{name}/next_values", next_values)
    baseline = _stop(held, f"{name}/baseline", values)
    if use_meta_target:
      targets = self.target_network.targets(batch, baseline, next_values)
    else:
      targets = returns.n_step_returns(batch["rewards"], batch["discounts"], batch["episode_ends"], next_values,
                                       self.config.gamma, self.config.n_step)
    value_coef, entropy_coef = coefs or (self.config.value_coef, self.config.entropy_coef)
    return a2c_form_loss(log_probs, values, entropies, targets, baseline, value_coef, entropy_coef)

  def inner_loss(self, params, batch, held=None, name="inner"):
    """The A2C-form loss towards G_η (differentiable in θ and η)."""
    return self._loss(params, batch, True, held, name)

  def canonical_loss(self, params, batch, held=None, name="outer", outer=False):
    """The same form towards the canonical n-step return: the extension's revised loss, or with
    `outer=True` the outer loss (its own value and entropy coefficients where set)."""
    coefs = None
    if outer:
      c = self.config
      coefs = (c.value_coef if c.outer_value_coef is None else c.outer_value_coef,
               c.entropy_coef if c.outer_entropy_coef is None else c.outer_entropy_coef)
    return self._loss(params, batch, False, held, name, coefs)

  def unroll(self, params: Sequence[tf.Tensor], inner_batches: Sequence[Dict], optimizer_state=None, held=None):
    """M differentiable inner updates, one per batch. Returns (θ_M, optimizer state)."""
    params = list(params)
    state = self.init_optimizer_state(params) if optimizer_state is None else optimizer_state
    for k, batch in enumerate(inner_batches):
      params, state, _ = self.inner_update(params, batch, state, held, k)
    return params, state

  def init_optimizer_state(self, params):
    return INNER_OPTIMIZERS[self.config.inner_optimizer][1](params)

  def inner_update(self, params, batch, optimizer_state, held=None, k: int = 0):
    """One differentiable inner update θ_k -> θ_{k+1}. Returns (params, optimizer state, inner loss)."""
    with tf.GradientTape(watch_accessed_variables=False) as tape:
      tape.watch(params)
      loss = self.inner_loss(params, batch, held, name=f"inner{k}")
    grads = tape.gradient(loss, params, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    update = INNER_OPTIMIZERS[self.config.inner_optimizer][0]
    params, state = update(params, grads, optimizer_state, self.config.inner_learning_rate)
    return params, state, loss

  def meta_loss(self, params, inner_batches, outer_batch, optimizer_state=None, held=None):
    """Returns dict(meta_loss, outer_loss, params=θ_M, optimizer_state). Differentiable in η.

    `held`: None in training; a dict to record (first call) and replay (later calls) the
    semi-gradient constants, for finite-difference checks.
    """
    if len(inner_batches) != self.config.inner_steps:
      raise ValueError(f"expected {self.config.inner_steps} inner batches (M), got {len(inner_batches)}")
    new_params, state = self.unroll(params, inner_batches, optimizer_state, held)
    return dict(self.outer_objective(new_params, inner_batches, outer_batch, held), params=new_params,
                optimizer_state=state)

  def outer_objective(self, new_params, inner_batches, outer_batch, held=None):
    """{meta_loss, outer_loss} at θ_M: the canonical loss on the held-out batch (plus the extension)."""
    outer = self.canonical_loss(new_params, outer_batch, held, name="outer", outer=True)
    meta = outer
    if self.config.extension:
      revised = tf.add_n([self.canonical_loss(new_params, b, held, name=f"revised{k}")
                          for k, b in enumerate(inner_batches)]) / len(inner_batches)
      # |L_outer|: the actor-critic loss is often negative (log-probability and entropy terms);
      # dividing by a negative L_outer would flip the revised term into one to maximise.
      scale = self.config.extension_coef / (tf.abs(_stop(held, "outer_loss", outer)) + 1e-8)
      meta = outer + scale * revised
    return {"meta_loss": meta, "outer_loss": outer}


def trajectory_dict(trajectory) -> Dict[str, tf.Tensor]:
  """The fields FRODO reads, from a `Trajectory` (numpy or tensors)."""
  return {"observations": tf.convert_to_tensor(trajectory.observations),
          "actions": tf.convert_to_tensor(trajectory.actions),
          "rewards": tf.convert_to_tensor(trajectory.rewards),
          "discounts": tf.convert_to_tensor(trajectory.discounts),
          "episode_ends": tf.convert_to_tensor(trajectory.episode_ends),
          "next_observations": tf.convert_to_tensor(trajectory.next_observations)}
