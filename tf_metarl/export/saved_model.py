"""Writes objectives as versioned SavedModels and loads them back as objectives.

Layout: `<base>/<name>/<version>/` with an integer version (TF Serving serves the highest), holding
`saved_model.pb`, `variables/`, `assets/objective.json` (the metadata: objective kind, learner,
action kinds, input specs, hyperparameters, learner settings, training config and provenance) and
`assets.extra/tf_serving_warmup_requests` (one realistic request, `tf_metarl.serving`, which the
exporter checks the signature answers with finite outputs).

Signatures:
  serving_default(**inputs) -> {"per_step": float32[batch, time], "loss": float32[], and any other
    of the objective's `output_names`}, one named input per entry of its `input_names` (dynamic
    batch and time dimensions).
  get_metadata() -> {"metadata": string scalar, the JSON of assets/objective.json}.
The restored object also has a `loss` function with the same inputs, so a caller with only
TensorFlow can differentiate the loss with respect to its own policy's outputs.
"""
from __future__ import annotations

import datetime
import json
import os
import shutil
import sys
import tempfile
from typing import Mapping, Optional

import numpy as np
import tensorflow as tf
from absl import logging

import tf_metarl
from tf_metarl import errors
from tf_metarl import serving
from tf_metarl.file_checks import check_writable_directory
from tf_metarl.objectives.base import (INPUT_DESCRIPTIONS, Objective, assert_input_shapes, describe_spec,
                                       validate_inputs, with_feature_sizes)

METADATA_FILE = "objective.json"
FORMAT = "tf_metarl.objective/1"


def _integer_versions(directory: str):
  if not os.path.isdir(directory):
    return []
  return sorted(int(d) for d in os.listdir(directory) if d.isdigit() and os.path.isdir(os.path.join(directory, d)))


def _metadata(objective: Objective, training_config: Optional[Mapping], provenance: Optional[Mapping]) -> dict:
  specs = objective.input_specs()
  return {
      "format": FORMAT,
      "kind": objective.kind,
      "learner": objective.learner,
      "action_kinds": list(objective.action_kinds),
      "trains_critic": bool(objective.trains_critic),
      "inputs": {n: {"dtype": s.dtype.name, "shape": s.shape.as_list(), "description": INPUT_DESCRIPTIONS[n]}
                 for n, s in specs.items()},
      "outputs": {n: {"dtype": "float32", "shape": [] if n == "loss" else [None, None]}
                  for n in objective.output_names},
      "constraints": objective.constraints(),
      "hyperparameters": objective.hyperparameters(),
      "learner_settings": objective.learner_settings(),
      "training_config": dict(training_config or {}),
      "provenance": provenance_record(provenance),
  }


def provenance_record(extra: Optional[Mapping] = None) -> dict:
  """Library and TensorFlow versions, the time and the command, plus `extra`."""
  return dict({"tf_metarl_version": tf_metarl.__version__, "tensorflow_version": tf.__version__,
               "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               "command": " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))},
              **(extra or {}))


class _ExportModule(tf.Module):
  """Holds the objective (and its variables) and the traced functions that are saved."""

  def __init__(self, objective: Objective):
    super().__init__(name="exported_objective")
    self.objective = objective
    specs = objective.input_specs()

    def loss(**inputs):
      out = objective._loss(assert_input_shapes(specs, inputs, "exported objective"))
      return {n: tf.identity(out[n], name=n) for n in objective.output_names}

    self.loss = tf.function(loss)
    self.serving_default = self.loss.get_concrete_function(**specs)
    # Track the tf.Variables under Keras 3's variables too. Without this, loaders that restore
    # through the graph's saver (TF Serving, saved_model_cli run, TF1 sessions) fail with
    # "Could not find variable ...": measured on this stack, keras-team/keras#19274 and #20096.
    self._tf_variables = list(self.serving_default.variables)

  def attach_metadata(self, metadata_path: str, metadata_json: str):
    self.metadata_asset = tf.saved_model.Asset(metadata_path)
    self.get_metadata = tf.function(lambda: {"metadata": tf.constant(metadata_json)}, input_signature=[])


def check_export_dir(model_dir: str) -> None:
  """Raises ConfigError unless `model_dir` is (or can be created as) a writable directory of
  versions. Binaries call it before training, so a bad --export fails in seconds, not hours."""
  check_writable_directory(model_dir, f"export directory {model_dir}")


def parameter_report(variables) -> dict:
  """{count, max_abs, non_finite: names of variables holding NaN/inf} over float variables."""
  count, max_abs, bad = 0, 0.0, []
  for v in variables:
    if not v.dtype.is_floating:
      continue
    value = v.numpy()
    count += int(value.size)
    if not np.all(np.isfinite(value)):
      bad.append(v.name)
    elif value.size:
      max_abs = max(max_abs, float(np.max(np.abs(value))))
  return {"count": count, "max_abs": max_abs, "non_finite": bad}


LARGE_PARAMETER = 1e4  # |w| above this in an export is logged as a warning (an unstable meta-optimisation)


def _umask() -> int:
  mask = os.umask(0)
  os.umask(mask)
  return mask


def export_objective(objective: Objective, model_dir: str, version: Optional[int] = None,
                     training_config: Optional[Mapping] = None, provenance: Optional[Mapping] = None) -> str:
  """Exports `objective` to `model_dir/<version>/` and returns that path.

  Args:
    model_dir: the model's base directory (e.g. `export/ppo`).
    version: integer version; by default one more than the highest present (1 if none).
    training_config, provenance: JSON-serialisable dicts recorded in the metadata.
  Raises NonFiniteError (nothing written) if a parameter holds NaN or inf. The version is written
  to a temporary sibling and renamed onto a version directory claimed with an atomic mkdir, so a
  crash leaves no partial version and concurrent exports to one model get distinct versions.
  Directories get the process's normal permissions (umask), like any other output.
  """
  check_export_dir(model_dir)
  module = _ExportModule(objective)
  return write_version(module, model_dir, version, _metadata(objective, training_config, provenance), objective.kind)


def write_version(module, model_dir: str, version: Optional[int], metadata: dict, what: str,
                  metadata_file: str = METADATA_FILE) -> str:
  """Writes `module` (a tf.Module with a `serving_default` concrete function and an
  `attach_metadata(path, json)` method) as `model_dir/<version>/`, with `metadata` (plus the
  version and a parameter report) in `assets/<metadata_file>` and a TF Serving warm-up request
  its signature must answer with finite values. `what` names it in errors. See
  `export_objective` for the guarantees (no partial versions, non-finite parameters refused)."""
  check_export_dir(model_dir)
  report = parameter_report(module.serving_default.variables)  # exactly what the signature computes with
  if report["non_finite"]:
    raise errors.NonFiniteError(f"refusing to export {what}: non-finite parameters in "
                                f"{', '.join(report['non_finite'][:3])}")
  if report["max_abs"] > LARGE_PARAMETER:
    logging.warning("exporting %s with parameters as large as %.3g: the meta-optimisation may be unstable",
                    what, report["max_abs"])
  if version is not None and int(version) < 0:
    raise errors.ConfigError(f"export version must be a non-negative integer, got {version}")
  os.makedirs(model_dir, exist_ok=True)
  mode = 0o777 & ~_umask()
  staging = tempfile.mkdtemp(prefix=".staging-", dir=model_dir)
  try:
    os.chmod(staging, mode)
    target, version = _claim_version(model_dir, version, mode)
    try:
      metadata = dict(metadata, version=version, parameters={"count": report["count"], "max_abs": report["max_abs"]})
      metadata_json = json.dumps(metadata, indent=2, sort_keys=True)
      with tempfile.TemporaryDirectory() as scratch:
        path = os.path.join(scratch, metadata_file)
        with open(path, "w") as f:
          f.write(metadata_json + "\n")
        module.attach_metadata(path, metadata_json)
        tf.saved_model.save(module, staging, signatures={"serving_default": module.serving_default,
                                                         "get_metadata": module.get_metadata.get_concrete_function()})
      # TF Serving replays this request when it loads the version; the signature must answer it.
      warmup = serving.write_warmup_requests(staging, os.path.basename(os.path.normpath(model_dir)), metadata)
      _check_answers(module, serving.request_inputs(serving.read_warmup_requests(staging)[0]), warmup)
      os.rename(staging, target)  # replaces the empty directory this process claimed
    except BaseException:
      os.rmdir(target)  # still the empty claim: give the version back
      raise
  except BaseException:
    shutil.rmtree(staging, ignore_errors=True)
    raise
  return target


def _check_answers(module, inputs, source):
  outputs = module.serving_default(**{n: tf.constant(v) for n, v in inputs.items()})
  if not all(np.all(np.isfinite(v.numpy())) for v in outputs.values()):
    raise errors.NonFiniteError(f"refusing to export: the signature's answer to {source} is not finite")


def _claim_version(model_dir: str, version: Optional[int], mode: int):
  """Creates the empty directory `model_dir/<version>` (atomic: exactly one process succeeds);
  with no version given, the next free one after the highest present. Returns (path, version)."""
  if version is not None:
    target = os.path.join(model_dir, str(int(version)))
    try:
      os.mkdir(target, mode)
    except FileExistsError:
      raise errors.ConfigError(f"{target} already exists; versions are immutable, choose another version") from None
    return target, int(version)
  for _ in range(1000):
    versions = _integer_versions(model_dir)
    version = versions[-1] + 1 if versions else 1
    target = os.path.join(model_dir, str(version))
    try:
      os.mkdir(target, mode)
      return target, version
    except FileExistsError:
      continue  # another export claimed it first: take the next one
  raise errors.ConfigError(f"{model_dir}: could not claim a new version directory")


def resolve_version_dir(path: str) -> str:
  """Returns `path` if it holds a SavedModel, else its highest integer version subdirectory."""
  if not os.path.isdir(path):
    raise errors.NotASavedModelError(f"{path}: not a directory (expected an exported objective)")
  if os.path.exists(os.path.join(path, "saved_model.pb")):
    return path
  versions = [v for v in _integer_versions(path) if os.path.exists(os.path.join(path, str(v), "saved_model.pb"))]
  if versions:
    return os.path.join(path, str(versions[-1]))
  raise errors.NotASavedModelError(
      f"{path}: not a SavedModel (no saved_model.pb, and no integer version subdirectory holding one)")


def load_metadata(path: str) -> dict:
  """Reads the metadata JSON of an exported objective (a version or model directory)."""
  version_dir = resolve_version_dir(path)
  meta_path = os.path.join(version_dir, "assets", METADATA_FILE)
  try:
    with open(meta_path) as f:
      metadata = json.load(f)
  except FileNotFoundError:
    raise errors.NotASavedModelError(f"{version_dir}: a SavedModel, but not a tf_metarl objective "
                                     f"(no assets/{METADATA_FILE})") from None
  except json.JSONDecodeError as e:
    raise errors.NotASavedModelError(f"{meta_path}: corrupt metadata ({e})") from None
  if not isinstance(metadata, dict):
    raise errors.NotASavedModelError(f"{meta_path}: metadata must be a JSON object, got a JSON "
                                     f"{type(metadata).__name__}")
  if metadata.get("format") != FORMAT:
    raise errors.NotASavedModelError(f"{meta_path}: unsupported format {metadata.get('format')!r}, expected {FORMAT}")
  for key, kind in _REQUIRED_METADATA.items():
    if not isinstance(metadata.get(key), kind):
      raise errors.NotASavedModelError(f"{meta_path}: metadata lacks {key!r} (a JSON {_JSON_NAMES[kind]}); "
                                       "was it written by export_objective?")
  return metadata


_REQUIRED_METADATA = {"kind": str, "learner": str, "action_kinds": list, "trains_critic": bool, "inputs": dict,
                      "constraints": dict}
_JSON_NAMES = {str: "string", list: "array", bool: "boolean", dict: "object"}


class LoadedObjective(Objective):
  """An exported objective, loaded back: same interface, inputs checked against the saved spec."""

  def __init__(self, path: str):
    super().__init__(name="loaded_objective")
    self.path = resolve_version_dir(path)
    self.metadata = self._no_dependency(load_metadata(self.path))  # plain JSON values, not tracked wrappers
    try:
      # Not tracked (`_no_dependency`): re-exporting this objective must carry its signature and
      # variables, not the old module whole (its assets/objective.json would replace the new one).
      self._module = self._no_dependency(tf.saved_model.load(self.path))
    except Exception as e:  # TF raises several types for corrupt protos or variables.
      msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
      raise errors.NotASavedModelError(f"{self.path}: cannot load SavedModel ({msg})") from None
    if "serving_default" not in self._module.signatures:
      raise errors.NotASavedModelError(f"{self.path}: SavedModel has no serving_default signature")
    self._signature = self._module.signatures["serving_default"]
    self._signature_variables = list(self._signature.variables)  # tracked: what a re-export saves
    _, kwargs = self._signature.structured_input_signature
    if sorted(kwargs) != sorted(self.metadata["inputs"]):
      raise errors.NotASavedModelError(
          f"{self.path}: its serving_default signature takes {', '.join(sorted(kwargs)) or 'nothing'}, but its "
          f"{METADATA_FILE} declares inputs {', '.join(sorted(self.metadata['inputs']))}: not a tf_metarl export")
    outputs = set(self._signature.structured_outputs)
    if not {"per_step", "loss"} <= outputs:
      raise errors.NotASavedModelError(f"{self.path}: its serving_default signature returns "
                                       f"{', '.join(sorted(outputs))}, not per_step and loss")
    bad = parameter_report(self._signature.variables)["non_finite"]  # what the signature computes with
    if bad:
      raise errors.NonFiniteError(f"{self.path}: refusing to load an objective with non-finite parameters "
                                  f"({', '.join(bad[:3])})")
    self.kind = f"saved_model:{self.metadata['kind']}"
    self.output_names = ("per_step", "loss") + tuple(sorted(outputs - {"per_step", "loss"}))
    self.learner = self.metadata["learner"]
    self.action_kinds = tuple(self.metadata["action_kinds"])
    self.trains_critic = bool(self.metadata["trains_critic"])
    # Fixed feature sizes from the metadata too: exports written before signatures declared them.
    self._specs = with_feature_sizes({n: tf.TensorSpec(s.shape, s.dtype, name=n) for n, s in sorted(kwargs.items())},
                                     self.metadata["constraints"])
    self.input_names = tuple(self._specs)

  def input_specs(self):
    return dict(self._specs)

  def hyperparameters(self):
    return dict(self.metadata.get("hyperparameters", {}))

  def constraints(self):
    return dict(self.metadata["constraints"], action_kinds=list(self.action_kinds))

  def learner_settings(self):
    settings = self.metadata.get("learner_settings", {})
    if not isinstance(settings, dict):
      raise errors.NotASavedModelError(f"{self.path}: metadata learner_settings must be a JSON object")
    return dict(settings)

  def __call__(self, inputs):
    unknown = sorted(set(inputs) - set(self._specs) - set(INPUT_DESCRIPTIONS))
    if unknown:
      raise errors.ObjectiveInputError(
          f"{self.path}: unexpected input(s) {', '.join(unknown)}; expected "
          f"{'; '.join(describe_spec(s) for s in self._specs.values())}")
    return self._loss(validate_inputs(self._specs, inputs, self.path))

  def _loss(self, inputs):
    return self._signature(**inputs)


def load_objective(path: str) -> LoadedObjective:
  """Loads an exported objective (version directory, or model directory: highest version)."""
  return LoadedObjective(path)


_VARIABLE_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"


def restore_parameters(objective: Objective, path: str) -> str:
  """Sets `objective`'s trainable parameters to an export's (to continue meta-training it: a
  fine-tuning or a curriculum) and returns the version directory read.

  The export must be of the same kind with the same hyperparameters (ConfigError otherwise). Its
  values are read from the SavedModel's variables by object path (`objective/network/...`, the
  attributes that lead from the exported module to each variable), walked on `objective` itself,
  so no variable is matched by order or by shape alone. Every trainable variable of `objective`
  must be found there with its own shape (ConfigError otherwise; nothing is assigned then)."""
  version_dir = resolve_version_dir(path)
  metadata = load_metadata(version_dir)
  if metadata.get("kind") != objective.kind:
    raise errors.ConfigError(f"{version_dir}: a {metadata.get('kind')!r} objective cannot initialise a "
                             f"{objective.kind!r} one")
  expected = json.loads(json.dumps(objective.hyperparameters()))
  found = metadata.get("hyperparameters") or {}
  differing = [f"{k} {found.get(k)!r} (here {expected.get(k)!r})" for k in sorted(set(found) | set(expected))
               if found.get(k) != expected.get(k)]
  if differing:
    raise errors.ConfigError(f"{version_dir}: the export's hyperparameters differ from this objective's: "
                             + ", ".join(differing))
  reader = tf.train.load_checkpoint(os.path.join(version_dir, "variables", "variables"))
  # The parameters its loss computes with, as the exporter sees them (tf.Variables; Keras 3 wraps each).
  wanted = {id(v): v for v in _ExportModule(objective).serving_default.variables if v.trainable}
  values = {}
  for key in reader.get_variable_to_shape_map():
    if not (key.startswith("objective/") and key.endswith(_VARIABLE_SUFFIX)):
      continue
    node = objective
    for part in key[len("objective/"):-len(_VARIABLE_SUFFIX)].split("/"):
      node = node[int(part)] if part.isdigit() else getattr(node, part, None)
      if node is None:
        break
    node = getattr(node, "value", node)  # a Keras 3 variable -> its tf.Variable
    if id(node) in wanted:
      value = reader.get_tensor(key)
      if tuple(value.shape) != tuple(node.shape):
        raise errors.ConfigError(f"{version_dir}: {key} has shape {value.shape}, this objective's {node.shape}")
      values[id(node)] = value
  missing = [v.name for i, v in wanted.items() if i not in values]
  if missing:
    raise errors.ConfigError(f"{version_dir}: no values for {len(missing)} parameter(s) of this objective, "
                             f"e.g. {missing[0]}")
  for i, variable in wanted.items():
    variable.assign(values[i])
  return version_dir

