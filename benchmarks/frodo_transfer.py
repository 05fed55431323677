r"""Fresh agents trained with the shipped FRODO target (export/frodo_catch) against the built-in A2C loss.

  .venv/bin/python benchmarks/frodo_transfer.py --seeds=5 --steps=200000 --workers=2

The exported G_η was meta-trained by `meta_train --config=configs/frodo_catch.py` (seed 0, 3 M
steps, 16 copies, one 64-unit ReLU agent trained with RMSProp inside the meta-loop). Here it is
frozen and trains new agents through `train_agent`'s on-policy learner with the `a2c` preset of
configs/train_agent.py (8 gymnasium copies of tf_metarl/Catch-v0 x 16 steps, Adam 7e-4, 64x64 tanh
networks: a different learner from the one it was meta-trained with), against the same learner
with the hand-designed A2C loss (λ = 1 returns). Greedy evaluation on 50 episodes every 10k steps.
Writes docs/results/frodo_transfer.json and docs/figures/frodo_transfer.png.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags, logging  # noqa: E402

from benchmarks.results_io import write_result  # noqa: E402
from benchmarks.seed_curves import mean_and_std, threshold_summary  # noqa: E402

_OBJECTIVES = flags.DEFINE_list("objectives", ["export/frodo_catch", "a2c"], "Objectives to compare.")
_SEEDS = flags.DEFINE_integer("seeds", 5, "Seeds per objective.")
_STEPS = flags.DEFINE_integer("steps", 200_000, "Environment steps per run.")
_THRESHOLD = flags.DEFINE_float("threshold", 0.9, "Greedy return to reach.")
_WORKERS = flags.DEFINE_integer("workers", 1, "Runs in parallel, one process each.")
_LOGDIR = flags.DEFINE_string("logdir", "/tmp/tf_metarl_bench/frodo_transfer", "Run directories.")
_OUT = flags.DEFINE_string("out", "docs", "Where results/ and figures/ go.")
ENV = "tf_metarl/Catch-v0"


def run_one(objective, seed, steps, threshold, logdir, threads):
  import tensorflow as tf
  if threads:
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
  from configs import train_agent as train_agent_config
  from tf_metarl.learners import train
  from tf_metarl.learners.loop import CURVE_FILE, read_learning_curve

  config = train_agent_config.get_config("a2c")
  config.steps, config.eval_every, config.eval_episodes, config.checkpoint_every = steps, 10_000, 50, 0
  run_dir = os.path.join(logdir, f"{objective.replace('/', '_')}-s{seed}-{int(time.time())}")
  summary = train(ENV, objective, seed, run_dir, config)
  rows = [r for r in read_learning_curve(os.path.join(run_dir, CURVE_FILE)) if r["eval_return"] == r["eval_return"]]
  reached = next((r["env_steps"] for r in rows if r["eval_return"] >= threshold), None)
  record = dict(seed=seed, steps_to_threshold=reached, final_eval_return=summary["final_eval_return"],
                wall_time_s=summary["wall_time_s"])
  return record, ([r["env_steps"] for r in rows], [r["eval_return"] for r in rows])


def main(_):
  import concurrent.futures
  import multiprocessing

  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  jobs = [(objective, seed) for objective in _OBJECTIVES.value for seed in range(_SEEDS.value)]
  threads = 1 if _WORKERS.value > 1 else 0
  with concurrent.futures.ProcessPoolExecutor(_WORKERS.value, mp_context=multiprocessing.get_context("spawn")) as pool:
    futures = {job: pool.submit(run_one, *job, _STEPS.value, _THRESHOLD.value, _LOGDIR.value, threads) for job in jobs}
    done = {job: future.result() for job, future in futures.items()}
  result = dict(command=" ".join(sys.argv), env=ENV, steps=_STEPS.value, seeds=_SEEDS.value, threshold=_THRESHOLD.value,
                preset="a2c", eval_episodes=50, objectives={})
  fig, ax = plt.subplots(figsize=(6.5, 4), dpi=120)
  for objective in _OBJECTIVES.value:
    per_seed = [done[(objective, seed)][0] for seed in range(_SEEDS.value)]
    result["objectives"][objective] = dict(per_seed=per_seed, **threshold_summary(per_seed))
    logging.info("%s: %s", objective, {k: v for k, v in result["objectives"][objective].items() if k != "per_seed"})
    curves = [done[(objective, seed)][1] for seed in range(_SEEDS.value)]
    xs, mean, std = mean_and_std(curves)
    ax.plot(xs, mean, label=f"{objective} ({_SEEDS.value} seeds)")
    ax.fill_between(xs, mean - std, mean + std, alpha=0.2)
  ax.axhline(_THRESHOLD.value, color="gray", ls=":", lw=1)
  ax.set_xlabel("environment steps")
  ax.set_ylabel("greedy return (50 episodes)")
  ax.set_title("Fresh agents on Catch: frozen FRODO target vs A2C loss (train_agent, a2c preset)", fontsize=9)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  os.makedirs(os.path.join(_OUT.value, "figures"), exist_ok=True)
  fig.savefig(os.path.join(_OUT.value, "figures", "frodo_transfer.png"))
  write_result(os.path.join(_OUT.value, "results", "frodo_transfer.json"), result)


if __name__ == "__main__":
  app.run(main)
