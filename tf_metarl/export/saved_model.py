"""Writes objectives as versioned SavedModels and loads them back as objectives.

Layout: `<base>/<name>/<version>/` with an integer version (TF Serving serves the highest), holding
`saved_model.pb`, `variables/` and `assets/objective.json`, the metadata: objective kind, learner,
action kinds, input specs, hyperparameters, training config and provenance.

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

import tensorflow as tf

import tf_metarl
from tf_metarl import errors
from tf_metarl.objectives.base import INPUT_DESCRIPTIONS, Objective, describe_spec, validate_inputs

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
      "training_config": dict(training_config or {}),
      "provenance": dict({"tf_metarl_version": tf_metarl.__version__, "tensorflow_version": tf.__version__,
                          "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                          "command": " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))},
                         **(provenance or {})),
  }


class _ExportModule(tf.Module):
  """Holds the objective (and its variables) and the traced functions that are saved."""

  def __init__(self, objective: Objective, metadata_path: str, metadata_json: str):
    super().__init__(name="exported_objective")
    self.objective = objective
    self.metadata_asset = tf.saved_model.Asset(metadata_path)
    specs = objective.input_specs()

    def loss(**inputs):
      out = objective._loss(dict(inputs))  # Already validated by the signature's specs.
      return {n: tf.identity(out[n], name=n) for n in objective.output_names}

    self.loss = tf.function(loss)
    self.serving_default = self.loss.get_concrete_function(**specs)
    self.get_metadata = tf.function(lambda: {"metadata": tf.constant(metadata_json)}, input_signature=[])


def export_objective(objective: Objective, model_dir: str, version: Optional[int] = None,
                     training_config: Optional[Mapping] = None, provenance: Optional[Mapping] = None) -> str:
  """Exports `objective` to `model_dir/<version>/` and returns that path.

  Args:
    model_dir: the model's base directory (e.g. `export/ppo`).
    version: integer version; by default one more than the highest present (1 if none).
    training_config, provenance: JSON-serialisable dicts recorded in the metadata.
  The directory is written to a temporary sibling and renamed, so a crash leaves no partial version.
  """
  versions = _integer_versions(model_dir)
  version = (versions[-1] + 1 if versions else 1) if version is None else int(version)
  if version < 0:
    raise errors.ConfigError(f"export version must be a non-negative integer, got {version}")
  target = os.path.join(model_dir, str(version))
  if os.path.exists(target):
    raise errors.ConfigError(f"{target} already exists; versions are immutable, choose another version")
  os.makedirs(model_dir, exist_ok=True)
  metadata = _metadata(objective, training_config, provenance)
  metadata["version"] = version
  metadata_json = json.dumps(metadata, indent=2, sort_keys=True)
  staging = tempfile.mkdtemp(prefix=f".{version}.tmp-", dir=model_dir)
  try:
    with tempfile.TemporaryDirectory() as scratch:
      path = os.path.join(scratch, METADATA_FILE)
      with open(path, "w") as f:
        f.write(metadata_json + "\n")
      module = _ExportModule(objective, path, metadata_json)
      tf.saved_model.save(module, staging, signatures={"serving_default": module.serving_default,
                                                       "get_metadata": module.get_metadata.get_concrete_function()})
    os.replace(staging, target)
  except BaseException:
    shutil.rmtree(staging, ignore_errors=True)
    raise
  return target


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
  if metadata.get("format") != FORMAT:
    raise errors.NotASavedModelError(f"{meta_path}: unsupported format {metadata.get('format')!r}, expected {FORMAT}")
  return metadata


class LoadedObjective(Objective):
  """An exported objective, loaded back: same interface, inputs checked against the saved spec."""

  def __init__(self, path: str):
    super().__init__(name="loaded_objective")
    self.path = resolve_version_dir(path)
    self.metadata = load_metadata(self.path)
    try:
      self._module = tf.saved_model.load(self.path)
    except Exception as e:  # TF raises several types for corrupt protos or variables.
      msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
      raise errors.NotASavedModelError(f"{self.path}: cannot load SavedModel ({msg})") from None
    if "serving_default" not in self._module.signatures:
      raise errors.NotASavedModelError(f"{self.path}: SavedModel has no serving_default signature")
    self._signature = self._module.signatures["serving_default"]
    self.kind = f"saved_model:{self.metadata['kind']}"
    self.learner = self.metadata["learner"]
    self.action_kinds = tuple(self.metadata["action_kinds"])
    self.trains_critic = bool(self.metadata["trains_critic"])
    _, kwargs = self._signature.structured_input_signature
    self._specs = {n: tf.TensorSpec(s.shape, s.dtype, name=n) for n, s in sorted(kwargs.items())}
    self.input_names = tuple(self._specs)

  def input_specs(self):
    return dict(self._specs)

  def hyperparameters(self):
    return dict(self.metadata.get("hyperparameters", {}))

  def constraints(self):
    return dict(self.metadata["constraints"], action_kinds=list(self.action_kinds))

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
