r"""TF-Agents' own TD3 and PPO against the same TF-Agents agents driven by shipped tf_metarl exports.

Runs in the TF-Agents environment (TensorFlow 2.15; `make tf-agents-env`), not in tf_metarl's:

  TF_USE_LEGACY_KERAS=1 PYTHONPATH=. .venv-tf-agents/bin/python benchmarks/tf_agents_peer.py \
      --out=docs

Per seed and variant: the same networks, optimisers, environment and number of environment steps;
only the loss differs (TD3's actor loss or L_α from export/metagenrl_lunar_cheetah; PPO's clipped
loss or export/ppo's). The learned TD3 actor trains on replayed sequences (16 × 20 transitions,
the export's own settings) and its critics on their transitions; TF-Agents' TD3 on 256 pairs.
Every `td3_eval_every` / `ppo_eval_every` steps, `eval_episodes` episodes of the greedy policy;
wall-clock counts collection and training (tracing included), not evaluation. The `*_tf_metarl` rows run tf_metarl's
own learners through `.venv/bin/train_agent` on the same budget (networks, warm-up, copies and
rollout length matched; its other settings its defaults), a peer row for the library itself. Writes
`<out>/results/tf_agents_peer.json` (curves, final returns, wall-clock; a rerun keeps the runs it
holds) and `<out>/figures/tf_agents_peer.png`.
"""
from __future__ import annotations

import json
import os
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402
from tf_agents.agents.ddpg import actor_network, critic_network  # noqa: E402
from tf_agents.agents.ppo import ppo_clip_agent  # noqa: E402
from tf_agents.agents.td3 import td3_agent  # noqa: E402
from tf_agents.drivers import dynamic_step_driver  # noqa: E402
from tf_agents.environments import batched_py_environment, suite_gym, tf_py_environment  # noqa: E402
from tf_agents.networks import actor_distribution_network, value_network  # noqa: E402
from tf_agents.policies import random_tf_policy  # noqa: E402
from tf_agents.replay_buffers import tf_uniform_replay_buffer  # noqa: E402

from tf_metarl.interop import tf_agents_adapter as adapter  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("out", "docs", "Writes <out>/results/tf_agents_peer<tag>.json and <out>/figures/tf_agents_peer<tag>.png.")
flags.DEFINE_string("tag", "", "Suffix of the result and figure names.")
flags.DEFINE_boolean("resume", True, "Keep the (variant, seed) runs already in the result file; run the others.")
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds.")
flags.DEFINE_list("runs", ["td3", "td3_metagenrl", "td3_tf_metarl", "ppo", "ppo_export", "ppo_tf_metarl"],
                  "Which agent variants to run.")
flags.DEFINE_string("tf_metarl_bin", ".venv/bin/train_agent", "tf_metarl's train_agent (its own environment).")
flags.DEFINE_integer("td3_steps", 10_000, "Environment steps per TD3 run (Pendulum-v1).")
flags.DEFINE_integer("td3_random_steps", 1_000, "Steps of a uniform random policy before TD3 trains.")
flags.DEFINE_integer("ppo_steps", 50_000, "Environment steps per PPO run (CartPole-v1).")
flags.DEFINE_integer("ppo_envs", 4, "CartPole copies stepped together.")
flags.DEFINE_integer("ppo_rollout", 128, "Steps per copy between PPO updates.")
flags.DEFINE_integer("td3_eval_every", 1_000, "Environment steps between evaluations of TD3.")
flags.DEFINE_integer("ppo_eval_every", 5_000, "Environment steps between evaluations of PPO.")
flags.DEFINE_integer("eval_episodes", 5, "Greedy episodes per evaluation.")
flags.DEFINE_string("metagenrl_export", "export/metagenrl_lunar_cheetah", "Off-policy export for td3_metagenrl.")
flags.DEFINE_string("ppo_export", "export/ppo", "On-policy export for ppo_export.")


def evaluate(env, policy, episodes):
  action = tf.function(policy.action)
  returns = []
  for _ in range(episodes):
    step, total = env.reset(), 0.0
    while not step.is_last():
      step = env.step(action(step).action)
      total += float(step.reward[0])
    returns.append(total)
  return float(np.mean(returns))


def td3_run(seed, learned):
  tf.keras.utils.set_random_seed(seed)
  env = tf_py_environment.TFPyEnvironment(suite_gym.load("Pendulum-v1"))
  eval_env = tf_py_environment.TFPyEnvironment(suite_gym.load("Pendulum-v1"))
  env.pyenv.envs[0].seed(seed)
  eval_env.pyenv.envs[0].seed(10_000 + seed)
  actor = actor_network.ActorNetwork(env.observation_spec(), env.action_spec(), fc_layer_params=(128, 128))
  critic = critic_network.CriticNetwork((env.observation_spec(), env.action_spec()), joint_fc_layer_params=(128, 128))
  settings = dict(exploration_noise_std=0.1 * 2.0, target_update_tau=0.005, actor_update_period=2, gamma=0.99,
                  target_policy_noise=0.2 * 2.0, target_policy_noise_clip=0.5 * 2.0,
                  train_step_counter=tf.Variable(0, dtype=tf.int64))  # noise in units of Pendulum's half range (2)
  optimizers = (tf.keras.optimizers.Adam(1e-3), tf.keras.optimizers.Adam(1e-3))
  if learned:
    agent = adapter.LearnedObjectiveTd3Agent(env.time_step_spec(), env.action_spec(), actor, critic, *optimizers,
                                             objective=FLAGS.metagenrl_export, episode_step_limit=200, **settings)
    batch, sequence = 16, 21
  else:
    agent = td3_agent.Td3Agent(env.time_step_spec(), env.action_spec(), actor, critic, *optimizers, **settings)
    batch, sequence = 256, 2
  agent.initialize()
  buffer = tf_uniform_replay_buffer.TFUniformReplayBuffer(agent.collect_data_spec, batch_size=1, max_length=100_000)
  random_policy = random_tf_policy.RandomTFPolicy(env.time_step_spec(), env.action_spec())
  if learned:  # its data must carry episode steps too
    random_policy = adapter.EpisodeStepPolicy(random_policy)
  dynamic_step_driver.DynamicStepDriver(env, random_policy, [buffer.add_batch], num_steps=FLAGS.td3_random_steps).run()
  iterator = iter(buffer.as_dataset(sample_batch_size=batch, num_steps=sequence).prefetch(2))
  collect = tf.function(dynamic_step_driver.DynamicStepDriver(env, agent.collect_policy, [buffer.add_batch],
                                                              num_steps=1).run)
  train = tf.function(agent.train)
  return _loop(FLAGS.td3_steps, FLAGS.td3_random_steps, 1, FLAGS.td3_eval_every, lambda: (collect(), train(next(iterator)[0])),
               lambda: evaluate(eval_env, agent.policy, FLAGS.eval_episodes))


def ppo_run(seed, learned):
  tf.keras.utils.set_random_seed(seed)
  envs = [suite_gym.load("CartPole-v1") for _ in range(FLAGS.ppo_envs)]
  for i, e in enumerate(envs):
    e.seed(seed * 100 + i)
  env = tf_py_environment.TFPyEnvironment(batched_py_environment.BatchedPyEnvironment(envs))
  eval_env = tf_py_environment.TFPyEnvironment(suite_gym.load("CartPole-v1"))
  eval_env.pyenv.envs[0].seed(10_000 + seed)
  actor = actor_distribution_network.ActorDistributionNetwork(env.observation_spec(), env.action_spec(),
                                                               fc_layer_params=(64, 64))
  critic = value_network.ValueNetwork(env.observation_spec(), fc_layer_params=(64, 64))
  settings = dict(optimizer=tf.keras.optimizers.Adam(3e-4), actor_net=actor, value_net=critic, num_epochs=4,
                  discount_factor=0.99, lambda_value=0.95, use_gae=True, normalize_observations=False,
                  normalize_rewards=False, train_step_counter=tf.Variable(0, dtype=tf.int64))
  if learned:
    agent = adapter.LearnedObjectivePPOAgent(env.time_step_spec(), env.action_spec(), objective=FLAGS.ppo_export,
                                             **settings)
  else:
    agent = ppo_clip_agent.PPOClipAgent(env.time_step_spec(), env.action_spec(), importance_ratio_clipping=0.2,
                                        entropy_regularization=0.01, **settings)
  agent.initialize()
  buffer = tf_uniform_replay_buffer.TFUniformReplayBuffer(agent.collect_data_spec, batch_size=FLAGS.ppo_envs,
                                                          max_length=FLAGS.ppo_rollout + 1)
  collect = tf.function(dynamic_step_driver.DynamicStepDriver(
      env, agent.collect_policy, [buffer.add_batch], num_steps=FLAGS.ppo_envs * FLAGS.ppo_rollout).run)
  train = tf.function(agent.train)

  def iteration():
    collect()
    train(buffer.gather_all())
    buffer.clear()

  return _loop(FLAGS.ppo_steps, 0, FLAGS.ppo_envs * FLAGS.ppo_rollout, FLAGS.ppo_eval_every, iteration,
               lambda: evaluate(eval_env, agent.policy, FLAGS.eval_episodes))


def _loop(total_steps, first_step, steps_per_call, eval_every, step_fn, eval_fn):
  """Calls `step_fn` until `total_steps` environment steps; evaluates every `eval_every` steps.
  Wall-clock counts training and collection, not evaluation."""
  steps, curve, seconds = first_step, [], 0.0
  next_eval = first_step
  while steps < total_steps:
    if steps >= next_eval:
      curve.append((steps, eval_fn()))
      next_eval += eval_every
    start = time.perf_counter()
    step_fn()
    seconds += time.perf_counter() - start
    steps += steps_per_call
  curve.append((steps, eval_fn()))
  return {"curve": curve, "final": curve[-1][1], "seconds": seconds}


def tf_metarl_run(seed, preset):
  """tf_metarl's own learner on the same budget, through `train_agent` in tf_metarl's environment
  (TensorFlow 2.21, `.venv`): a peer row for the library itself. Its wall-clock is the run's
  (`summary.json`) of a second, evaluation-free run."""
  import csv
  import subprocess
  import tempfile
  logdir = tempfile.mkdtemp(prefix=f"peer_{preset}_s{seed}_")
  if preset == "td3":
    args = ["--config=configs/train_agent.py:td3", "--env=Pendulum-v1", f"--config.steps={FLAGS.td3_steps}",
            f"--config.off_policy.warmup_steps={FLAGS.td3_random_steps}", "--config.off_policy.hidden_sizes=(128,128)",
            f"--config.eval_every={FLAGS.td3_eval_every}"]
  else:
    args = ["--env=CartPole-v1", f"--config.steps={FLAGS.ppo_steps}", f"--config.on_policy.num_envs={FLAGS.ppo_envs}",
            f"--config.on_policy.rollout_length={FLAGS.ppo_rollout}", "--config.on_policy.minibatches=1",
            f"--config.eval_every={FLAGS.ppo_eval_every}"]
  env = {k: v for k, v in os.environ.items() if k not in ("TF_USE_LEGACY_KERAS", "PYTHONPATH")}
  done = subprocess.run([FLAGS.tf_metarl_bin, *args, f"--config.eval_episodes={FLAGS.eval_episodes}", f"--seed={seed}",
                         f"--logdir={logdir}", "--noplot"], capture_output=True, text=True, env=env)
  if done.returncode != 0:
    raise RuntimeError(f"train_agent failed: {done.stderr.strip().splitlines()[-1:]}")
  summary = json.loads(done.stdout.strip().splitlines()[-1])
  with open(os.path.join(logdir, "learning_curve.csv")) as f:
    curve = [(int(r["env_steps"]), float(r["eval_return"])) for r in csv.DictReader(f) if r["eval_return"]]
  # The same run without evaluations, for the wall-clock (the TF-Agents rows time collection and
  # training only): the run's own wall_time_s, after imports, tracing included as theirs is.
  timed = subprocess.run([FLAGS.tf_metarl_bin, *args, "--config.eval_every=0", f"--seed={seed}",
                          f"--logdir={logdir}_timing", "--noplot"], capture_output=True, text=True, env=env)
  if timed.returncode != 0:
    raise RuntimeError(f"train_agent failed: {timed.stderr.strip().splitlines()[-1:]}")
  seconds = json.loads(timed.stdout.strip().splitlines()[-1])["wall_time_s"]
  return {"curve": curve, "final": summary["final_eval_return"], "seconds": seconds}


RUNS = {"td3": lambda s: td3_run(s, False), "td3_metagenrl": lambda s: td3_run(s, True),
        "td3_tf_metarl": lambda s: tf_metarl_run(s, "td3"),
        "ppo": lambda s: ppo_run(s, False), "ppo_export": lambda s: ppo_run(s, True),
        "ppo_tf_metarl": lambda s: tf_metarl_run(s, "ppo")}
LABELS = {"td3": "TF-Agents TD3", "td3_metagenrl": "TF-Agents TD3, actor loss = MetaGenRL export",
          "td3_tf_metarl": "tf_metarl TD3 (train_agent, TF 2.21)",
          "ppo": "TF-Agents PPO (clip)", "ppo_export": "TF-Agents PPO, loss = export/ppo",
          "ppo_tf_metarl": "tf_metarl PPO (train_agent, TF 2.21)"}


def plot(results, path):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(1, 2, figsize=(11, 4))
  for ax, (family, title) in zip(axes, [("td3", "Pendulum-v1 (TD3)"), ("ppo", "CartPole-v1 (PPO)")]):
    for name, runs in results.items():
      if not name.startswith(family):
        continue
      length = min(len(run["curve"]) for run in runs)
      steps = np.array([s for s, _ in runs[0]["curve"][:length]])
      returns = np.array([[r for _, r in run["curve"][:length]] for run in runs])
      mean, std = returns.mean(0), returns.std(0)
      ax.plot(steps, mean, label=LABELS[name])
      ax.fill_between(steps, mean - std, mean + std, alpha=0.2)
    ax.set(title=title, xlabel="environment steps", ylabel=f"greedy return ({FLAGS.eval_episodes} episodes)")
    ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)


def main(_):
  unknown = sorted(set(FLAGS.runs) - set(RUNS))
  if unknown:
    raise app.UsageError(f"--runs: unknown {', '.join(unknown)} (known: {', '.join(RUNS)})")
  json_path = os.path.join(FLAGS.out, "results", f"tf_agents_peer{FLAGS.tag}.json")
  png_path = os.path.join(FLAGS.out, "figures", f"tf_agents_peer{FLAGS.tag}.png")
  for path in (json_path, png_path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
  done = {}
  if FLAGS.resume and os.path.exists(json_path):
    with open(json_path) as f:
      done = {(name, run["seed"]): run for name, runs in json.load(f)["results"].items() for run in runs
              if "seed" in run}
  results = {}
  for name in FLAGS.runs:
    results[name] = []
    for seed in map(int, FLAGS.seeds):
      run = done.get((name, seed)) or dict(RUNS[name](seed), seed=seed)
      results[name].append(run)
      print(f"{name} seed {seed}: final {run['final']:.1f} in {run['seconds']:.0f} s", flush=True)
      with open(json_path, "w") as f:  # after every run: nothing lost if it is stopped
        json.dump({"flags": {k: FLAGS[k].value for k in ("seeds", "td3_steps", "td3_random_steps", "ppo_steps",
                                                           "ppo_envs", "ppo_rollout", "td3_eval_every",
                                                           "ppo_eval_every", "eval_episodes",
                                                           "metagenrl_export", "ppo_export")},
                   "tensorflow": tf.__version__, "results": results}, f, indent=1)
  for name, runs in results.items():
    finals = [r["final"] for r in runs]
    seconds = [r["seconds"] for r in runs]
    print(f"{LABELS[name]}: final {np.mean(finals):.1f} ± {np.std(finals):.1f}, {np.mean(seconds):.0f} ± "
          f"{np.std(seconds):.0f} s per run")
  plot(results, png_path)


if __name__ == "__main__":
  app.run(main)
