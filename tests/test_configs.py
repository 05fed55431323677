"""Every shipped meta_train config, in every variant its docstring names, resolves to a valid method
section (what `meta_train` checks before it creates a logdir)."""
import importlib

import pytest

from tf_metarl.bin import meta_runs

# (config module, variants): the variants each config's docstring offers.
CONFIGS = [
    ("epg_random_pendulum", ["", "quick", "paper", "openes"]),
    ("epg_random_cartpole", ["", "quick", "paper", "openes"]),
    ("epg_mujoco", ["hopper", "reacher", "forward_backward", "hopper,smoke"]),
    ("frodo_catch", [""]),
    ("frodo_random_walk", [""]),
    ("mgrl_catch", ["mgrl"]),
    ("implicit_reward_cartpole", ["", "random,continuous,cg", "bipars,helpful", "bipars_em,random", "dpba,harmful", "ppo,none"]),
    ("metagenrl_lunar", ["learned", "td3", "learned,cpu", "learned,cpu,no_time"]),
    ("metagenrl_lunar_cheetah", ["learned", "learned,cpu"]),
    ("metagenrl_quick", [None]),
]
RESOLVERS = meta_runs.RESOLVERS  # imported without the binary's flags (other test files define flags of their own)


@pytest.mark.parametrize("name, variants", CONFIGS, ids=[name for name, _ in CONFIGS])
def test_every_config_variant_resolves_to_a_valid_section(name, variants):
  module = importlib.import_module(f"configs.{name}")
  for variant in variants:
    config = module.get_config() if variant is None else module.get_config(variant)
    sections = [s for s in RESOLVERS if s in config]
    assert len(sections) == 1, (name, variant, sections)
    _, run_name, identity, _ = meta_runs.method_run(config, 0)
    assert run_name and identity["seed"] == 0


def test_an_unknown_variant_is_refused_in_one_line():
  with pytest.raises(ValueError, match="config variant 'pendulum' is unknown"):
    importlib.import_module("configs.epg_random_cartpole").get_config("pendulum")
