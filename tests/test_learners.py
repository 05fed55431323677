"""Smoke tests: brief training of fresh agents improves on their initial policy."""
import numpy as np
import pytest

from tf_metarl import errors
from tf_metarl.envs import describe_env
from tf_metarl.learners import check_compatible, train
from tf_metarl.learners.loop import read_learning_curve
from tf_metarl.learners.off_policy import OffPolicyConfig, OffPolicyLearner
from tf_metarl.learners.on_policy import OnPolicyConfig, OnPolicyLearner
from tf_metarl.objectives import A2CObjective, MetaGenRLObjective, PPOObjective, ReinforceObjective, TD3ActorObjective

ON_POLICY = {
    "ppo": (PPOObjective(), OnPolicyConfig(num_envs=8, rollout_length=64, epochs=4, minibatches=4,
                                           learning_rate=2.5e-4), 25_000),
    "a2c": (A2CObjective(), OnPolicyConfig(num_envs=8, rollout_length=16, epochs=1, minibatches=1,
                                           learning_rate=7e-4), 40_000),
    "reinforce": (ReinforceObjective(), OnPolicyConfig(num_envs=8, rollout_length=32, epochs=1, minibatches=1,
                                                       learning_rate=3e-3), 40_000),
}


def train_learner(learner, steps, tmp_path, eval_episodes=10):
  initial = float(np.mean(learner.evaluate(eval_episodes)))
  from tf_metarl.learners.loop import RunSettings, run_training
  summary = run_training(learner, steps, str(tmp_path), {"test": True},
                         RunSettings(eval_every=steps, eval_episodes=eval_episodes, log_every_seconds=60))
  return initial, summary


# All in the slow tier: 9–12 s each on 2 cores (PPO up to 19 s on a slower host).
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ON_POLICY))
def test_on_policy_objectives_improve_on_cartpole(name, tmp_path):
  objective, config, steps = ON_POLICY[name]
  learner = OnPolicyLearner(describe_env("CartPole-v1"), objective, config, seed=1, total_steps=steps)
  initial, summary = train_learner(learner, steps, tmp_path)
  assert initial < 60, initial  # a random network balances the pole for a few dozen steps at most
  assert summary["final_eval_return"] > max(2 * initial, 100), (initial, summary)
  rows = read_learning_curve(str(tmp_path / "learning_curve.csv"))
  assert rows[-1]["train_return"] > rows[0]["train_return"]


@pytest.mark.slow
def test_td3_improves_on_pendulum(tmp_path):
  config = OffPolicyConfig(warmup_steps=1000, batch_size=128, hidden_sizes=(64, 64))
  learner = OffPolicyLearner(describe_env("Pendulum-v1"), TD3ActorObjective(), config, seed=0)
  initial, summary = train_learner(learner, 6_000, tmp_path, eval_episodes=5)
  assert initial < -900, initial
  assert summary["final_eval_return"] > -600, (initial, summary)


@pytest.mark.slow
def test_learned_off_policy_objective_trains_through_the_same_learner(tmp_path):
  """With `learn_during_warmup` (MetaGenRL's reference schedule) the policy trains while the
  actions are still random: the warm-up outlasts the run here."""
  config = OffPolicyConfig(warmup_steps=300, batch_size=16, sequence_length=8, hidden_sizes=(16,),
                           learn_during_warmup=True)
  learner = OffPolicyLearner(describe_env("Pendulum-v1"), MetaGenRLObjective(units=8), config, seed=0)
  before = [v.numpy().copy() for v in learner.policy.trainable_variables]
  summary = train_learner(learner, 260, tmp_path, eval_episodes=1)[1]
  assert summary["env_steps"] == 260
  assert any(np.any(b != a.numpy()) for b, a in zip(before, learner.policy.trainable_variables))


def test_incompatible_objective_and_environment():
  with pytest.raises(errors.IncompatibleSpaceError, match="trains continuous actions only; CartPole-v1 has 2 discrete"):
    check_compatible(TD3ActorObjective(), describe_env("CartPole-v1"), "td3")
  with pytest.raises(errors.IncompatibleSpaceError, match="trains continuous actions only; CartPole-v1 has 2 discrete"):
    check_compatible(MetaGenRLObjective(units=4), describe_env("CartPole-v1"), "metagenrl")
  check_compatible(MetaGenRLObjective(units=4), describe_env("Pendulum-v1"), "metagenrl")  # any action dimension
  check_compatible(MetaGenRLObjective(units=4), describe_env("Hopper-v5"), "metagenrl")


@pytest.mark.parametrize("config, message", [
    ({"steps": 0}, "config.steps must be a positive integer"),
    ({"steps": 100, "on_policy": {"epochs": "four"}}, "config.on_policy.epochs must be int, got 'four'"),
    ({"steps": 100, "on_policy": {"minibatch": 2}}, "unknown key\\(s\\) in config.on_policy: minibatch"),
    ({"steps": 100, "on_policy": {"num_envs": 6, "minibatches": 4}}, "must be divisible"),
])
def test_malformed_config_values(config, message, tmp_path):
  with pytest.raises(errors.ConfigError, match=message):
    train("CartPole-v1", "ppo", 0, str(tmp_path), config)


if __name__ == "__main__":
  import sys
  sys.exit(pytest.main([__file__, "-q"]))


def test_replay_samples_each_copy_from_its_own_column():
  from tf_metarl.learners.replay import SequenceReplay
  replay = SequenceReplay(capacity=10, num_envs=3, observation_dim=1, action_dim=1)
  for t in range(12):  # wraps around: rows hold steps 2..11
    copies = np.arange(3, dtype=np.float32)
    replay.add(observations=(100 * copies + t)[:, None], actions=np.zeros((3, 1)), rewards=100 * copies + t,
               next_observations=np.zeros((3, 1)), terminated=np.zeros(3), truncated=np.zeros(3),
               episode_steps=np.full(3, t))
  batch = replay.sample_per_copy(np.random.default_rng(0), batch_size=4, length=5)
  assert batch.rewards.shape == (3, 4, 5) and batch.observations.shape == (3, 4, 5, 1)
  copy_of = batch.rewards // 100
  np.testing.assert_array_equal(copy_of, np.broadcast_to(np.arange(3)[:, None, None], (3, 4, 5)))
  steps = batch.rewards % 100
  np.testing.assert_array_equal(np.diff(steps, axis=-1), np.ones((3, 4, 4)))  # consecutive, never across the wrap
  assert steps.min() >= 2 and steps.max() <= 11


def test_replay_groups_sample_only_their_own_copies_and_cover_all_of_them():
  from tf_metarl.learners.replay import SequenceReplay
  replay = SequenceReplay(capacity=8, num_envs=6, observation_dim=1, action_dim=1)
  for t in range(8):
    copies = np.arange(6, dtype=np.float32)
    replay.add(observations=(100 * copies + t)[:, None], actions=np.zeros((6, 1)), rewards=100 * copies + t,
               next_observations=np.zeros((6, 1)), terminated=np.zeros(6), truncated=np.zeros(6),
               episode_steps=np.full(6, t))
  import tensorflow as tf
  batch = replay.sample_sequences(tf.constant([0, 1]), 200, 3, groups=3)  # member g owns copies 2g, 2g + 1
  copy_of = batch.rewards.numpy() // 100
  assert copy_of.shape == (3, 200, 3)
  for g in range(3):
    assert set(np.unique(copy_of[g])) == {2 * g, 2 * g + 1}
  np.testing.assert_array_equal(np.diff(batch.rewards.numpy() % 100, axis=-1), np.ones((3, 200, 2)))
  with pytest.raises(ValueError, match="6 replay copies do not split into 4 equal groups"):
    replay.sample_sequences(tf.constant([0, 1]), 2, 1, groups=4)


def test_replay_save_and_load_round_trip_and_damage_is_one_line(tmp_path):
  from tf_metarl.learners.replay import SequenceReplay
  replay = SequenceReplay(capacity=4, num_envs=2, observation_dim=1, action_dim=1)
  for t in range(3):
    replay.add(observations=np.full((2, 1), t), actions=np.zeros((2, 1)), rewards=np.full(2, t),
               next_observations=np.zeros((2, 1)), terminated=np.zeros(2), truncated=np.zeros(2),
               episode_steps=np.full(2, t))
  path = str(tmp_path / "replay.npz")
  replay.save(path)
  copy = SequenceReplay(capacity=4, num_envs=2, observation_dim=1, action_dim=1)
  copy.load(path)
  assert (copy.size, copy.position) == (3, 3)
  np.testing.assert_array_equal(copy.data["rewards"], replay.data["rewards"])
  with open(path, "r+b") as f:
    f.truncate(100)
  with pytest.raises(errors.CheckpointError, match="cannot restore replay buffer .*replay.npz"):
    copy.load(path)


def frozen_vs_current(make, epochs):
  """Policy parameters after one iteration with targets frozen at collection and with the current critic's."""
  out = []
  for freeze in (True, False):
    learner = make(OnPolicyConfig(num_envs=4, rollout_length=16, epochs=epochs, minibatches=1, freeze_targets=freeze))
    learner.iteration()
    out.append([np.array(p) for p in learner.state.read().policy + learner.state.read().critic])
  return out


def assert_frozen_targets_are_the_critics_values_at_collection(make):
  # One update per iteration: the critic at collection is the current one, so nothing changes; with
  # two epochs the second update sees a critic the first one moved, so freezing matters.
  frozen, current = frozen_vs_current(make, epochs=1)
  for a, b in zip(frozen, current):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  frozen, current = frozen_vs_current(make, epochs=2)
  assert max(float(np.abs(a - b).max()) for a, b in zip(frozen, current)) > 1e-6


def assert_transition_minibatches_use_the_targets_at_collection(make):
  # One minibatch holding the whole rollout, two epochs: transitions in any order with the targets
  # computed at collection train exactly as the whole copies with frozen targets do.
  params = []
  for unit, freeze in (("transitions", False), ("copies", True)):
    learner = make(OnPolicyConfig(num_envs=4, rollout_length=16, epochs=2, minibatches=1, freeze_targets=freeze,
                                  minibatch_unit=unit))
    learner.iteration()
    params.append([np.array(p) for p in learner.state.read().policy + learner.state.read().critic])
  for a, b in zip(*params):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_minibatch_unit_auto_resolves_per_objective_and_transitions_need_rollout_targets():
  from tf_metarl.learners.on_policy import resolve_minibatch_unit
  from tf_metarl.objectives.base import Objective

  class Exported(Objective):  # like a loaded SavedModel: one loss, no per-rollout targets
    kind = "exported"
  config = OnPolicyConfig(num_envs=2, rollout_length=64, minibatches=4, minibatch_unit="auto")
  config.validate()  # 2 copies cannot make 4 minibatches, 128 transitions can
  assert resolve_minibatch_unit(config, PPOObjective()).minibatch_unit == "transitions"
  learned = Exported()
  with pytest.raises(errors.ConfigError, match="num_envs \\(2\\) must be divisible by on_policy.minibatches \\(4\\)"):
    resolve_minibatch_unit(config, learned)  # falls back to copies, which 2 copies cannot split into 4
  with pytest.raises(errors.ConfigError, match="minibatch_unit='transitions' needs an objective"):
    resolve_minibatch_unit(OnPolicyConfig(minibatch_unit="transitions"), learned)
  assert resolve_minibatch_unit(OnPolicyConfig(minibatch_unit="auto"), learned).minibatch_unit == "copies"
  with pytest.raises(errors.ConfigError, match="minibatch_unit must be one of copies, transitions, auto"):
    OnPolicyConfig(minibatch_unit="rows").validate()


@pytest.mark.slow
def test_transition_minibatches_on_the_gymnasium_path():
  assert_transition_minibatches_use_the_targets_at_collection(
      lambda config: OnPolicyLearner(describe_env("CartPole-v1"), PPOObjective(), config, seed=0, total_steps=10_000))


@pytest.mark.slow
def test_frozen_targets_on_the_gymnasium_path():
  assert_frozen_targets_are_the_critics_values_at_collection(
      lambda config: OnPolicyLearner(describe_env("CartPole-v1"), PPOObjective(), config, seed=0, total_steps=10_000))
