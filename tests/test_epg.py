"""Evolved Policy Gradients: the learned loss L_φ, the policy's memory unit and the inputs the agent
gives the loss."""
import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import run_tensorflow_only
from tf_metarl import errors
from tf_metarl.agents.actor_critic import ActorCritic
from tf_metarl.agents.optimizers import Adam
from tf_metarl.networks.critics import ValueCritic
from tf_metarl.networks.functional import functional_call
from tf_metarl.networks.normalization import RunningNormalizer
from tf_metarl.networks.policies import CategoricalPolicy, GaussianPolicy
from tf_metarl.objectives.epg import RECEPTIVE_FIELD, EPGObjective
from tf_metarl.trajectories import Trajectory


def buffer_inputs(batch=2, steps=64, obs_dim=3, action_dim=1, memory=32, seed=0, rewards=False):
  rng = np.random.default_rng(seed)
  f = lambda *shape: tf.constant(rng.normal(size=shape), tf.float32)
  inputs = {"observations": f(batch, steps, obs_dim), "behaviour_actions": f(batch, steps, action_dim),
            "episode_ends": tf.constant((rng.uniform(size=(batch, steps)) < 0.05).astype(np.float32)),
            "policy_outputs": f(batch, steps, 2 * action_dim), "memory": f(batch, steps, memory)}
  if rewards:
    inputs["rewards"] = f(batch, steps)
  return inputs


def with_changed(inputs, name, index, delta=1.0):
  value = inputs[name].numpy().copy()
  value[index] += delta
  return dict(inputs, **{name: tf.constant(value)})


def test_the_loss_scores_each_sample_from_itself_and_a_context_of_the_whole_buffer():
  objective = EPGObjective(3, action_dim=1, loss_window=16)
  inputs = buffer_inputs()
  per_sample = objective(inputs)["per_step"].numpy()
  assert per_sample.shape == (2, 64)
  np.testing.assert_allclose(float(objective(inputs)["loss"]), per_sample[:, -16:].mean(), rtol=1e-5, atol=1e-6)
  # The first sample reaches the last one's loss only through the context (the convolutions).
  changed = objective(with_changed(inputs, "observations", (0, 0, 0)))["per_step"].numpy()
  assert abs(changed[0, -1] - per_sample[0, -1]) > 1e-6
  np.testing.assert_array_equal(changed[1], per_sample[1])  # buffers are independent
  # A sample's own features reach its score through the head.
  own = objective(with_changed(inputs, "memory", (0, 40, 0)))["per_step"].numpy()
  assert abs(own[0, 40] - per_sample[0, 40]) > 1e-6


def test_rewards_reach_the_loss_only_in_the_forward_backward_variant():
  inputs = buffer_inputs(rewards=True)
  plain = EPGObjective(3, action_dim=1)
  assert "rewards" not in plain.input_names
  same = plain(with_changed(inputs, "rewards", (0, slice(None)), 5.0))["per_step"].numpy()
  np.testing.assert_array_equal(same, plain(inputs)["per_step"].numpy())
  forward_backward = EPGObjective(3, action_dim=1, reward_input=True)
  moved = forward_backward(with_changed(inputs, "rewards", (0, slice(None)), 5.0))["per_step"].numpy()
  assert np.abs(moved[0] - forward_backward(inputs)["per_step"].numpy()[0]).max() > 1e-4


def test_a_buffer_shorter_than_the_receptive_field_is_a_one_line_error():
  objective = EPGObjective(3, action_dim=1)
  objective(buffer_inputs(steps=RECEPTIVE_FIELD))
  with pytest.raises(errors.ObjectiveInputError, match="receptive field of 29"):
    objective(buffer_inputs(steps=RECEPTIVE_FIELD - 1))
  with pytest.raises(errors.ConfigError, match="exactly one"):
    EPGObjective(3, num_actions=2, action_dim=1)


def test_explicit_parameters_give_the_models_answer_and_perturbations_change_it():
  objective = EPGObjective(3, action_dim=1)
  inputs = buffer_inputs()
  phi = [tf.convert_to_tensor(v) for v in objective.network.trainable_variables]
  np.testing.assert_allclose(objective.per_sample(inputs, phi).numpy(), objective(inputs)["per_step"].numpy(),
                             rtol=1e-6)
  perturbed = [p + 0.1 * tf.random.stateless_normal(tf.shape(p), [i, 0]) for i, p in enumerate(phi)]
  assert np.abs(objective.per_sample(inputs, perturbed).numpy() - objective(inputs)["per_step"].numpy()).max() > 1e-3


def test_running_normalisation_matches_the_statistics_of_everything_seen():
  normalizer = RunningNormalizer(3)
  rng = np.random.default_rng(1)
  batches = [rng.normal(2.0, 3.0, size=(n, 3)) for n in (5, 17, 40)]
  x = tf.constant(rng.normal(size=(4, 3)), tf.float32)
  np.testing.assert_allclose(normalizer(x).numpy(), x.numpy(), rtol=1e-6)  # the identity before any update
  for b in batches:
    normalizer.update(tf.constant(b, tf.float32))
  everything = np.concatenate(batches)
  np.testing.assert_allclose(normalizer.mean.numpy(), everything.mean(0), rtol=1e-5)
  np.testing.assert_allclose(normalizer.variance.numpy(), everything.var(0), rtol=1e-4)
  assert normalizer.trainable_variables == []


@pytest.mark.parametrize("discrete", [True, False])
def test_the_agent_feeds_the_loss_its_distribution_memory_and_one_hot_actions_and_the_loss_trains_both(discrete):
  obs_dim, steps = 3, 40
  policy = (CategoricalPolicy(obs_dim, 2, (16,), memory_units=32) if discrete
            else GaussianPolicy(obs_dim, 1, (16,), memory_units=32))
  agent = ActorCritic(policy, ValueCritic(obs_dim, (16,)), Adam(1e-3))
  state = agent.init()
  rng = np.random.default_rng(0)
  actions = (rng.integers(0, 2, size=(2, steps)).astype(np.int32) if discrete
             else rng.normal(size=(2, steps, 1)).astype(np.float32))
  zeros = tf.zeros([2, steps])
  batch = Trajectory(observations=tf.constant(rng.normal(size=(2, steps, obs_dim)), tf.float32),
                     actions=tf.constant(actions), rewards=zeros,
                     next_observations=tf.constant(rng.normal(size=(2, steps, obs_dim)), tf.float32),
                     terminated=zeros, truncated=zeros, policy_outputs=tf.zeros([2, steps, 2]), log_probs=zeros,
                     episode_steps=zeros)
  inputs = agent.objective_inputs(state.policy, state.critic, batch)
  if discrete:
    np.testing.assert_array_equal(inputs["behaviour_actions"].numpy(), np.eye(2)[actions])
    np.testing.assert_allclose(inputs["policy_outputs"].numpy().sum(-1), 1.0, rtol=1e-6)
  assert inputs["memory"].shape == (2, steps, 32)
  np.testing.assert_array_equal(inputs["memory"].numpy()[1, 5], inputs["memory"].numpy()[0, 0])
  # The memory unit never changes actions: the policy's outputs ignore it.
  outputs = agent.policy_outputs(state.policy, batch.observations)
  memory_index = [i for i, v in enumerate(policy.trainable_variables) if "memory" in v.path]
  assert len(memory_index) == 2
  moved = [p + 1.0 if i in memory_index else p for i, p in enumerate(state.policy)]
  np.testing.assert_array_equal(agent.policy_outputs(moved, batch.observations).numpy(), outputs.numpy())
  objective = EPGObjective(obs_dim, num_actions=2 if discrete else None, action_dim=None if discrete else 1)
  new_state, _ = agent.update(state, batch, objective)
  for i, (before, after) in enumerate(zip(state.policy, new_state.policy)):
    assert np.abs(before.numpy() - after.numpy()).max() > 0, policy.trainable_variables[i].path  # torso, head, memory
  with tf.GradientTape() as tape:
    tape.watch(state.policy)
    loss = objective(agent.objective_inputs(state.policy, state.critic, batch))["loss"]
  grads = tape.gradient(loss, state.policy)
  memory_grads = [grads[i] for i in memory_index]
  assert all(float(tf.norm(g)) > 0 for g in memory_grads)
  no_memory = functional_call(policy, state.policy, batch.observations)
  np.testing.assert_array_equal(no_memory.numpy(), outputs.numpy())


def test_framed_convolution_equals_keras_conv1d():
  import keras
  from tf_metarl.objectives.epg import FramedConv1D
  x = tf.random.stateless_normal([3, 64, 5], [0, 1])
  framed = FramedConv1D(8, 8, 7)
  reference = keras.layers.Conv1D(8, 8, strides=7)
  framed(x), reference(x)
  reference.kernel.assign(framed.kernel), reference.bias.assign(tf.random.stateless_normal([8], [2, 3]))
  framed.bias.assign(reference.bias)
  np.testing.assert_allclose(framed(x).numpy(), reference(x).numpy(), rtol=1e-5, atol=1e-5)


# --- the inner trainings and their fitness -----------------------------------------------------
from tf_metarl.algorithms import epg  # noqa: E402


def test_the_fitness_is_the_last_return_plus_the_rank_weighted_mean_of_all_returns():
  rng = np.random.default_rng(0)
  runs, steps = 3, 60
  finished = (rng.uniform(size=(2 * steps, runs)) < 0.15).astype(np.float32)
  finished[:, 2] = 0.0  # a run whose episodes never end
  returns = rng.normal(size=(2 * steps, runs)).astype(np.float32) * finished
  count = weighted = last = tf.zeros([runs])
  for half in (slice(0, steps), slice(steps, 2 * steps)):  # two collections, accumulated
    count, weighted, last = epg.episode_fitness(tf.constant(returns[half]), tf.constant(finished[half]),
                                                count, weighted, last)
  fitness = epg.fitness_from(count, weighted, last).numpy()
  for run in range(runs):
    r = returns[finished[:, run] > 0, run]
    k = len(r)
    want = r[-1] + sum((i + 1) / k * r[i] for i in range(k)) / k if k else 0.0
    assert abs(fitness[run] - want) < 1e-4, run
  assert fitness[2] == 0.0 and count.numpy()[2] == 0


def test_the_ppo_weight_falls_from_one_to_zero_over_the_annealing_epochs():
  assert [round(float(epg.ppo_weight(e, 4)), 3) for e in (0, 1, 2, 4, 9)] == [1.0, 0.75, 0.5, 0.0, 0.0]
  assert float(epg.ppo_weight(0, 0)) == 0.0


def small_epg_config(**overrides):
  values = dict(updates=2, update_every=32, buffer_size=32, population=2, runs_per_member=2, hidden_sizes=(16,),
                ppo_anneal_epochs=0, max_episode_steps=20)
  values.update(overrides)
  return epg.EPGConfig(**values)


@pytest.fixture(scope="module")
def small_trainer():
  return epg.EPGTrainer(small_epg_config(), seed=0)


@pytest.mark.slow
def test_members_share_agents_tasks_and_noise_and_lose_minus_their_mean_fitness(small_trainer):
  problem, objective = small_trainer.problem, small_trainer.objective()
  phi = [tf.convert_to_tensor(v) for v in objective.network.trainable_variables]
  count_before = float(objective.normalizer.count.numpy())
  evaluate = tf.function(lambda stacked: problem.population_losses(stacked, epg.EPGState(tf.constant(0, tf.int64)),
                                                                  tf.constant([3, 4])))
  same = [tf.stack([p, p]) for p in phi]
  losses, state, metrics = evaluate(same)
  assert float(metrics["epg/episodes_per_run"]) == 3  # 64 steps of 20-step episodes
  assert losses.shape == (2,) and float(losses[0]) == float(losses[1])  # common random numbers
  np.testing.assert_allclose(losses.numpy(), -metrics["epg/run_fitness"].numpy().reshape(2, 2).mean(1), rtol=1e-6)
  assert int(metrics["env_steps"]) == 2 * 2 * 2 * 32 and int(state.epoch) == 1
  assert float(objective.normalizer.count.numpy()) - count_before == 2 * 2 * 2 * 32  # the epoch's inputs, once
  apart = [tf.stack([p, p + 0.5 * tf.random.stateless_normal(tf.shape(p), [i, 9])]) for i, p in enumerate(phi)]
  losses, _, _ = evaluate(apart)
  assert float(losses[0]) != float(losses[1])


@pytest.mark.slow
def test_without_the_ppo_term_no_reward_reaches_the_agents_update(small_trainer):
  problem = small_trainer.problem
  agents = problem.fresh_agents(tf.constant([1, 1]), 2)
  state = problem.task.reset(tf.constant([2, 2]), 2)
  _, trajectory, _ = problem.task.rollout(state, problem._act_fn(2), agents.policy, tf.constant([5, 5]), 32)
  phi = [tf.stack([tf.convert_to_tensor(v)] * 2) for v in small_trainer.objective().network.trainable_variables]
  scrambled = trajectory._replace(rewards=tf.random.stateless_normal(tf.shape(trajectory.rewards), [6, 6]))
  update = tf.function(problem._update)
  updated, _ = update(agents, trajectory, phi, tf.constant(0.0))
  again, _ = update(agents, scrambled, phi, tf.constant(0.0))
  for a, b, before in zip(updated.policy, again.policy, agents.policy):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  assert any(np.abs(a.numpy() - b.numpy()).max() > 0 for a, b in zip(updated.policy, agents.policy))
  with_ppo, _ = update(agents, scrambled, phi, tf.constant(0.5))  # the PPO term reads rewards
  assert any(np.abs(a.numpy() - b.numpy()).max() > 0 for a, b in zip(updated.policy, with_ppo.policy))


@pytest.mark.slow
def test_an_es_epoch_moves_phi_and_the_meta_test_trains_fresh_agents_without_rewards():
  trainer = epg.EPGTrainer(small_epg_config(), seed=1)
  before = [v.numpy().copy() for v in trainer.objective().network.trainable_variables]
  metrics, stats = trainer.iteration()
  after = trainer.objective().network.trainable_variables
  assert any(np.abs(a - b.numpy()).max() > 0 for a, b in zip(before, after))
  assert int(trainer.env_steps.numpy()) == 2 * 2 * 2 * 32 and np.isfinite(metrics["epg/fitness"])
  assert len(stats.returns) == 4  # each run's last episode
  returns = trainer.evaluate(3)
  assert len(returns) == 3 and all(np.isfinite(returns))
  assert len(trainer.evaluate(2)) == 2  # another number of runs, another compiled meta-test


@pytest.mark.slow
def test_an_xla_compiled_es_epoch_trains_the_same_population_and_steps_phi():
  # XLA draws other numbers from the same stateless seeds (compilation.py), so the two epochs are two
  # samples of one epoch: equal step counts, fitness of the same size, φ moved by an ES step of the same size.
  results = {}
  initial = [v.numpy() for v in epg.build_objective(small_epg_config(), 3).network.trainable_variables]
  for jit in (False, True):
    trainer = epg.EPGTrainer(small_epg_config(jit_compile=jit), seed=3)
    assert trainer._step._jit_compile == jit  # pylint: disable=protected-access
    metrics, _ = trainer.iteration()
    step = np.sqrt(sum(np.sum((v.numpy() - w) ** 2)
                       for v, w in zip(trainer.objective().network.trainable_variables, initial)))
    results[jit] = (metrics["epg/fitness"], step, int(trainer.env_steps.numpy()))
    returns = trainer.evaluate(2)  # the meta-test, compiled as the epoch
    assert len(returns) == 2 and np.all(np.isfinite(returns))
    assert trainer.problem._meta_test_graphs[(2, False)]._jit_compile == jit  # pylint: disable=protected-access
  (plain_fitness, plain_step, plain_steps), (xla_fitness, xla_step, xla_steps) = results[False], results[True]
  assert xla_steps == plain_steps == 2 * 2 * 2 * 32
  assert np.isfinite(xla_fitness) and abs(xla_fitness - plain_fitness) < 0.5 * abs(plain_fitness)
  assert plain_step > 1e-4 and 0.5 < xla_step / plain_step < 2.0


@pytest.mark.parametrize("values, message", [
    (dict(sigma=0.0), "sigma must be > 0"),
    (dict(jit_compile=True, backend="ray", env="Pendulum-v1"), "jit_compile applies to the in-graph path"),
    (dict(population=1, antithetic=True), "population must be >= 2"),
    (dict(buffer_size=16, update_every=16), "receptive field"),
    (dict(buffer_size=32, update_every=64), "must be >= epg.update_every"),
    (dict(env="Pendulum-v1"), "TensorFlow-native"),
])
def test_epg_settings_that_cannot_work_are_one_line_errors(values, message):
  with pytest.raises(errors.ConfigError, match=message):
    small_epg_config(**values).validate()


@pytest.mark.slow
def test_an_exported_loss_keeps_its_statistics_and_a_tensorflow_only_process_calls_and_differentiates_it(tmp_path):
  from tf_metarl.export import export_objective
  objective = EPGObjective(3, action_dim=1, loss_window=32)
  objective.normalizer.update(tf.random.stateless_normal([500, objective.normalizer.size], [1, 1]) * 3.0 + 2.0)
  inputs = buffer_inputs(steps=40, seed=4)
  with tf.GradientTape() as tape:
    tape.watch(inputs["policy_outputs"])
    want = objective(inputs)["loss"]
  want_grad = tape.gradient(want, inputs["policy_outputs"]).numpy()
  path = export_objective(objective, str(tmp_path / "epg"))
  np.save(tmp_path / "inputs.npy", {k: v.numpy() for k, v in inputs.items()})
  script = (
      "import json, sys, numpy as np, tensorflow as tf\n"
      "inputs = {k: tf.constant(v) for k, v in np.load(sys.argv[2], allow_pickle=True).item().items()}\n"
      "model = tf.saved_model.load(sys.argv[1])\n"
      "loss = model.signatures['serving_default']\n"
      "with tf.GradientTape() as tape:\n"
      "  tape.watch(inputs['policy_outputs'])\n"
      "  value = loss(**inputs)['loss']\n"
      "grad = tape.gradient(value, inputs['policy_outputs'])\n"
      "print(json.dumps({'loss': float(value), 'grad': grad.numpy().tolist()}))\n")
  answer = run_tensorflow_only(script, path, tmp_path / "inputs.npy")
  np.testing.assert_allclose(answer["loss"], float(want), rtol=1e-5)
  np.testing.assert_allclose(np.array(answer["grad"]), want_grad, rtol=1e-4, atol=1e-7)
  assert np.abs(want_grad).max() > 0
  fresh = EPGObjective(3, action_dim=1, loss_window=32)  # the same φ with identity statistics answers otherwise
  for a, b in zip(fresh.network.trainable_variables, objective.network.trainable_variables):
    a.assign(b)
  assert abs(float(fresh(inputs)["loss"]) - float(want)) > 1e-4


@pytest.mark.slow
def test_each_update_reports_the_kl_from_the_policy_before_it_to_the_one_after():
  """One update on a buffer of exactly one collection: its KL is KL(π_fresh ‖ π_updated) averaged
  over the collected states, recomputed here from the agents and the collection."""
  trainer = epg.EPGTrainer(small_epg_config(updates=1), seed=2)
  problem = trainer.problem
  phi = [tf.convert_to_tensor(v)[None] for v in trainer.objective().network.trainable_variables]
  seed = tf.constant([4, 5])
  results = tf.function(lambda s: problem.train_population(phi, 2, tf.constant(0.0), s, problem.task))(seed)
  agent_seed, env_seed, loop_seed = tf.unstack(tf.random.experimental.stateless_split(seed, num=3))
  fresh = problem.fresh_agents(agent_seed, 2)
  _, trajectory, _ = problem.task.rollout(problem.task.reset(env_seed, 2), problem._act_fn(2), fresh.policy,
                                          tf.random.experimental.stateless_fold_in(loop_seed, 0), 32)
  want = []
  for run in range(2):
    pick = lambda params: [p[run] for p in params]
    before = problem.policy.distribution(problem.agent.policy_outputs(pick(fresh.policy), trajectory.observations[run]))
    after = problem.policy.distribution(problem.agent.policy_outputs(pick(results.agents.policy),
                                                                     trajectory.observations[run]))
    want.append(float(tf.reduce_mean(before.kl_divergence(after))))
  np.testing.assert_allclose(results.policy_kl.numpy()[0], want, rtol=1e-4)
  assert min(want) > 0


def test_sigma_decays_per_epoch_to_its_floor_and_the_papers_preset_steps_by_sgd():
  trainer = epg.EPGTrainer(small_epg_config(sigma=0.01, sigma_decay=0.5, sigma_min=0.002, meta_optimizer="sgd"), 0)
  scales = [float(trainer.problem.perturbation_scale(epg.EPGState(tf.constant(k, tf.int64)))) for k in range(4)]
  np.testing.assert_allclose(scales, [1.0, 0.5, 0.25, 0.2])
  from tf_metarl.agents.optimizers import SGD
  assert isinstance(trainer.meta_optimizer, SGD) and trainer.meta_optimizer.learning_rate == 1e-2
  with pytest.raises(errors.ConfigError, match="sigma_decay must be in"):
    small_epg_config(sigma_decay=1.5).validate()
  with pytest.raises(errors.ConfigError, match="meta_optimizer must be one of adam, sgd"):
    small_epg_config(meta_optimizer="rmsprop").validate()
