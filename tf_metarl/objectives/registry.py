"""Builds an objective from a name (`ppo`, `reinforce`, `a2c`, `td3`, `reinforce_offpolicy`) or a
SavedModel directory."""
from __future__ import annotations

import os
from typing import Mapping, Optional

from tf_metarl import errors
from tf_metarl.objectives.deterministic import OffPolicyReinforceObjective, TD3ActorObjective
from tf_metarl.objectives.policy_gradient import A2CObjective, PPOObjective, ReinforceObjective

BUILTIN_OBJECTIVES = {
    "ppo": PPOObjective,
    "reinforce": ReinforceObjective,
    "a2c": A2CObjective,
    "td3": TD3ActorObjective,
    "reinforce_offpolicy": OffPolicyReinforceObjective,
}


def make_objective(spec: str, hyperparameters: Optional[Mapping] = None):
  """Returns a built-in objective by name, or loads an exported one from a path.

  Args:
    spec: a name in `BUILTIN_OBJECTIVES`, or a directory holding an exported objective (a version
      directory, or a model directory whose highest integer subdirectory is taken).
    hyperparameters: keyword arguments for a built-in objective (ignored keys raise ConfigError).
  """
  if spec in BUILTIN_OBJECTIVES:
    cls = BUILTIN_OBJECTIVES[spec]
    try:
      return cls(**dict(hyperparameters or {}))
    except TypeError as e:
      raise errors.ConfigError(f"bad hyperparameters for objective {spec!r}: {e}") from None
  if os.sep in spec or os.path.exists(spec):
    from tf_metarl.export import saved_model  # Imported lazily: only paths need the loader.
    return saved_model.load_objective(spec)
  raise errors.ConfigError(
      f"unknown objective {spec!r}: expected one of {', '.join(BUILTIN_OBJECTIVES)} or a SavedModel directory")
