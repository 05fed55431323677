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

from benchmarks.seed_curves import mean_and_std, threshold_summary  # noqa: E402

_ENV = flags.DEFINE_string("env", "catch", "catch, random_walk, or a discrete-action gymnasium id (e.g. CartPole-v1).")
_EVAL_EPISODES = flags.DEFINE_integer("eval_episodes", 256, "Greedy evaluation episodes (not on the random walk).")
_SEEDS = flags.DEFINE_integer("seeds", 10, "Seeds per method.")
_FIRST_SEED = flags.DEFINE_integer("first_seed", 0, "Seeds run are first_seed .. first_seed + seeds - 1.")
_STEPS = flags.DEFINE_integer("steps", 1_000_000, "Environment steps per run.")
_EVAL_EVERY = flags.DEFINE_integer("eval_every", 25_000, "Evaluation period in environment steps.")
_THRESHOLD = flags.DEFINE_float("threshold", 0.9, "Mean greedy return to reach.")
_METHODS = flags.DEFINE_list("methods", ["frodo", "frodo_extension", "mgrl", "a2c"], "Methods to run.")
_OUT = flags.DEFINE_string("out", "docs", "Where results/ and figures/ go.")
_LOGDIR = flags.DEFINE_string("logdir", "/tmp/tf_metarl_bench/catch_methods", "Run directories.")
_SET = flags.DEFINE_multi_string("set", [], "Config override for every method, section.key=value "
                                  "(e.g. --set=frodo.inner_steps=1 --set=learner.target_observation_scale=1.0).")
_TAG = flags.DEFINE_string("tag", "", "Suffix of the output file names (<env>_methods<tag>.json/.png).")
_REPLOT = flags.DEFINE_bool("replot", False, "Do not train: summarise and plot the newest finished runs in --logdir.")
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


def run_one(env, name, seed, steps, eval_every, logdir, threads, overrides=(), eval_episodes=256):
  """Trains one (method, seed) run in this process; returns its run directory."""
  import tensorflow as tf
  if threads:
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
  from configs.meta_train_common import base_config
  from tf_metarl.algorithms.frodo import FrodoConfig, OnlineMetaConfig, OnlineMetaTrainer
  from tf_metarl.config_utils import dataclass_from_config
  from tf_metarl.learners.loop import RunSettings, run_training

  method, extension = ("frodo", True) if name == "frodo_extension" else (name, False)
  base = base_config(env, method)
  base.frodo.extension = extension
  apply_overrides(base, overrides)
  frodo = dataclass_from_config(FrodoConfig, base.frodo.to_dict(), "frodo")
  config = dataclass_from_config(OnlineMetaConfig, dict(base.learner.to_dict(), frodo=frodo), "learner")
  run_dir = os.path.join(logdir, f"{name}-s{seed}-{int(time.time())}")
  run_training(OnlineMetaTrainer(config, seed), steps, run_dir, {"method": name, "seed": seed},
               RunSettings(eval_every=eval_every if env != "random_walk" else 0, eval_episodes=eval_episodes,
                           log_every_seconds=60))
  return run_dir


def summarize(run_dir, seed, evaluated, threshold):
  """(per-seed record, (steps, curve values)) of a finished run, from its learning curve and summary."""
  import numpy as np
  from tf_metarl.learners.loop import CURVE_FILE, read_learning_curve
  with open(os.path.join(run_dir, "summary.json")) as f:
    summary = json.load(f)
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


def latest_run_dir(logdir, name, seed):
  """The newest `<name>-s<seed>-<time>` directory under `logdir` with a summary (for --replot)."""
  prefix = f"{name}-s{seed}-"
  found = sorted((d for d in os.listdir(logdir) if d.startswith(prefix) and d[len(prefix):].isdigit()
                  and os.path.exists(os.path.join(logdir, d, "summary.json"))), key=lambda d: int(d[len(prefix):]))
  if not found:
    raise FileNotFoundError(f"--replot: no finished run {prefix}* in {logdir}")
  return os.path.join(logdir, found[-1])


def plot_random_walk(ax_phases, ax_zoom, curves):
  """Left: the error averaged over each reward phase (960 steps per copy = 15,360 environment steps
  with 16 copies); right: the raw curves over the last four phases, where the switches show."""
  import numpy as np
  period = 960 * 16
  for name, runs in curves.items():
    xs, mean, std = mean_and_std(runs)
    phase = (xs - 1) // period
    phases = np.arange(xs[-1] // period)  # whole phases only
    per_seed = np.array([[np.mean(np.array(y[:len(xs)])[phase == p]) for p in phases] for _, y in runs])
    line, = ax_phases.plot((phases + 0.5) * period, per_seed.mean(0), label=f"{name} ({len(runs)} seeds)")
    ax_phases.fill_between((phases + 0.5) * period, per_seed.mean(0) - per_seed.std(0),
                           per_seed.mean(0) + per_seed.std(0), alpha=0.2, color=line.get_color())
    zoom = xs > xs[-1] - 4 * period
    ax_zoom.plot(xs[zoom], mean[zoom], color=line.get_color())
    ax_zoom.fill_between(xs[zoom], (mean - std)[zoom], (mean + std)[zoom], alpha=0.2, color=line.get_color())
  ax_phases.set_title("mean error per reward phase", fontsize=9)
  ax_zoom.set_title("the last four phases (switches every 15,360 steps)", fontsize=9)
  for ax in (ax_phases, ax_zoom):
    ax.set_xlabel("environment steps")
    ax.grid(alpha=0.3)
  ax_phases.set_ylabel("RMS value error (5 states)")
  ax_phases.legend(fontsize=8)


def main(_):
  import concurrent.futures
  import multiprocessing

  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  import numpy as np

  evaluated = _ENV.value != "random_walk"
  jobs = [(name, seed) for name in _METHODS.value for seed in range(_FIRST_SEED.value, _FIRST_SEED.value + _SEEDS.value)]
  if _REPLOT.value:
    run_dirs = {job: latest_run_dir(_LOGDIR.value, *job) for job in jobs}
  else:
    threads = 1 if _WORKERS.value > 1 else 0
    with concurrent.futures.ProcessPoolExecutor(_WORKERS.value,
                                                mp_context=multiprocessing.get_context("spawn")) as pool:
      futures = {job: pool.submit(run_one, _ENV.value, job[0], job[1], _STEPS.value, _EVAL_EVERY.value,
                                  _LOGDIR.value, threads, _SET.value, _EVAL_EPISODES.value) for job in jobs}
      run_dirs = {job: future.result() for job, future in futures.items()}
  done = {job: summarize(run_dirs[job], job[1], evaluated, _THRESHOLD.value) for job in jobs}
  for job in jobs:
    logging.info("%s seed %d: %s", job[0], job[1], done[job][0])
  results, curves = {}, {}
  for name in _METHODS.value:
    per_seed = [done[(name, seed)][0] for seed in range(_FIRST_SEED.value, _FIRST_SEED.value + _SEEDS.value)]
    curves[name] = [done[(name, seed)][1] for seed in range(_FIRST_SEED.value, _FIRST_SEED.value + _SEEDS.value)]
    if evaluated:
      results[name] = dict(per_seed=per_seed, **threshold_summary(per_seed))
    else:
      results[name] = dict(per_seed=per_seed, **{
          f"{k}_{stat}": float(fn([s[k] for s in per_seed]))
          for k in ("mean_value_error", "last20_value_error") for stat, fn in (("mean", np.mean), ("std", np.std))})
  out = dict(command=" ".join(sys.argv), steps=_STEPS.value, seeds=_SEEDS.value, threshold=_THRESHOLD.value,
             eval_episodes=_EVAL_EPISODES.value, overrides=_SET.value, methods=results)
  os.makedirs(os.path.join(_OUT.value, "results"), exist_ok=True)
  os.makedirs(os.path.join(_OUT.value, "figures"), exist_ok=True)
  result_path = os.path.join(_OUT.value, "results", f"{_ENV.value}_methods{_TAG.value}.json")
  if _REPLOT.value and os.path.exists(result_path):  # keep the command that trained the runs
    with open(result_path) as f:
      out.update(command=json.load(f)["command"], replot_command=" ".join(sys.argv))
  with open(result_path, "w") as f:
    json.dump(out, f, indent=2)
  title = {"catch": "Catch 11x6", "random_walk": "Non-stationary random walk"}.get(_ENV.value, _ENV.value)
  title += ": mean ± std over seeds" + (f"\n{', '.join(_SET.value)}" if _SET.value else "")
  if evaluated:
    fig, ax = plt.subplots(figsize=(6.5, 4), dpi=120)
    for name, runs in curves.items():
      xs, mean, std = mean_and_std(runs)
      ax.plot(xs, mean, label=f"{name} ({len(runs)} seeds)")
      ax.fill_between(xs, mean - std, mean + std, alpha=0.2)
    ax.axhline(_THRESHOLD.value, color="gray", ls=":", lw=1)
    ax.set_xlabel("environment steps")
    ax.set_ylabel(f"greedy return ({_EVAL_EPISODES.value} episodes)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
  else:
    fig, (ax_phases, ax_zoom) = plt.subplots(1, 2, figsize=(11, 4), dpi=120)
    plot_random_walk(ax_phases, ax_zoom, curves)
    fig.suptitle(title, fontsize=10)
  fig.tight_layout()
  fig.savefig(os.path.join(_OUT.value, "figures", f"{_ENV.value}_methods{_TAG.value}.png"))
  print(json.dumps({k: {kk: vv for kk, vv in v.items() if kk != "per_seed"} for k, v in results.items()}))


if __name__ == "__main__":
  app.run(main)
