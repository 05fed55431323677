"""RLDS recording (issue 13, part 2): exact round trips of what a collector returns, the RLDS
step conventions, train_agent --record read back by TFDS in another process, resume appends,
and one-line errors."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tf_metarl import errors
from tf_metarl.envs.gym_envs import describe_env
from tf_metarl.recording import EpisodeRecorder, episode_trajectory, read_episodes
from tf_metarl.trajectories import Trajectory

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN = {"env": "Pendulum-v1", "objective": "ppo", "seed": 0}


def segment(rng, copies, steps, ends, obs_dim=3):
  """A numpy Trajectory [copies, steps] whose episodes end where `ends` says ((copy, t, terminated))."""
  terminated, truncated = np.zeros((copies, steps), np.float32), np.zeros((copies, steps), np.float32)
  for copy, t, is_terminal in ends:
    (terminated if is_terminal else truncated)[copy, t] = 1.0
  obs = rng.normal(size=(copies, steps, obs_dim)).astype(np.float32)
  return Trajectory(observations=obs, actions=rng.normal(size=(copies, steps, 1)).astype(np.float32),
                    rewards=rng.normal(size=(copies, steps)).astype(np.float32),
                    next_observations=rng.normal(size=(copies, steps, obs_dim)).astype(np.float32),
                    terminated=terminated, truncated=truncated, policy_outputs=np.zeros((copies, steps, 2), np.float32),
                    log_probs=rng.normal(size=(copies, steps)).astype(np.float32),
                    episode_steps=np.zeros((copies, steps), np.float32))


def test_recorded_episodes_are_exactly_the_collected_steps_in_rlds_form(tmp_path):
  rng = np.random.default_rng(0)
  recorder = EpisodeRecorder(str(tmp_path / "ds"), describe_env("Pendulum-v1"), RUN, episodes_per_shard=2)
  first = segment(rng, 2, 5, [(0, 2, True)])  # copy 0 terminates at step 2; copy 1 runs on
  second = segment(rng, 2, 4, [(1, 1, False), (0, 3, True)])  # copy 1 truncated; copy 0's second episode ends
  recorder.add(first)
  recorder.add(second)
  recorder.close()  # copy 1's second episode is still running: written as truncated
  episodes = list(read_episodes(str(tmp_path / "ds")))
  # Written as they end, copy by copy within a segment: copy 0 (3 steps); copy 0 again (2 + 4);
  # copy 1 (5 + 2); copy 1's second episode, still running at close (2).
  lengths = [len(list(e["steps"])) - 1 for e in episodes]
  assert lengths == [3, 6, 7, 2]
  total = sum(lengths)
  assert total == 2 * 5 + 2 * 4  # every collected transition, once
  # The first episode, field by field.
  steps = list(episodes[0]["steps"])
  np.testing.assert_array_equal([s["observation"].numpy() for s in steps[:3]], first.observations[0, :3])
  np.testing.assert_array_equal(steps[3]["observation"].numpy(), first.next_observations[0, 2])
  np.testing.assert_array_equal([s["action"].numpy() for s in steps[:3]], first.actions[0, :3])
  np.testing.assert_array_equal([s["reward"].numpy() for s in steps[:3]], first.rewards[0, :3])
  np.testing.assert_array_equal([s["log_prob"].numpy() for s in steps[:3]], first.log_probs[0, :3])
  assert [bool(s["is_first"]) for s in steps] == [True, False, False, False]
  assert [bool(s["is_last"]) for s in steps] == [False, False, False, True]
  assert [bool(s["is_terminal"]) for s in steps] == [False, False, False, True]
  assert [float(s["discount"]) for s in steps] == [1.0, 1.0, 0.0, 0.0]
  # The episode spanning both segments joins them; a truncated end keeps discount 1 and is not terminal.
  joined = list(episodes[2]["steps"])
  np.testing.assert_array_equal(joined[5]["observation"].numpy(), second.observations[1, 0])
  assert not bool(joined[-1]["is_terminal"]) and float(joined[-1]["discount"]) == 1.0
  # Back to the library's trajectory.
  trajectory = episode_trajectory(episodes[0])
  # RLDS keeps one observation per step: a transition's next observation is the next step's (in
  # real collection they are equal but at an episode's end, whose true last one the final step holds).
  np.testing.assert_array_equal(trajectory.next_observations.numpy()[0],
                                np.concatenate([first.observations[0, 1:3], first.next_observations[0, 2:3]]))
  np.testing.assert_array_equal(trajectory.terminated.numpy()[0], [0, 0, 1])
  np.testing.assert_array_equal(trajectory.rewards.numpy()[0], first.rewards[0, :3])


def test_a_directory_with_another_run_or_something_else_is_a_one_line_error(tmp_path):
  info = describe_env("Pendulum-v1")
  EpisodeRecorder(str(tmp_path / "ds"), info, RUN).close()
  EpisodeRecorder(str(tmp_path / "ds"), info, RUN).close()  # the same run appends
  with pytest.raises(errors.ConfigError, match="already holds a different run"):
    EpisodeRecorder(str(tmp_path / "ds"), info, dict(RUN, seed=1))
  (tmp_path / "other").mkdir()
  (tmp_path / "other" / "notes.txt").write_text("x")
  with pytest.raises(errors.ConfigError, match="is not an RLDS dataset written by tf_metarl"):
    EpisodeRecorder(str(tmp_path / "other"), info, RUN)
  with pytest.raises(errors.ConfigError, match="is not an RLDS dataset written by tf_metarl"):
    read_episodes(str(tmp_path / "other"))


READ_BACK = """
import json, sys
import tensorflow_datasets as tfds
builder = tfds.builder_from_directory(sys.argv[1])
episodes = []
for episode in builder.as_dataset(split="train"):
  steps = list(episode["steps"])
  episodes.append({"n": len(steps) - 1, "return": float(sum(float(s["reward"]) for s in steps)),
                   "first": [bool(s["is_first"]) for s in steps].count(True),
                   "last_is_last": bool(steps[-1]["is_last"]), "terminal": bool(steps[-1]["is_terminal"])})
print(json.dumps({"episodes": episodes, "run": builder.info.metadata["run"]}))
"""


def read_back(directory):
  out = subprocess.run([sys.executable, "-c", READ_BACK, str(directory)], capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_train_agent_records_every_step_and_a_resumed_run_appends(tmp_path):
  record, logdir = tmp_path / "ds", tmp_path / "run"
  base = [sys.executable, "-m", "tf_metarl.bin.train_agent", "--env=CartPole-v1", f"--record={record}",
          f"--logdir={logdir}", "--noplot", "--config.eval_every=0", "--config.on_policy.num_envs=4"]
  first = subprocess.run(base + ["--config.steps=1024"], capture_output=True, text=True, cwd=REPO, timeout=600)
  assert first.returncode == 0, first.stderr[-3000:]
  data = read_back(record)
  assert data["run"]["env"] == "CartPole-v1" and data["run"]["objective"] == "ppo"
  assert sum(e["n"] for e in data["episodes"]) == 1024  # every step the agent took
  assert all(e["first"] == 1 and e["last_is_last"] for e in data["episodes"])
  assert all(e["return"] == e["n"] for e in data["episodes"])  # CartPole pays 1 per step
  assert sum(e["terminal"] for e in data["episodes"]) >= len(data["episodes"]) - 4  # only the 4 copies' last ones are cut
  second = subprocess.run(base + ["--config.steps=2048"], capture_output=True, text=True, cwd=REPO, timeout=600)
  assert second.returncode == 0, second.stderr[-3000:]
  assert sum(e["n"] for e in read_back(record)["episodes"]) == 2048


def test_replay_streams_deal_whole_episodes_to_copies_in_order(tmp_path):
  rng = np.random.default_rng(1)
  recorder = EpisodeRecorder(str(tmp_path / "ds"), describe_env("Pendulum-v1"), RUN)
  data = segment(rng, 1, 12, [(0, 2, True), (0, 6, False), (0, 8, True), (0, 11, True)])  # 3, 4, 2, 3 steps
  recorder.add(data)
  recorder.close()
  from tf_metarl.recording import replay_streams
  streams = replay_streams(str(tmp_path / "ds"), describe_env("Pendulum-v1"), 2)
  # Copy 0 gets episodes 0 and 2 (3 + 2 steps), copy 1 episodes 1 and 3 (4 + 3): both cut to 5.
  assert streams.rewards.shape == (2, 5)
  np.testing.assert_array_equal(streams.rewards[0], data.rewards[0, [0, 1, 2, 7, 8]])
  np.testing.assert_array_equal(streams.rewards[1], data.rewards[0, [3, 4, 5, 6, 9]])
  np.testing.assert_array_equal(streams.actions[1], data.actions[0, [3, 4, 5, 6, 9]])
  np.testing.assert_array_equal(streams.terminated[0], [0, 0, 1, 0, 1])
  np.testing.assert_array_equal(streams.truncated[1], [0, 0, 0, 1, 0])
  with pytest.raises(errors.IncompatibleSpaceError, match="do not fit CartPole-v1"):
    replay_streams(str(tmp_path / "ds"), describe_env("CartPole-v1"), 1)
  with pytest.raises(errors.ConfigError, match="4 recorded episodes cannot fill 5 copies"):
    replay_streams(str(tmp_path / "ds"), describe_env("Pendulum-v1"), 5)


@pytest.mark.slow
def test_a_warm_started_off_policy_learner_updates_from_its_first_step(tmp_path):
  """Recorded transitions fill the replay buffer before the first collection: with them the
  learner is past its warm-up at once and updates; without them it only collects."""
  from tf_metarl.learners.off_policy import OffPolicyConfig, OffPolicyLearner
  from tf_metarl.objectives import make_objective
  from tf_metarl.recording import replay_streams
  info = describe_env("Pendulum-v1")
  rng = np.random.default_rng(2)
  recorder = EpisodeRecorder(str(tmp_path / "ds"), info, RUN)
  recorder.add(segment(rng, 1, 600, [(0, 199, False), (0, 399, False), (0, 599, False)]))
  recorder.close()
  config = OffPolicyConfig(warmup_steps=500, batch_size=8, sequence_length=1, hidden_sizes=(16,))
  learners = {}
  for warm in (False, True):
    learner = OffPolicyLearner(info, make_objective("td3"), config, seed=0)
    if warm:
      learner.replay_source = replay_streams(str(tmp_path / "ds"), info, 1)
    metrics, _ = learner.iteration()
    learners[warm] = (learner, metrics)
  assert learners[False][1] == {} and learners[False][0].replay.size == 1
  assert learners[True][0].replay.size == 601 and learners[True][1]  # it updated (metrics of its updates)
  assert int(learners[True][0].env_steps.numpy()) == 1  # recorded steps are not the agent's own
  # A resumed run: its buffer, restored from a checkpoint, already holds the recorded steps; they
  # are not added again, and they still count toward the warm-up.
  resumed = OffPolicyLearner(info, make_objective("td3"), config, seed=0)
  resumed.replay.load_state(learners[True][0].replay.state())
  resumed.replay_source = replay_streams(str(tmp_path / "ds"), info, 1)
  metrics, _ = resumed.iteration()
  assert resumed.replay.size == 602 and metrics


@pytest.mark.slow
def test_meta_train_replay_from_warm_starts_every_metagenrl_agent(tmp_path):
  """Datasets laid out as `meta_train --record` writes them fill each agent's replay: the
  population is past its warm-up at once and its agents update; a missing environment is one
  line."""
  from tf_metarl.algorithms.metagenrl import MetaGenRLConfig, MetaGenRLTrainer
  from tf_metarl.recording import population_dataset
  envs = ("Pendulum-v1", "MountainCarContinuous-v0")
  rng = np.random.default_rng(5)
  for env_id, obs_dim in zip(envs, (3, 2)):
    recorder = EpisodeRecorder(population_dataset(str(tmp_path / "ds"), env_id, True), describe_env(env_id),
                               dict(RUN, env=env_id))
    recorder.add(segment(rng, 1, 120, [(0, 59, False), (0, 119, False)], obs_dim=obs_dim))  # 2 episodes of 60
    recorder.close()
  config = MetaGenRLConfig(envs=envs, num_agents=4, hidden_sizes=(16,), batch_size=4, sequence_length=5,
                           warmup_steps=50, anneal_steps=20, replay_capacity=200, objective_units=4)
  trainer = MetaGenRLTrainer(config, seed=0)
  assert trainer.problem.warm_start(str(tmp_path / "ds")) == 60  # one episode per agent
  assert [g.replay.size for g in trainer.problem.groups] == [60, 60]
  metrics, _ = trainer.iteration()  # 2 steps of its own: without the 60 recorded ones, 48 short of warm-up
  assert [g.replay.size for g in trainer.problem.groups] == [62, 62]
  assert np.isfinite(metrics["critic_loss"]) and np.isfinite(metrics["policy_objective_loss"])  # it updated
  (tmp_path / "empty").mkdir()
  with pytest.raises(errors.ConfigError, match="no recorded dataset for Pendulum-v1 \\(expected .*empty/Pendulum-v1"):
    trainer.problem.warm_start(str(tmp_path / "empty"))


@pytest.mark.slow
@pytest.mark.parametrize("learner_kind", ["on_policy", "off_policy"])
def test_in_graph_learners_record_the_episodes_they_collect(tmp_path, learner_kind):
  """The in-graph learners hand their rollouts (on-policy) or the replay rows of each call
  (off-policy) to the recorder: every finished episode is recorded with the return the learner
  reported, and every recorded episode starts from a reset state."""
  from tf_metarl.learners.in_graph_off_policy import InGraphOffPolicyLearner
  from tf_metarl.learners.in_graph_on_policy import InGraphOnPolicyLearner
  from tf_metarl.learners.off_policy import OffPolicyConfig
  from tf_metarl.learners.on_policy import OnPolicyConfig
  from tf_metarl.objectives import make_objective
  if learner_kind == "on_policy":  # CartPole: resets draw every coordinate from [-0.05, 0.05]
    info = describe_env("tf_metarl/CartPole-v1")
    learner = InGraphOnPolicyLearner(info, make_objective("ppo"), OnPolicyConfig(num_envs=2, rollout_length=64, minibatches=2,
                                                                                hidden_sizes=(16,)), 0, 1_000)
    bound, column = 0.05, slice(None)
  else:  # Pendulum: 200-step episodes; resets draw the angular velocity from [-1, 1]
    info = describe_env("tf_metarl/Pendulum-v1")
    learner = InGraphOffPolicyLearner(info, make_objective("td3"), OffPolicyConfig(
        num_envs=2, warmup_steps=100, batch_size=8, sequence_length=1, hidden_sizes=(16,), graph_steps=50), 0)
    bound, column = 1.0, slice(2, 3)
  learner.recorder = EpisodeRecorder(str(tmp_path / "ds"), info, RUN)
  reported = []
  for _ in range(5):
    reported += learner.iteration()[1].returns
  learner.restore_extra("unused")  # what a resume calls: the restored episodes go on, unseen by this recorder
  assert learner.recorder._join_next
  learner.recorder._join_next = False
  learner.recorder.close()
  episodes = list(read_episodes(str(tmp_path / "ds")))
  assert len(reported) >= 2
  recorded = [e for e in episodes if len(list(e["steps"])) - 1 > 0]
  steps = sum(len(list(e["steps"])) - 1 for e in recorded)
  assert steps == 5 * (2 * 64 if learner_kind == "on_policy" else 2 * 50)  # every collected step, once
  returns = sorted(sum(float(s["reward"]) for s in e["steps"]) for e in recorded)
  for r in reported:  # finished episodes; the ones still running at close are extra (truncated)
    assert min(abs(r - x) for x in returns) < 1e-3, (r, returns)
  for e in recorded:
    first = list(e["steps"])[0]["observation"].numpy()
    assert np.all(np.abs(first[column]) <= bound + 1e-6), first


def test_a_recorder_joining_mid_episode_starts_at_each_copys_next_episode(tmp_path):
  """After `join_mid_episode` (a resumed in-graph run), each copy's steps up to the end of the
  episode it is in are dropped; what follows is recorded whole."""
  rng = np.random.default_rng(6)
  recorder = EpisodeRecorder(str(tmp_path / "ds"), describe_env("Pendulum-v1"), RUN)
  recorder.join_mid_episode()
  first = segment(rng, 2, 5, [(0, 1, True)])  # copy 0's old episode ends at step 1; copy 1's goes on
  second = segment(rng, 2, 4, [(1, 0, False), (0, 3, True)])  # copy 1's old one ends at 0; copy 0's new at 3
  recorder.add(first)
  recorder.add(second)
  recorder.close()  # copy 1's new episode (steps 1..3 of the second segment) is closed as truncated
  episodes = [episode_trajectory(e) for e in read_episodes(str(tmp_path / "ds"))]
  assert sorted(int(e.rewards.shape[1]) for e in episodes) == [3, 3 + 4]
  copy0 = [e for e in episodes if e.rewards.shape[1] == 7][0]
  np.testing.assert_allclose(copy0.observations.numpy()[0, :3], first.observations[0, 2:5])
  copy1 = [e for e in episodes if e.rewards.shape[1] == 3][0]
  np.testing.assert_allclose(copy1.observations.numpy()[0], second.observations[1, 1:4])


def record_meta_run(trainer, directory, iterations):
  """As `meta_train --record` does: a recorder on the problem's one source, joining its copies at
  their next episode; `iterations` meta-iterations. Returns (env id, EnvInfo, the recorded
  episodes as Trajectories, the returns the trainer reported)."""
  (env_id, info, task), = trainer.problem.recording_sources()
  task.recorder = EpisodeRecorder(str(directory), info, RUN)
  task.recorder.join_mid_episode()
  reported = []
  for _ in range(iterations):
    reported += trainer.iteration()[1].returns
  task.recorder.close()
  return env_id, info, [episode_trajectory(e) for e in read_episodes(str(directory))], reported


@pytest.mark.slow
def test_an_in_graph_meta_run_records_what_its_task_collects(tmp_path):
  """FRODO on Catch: its task hands every rollout out of the compiled meta-step, in collection
  order. Copies join at their next episode (the first batch was collected before the recorder
  was attached), and every recorded episode is a whole Catch episode: 10 steps, return ±1."""
  from tf_metarl.algorithms.frodo import FrodoConfig, OnlineMetaConfig, OnlineMetaTrainer
  trainer = OnlineMetaTrainer(OnlineMetaConfig(env="catch", num_envs=4, trajectory_length=8,
                                               frodo=FrodoConfig(inner_steps=2)), seed=0)
  # 4 meta-steps of 2 inner batches, 4 copies × 8 steps each (the outer batch is reused)
  env_id, info, episodes, reported = record_meta_run(trainer, tmp_path / "ds", 4)
  assert (env_id, info.observation_shape, info.num_actions) == ("catch", (66,), 3)
  whole = [e for e in episodes if float(e.terminated.numpy()[0, -1]) == 1.0]
  assert len(whole) >= 8 and len(episodes) - len(whole) <= 4  # the still-running ones, at most one a copy
  for e in whole:  # one that started mid-episode, or a segment out of order, would not be 10 steps
    assert e.rewards.shape[1] == 10 and abs(float(np.sum(e.rewards.numpy()))) == 1.0
  # The trainer reported these and the ones the copies were in when the recorder joined (≤ 1 a copy).
  assert len(reported) - 4 <= len(whole) <= len(reported)


@pytest.mark.slow
def test_an_epg_run_in_graph_records_every_inner_run(tmp_path):
  """EPG's V × W inner runs on random Pendulum (20-step episodes): each epoch's fresh runs start
  new episodes (the task's reset closes the ones still open as truncated), so every copy gives
  three 20-step episodes and one 4-step one per 64-step epoch, each from a reset state."""
  from tests.test_epg import small_epg_config
  from tf_metarl.algorithms.epg import EPGTrainer
  trainer = EPGTrainer(small_epg_config(), seed=0)
  env_id, info, episodes, _ = record_meta_run(trainer, tmp_path / "ds", 2)
  assert env_id == "tf_metarl/Pendulum-v1" and info.action_dim == 1
  lengths = sorted(int(e.rewards.shape[1]) for e in episodes)
  assert lengths == [4] * 8 + [20] * 24 and sum(lengths) == int(trainer.env_steps.numpy())  # 4 copies, 2 epochs
  for e in episodes:
    assert abs(float(e.observations.numpy()[0, 0, 2])) <= 1.0 + 1e-6  # reset: angular velocity in [-1, 1]


@pytest.mark.slow
def test_the_implicit_reward_method_in_graph_records_the_environments_rewards(tmp_path):
  """Its inner agent trains on the learned reward r_η; the recording holds CartPole's own reward,
  +1 a step, so every whole episode's return is its length."""
  from tests.test_implicit_reward import small_config
  from tf_metarl.algorithms.implicit_reward import ImplicitRewardTrainer
  trainer = ImplicitRewardTrainer(small_config(helper="harmful"), seed=0)
  env_id, _, episodes, _ = record_meta_run(trainer, tmp_path / "ds", 6)
  assert env_id == "tf_metarl/CartPole-v1"
  whole = [e for e in episodes if float(e.terminated.numpy()[0, -1]) == 1.0]
  assert whole
  for e in whole:
    np.testing.assert_array_equal(e.rewards.numpy(), 1.0)


def test_the_fast_serialisation_gives_tfds_own_bytes(tmp_path):
  """The recorder serialises columnar episodes without TFDS's per-step encoding: the bytes must
  be those of TFDS's own path (encode_example, then the serializer)."""
  rng = np.random.default_rng(4)
  for env_id in ("CartPole-v1", "Pendulum-v1"):
    info = describe_env(env_id)
    recorder = EpisodeRecorder(str(tmp_path / env_id), info, RUN)
    data = segment(rng, 1, 6, [(0, 5, True)], obs_dim=info.observation_shape[0])
    if info.action_kind == "discrete":
      data = data._replace(actions=rng.integers(0, 2, (1, 6)).astype(np.int32))
    recorder._open[0] = [recorder._columns(data, 0, 0, 6)]
    recorder._last_obs[0] = data.next_observations[0, 5]
    episode = recorder._finish(0, terminated=True)
    writer = recorder._writer
    want = writer._serializer.serialize_example(writer._ds_info.features.encode_example(episode))
    assert recorder.serialize(episode) == want
    recorder.close()
