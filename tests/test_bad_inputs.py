"""Bad input through each binary, in a process of its own as a user meets it: exactly one line on stderr,
`error: ...` naming what is wrong, exit status 2, and nothing written where the check comes first.
Then the faults: non-finite training through meta_train, SIGTERM through train_agent."""
import concurrent.futures
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow

BINARIES = {name: [sys.executable, "-m", f"tf_metarl.bin.{name}"]
            for name in ("train_agent", "meta_train", "export_objective", "serving_config")}
SHIPPED_PPO = os.path.join(REPO, "export", "ppo")
SHIPPED_EPG = os.path.join(REPO, "export", "epg_random_pendulum")


def _latest(model_dir):
  return os.path.join(model_dir, str(max(int(v) for v in os.listdir(model_dir) if v.isdigit())))


def _copy_export(base, name, edit_metadata):
  path = base / name
  shutil.copytree(_latest(SHIPPED_PPO), path)
  meta = path / "assets" / "objective.json"
  meta.write_text(edit_metadata(json.loads(meta.read_text())))
  return str(path)


def _plain_saved_model(base):
  """A SavedModel that is not an export, with an export's objective.json copied into it."""
  import tensorflow as tf
  path = base / "plain"
  module = tf.Module()
  module.f = tf.function(lambda x: {"y": 2.0 * x}, input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
  tf.saved_model.save(module, str(path), signatures={"serving_default": module.f.get_concrete_function()})
  os.makedirs(path / "assets", exist_ok=True)
  shutil.copy(os.path.join(_latest(SHIPPED_PPO), "assets", "objective.json"), path / "assets" / "objective.json")
  return str(path)


def _non_finite_export(base):
  """An export holding a NaN (written past the exporter's own checks, as an older version could)."""
  from tf_metarl.export import export_objective, saved_model
  from tf_metarl.objectives import MetaGenRLObjective
  objective = MetaGenRLObjective(units=4)
  objective.network.trainable_variables[0].assign(objective.network.trainable_variables[0] * np.nan)
  originals = saved_model.parameter_report, saved_model._check_answers
  saved_model.parameter_report = lambda variables: {"count": 0, "max_abs": 0.0, "non_finite": []}
  saved_model._check_answers = lambda *args: None
  try:
    return export_objective(objective, str(base / "nan"))
  finally:
    saved_model.parameter_report, saved_model._check_answers = originals


def cases(base):
  """(id, binary, args, message in the one line, paths that must not exist afterwards)."""
  a_file = base / "a_file"
  a_file.write_text("not a directory")
  logdir = lambda name: str(base / "logdirs" / name)
  corrupt_run = base / "logdirs" / "corrupt_run"
  os.makedirs(corrupt_run)
  (corrupt_run / "run.json").write_text("{not json")
  os.makedirs(base / "exports" / "m" / "1")
  os.makedirs(base / "no_models" / "not_a_model")  # a directory, but no <name>/<version>/ inside
  not_object = _copy_export(base, "not_object", lambda m: "[1, 2]")
  lacks_kind = _copy_export(base, "lacks_kind", lambda m: json.dumps({k: v for k, v in m.items() if k != "kind"}))
  plain = _plain_saved_model(base)
  nan_export = _non_finite_export(base)
  from tf_metarl.export import export_objective
  from tf_metarl.objectives import MetaGenRLObjective
  metagenrl_export = export_objective(MetaGenRLObjective(units=4), str(base / "metagenrl"))
  from tf_metarl.envs import helper_rewards
  import tensorflow as tf
  wide_helper = helper_rewards.export_helper(
      helper_rewards.CallableHelper(lambda o, a, n: tf.zeros([tf.shape(o)[0], 2]), "wide"), str(base / "wide"), 4, 2)
  implicit = "--config=configs/implicit_reward_cartpole.py"
  epg = "--config=configs/epg_random_pendulum.py"
  from tf_metarl.envs.gym_envs import describe_env
  from tf_metarl.recording import EpisodeRecorder
  EpisodeRecorder(str(base / "recorded"), describe_env("CartPole-v1"), {"env": "CartPole-v1", "seed": 99}).close()
  os.makedirs(base / "not_a_dataset")
  (base / "not_a_dataset" / "notes.txt").write_text("mine")
  return [
      # train_agent
      ("override_unknown_default_config", "train_agent", ["--config.no_such_field=1"],
       "--config.no_such_field: the config has no field 'no_such_field'", []),
      ("override_unknown_with_config", "train_agent", ["--config=configs/train_agent.py", "--config.no_such_field=1"],
       "--config.no_such_field: the config has no field 'no_such_field'", []),
      ("override_unknown_nested", "train_agent", ["--config.on_policy.no_such=1"],
       "--config.on_policy.no_such: the config has no field 'no_such'", []),
      ("override_wrong_type", "train_agent", ["--config.steps=ten"], "flag --config.steps=ten", []),
      ("unknown_preset", "train_agent", ["--config=configs/train_agent.py:sac"], "unknown preset 'sac'", []),
      ("positional_argument", "train_agent", ["extra"], "unexpected positional arguments: extra", []),
      ("logdir_is_a_file", "train_agent", [f"--logdir={a_file}"], "exists and is not a directory", []),
      ("logdir_under_a_file", "train_agent", [f"--logdir={a_file}/run"], "cannot create it", []),
      ("checkpoint_every_negative", "train_agent", ["--config.checkpoint_every=-1", f"--logdir={logdir('ck')}"],
       "config.checkpoint_every must be >= 0", [logdir("ck")]),
      ("eval_episodes_zero", "train_agent", ["--config.eval_episodes=0", f"--logdir={logdir('ev')}"],
       "config.eval_episodes must be >= 1 when config.eval_every > 0", [logdir("ev")]),
      ("learning_rate_negative", "train_agent", ["--config.on_policy.learning_rate=-1", f"--logdir={logdir('lr')}"],
       "on_policy.learning_rate must be > 0", [logdir("lr")]),
      ("unknown_environment", "train_agent", ["--env=NoSuchEnv-v9", f"--logdir={logdir('env')}"],
       "unknown environment id 'NoSuchEnv-v9'", [logdir("env")]),
      ("objective_path_missing", "train_agent", ["--objective=./no_such_objective", f"--logdir={logdir('om')}"],
       "./no_such_objective: not a directory", [logdir("om")]),
      ("objective_not_a_saved_model", "train_agent", ["--objective=tests", f"--logdir={logdir('ns')}"],
       "tests: not a SavedModel", [logdir("ns")]),
      ("objective_wrong_action_kind", "train_agent", ["--objective=td3", "--env=CartPole-v1", f"--logdir={logdir('ak')}"],
       "objective 'td3' trains continuous actions only", [logdir("ak")]),
      ("metadata_not_an_object", "train_agent", [f"--objective={not_object}", f"--logdir={logdir('no')}"],
       "metadata must be a JSON object, got a JSON list", [logdir("no")]),
      ("metadata_lacks_kind", "train_agent", [f"--objective={lacks_kind}", f"--logdir={logdir('lk')}"],
       "metadata lacks 'kind'", [logdir("lk")]),
      ("plain_saved_model_with_copied_metadata", "train_agent", [f"--objective={plain}", f"--logdir={logdir('pl')}"],
       "not a tf_metarl export", [logdir("pl")]),
      ("export_with_non_finite_parameters", "train_agent",
       [f"--objective={nan_export}", "--env=Pendulum-v1", f"--logdir={logdir('nan')}"],
       "refusing to load an objective with non-finite parameters", [logdir("nan")]),
      ("corrupt_run_json", "train_agent", ["--config.steps=64", f"--logdir={corrupt_run}"],
       "run.json is unreadable", []),
      ("metagenrl_export_on_a_discrete_env", "train_agent",
       [f"--objective={metagenrl_export}", "--env=CartPole-v1", f"--logdir={logdir('md')}"],
       "trains continuous actions only; CartPole-v1 has 2 discrete actions", [logdir("md")]),
      ("seeds_in_two_places", "train_agent",
       ["--env=tf_metarl/CartPole-v1", "--seeds=3", "--config.seeds=2", f"--logdir={logdir('s2')}"],
       "seeds given in two places: --seeds=3 and config.seeds=2", [logdir("s2")]),
      ("seeds_zero", "train_agent", ["--env=tf_metarl/CartPole-v1", "--seeds=0", f"--logdir={logdir('s0')}"],
       "config.seeds must be a positive integer, got 0", [logdir("s0")]),
      ("seeds_on_a_gymnasium_env", "train_agent", ["--env=CartPole-v1", "--seeds=2", f"--logdir={logdir('sg')}"],
       "trains the seeds together in one graph, which needs a TensorFlow-native environment", [logdir("sg")]),
      ("env_randomize_negative_mass", "train_agent",
       ["--env=tf_metarl/Pendulum-v1", "--config.env_randomize=mass=-1:1", f"--logdir={logdir('rn')}"],
       "Pendulum: mass must stay above 0, got the range (-1, 1)", [logdir("rn")]),
      ("env_randomize_empty_range", "train_agent",
       ["--env=tf_metarl/Pendulum-v1", "--config.env_randomize=length=2:1", f"--logdir={logdir('re')}"],
       "Pendulum: the range of length is empty or not finite: (2.0, 1.0)", [logdir("re")]),
      ("env_randomize_malformed", "train_agent",
       ["--env=tf_metarl/Pendulum-v1", "--config.env_randomize=mass", f"--logdir={logdir('rm')}"],
       "parameter ranges are name=low:high separated by commas", [logdir("rm")]),
      ("env_randomize_on_a_gymnasium_env", "train_agent",
       ["--env=Pendulum-v1", "--config.env_randomize=mass=1:2", f"--logdir={logdir('rg')}"],
       "config.env_randomize needs a TensorFlow-native environment", [logdir("rg")]),
      ("env_randomize_a_parameter_the_family_lacks", "train_agent",
       ["--env=tf_metarl/RandomReacher-v5", "--config.env_randomize=mass=1:2", f"--logdir={logdir('rl')}"],
       "cannot randomise mass; its parameters are length", [logdir("rl")]),
      ("member_settings_wrong_count", "train_agent",
       ["--env=tf_metarl/CartPole-v1", "--seeds=2", "--config.member_settings=learning_rate=1e-3",
        f"--logdir={logdir('mc')}"],
       "config.member_settings: learning_rate needs 2 finite values (one per member)", [logdir("mc")]),
      ("member_settings_unknown_hyperparameter", "train_agent",
       ["--env=tf_metarl/CartPole-v1", "--seeds=2", "--config.member_settings=clip=0.1:0.2", f"--logdir={logdir('mu')}"],
       "objective 'ppo' has no numeric hyperparameter(s) clip", [logdir("mu")]),
      ("minibatch_unit_unknown", "train_agent",
       ["--env=tf_metarl/CartPole-v1", "--config.on_policy.minibatch_unit=rows", f"--logdir={logdir('mb')}"],
       "on_policy.minibatch_unit must be one of copies, transitions, auto, got 'rows'", [logdir("mb")]),
      # meta_train
      ("meta_export_is_a_file", "meta_train", [f"--export={a_file}", f"--logdir={logdir('mx')}"],
       "exists and is not a directory", [logdir("mx")]),
      ("meta_export_needs_frodo", "meta_train",
       ["--config=configs/mgrl_catch.py:a2c", f"--export={base / 'e'}", f"--logdir={logdir('ma')}"],
       "--export needs the frodo method", [logdir("ma")]),
      ("meta_override_unknown", "meta_train", ["--config.frodo.no_such=1"],
       "--config.frodo.no_such: the config has no field 'no_such'", []),
      ("meta_log_every_zero", "meta_train", ["--config.log_every_seconds=0", f"--logdir={logdir('ml')}"],
       "config.log_every_seconds must be > 0", [logdir("ml")]),
      ("meta_inner_steps_zero", "meta_train", ["--config.frodo.inner_steps=0", f"--logdir={logdir('mi')}"],
       "frodo.inner_steps (M) must be >= 1", [logdir("mi")]),
      ("meta_unknown_variant", "meta_train", ["--config=configs/frodo_catch.py:nosuch"], "unknown variant 'nosuch'", []),
      ("metagenrl_unknown_variant", "meta_train", ["--config=configs/metagenrl_lunar.py:learned,cpu,bogus"],
       "config variant 'learned,cpu,bogus': expected <objective>[,cpu]", []),
      ("meta_logdir_is_a_file", "meta_train", [f"--logdir={a_file}"], "exists and is not a directory", []),
      ("metagenrl_zero_agents", "meta_train", ["--config=configs/metagenrl_quick.py", "--config.metagenrl.num_agents=0",
                                               f"--logdir={logdir('mz')}"], "num_agents must be >= 1", [logdir("mz")]),
      ("metagenrl_fewer_agents_than_envs", "meta_train",
       ["--config=configs/metagenrl_quick.py", "--config.metagenrl.num_agents=1", f"--logdir={logdir('mf')}"],
       "2 training environments need at least as many agents, got num_agents=1", [logdir("mf")]),
      ("metagenrl_discrete_env", "meta_train",
       ["--config=configs/metagenrl_quick.py", "--config.metagenrl.envs=('CartPole-v1',)", f"--logdir={logdir('mc')}"],
       "MetaGenRL trains continuous-action agents; CartPole-v1 has 2 discrete actions", [logdir("mc")]),
      ("metagenrl_objective_init_missing", "meta_train",
       ["--config=configs/metagenrl_quick.py", f"--config.metagenrl.objective_init={logdir('nothing')}",
        f"--logdir={logdir('mo')}"], "not a directory (expected an exported objective)", [logdir("mo")]),
      ("metagenrl_objective_init_other_units", "meta_train",  # the shipped export has 32 units, the quick config 16
       ["--config=configs/metagenrl_quick.py", "--config.metagenrl.objective_init=export/metagenrl_lunar_cheetah",
        f"--logdir={logdir('mu')}"], "the export's hyperparameters differ from this objective's: units 32 (here 16)",
       [logdir("mu")]),
      ("implicit_unknown_helper", "meta_train",
       [implicit, "--config.implicit_reward.helper=nonsense", f"--logdir={logdir('iu')}"],
       "unknown helper reward 'nonsense'", [logdir("iu")]),
      ("implicit_helper_wrong_shape", "meta_train",
       [implicit, f"--config.implicit_reward.helper={wide_helper}", f"--logdir={logdir('iw')}"],
       "helper 'wide' returned shape [2, 2] for 2 transitions; it must return one reward per transition",
       [logdir("iw")]),
      ("implicit_gamma_regularization_negative", "meta_train",
       [implicit, "--config.implicit_reward.gamma_regularization=-1.0", f"--logdir={logdir('ig')}"],
       "implicit_reward.gamma_regularization must be a finite number >= 0, got -1.0", [logdir("ig")]),
      ("implicit_unknown_variant", "meta_train", [f"{implicit}:harmful,bogus"], "'bogus' is unknown", []),
      ("implicit_unknown_solver", "meta_train",
       [implicit, "--config.implicit_reward.solver=lu", f"--logdir={logdir('is')}"],
       "implicit_reward.solver must be one of neumann, cg, diagonal, got 'lu'", [logdir("is")]),
      ("epg_sigma_zero", "meta_train", [epg, "--config.epg.sigma=0", f"--logdir={logdir('es')}"],
       "epg.sigma must be > 0", [logdir("es")]),
      ("epg_population_of_one_antithetic", "meta_train", [epg, "--config.epg.population=1", f"--logdir={logdir('ep')}"],
       "ES population must be >= 2 (and even with antithetic pairs), got 1", [logdir("ep")]),
      ("epg_buffer_shorter_than_receptive_field", "meta_train",
       [epg, "--config.epg.buffer_size=16", "--config.epg.update_every=16", f"--logdir={logdir('eb')}"],
       "shorter than the loss's receptive field of 29 steps", [logdir("eb")]),
      ("epg_ray_address_unreachable", "meta_train",
       [epg, "--backend=ray", "--ray_address=127.0.0.1:1", f"--logdir={logdir('ea')}"],
       "Ray address 127.0.0.1:1 is unreachable", [logdir("ea")]),
      ("epg_backend_on_a_config_without_epg", "meta_train", ["--backend=ray", f"--logdir={logdir('eo')}"],
       "--backend applies to EPG configs (an epg section); this config has none", [logdir("eo")]),
      ("epg_graph_backend_on_a_gymnasium_env", "meta_train",
       ["--config=configs/epg_mujoco.py:hopper", "--backend=graph", f"--logdir={logdir('eg')}"],
       "use epg.backend=ray for gymnasium environments", [logdir("eg")]),
      ("record_into_another_runs_dataset", "train_agent",
       ["--env=CartPole-v1", f"--record={base / 'recorded'}", f"--logdir={logdir('ra')}"],
       "already holds a different run", [logdir("ra")]),
      ("record_into_a_directory_that_is_no_dataset", "train_agent",
       ["--env=CartPole-v1", f"--record={base / 'not_a_dataset'}", f"--logdir={logdir('rn')}"],
       "is not an RLDS dataset written by tf_metarl", [logdir("rn")]),
      ("replay_from_a_dataset_of_other_spaces", "train_agent",
       ["--config=configs/train_agent.py:td3", "--env=Pendulum-v1", f"--replay_from={base / 'recorded'}",
        f"--logdir={logdir('rs')}"], "do not fit Pendulum-v1", [logdir("rs")]),
      ("replay_from_with_an_on_policy_objective", "train_agent",
       ["--env=CartPole-v1", f"--replay_from={base / 'recorded'}", f"--logdir={logdir('rp')}"],
       "config.replay_from warm-starts the replay buffer of the off-policy learner", [logdir("rp")]),
      ("meta_record_on_ray", "meta_train",
       [epg, "--backend=ray", f"--record={base / 'rec_meta'}", f"--logdir={logdir('mr')}"],
       "--record needs inner agents whose experience reaches this process; this run (epg) trains them on Ray "
       "workers", [logdir("mr"), str(base / "rec_meta")]),
      ("meta_record_under_xla", "meta_train",
       ["--config.learner.jit_compile=True", f"--record={base / 'rec_xla'}", f"--logdir={logdir('mx')}"],
       "--record hands rollouts out of the meta-step, which XLA cannot compile", [logdir("mx"), str(base / "rec_xla")]),
      ("meta_replay_from_without_metagenrl", "meta_train",
       [f"--replay_from={base / 'recorded'}", f"--logdir={logdir('mf')}"],
       "--replay_from warm-starts MetaGenRL's replays; this config has no metagenrl section", [logdir("mf")]),
      ("metagenrl_replay_from_without_a_dataset_per_env", "meta_train",
       ["--config=configs/metagenrl_quick.py", f"--replay_from={base / 'recorded'}", f"--logdir={logdir('mg')}"],
       "no recorded dataset for Pendulum-v1", [logdir("mg")]),
      ("epg_export_on_a_discrete_env", "train_agent",
       [f"--objective={SHIPPED_EPG}", "--env=CartPole-v1", f"--logdir={logdir('ed')}"],
       "trains continuous actions only; CartPole-v1 has 2 discrete actions", [logdir("ed")]),
      ("epg_rollout_shorter_than_receptive_field", "train_agent",
       [f"--objective={SHIPPED_EPG}", "--env=tf_metarl/Pendulum-v1", "--config.on_policy.rollout_length=16",
        f"--logdir={logdir('er')}"],
       "reads buffers of at least 29 steps (its receptive field); on_policy.rollout_length is 16", [logdir("er")]),
      # serving_config
      ("serving_no_export_dir", "serving_config", [f"--export_dir={base / 'nothing_here'}"],
       "not a directory of exported models", []),
      ("serving_model_without_export", "serving_config", [f"--export_dir={base / 'exports'}"],
       "exports/m: not a SavedModel", []),
      ("serving_dir_without_models", "serving_config", [f"--export_dir={base / 'no_models'}"],
       "holds no exported models", []),
      # export_objective
      ("export_unknown_objective", "export_objective", ["--objective=nosuch", f"--export_dir={base / 'x1'}"],
       "nosuch", [str(base / "x1")]),
      ("export_negative_version", "export_objective", ["--objective=ppo", "--version=-1", f"--export_dir={base / 'x2'}"],
       "export version must be a non-negative integer", [str(base / "x2" / "ppo" / "-1")]),
      ("export_dir_is_a_file", "export_objective", ["--objective=ppo", f"--export_dir={a_file}"],
       "is not a writable directory", []),
      ("export_version_exists", "export_objective",
       ["--objective=ppo", "--name=m", "--version=1", f"--export_dir={base / 'exports'}"],
       "already exists; versions are immutable", []),
      ("export_action_kinds", "export_objective", ["--objective=td3", "--action_kinds=discrete",
                                                   f"--export_dir={base / 'x3'}"],
       "supports only continuous", [str(base / "x3")]),
  ]


@pytest.fixture(scope="module")
def table(tmp_path_factory):
  return cases(tmp_path_factory.mktemp("bad_inputs"))


@pytest.fixture(scope="module")
def outcomes(request, table):
  """{case id: (case, finished process)} for the cases this session selected (`-k` runs only those)."""
  selected = {item.callspec.params["case_id"] for item in request.session.items
              if item.module is request.module and "case_id" in getattr(getattr(item, "callspec", None), "params", {})}

  chosen = [case for case in table if case[0] in selected]
  cold = [case for case in chosen if case[0] in COLD_START_CASES]
  forked = [case for case in chosen if case[0] not in COLD_START_CASES]

  def run(case):
    _, binary, args, _, _ = case
    return subprocess.run(BINARIES[binary] + args, capture_output=True, text=True, cwd=REPO, timeout=300)

  with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:  # two cores: two TensorFlow imports at once
    results = dict(zip([case[0] for case in cold], pool.map(run, cold)))
  if forked:
    runner = subprocess.run([sys.executable, "-m", "tests.forked_binaries"], capture_output=True, text=True, cwd=REPO,
                            timeout=1800, input=json.dumps([{"binary": case[1], "args": case[2], "cwd": REPO}
                                                            for case in forked]))
    assert runner.returncode == 0, runner.stderr[-3000:]
    for case, result in zip(forked, json.loads(runner.stdout)):
      results[case[0]] = subprocess.CompletedProcess(BINARIES[case[1]] + case[2], result["returncode"],
                                                     result["stdout"], result["stderr"])
  return {case[0]: (case, results[case[0]]) for case in chosen}


# Cases run as plain subprocesses (a cold start, one per binary: TensorFlow's start-up stays off
# stderr); every other case runs forked from one interpreter that imported the binaries once
# (tests/forked_binaries.py: ~2 s a case instead of ~6 s).
COLD_START_CASES = ("override_unknown_default_config", "meta_unknown_variant", "serving_no_export_dir",
                    "export_unknown_objective", "metagenrl_export_on_a_discrete_env")


CASE_IDS = [  # the ids of `cases` (pytest needs them before the fixture builds the table)
    "override_unknown_default_config", "override_unknown_with_config", "override_unknown_nested",
    "override_wrong_type", "unknown_preset", "positional_argument", "logdir_is_a_file", "logdir_under_a_file",
    "checkpoint_every_negative", "eval_episodes_zero", "learning_rate_negative", "unknown_environment",
    "objective_path_missing", "objective_not_a_saved_model", "objective_wrong_action_kind", "metadata_not_an_object",
    "metadata_lacks_kind", "plain_saved_model_with_copied_metadata", "export_with_non_finite_parameters",
    "corrupt_run_json", "metagenrl_export_on_a_discrete_env", "seeds_in_two_places", "seeds_zero",
    "seeds_on_a_gymnasium_env", "env_randomize_negative_mass", "env_randomize_empty_range", "env_randomize_malformed",
    "env_randomize_on_a_gymnasium_env", "env_randomize_a_parameter_the_family_lacks", "member_settings_wrong_count", "member_settings_unknown_hyperparameter",
    "minibatch_unit_unknown", "meta_export_is_a_file", "meta_export_needs_frodo", "meta_override_unknown",
    "meta_log_every_zero", "meta_inner_steps_zero", "meta_unknown_variant", "metagenrl_unknown_variant",
    "meta_logdir_is_a_file", "metagenrl_zero_agents", "metagenrl_fewer_agents_than_envs", "metagenrl_discrete_env",
    "metagenrl_objective_init_missing", "metagenrl_objective_init_other_units",
    "implicit_unknown_helper", "implicit_helper_wrong_shape", "implicit_gamma_regularization_negative",
    "implicit_unknown_variant", "implicit_unknown_solver", "epg_sigma_zero", "epg_population_of_one_antithetic",
    "epg_buffer_shorter_than_receptive_field", "epg_ray_address_unreachable", "epg_backend_on_a_config_without_epg",
    "epg_graph_backend_on_a_gymnasium_env", "record_into_another_runs_dataset",
    "record_into_a_directory_that_is_no_dataset", "replay_from_a_dataset_of_other_spaces",
    "replay_from_with_an_on_policy_objective", "meta_record_on_ray", "meta_record_under_xla", "meta_replay_from_without_metagenrl",
    "metagenrl_replay_from_without_a_dataset_per_env", "epg_export_on_a_discrete_env", "epg_rollout_shorter_than_receptive_field",
    "serving_no_export_dir", "serving_model_without_export", "serving_dir_without_models",
    "export_unknown_objective", "export_negative_version", "export_dir_is_a_file", "export_version_exists",
    "export_action_kinds"]


def test_the_table_lists_every_case(table):
  assert sorted(case[0] for case in table) == sorted(CASE_IDS)
  binaries = {case[0]: case[1] for case in table}
  assert {binaries[case_id] for case_id in COLD_START_CASES} == set(BINARIES)  # a cold start of every binary


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_bad_input_is_one_line_and_exit_2(outcomes, case_id):
  (_, _, args, message, absent), result = outcomes[case_id]
  lines = result.stderr.strip().splitlines()
  assert result.returncode == 2 and len(lines) == 1, (args, result.returncode, result.stderr[-3000:])
  assert lines[0].startswith("error: ") and message in lines[0], lines[0]
  for path in absent:
    assert not os.path.exists(path), f"{path} was created although the input was refused"


def test_non_finite_meta_training_stops_and_nothing_non_finite_is_written(tmp_path):
  """An inner learning rate of 1e6 makes every meta-gradient NaN: updates are skipped, the run stops
  after max_consecutive_skips with one line, and no checkpoint or export holds a NaN."""
  from tf_metarl.learners.checkpoints import checkpoint_numbers, non_finite_entries
  logdir, export = tmp_path / "run", tmp_path / "export"
  result = subprocess.run(BINARIES["meta_train"] + [
      "--config.steps=300000", "--config.frodo.inner_optimizer=sgd", "--config.frodo.inner_learning_rate=1e6",
      "--config.max_consecutive_skips=5", "--config.checkpoint_every=2048", f"--export={export}",
      f"--logdir={logdir}"], capture_output=True, text=True, cwd=REPO, timeout=300)
  lines = [line for line in result.stderr.strip().splitlines() if line.startswith("error")]
  assert result.returncode == 2 and len(lines) == 1, result.stderr[-3000:]
  assert "the last 5 updates had non-finite gradients or parameters and were skipped" in lines[0]
  assert not export.exists()
  ckpt_dir = logdir / "checkpoints"
  for number in checkpoint_numbers(str(ckpt_dir)):
    assert non_finite_entries(str(ckpt_dir / f"ckpt-{number}")) == []


def test_sigterm_checkpoints_and_the_rerun_resumes_there(tmp_path):
  logdir = tmp_path / "run"
  args = lambda steps: BINARIES["train_agent"] + [
      "--objective=ppo", "--env=CartPole-v1", f"--config.steps={steps}", "--config.checkpoint_every=0",
      "--config.eval_every=0", f"--logdir={logdir}"]
  process = subprocess.Popen(args(200_000), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  deadline = time.time() + 120
  while time.time() < deadline and not (logdir / "learning_curve.csv").exists():
    time.sleep(0.1)
  time.sleep(3.0)  # some training steps
  process.send_signal(signal.SIGTERM)
  _, stderr = process.communicate(timeout=120)
  assert process.returncode == 128 + signal.SIGTERM, stderr[-3000:]
  last = stderr.strip().splitlines()[-1]
  assert last.startswith("interrupted: stopped by SIGTERM at ") and "rerun the same command to resume" in last
  steps = int(last.split(" at ")[1].split(" environment")[0].replace(",", ""))
  assert steps > 0
  result = subprocess.run(args(steps + 2048), capture_output=True, text=True, cwd=REPO, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert json.loads(result.stdout.strip().splitlines()[-1])["resumed_from"] == steps
