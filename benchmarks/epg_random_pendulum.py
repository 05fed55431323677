r"""Meta-test of an evolved EPG loss on random Pendulum (issue 12): fresh agents trained by the
loss alone (α = 0, no reward reaches their updates) against PPO with rewards (α = 1) and a
randomly initialised loss, on draws from the training family and from the held-out one.

  .venv/bin/python benchmarks/epg_random_pendulum.py --logdir=runs/epg-Pendulum-v1-s0 --runs=5

Every method trains the same agents in the same way: `EPGProblem.meta_test`, the inner training of
meta-training (U updates, one after every M steps), with the same fresh agents, tasks and action
noise (common random numbers), so the methods differ only in the loss. The evolved φ and its input
statistics come from the meta_train run's latest checkpoint; the random loss is a freshly
initialised one (identity statistics). Writes docs/results/epg_random_pendulum<tag>.json and
docs/figures/epg_random_pendulum<tag>.png: learning curves (the mean return of the episodes
finished in each collection, mean ± std over runs) and, from the run's learning_curve.csv, the ES
fitness over epochs.
"""
import csv
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from benchmarks.results_io import write_result  # noqa: E402

_LOGDIR = flags.DEFINE_string("logdir", None, "The meta_train run (config.json and checkpoints).", required=True)
_RUNS = flags.DEFINE_integer("runs", 5, "Fresh agents (and task draws) per method and family.")
_SEED = flags.DEFINE_integer("seed", 1000, "Meta-test seed (agents, tasks, noise).")
_TAG = flags.DEFINE_string("tag", "", "Suffix of the result and figure names.")
_OUT = flags.DEFINE_string("out", "docs", "Where results/ and figures/ go.")

METHODS = {"evolved loss, no rewards": 0.0, "PPO, with rewards": 1.0}


def main(argv):
  del argv
  import numpy as np
  import tensorflow as tf
  from tf_metarl.algorithms.epg import EPGTrainer, config_from_section
  trainer, config, restored = EPGTrainer.from_logdir(_LOGDIR.value)
  random_loss = EPGTrainer(config_from_section(config["epg"]), int(config["seed"]) + 12345)
  problems = {**{name: (trainer.problem, alpha) for name, alpha in METHODS.items()},
              "random loss, no rewards": (random_loss.problem, 0.0)}
  curves, summary = {}, {}
  for family in ("train", "held_out"):
    for name, (problem, alpha) in problems.items():
      start = time.time()
      fn = tf.function(lambda seed, p=problem, a=alpha: p.meta_test(_RUNS.value, seed, family == "held_out", a))
      results = fn(tf.constant([_SEED.value, 3]))
      curve = results.curve.numpy()  # [U, runs]
      key = f"{name} | {family}"
      curves[key] = [[None if np.isnan(x) else round(float(x), 2) for x in row] for row in curve.T]
      last = results.last_return.numpy()
      summary[key] = {"last_return": [float(last.mean()), float(last.std())],
                      "fitness": [float(results.fitness.numpy().mean()), float(results.fitness.numpy().std())],
                      "wall_time_s": round(time.time() - start, 1)}
      print(f"{key}: last episode {last.mean():.1f} ± {last.std():.1f}", flush=True)
  fitness_rows = []
  with open(os.path.join(_LOGDIR.value, "learning_curve.csv")) as f:
    for row in csv.DictReader(f):
      fitness_rows.append({k: float(v) if v not in ("", "nan") else None for k, v in row.items()})
  c = trainer.config
  record = {"command": "benchmarks/epg_random_pendulum.py " + " ".join(sys.argv[1:]), "checkpoint": restored,
            "runs": _RUNS.value, "seed": _SEED.value, "epg": config["epg"], "epochs_trained":
            int(trainer.env_steps.numpy()) // c.epoch_steps, "summary": summary, "curves": curves,
            "meta_training": fitness_rows}
  figure = plot(record, os.path.join(_OUT.value, "figures", f"epg_random_pendulum{_TAG.value}.png"))
  record["figure"] = figure
  write_result(os.path.join(_OUT.value, "results", f"epg_random_pendulum{_TAG.value}.json"), record)


def plot(record, path):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  import numpy as np
  update_every = record["epg"]["update_every"]
  fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
  for ax, family in zip(axes[:2], ("train", "held_out")):
    for key, runs in record["curves"].items():
      name, fam = key.split(" | ")
      if fam != family:
        continue
      curve = np.array([[np.nan if x is None else x for x in run] for run in runs], float)  # [runs, U]
      steps = (np.arange(curve.shape[1]) + 1) * update_every
      mean, std = np.nanmean(curve, 0), np.nanstd(curve, 0)
      ok = ~np.isnan(mean)
      ax.plot(steps[ok], mean[ok], label=name)
      ax.fill_between(steps[ok], (mean - std)[ok], (mean + std)[ok], alpha=0.2)
    ax.set_title(f"meta-test, {'training family' if family == 'train' else 'held-out draws'} "
                 f"({record['runs']} runs)")
    ax.set_xlabel("environment steps of the fresh agent")
    ax.set_ylabel("episode return")
    ax.legend(fontsize=8)
  rows = record["meta_training"]
  steps = [r["env_steps"] for r in rows]
  epoch = record["epg"]["population"] * record["epg"]["runs_per_member"] * record["epg"]["updates"] * update_every
  axes[2].plot([s / epoch for s in steps], [r["train_return"] for r in rows], label="last episode of inner runs")
  evals = [(s / epoch, r["eval_return"]) for s, r in zip(steps, rows) if r["eval_return"] is not None]
  if evals:
    axes[2].plot(*zip(*evals), "o-", label="meta-test (α = 0)")
  axes[2].set_xlabel("ES epoch")
  axes[2].set_ylabel("return")
  axes[2].set_title("meta-training")
  axes[2].legend(fontsize=8)
  fig.tight_layout()
  os.makedirs(os.path.dirname(path), exist_ok=True)
  fig.savefig(path, dpi=110)
  return path


if __name__ == "__main__":
  app.run(main)
