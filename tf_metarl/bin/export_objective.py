r"""Exports an objective as a versioned SavedModel: `<export_dir>/<name>/<version>/`.

  export_objective --objective=ppo --name=ppo --export_dir=export
  export_objective --objective=ppo --action_kinds=discrete --name=ppo_discrete

Hyperparameters of built-in objectives come from the config's `objective_settings`; the whole
config is recorded in the export's metadata as its training config. Re-exporting an exported
objective (`--objective=export/frodo_catch`) keeps its training config and provenance, and adds
what this version's exporter adds (run-time shape checks, fixed feature sizes in the signature).
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
  from tf_metarl.export import LoadedObjective, export_objective
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
  if isinstance(objective, LoadedObjective):  # a re-export keeps what trained it
    training_config = objective.metadata.get("training_config", {})
    provenance = {"re_exported_from": objective.path, "original": objective.metadata.get("provenance", {})}
    objective.kind = objective.metadata["kind"]  # the objective it is, not "saved_model:<kind>"
  else:
    training_config, provenance = config.to_dict(), {"source": spec}
  path = export_objective(objective, os.path.join(_EXPORT_DIR.value, name), _VERSION.value,
                          training_config=training_config, provenance=provenance)
  print(json.dumps({"exported": path, "kind": objective.kind, "inputs": list(objective.input_names),
                    "action_kinds": list(objective.action_kinds)}), flush=True)


def run():
  common.run(main)


if __name__ == "__main__":
  run()
