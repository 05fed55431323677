r"""Meta-test of an evolved EPG loss on its random task family (issue 12; random Pendulum, random
CartPole): fresh agents trained by the loss alone (α = 0, no reward reaches their updates) against
PPO with rewards (α = 1) and a randomly initialised loss, on draws from the training family and
from the held-out one.

  .venv/bin/python benchmarks/epg_meta_test.py --logdir=runs/epg-Pendulum-v1-s0 --runs=5
  .venv/bin/python benchmarks/epg_meta_test.py --logdir=runs/s0,runs/s1,runs/s2 --runs=5   # seeds

Every method trains the same agents in the same way: `EPGProblem.meta_test`, the inner training of
meta-training (U updates, one after every M steps), with the same fresh agents, tasks and action
noise (common random numbers), so the methods differ only in the loss. The evolved φ and its input
statistics come from the meta_train run's latest checkpoint; the random loss is a freshly
initialised one (identity statistics). Writes docs/results/epg_random_<env><tag>.json and
docs/figures/epg_random_<env><tag>.png (<env>: the family's environment, `pendulum`, `cartpole`): learning curves (the mean return of the episodes
finished in each collection, mean ± std over all runs of all seeds) and, from each run's
learning_curve.csv, meta-training over epochs. With several runs (comma-separated logdirs, one
per meta-training seed) each gets its own meta-test draws, and the summary is the mean ± std over
seeds of each seed's mean last-episode return.
"""
import csv
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # noqa: E402

from benchmarks.results_io import define_meta_test_flags, save_figure, write_result  # noqa: E402

_LOGDIR, _RUNS, _SEED, _TAG, _OUT = define_meta_test_flags(seed=1000)

METHODS = {"evolved loss, no rewards": 0.0, "PPO, with rewards": 1.0}


def main(argv):
  del argv
  import numpy as np
  import tensorflow as tf
  from tf_metarl.algorithms.epg import EPGTrainer, config_from_section
  logdirs = [d for d in _LOGDIR.value.split(",") if d]
  curves, per_seed, wall, checkpoints, meta_training = {}, {}, {}, [], []
  for index, logdir in enumerate(logdirs):
    trainer, config, restored = EPGTrainer.from_logdir(logdir)
    checkpoints.append(restored)
    random_loss = EPGTrainer(config_from_section(config["epg"]), int(config["seed"]) + 12345)
    problems = {**{name: (trainer.problem, alpha) for name, alpha in METHODS.items()},
                "random loss, no rewards": (random_loss.problem, 0.0)}
    seed = tf.constant([_SEED.value + 100 * index, 3])  # other agents and tasks for each meta-training seed
    for family in ("train", "held_out"):
      for name, (problem, alpha) in problems.items():
        start = time.time()
        results = problem.compiled_meta_test(_RUNS.value, family == "held_out")(seed, alpha)
        key = f"{name} | {family}"
        curves.setdefault(key, []).extend(
            [[None if np.isnan(x) else round(float(x), 2) for x in row] for row in results.curve.numpy().T])
        last = results.last_return.numpy()
        per_seed.setdefault(key, []).append(float(last.mean()))
        wall[key] = wall.get(key, 0.0) + round(time.time() - start, 1)
        print(f"{logdir}, {key}: last episode {last.mean():.1f} ± {last.std():.1f}", flush=True)
    with open(os.path.join(logdir, "learning_curve.csv")) as f:
      meta_training.append([{k: float(v) if v not in ("", "nan") else None for k, v in row.items()}
                            for row in csv.DictReader(f)])
  # Mean ± std over meta-training seeds of each seed's mean over its runs.
  summary = {key: {"last_return": [float(np.mean(v)), float(np.std(v))], "per_seed": v, "wall_time_s": wall[key]}
             for key, v in per_seed.items()}
  c = trainer.config
  record = {"command": "benchmarks/epg_meta_test.py " + " ".join(sys.argv[1:]), "checkpoints": checkpoints,
            "seeds": len(logdirs), "runs": _RUNS.value, "seed": _SEED.value, "epg": config["epg"],
            "epochs_trained": int(trainer.env_steps.numpy()) // c.epoch_steps, "summary": summary, "curves": curves,
            "meta_training": meta_training}
  name = "epg_random_" + config["epg"]["env"].split("/")[-1].split("-")[0].lower() + _TAG.value
  record["figure"] = plot(record, os.path.join(_OUT.value, "figures", f"{name}.png"))
  write_result(os.path.join(_OUT.value, "results", f"{name}.json"), record)


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
                 f"({record['seeds']} seed{'s' * (record['seeds'] != 1)} × {record['runs']} runs)")
    ax.set_xlabel("environment steps of the fresh agent")
    ax.set_ylabel("episode return")
    ax.legend(fontsize=8)
  epoch = record["epg"]["population"] * record["epg"]["runs_per_member"] * record["epg"]["updates"] * update_every
  for seed, rows in enumerate(record["meta_training"]):
    steps = [r["env_steps"] / epoch for r in rows]
    line, = axes[2].plot(steps, [r["train_return"] for r in rows], lw=0.8,
                         label="last episode of inner runs" if seed == 0 else None)
    evals = [(s, r["eval_return"]) for s, r in zip(steps, rows) if r["eval_return"] is not None]
    if evals:
      axes[2].plot(*zip(*evals), "o", color=line.get_color(), ms=3, label="meta-test (α = 0)" if seed == 0 else None)
  axes[2].set_xlabel("ES epoch")
  axes[2].set_ylabel("return")
  axes[2].set_title("meta-training")
  axes[2].legend(fontsize=8)
  return save_figure(fig, path)


if __name__ == "__main__":
  app.run(main)
