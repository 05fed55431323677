"""TF Serving conventions for exported objectives, checked without a model server.

- `example_inputs`: a realistic batch for an export's signature, from its metadata (seeded).
- `predict_request` / `rest_body`: the gRPC `PredictRequest` (tensorflow-serving-api's protos)
  and the REST body (`{"signature_name": ..., "inputs": {...}}`, the columnar format) for numpy
  inputs.
- `write_warmup_requests`: `assets.extra/tf_serving_warmup_requests`, a TFRecord of
  `PredictionLog`s the model server replays when it loads a version (every export carries one).
- `model_config`: a `model_config_list` text proto for a directory of exported models.
"""
from __future__ import annotations

import os
from typing import Dict, Mapping, Optional

import numpy as np
import tensorflow as tf
from google.protobuf import text_format
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2
from tensorflow_serving.config import model_server_config_pb2

from tf_metarl import errors

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
SIGNATURE = "serving_default"
VERSION_POLICIES = ("latest", "all")


def _episode_ends(rng, batch, time):
  ends = (rng.uniform(size=(batch, time)) < 0.1).astype(np.float32)
  ends[:, -1] = 1.0
  return ends


# How each named input looks in real data, [B, T] (or [B, T, D] for the rank-3 inputs).
_GENERATORS = {
    "rewards": lambda rng, b, t: rng.normal(size=(b, t)),
    "discounts": lambda rng, b, t: np.ones((b, t)),
    "episode_ends": _episode_ends,
    "values": lambda rng, b, t: rng.normal(size=(b, t)),
    "next_values": lambda rng, b, t: rng.normal(size=(b, t)),
    "log_probs": lambda rng, b, t: -np.abs(rng.normal(size=(b, t))) - 0.5,
    "behaviour_log_probs": lambda rng, b, t: -np.abs(rng.normal(size=(b, t))) - 0.5,
    "entropies": lambda rng, b, t: np.abs(rng.normal(size=(b, t))) + 0.5,
    "q_values": lambda rng, b, t: rng.normal(size=(b, t)),
    "time": lambda rng, b, t: np.tile(np.linspace(0.0, 1.0, t), (b, 1)),
}


def example_inputs(metadata: Mapping, batch: int = 2, time: int = 8, feature_size: int = 2,
                   seed: int = 0) -> Dict[str, np.ndarray]:
  """One batch of inputs for an export's `serving_default`, from its metadata `inputs` (names,
  dtypes, shapes). Feature sizes the export fixes (in its input shapes or, for older exports, its
  constraints) are used; free ones (`null`) get `feature_size`. Actions are in [-1, 1]; log-probabilities negative, entropies positive."""
  rng = np.random.default_rng(seed)
  constraints = metadata.get("constraints", {})  # older exports fix sizes only here
  time = max(time, int(constraints.get("min_time_steps") or 0))  # e.g. EPG's receptive field
  fixed = {"observations": constraints.get("observation_dim"), "actions": constraints.get("action_dim"),
           "behaviour_actions": constraints.get("action_dim")}
  out = {}
  for name, spec in sorted(metadata["inputs"].items()):
    shape = spec["shape"]
    if len(shape) == 3:
      size = shape[2] if shape[2] is not None else fixed.get(name) or feature_size
      if name.endswith("actions"):
        value = rng.uniform(-1.0, 1.0, size=(batch, time, size))
      else:
        value = rng.normal(size=(batch, time, size))
    else:
      value = _GENERATORS.get(name, lambda r, b, t: r.normal(size=(b, t)))(rng, batch, time)
      if name == "actions":  # discrete actions (a learned reward's input): valid indices
        value = rng.integers(0, constraints.get("num_actions") or 2, size=(batch, time))
    out[name] = np.asarray(value, dtype=spec.get("dtype", "float32"))
  return out


def predict_request(model_name: str, inputs: Mapping[str, np.ndarray], signature_name: str = SIGNATURE,
                    version: Optional[int] = None) -> predict_pb2.PredictRequest:
  """The gRPC `PredictRequest` for `inputs` (numpy arrays by input name)."""
  request = predict_pb2.PredictRequest()
  request.model_spec.name = model_name
  request.model_spec.signature_name = signature_name
  if version is not None:
    request.model_spec.version.value = int(version)
  for name, value in inputs.items():
    request.inputs[name].CopyFrom(tf.make_tensor_proto(np.asarray(value)))
  return request


def request_inputs(request: predict_pb2.PredictRequest) -> Dict[str, np.ndarray]:
  """The numpy inputs a `PredictRequest` carries (what the model server feeds the signature)."""
  return {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}


def rest_body(inputs: Mapping[str, np.ndarray], signature_name: str = SIGNATURE) -> dict:
  """The REST predict body (columnar `inputs`), JSON-serialisable:
  POST http://<host>:8501/v1/models/<name>[/versions/<v>]:predict."""
  return {"signature_name": signature_name, "inputs": {n: np.asarray(v).tolist() for n, v in sorted(inputs.items())}}


def write_warmup_requests(version_dir: str, model_name: str, metadata: Mapping) -> str:
  """Writes `<version_dir>/assets.extra/tf_serving_warmup_requests` with one realistic request;
  returns its path."""
  path = os.path.join(version_dir, WARMUP_FILE)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  log = prediction_log_pb2.PredictionLog(
      predict_log=prediction_log_pb2.PredictLog(request=predict_request(model_name, example_inputs(metadata))))
  with tf.io.TFRecordWriter(path) as writer:
    writer.write(log.SerializeToString())
  return path


def read_warmup_requests(version_dir: str):
  """The `PredictRequest`s of a version's warm-up file, in order."""
  path = os.path.join(version_dir, WARMUP_FILE)
  if not os.path.exists(path):
    raise errors.NotASavedModelError(f"{version_dir}: no {WARMUP_FILE} (exported before warm-up requests were written?)")
  requests = []
  for record in tf.data.TFRecordDataset(path):
    log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
    requests.append(log.predict_log.request)
  return requests


def model_config(export_root: str, version_policy: str = "latest", base_path_prefix: Optional[str] = None) -> str:
  """A `model_config_list` (text proto, for `tensorflow_model_server --model_config_file`) naming
  every exported model under `export_root` (directories holding integer version directories).

  version_policy: `latest` (serve the highest version) or `all`.
  base_path_prefix: where `export_root` is seen by the server (e.g. `/models` in a container);
    default: its absolute path here.
  """
  from tf_metarl.export.saved_model import load_metadata, resolve_version_dir
  if version_policy not in VERSION_POLICIES:
    raise errors.ConfigError(f"version policy must be one of {', '.join(VERSION_POLICIES)}, got {version_policy!r}")
  if not os.path.isdir(export_root):
    raise errors.ConfigError(f"{export_root}: not a directory of exported models")
  config = model_server_config_pb2.ModelServerConfig()
  prefix = base_path_prefix or os.path.abspath(export_root)
  for name in sorted(os.listdir(export_root)):
    model_dir = os.path.join(export_root, name)
    if not os.path.isdir(model_dir) or not any(d.isdigit() for d in os.listdir(model_dir)):
      continue
    load_metadata(resolve_version_dir(model_dir))  # a one-line error if the highest version is not an export
    entry = config.model_config_list.config.add()
    entry.name, entry.base_path, entry.model_platform = name, f"{prefix.rstrip('/')}/{name}", "tensorflow"
    if version_policy == "all":
      entry.model_version_policy.all.SetInParent()
    else:
      entry.model_version_policy.latest.num_versions = 1
  if not config.model_config_list.config:
    raise errors.ConfigError(f"{export_root}: holds no exported models (<name>/<version>/ directories)")
  return text_format.MessageToString(config)
