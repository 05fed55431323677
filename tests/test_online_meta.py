"""Online meta-gradient training on batched TF environments: FRODO, learned γ/λ, A2C; the binary."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO
from tf_metarl import errors
from tf_metarl.algorithms.frodo import FrodoConfig
from tf_metarl.algorithms.online_meta import OnlineMetaConfig, OnlineMetaLearner
from tf_metarl.learners.loop import read_learning_curve, run_training


def learner(method, env="catch", inner_steps=1, extension=False, num_envs=16):
  config = OnlineMetaConfig(env=env, method=method, num_envs=num_envs,
                            frodo=FrodoConfig(inner_steps=inner_steps, inner_learning_rate=3e-3, extension=extension))
  return OnlineMetaLearner(config, seed=0)


@pytest.mark.parametrize("inner_steps, extension", [(1, False), (2, True)])
def test_frodo_iteration_updates_agent_and_meta_network(inner_steps, extension):
  frodo = learner("frodo", inner_steps=inner_steps, extension=extension)
  theta = [v.numpy().copy() for v in frodo.agent_variables]
  eta = [v.numpy().copy() for v in frodo.meta_variables]
  metrics, stats = frodo.iteration()
  assert int(frodo.env_steps.numpy()) == 16 * 16 * (inner_steps + 1)
  assert metrics["meta_grad_norm"] > 0 and np.isfinite(metrics["outer_loss"])
  assert any(np.any(a != b.numpy()) for a, b in zip(theta, frodo.agent_variables))
  assert any(np.any(a != b.numpy()) for a, b in zip(eta, frodo.meta_variables))
  assert set(stats.returns) <= {-1.0, 1.0} and len(stats.returns) > 0


def test_held_out_batch_is_the_next_inner_batch():
  """With reuse_outer_batch, iteration i+1's inner update runs on iteration i's held-out batch
  (collected with θ_M = the next iteration's starting θ), and only M new trajectories are counted."""
  import tensorflow as tf
  frodo = learner("frodo", inner_steps=1)
  assert int(frodo.env_steps.numpy()) == 16 * 16  # the first held-out batch, collected up front
  frodo.iteration()
  assert int(frodo.env_steps.numpy()) == 16 * 16 * 2
  carried = {k: v.numpy().copy() for k, v in frodo.carried_batch.items()}
  # The carried batch is the newest rollout: the live state continues from its last next-observations.
  live = frodo.env.observe(frodo.env_state).numpy()
  running = carried["terminated"][:, -1] == 0
  assert running.any()
  np.testing.assert_array_equal(live[running], carried["next_observations"][running, -1])
  expected = float(frodo.step.inner_loss(frodo._params(), {k: tf.constant(v) for k, v in carried.items()}))
  metrics, _ = frodo.iteration()  # M = 1: its only inner update is on the carried batch
  assert int(frodo.env_steps.numpy()) == 16 * 16 * 3
  np.testing.assert_allclose(metrics["inner_loss"], expected, rtol=1e-5)
  assert not np.array_equal(carried["observations"], frodo.carried_batch["observations"].numpy())


def test_without_reuse_every_iteration_collects_m_plus_one_batches():
  config = OnlineMetaConfig(method="a2c", num_envs=8, reuse_outer_batch=False, frodo=FrodoConfig(inner_steps=2))
  agent = OnlineMetaLearner(config, seed=0)
  assert agent.carried_batch is None and int(agent.env_steps.numpy()) == 0
  agent.iteration()
  assert int(agent.env_steps.numpy()) == 8 * 16 * 3


def test_carried_batch_is_checkpointed(tmp_path):
  import tensorflow as tf
  first = learner("a2c")
  first.iteration()
  tf.train.Checkpoint(**first.checkpoint_items()).write(str(tmp_path / "ckpt"))
  second = learner("a2c")
  second.iteration()
  second.iteration()  # diverge from `first`
  tf.train.Checkpoint(**second.checkpoint_items()).read(str(tmp_path / "ckpt")).assert_consumed()
  for k, v in first.carried_batch.items():
    np.testing.assert_array_equal(second.carried_batch[k].numpy(), v.numpy())
  assert int(second.env_steps.numpy()) == int(first.env_steps.numpy())


def test_learned_gamma_lambda_move_and_are_reported():
  mgrl = learner("mgrl")
  before = (float(mgrl.target.gamma), float(mgrl.target.lam))
  for _ in range(5):
    metrics, _ = mgrl.iteration()
  assert (metrics["meta/gamma"], metrics["meta/lambda"]) != before
  assert 0 < metrics["meta/gamma"] < 1 and 0 < metrics["meta/lambda"] < 1


@pytest.mark.parametrize("method", ["a2c", "mgrl"])
def test_agents_learn_catch(method, tmp_path):
  agent = learner(method)
  initial = float(np.mean(agent.evaluate(256)))
  summary = run_training(agent, 300_000, str(tmp_path), {"m": method}, eval_every=300_000, eval_episodes=256,
                         checkpoint_every=0, log_every_seconds=60)
  assert initial < 0.0 and summary["final_eval_return"] > 0.5, (initial, summary)


def test_random_walk_value_error_falls_then_jumps_at_the_switch(tmp_path):
  agent = learner("a2c", env="random_walk")
  run_training(agent, 30_000, str(tmp_path), {"m": "rw"}, eval_every=0, eval_episodes=0, checkpoint_every=0,
               log_every_seconds=60)
  rows = read_learning_curve(str(tmp_path / "learning_curve.csv"))
  # 16 copies x 16 steps per trajectory, one new trajectory per iteration (M = 1, the held-out one
  # reused): the switch is at 960 steps per copy. The metric uses the phase in force after the
  # row's steps: per copy, env_steps / 16.
  before_switch = [r["metric"] for r in rows if r["env_steps"] < 960 * 16]
  after_switch = [r["metric"] for r in rows if 960 * 16 <= r["env_steps"] < 960 * 16 + 1024]
  assert before_switch[-1] < 0.7 * before_switch[0], before_switch
  assert after_switch[0] > before_switch[-1] + 0.1  # the left reward flipped to −1: values are wrong again


def test_frodo_runs_on_a_gymnasium_environment(tmp_path):
  frodo = OnlineMetaLearner(OnlineMetaConfig(env="CartPole-v1", method="frodo", num_envs=4,
                                             frodo=FrodoConfig(inner_steps=2)), seed=0)
  eta = [v.numpy().copy() for v in frodo.meta_variables]
  summary = run_training(frodo, 3 * 4 * 16 * 3, str(tmp_path), {"m": "cartpole"}, eval_every=576, eval_episodes=2,
                         checkpoint_every=0, log_every_seconds=60)
  assert summary["env_steps"] == 576 and summary["final_eval_return"] > 0
  assert any(np.any(a != b.numpy()) for a, b in zip(eta, frodo.meta_variables))
  assert frodo.objective().constraints()["observation_dim"] == 4
  with pytest.raises(errors.IncompatibleSpaceError, match="need discrete actions; Pendulum-v1"):
    OnlineMetaLearner(OnlineMetaConfig(env="Pendulum-v1"), seed=0)
  with pytest.raises(errors.UnknownEnvironmentError):
    OnlineMetaLearner(OnlineMetaConfig(env="NoSuchEnv-v0"), seed=0)


def test_gym_path_replays_the_inner_updates_it_collected_with():
  """On a gymnasium env the batches are collected with a first-order pass of the inner updates and
  the compiled meta-step replays them: θ_M and the meta-gradient must match an eager recomputation."""
  import tensorflow as tf
  frodo = OnlineMetaLearner(OnlineMetaConfig(env="CartPole-v1", method="frodo", num_envs=4,
                                             frodo=FrodoConfig(inner_steps=2)), seed=0)
  frodo.iteration()  # primes the carried batch and the traces
  theta = frodo._params()
  opt_state = [tf.convert_to_tensor(v) for v in frodo.inner_optimizer_state]
  eta = [v.numpy().copy() for v in frodo.meta_variables]
  held_out = frodo.carried_batch
  captured, replay = [], frodo._gym_meta_step
  frodo._gym_meta_step = lambda batches: (captured.append(batches), replay(batches))[1]
  metrics, _ = frodo.iteration()
  batches = captured[0]
  assert batches[0] is held_out and frodo.carried_batch is batches[2]
  new_eta = [v.numpy().copy() for v in frodo.meta_variables]
  for var, value in zip(frodo.meta_variables, eta):
    var.assign(value)
  with tf.GradientTape() as tape:
    out = frodo.step.meta_loss(theta, batches[:2], batches[2], optimizer_state=opt_state)
  grads = tape.gradient(out["meta_loss"], frodo.meta_variables)
  np.testing.assert_allclose(float(tf.linalg.global_norm(grads)), metrics["meta_grad_norm"], rtol=1e-4)
  for var, value in zip(frodo.agent_variables, out["params"]):
    np.testing.assert_allclose(var.numpy(), value.numpy(), rtol=1e-5, atol=1e-6)
  assert any(np.any(a != b) for a, b in zip(eta, new_eta))


def test_bad_config_values():
  with pytest.raises(errors.ConfigError, match="method must be one of"):
    OnlineMetaConfig(method="ppo").validate()
  with pytest.raises(errors.ConfigError, match="inner_steps \\(M\\) must be >= 1"):
    OnlineMetaConfig(frodo=FrodoConfig(inner_steps=0)).validate()
  with pytest.raises(errors.ConfigError, match="target_observation_scale must be >= 0, got -1.0"):
    OnlineMetaConfig(target_observation_scale=-1.0).validate()


def test_meta_train_binary_runs_and_resumes(tmp_path):
  logdir = tmp_path / "run"
  base = [sys.executable, "-m", "tf_metarl.bin.meta_train", "--config=configs/frodo_catch.py:extension",
          "--config.frodo.inner_steps=1", "--config.eval_every=4096", "--config.eval_episodes=32",
          "--config.checkpoint_every=2048",
          f"--logdir={logdir}"]
  first = subprocess.run(base + ["--config.steps=4096"], cwd=REPO, capture_output=True, text=True, timeout=300)
  assert first.returncode == 0, first.stderr[-3000:]
  second = subprocess.run(base + ["--config.steps=8192"], cwd=REPO, capture_output=True, text=True, timeout=300)
  assert second.returncode == 0, second.stderr[-3000:]
  summary = json.loads(second.stdout.strip().splitlines()[-1])
  assert summary["resumed_from"] == 4096 and summary["env_steps"] == 8192 and summary["extension"] is True
  assert (logdir / "learning_curve.png").exists()
  bad = subprocess.run(base[:3] + ["--config=configs/frodo_catch.py", "--config.learner.method=ppo",
                                   f"--logdir={tmp_path / 'bad'}"], cwd=REPO, capture_output=True, text=True, timeout=300)
  assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
      "error: method must be one of frodo, mgrl, a2c, got 'ppo'"]


FRESH_PROCESS = r"""
import json, sys
import numpy as np
import tensorflow as tf
loaded = tf.saved_model.load(sys.argv[1])
signature = loaded.signatures["serving_default"]
rng = np.random.default_rng(0)
B, T = 2, 7
inputs = {n: tf.constant(rng.normal(size=(B, T)), tf.float32)
          for n in ("rewards", "discounts", "next_values", "values", "log_probs", "entropies")}
inputs["observations"] = tf.constant(rng.random((B, T, 66)), tf.float32)
logits = tf.Variable(tf.zeros([B, T]))
with tf.GradientTape() as tape:
  out = signature(**dict(inputs, log_probs=tf.math.log_sigmoid(logits)))
print(json.dumps({"imported": any(m.startswith("tf_metarl") for m in sys.modules),
                  "targets": out["targets"].shape.as_list(),
                  "grad": float(tf.norm(tape.gradient(out["loss"], logits)))}))
"""


def test_frodo_target_exports_loads_without_tf_metarl_and_trains_a_fresh_agent(tmp_path):
  export_dir = tmp_path / "frodo_catch"
  result = subprocess.run([sys.executable, "-m", "tf_metarl.bin.meta_train", "--config=configs/frodo_catch.py",
                           "--config.steps=1024", "--config.eval_every=0", f"--logdir={tmp_path / 'meta'}",
                           f"--export={export_dir}"], cwd=REPO, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  exported = json.loads(result.stdout.strip().splitlines()[-1])["exported"]
  assert exported.endswith("frodo_catch/1")
  script = tmp_path / "fresh.py"
  script.write_text(FRESH_PROCESS)
  fresh = subprocess.run([sys.executable, str(script), exported], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120, env={"PATH": "/usr/bin:/bin"})
  assert fresh.returncode == 0, fresh.stderr[-3000:]
  report = json.loads(fresh.stdout.strip().splitlines()[-1])
  assert report == dict(report, imported=False, targets=[2, 7]) and report["grad"] > 0
  train = [sys.executable, "-m", "tf_metarl.bin.train_agent", f"--objective={exported}",
           "--config=configs/train_agent.py:a2c", "--config.steps=2048", "--config.eval_every=2048",
           "--config.eval_episodes=4"]
  agent = subprocess.run(train + ["--env=tf_metarl/Catch-v0", f"--logdir={tmp_path / 'agent'}"], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
  assert agent.returncode == 0, agent.stderr[-3000:]
  summary = json.loads(agent.stdout.strip().splitlines()[-1])
  assert summary["objective_kind"] == "saved_model:frodo" and summary["env_steps"] == 2048
  mismatch = subprocess.run(train + ["--env=CartPole-v1", f"--logdir={tmp_path / 'bad'}"], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
  assert mismatch.returncode == 2
  assert "built for observation dim 66; CartPole-v1 has 4" in mismatch.stderr


if __name__ == "__main__":
  sys.exit(pytest.main([__file__, "-q"]))


def test_shipped_frodo_target_rewards_catches_over_misses():
  """export/frodo_catch (meta-trained on Catch, docs/RESULTS.md): its targets at the steps where a
  pellet is caught must exceed those where one is missed; the metadata carries the input weight."""
  import tensorflow as tf
  from tf_metarl.envs.batched import batch_major, rollout
  from tf_metarl.envs.catch import Catch
  from tf_metarl.export import load_metadata, load_objective
  metadata = load_metadata(os.path.join(REPO, "export", "frodo_catch"))
  assert metadata["kind"] == "frodo" and metadata["constraints"]["observation_dim"] == 66
  assert metadata["hyperparameters"]["observation_scale"] == 0.1
  objective = load_objective(os.path.join(REPO, "export", "frodo_catch"))
  env = Catch(11, 6)
  random_policy = lambda obs, seed: tf.random.stateless_uniform([256], seed, 0, 3, tf.int32)
  _, time_major = rollout(env, env.reset(tf.constant([0, 1]), 256), random_policy, tf.constant([3, 4]), 16)
  batch = batch_major(time_major)
  zeros = tf.zeros_like(batch["rewards"])
  targets = objective({"observations": batch["observations"], "rewards": batch["rewards"],
                       "discounts": batch["discounts"], "next_values": zeros, "values": zeros, "log_probs": zeros,
                       "entropies": zeros})["targets"].numpy()
  rewards = batch["rewards"].numpy()
  assert targets.shape == (256, 16) and np.isfinite(targets).all()
  assert targets[rewards > 0].mean() > targets[rewards < 0].mean() + 0.5
