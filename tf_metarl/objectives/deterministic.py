"""Hand-designed off-policy actor objectives: the DDPG/TD3 deterministic policy gradient, and
off-policy REINFORCE with GAE (MetaGenRL's fixed-objective baseline)."""
from __future__ import annotations

import tensorflow as tf

from tf_metarl import losses, returns
from tf_metarl.objectives.base import OFF_POLICY, Objective


class TD3ActorObjective(Objective):
  """L = −Q1(s_t, π(s_t)): the deterministic policy gradient of DDPG and TD3 (Fujimoto et al., 2018)."""
  kind = "td3"
  learner = OFF_POLICY
  action_kinds = ("continuous",)
  input_names = ("q_values",)

  def _loss(self, inputs):
    per_step = losses.deterministic_policy_gradient(inputs["q_values"])
    return {"per_step": per_step, "loss": tf.reduce_mean(per_step)}


class OffPolicyReinforceObjective(Objective):
  """Off-policy REINFORCE with GAE for deterministic policies, MetaGenRL's fixed-objective baseline
  (the reference code's `obj_func_type='reinforce'`): l_t = A_t · mean_d (a_t − π(s_t))², with
  A_t = GAE(γ, λ) from the critic's values (held constant). Minimising it moves π(s_t) towards
  replayed actions that did better than expected and away from those that did worse. Reads the
  same inputs as MetaGenRL's L_α, so the same population trains with either."""
  kind = "reinforce_offpolicy"
  learner = OFF_POLICY
  action_kinds = ("continuous",)
  input_names = ("rewards", "discounts", "episode_ends", "values", "next_values", "actions", "behaviour_actions")

  def __init__(self, gamma: float = 0.99, lam: float = 0.95, name=None):
    super().__init__(name=name)
    self.gamma, self.lam = float(gamma), float(lam)

  def hyperparameters(self):
    return dict(gamma=self.gamma, lam=self.lam)

  def _loss(self, inputs):
    per_step = losses.off_policy_reinforce(inputs["actions"], inputs["behaviour_actions"], tf.stop_gradient(
        returns.generalized_advantage_estimates(inputs["rewards"], inputs["discounts"], inputs["episode_ends"],
                                                inputs["values"], inputs["next_values"], self.gamma, self.lam)))
    return {"per_step": per_step, "loss": tf.reduce_mean(per_step)}
