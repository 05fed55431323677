"""EPG on Ray (issue 12): the same members as the in-graph path, a worker that dies loses only
its member, gymnasium (MuJoCo) families, and the bad addresses. Real multi-process Ray on this
machine (2 workers), started once for the module."""
import os
import signal

import numpy as np
import pytest

pytest.importorskip("ray")

from tf_metarl import errors  # noqa: E402
from tf_metarl.algorithms.epg import EPGConfig, EPGTrainer, evaluate_member  # noqa: E402
from tf_metarl.meta.remote import RayMembers, check_address  # noqa: E402

pytestmark = pytest.mark.slow
TINY = dict(population=4, runs_per_member=2, updates=3, ray_workers=2)


@pytest.fixture(scope="module", autouse=True)
def ray_session():
  yield
  RayMembers.shutdown()


def eta_of(trainer):
  return [v.numpy().copy() for v in trainer.eta.leaves]


def test_ray_members_are_the_in_graph_members():
  """Same seeds, same φ: two epochs on Ray (one task per member, φ rebuilt from the noise seed)
  end at the φ the single graph reaches, bit for bit."""
  graph, ray = EPGTrainer(EPGConfig(**TINY), 0), EPGTrainer(EPGConfig(backend="ray", **TINY), 0)
  for _ in range(2):
    graph_metrics, _ = graph.iteration()
    ray_metrics, _ = ray.iteration()
  for a, b in zip(eta_of(graph), eta_of(ray)):
    np.testing.assert_array_equal(a, b)
  assert ray_metrics["epg/fitness"] == pytest.approx(graph_metrics["epg/fitness"])
  assert ray_metrics["epg/lost_members"] == 0
  # Only φ, the statistics and seeds go out (once per epoch), a few numbers per member come back.
  phi_bytes = sum(v.nbytes for v in eta_of(ray))
  assert phi_bytes < ray_metrics["epg/bytes_sent"] < phi_bytes + 10_000
  assert ray_metrics["epg/bytes_received"] < 1_000 * TINY["population"]


def test_a_killed_worker_loses_its_member_and_the_epoch_goes_on(tmp_path):
  """Member 1's worker process is killed mid-task (once): the epoch finishes with the other three
  (the estimate from their losses, the steps they took), φ moves, and the next epoch has all four
  again (Ray starts a new worker)."""
  trainer = EPGTrainer(EPGConfig(backend="ray", **TINY), 1)
  marker = str(tmp_path / "killed")

  def member_or_die(shared, index):
    if index == 1 and not os.path.exists(marker):
      open(marker, "w").close()
      os.kill(os.getpid(), signal.SIGKILL)
    return evaluate_member(shared, index)

  trainer.problem.member_fn = member_or_die
  before = eta_of(trainer)
  metrics, stats = trainer.iteration()
  assert os.path.exists(marker) and metrics["epg/lost_members"] == 1
  assert int(trainer.guard.skipped.numpy()) == 0
  assert any(np.any(a != b) for a, b in zip(before, eta_of(trainer)))
  c = trainer.config
  assert int(trainer.env_steps.numpy()) == 3 * c.runs_per_member * c.updates * c.update_every
  assert len(stats.returns) == 3 * c.runs_per_member
  metrics, _ = trainer.iteration()
  assert metrics["epg/lost_members"] == 0


def test_random_hopper_epoch_on_ray():
  """A MuJoCo family through the same inner training: Python environments stepped from the
  graph, each member's runs on the tasks every other member's runs get (common random numbers)."""
  from tf_metarl.envs.mujoco_families import HOPPER_HELD_OUT, HOPPER_RANGES
  config = EPGConfig(env="tf_metarl/RandomHopper-v5", randomize=HOPPER_RANGES, held_out=HOPPER_HELD_OUT,
                     backend="ray", population=2, runs_per_member=2, updates=2, update_every=32, buffer_size=32,
                     ray_workers=2)
  trainer = EPGTrainer(config, 0)
  metrics, stats = trainer.iteration()
  assert metrics["epg/lost_members"] == 0 and np.isfinite(metrics["epg/fitness"])
  assert metrics["epg/episodes_per_run"] >= 1  # a random hopper falls within 64 steps
  returns = np.asarray(stats.returns).reshape(2, 2)
  np.testing.assert_allclose(returns[0], returns[1], rtol=1e-4)  # α = 1 (PPO): members identical
  assert returns[0, 0] != returns[0, 1]  # run 0 and run 1 are different tasks
  # The driver meta-tests on the held-out family in Python environments too.
  assert len(trainer.evaluate(2)) == 2


def test_bad_ray_settings_are_one_line_errors():
  with pytest.raises(errors.ConfigError, match="Ray address 127.0.0.1:1 is unreachable"):
    check_address("127.0.0.1:1")
  with pytest.raises(errors.ConfigError, match="must be '', 'auto', host:port"):
    check_address("localhost")
  with pytest.raises(errors.ConfigError, match="epg.backend must be one of graph, ray"):
    EPGConfig(backend="spark").validate()
  with pytest.raises(errors.ConfigError, match="use epg.backend=ray for gymnasium environments"):
    EPGConfig(env="Hopper-v5").validate()


def test_an_unreachable_address_on_resume_loses_nothing_checkpointed(tmp_path):
  """A run checkpointed in graph, resumed with --backend=ray at an address nobody answers: one
  line, exit 2, and the run's checkpoints and config are as they were."""
  import subprocess
  import sys
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  logdir = tmp_path / "run"
  base = [sys.executable, "-m", "tf_metarl.bin.meta_train", "--config=configs/epg_random_pendulum.py",
          "--config.epochs=1", "--config.epg.population=2", "--config.epg.runs_per_member=1",
          "--config.epg.updates=2", "--config.epg.update_every=32", "--config.epg.buffer_size=32",
          "--config.epg.hidden_sizes=(16,)", "--config.eval_every=0", f"--logdir={logdir}", "--noplot"]
  first = subprocess.run(base, capture_output=True, text=True, cwd=repo, timeout=600)
  assert first.returncode == 0, first.stderr[-3000:]
  before = {p: p.read_bytes() for p in sorted(logdir.rglob("*")) if p.is_file() and "events" not in p.name}
  assert any("checkpoint" in str(p) for p in before)
  second = subprocess.run(base + ["--backend=ray", "--ray_address=127.0.0.1:1", "--config.epochs=3"],
                          capture_output=True, text=True, cwd=repo, timeout=600)
  lines = second.stderr.strip().splitlines()
  assert second.returncode == 2 and lines[-1].startswith("error: ") and "is unreachable" in lines[-1]
  assert len([line for line in lines if line.startswith("error")]) == 1
  after = {p: p.read_bytes() for p in sorted(logdir.rglob("*")) if p.is_file() and "events" not in p.name}
  assert after == before
