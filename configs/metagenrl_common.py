"""Shared fields of the MetaGenRL configs (metagenrl_lunar_cheetah, metagenrl_lunar, metagenrl_quick).

The `metagenrl` section comes from `tf_metarl.algorithms.metagenrl.MetaGenRLConfig` (the paper's
Tables 3 and 4) and the run settings from `RunSettings`: defaults live there only. `steps` counts
environment steps summed over the population (20 agents × 50k steps each = 1M).
"""
import ml_collections

from tf_metarl.algorithms.metagenrl import MetaGenRLConfig
from tf_metarl.config_utils import config_from_dataclass
from tf_metarl.learners.loop import RunSettings


# The budget a 2-core CPU host allows (`:<objective>,cpu`): 4 agents with 2 × 128 networks, batch
# 16 × 20, 5k random steps then 10k annealing steps per agent, 100k steps per agent. Measured on
# such a host: about 100 ms per iteration of 8 agent-steps (77 agent-steps/s), against 264 ms per
# agent-step for the paper's networks and batch (docs/RESULTS.md, MetaGenRL).
CPU_BUDGET = dict(num_agents=4, hidden_sizes=(128, 128), batch_size=16, warmup_steps=5_000, anneal_steps=10_000)
CPU_STEPS = 4 * 100_000


# The ablations of the paper's section 5.2, as variant tokens (`:learned,cpu,no_time`).
ABLATIONS = {
    "no_time": dict(scalar_features=("rewards", "next_values", "values")),
    "no_values": dict(scalar_features=("rewards", "time")),
    "k3": dict(inner_steps=3),
}
# The reference code's schedule (`MetaGenRLConfig.learn_during_warmup`): `:learned,cpu,reference_schedule`.
OPTIONS = dict(ABLATIONS, reference_schedule=dict(learn_during_warmup=True))


def parse_variant(variant: str):
  """`objective[,cpu][,option...]` (the config string after `:`; options: `OPTIONS`) ->
  (objective, cpu budget?, MetaGenRLConfig overrides of the options)."""
  parts = [p.strip() for p in variant.split(",") if p.strip()] or ["learned"]
  extra = [p for p in parts[1:] if p != "cpu" and p not in OPTIONS]
  if extra or parts[0] == "cpu" or parts[0] in OPTIONS:
    raise ValueError(f"config variant {variant!r}: expected <objective>[,cpu][,{'|'.join(OPTIONS)}], "
                     "e.g. learned,cpu or learned,cpu,no_time")
  overrides = {}
  for p in parts[1:]:
    overrides.update(OPTIONS.get(p, {}))
  return parts[0], "cpu" in parts[1:], overrides


def variant_config(envs, variant: str) -> ml_collections.ConfigDict:
  """The config of `envs` for a variant string (`parse_variant`)."""
  objective, cpu, ablation = parse_variant(variant)
  if not cpu:
    return base_config(envs=envs, objective=objective, **ablation)
  c = base_config(envs=envs, objective=objective, **dict(CPU_BUDGET, **ablation))
  c.steps = CPU_STEPS
  c.eval_every = c.checkpoint_every = CPU_STEPS // 10
  return c


def base_config(**metagenrl) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.steps = 1_000_000
  c.update(config_from_dataclass(RunSettings(eval_every=100_000, eval_episodes=4, checkpoint_every=100_000)))
  c.metagenrl = config_from_dataclass(MetaGenRLConfig(**metagenrl))
  return c
