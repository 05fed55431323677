r"""Meta-test of a MetaGenRL export: fresh agents trained by the frozen L_α against the baselines of
the paper's Table 2, at equal environment steps, on training and unseen environments.

  .venv/bin/python benchmarks/metagenrl_metatest.py --export=export/metagenrl_lunar_cheetah \
      --envs=Hopper-v5:40000,InvertedPendulum-v5:15000,Pendulum-v1:15000 --seeds=3 --workers=2

Methods (all through `train_agent`'s code path, `learners.train`):
  learned: the export; the off-policy learner with the settings the export carries (its
    `learner_settings`: the meta-training agents' networks, batch of segments, warm-up, TD3's
    constants); policy by ∇_φ L_α, critic by TD.
  td3: the same learner and settings, the policy by the DDPG gradient ∇_φ Q (the paper's TD3).
  reinforce_offpolicy: the same learner and settings, off-policy REINFORCE with GAE.
  ppo, reinforce: the on-policy learner with train_agent's `ppo` and `reinforce` presets
    (REINFORCE with GAE(0.95)).
Greedy evaluation every steps / 10. Run directories are named by (method, environment, seed), so a
rerun with the same --logdir resumes unfinished runs and reuses finished ones. Writes
docs/results/metagenrl_metatest<tag>.json and docs/figures/metagenrl_metatest<tag>.png.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import flags, logging  # noqa: E402

from benchmarks.results_io import write_result  # noqa: E402
from tf_metarl import errors  # noqa: E402
from benchmarks.seed_curves import mean_and_std  # noqa: E402

METHODS = ("learned", "td3", "reinforce_offpolicy", "ppo", "reinforce")
_EXPORT = flags.DEFINE_string("export", "export/metagenrl_lunar_cheetah", "The MetaGenRL export under test.")
_ENVS = flags.DEFINE_list("envs", ["Hopper-v5:40000", "InvertedPendulum-v5:15000", "Pendulum-v1:15000"],
                          "Environments with their step budgets, id:steps.")
_METHODS = flags.DEFINE_list("methods", list(METHODS), f"Subset of {', '.join(METHODS)}.")
_SEEDS = flags.DEFINE_integer("seeds", 3, "Seeds per method and environment.")
_EVAL_EPISODES = flags.DEFINE_integer("eval_episodes", 5, "Greedy episodes per evaluation.")
_WORKERS = flags.DEFINE_integer("workers", 1, "Runs in parallel, one process each.")
_LOGDIR = flags.DEFINE_string("logdir", "runs/metagenrl_metatest", "Run directories (reused on rerun).")
_TAG = flags.DEFINE_string("tag", "", "Suffix of the result files.")
_OUT = flags.DEFINE_string("out", "docs", "Where results/ and figures/ go.")


def parse_envs(items):
  """['Hopper-v5:40000', ...] -> [('Hopper-v5', 40000), ...] (one-line errors)."""
  out = []
  for item in items:
    env, _, steps = item.rpartition(":")
    if not env or not steps.isdigit() or int(steps) < 1:
      raise errors.ConfigError(f"--envs entry {item!r}: expected <gymnasium id>:<steps>, e.g. Hopper-v5:40000")
    out.append((env, int(steps)))
  return out


def run_config(method, export, steps, eval_episodes):
  """(objective spec, train_agent config) of one method."""
  from configs import train_agent as train_agent_config
  from tf_metarl.export import load_metadata
  preset = method if method in ("ppo", "reinforce") else "td3"
  config = train_agent_config.get_config(preset)
  config.steps, config.eval_every, config.eval_episodes = steps, max(steps // 10, 1), eval_episodes
  config.checkpoint_every = max(steps // 2, 1)
  if method in ("td3", "reinforce_offpolicy"):  # the learned objective's agent, another actor objective
    config.off_policy.update(load_metadata(export).get("learner_settings", {}))  # metadata only: no model load
  return (export if method == "learned" else method), config


def run_one(method, env, steps, seed, export, eval_episodes, logdir, threads):
  import numpy as np
  import tensorflow as tf
  if threads:
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
  from tf_metarl.learners import train
  from tf_metarl.learners.loop import CURVE_FILE, read_learning_curve

  spec, config = run_config(method, export, steps, eval_episodes)
  run_dir = os.path.join(logdir, f"{method}-{env.replace('/', '_')}-s{seed}")  # ids like tf_metarl/X: one level
  summary = train(env, spec, seed, run_dir, config)
  rows = [r for r in read_learning_curve(os.path.join(run_dir, CURVE_FILE)) if np.isfinite(r["eval_return"])]
  record = dict(seed=seed, final_eval_return=summary["final_eval_return"], best_eval_return=summary["best_eval_return"],
                wall_time_s=summary["wall_time_s"],  # the run's own time, also when a finished run is reused
                steps_per_second=round(summary["env_steps"] / max(summary["wall_time_s"], 1e-9), 1),
                skipped_updates=summary.get("skipped_updates", 0))
  return record, ([r["env_steps"] for r in rows], [r["eval_return"] for r in rows])


def main(_):
  import concurrent.futures
  import multiprocessing

  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  from matplotlib.ticker import FuncFormatter
  thousands = FuncFormatter(lambda x, _: f"{x / 1000:g}k")
  import numpy as np

  from tf_metarl.export import load_metadata

  from tf_metarl.envs.gym_envs import describe_env
  envs = parse_envs(_ENVS.value)
  for env, _ in envs:
    describe_env(env)  # an unknown id fails here, in one line
  unknown = sorted(set(_METHODS.value) - set(METHODS))
  if unknown:
    raise errors.ConfigError(f"unknown method(s) {', '.join(unknown)}; expected a subset of {', '.join(METHODS)}")
  metadata = load_metadata(_EXPORT.value)  # fails in one line before any run starts
  jobs = [(m, env, steps, seed) for env, steps in envs for m in _METHODS.value for seed in range(_SEEDS.value)]
  threads = 1 if _WORKERS.value > 1 else 0
  with concurrent.futures.ProcessPoolExecutor(_WORKERS.value, mp_context=multiprocessing.get_context("spawn")) as pool:
    futures = {job: pool.submit(run_one, *job, _EXPORT.value, _EVAL_EPISODES.value, _LOGDIR.value, threads)
               for job in jobs}
    done = {job: future.result() for job, future in futures.items()}

  training = metadata.get("training_config", {}).get("metagenrl", {})
  result = dict(command=" ".join(sys.argv), export=_EXPORT.value, meta_trained_on=training.get("envs"),
                meta_training_steps=metadata.get("provenance", {}).get("env_steps"), seeds=_SEEDS.value,
                eval_episodes=_EVAL_EPISODES.value, learner_settings=metadata.get("learner_settings"), envs={})
  fig, axes = plt.subplots(1, len(envs), figsize=(5.5 * len(envs), 4), dpi=110, squeeze=False)
  for ax, (env, steps) in zip(axes[0], envs):
    rows = {}
    for method in _METHODS.value:
      runs = [done[(method, env, steps, seed)] for seed in range(_SEEDS.value)]
      finals = [r["final_eval_return"] for r, _ in runs]
      rows[method] = dict(final_eval_return_mean=float(np.mean(finals)), final_eval_return_std=float(np.std(finals)),
                          per_seed=[r for r, _ in runs])
      logging.info("%s %s: %.1f ± %.1f", env, method, np.mean(finals), np.std(finals))
      xs, mean, std = mean_and_std([curve for _, curve in runs])
      ax.plot(xs, mean, label=method)
      ax.fill_between(xs, mean - std, mean + std, alpha=0.15)
    seen = env in (training.get("envs") or [])
    result["envs"][env] = dict(steps=steps, seen_in_meta_training=seen, methods=rows)
    ax.set_title(f"{env} ({'seen' if seen else 'unseen'}), {_SEEDS.value} seeds")
    ax.set_xlabel("environment steps")
    ax.set_ylabel(f"greedy return ({_EVAL_EPISODES.value} episodes)")
    ax.legend(fontsize=8)
    ax.xaxis.set_major_formatter(thousands)
  fig.tight_layout()
  os.makedirs(os.path.join(_OUT.value, "figures"), exist_ok=True)
  fig.savefig(os.path.join(_OUT.value, "figures", f"metagenrl_metatest{_TAG.value}.png"))
  write_result(os.path.join(_OUT.value, "results", f"metagenrl_metatest{_TAG.value}.json"), result)


if __name__ == "__main__":
  from tf_metarl.bin import common
  common.run(main)  # one-line errors for a missing export, unknown environments, bad configs
