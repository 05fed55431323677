"""Entry point: trains a fresh agent on an environment with an objective given by name or path."""
from __future__ import annotations

import dataclasses
import os
from typing import Dict, Mapping, Tuple

import numpy as np
from absl import logging

from tf_metarl import errors
from tf_metarl.config_utils import dataclass_from_config, parse_member_values, positive_int
from tf_metarl.envs import classic_control, mujoco_families
from tf_metarl.envs.gym_envs import EnvInfo, describe_env, make_env
from tf_metarl.learners.loop import RunSettings, check_logdir, run_training
from tf_metarl.objectives.base import OFF_POLICY, ON_POLICY, Objective
from tf_metarl.objectives.registry import make_objective


def check_compatible(objective: Objective, env_info: EnvInfo, source: str) -> None:
  """Raises IncompatibleSpaceError if the objective cannot train agents on this environment."""
  if env_info.action_kind not in objective.action_kinds:
    kinds = " or ".join(objective.action_kinds)
    space = (f"{env_info.num_actions} discrete actions" if env_info.action_kind == "discrete"
             else f"continuous actions of dimension {env_info.action_dim}")
    raise errors.IncompatibleSpaceError(
        f"objective {source!r} trains {kinds} actions only; {env_info.env_id} has {space}")
  constraints = objective.constraints()
  for key, have in (("action_dim", env_info.action_dim), ("observation_dim", int(np.prod(env_info.observation_shape))),
                    ("num_actions", env_info.num_actions)):
    want = constraints.get(key)
    if want is not None and int(want) != have:
      raise errors.IncompatibleSpaceError(
          f"objective {source!r} was built for {key.replace('_', ' ')} {want}; {env_info.env_id} has {have}")
  if objective.learner not in (ON_POLICY, OFF_POLICY):
    raise errors.IncompatibleSpaceError(f"objective {source!r} names an unknown learner {objective.learner!r}")


def _comparable(value):
  return [_comparable(v) for v in value] if isinstance(value, (list, tuple)) else value


def resolve_learner_config(cls, section: str, values: Mapping, recommended: Mapping) -> Tuple[object, dict]:
  """The learner's config section as dataclass `cls`: its defaults, then `recommended` (an
  exported objective's `learner_settings`) for every key the user's `values` leave at the
  default, then the user's values. Returns (config, the recommended keys adopted)."""
  defaults = {f.name: f.default for f in dataclasses.fields(cls)}
  values, adopted = dict(values), {}
  unknown = sorted(set(recommended) - set(defaults))
  if unknown:  # e.g. an export written by a newer version: its other settings still apply
    logging.warning("ignoring recommended %s setting(s) this version does not have: %s", section, ", ".join(unknown))
  for key, value in recommended.items():
    if key in defaults and _comparable(values.get(key, defaults[key])) == _comparable(defaults[key]):
      values[key] = adopted[key] = value
  return dataclass_from_config(cls, values, section), adopted


def _learned_reward(path: str, objective: Objective, objective_spec: str, env_info: EnvInfo):
  """(objective with the export's discount γ_η, trajectory transform to r_η) for `config.reward`:
  an exported learned reward, its helper rebuilt from the name it records."""
  from tf_metarl.envs import helper_rewards
  from tf_metarl.export.learned_reward import load_reward
  from tf_metarl.export.saved_model import LoadedObjective
  if objective.learner != ON_POLICY or isinstance(objective, LoadedObjective) or "gamma" not in objective.hyperparameters():
    raise errors.ConfigError(f"config.reward trains with a built-in on-policy objective (ppo, reinforce, a2c) whose γ "
                             f"it sets; got {objective_spec}")
  reward = load_reward(path)
  constraints, obs_dim = reward.constraints, int(np.prod(env_info.observation_shape))
  discrete = env_info.action_kind == "discrete"
  if constraints["observation_dim"] != obs_dim or bool(constraints["num_actions"]) != discrete or (
      discrete and constraints["num_actions"] != env_info.num_actions) or (
      not discrete and constraints["action_dim"] != env_info.action_dim):
    raise errors.IncompatibleSpaceError(
        f"learned reward {path!r} was learned for {reward.metadata.get('env')} (observation dim "
        f"{constraints['observation_dim']}, actions {constraints['num_actions'] or constraints['action_dim']}); "
        f"{env_info.env_id} does not match")
  helper = helper_rewards.make_helper(reward.helper_name, env_info.env_id, reward.helper_seed,
                                      reward.helper_scale)
  logging.info("training on the learned reward %s (helper %s, γ = %.4f)", path, reward.helper_name, reward.discount)
  return objective.with_hyperparameters(gamma=reward.discount), reward.transform(helper)


def train(env_id: str, objective_spec: str, seed: int, logdir: str, config: Mapping, fresh: bool = False) -> Dict:
  """Trains a fresh agent; returns the run summary.

  Args:
    env_id: a gymnasium id; on the TensorFlow-native ids (`tf_metarl/CartPole-v1`, ...:
      `envs.classic_control`) the agent trains in graph (on-policy and off-policy learners).
    objective_spec: "ppo", "reinforce", "a2c", "td3", or a path to an exported objective.
    fresh: move an existing `logdir` aside and start over instead of resuming it.
    config: a mapping (ml_collections ConfigDict or dict) with `steps` (per seed), `seeds` (how
      many agents, of seeds seed, seed + 1, ..., train together in one graph; > 1 needs a
      TensorFlow-native environment), `env_randomize` (a randomised
      task family of a TensorFlow-native environment: "mass=0.5:2.0,length=0.5:1.5", each copy's
      parameters drawn uniformly at every reset; or the ranges of a randomised MuJoCo family such
      as `tf_metarl/RandomHopper-v5`, which draws a task at each seeded reset), `member_settings` (per-member learning rates
      or objective hyperparameters of a population: "learning_rate=1e-4:3e-4,entropy_coef=0:0.01",
      one value per seed), the `RunSettings` keys
      (`eval_every`, `checkpoint_every`, ...), `objective_settings` (hyperparameters per built-in
      objective) and the learner sections `on_policy` / `off_policy`; `reward` (an exported learned
      reward: the agent trains on r_η and γ_η with the helper it was learned for; returns are
      still reported in the environment's reward).
  Every input (config values, logdir, environment, objective) is checked before the logdir is
  created or training starts.
  """
  from tf_metarl.learners.off_policy import OffPolicyConfig, OffPolicyLearner  # Imported here: one learner per run.
  from tf_metarl.learners.in_graph_off_policy import InGraphOffPolicyLearner
  from tf_metarl.learners.in_graph_on_policy import InGraphOnPolicyLearner
  from tf_metarl.learners.on_policy import OnPolicyConfig, OnPolicyLearner, check_rollout_fits

  steps = positive_int(config["steps"], "config.steps")
  members = positive_int(config.get("seeds", 1), "config.seeds")
  run_settings = RunSettings.from_config(config)
  check_logdir(logdir)
  env_info = describe_env(env_id)
  settings = dict((config.get("objective_settings") or {}).get(objective_spec) or {})
  objective = make_objective(objective_spec, settings)
  check_compatible(objective, env_info, objective_spec)
  section, cls = ("on_policy", OnPolicyConfig) if objective.learner == ON_POLICY else ("off_policy", OffPolicyConfig)
  learner_config, adopted = resolve_learner_config(cls, section, dict(config.get(section, {})),
                                                   objective.learner_settings())
  if objective.learner == ON_POLICY:
    check_rollout_fits(objective, learner_config)
  if adopted:
    logging.info("%s settings from %s (where the config keeps the default): %s", section, objective_spec,
                 ", ".join(f"{k}={v}" for k, v in sorted(adopted.items())))
  in_graph = classic_control.is_native(env_id)
  ranges = classic_control.parse_ranges(config.get("env_randomize", ""))
  randomize, env_kwargs = ranges, {}  # the in-graph environment's family, or the gymnasium one's arguments
  if ranges and env_id in mujoco_families.FAMILIES:  # a MuJoCo family draws its tasks from these ranges
    randomize, env_kwargs = {}, {"randomize": config["env_randomize"]}
    make_env(env_id, **env_kwargs).close()  # names the family lacks: a one-line error now
  elif ranges and not classic_control.is_native(env_id):
    raise errors.ConfigError(f"config.env_randomize needs a TensorFlow-native environment "
                             f"({', '.join(classic_control.ENVIRONMENTS)}) or a randomised MuJoCo family "
                             f"({', '.join(mujoco_families.FAMILIES)}); got {env_id}")
  reward_transform, reward_spec = None, config.get("reward", "") or ""
  if reward_spec:
    objective, reward_transform = _learned_reward(reward_spec, objective, objective_spec, env_info)
  member_settings = parse_member_values(config.get("member_settings", ""), members)
  if member_settings and not (in_graph and objective.learner == ON_POLICY):
    raise errors.ConfigError(f"config.member_settings needs a population trained in one graph (an on-policy objective "
                             f"on a TensorFlow-native environment); got {objective_spec} on {env_id}")
  if members > 1 and not in_graph:
    raise errors.ConfigError(
        f"config.seeds = {members} trains the seeds together in one graph, which needs a TensorFlow-native "
        f"environment ({', '.join(classic_control.ENVIRONMENTS)}); got {env_id}")
  if in_graph and objective.learner == ON_POLICY:  # TensorFlow-native environment: each iteration is one graph
    learner = InGraphOnPolicyLearner(env_info, objective, learner_config, seed, steps, members=members,
                                     env_randomize=randomize, member_settings=member_settings,
                                     reward_transform=reward_transform)
  elif in_graph:
    learner = InGraphOffPolicyLearner(env_info, objective, learner_config, seed, env_randomize=randomize,
                                      members=members)
  elif objective.learner == ON_POLICY:
    learner = OnPolicyLearner(env_info, objective, learner_config, seed, steps, reward_transform=reward_transform,
                              env_kwargs=env_kwargs)
  else:
    learner = OffPolicyLearner(env_info, objective, learner_config, seed, env_kwargs=env_kwargs)
  identity = dict(env=env_id, objective=objective_spec, objective_kind=objective.kind, seed=seed,
                  learner=objective.learner + ("_in_graph" if in_graph else ""))
  if members > 1:
    identity["seeds"] = members
  if member_settings:
    identity["member_settings"] = member_settings
  if reward_spec:
    identity["reward"] = reward_spec
  if ranges:
    identity["env_randomize"] = {k: list(v) for k, v in sorted(ranges.items())}
  resolved = dict(config, env=env_id, objective=objective_spec, seed=seed)
  resolved[section] = dataclasses.asdict(learner.config)  # what the agent trained with, adopted and resolved settings included
  replay_from = config.get("replay_from", "") or ""
  if replay_from:
    from tf_metarl.recording import replay_streams
    if objective.learner != OFF_POLICY or in_graph:
      raise errors.ConfigError(f"config.replay_from warm-starts the replay buffer of the off-policy learner on a "
                               f"gymnasium environment; got {objective_spec} on {env_id}")
    learner.replay_source = replay_streams(replay_from, env_info, learner.config.num_envs)
    identity["replay_from"] = os.path.abspath(replay_from)
  record = config.get("record", "") or ""
  if record:  # in-graph learners hand their rollouts (on-policy) or replay rows (off-policy) back to it
    from tf_metarl.recording import EpisodeRecorder
    learner.recorder = EpisodeRecorder(record, env_info, dict(identity, logdir=os.path.abspath(logdir)))
  try:
    return run_training(learner, steps, logdir, identity, run_settings, config=resolved, fresh=fresh)
  finally:
    if getattr(learner, "recorder", None) is not None:
      learner.recorder.close()
