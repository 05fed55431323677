"""MetaGenRL (Kirsch, van Steenkiste, Schmidhuber, ICLR 2020): a population of TD3 agents shares
one neural objective L_α, meta-trained through the critics.

For each agent (policy φ, critics θ) and a replayed batch split into K + 1 disjoint parts:

    φ_0 = φ;   φ_{k+1} = φ_k − λ ∇_φ Σ_{b,t} L_α(part k; φ_k)        k = 0 .. K−1   (Eq. 6, Eq. 8)
    meta-objective = mean over the whole batch of Q_θ1(s, π_{φ_K}(s))

and α ascends the population mean of that meta-objective (second order: through every inner
step). Policies themselves follow ∇_φ L_α (annealed from the DDPG gradient −Q over the first
steps); critics are TD3's. This module holds those pure functions; the population, replay and
environments are driven by the inner problem built on them.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Dict, Sequence, Tuple

import tensorflow as tf

from tf_metarl import errors
from tf_metarl.agents import population
from tf_metarl.agents.td3 import TD3, TD3State
from tf_metarl.networks.functional import functional_call
from tf_metarl.objectives.metagenrl import SCALAR_FEATURES, MetaGenRLObjective
from tf_metarl.trajectories import Trajectory


@dataclasses.dataclass
class MetaGenRLConfig:
  """The paper's Tables 3 and 4 (and the reference code where they are silent); defaults live here.

  num_agents: population size, spread evenly over `envs`.
  inner_steps: K, differentiable policy steps per meta-gradient, on disjoint parts of the batch.
  inner_learning_rate: λ, the fixed SGD step of those inner steps.
  anneal_steps: over the first this many steps the policy's gradient moves linearly from the DDPG
    gradient to ∇_φ L_α.
  scalar_features: the objective's scalar inputs (the ablations drop `time`, or both values).
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
    unknown = sorted(set(self.scalar_features) - set(SCALAR_FEATURES))
    if unknown:
      raise errors.ConfigError(f"unknown scalar feature(s) {', '.join(unknown)}; expected a subset of "
                               f"{', '.join(SCALAR_FEATURES)}")
    return self


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
                         inner_steps: int, inner_learning_rate: float) -> tf.Tensor:
  """Eq. 6 / 8 for a population of N agents of one environment (`states`, `batches` stacked on a
  leading N axis; batches [N, B, T, ...]): K differentiable SGD steps of every policy on Σ L_α
  over disjoint parts of its batch (split on the B axis into K + 1), then each agent's mean of
  Q_θ1(s, π_{φ_K}(s)) over its whole batch. Returns [N], differentiable in η (critics and batches
  are constants here).

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
    policies = [p - inner_learning_rate * tf.convert_to_tensor(g) for p, g in zip(policies, grads)]

  def value(policy, critic, batch):
    return tf.reduce_mean(td3.q_values(critic, batch.observations, td3.actions(policy, batch.observations))[0])

  return population.vectorize(value)(policies, critics, batches)


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
