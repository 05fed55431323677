r"""Trains a fresh agent on a gymnasium environment with any objective, built-in or exported.

  train_agent --env=CartPole-v1 --objective=export/ppo --logdir=runs/demo
  train_agent --config=configs/train_agent.py:td3 --env=Pendulum-v1 --config.steps=20000
  train_agent --env=tf_metarl/CartPole-v1 --seeds=5   # 5 PPO agents in one graph
  train_agent --env=tf_metarl/CartPole-v1 --reward=export/implicit_reward_random  # on a learned reward

Writes TensorBoard summaries, checkpoints (by steps, every few minutes, and at SIGINT/SIGTERM; a
rerun with the same --logdir resumes, --fresh starts over), a learning curve (CSV and PNG) and
summary.json to --logdir, and prints the summary as one JSON line.
"""
import json
import os

from absl import flags

from tf_metarl.bin import common

_CONFIG = common.define_config("train_agent.py", "ml_collections config file (optionally :preset).")
_ENV = flags.DEFINE_string("env", None, "Gymnasium environment id (default: config.env).")
_OBJECTIVE = flags.DEFINE_string("objective", None,
                                 "ppo, reinforce, a2c, td3, or an exported objective directory (default: config.objective).")
_SEED = flags.DEFINE_integer("seed", None, "Random seed (default: config.seed).")
_SEEDS = flags.DEFINE_integer("seeds", None, "Agents of seeds seed .. seed+seeds-1 trained together in one graph "
                              "(TensorFlow-native environments, on-policy objectives; default: config.seeds).")
_REWARD = flags.DEFINE_string("reward", None, "An exported learned reward (meta_train --export of the implicit reward "
                              "method): train on r_η and γ_η instead of the environment's reward (default: config.reward).")
_RECORD = flags.DEFINE_string("record", None, "Write the episodes the agent collects as an RLDS dataset (TFDS format) "
                              "to this directory (gymnasium environments; read with tfds.builder_from_directory).")
_REPLAY_FROM = flags.DEFINE_string("replay_from", None, "Warm-start the off-policy learner's replay buffer from a "
                                   "dataset recorded with --record (same spaces).")
_LOGDIR = flags.DEFINE_string("logdir", None, "Output directory (default: runs/<env>-<objective>-s<seed>).")
_PLOT = flags.DEFINE_boolean("plot", True, "Write learning_curve.png to the logdir.")
_FRESH = common.define_fresh_flag()


def main(argv):
  if len(argv) > 1:
    common.fail(f"unexpected positional arguments: {' '.join(argv[1:])}")
  from tf_metarl import learners  # Imported after flag parsing: TensorFlow loads slowly.

  config = _CONFIG.value
  env_id = _ENV.value or config.env
  objective = _OBJECTIVE.value or config.objective
  seed = config.seed if _SEED.value is None else _SEED.value
  if _SEEDS.value is not None:
    if config.get("seeds", 1) != 1:
      common.fail(f"seeds given in two places: --seeds={_SEEDS.value} and config.seeds={config.seeds}; give one")
    config.seeds = _SEEDS.value
  if _REWARD.value is not None:
    config.reward = _REWARD.value
  if _RECORD.value is not None:
    config.record = _RECORD.value
  if _REPLAY_FROM.value is not None:
    config.replay_from = _REPLAY_FROM.value
  seeds = int(config.get("seeds", 1))
  name = os.path.basename(os.path.normpath(objective))
  tag = f"s{seed}" if seeds == 1 else f"s{seed}-{seed + seeds - 1}"
  logdir = _LOGDIR.value or os.path.join("runs", f"{env_id}-{name}-{tag}")
  summary = learners.train(env_id, objective, seed, logdir, config.to_dict(), fresh=_FRESH.value)
  if _PLOT.value:
    summary["plot"] = common.plot_run(logdir, name, f"{env_id}: fresh agent, objective {name}, seed {seed}")
  print(json.dumps(summary, sort_keys=True), flush=True)


def run():
  common.run(main)


if __name__ == "__main__":
  run()
