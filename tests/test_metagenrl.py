"""MetaGenRL's meta-gradient (issue 9): ∇_α of the population's future policy value, through K
inner policy steps, against central finite differences in float64; the population's vectorised
evaluation against a loop; the config's checks."""
import dataclasses

import gymnasium as gym
import numpy as np
import pytest
import tensorflow as tf

from tf_metarl import errors
from tf_metarl.agents import SGD, TD3, TD3Settings, population
from tf_metarl.algorithms.metagenrl import MetaGenRLConfig, annealed_objective, population_meta_loss
from tf_metarl.networks import DeterministicPolicy, TwinQCritic
from tf_metarl.objectives import MetaGenRLObjective
from tf_metarl.trajectories import Trajectory

OBS, ACT, B, T, N = 3, 2, 6, 4, 2


def small_population(seed=0, features=None):
  """N tiny float64 TD3 agents (each its own initialisation), a float64 L_α, and one batch per agent."""
  import keras
  keras.utils.set_random_seed(seed)
  policy = DeterministicPolicy(OBS, [-1.0] * ACT, [1.0] * ACT, (8,), layer_norm=True, dtype="float64")
  critic = TwinQCritic(OBS, ACT, (8,), layer_norm=True, dtype="float64")
  td3 = TD3(policy, critic, SGD(0.1), SGD(0.1), TD3Settings(episode_step_limit=10.0))
  states = []
  for _ in range(N):
    for v in policy.trainable_variables + critic.trainable_variables:
      v.assign(tf.random.normal(v.shape, stddev=0.5, dtype=v.dtype))
    states.append(td3.init())
  objective = MetaGenRLObjective(units=4, dtype="float64", **({"scalar_features": features} if features else {}))
  rng = np.random.default_rng(seed)

  def batch():
    ends = (rng.random((B, T)) < 0.25).astype(np.float64)
    return Trajectory(observations=tf.constant(rng.normal(size=(B, T, OBS))),
                      actions=tf.constant(rng.uniform(-1, 1, size=(B, T, ACT))),
                      rewards=tf.constant(rng.normal(size=(B, T))),
                      next_observations=tf.constant(rng.normal(size=(B, T, OBS))),
                      terminated=tf.constant(ends * (rng.random((B, T)) < 0.5)), truncated=tf.zeros((B, T), tf.float64),
                      policy_outputs=tf.zeros((B, T, ACT), tf.float64), log_probs=tf.zeros((B, T), tf.float64),
                      episode_steps=tf.constant(rng.integers(0, 10, size=(B, T)), tf.float64))

  return td3, objective, population.stack(states), population.stack([batch() for _ in range(N)])


@pytest.mark.parametrize("inner_steps, features", [
    pytest.param(1, None, marks=pytest.mark.slow),  # K = 1: 10–19 s depending on the host
    pytest.param(2, ("rewards", "time"), marks=pytest.mark.slow)])  # K = 2: 13 s
def test_meta_gradient_matches_central_finite_differences(inner_steps, features):
  """K = 2 without the value inputs: V(s) = Q(s, π_{φ_1}(s)) is held constant by the tape (as in the
  paper and the reference) but moves with α under finite differences, once φ_1 depends on α."""
  td3, objective, states, batches = small_population(features=features)
  eta = [tf.identity(v) for v in objective.network.trainable_variables]
  lr = 0.05  # larger than the paper's 1e-3 so the inner step moves the value measurably

  @tf.function
  def loss(eta):
    return population_meta_loss(td3, objective, eta, states, batches, inner_steps, lr, vectorized=False)

  @tf.function
  def loss_and_grads(eta):
    with tf.GradientTape() as tape:
      tape.watch(eta)
      value = loss(eta)
    return value, tape.gradient(value, eta)

  _, grads = loss_and_grads(eta)
  rng = np.random.default_rng(1)
  direction = [tf.constant(rng.normal(size=g.shape)) for g in grads]
  norm = np.sqrt(sum(float(tf.reduce_sum(d * d)) for d in direction))
  direction = [d / norm for d in direction]
  analytic = sum(float(tf.reduce_sum(g * d)) for g, d in zip(grads, direction))
  eps = 1e-5
  up = float(loss([e + eps * d for e, d in zip(eta, direction)]))
  down = float(loss([e - eps * d for e, d in zip(eta, direction)]))
  numeric = (up - down) / (2 * eps)
  assert abs(analytic) > 1e-6, "the meta-gradient must not vanish (the inner step must depend on α)"
  np.testing.assert_allclose(analytic, numeric, rtol=1e-4, atol=1e-9)


@pytest.mark.slow
def test_vectorised_population_equals_a_loop_of_agents():
  td3, objective, states, batches = small_population(seed=2)
  eta = list(objective.network.trainable_variables)
  results = []
  for vectorized in (False, True):
    with tf.GradientTape() as tape:
      value = population_meta_loss(td3, objective, eta, states, batches, 1, 0.05, vectorized=vectorized)
    results.append((float(value), [g.numpy() for g in tape.gradient(value, eta)]))
  np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-8)
  for a, b in zip(results[1][1], results[0][1]):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-10)


def test_actions_at_bound_counts_the_saturated_action_components_per_agent():
  """The diagnostic `meta/policy_actions_at_bound`: per agent, the fraction of π_φ(s)'s components
  within 1% of the half-range from a bound; an agent whose output layer is scaled up sits at the bound."""
  from tf_metarl.algorithms.metagenrl import actions_at_bound
  td3, _, states, batches = small_population(seed=5)
  policies = list(states.policy)
  policies[-2] = tf.concat([policies[-2][:1] * 1e4, policies[-2][1:]], 0)  # agent 0's last kernel, ×10⁴
  fractions = actions_at_bound(td3, policies, batches).numpy()
  for n in range(N):
    actions = td3.actions([p[n] for p in policies], batches.observations[n]).numpy()
    np.testing.assert_allclose(fractions[n], np.mean(np.abs(actions) >= 0.99), rtol=1e-6)
  assert fractions[0] > 0.95 and fractions[1:].max() < 0.5


def test_the_objective_ddpg_alignment_is_the_cosine_of_the_two_policy_gradients():
  """The diagnostic `meta/objective_ddpg_alignment` per agent equals cos(−∇_φ Σ L_α, ∇_φ mean Q(s, π_φ(s)))
  computed agent by agent with plain tapes on the first inner step's part of the batch."""
  from tf_metarl.algorithms.metagenrl import future_policy_values, objective_values
  td3, objective, states, batches = small_population(seed=4)
  eta = list(objective.network.trainable_variables)
  _, alignment = future_policy_values(td3, objective, eta, states, batches, 1, 0.05, with_alignment=True)
  for n in range(N):
    state = population.member(states, n)
    part = tf.nest.map_structure(lambda x: x[:B // 2], population.member(batches, n))
    policy = [tf.identity(p) for p in state.policy]
    with tf.GradientTape(persistent=True) as tape:
      tape.watch(policy)
      objective_sum = tf.reduce_sum(objective_values(objective, eta, td3.actor_inputs(policy, state.critic, part)))
      q_mean = tf.reduce_mean(td3.q_values(state.critic, part.observations, td3.actions(policy, part.observations))[0])
    down = np.concatenate([-g.numpy().ravel() for g in tape.gradient(objective_sum, policy)])
    up = np.concatenate([g.numpy().ravel() for g in tape.gradient(q_mean, policy)])
    expected = down @ up / (np.linalg.norm(down) * np.linalg.norm(up))
    np.testing.assert_allclose(float(alignment[n]), expected, rtol=1e-6)
    assert abs(expected) > 1e-3


def test_annealing_moves_from_the_ddpg_gradient_to_the_objective():
  td3, objective, states, batches = small_population(seed=3)
  eta = list(objective.network.trainable_variables)
  state, batch = population.member(states, 0), population.member(batches, 0)
  inputs = td3.actor_inputs(state.policy, state.critic, batch)
  start = annealed_objective(objective, eta, 0.0)(inputs)["per_step"]
  end = annealed_objective(objective, eta, 1.0)(inputs)["per_step"]
  np.testing.assert_allclose(start.numpy(), -inputs["q_values"].numpy())
  np.testing.assert_allclose(end.numpy(), objective(inputs)["per_step"].numpy())


@pytest.mark.parametrize("learn_during_warmup, first_update, progress", [
    (False, 40, {0: 0.0, 39: 0.0, 40: 0.0, 45: 0.25, 60: 1.0, 100: 1.0}),  # the paper: after the random steps
    (True, 5, {0: 0.0, 10: 0.5, 20: 1.0, 39: 1.0})])  # the reference code: from the first segment
def test_updates_and_annealing_start_after_the_random_steps_or_with_them(learn_during_warmup, first_update, progress):
  from tf_metarl.algorithms.metagenrl import MetaGenRLProblem
  config = MetaGenRLConfig(envs=("Pendulum-v1",), sequence_length=5, warmup_steps=40, anneal_steps=20,
                           learn_during_warmup=learn_during_warmup)
  assert config.update_start() == first_update
  assert config.learner_settings()["learn_during_warmup"] == learn_during_warmup  # what a meta-tested agent runs
  problem = MetaGenRLProblem([], MetaGenRLObjective(units=4), config)
  for steps, weight in progress.items():
    np.testing.assert_allclose(float(problem._progress(tf.constant(steps, tf.int64))), weight, err_msg=str(steps))
  problem.warm_start_steps = 10  # recorded steps count toward the schedule
  np.testing.assert_allclose(float(problem._progress(tf.constant(35, tf.int64))), progress.get(45, 1.0))


@pytest.mark.parametrize("overrides, message", [
    (dict(num_agents=0), "num_agents must be >= 1"),
    (dict(num_agents=1), "2 training environments need at least as many agents"),
    (dict(inner_steps=0), "inner_steps \\(K\\) must be >= 1"),
    (dict(inner_steps=2, batch_size=100), "batch_size 100 must split into inner_steps \\+ 1 = 3 equal parts"),
    (dict(scalar_features=("reward",)), "unknown scalar feature\\(s\\) reward"),
    (dict(objective="ppo"), "objective must be one of learned, reinforce_offpolicy, td3, got 'ppo'"),
])
def test_bad_configs_are_one_line_errors(overrides, message):
  with pytest.raises(errors.ConfigError, match=message):
    MetaGenRLConfig(**overrides).validate()


@pytest.mark.slow
def test_a_population_update_with_the_learned_objective_is_one_vectorised_call():
  """TD3.update with L_α, vectorised over agents (the LSTM is unrolled for a static length, so pfor
  can vectorise the policy gradient through it), equals a loop of single updates."""
  td3, objective, states, batches = small_population(seed=4)
  eta = list(objective.network.trainable_variables)
  seeds = population.member_seeds(tf.constant([0, 1]), N)
  objective_fn = annealed_objective(objective, eta, 0.5)
  stacked, metrics = population.vectorize(lambda s, b, seed: td3.update(s, b, seed, objective_fn))(
      states._replace(updates=states.updates + 1), batches, seeds)  # updates = 2: the actor moves too
  for i in range(N):
    single, _ = td3.update(population.member(states._replace(updates=states.updates + 1), i),
                           population.member(batches, i), seeds[i], objective_fn)
    for a, b in zip(tf.nest.flatten(population.member(stacked, i)), tf.nest.flatten(single)):
      np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-7, atol=1e-9)
  assert np.all(np.isfinite(metrics["actor_loss"].numpy()))


@pytest.mark.slow
def test_meta_train_exports_an_objective_that_trains_an_agent_with_another_action_dimension(tmp_path):
  """The quick config end to end: meta-training on two 1-D-action environments writes a finite
  export whose metadata says `action_dim: null`, and (`--record`) one RLDS dataset per environment
  holding every step any agent took; train_agent then trains a fresh TD3 agent with the export on
  Hopper-v5 (3-D actions), from the export alone. The run uses the reference code's schedule
  (`learn_during_warmup`) with a warm-up longer than the run: every agent step is a random one, yet
  α and the agents train."""
  import json
  import os
  import subprocess
  import sys
  from tests.conftest import REPO
  from tests.test_recording import read_back
  from tf_metarl.export import load_metadata
  export, record = tmp_path / "export", tmp_path / "ds"
  result = subprocess.run([sys.executable, "-m", "tf_metarl.bin.meta_train", "--config=configs/metagenrl_quick.py",
                           "--config.steps=600", "--config.eval_every=0", "--config.metagenrl.warmup_steps=1000",
                           "--config.metagenrl.learn_during_warmup=True",
                           "--config.metagenrl.anneal_steps=100", f"--export={export}", f"--logdir={tmp_path / 'meta'}",
                           f"--record={record}", "--noplot"], capture_output=True, text=True, cwd=REPO, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  summary = json.loads(result.stdout.strip().splitlines()[-1])
  assert summary["env_steps"] == 600 and summary["skipped_updates"] == 0
  assert sorted(os.listdir(record)) == ["MountainCarContinuous-v0", "Pendulum-v1"]
  recorded = 0
  for env_id in ("Pendulum-v1", "MountainCarContinuous-v0"):
    data = read_back(record / env_id)
    assert data["run"]["env"] == env_id and data["run"]["method"] == "metagenrl"
    recorded += sum(e["n"] for e in data["episodes"])
  assert recorded == summary["env_steps"]
  # The ablation comparison reads the run's TensorBoard summaries (no episode has ended in 150 steps per agent).
  # The same run given twice as two seeds of one variant: one group, mean = the run's value, std 0.
  result = subprocess.run([sys.executable, "benchmarks/metagenrl_ablations.py",
                           f"--runs=quick@0:{tmp_path / 'meta'},quick@1:{tmp_path / 'meta'}",
                           f"--out={tmp_path / 'docs'}"], capture_output=True, text=True, cwd=REPO, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  comparison = json.loads((tmp_path / "docs" / "results" / "metagenrl_ablations.json").read_text())
  row = comparison["rows"]["quick@0"]
  assert row["env_steps"] == 600 and np.isfinite(row["meta_grad_norm"]) and row["future_policy_value"] != 0
  assert -1 <= row["objective_ddpg_alignment"] <= 1 and 0 <= row["policy_actions_at_bound"] <= 1
  assert list(comparison["groups"]) == ["quick"]
  assert comparison["groups"]["quick"]["meta_grad_norm"] == [pytest.approx(row["meta_grad_norm"]), 0.0, 2]
  metadata = load_metadata(summary["exported"])
  assert metadata["kind"] == "metagenrl" and metadata["constraints"]["action_dim"] is None
  assert metadata["training_config"]["metagenrl"]["envs"] == ["Pendulum-v1", "MountainCarContinuous-v0"]
  # The agents' settings travel with the export: segments of 10, batch 16, 64 × 64, layer norm.
  assert metadata["learner_settings"]["sequence_length"] == 10 and metadata["learner_settings"]["layer_norm"]
  assert metadata["learner_settings"]["learn_during_warmup"]
  result = subprocess.run([sys.executable, "-m", "tf_metarl.bin.train_agent", "--config=configs/train_agent.py:td3",
                           f"--objective={summary['exported']}", "--env=Hopper-v5", "--config.steps=600",
                           "--config.off_policy.warmup_steps=300", "--config.eval_every=600",
                           "--config.eval_episodes=1", f"--logdir={tmp_path / 'test'}", "--noplot"],
                          capture_output=True, text=True, cwd=REPO, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  test = json.loads(result.stdout.strip().splitlines()[-1])
  assert test["objective_kind"] == "saved_model:metagenrl" and test["env_steps"] == 600
  assert test["final_eval_return"] is not None and np.isfinite(test["final_eval_return"])
  # Resolved settings in the logdir: the export's, except warmup_steps, which the command line set.
  resolved = json.loads((tmp_path / "test" / "config.json").read_text())["off_policy"]
  assert (resolved["sequence_length"], resolved["batch_size"], resolved["hidden_sizes"]) == (10, 16, [64, 64])
  assert resolved["layer_norm"] and resolved["max_grad_norm"] == 1.0 and resolved["warmup_steps"] == 300
  assert resolved["learn_during_warmup"]


@pytest.mark.slow
def test_meta_training_on_a_contextual_bandit_learns_an_objective_that_improves_the_policies(tmp_path):
  """The method's learning check, on the environment where its signal is clean
  (`tf_metarl/ContextualBandit-v0`: a random policy scores about −11 per 20-step episode, the best
  one 0). metagenrl_quick's population, 3k steps per agent: 500 random steps and 500 annealing
  from the DDPG gradient, then 2k steps with L_α alone. Measured with this command (session 19,
  docs/RESULTS.md): the meta-learned L_α is at −1.1 over the last 100 episodes (the same seed's
  20k-step run at 12k steps); with α frozen at its initialisation (objective_learning_rate=1e-12)
  it ends at −3.6; with the meta-loss's sign flipped (`MetaGenRLProblem.meta_loss`) at −21.8, and
  this test failed."""
  import json
  import subprocess
  import sys
  from tests.conftest import REPO
  result = subprocess.run([sys.executable, "-m", "tf_metarl.bin.meta_train", "--config=configs/metagenrl_quick.py",
                           "--config.metagenrl.envs=('tf_metarl/ContextualBandit-v0',)", "--config.steps=12000",
                           "--config.eval_every=0", "--config.checkpoint_every=0", f"--logdir={tmp_path}", "--noplot"],
                          capture_output=True, text=True, cwd=REPO, timeout=900)
  assert result.returncode == 0, result.stderr[-3000:]
  summary = json.loads(result.stdout.strip().splitlines()[-1])
  assert summary["env_steps"] == 12000 and summary["skipped_updates"] == 0
  assert summary["train_return_last100"] > -2.5, summary


@pytest.mark.slow
def test_meta_training_moves_alpha_and_resumes_with_its_replays(tmp_path):
  from tf_metarl.algorithms.metagenrl import MetaGenRLTrainer
  from tf_metarl.learners.loop import RunSettings, run_training
  config = MetaGenRLConfig(envs=("Pendulum-v1", "MountainCarContinuous-v0"), num_agents=2, hidden_sizes=(16,),
                           batch_size=4, sequence_length=5, warmup_steps=20, anneal_steps=20, replay_capacity=500,
                           objective_units=4)
  settings = RunSettings(checkpoint_every=40, checkpoint_every_seconds=0, log_every_seconds=60)
  trainer = MetaGenRLTrainer(config, seed=0)
  alpha = [v.numpy().copy() for v in trainer.objective_model.network.trainable_variables]
  run_training(trainer, 80, str(tmp_path), {"run": "metagenrl"}, settings)
  assert any(np.any(a != b.numpy()) for a, b in zip(alpha, trainer.objective_model.network.trainable_variables))
  sizes = [g.replay.size for g in trainer.problem.groups]
  assert sizes == [40, 40]  # 80 steps over 2 agents
  metrics, _ = trainer.iteration()  # past warm-up: every loss TensorBoard shows is a number
  for name in ("critic_loss", "policy_objective_loss", "future_policy_value", "meta_grad_norm",
               "meta/objective_ddpg_alignment", "meta/policy_actions_at_bound"):
    assert np.isfinite(metrics[name]), (name, metrics)
  resumed = MetaGenRLTrainer(config, seed=0)
  summary = run_training(resumed, 120, str(tmp_path), {"run": "metagenrl"}, settings)
  assert summary["resumed_from"] == 80 and summary["env_steps"] == 120
  assert [g.replay.size for g in resumed.problem.groups] == [60, 60]  # restored 40, then 20 more each
  for a, b in zip(trainer.objective_model.network.trainable_variables[:1],
                  resumed.objective_model.network.trainable_variables[:1]):
    assert not np.array_equal(a.numpy(), b.numpy())  # it kept training from the restored α


@pytest.mark.slow
def test_a_fixed_objective_population_is_the_baseline_and_meta_learns_nothing(tmp_path):
  from tf_metarl.algorithms.metagenrl import MetaGenRLTrainer
  from tf_metarl.learners.loop import fit
  config = MetaGenRLConfig(envs=("Pendulum-v1",), num_agents=2, hidden_sizes=(16,), batch_size=4, sequence_length=5,
                           warmup_steps=10, replay_capacity=200, objective_units=4, objective="reinforce_offpolicy")
  trainer = MetaGenRLTrainer(config, seed=0)
  before = [x.numpy().copy() for x in tf.nest.flatten(trainer.state.read().groups[0].policy)]
  fit(trainer, 60)
  after = tf.nest.flatten(trainer.state.read().groups[0].policy)
  assert any(np.any(a != b.numpy()) for a, b in zip(before, after))  # the policies trained
  assert trainer.eta.leaves == []
  with pytest.raises(errors.ConfigError, match="nothing meta-learned to export"):
    trainer.objective()


@pytest.mark.slow
def test_asynchronous_copies_step_beside_the_update_and_store_the_same_warm_up():
  """`async_envs`: the copies step in worker processes while the update runs. During warm-up (uniform
  random actions from the same stateless seeds) the replays hold exactly what synchronous copies
  store; past it, the population keeps training (the replay grows by one step per agent per step)."""
  from tf_metarl.algorithms.metagenrl import MetaGenRLTrainer
  from tf_metarl.learners.loop import fit
  replays = {}
  for async_envs in (False, True):
    # Warm-up as long as a segment: the first update samples a replay of exactly one segment.
    config = MetaGenRLConfig(envs=("Pendulum-v1",), num_agents=2, hidden_sizes=(8,), batch_size=2, sequence_length=12,
                             warmup_steps=12, anneal_steps=4, replay_capacity=100, objective_units=4,
                             async_envs=async_envs)
    trainer = MetaGenRLTrainer(config, seed=0)
    group = trainer.problem.groups[0]
    assert isinstance(group.collector.env, gym.vector.AsyncVectorEnv) == async_envs
    fit(trainer, 24)  # 12 steps per agent: all warm-up
    replays[async_envs] = {k: v.numpy() for k, v in group.replay.buffers.items()}
    if async_envs:
      metrics, _ = trainer.iteration()  # past warm-up: TD3 and the meta-update run while the copies step
      assert np.isfinite(metrics["meta_grad_norm"]) and np.isfinite(metrics["critic_loss"])
      assert group.replay.size == 14
      group.collector.env.close()
  for name, expected in replays[False].items():
    np.testing.assert_array_equal(replays[True][name], expected, err_msg=name)


def test_meta_training_can_start_from_an_exported_objective(tmp_path):
  """`objective_init`: α starts at an export's values (matched by object path, not by order), and
  an export that does not fit (other units, other scalar features) or a fixed objective is refused."""
  from tf_metarl.algorithms.metagenrl import MetaGenRLTrainer
  from tf_metarl.export import export_objective, restore_parameters
  from tf_metarl.objectives.metagenrl import MetaGenRLObjective
  source = MetaGenRLObjective(units=4)
  for k, v in enumerate(source.network.trainable_variables):  # distinct values everywhere, none an initialiser's
    v.assign(np.random.default_rng(k).normal(size=v.shape).astype(np.float32))
  path = export_objective(source, str(tmp_path / "export"))
  config = MetaGenRLConfig(envs=("Pendulum-v1",), num_agents=1, hidden_sizes=(8,), batch_size=4, sequence_length=5,
                           warmup_steps=10, replay_capacity=100, objective_units=4)
  started = MetaGenRLTrainer(dataclasses.replace(config, objective_init=str(tmp_path / "export")), seed=0)
  for want, got in zip(source.network.trainable_variables, started.eta.read()):
    np.testing.assert_array_equal(got.numpy(), want.numpy())
  with pytest.raises(errors.ConfigError, match="hyperparameters"):
    restore_parameters(MetaGenRLObjective(units=8), path)
  with pytest.raises(errors.ConfigError, match="hyperparameters"):
    restore_parameters(MetaGenRLObjective(scalar_features=("rewards",), units=4), path)
  with pytest.raises(errors.ConfigError, match="a 'ppo' objective cannot initialise a 'metagenrl' one"):
    restore_parameters(MetaGenRLObjective(units=4), "export/ppo")
  with pytest.raises(errors.ConfigError, match="fixed objective"):
    dataclasses.replace(config, objective="td3", objective_init=path).validate()
