"""Objectives: one interface (`Objective`) for hand-designed and learned losses."""
from tf_metarl.objectives.base import (INPUT_DESCRIPTIONS, OFF_POLICY, ON_POLICY, Objective, input_spec,
                                       validate_inputs)
from tf_metarl.objectives.deterministic import OffPolicyReinforceObjective, TD3ActorObjective
from tf_metarl.objectives.metagenrl import MetaGenRLObjective
from tf_metarl.objectives.policy_gradient import A2CObjective, PPOObjective, ReinforceObjective
from tf_metarl.objectives.registry import BUILTIN_OBJECTIVES, make_objective

__all__ = ["INPUT_DESCRIPTIONS", "OFF_POLICY", "ON_POLICY", "Objective", "input_spec", "validate_inputs",
           "TD3ActorObjective", "OffPolicyReinforceObjective", "MetaGenRLObjective", "A2CObjective", "PPOObjective", "ReinforceObjective",
           "BUILTIN_OBJECTIVES", "make_objective"]
