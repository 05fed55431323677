"""Shipped tf_metarl exports (written with TF 2.21) train TF-Agents agents under TF 2.15."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from tf_agents.agents.ddpg import actor_network, critic_network
from tf_agents.drivers import dynamic_step_driver
from tf_agents.environments import suite_gym, tf_py_environment
from tf_agents.networks import actor_distribution_network, value_network
from tf_agents.replay_buffers import tf_uniform_replay_buffer

from conftest import REPO
from tf_metarl.interop import tf_agents_adapter as adapter

METAGENRL = os.path.join(REPO, "export", "metagenrl_lunar_cheetah")
PPO = os.path.join(REPO, "export", "ppo")
EPG = os.path.join(REPO, "export", "epg_random_pendulum")


def td3_agent(env, objective=METAGENRL, episode_step_limit=200):
  actor = actor_network.ActorNetwork(env.observation_spec(), env.action_spec(), fc_layer_params=(64, 64))
  critic = critic_network.CriticNetwork((env.observation_spec(), env.action_spec()), joint_fc_layer_params=(64, 64))
  agent = adapter.LearnedObjectiveTd3Agent(
      env.time_step_spec(), env.action_spec(), actor, critic, tf.keras.optimizers.Adam(1e-3),
      tf.keras.optimizers.Adam(1e-3), objective=objective, episode_step_limit=episode_step_limit,
      train_step_counter=tf.Variable(0, dtype=tf.int64))
  agent.initialize()
  return agent


def ppo_agent(env, objective=PPO):
  actor = actor_distribution_network.ActorDistributionNetwork(env.observation_spec(), env.action_spec(),
                                                               fc_layer_params=(64, 64))
  critic = value_network.ValueNetwork(env.observation_spec(), fc_layer_params=(64, 64))
  agent = adapter.LearnedObjectivePPOAgent(
      env.time_step_spec(), env.action_spec(), objective=objective, optimizer=tf.keras.optimizers.Adam(3e-4),
      actor_net=actor, value_net=critic, num_epochs=2, train_step_counter=tf.Variable(0, dtype=tf.int64))
  agent.initialize()
  return agent


def collect(env, agent, buffer, steps):
  driver = dynamic_step_driver.DynamicStepDriver(env, agent.collect_policy, observers=[buffer.add_batch],
                                                 num_steps=steps)
  tf.function(driver.run)()


def gym_env(name, **kwargs):
  return tf_py_environment.TFPyEnvironment(suite_gym.load(name, **kwargs))


def flat_gradient_norm(grads):
  return float(tf.linalg.global_norm([g for g in grads if g is not None]))


def test_td3_inputs_follow_episodes():
  """Step counts, time, episode ends, discounts and weights on a known episode layout."""
  episode_limit = 5
  env = gym_env("Pendulum-v1", max_episode_steps=episode_limit)
  agent = td3_agent(env, episode_step_limit=episode_limit)
  buffer = tf_uniform_replay_buffer.TFUniformReplayBuffer(agent.collect_data_spec, batch_size=1, max_length=100)
  collect(env, agent, buffer, 14)
  experience = buffer.gather_all()
  # 14 steps: episodes of 5 actions, each followed by its between-episode LAST step (not counted).
  step_types = experience.step_type.numpy()[0]
  assert step_types.tolist() == [0, 1, 1, 1, 1, 2] * 2 + [0, 1, 1, 1]
  steps = experience.policy_info["episode_step"].numpy()[0]
  assert steps[:5].tolist() == [0, 1, 2, 3, 4] and steps[6:11].tolist() == [0, 1, 2, 3, 4]
  captured = {}

  def probe(inputs):
    captured.update({k: v for k, v in inputs.items()})
    return tf.reduce_sum(inputs["actions"], axis=-1)  # per_step: its gradient reaches the actor

  agent._objective.per_step = probe
  time_steps, policy_steps, next_time_steps = agent._as_transition(experience)
  valid = tf.cast(~time_steps.is_last(), tf.float32)
  with tf.GradientTape() as tape:
    loss = agent.actor_loss(time_steps, valid, behaviour_actions=policy_steps.action, next_time_steps=next_time_steps,
                            episode_steps=policy_steps.info["episode_step"])
  grads = tape.gradient(loss, agent._actor_network.trainable_variables)
  assert flat_gradient_norm(grads) > 0
  ends = captured["episode_ends"].numpy()[0]
  # transitions t = 0..14: the step before LAST ends the episode (t = 4), so does the LAST step (t = 5).
  expected_ends = np.isin(np.arange(15), [4, 5, 10, 11]).astype(np.float32)
  np.testing.assert_array_equal(ends, expected_ends)
  np.testing.assert_allclose(captured["time"].numpy()[0][:5], np.arange(5) / episode_limit)
  np.testing.assert_array_equal(captured["discounts"].numpy()[0][:5], 1.0)  # truncation keeps discount 1
  np.testing.assert_array_equal(valid.numpy()[0], 1.0 - np.isin(np.arange(15), [5, 11]))
  np.testing.assert_allclose(captured["behaviour_actions"].numpy(), experience.action.numpy()[:, :-1])
  # `values` is Q1(s, π(s)) held constant: no gradient reaches the actor through it.
  with tf.GradientTape() as tape:
    agent.actor_loss(time_steps, valid, behaviour_actions=policy_steps.action, next_time_steps=next_time_steps,
                     episode_steps=policy_steps.info["episode_step"])
    values = captured["values"]
  assert tape.gradient(values, agent._actor_network.trainable_variables)[0] is None


def test_metagenrl_export_trains_a_tf_agents_td3_agent():
  env = gym_env("Pendulum-v1")
  agent = td3_agent(env)
  buffer = tf_uniform_replay_buffer.TFUniformReplayBuffer(agent.collect_data_spec, batch_size=1, max_length=5000)
  collect(env, agent, buffer, 300)
  dataset = buffer.as_dataset(sample_batch_size=8, num_steps=21).prefetch(2)
  iterator = iter(dataset)
  train = tf.function(agent.train)
  actor_before = [v.numpy() for v in agent._actor_network.trainable_variables]
  driver = dynamic_step_driver.DynamicStepDriver(env, agent.collect_policy, observers=[buffer.add_batch], num_steps=8)
  driver.run = tf.function(driver.run)
  losses = []
  for _ in range(250):  # 2,000 more environment steps, a TD3 update every 8
    driver.run()
    experience, _ = next(iterator)
    losses.append(train(experience))
  assert all(np.isfinite(float(l.loss)) for l in losses)
  experience, _ = next(iterator)
  time_steps, policy_steps, next_time_steps = agent._as_transition(experience)
  with tf.GradientTape() as tape:
    loss = agent.actor_loss(time_steps, tf.cast(~time_steps.is_last(), tf.float32), training=True,
                            behaviour_actions=policy_steps.action, next_time_steps=next_time_steps,
                            episode_steps=policy_steps.info["episode_step"])
  grads = tape.gradient(loss, agent._actor_network.trainable_variables)
  assert all(np.all(np.isfinite(g.numpy())) for g in grads)
  assert flat_gradient_norm(grads) > 0
  moved = [np.abs(b - v.numpy()).max() for b, v in zip(actor_before, agent._actor_network.trainable_variables)]
  assert max(moved) > 0


def test_ppo_export_trains_a_tf_agents_ppo_agent():
  env = gym_env("CartPole-v1")
  agent = ppo_agent(env)
  buffer = tf_uniform_replay_buffer.TFUniformReplayBuffer(agent.collect_data_spec, batch_size=1, max_length=512)
  train = tf.function(agent.train)
  variables = agent._actor_net.trainable_variables + agent._value_net.trainable_variables
  before = [v.numpy() for v in variables]
  for _ in range(4):  # 2,048 steps
    collect(env, agent, buffer, 512)
    experience = buffer.gather_all()
    with tf.GradientTape() as tape:
      loss = agent.loss(experience).loss
    grads = tape.gradient(loss, variables)
    assert all(g is not None and np.all(np.isfinite(g.numpy())) for g in grads)
    assert flat_gradient_norm(grads[:len(agent._actor_net.trainable_variables)]) > 0  # the policy's
    assert flat_gradient_norm(grads[len(agent._actor_net.trainable_variables):]) > 0  # the critic's (PPO trains it)
    assert np.isfinite(float(train(experience).loss))
    buffer.clear()
  assert all(np.abs(b - v.numpy()).max() > 0 for b, v in zip(before, variables))


def test_ppo_inputs_mask_boundaries_and_window_end():
  env = gym_env("CartPole-v1", max_episode_steps=4)
  agent = ppo_agent(env)
  buffer = tf_uniform_replay_buffer.TFUniformReplayBuffer(agent.collect_data_spec, batch_size=1, max_length=64)
  collect(env, agent, buffer, 12)
  captured = {}

  def probe(inputs):
    captured.update(inputs)
    return inputs["log_probs"]

  agent._objective.per_step = probe
  experience = buffer.gather_all()
  agent.loss(experience)
  step_types = experience.step_type.numpy()[0]
  ends = captured["episode_ends"].numpy()[0]
  next_is_last = np.append(step_types[1:] == 2, True)
  expected = (step_types == 2) | next_is_last | (np.arange(len(step_types)) >= len(step_types) - 2)
  np.testing.assert_array_equal(ends, expected.astype(np.float32))
  values = captured["values"].numpy()[0]
  np.testing.assert_allclose(captured["next_values"].numpy()[0][:-1], values[1:])
  np.testing.assert_allclose(captured["rewards"].numpy(), experience.reward.numpy())


def write_bad_format_copy(tmp_path, fmt):
  """The PPO export re-saved with metadata that claims format `fmt` (get_metadata answers from
  the saved graph, so the copy is a new SavedModel, not an edited asset)."""
  source = adapter.ExportedObjective(PPO)
  metadata = dict(source.metadata, format=fmt)
  module = tf.Module()
  module.signature = source._signature
  module.get_metadata = tf.function(lambda: {"metadata": tf.constant(json.dumps(metadata))}, input_signature=[])
  path = str(tmp_path / "future" / "1")
  tf.saved_model.save(module, path, signatures={"serving_default": source._signature})
  return path


def test_bad_exports_are_one_line_errors(tmp_path):
  future = write_bad_format_copy(tmp_path, "tf_metarl.objective/99")
  with pytest.raises(adapter.ExportError, match=r"format 'tf_metarl.objective/99' is not one this adapter reads"):
    adapter.ExportedObjective(future)
  not_export = tmp_path / "empty"
  not_export.mkdir()
  with pytest.raises(adapter.ExportError, match="not a SavedModel"):
    adapter.ExportedObjective(str(not_export))
  with pytest.raises(adapter.ExportError, match="no such export directory"):
    adapter.ExportedObjective(str(tmp_path / "missing"))
  broken = tmp_path / "broken" / "1"
  broken.mkdir(parents=True)
  (broken / "saved_model.pb").write_bytes(b"not a protobuf")
  with pytest.raises(adapter.ExportError, match="cannot be loaded as a SavedModel"):
    adapter.ExportedObjective(str(broken.parent))
  env = gym_env("Pendulum-v1")
  with pytest.raises(adapter.ExportError, match="reads behaviour_actions, memory, "
                                                "policy_outputs, which a PPO agent does not provide"):
    ppo_agent(env, objective=EPG)
  with pytest.raises(adapter.ExportError, match="a on_policy objective \\(ppo\\) cannot be the loss of a TD3 agent"):
    td3_agent(env, objective=PPO)
  frodo = adapter.ExportedObjective(os.path.join(REPO, "export", "frodo_catch"))  # Catch's 66 observations
  with pytest.raises(adapter.ExportError, match="made for observation_dim 66, the agent's is 4"):
    ppo_agent(gym_env("CartPole-v1"), objective=frodo)
  continuous_only = adapter.ExportedObjective(METAGENRL)  # as if it were on-policy: only the action kind is wrong
  continuous_only.metadata = dict(continuous_only.metadata, learner="on_policy")
  continuous_only.input_names = ("rewards",)
  with pytest.raises(adapter.ExportError, match="made for continuous actions, not discrete"):
    ppo_agent(gym_env("CartPole-v1"), objective=continuous_only)


def test_adapter_imports_nothing_else_of_tf_metarl():
  code = ("import sys; import tf_metarl.interop.tf_agents_adapter; "
          "print(sorted(m for m in sys.modules if m.startswith('tf_metarl')))")
  out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True,
                       env=dict(os.environ, PYTHONPATH=REPO)).stdout
  assert out.strip() == "['tf_metarl', 'tf_metarl.interop', 'tf_metarl.interop.tf_agents_adapter']"
