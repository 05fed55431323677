"""SavedModel export: signatures, metadata, loading in a process that has only TensorFlow, errors."""
import dataclasses
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
from tf_metarl.objectives import MetaGenRLObjective, Objective, PPOObjective

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
  objective = MetaGenRLObjective(units=8)
  path = export_objective(objective, str(tmp_path / "metagenrl"))
  loaded = load_objective(path)
  assert loaded.constraints()["action_dim"] is None and loaded.learner == "off_policy"
  assert loaded.input_specs()["actions"].shape.as_list() == [None, None, None]  # any action dimension
  rng = np.random.default_rng(0)
  for d in (1, 4):
    inputs = {n: tf.constant(rng.normal(size=(2, 4)), tf.float32) for n in loaded.input_names}
    inputs.update(actions=tf.constant(rng.normal(size=(2, 4, d)), tf.float32),
                  behaviour_actions=tf.constant(rng.normal(size=(2, 4, d)), tf.float32))
    np.testing.assert_allclose(loaded(inputs)["per_step"].numpy(), objective(inputs)["per_step"].numpy(), rtol=1e-5)


ANY_ACTION_DIMENSION = textwrap.dedent(r"""
    import json, sys
    import numpy as np
    import tensorflow as tf
    loaded = tf.saved_model.load(sys.argv[1])  # kept: the signature's variables live as long as it
    signature = loaded.signatures["serving_default"]
    names = list(signature.structured_input_signature[1])
    rng = np.random.default_rng(0)
    out = {"tf_metarl_imported": False}
    for d in (1, 3, 6):
      # A deterministic policy of this process's own: 5 observation features -> d tanh actions.
      policy = tf.keras.Sequential([tf.keras.Input((5,)), tf.keras.layers.Dense(d, activation="tanh")])
      obs = tf.constant(rng.normal(size=(2 * 7, 5)), tf.float32)
      inputs = {n: tf.constant(rng.normal(size=(2, 7)), tf.float32) for n in names}
      inputs.update(discounts=tf.ones([2, 7]), episode_ends=tf.zeros([2, 7]), time=tf.fill([2, 7], 0.5),
                    behaviour_actions=tf.constant(rng.uniform(-1, 1, size=(2, 7, d)), tf.float32))
      with tf.GradientTape() as tape:
        inputs["actions"] = tf.reshape(policy(obs), [2, 7, d])
        loss = signature(**inputs)["loss"]
      grads = tape.gradient(loss, policy.trainable_variables)
      out[d] = {"loss": float(loss), "grad_norm": float(tf.linalg.global_norm(grads))}
    out["tf_metarl_imported"] = any(m.startswith("tf_metarl") for m in sys.modules)
    print(json.dumps(out))
""")


@pytest.mark.slow
def test_a_metagenrl_export_trains_policies_of_any_action_dimension_in_a_tensorflow_only_process(tmp_path):
  path = export_objective(MetaGenRLObjective(), str(tmp_path / "metagenrl"))
  out = subprocess.run([sys.executable, "-c", ANY_ACTION_DIMENSION, path], capture_output=True, text=True,
                       timeout=120, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  assert out.returncode == 0, out.stderr[-2000:]
  result = json.loads(out.stdout.strip().splitlines()[-1])
  assert not result["tf_metarl_imported"]
  for d in ("1", "3", "6"):
    assert np.isfinite(result[d]["loss"]) and 0 < result[d]["grad_norm"] < 1e6, result


class FixedActionObjective(Objective):
  """A tiny objective with a fixed action size, to test the signature's size checks."""
  kind, learner, action_kinds = "fixed_action", "off_policy", ("continuous",)
  input_names = ("rewards", "q_values", "actions")

  def constraints(self):
    return dict(super().constraints(), action_dim=2)

  def _loss(self, inputs):
    per_step = inputs["rewards"] * inputs["q_values"] + tf.reduce_sum(inputs["actions"], -1)
    return {"per_step": per_step, "loss": tf.reduce_mean(per_step)}


SHAPE_CHECKS = textwrap.dedent(r"""
    import json, sys
    import tensorflow as tf
    loaded = tf.saved_model.load(sys.argv[1])
    signature = loaded.signatures["serving_default"]
    specs = signature.structured_input_signature[1]
    def inputs(b=2, t=5, **replace):
      out = {n: tf.zeros([b, t] + [2] * (s.shape.rank - 2)) for n, s in specs.items()}
      out.update({n: tf.zeros(shape) for n, shape in replace.items()})
      return out
    cases = {"good": inputs(), "q_values_batch_1": inputs(q_values=[1, 5]), "actions_time_1": inputs(actions=[2, 1, 2]),
             "rewards_rank_1": inputs(rewards=[2]), "actions_size_3": inputs(actions=[2, 5, 3]),
             "empty_batch": inputs(b=0)}
    result = {"specs": {n: s.shape.as_list() for n, s in specs.items()},
              "tf_metarl_imported": any(m.startswith("tf_metarl") for m in sys.modules)}
    for name, feed in cases.items():
      try:
        result[name] = float(signature(**feed)["loss"])
      except tf.errors.InvalidArgumentError as e:
        result[name] = "error: " + " ".join(e.message.split())
    print(json.dumps(result))
""")


def test_exported_signature_refuses_mismatched_shapes_from_a_tensorflow_only_process(tmp_path):
  path = export_objective(FixedActionObjective(), str(tmp_path / "fixed"))
  out = subprocess.run([sys.executable, "-c", SHAPE_CHECKS, path], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  assert out.returncode == 0, out.stderr[-2000:]
  result = json.loads(out.stdout.strip().splitlines()[-1])
  assert not result["tf_metarl_imported"]
  assert result["specs"]["actions"] == [None, None, 2]  # a fixed size is declared where it is fixed
  assert isinstance(result["good"], float) and np.isfinite(result["good"])
  expectations = {"q_values_batch_1": "input q_values must be q_values: float32[?,?] with the batch and time",
                  "actions_time_1": "input actions must be actions: float32[?,?,2] with the batch and time",
                  "rewards_rank_1": "input rewards must have rank 2: rewards: float32[?,?]",
                  "actions_size_3": "input actions must have size 2 on axis 2: actions: float32[?,?,2]",
                  "empty_batch": "empty batch"}
  for case, message in expectations.items():
    assert str(result[case]).startswith("error:") and message in result[case], (case, result[case])


def test_non_finite_parameters_are_never_exported_nor_loaded(tmp_path, monkeypatch):
  objective = MetaGenRLObjective(units=4)
  objective.network.trainable_variables[0].assign(objective.network.trainable_variables[0] * np.nan)
  with pytest.raises(errors.NonFiniteError, match="refusing to export metagenrl: non-finite parameters"):
    export_objective(objective, str(tmp_path / "m"))
  assert not os.path.exists(tmp_path / "m" / "1")
  # Without the parameter check, the warm-up request's non-finite answer still stops it.
  from tf_metarl.export import saved_model
  monkeypatch.setattr(saved_model, "parameter_report", lambda variables: {"count": 0, "max_abs": 0.0, "non_finite": []})
  with pytest.raises(errors.NonFiniteError, match="the signature's answer to .*tf_serving_warmup_requests is not finite"):
    export_objective(objective, str(tmp_path / "m"))
  assert not os.path.exists(tmp_path / "m" / "1")
  # An export written without either check (as an older version could) is refused when loaded.
  monkeypatch.setattr(saved_model, "_check_answers", lambda *args: None)
  path = export_objective(objective, str(tmp_path / "m"))
  monkeypatch.undo()
  with pytest.raises(errors.NonFiniteError, match="refusing to load an objective with non-finite parameters"):
    load_objective(path)


def test_concurrent_exports_get_distinct_versions_with_normal_permissions(tmp_path):
  import threading
  paths, failures = [], []

  def export():
    try:
      paths.append(export_objective(PPOObjective(), str(tmp_path / "m")))
    except Exception as e:  # pylint: disable=broad-except
      failures.append(e)

  threads = [threading.Thread(target=export) for _ in range(4)]
  for t in threads:
    t.start()
  for t in threads:
    t.join()
  assert not failures and sorted(os.path.basename(p) for p in paths) == ["1", "2", "3", "4"]
  assert sorted(os.listdir(tmp_path / "m")) == ["1", "2", "3", "4"]
  umask = os.umask(0)
  os.umask(umask)
  assert os.stat(paths[0]).st_mode & 0o777 == 0o777 & ~umask


def test_metadata_that_is_not_an_export_is_refused(tmp_path, ppo_export):
  copy = tmp_path / "copy"
  os.system(f"cp -r {ppo_export}/. {copy}/")
  meta = copy / "assets" / "objective.json"
  original = json.loads(meta.read_text())
  meta.write_text("[1, 2]")
  with pytest.raises(errors.NotASavedModelError, match="metadata must be a JSON object, got a JSON list"):
    load_objective(str(copy))
  meta.write_text(json.dumps({k: v for k, v in original.items() if k != "kind"}))
  with pytest.raises(errors.NotASavedModelError, match="metadata lacks 'kind'"):
    load_objective(str(copy))
  # A plain SavedModel (not an export) with an export's objective.json copied into it.
  plain = tmp_path / "plain"
  module = tf.Module()
  module.f = tf.function(lambda x: {"y": x * 2.0}, input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
  tf.saved_model.save(module, str(plain), signatures={"serving_default": module.f.get_concrete_function()})
  (plain / "assets").mkdir(exist_ok=True)
  (plain / "assets" / "objective.json").write_text(json.dumps(original))
  with pytest.raises(errors.NotASavedModelError, match="signature takes x, but its objective.json declares inputs"):
    load_objective(str(plain))


if __name__ == "__main__":
  sys.exit(pytest.main([__file__, "-q"]))


def test_learner_settings_travel_with_an_export_and_yield_to_the_users_config(tmp_path):
  from tf_metarl.algorithms.metagenrl import MetaGenRLConfig
  from tf_metarl.learners.off_policy import OffPolicyConfig
  from tf_metarl.learners.train import resolve_learner_config
  objective = MetaGenRLObjective(units=4)
  objective.set_learner_settings(MetaGenRLConfig(hidden_sizes=(32, 32), batch_size=8).learner_settings())
  loaded = load_objective(export_objective(objective, str(tmp_path / "m")))
  assert loaded.learner_settings()["hidden_sizes"] == [32, 32] and loaded.learner_settings()["sequence_length"] == 20
  user = dict(dataclasses.asdict(OffPolicyConfig()), batch_size=64, hidden_sizes=(256, 256))  # batch set by the user
  config, adopted = resolve_learner_config(OffPolicyConfig, "off_policy", user, loaded.learner_settings())
  assert (config.batch_size, config.hidden_sizes, config.sequence_length) == (64, (32, 32), 20)
  assert config.layer_norm and config.max_grad_norm == 1.0 and "batch_size" not in adopted
  # A setting this version does not know (a newer exporter's) is skipped, the rest still apply.
  config, adopted = resolve_learner_config(OffPolicyConfig, "off_policy", user,
                                           dict(loaded.learner_settings(), no_such_setting=3))
  assert "no_such_setting" not in adopted and config.sequence_length == 20
  # Built-in objectives recommend nothing: the user's config (here all defaults) is used as is.
  config, adopted = resolve_learner_config(OffPolicyConfig, "off_policy", {}, PPOObjective().learner_settings())
  assert config == OffPolicyConfig() and adopted == {}
