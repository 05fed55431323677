r"""FRODO, FRODO + extension, learned γ/λ and A2C (fixed n-step) over many seeds, on Catch or the random walk.

  .venv/bin/python benchmarks/online_meta_methods.py --env=catch --seeds=10 --steps=4000000 --workers=2
  .venv/bin/python benchmarks/online_meta_methods.py --env=random_walk --seeds=10 --steps=2000000 --workers=2
  .venv/bin/python benchmarks/online_meta_methods.py --env=CartPole-v1 --seeds=3 --steps=300000 --workers=2 \
      --threshold=475 --eval_episodes=10

Random walk: the curve is the critic's RMS value error over the 5 states against the true values
of the reward phase in force (the `metric` column), recorded every iteration; reported as its mean
over the run and over the last 20% of it.

Each run is `meta_train`'s learner with configs/meta_train_common.py defaults (16 copies x 16 steps,
M = 3, RMSProp inner 3e-3, Adam meta 1e-3, held-out batch reused, 11x6 board), greedy evaluation on 256 episodes every
--eval_every steps. Reports, per method, the steps at which the greedy return first reaches
--threshold (mean ± std over the seeds that reach it, and how many do), and the final return.
Writes docs/results/<env>_methods.json and docs/figures/<env>_methods.png.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags, logging  # noqa: E402

_ENV = flags.DEFINE_string("env", "catch", "catch, random_walk, or a discrete-action gymnasium id (e.g. CartPole-v1).")
_EVAL_EPISODES = flags.DEFINE_integer("eval_episodes", 256, "Greedy evaluation episodes (not on the random walk).")
_SEEDS = flags.DEFINE_integer("seeds", 10, "Seeds per method.")
_STEPS = flags.DEFINE_integer("steps", 1_000_000, "Environment steps per run.")
_EVAL_EVERY = flags.DEFINE_integer("eval_every", 25_000, "Evaluation period in environment steps.")
_THRESHOLD = flags.DEFINE_float("threshold", 0.9, "Mean greedy return to reach.")
_METHODS = flags.DEFINE_list("methods", ["frodo", "frodo_extension", "mgrl", "a2c"], "Methods to run.")
_OUT = flags.DEFINE_string("out", "docs", "Where results/ and figures/ go.")
_LOGDIR = flags.DEFINE_string("logdir", "/tmp/tf_metarl_bench/catch_methods", "Run directories.")
_SET = flags.DEFINE_multi_string("set", [], "Config override for every method, section.key=value "
                                  "(e.g. --set=frodo.inner_steps=1 --set=learner.target_observation_scale=1.0).")
_TAG = flags.DEFINE_string("tag", "", "Suffix of the output file names (<env>_methods<tag>.json/.png).")
_WORKERS = flags.DEFINE_integer("workers", 1, "Runs in parallel, one process each (1 TF thread each when > 1).")


def apply_overrides(config, overrides):
  """Sets `section.key=value` strings on an ml_collections config (values parsed as Python literals)."""
  import ast
  for item in overrides:
    path, _, text = item.partition("=")
    section, _, key = path.partition(".")
    try:
      value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
      value = text
    if section not in config or key not in config[section]:
      raise ValueError(f"--set={item}: no config field {path!r}")
    config[section][key] = value


def run_one(env, name, seed, steps, eval_every, threshold, logdir, threads, overrides=(), eval_episodes=256):
  """One (method, seed) run in this process; returns (per-seed record, (steps, curve values))."""
  import numpy as np
  import tensorflow as tf
  if threads:
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
  from configs.meta_train_common import base_config
  from tf_metarl.algorithms.frodo import FrodoConfig
  from tf_metarl.algorithms.online_meta import OnlineMetaConfig, OnlineMetaLearner
  from tf_metarl.config_utils import dataclass_from_config
  from tf_metarl.learners.loop import CURVE_FILE, read_learning_curve, run_training

  method, extension = ("frodo", True) if name == "frodo_extension" else (name, False)
  base = base_config(env, method)
  base.frodo.extension = extension
  apply_overrides(base, overrides)
  evaluated = env != "random_walk"
  frodo = dataclass_from_config(FrodoConfig, base.frodo.to_dict(), "frodo")
  config = dataclass_from_config(OnlineMetaConfig, dict(base.learner.to_dict(), frodo=frodo), "learner")
  run_dir = os.path.join(logdir, f"{name}-s{seed}-{int(time.time())}")
  summary = run_training(OnlineMetaLearner(config, seed), steps, run_dir, {"method": name, "seed": seed},
                         eval_every=eval_every if evaluated else 0, eval_episodes=eval_episodes, checkpoint_every=0,
                         log_every_seconds=60)
  key = "eval_return" if evaluated else "metric"
  rows = [r for r in read_learning_curve(os.path.join(run_dir, CURVE_FILE)) if r[key] == r[key]]
  ys = [r[key] for r in rows]
  if evaluated:
    reached = next((r["env_steps"] for r in rows if r["eval_return"] >= threshold), None)
    record = dict(seed=seed, steps_to_threshold=reached, final_eval_return=summary["final_eval_return"],
                  wall_time_s=summary["wall_time_s"])
  else:
    record = dict(seed=seed, mean_value_error=float(np.mean(ys)),
                  last20_value_error=float(np.mean(ys[int(0.8 * len(ys)):])), wall_time_s=summary["wall_time_s"])
  return record, ([r["env_steps"] for r in rows], ys)


def main(_):
  import concurrent.futures
  import multiprocessing

  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  import numpy as np

  evaluated = _ENV.value != "random_walk"
  jobs = [(name, seed) for name in _METHODS.value for seed in range(_SEEDS.value)]
  threads = 1 if _WORKERS.value > 1 else 0
  with concurrent.futures.ProcessPoolExecutor(_WORKERS.value, mp_context=multiprocessing.get_context("spawn")) as pool:
    futures = {job: pool.submit(run_one, _ENV.value, job[0], job[1], _STEPS.value, _EVAL_EVERY.value,
                                _THRESHOLD.value, _LOGDIR.value, threads, _SET.value, _EVAL_EPISODES.value)
               for job in jobs}
    done = {}
    for job, future in futures.items():
      done[job] = future.result()
      logging.info("%s seed %d: %s", job[0], job[1], done[job][0])
  results, curves = {}, {}
  for name in _METHODS.value:
    per_seed = [done[(name, seed)][0] for seed in range(_SEEDS.value)]
    curves[name] = [done[(name, seed)][1] for seed in range(_SEEDS.value)]
    if evaluated:
      hit = [s["steps_to_threshold"] for s in per_seed if s["steps_to_threshold"] is not None]
      finals = [s["final_eval_return"] for s in per_seed]
      results[name] = dict(per_seed=per_seed, seeds_reaching=len(hit),
                           steps_to_threshold_mean=float(np.mean(hit)) if hit else None,
                           steps_to_threshold_std=float(np.std(hit)) if hit else None,
                           final_eval_return_mean=float(np.mean(finals)), final_eval_return_std=float(np.std(finals)))
    else:
      results[name] = dict(per_seed=per_seed, **{
          f"{k}_{stat}": float(fn([s[k] for s in per_seed]))
          for k in ("mean_value_error", "last20_value_error") for stat, fn in (("mean", np.mean), ("std", np.std))})
  out = dict(command=" ".join(sys.argv), steps=_STEPS.value, seeds=_SEEDS.value, threshold=_THRESHOLD.value,
             eval_episodes=_EVAL_EPISODES.value, overrides=_SET.value, methods=results)
  os.makedirs(os.path.join(_OUT.value, "results"), exist_ok=True)
  os.makedirs(os.path.join(_OUT.value, "figures"), exist_ok=True)
  with open(os.path.join(_OUT.value, "results", f"{_ENV.value}_methods{_TAG.value}.json"), "w") as f:
    json.dump(out, f, indent=2)
  fig, ax = plt.subplots(figsize=(6.5, 4), dpi=120)
  for name, runs in curves.items():
    length = min(len(xs) for xs, _ in runs)
    if length == 0:
      continue
    xs = np.array(runs[0][0][:length])
    ys = np.array([y[:length] for _, y in runs])
    mean, std = ys.mean(0), ys.std(0)
    ax.plot(xs, mean, label=f"{name} ({len(runs)} seeds)")
    ax.fill_between(xs, mean - std, mean + std, alpha=0.2)
  if evaluated:
    ax.axhline(_THRESHOLD.value, color="gray", ls=":", lw=1)
  ax.set_xlabel("environment steps")
  ax.set_ylabel(f"greedy return ({_EVAL_EPISODES.value} episodes)" if evaluated else "RMS value error (5 states)")
  title = {"catch": "Catch 11x6", "random_walk": "Non-stationary random walk"}.get(_ENV.value, _ENV.value)
  ax.set_title(title + ": mean ± std over seeds"
               + (f"\n{', '.join(_SET.value)}" if _SET.value else ""), fontsize=9)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(os.path.join(_OUT.value, "figures", f"{_ENV.value}_methods{_TAG.value}.png"))
  print(json.dumps({k: {kk: vv for kk, vv in v.items() if kk != "per_seed"} for k, v in results.items()}))


if __name__ == "__main__":
  app.run(main)
