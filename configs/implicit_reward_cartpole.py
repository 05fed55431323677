"""Learned helper-reward weighting with implicit gradients on CartPole (Place 2023, Figure 1):

  meta_train --config=configs/implicit_reward_cartpole.py:random,discrete,neumann,implicit

The variant is a comma-separated choice, in any order, of
  helper:   harmful (default), random, helpful, none   (`envs.helper_rewards`)
  actions:  discrete (tf_metarl/CartPole-v1, default), continuous (tf_metarl/ContinuousCartPole-v1)
  solver:   neumann (default), cg, diagonal            (the inverse-Hessian-vector solve)
  method:   implicit (default), bipars, bipars_em (discrete actions only), ppo, ppo_helper, dpba
The `implicit_reward` section comes from `tf_metarl.algorithms.implicit_reward.ImplicitRewardConfig`
(with its `on_policy` inner learner) and the run settings from `RunSettings`: defaults live there.
"""
import ml_collections

from tf_metarl.algorithms.implicit_reward import METHODS, SOLVERS, ImplicitRewardConfig
from tf_metarl.config_utils import config_from_dataclass
from tf_metarl.envs.helper_rewards import HELPERS
from tf_metarl.learners.loop import RunSettings

ACTIONS = {"discrete": "tf_metarl/CartPole-v1", "continuous": "tf_metarl/ContinuousCartPole-v1"}


def parse_variant(variant: str) -> dict:
  """'random,continuous,cg' -> ImplicitRewardConfig fields; unknown or repeated kinds are errors."""
  chosen = {}
  kinds = (("helper", HELPERS), ("env", tuple(ACTIONS)), ("solver", SOLVERS), ("method", METHODS))
  for token in filter(None, (t.strip() for t in variant.split(","))):
    kind = next((k for k, options in kinds if token in options), None)
    if kind is None or kind in chosen:
      raise ValueError(f"config variant {variant!r}: {token!r} is {'repeated' if kind else 'unknown'}; choose "
                       "one of each of " + "; ".join(f"{k}: {', '.join(o)}" for k, o in kinds))
    chosen[kind] = ACTIONS[token] if kind == "env" else token
  return chosen


def run_section(run: str, helper: str, actions: str = "discrete", overrides=()) -> dict:
  """The `implicit_reward` section of a benchmark's run ("implicit:cg", "bipars", "ppo", ...) with a
  helper and action space ("ppo" always trains without a helper); `overrides`: "key=value"
  strings (Python literals)."""
  import ast
  method, _, solver = run.partition(":")
  helper = "none" if method == "ppo" else helper
  values = get_config(",".join(filter(None, [method, solver, helper, actions]))).implicit_reward.to_dict()
  for item in overrides:
    key, _, text = item.partition("=")
    values[key] = ast.literal_eval(text)
  return values


def get_config(variant: str = ""):
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.steps = 500_000
  c.update(config_from_dataclass(RunSettings(eval_every=50_000, eval_episodes=10, checkpoint_every=100_000)))
  c.implicit_reward = config_from_dataclass(ImplicitRewardConfig(**parse_variant(variant)))
  return c
