"""Evolved Policy Gradients on the MuJoCo task families (issue 12), on Ray:

  meta_train --config=configs/epg_mujoco.py:hopper --backend=ray              # random Hopper
  meta_train --config=configs/epg_mujoco.py:reacher                           # random Reacher
  meta_train --config=configs/epg_mujoco.py:forward_backward                  # the reward fed to the loss
  meta_train --config=configs/epg_mujoco.py:hopper,smoke                      # one short epoch

Each inner training runs the paper's U × M (128 updates × 128 steps for Hopper, 512 × 128 for
Reacher); V perturbations × W runs per ES epoch are Ray tasks, one per member (`ray_address`
joins a cluster; without one Ray starts on this machine). `smoke` keeps U × M but runs one epoch
of V = 2 members × W = 1 run. Defaults live in `EPGConfig`; this file sets only what differs.
"""
import ml_collections

from tf_metarl.algorithms.epg import EPGConfig
from tf_metarl.config_utils import config_from_dataclass
from tf_metarl.envs import mujoco_families as families
from tf_metarl.learners.loop import RunSettings

FAMILIES = {
    "hopper": dict(env="tf_metarl/RandomHopper-v5", randomize=families.HOPPER_RANGES,
                   held_out=families.HOPPER_HELD_OUT, updates=128),
    "reacher": dict(env="tf_metarl/RandomReacher-v5", randomize=families.REACHER_RANGES,
                    held_out=families.REACHER_HELD_OUT, updates=512),
    "forward_backward": dict(env="tf_metarl/ForwardBackwardHopper-v5", randomize="", held_out="", updates=128,
                             reward_input=True),
}
# A cluster's population: V perturbations × W runs, every member's runs in one worker.
FULL = dict(backend="ray", population=64, runs_per_member=4, member_timeout_s=3600.0)
SMOKE = dict(backend="ray", population=2, runs_per_member=1, member_timeout_s=1800.0)


def get_config(variant: str = "hopper"):
  parts = [p for p in variant.split(",") if p]
  family = [p for p in parts if p in FAMILIES]
  unknown = [p for p in parts if p not in FAMILIES and p != "smoke"]
  if len(family) != 1 or unknown:
    raise ValueError(f"config variant {variant!r}: choose one family of {', '.join(FAMILIES)}, "
                     f"optionally with ',smoke'")
  smoke = "smoke" in parts
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.epochs = 1 if smoke else 200
  c.epg = config_from_dataclass(EPGConfig(**FAMILIES[family[0]], **(SMOKE if smoke else FULL)))
  c.update(config_from_dataclass(RunSettings(eval_every=0 if smoke else 20, eval_episodes=2, checkpoint_every=1)))
  return c
