"""Hand-designed off-policy actor objective: the DDPG/TD3 deterministic policy gradient."""
from __future__ import annotations

import tensorflow as tf

from tf_metarl import losses
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
