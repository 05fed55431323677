"""SavedModel export: signatures, metadata, loading in a process that has only TensorFlow, errors."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from tf_metarl import errors
from tf_metarl.export import export_objective, load_metadata, load_objective
from tf_metarl.objectives import LSTMObjective, PPOObjective

FRESH_PROCESS = textwrap.dedent(r"""
    import json, sys
    import numpy as np
    import tensorflow as tf
    path = sys.argv[1]
    loaded = tf.saved_model.load(path)
    signature = loaded.signatures["serving_default"]
    meta = json.loads(loaded.signatures["get_metadata"]()["metadata"].numpy().decode())
    # A policy of this process's own: logits for 2 actions from 4 observation features.
    policy = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(2)])
    rng = np.random.default_rng(0)
    B, T = 3, 5
    obs = tf.constant(rng.normal(size=(B * T, 4)), tf.float32)
    actions = tf.constant(rng.integers(0, 2, size=(B * T,)), tf.int32)
    with tf.GradientTape() as tape:
      log_probs = tf.reshape(tf.gather(tf.nn.log_softmax(policy(obs)), actions, batch_dims=1), [B, T])
      inputs = {n: tf.constant(rng.normal(size=(B, T)), tf.float32) for n in meta["inputs"]}
      inputs["log_probs"] = log_probs
      inputs["behaviour_log_probs"] = tf.stop_gradient(log_probs)
      out = signature(**inputs)
    grads = tape.gradient(out["loss"], policy.trainable_variables)
    print(json.dumps({"tf_metarl_imported": any(m.startswith("tf_metarl") for m in sys.modules),
                      "kind": meta["kind"], "loss": float(out["loss"]), "per_step_shape": out["per_step"].shape.as_list(),
                      "grad_norm": float(tf.linalg.global_norm(grads))}))
""")


@pytest.fixture(scope="module")
def ppo_export(tmp_path_factory):
  base = tmp_path_factory.mktemp("export")
  return export_objective(PPOObjective(normalise_advantages=False), str(base / "ppo"),
                          training_config={"steps": 10}, provenance={"source": "test"})


def test_versions_are_integer_directories_and_immutable(tmp_path):
  first = export_objective(PPOObjective(), str(tmp_path / "m"))
  second = export_objective(PPOObjective(), str(tmp_path / "m"))
  assert (os.path.basename(first), os.path.basename(second)) == ("1", "2")
  assert sorted(os.listdir(tmp_path / "m")) == ["1", "2"]  # no staging leftovers
  with pytest.raises(errors.ConfigError, match="already exists"):
    export_objective(PPOObjective(), str(tmp_path / "m"), version=2)
  assert load_objective(str(tmp_path / "m")).path.endswith(os.path.join("m", "2"))  # highest version


def test_metadata_describes_the_objective(ppo_export):
  meta = load_metadata(ppo_export)
  assert meta["kind"] == "ppo" and meta["learner"] == "on_policy" and meta["version"] == 1
  assert meta["inputs"]["rewards"] == {"dtype": "float32", "shape": [None, None],
                                       "description": meta["inputs"]["rewards"]["description"]}
  assert meta["constraints"]["action_kinds"] == ["discrete", "continuous"]
  assert meta["training_config"] == {"steps": 10} and meta["provenance"]["source"] == "test"
  assert meta["provenance"]["tensorflow_version"] == tf.__version__


def test_loaded_objective_matches_the_original(ppo_export):
  rng = np.random.default_rng(1)
  loaded = load_objective(ppo_export)
  inputs = {n: tf.constant(rng.normal(size=(4, 6)), tf.float32) for n in loaded.input_names}
  np.testing.assert_allclose(loaded(inputs)["loss"].numpy(),
                             PPOObjective(normalise_advantages=False)(inputs)["loss"].numpy(), rtol=1e-6)
  assert loaded(inputs)["per_step"].shape == (4, 6)


def test_fresh_process_with_only_tensorflow_trains_through_it(ppo_export, tmp_path):
  script = tmp_path / "fresh.py"
  script.write_text(FRESH_PROCESS)
  env = dict(os.environ, PYTHONPATH="")  # the repository is not importable from tmp_path
  result = subprocess.run([sys.executable, str(script), ppo_export], capture_output=True, text=True, cwd=tmp_path,
                          env=env, timeout=120)
  assert result.returncode == 0, result.stderr[-2000:]
  report = json.loads(result.stdout.strip().splitlines()[-1])
  assert report["tf_metarl_imported"] is False
  assert report["kind"] == "ppo" and report["per_step_shape"] == [3, 5]
  assert np.isfinite(report["loss"]) and report["grad_norm"] > 1e-6


def test_saved_model_cli_lists_the_signature(ppo_export):
  cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
  result = subprocess.run([cli, "show", "--dir", ppo_export, "--all"], capture_output=True, text=True, timeout=120)
  assert result.returncode == 0, result.stderr[-2000:]
  assert "signature_def['serving_default']" in result.stdout
  assert "inputs['log_probs']" in result.stdout and "outputs['per_step']" in result.stdout
  assert "signature_def['get_metadata']" in result.stdout


def test_wrong_inputs_name_the_expected_spec(ppo_export):
  loaded = load_objective(ppo_export)
  good = {n: tf.zeros([2, 3]) for n in loaded.input_names}
  with pytest.raises(errors.ObjectiveInputError, match="input values has shape \\[2, 3, 1\\], expected values: float32\\[\\?,\\?\\]"):
    loaded(dict(good, values=tf.zeros([2, 3, 1])))
  with pytest.raises(errors.ObjectiveInputError, match="input rewards has dtype float64"):
    loaded(dict(good, rewards=tf.zeros([2, 3], tf.float64)))
  with pytest.raises(errors.ObjectiveInputError, match="unexpected input\\(s\\) reward;"):
    loaded(dict(good, reward=tf.zeros([2, 3])))
  with pytest.raises(errors.ObjectiveInputError, match="missing input\\(s\\) entropies"):
    loaded({k: v for k, v in good.items() if k != "entropies"})


def test_not_a_saved_model_and_corrupt_files(tmp_path, ppo_export):
  with pytest.raises(errors.NotASavedModelError, match="not a directory"):
    load_objective(str(tmp_path / "missing"))
  with pytest.raises(errors.NotASavedModelError, match="no saved_model.pb"):
    load_objective(str(tmp_path))
  corrupt = tmp_path / "corrupt"
  corrupt.mkdir()
  os.system(f"cp -r {ppo_export}/. {corrupt}/")
  (corrupt / "saved_model.pb").write_bytes(b"\x00garbage")
  with pytest.raises(errors.NotASavedModelError, match="cannot load SavedModel"):
    load_objective(str(corrupt))
  (corrupt / "assets" / "objective.json").write_text("{not json")
  with pytest.raises(errors.NotASavedModelError, match="corrupt metadata"):
    load_objective(str(corrupt))


def test_learned_objective_with_variables_round_trips(tmp_path):
  objective = LSTMObjective(action_dim=2, units=8)
  path = export_objective(objective, str(tmp_path / "lstm"))
  loaded = load_objective(path)
  assert loaded.constraints()["action_dim"] == 2 and loaded.learner == "off_policy"
  rng = np.random.default_rng(0)
  inputs = {n: tf.constant(rng.normal(size=(2, 4)), tf.float32) for n in ("rewards", "discounts", "episode_ends", "q_values")}
  inputs["actions"] = tf.constant(rng.normal(size=(2, 4, 2)), tf.float32)
  np.testing.assert_allclose(loaded(inputs)["per_step"].numpy(), objective(inputs)["per_step"].numpy(), rtol=1e-5)


if __name__ == "__main__":
  sys.exit(pytest.main([__file__, "-q"]))
