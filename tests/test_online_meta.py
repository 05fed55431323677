"""Online meta-gradient training on batched TF environments: FRODO, learned γ/λ, A2C; the binary."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO
from tf_metarl import errors
from tf_metarl.algorithms.frodo import FrodoConfig, OnlineMetaConfig, OnlineMetaTrainer
from tf_metarl.learners.loop import RunSettings, read_learning_curve, run_training


def learner(method, env="catch", inner_steps=1, extension=False, num_envs=16, **kwargs):
  config = OnlineMetaConfig(env=env, method=method, num_envs=num_envs,
                            frodo=FrodoConfig(inner_steps=inner_steps, inner_learning_rate=3e-3, extension=extension),
                            **kwargs)
  return OnlineMetaTrainer(config, seed=0)


def agent_params(trainer):
  return [p.numpy().copy() for p in trainer.problem.params(trainer.state.read())]


@pytest.mark.slow
@pytest.mark.parametrize("inner_steps, extension", [(1, False), (2, True)])
def test_frodo_iteration_updates_agent_and_meta_network(inner_steps, extension):
  frodo = learner("frodo", inner_steps=inner_steps, extension=extension)
  theta = agent_params(frodo)
  eta = [v.numpy().copy() for v in frodo.target.trainable_variables]
  metrics, stats = frodo.iteration()
  assert int(frodo.env_steps.numpy()) == 16 * 16 * (inner_steps + 1)
  assert metrics["meta_grad_norm"] > 0 and np.isfinite(metrics["outer_loss"])
  assert any(np.any(a != b) for a, b in zip(theta, agent_params(frodo)))
  assert any(np.any(a != b.numpy()) for a, b in zip(eta, frodo.target.trainable_variables))
  # Catch pays ±1 once, at the end of an episode of rows − 1 = 10 steps.
  assert set(stats.returns) <= {-1.0, 1.0} and len(stats.returns) > 0 and set(stats.lengths) == {10}


def test_held_out_batch_is_the_next_inner_batch():
  """With reuse_outer_batch, iteration i+1's inner update runs on iteration i's held-out batch
  (collected with θ_M = the next iteration's starting θ), and only M new trajectories are counted."""
  frodo = learner("frodo", inner_steps=1)
  assert int(frodo.env_steps.numpy()) == 16 * 16  # the first held-out batch, collected up front
  frodo.iteration()
  assert int(frodo.env_steps.numpy()) == 16 * 16 * 2
  state = frodo.state.read()
  carried = state.batch
  # The carried batch is the newest rollout: the live state continues from its last next-observations.
  live = frodo.task.env.observe(state.env.env).numpy()
  running = carried.terminated.numpy()[:, -1] == 0
  assert running.any()
  np.testing.assert_array_equal(live[running], carried.next_observations.numpy()[running, -1])
  expected = float(frodo.problem.inner_loss(frodo.eta.read(), frodo.problem.params(state), carried))
  metrics, _ = frodo.iteration()  # M = 1: its only inner update is on the carried batch
  assert int(frodo.env_steps.numpy()) == 16 * 16 * 3
  np.testing.assert_allclose(metrics["inner_loss"], expected, rtol=1e-5)
  assert not np.array_equal(carried.observations.numpy(), frodo.state.read().batch.observations.numpy())


@pytest.mark.slow
def test_without_reuse_every_iteration_collects_m_plus_one_batches():
  agent = learner("a2c", inner_steps=2, num_envs=8, reuse_outer_batch=False)
  assert agent.state.read().batch == () and int(agent.env_steps.numpy()) == 0
  agent.iteration()
  assert int(agent.env_steps.numpy()) == 8 * 16 * 3


@pytest.mark.slow  # 9–12 s on 2 cores
def test_carried_batch_is_checkpointed(tmp_path):
  import tensorflow as tf
  first = learner("a2c")
  first.iteration()
  tf.train.Checkpoint(**first.checkpoint_items()).write(str(tmp_path / "ckpt"))
  second = learner("a2c")
  second.iteration()
  second.iteration()  # diverge from `first`
  tf.train.Checkpoint(**second.checkpoint_items()).read(str(tmp_path / "ckpt")).assert_consumed()
  for a, b in zip(tf.nest.flatten(first.state.read()), tf.nest.flatten(second.state.read())):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  assert int(second.env_steps.numpy()) == int(first.env_steps.numpy())


def test_learned_gamma_lambda_move_and_are_reported():
  mgrl = learner("mgrl")
  before = [float(x) for x in mgrl.target.gamma_lambda()]
  for _ in range(5):
    metrics, _ = mgrl.iteration()
  now = [float(x) for x in mgrl.target.gamma_lambda()]
  assert now != before
  np.testing.assert_allclose([metrics["meta/gamma"], metrics["meta/lambda"]], now, rtol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["a2c", "mgrl"])
def test_agents_learn_catch(method, tmp_path):
  agent = learner(method)
  initial = float(np.mean(agent.evaluate(256)))
  summary = run_training(agent, 300_000, str(tmp_path), {"m": method},
                         RunSettings(eval_every=300_000, eval_episodes=256, log_every_seconds=60))
  assert initial < 0.0 and summary["final_eval_return"] > 0.5, (initial, summary)


@pytest.mark.slow  # 9–12 s on 2 cores
def test_random_walk_value_error_falls_then_jumps_at_the_switch(tmp_path):
  agent = learner("a2c", env="random_walk")
  run_training(agent, 30_000, str(tmp_path), {"m": "rw"}, RunSettings(eval_episodes=0, log_every_seconds=60))
  rows = read_learning_curve(str(tmp_path / "learning_curve.csv"))
  # 16 copies x 16 steps per trajectory, one new trajectory per iteration (M = 1, the held-out one
  # reused): the switch is at 960 steps per copy. The metric uses the phase in force after the
  # row's steps: per copy, env_steps / 16.
  before_switch = [r["metric"] for r in rows if r["env_steps"] < 960 * 16]
  after_switch = [r["metric"] for r in rows if 960 * 16 <= r["env_steps"] < 960 * 16 + 1024]
  assert before_switch[-1] < 0.7 * before_switch[0], before_switch
  assert after_switch[0] > before_switch[-1] + 0.1  # the left reward flipped to −1: values are wrong again


def test_frodo_runs_on_a_gymnasium_environment(tmp_path):
  """CartPole through the same trainer: the rollout runs as a py_function inside the compiled step."""
  frodo = learner("frodo", env="CartPole-v1", inner_steps=2, num_envs=4)
  eta = [v.numpy().copy() for v in frodo.target.trainable_variables]
  summary = run_training(frodo, 4 * 16 * 7, str(tmp_path), {"m": "cartpole"},
                         RunSettings(eval_every=448, eval_episodes=2, log_every_seconds=60))
  assert summary["env_steps"] == 448
  assert any(np.any(a != b.numpy()) for a, b in zip(eta, frodo.target.trainable_variables))
  assert frodo.objective().constraints()["observation_dim"] == 4
  with pytest.raises(errors.IncompatibleSpaceError, match="need discrete actions; Pendulum-v1"):
    OnlineMetaTrainer(OnlineMetaConfig(env="Pendulum-v1"), seed=0)
  with pytest.raises(errors.UnknownEnvironmentError):
    OnlineMetaTrainer(OnlineMetaConfig(env="NoSuchEnv-v0"), seed=0)


def test_gymnasium_rollout_reports_episodes_where_they_end():
  """CartPole pays 1 per step, so an episode's return equals its length; both sit at the step
  where the trajectory marks its end, and nowhere else."""
  import tensorflow as tf
  from tf_metarl.tasks import make_task
  frodo = learner("a2c", env="CartPole-v1", num_envs=3)
  task = make_task("CartPole-v1", 3, seed=0)
  policy = frodo.problem.params(frodo.state.read())[:len(frodo.policy.trainable_variables)]
  _, trajectory, episodes = task.rollout(task.reset(None, 3), frodo.problem._policy, policy, tf.constant([0, 1]), 60)
  ends = np.maximum(trajectory.terminated.numpy(), trajectory.truncated.numpy()).T.reshape(-1)  # time-major
  np.testing.assert_array_equal(episodes.finished.numpy(), ends)
  assert ends.sum() >= 3
  np.testing.assert_array_equal(episodes.returns.numpy()[ends > 0], episodes.lengths.numpy()[ends > 0])
  assert not episodes.returns.numpy()[ends == 0].any()
  # Each copy's first episode length is the index of its first end + 1.
  rows = np.maximum(trajectory.terminated.numpy(), trajectory.truncated.numpy())
  first_ends = {i: int(np.argmax(row > 0)) for i, row in enumerate(rows) if row.any()}
  lengths = episodes.lengths.numpy().reshape(60, 3).T
  assert first_ends and all(int(lengths[i, t]) == t + 1 for i, t in first_ends.items())


def test_bad_config_values():
  with pytest.raises(errors.ConfigError, match="method must be one of"):
    OnlineMetaConfig(method="ppo").validate()
  with pytest.raises(errors.ConfigError, match="inner_steps \\(M\\) must be >= 1"):
    OnlineMetaConfig(frodo=FrodoConfig(inner_steps=0)).validate()
  with pytest.raises(errors.ConfigError, match="target_observation_scale must be >= 0, got -1.0"):
    OnlineMetaConfig(target_observation_scale=-1.0).validate()
  with pytest.raises(errors.ConfigError, match="jit_compile needs an in-graph task .* CartPole-v1 is stepped in Python"):
    OnlineMetaConfig(env="CartPole-v1", jit_compile=True).validate()


@pytest.mark.slow
def test_meta_train_binary_runs_and_resumes(tmp_path):
  logdir = tmp_path / "run"
  base = [sys.executable, "-m", "tf_metarl.bin.meta_train", "--config=configs/frodo_catch.py:extension",
          "--config.frodo.inner_steps=1", "--config.eval_every=4096", "--config.eval_episodes=32",
          "--config.checkpoint_every=2048", f"--record={tmp_path / 'ds'}",
          f"--logdir={logdir}"]
  first = subprocess.run(base + ["--config.steps=4096"], cwd=REPO, capture_output=True, text=True, timeout=300)
  assert first.returncode == 0, first.stderr[-3000:]
  second = subprocess.run(base + ["--config.steps=8192"], cwd=REPO, capture_output=True, text=True, timeout=300)
  assert second.returncode == 0, second.stderr[-3000:]
  summary = json.loads(second.stdout.strip().splitlines()[-1])
  assert summary["resumed_from"] == 4096 and summary["env_steps"] == 8192 and summary["extension"] is True
  assert (logdir / "learning_curve.png").exists()
  config = json.loads((logdir / "config.json").read_text())
  assert config["frodo"]["inner_steps"] == 1 and config["frodo"]["extension"] is True and config["steps"] == 8192
  assert config["learner"]["num_envs"] == 16
  # --record: the in-graph Catch copies' episodes from both runs, each whole (10 steps, return ±1).
  # Each of the 16 copies took 512 steps (51 episodes); per copy and run, the join skips ≤ 1 and
  # ≤ 1 is still open at the end, and the first batch (16 steps, ≤ 2), collected at init, is not recorded.
  from tests.test_recording import read_back
  data = read_back(tmp_path / "ds")
  whole = [e for e in data["episodes"] if e["terminal"]]
  assert all(e["n"] == 10 and abs(e["return"]) == 1.0 for e in whole)
  assert 16 * (51 - 2 * 2 - 2) <= len(whole) <= 16 * 51 and data["run"]["env"] == "catch"
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_a_resumed_in_graph_run_equals_an_uninterrupted_one(tmp_path):
  """Every source of randomness (seed counter, environment state, carried batch, optimizer
  states) is checkpointed, so stopping at 4,096 steps and resuming to 8,192 writes the same
  learning curve as one uninterrupted run."""
  def train(logdir, steps):
    return run_training(learner("frodo", inner_steps=2, num_envs=8), steps, str(logdir), {"m": "resume"},
                        RunSettings(eval_every=1024, eval_episodes=64, checkpoint_every=1024, log_every_seconds=60))

  train(tmp_path / "whole", 8192)
  train(tmp_path / "split", 4096)
  resumed = train(tmp_path / "split", 8192)
  assert resumed["resumed_from"] >= 4096
  columns = ("env_steps", "train_return", "train_episodes", "eval_return")
  whole, split = (read_learning_curve(str(tmp_path / d / "learning_curve.csv")) for d in ("whole", "split"))
  assert len(whole) == len(split) >= 8
  np.testing.assert_array_equal([[r[c] for c in columns] for r in whole], [[r[c] for c in columns] for r in split])
