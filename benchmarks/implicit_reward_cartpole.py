r"""The implicit reward method against its baselines on CartPole with helper rewards (Place 2023,
Figure 1; issue 11):

  .venv/bin/python benchmarks/implicit_reward_cartpole.py --seeds=5 --steps=300000 \
      --helpers=harmful,random,helpful --runs=ppo,ppo_helper,bipars,implicit:neumann,implicit:cg,implicit:diagonal

Each run is a preset of configs/implicit_reward_cartpole.py (`<method>[:<solver>]` with the helper
and --actions) trained by `ImplicitRewardTrainer.iteration`, the step `meta_train` runs, for
--steps environment steps; --workers runs go side by side in separate processes (one CPU thread
each). Recorded per meta-iteration: environment steps, the mean primary return r_p of the
episodes that ended, the mean learned helper weight z_η over the fresh batch's states, γ_η, the
solver's residual and whether the estimate was rejected; at the end, a greedy evaluation
(--eval_episodes). Also timed, per run: one meta-iteration (K inner iterations, the fresh batch
and the meta-step) and one inner on-policy iteration (collection and 16 updates) alone; the
summary gives the meta-step's cost in inner iterations, (meta − K · inner) / inner (20 repeats
each; measure it with --workers=1 and nothing else running, e.g. --steps=1 --seeds=1).

Writes docs/results/implicit_reward_cartpole<tag>.json and docs/figures/implicit_reward_cartpole<tag>.png
(returns as a moving average over --smooth iterations, mean ± std over seeds, and z_η).
"""
import concurrent.futures
import multiprocessing
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from benchmarks.results_io import write_result  # noqa: E402

_SEEDS = flags.DEFINE_integer("seeds", 5, "Seeds 0..n-1 per run and helper.")
_STEPS = flags.DEFINE_integer("steps", 300_000, "Environment steps per run (inner and fresh batches).")
_HELPERS = flags.DEFINE_list("helpers", ["harmful", "random", "helpful"], "Helper rewards.")
_RUNS = flags.DEFINE_list("runs", ["ppo", "ppo_helper", "bipars", "implicit:neumann"],
                          "Methods, with the solver after ':' for implicit.")
_ACTIONS = flags.DEFINE_enum("actions", "discrete", ["discrete", "continuous"], "CartPole's action space.")
_EVAL_EPISODES = flags.DEFINE_integer("eval_episodes", 20, "Greedy episodes at the end of each run.")
_WORKERS = flags.DEFINE_integer("workers", 2, "Runs in parallel (processes).")
_SMOOTH = flags.DEFINE_integer("smooth", 10, "Moving-average window (meta-iterations) of the plotted returns.")
_OVERRIDES = flags.DEFINE_list("overrides", [], "implicit_reward config overrides, e.g. damping=0.5,meta_learning_rate=1e-2.")
_TAG = flags.DEFINE_string("tag", "", "Suffix of the result and figure names.")
_REPLOT = flags.DEFINE_string("replot", None, "Only redraw the figure of this result JSON (next to it, in ../figures).")
_OUT = flags.DEFINE_string("out", "docs", "Where results/ and figures/ go.")


def one_run(job):
  """Trains one run in this process; returns its record."""
  import numpy as np
  import tensorflow as tf
  tf.config.threading.set_intra_op_parallelism_threads(1)
  tf.config.threading.set_inter_op_parallelism_threads(1)
  from configs.implicit_reward_cartpole import run_section
  from tf_metarl.algorithms.implicit_reward import ImplicitRewardTrainer, config_from_section
  run, helper, actions, seed, steps, eval_episodes, overrides = job
  trainer = ImplicitRewardTrainer(config_from_section(run_section(run, helper, actions, overrides)), seed)
  rows, start = [], time.time()
  while int(trainer.env_steps.numpy()) < steps:
    metrics, stats = trainer.iteration()
    short = lambda x: None if x is None else float(f"{x:.4g}")  # 4 significant digits keep the records small
    rows.append({"env_steps": int(trainer.env_steps.numpy()),
                 "return": short(float(np.mean(stats.returns))) if stats.returns else None,
                 "episodes": len(stats.returns),
                 **{k: short(metrics.get(k)) for k in ("meta/helper_weight", "meta/gamma", "solver_residual",
                                                       "meta/rejected_estimates")}})
  wall = time.time() - start
  # The cost of the meta-step: one meta-iteration against one inner on-policy iteration alone.
  problem, state, eta = trainer.problem, trainer.state.read(), trainer.eta.read()
  inner = tf.function(lambda s, seed: problem.unroll(eta, s, seed)[0])
  inner(state, tf.constant([0, 1]))
  repeats = 20
  t0 = time.time()
  for k in range(repeats):
    inner(state, tf.constant([0, k]))
  inner_s = (time.time() - t0) / repeats
  t0 = time.time()
  for _ in range(repeats):
    trainer._step(tf.constant([seed, 10**6]))
  meta_s = (time.time() - t0) / repeats
  evaluation = trainer.evaluate(eval_episodes)
  return {"run": run, "helper": helper, "seed": seed, "rows": rows, "wall_time_s": wall,
          "final_eval_return": float(np.mean(evaluation)), "inner_iteration_s": inner_s,
          "meta_iteration_s": meta_s, "inner_iterations_per_meta_iteration": trainer.config.inner_iterations,
          "skipped_meta_steps": int(trainer.guard.skipped.numpy())}


def smoothed(rows, key, window):
  import numpy as np
  steps = np.array([r["env_steps"] for r in rows], float)
  values = np.array([np.nan if r[key] is None else r[key] for r in rows], float)
  out = np.full_like(values, np.nan)
  for i in range(len(values)):
    part = values[max(0, i - window + 1):i + 1]
    if np.any(~np.isnan(part)):
      out[i] = np.nanmean(part)
  return steps, out


def plot(records, path, window):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  import numpy as np
  helpers = sorted({r["helper"] for r in records if r["run"] != "ppo"})
  runs = list(dict.fromkeys(r["run"] for r in records))
  fig, axes = plt.subplots(2, len(helpers), figsize=(5 * len(helpers), 7), dpi=110, squeeze=False)
  for col, helper in enumerate(helpers):
    for color, run in enumerate(runs):
      mine = [r for r in records if r["run"] == run and (r["helper"] == helper or run == "ppo")]
      if not mine:
        continue
      length = min(len(r["rows"]) for r in mine)
      steps = np.array([row["env_steps"] for row in mine[0]["rows"][:length]])
      for row_index, (key, w) in enumerate((("return", window), ("meta/helper_weight", 1))):
        if key == "meta/helper_weight" and run in ("ppo", "dpba"):  # no z_η: nothing weights the helper
          continue
        curves = np.stack([smoothed(r["rows"][:length], key, w)[1] for r in mine])
        mean, std = np.nanmean(curves, 0), np.nanstd(curves, 0)
        ax = axes[row_index, col]
        ax.plot(steps, mean, label=run, color=f"C{color}")
        ax.fill_between(steps, mean - std, mean + std, alpha=0.15, color=f"C{color}")
    axes[0, col].set_title(f"{helper} helper")
    axes[0, col].set_ylabel(f"primary return (moving average of {window})")
    axes[1, col].set_ylabel("helper weight z_η (mean over visited states)")
    axes[1, col].axhline(0.0, color="k", lw=0.5)
    for row_index in range(2):
      axes[row_index, col].set_xlabel("environment steps")
      axes[row_index, col].grid(alpha=0.3)
    axes[0, col].legend(fontsize=8)
  fig.tight_layout()
  os.makedirs(os.path.dirname(path), exist_ok=True)
  fig.savefig(path)
  return path


def summarise(records):
  import numpy as np
  table = {}
  for r in records:
    key = f"{r['run']}|{'none' if r['run'] == 'ppo' else r['helper']}"
    entry = table.setdefault(key, {"final_eval": [], "last_20pct_return": [], "final_helper_weight": [],
                                   "meta_step_over_inner_iteration": [], "wall_time_s": []})
    rows = r["rows"]
    tail = [row["return"] for row in rows[int(0.8 * len(rows)):] if row["return"] is not None]
    entry["final_eval"].append(r["final_eval_return"])
    entry["last_20pct_return"].append(float(np.mean(tail)) if tail else float("nan"))
    weights = [row["meta/helper_weight"] for row in rows[-10:] if row["meta/helper_weight"] is not None]
    entry["final_helper_weight"].append(float(np.mean(weights)) if weights else float("nan"))
    # The meta-step (fresh batch, solve, η update) in inner iterations: (meta-iteration − K inner) / inner.
    k = r["inner_iterations_per_meta_iteration"]
    entry["meta_step_over_inner_iteration"].append((r["meta_iteration_s"] - k * r["inner_iteration_s"]) /
                                                   r["inner_iteration_s"])
    entry["wall_time_s"].append(r["wall_time_s"])
  return {k: {name: [float(np.mean(v)), float(np.std(v))] for name, v in entry.items()} for k, entry in table.items()}


def main(argv):
  del argv
  if _REPLOT.value:
    import json
    with open(_REPLOT.value) as f:
      result = json.load(f)
    name = os.path.splitext(os.path.basename(_REPLOT.value))[0]
    figures = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(_REPLOT.value))), "figures")
    print(plot(result["records"], os.path.join(figures, f"{name}.png"), _SMOOTH.value))
    return
  jobs = []
  for run in _RUNS.value:
    for helper in (["none"] if run == "ppo" else _HELPERS.value):
      for seed in range(_SEEDS.value):
        jobs.append((run, helper, _ACTIONS.value, seed, _STEPS.value, _EVAL_EPISODES.value, tuple(_OVERRIDES.value)))
  records = []
  context = multiprocessing.get_context("spawn")
  with concurrent.futures.ProcessPoolExecutor(_WORKERS.value, mp_context=context) as pool:
    for record in pool.map(one_run, jobs):
      records.append(record)
      print(f"{record['run']} {record['helper']} seed {record['seed']}: final eval {record['final_eval_return']:.1f}, "
            f"{record['wall_time_s']:.0f} s", flush=True)
  name = f"implicit_reward_cartpole{'_continuous' if _ACTIONS.value == 'continuous' else ''}{_TAG.value}"
  figure = plot(records, os.path.join(_OUT.value, "figures", f"{name}.png"), _SMOOTH.value)
  write_result(os.path.join(_OUT.value, "results", f"{name}.json"), {
      "command": " ".join(sys.argv), "steps": _STEPS.value, "seeds": _SEEDS.value, "actions": _ACTIONS.value,
      "summary": summarise(records), "figure": figure, "records": records})


if __name__ == "__main__":
  app.run(main)
