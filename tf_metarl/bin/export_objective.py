r"""Exports an objective as a versioned SavedModel: `<export_dir>/<name>/<version>/`.

  export_objective --objective=ppo --name=ppo --export_dir=export
  export_objective --objective=ppo --action_kinds=discrete --name=ppo_discrete

Hyperparameters of built-in objectives come from the config's `objective_settings`; the whole
config is recorded in the export's metadata as its training config.
"""
import json

from absl import flags

from tf_metarl.bin import common

_CONFIG = common.define_config("train_agent.py", "ml_collections config file (optionally :preset).")
_OBJECTIVE = flags.DEFINE_string("objective", None, "Built-in objective name or an exported objective to re-export.")
_NAME = flags.DEFINE_string("name", None, "Model name (default: the objective name).")
_EXPORT_DIR = flags.DEFINE_string("export_dir", "export", "Base directory of exported models.")
_VERSION = flags.DEFINE_integer("version", None, "Integer version (default: highest present + 1).")
_ACTION_KINDS = flags.DEFINE_list("action_kinds", None,
                                  "Restrict the action kinds the export declares it can train (discrete, continuous).")


def main(argv):
  if len(argv) > 1:
    common.fail(f"unexpected positional arguments: {' '.join(argv[1:])}")
  import os

  from tf_metarl import errors
  from tf_metarl.export import export_objective
  from tf_metarl.objectives import make_objective

  config = _CONFIG.value
  spec = _OBJECTIVE.value or config.objective
  settings = dict(config.objective_settings.get(spec) or {})
  objective = make_objective(spec, settings)
  if _ACTION_KINDS.value:
    kinds = tuple(_ACTION_KINDS.value)
    if not set(kinds) <= set(objective.action_kinds):
      raise errors.ConfigError(f"--action_kinds={','.join(kinds)}: objective {spec!r} supports only "
                               f"{', '.join(objective.action_kinds)}")
    objective.action_kinds = kinds
  name = _NAME.value or os.path.basename(os.path.normpath(spec))
  path = export_objective(objective, os.path.join(_EXPORT_DIR.value, name), _VERSION.value,
                          training_config=config.to_dict(), provenance={"source": spec})
  print(json.dumps({"exported": path, "kind": objective.kind, "inputs": list(objective.input_names),
                    "action_kinds": list(objective.action_kinds)}), flush=True)


def run():
  common.run(main)


if __name__ == "__main__":
  run()
