"""What `meta_train` runs for a config, by its method section (no flags here, so tests and tools
can resolve configs without defining the binary's flags).

Each resolver returns (trainer factory, run name, identity, why it cannot `--export`, or None);
building the section validates it, before any logdir exists.
"""


def _frodo_run(config, seed):
  """(trainer factory, run name, identity, exportable?) for the online meta-gradient configs."""
  from tf_metarl.algorithms.frodo import FrodoConfig, OnlineMetaConfig, OnlineMetaTrainer
  from tf_metarl.config_utils import dataclass_from_config
  frodo = dataclass_from_config(FrodoConfig, config.frodo.to_dict(), "frodo")
  learner_config = dataclass_from_config(OnlineMetaConfig, dict(config.learner.to_dict(), frodo=frodo), "learner")
  learner_config.validate()
  name = f"{learner_config.method}{'-ext' if frodo.extension else ''}-{learner_config.env}"
  identity = dict(method=learner_config.method, extension=frodo.extension, env=learner_config.env, seed=seed)
  exportable = None if learner_config.method == "frodo" else (
      f"--export needs the frodo method; this config trains {learner_config.method!r}")
  return lambda: OnlineMetaTrainer(learner_config, seed), name, identity, exportable


def _metagenrl_run(config, seed):
  """The same for MetaGenRL configs (a `metagenrl` section)."""
  from tf_metarl.algorithms.metagenrl import MetaGenRLConfig, MetaGenRLTrainer
  from tf_metarl.config_utils import dataclass_from_config
  metagenrl = dataclass_from_config(MetaGenRLConfig, config.metagenrl.to_dict(), "metagenrl").validate()
  name = f"metagenrl-{'+'.join(metagenrl.envs)}"
  identity = dict(method="metagenrl", objective=metagenrl.objective, envs=list(metagenrl.envs),
                  num_agents=metagenrl.num_agents, seed=seed)
  exportable = None if metagenrl.objective == "learned" else (
      f"--export needs the learned objective; this config trains with the fixed {metagenrl.objective!r}")
  return lambda: MetaGenRLTrainer(metagenrl, seed), name, identity, exportable


def _implicit_reward_run(config, seed):
  """The same for the implicit reward method and its baselines (an `implicit_reward` section)."""
  from tf_metarl.algorithms.implicit_reward import ImplicitRewardTrainer, config_from_section
  section = config_from_section(config.implicit_reward.to_dict())
  name = f"{section.method}-{section.helper}-{section.env.split('/')[-1]}"
  identity = dict(method=section.method, helper=section.helper, env=section.env, solver=section.solver, seed=seed)
  exportable = None if section.method in ("implicit", "bipars") else (
      f"--export needs a learned reward (method implicit or bipars); this config trains {section.method!r}")
  return lambda: ImplicitRewardTrainer(section, seed), name, identity, exportable


def _epg_run(config, seed):
  """The same for Evolved Policy Gradients (an `epg` section)."""
  from tf_metarl.algorithms.epg import EPGTrainer, config_from_section
  section = config_from_section(config.epg.to_dict())
  name = f"epg-{section.env.split('/')[-1]}"
  identity = dict(method="epg", env=section.env, randomize=section.randomize, population=section.population,
                  runs_per_member=section.runs_per_member, seed=seed)
  return lambda: EPGTrainer(section, seed), name, identity, None


RESOLVERS = {"metagenrl": _metagenrl_run, "implicit_reward": _implicit_reward_run, "epg": _epg_run,
             "frodo": _frodo_run}


def method_run(config, seed):
  """The resolver of the config's method section (the online meta-gradient configs have `frodo`)."""
  section = next((name for name in RESOLVERS if name in config), "frodo")
  return RESOLVERS[section](config, seed)
