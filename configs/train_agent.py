"""Training a fresh agent with one objective: `--config=configs/train_agent.py[:preset]`.

Presets set the learner to what suits the objective: `ppo` (default), `a2c`, `reinforce` for the
on-policy learner, `td3` for the off-policy one. `--objective` (a name or a SavedModel path) then
picks the loss; an exported objective uses the learner section its metadata names.

Defaults come from where they are defined: the run settings (evaluation, checkpoints, logging)
from `RunSettings`, the learner sections from `OnPolicyConfig` and `OffPolicyConfig`, each
objective's hyperparameters from its constructor; presets only change them.
"""
import inspect

import ml_collections

from tf_metarl.config_utils import config_from_dataclass
from tf_metarl.learners.loop import RunSettings
from tf_metarl.learners.off_policy import OffPolicyConfig
from tf_metarl.learners.on_policy import OnPolicyConfig
from tf_metarl.objectives.registry import BUILTIN_OBJECTIVES

PRESETS = ("ppo", "a2c", "reinforce", "td3")


def _constructor_defaults(cls) -> dict:
  return {name: p.default for name, p in inspect.signature(cls.__init__).parameters.items()
          if p.default is not inspect.Parameter.empty and name != "name"}


def get_config(preset: str = "ppo") -> ml_collections.ConfigDict:
  if preset not in PRESETS:
    raise ValueError(f"unknown preset {preset!r}; expected one of {', '.join(PRESETS)}")
  c = ml_collections.ConfigDict()
  c.env = "Pendulum-v1" if preset == "td3" else "CartPole-v1"
  c.objective = preset
  c.seed = 0
  # Agents trained together in one graph, of seeds seed .. seed + seeds − 1 (needs an on-policy
  # objective on a TensorFlow-native environment, tf_metarl/<id>); `train_agent --seeds` sets it.
  c.seeds = 1
  # A randomised task family of a TensorFlow-native environment, e.g. "mass=0.5:2.0,length=0.5:1.5"
  # (parameters of tf_metarl/envs/classic_control.py, drawn per copy at every reset), or the ranges of
  # a randomised MuJoCo family (tf_metarl/RandomHopper-v5, ...: tf_metarl/envs/mujoco_families.py); "" = none.
  c.env_randomize = ""
  # Per-member settings of such a population, one value per seed, e.g.
  # "learning_rate=1e-4:2.5e-4:1e-3,entropy_coef=0:0.01:0.01" (the learning rate, or numeric
  # hyperparameters of a built-in objective); "" = every member as configured.
  c.member_settings = ""
  # An exported learned reward (`meta_train --export` of configs/implicit_reward_cartpole.py): the
  # agent trains on its r_η and γ_η, with the helper it was learned for; "" = the environment's.
  c.reward = ""
  # Record the episodes the agent collects as an RLDS dataset (TFDS format) in this directory
  # (tf_metarl/recording.py; gymnasium environments); `train_agent --record` sets it. "" = none.
  c.record = ""
  # Warm-start the off-policy learner's replay buffer from such a recorded dataset (a gymnasium
  # environment with the same spaces); `train_agent --replay_from` sets it. "" = none.
  c.replay_from = ""
  c.steps = 100_000 if preset != "td3" else 30_000
  # Evaluation, checkpoints (by steps and by time), progress lines, the non-finite stop: RunSettings.
  c.update(config_from_dataclass(RunSettings(eval_every=10_000 if preset != "td3" else 5_000,
                                             checkpoint_every=25_000 if preset != "td3" else 5_000)))

  # Hyperparameters of each built-in objective (keyword arguments of its class).
  c.objective_settings = ml_collections.ConfigDict(
      {name: _constructor_defaults(cls) for name, cls in BUILTIN_OBJECTIVES.items()})

  c.on_policy = config_from_dataclass(OnPolicyConfig())
  if preset == "ppo":
    # Minibatches of shuffled transitions with targets computed once per rollout (where the
    # objective can: built-in ones; an exported objective trains on whole copies) and a constant
    # learning rate of 5e-4: the late-collapse study in docs/RESULTS.md (issue 10) measures why
    # (2.5e-4, purejaxrl's rate, leaves 30% of CartPole seeds dipping late; 5e-4 none of 30).
    c.on_policy.update(dict(minibatch_unit="auto", anneal_learning_rate=False, learning_rate=5e-4))
  if preset == "a2c":
    c.on_policy.update(dict(rollout_length=16, epochs=1, minibatches=1, learning_rate=7e-4))
  if preset == "reinforce":
    c.on_policy.update(dict(rollout_length=32, epochs=1, minibatches=1, learning_rate=3e-3))
  c.off_policy = config_from_dataclass(OffPolicyConfig())
  return c
