r"""PPO through tf_metarl's learner on CartPole-v1: steps to a mean return of 475, wall-clock time.

  .venv/bin/python benchmarks/ppo_cartpole.py --seeds=5 --steps=500000

Uses the `ppo` preset of configs/train_agent.py (8 copies x 64 steps, 4 epochs x 4 minibatches of
128 transitions: the same data per update as purejaxrl's default PPO), one process, seeds in
sequence. Steps to the threshold count only learning-curve rows of at least --min_episodes
finished training episodes (a row closes after 10 episodes, but an evaluation row flushes whatever
is pending, sometimes 1 to 3 episodes). Writes docs/results/ppo_cartpole.json and
docs/figures/ppo_cartpole.png.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags, logging  # noqa: E402

from configs import train_agent as train_agent_config  # noqa: E402
from tf_metarl import plotting  # noqa: E402
from tf_metarl.learners import train  # noqa: E402
from tf_metarl.learners.loop import CURVE_FILE, read_learning_curve  # noqa: E402

_SEEDS = flags.DEFINE_integer("seeds", 5, "Number of seeds (0..n-1).")
_STEPS = flags.DEFINE_integer("steps", 500_000, "Environment steps per seed.")
_THRESHOLD = flags.DEFINE_float("threshold", 475.0, "Return to reach.")
_MIN_EPISODES = flags.DEFINE_integer("min_episodes", 10, "Training rows with fewer finished episodes do not count.")
_OUT = flags.DEFINE_string("out", "docs", "Where results/ and figures/ go.")
_LOGDIR = flags.DEFINE_string("logdir", "/tmp/tf_metarl_bench/ppo_cartpole", "Run directories.")


def first_step_at(rows, key, threshold, min_episodes=0):
  """The first row's env_steps where `key` >= threshold (training rows: only rows of at least
  `min_episodes` finished episodes count)."""
  for r in rows:
    episodes = r.get("train_episodes", float("nan"))
    if key == "train_return" and not (episodes == episodes and episodes >= min_episodes):  # NaN: no count
      continue
    if r[key] == r[key] and r[key] >= threshold:
      return int(r["env_steps"])
  return None


def main(_):
  import numpy as np
  config = train_agent_config.get_config("ppo")
  config.steps = _STEPS.value
  config.eval_every = 10_000
  config.eval_episodes = 5
  config.checkpoint_every = 0
  config.log_every_seconds = 30.0
  per_seed, curves = [], {}
  for seed in range(_SEEDS.value):
    logdir = os.path.join(_LOGDIR.value, f"s{seed}-{int(time.time())}")
    start = time.perf_counter()
    summary = train("CartPole-v1", "ppo", seed, logdir, config.to_dict())
    wall = time.perf_counter() - start
    rows = read_learning_curve(os.path.join(logdir, CURVE_FILE))
    curves[f"seed {seed}"] = rows
    per_seed.append(dict(seed=seed, wall_time_s=round(wall, 1), steps_per_second=summary["steps_per_second"],
                         steps_to_threshold_train=first_step_at(rows, "train_return", _THRESHOLD.value, _MIN_EPISODES.value),
                         steps_to_threshold_eval=first_step_at(rows, "eval_return", _THRESHOLD.value),
                         final_eval_return=summary["final_eval_return"],
                         final_train_return=summary["train_return_last100"]))
    logging.info("seed %d: %s", seed, per_seed[-1])
  reached = [s["steps_to_threshold_train"] for s in per_seed if s["steps_to_threshold_train"] is not None]
  result = dict(
      env="CartPole-v1", objective="ppo", steps_per_seed=_STEPS.value, seeds=_SEEDS.value, threshold=_THRESHOLD.value,
      criterion=f"first training row of >= {_MIN_EPISODES.value} finished episodes with mean >= threshold",
      command=" ".join(sys.argv), per_seed=per_seed,
      seeds_reaching_threshold=len(reached),
      median_steps_to_threshold_train=float(np.median(reached)) if reached else None,
      total_wall_time_s=round(sum(s["wall_time_s"] for s in per_seed), 1),
      final_eval_return_mean=float(np.mean([s["final_eval_return"] for s in per_seed])),
      final_eval_return_std=float(np.std([s["final_eval_return"] for s in per_seed])))
  os.makedirs(os.path.join(_OUT.value, "results"), exist_ok=True)
  os.makedirs(os.path.join(_OUT.value, "figures"), exist_ok=True)
  with open(os.path.join(_OUT.value, "results", "ppo_cartpole.json"), "w") as f:
    json.dump(result, f, indent=2)
  plotting.plot_learning_curves(curves, os.path.join(_OUT.value, "figures", "ppo_cartpole.png"),
                                title=f"PPO on CartPole-v1 ({_SEEDS.value} seeds)", key="train_return",
                                fallback_key="__none__")
  print(json.dumps(result))


if __name__ == "__main__":
  app.run(main)
