"""Learned rewards (the implicit reward method's r_η, γ_η) as versioned SavedModels, through the
objectives' exporter (`saved_model.write_version`: same layout, staging, checks and TF Serving
warm-up request), and loaded back for `train_agent --reward`.

Signatures:
  serving_default(observations float32[batch, time, O], actions int32[batch, time] (discrete) or
    float32[batch, time, A], rewards float32[batch, time] (the environment's r_p),
    helper_rewards float32[batch, time] (r_h)) -> {"shaped_rewards": float32[batch, time] (r_η),
    "discount": float32[] (γ_η)}.
  get_metadata() -> {"metadata": the JSON of assets/reward.json}: the helper the reward was learned
    for (name, seed), the environment, spaces, hyperparameters, training config and provenance.
A process with only TensorFlow calls it with `tf.saved_model.load(path).signatures[...]`.
"""
from __future__ import annotations

import json
import os
from typing import Mapping, Optional

import numpy as np
import tensorflow as tf

from tf_metarl import errors
from tf_metarl.export.saved_model import (parameter_report, provenance_record, resolve_version_dir,
                                          write_version)

METADATA_FILE = "reward.json"
FORMAT = "tf_metarl.reward/1"
DESCRIPTIONS = {"observations": "s_t", "actions": "a_t (indices for discrete actions)",
                "rewards": "the environment's reward r_p", "helper_rewards": "the helper's reward r_h"}


class _RewardModule(tf.Module):
  def __init__(self, model):
    super().__init__(name="exported_reward")
    self.model = model
    if model.num_actions:
      actions = tf.TensorSpec([None, None], tf.int32, name="actions")
    else:
      actions = tf.TensorSpec([None, None, model.action_dim], tf.float32, name="actions")
    self.specs = {"observations": tf.TensorSpec([None, None, model.observation_dim], tf.float32, name="observations"),
                  "actions": actions, "rewards": tf.TensorSpec([None, None], tf.float32, name="rewards"),
                  "helper_rewards": tf.TensorSpec([None, None], tf.float32, name="helper_rewards")}

    def shaped(observations, actions, rewards, helper_rewards):
      eta = list(model.trainable_variables)
      rewards, discount, _, _ = model.shaped(eta, observations, actions, rewards, helper_rewards)
      return {"shaped_rewards": tf.identity(rewards, name="shaped_rewards"), "discount": tf.identity(discount)}

    self.shaped = tf.function(shaped)
    self.serving_default = self.shaped.get_concrete_function(**self.specs)
    self._tf_variables = list(self.serving_default.variables)  # see saved_model._ExportModule

  def attach_metadata(self, metadata_path: str, metadata_json: str):
    self.metadata_asset = tf.saved_model.Asset(metadata_path)
    self.get_metadata = tf.function(lambda: {"metadata": tf.constant(metadata_json)}, input_signature=[])


def export_reward(model, model_dir: str, helper: str, env_id: str, helper_seed: int = 0, helper_scale: float = 1.0,
                  version: Optional[int] = None, training_config: Optional[Mapping] = None,
                  provenance: Optional[Mapping] = None) -> str:
  """Exports a `networks.LearnedReward` to `model_dir/<version>/`; returns that path. `helper`
  (a name of `envs.helper_rewards`, or a SavedModel helper's path), `helper_seed` and
  `helper_scale` name the helper it was learned for, `env_id` the environment."""
  module = _RewardModule(model)
  metadata = {
      "format": FORMAT, "kind": "learned_reward", "env": env_id,
      "helper": {"name": helper, "seed": int(helper_seed), "scale": float(helper_scale)},
      "inputs": {n: {"dtype": s.dtype.name, "shape": s.shape.as_list(), "description": DESCRIPTIONS[n]}
                 for n, s in module.specs.items()},
      "outputs": {"shaped_rewards": {"dtype": "float32", "shape": [None, None]},
                  "discount": {"dtype": "float32", "shape": []}},
      "constraints": {"observation_dim": model.observation_dim, "num_actions": model.num_actions,
                      "action_dim": None if model.num_actions else model.action_dim},
      "hyperparameters": {"additive": model.additive},
      "training_config": dict(training_config or {}),
      "provenance": provenance_record(provenance),
  }
  return write_version(module, model_dir, version, metadata, "learned reward", METADATA_FILE)


class LoadedReward:
  """An exported learned reward: `shaped(observations, actions, rewards, helper_rewards)` ->
  (r_η [B, T], γ_η), plus its `metadata`."""

  def __init__(self, path: str):
    self.path = resolve_version_dir(path)
    meta_path = os.path.join(self.path, "assets", METADATA_FILE)
    try:
      with open(meta_path) as f:
        self.metadata = json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
      raise errors.NotASavedModelError(f"{self.path}: not a tf_metarl learned reward (no readable "
                                       f"assets/{METADATA_FILE})") from None
    if not isinstance(self.metadata, dict) or self.metadata.get("format") != FORMAT:
      raise errors.NotASavedModelError(f"{meta_path}: unsupported format, expected {FORMAT}")
    module = tf.saved_model.load(self.path)
    self.signature = module.signatures["serving_default"]
    self._module = module
    bad = parameter_report(self.signature.variables)["non_finite"]
    if bad:
      raise errors.NonFiniteError(f"{self.path}: refusing to load a learned reward with non-finite parameters")
    self.helper_name = self.metadata["helper"]["name"]
    self.helper_seed = int(self.metadata["helper"].get("seed", 0))
    self.helper_scale = float(self.metadata["helper"].get("scale", 1.0))
    self.constraints = self.metadata["constraints"]
    self.discount = float(self.shaped(
        np.zeros([1, 1, self.constraints["observation_dim"]], np.float32),
        np.zeros([1, 1] + ([] if self.constraints["num_actions"] else [self.constraints["action_dim"]]),
                 np.int32 if self.constraints["num_actions"] else np.float32),
        np.zeros([1, 1], np.float32), np.zeros([1, 1], np.float32))[1])

  def shaped(self, observations, actions, rewards, helper_rewards):
    dtype = tf.int32 if self.constraints["num_actions"] else tf.float32
    out = self.signature(observations=tf.cast(observations, tf.float32), actions=tf.cast(actions, dtype),
                         rewards=tf.cast(rewards, tf.float32), helper_rewards=tf.cast(helper_rewards, tf.float32))
    return out["shaped_rewards"], out["discount"]


  def transform(self, helper):
    """trajectory -> the same trajectory with r_η in place of the environment's rewards, r_h from
    `helper` (None: 0): what a learner trains on with `train_agent --reward`."""
    def shaped_trajectory(trajectory):
      if helper is None:
        helper_values = tf.zeros_like(trajectory.rewards)
      else:
        from tf_metarl.envs.helper_rewards import helper_rewards
        helper_values = helper_rewards(helper, trajectory.observations, trajectory.actions,
                                       trajectory.next_observations)
      rewards, _ = self.shaped(trajectory.observations, trajectory.actions, trajectory.rewards, helper_values)
      return trajectory._replace(rewards=tf.stop_gradient(rewards))
    return shaped_trajectory


def load_reward(path: str) -> LoadedReward:
  return LoadedReward(path)
