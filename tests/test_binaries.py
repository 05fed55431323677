"""The absl binaries end to end: a run with a shipped SavedModel, resuming a killed run, one-line errors
(the table of bad inputs is tests/test_bad_inputs.py)."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.conftest import REPO

BIN = [sys.executable, "-m", "tf_metarl.bin.train_agent"]
EXPORT = [sys.executable, "-m", "tf_metarl.bin.export_objective"]


def run(args, timeout=300, **kwargs):
  return subprocess.run(args, capture_output=True, text=True, cwd=REPO, timeout=timeout, **kwargs)


@pytest.mark.slow
def test_train_with_the_shipped_objective_writes_everything(tmp_path):
  logdir = tmp_path / "run"
  result = run(BIN + ["--objective=export/ppo", "--env=CartPole-v1", "--config.steps=4096", "--config.eval_every=2048",
                      "--config.eval_episodes=2", f"--logdir={logdir}"])
  assert result.returncode == 0, result.stderr[-3000:]
  summary = json.loads(result.stdout.strip().splitlines()[-1])
  assert summary["objective_kind"] == "saved_model:ppo" and summary["env_steps"] == 4096
  for name in ("learning_curve.csv", "learning_curve.png", "summary.json", "run.json", "checkpoints/checkpoint"):
    assert (logdir / name).exists(), name
  assert any(f.startswith("events.out.tfevents") for f in os.listdir(logdir / "tb"))
  assert "steps/s | ETA" in result.stderr  # the progress line
  config = json.loads((logdir / "config.json").read_text())  # the fully resolved config
  assert config["steps"] == 4096 and config["env"] == "CartPole-v1" and config["objective"] == "export/ppo"
  assert config["on_policy"]["learning_rate"] == 5e-4 and config["identity"]["seed"] == 0  # the ppo preset
  assert config["on_policy"]["minibatch_unit"] == "copies"  # "auto", resolved for an exported objective


def test_the_shipped_metagenrl_objective_is_a_complete_export():
  from tf_metarl.export import load_objective
  objective = load_objective(os.path.join(REPO, "export", "metagenrl_lunar_cheetah"))
  metadata = objective.metadata
  assert metadata["kind"] == "metagenrl" and metadata["constraints"]["action_dim"] is None
  assert metadata["training_config"]["metagenrl"]["envs"] == ["LunarLanderContinuous-v3", "HalfCheetah-v5"]
  assert metadata["provenance"]["env_steps"] > 0 and metadata["parameters"]["count"] > 0  # loading checked finiteness
  settings = objective.learner_settings()
  assert settings["sequence_length"] == metadata["training_config"]["metagenrl"]["sequence_length"]
  assert settings["hidden_sizes"] == metadata["training_config"]["metagenrl"]["hidden_sizes"]


@pytest.mark.slow
def test_the_demo_trains_an_agent_with_the_shipped_metagenrl_objective_on_an_unseen_environment(tmp_path):
  """`make demo`'s command, shortened: Pendulum-v1 (1-D actions) was not among the training environments."""
  logdir = tmp_path / "demo"
  result = run(BIN + ["--objective=export/metagenrl_lunar_cheetah", "--env=Pendulum-v1", "--config.steps=800",
                      "--config.off_policy.warmup_steps=400", "--config.eval_every=400", "--config.eval_episodes=1",
                      f"--logdir={logdir}"], timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  summary = json.loads(result.stdout.strip().splitlines()[-1])
  assert summary["objective_kind"] == "saved_model:metagenrl" and summary["env_steps"] == 800
  assert (logdir / "learning_curve.png").exists() and summary["skipped_updates"] == 0
  assert "off_policy settings from export/metagenrl_lunar_cheetah" in result.stderr  # adopted, and said so


@pytest.mark.slow
def test_killed_run_resumes_from_its_last_checkpoint(tmp_path):
  logdir = tmp_path / "run"
  args = BIN + ["--objective=ppo", "--env=CartPole-v1", "--config.steps=80000", "--config.checkpoint_every=4096",
                "--config.eval_every=0", f"--logdir={logdir}"]
  process = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  deadline = time.time() + 240
  index = logdir / "checkpoints" / "checkpoint"
  while time.time() < deadline and process.poll() is None and not index.exists():
    time.sleep(0.05)
  time.sleep(0.3)
  assert process.poll() is None, "the run finished before it could be killed"
  process.send_signal(signal.SIGKILL)
  process.wait()
  result = run(args)
  assert result.returncode == 0, result.stderr[-3000:]
  summary = json.loads(result.stdout.strip().splitlines()[-1])
  assert 0 < summary["resumed_from"] < 80000 and summary["env_steps"] >= 80000
  assert "resumed from" in result.stderr
  with open(logdir / "learning_curve.csv") as f:
    steps = [int(line.split(",")[0]) for line in f.readlines()[1:]]
  assert steps == sorted(steps) and len(steps) == len(set(steps))  # no rows repeated after the resume


@pytest.mark.slow
def test_resuming_a_different_run_is_refused(tmp_path):
  logdir = tmp_path / "run"
  os.makedirs(logdir)
  (logdir / "run.json").write_text(json.dumps({"env": "Pendulum-v1", "objective": "td3", "objective_kind": "td3",
                                               "seed": 0, "learner": "off_policy"}))
  result = run(BIN + ["--objective=ppo", "--env=CartPole-v1", "--config.steps=128", f"--logdir={logdir}"])
  assert result.returncode == 2
  assert "holds a different run (env: 'Pendulum-v1' there, 'CartPole-v1' now" in result.stderr


@pytest.mark.slow
def test_corrupt_checkpoint_gets_a_one_line_error(tmp_path):
  logdir = tmp_path / "run"
  args = BIN + ["--objective=ppo", "--config.steps=512", "--config.eval_every=0", f"--logdir={logdir}"]
  assert run(args).returncode == 0
  ckpt_dir = logdir / "checkpoints"
  for name in os.listdir(ckpt_dir):
    if name.endswith(".index"):
      (ckpt_dir / name).write_bytes(b"corrupt")
  result = run(args[:-2] + ["--config.steps=1024", f"--logdir={logdir}"])
  assert result.returncode == 2
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: no checkpoint in"), result.stderr[-2000:]
  assert "rerun with --fresh" in lines[0]


@pytest.fixture(scope="module")
def discrete_only_export(tmp_path_factory):
  base = tmp_path_factory.mktemp("exports")
  result = run(EXPORT + ["--objective=ppo", "--action_kinds=discrete", "--name=ppo_discrete", f"--export_dir={base}"])
  assert result.returncode == 0, result.stderr[-3000:]
  return json.loads(result.stdout.strip().splitlines()[-1])["exported"]


@pytest.mark.slow
def test_discrete_only_objective_on_continuous_env(discrete_only_export, tmp_path):
  result = run(BIN + [f"--objective={discrete_only_export}", "--env=Pendulum-v1", f"--logdir={tmp_path / 'run'}"])
  assert result.returncode == 2
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and "trains discrete actions only; Pendulum-v1 has continuous actions" in lines[0], lines


if __name__ == "__main__":
  sys.exit(pytest.main([__file__, "-q"]))


@pytest.mark.slow
def test_a_learned_reward_meta_trained_exported_and_trained_on_from_fresh_processes(tmp_path):
  small = ["--config.implicit_reward.on_policy.num_envs=2", "--config.implicit_reward.on_policy.rollout_length=32",
           "--config.implicit_reward.inner_iterations=1", "--config.eval_every=0"]
  meta = run([sys.executable, "-m", "tf_metarl.bin.meta_train", "--config=configs/implicit_reward_cartpole.py:random,cg",
              "--config.steps=512", f"--logdir={tmp_path / 'meta'}", f"--export={tmp_path / 'reward'}"] + small)
  assert meta.returncode == 0, meta.stderr[-3000:]
  summary = json.loads(meta.stdout.strip().splitlines()[-1])
  assert summary["exported"].endswith(os.path.join("reward", "1")) and summary["solver"] == "cg"
  config = json.loads((tmp_path / "meta" / "config.json").read_text())
  assert config["implicit_reward"]["helper"] == "random" and config["implicit_reward"]["on_policy"]["num_envs"] == 2
  trained = run(BIN + ["--env=tf_metarl/CartPole-v1", f"--reward={tmp_path / 'reward'}", "--config.steps=1024",
                       "--config.eval_every=0", f"--logdir={tmp_path / 'agent'}"])
  assert trained.returncode == 0, trained.stderr[-3000:]
  summary = json.loads(trained.stdout.strip().splitlines()[-1])
  assert summary["reward"] == str(tmp_path / "reward") and summary["env_steps"] == 1024
  assert "training on the learned reward" in trained.stderr and "helper random" in trained.stderr
  refused = run(BIN + ["--env=tf_metarl/Pendulum-v1", "--objective=ppo", f"--reward={tmp_path / 'reward'}",
                       f"--logdir={tmp_path / 'wrong'}"])
  assert refused.returncode == 2 and "does not match" in refused.stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_an_epg_loss_meta_trained_exported_trained_with_and_analysed_from_fresh_processes(tmp_path):
  small = ["--config.epochs=1", "--config.epg.population=2", "--config.epg.runs_per_member=1",
           "--config.epg.updates=2", "--config.epg.update_every=32", "--config.epg.buffer_size=32",
           "--config.epg.hidden_sizes=(16,)", "--config.eval_every=0"]
  meta = run([sys.executable, "-m", "tf_metarl.bin.meta_train", "--config=configs/epg_random_pendulum.py",
              f"--logdir={tmp_path / 'meta'}", f"--export={tmp_path / 'loss'}", "--seed=3"] + small)
  assert meta.returncode == 0, meta.stderr[-3000:]
  summary = json.loads(meta.stdout.strip().splitlines()[-1])
  assert summary["exported"].endswith(os.path.join("loss", "1")) and summary["env_steps"] == 2 * 2 * 32
  config = json.loads((tmp_path / "meta" / "config.json").read_text())
  assert config["epg"]["population"] == 2 and config["epg"]["hidden_sizes"] == [16]
  metadata = json.loads((tmp_path / "loss" / "1" / "assets" / "objective.json").read_text())
  resolved = {k: v for k, v in config.items() if k != "identity"}  # config.json adds the run's identity
  assert metadata["training_config"] == resolved and resolved["seed"] == 3  # the resolved config, --seed included
  trained = run(BIN + ["--env=tf_metarl/Pendulum-v1", f"--objective={tmp_path / 'loss'}", "--config.steps=256",
                       "--config.eval_every=0", f"--logdir={tmp_path / 'agent'}"])
  assert trained.returncode == 0, trained.stderr[-3000:]
  summary = json.loads(trained.stdout.strip().splitlines()[-1])
  assert summary["objective_kind"] == "saved_model:epg" and summary["env_steps"] == 256
  # The export's learner settings: one environment, an update every M = 32 steps, a 16-unit policy with memory.
  assert "rollout_length=32" in trained.stderr and "num_envs=1" in trained.stderr
  # The paper's analyses (benchmarks/epg_analyses.py) on the same run: JSON and PNG, every analysis present.
  out = tmp_path / "docs"
  analyses = run([sys.executable, "benchmarks/epg_analyses.py", f"--logdir={tmp_path / 'meta'}", "--runs=2",
                  f"--out={out}"])
  assert analyses.returncode == 0, analyses.stderr[-3000:]
  record = json.loads((out / "results" / "epg_analyses.json").read_text())
  assert (out / "figures" / "epg_analyses.png").stat().st_size > 10_000
  assert set(record["kl"]) == {"evolved loss, no rewards", "random loss, no rewards", "PPO, with rewards"}
  for kl in record["kl"].values():
    assert np.array(kl["per_run"]).shape == (2, 2) and np.all(np.array(kl["per_run"]) >= 0)  # runs × updates
  assert len(record["spearman"]) == 4
  assert all(-1 <= r <= 1 for v in record["spearman"].values() for r in v["per_run"])
  sensitivity = record["sensitivity"]["evolved loss, no rewards"]
  assert set(sensitivity) == {"observations", "behaviour_actions", "episode_ends", "policy_outputs", "memory"}
  assert all(len(v) == 32 and np.all(np.isfinite(v)) for v in sensitivity.values())  # one per buffer sample
  assert sensitivity["observations"][-1] > 0  # the last sample's loss reads its own state
