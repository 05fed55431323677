r"""How consistent are the implicit reward method's meta-gradient estimates, and do they point the way
the helper weight z_η has to go? (issue 11: why the implicit estimate stalls where BiPaRS does not)

  .venv/bin/python benchmarks/implicit_reward_estimates.py --helper=harmful --overrides=helper_scale=10 \
      --train_run=bipars --points=0,40,120 --samples=32 --tag=_harmful_x10

One meta-training run (`--train_run`, seed `--seed`) is stopped at each of `--points` meta-iterations.
At that frozen (η, θ) every estimator of `--estimators` (the meta-trainer's own
`ImplicitEstimator`, built by `implicit_reward.make_estimator` as `meta_train` builds it) draws
`--samples` estimates g_i, each from its own seed: K inner iterations from θ, a fresh held-out batch
and the solve, exactly as one meta-step does. Sample i of every estimator uses the same seed, so
the same batches. Reported per estimator and point:
- snr: ‖mean g‖ / sqrt(mean ‖g_i − mean g‖²), how much of an estimate is signal;
- pairwise_cosine: the mean cosine between estimates of different seeds;
- lowers_z: the fraction of estimates whose descent step −g lowers the mean helper weight over the
  frozen point's states to first order (J·g_i > 0 with J = ∂ mean z_η / ∂η); for a harmful helper
  that is the right way;
- cosine_with_z: the mean cosine between g_i and J;
- cosine_with_first: the mean cosine between g_i and the first estimator's g_i on the same batches;
- rejected: the fraction of solves the meta-trainer would reject (`max_residual`); the statistics
  above use only the samples that neither this estimator nor the first rejected (`kept`).
Writes docs/results/implicit_reward_estimates<tag>.json and a figure of the same name.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from benchmarks.results_io import save_figure, write_result  # noqa: E402

_HELPER = flags.DEFINE_string("helper", "harmful", "Helper reward.")
_ACTIONS = flags.DEFINE_enum("actions", "discrete", ["discrete", "continuous"], "CartPole's action space.")
_TRAIN_RUN = flags.DEFINE_string("train_run", "bipars", "The run meta-trained to reach each point.")
_ESTIMATORS = flags.DEFINE_list("estimators", ["bipars", "implicit:cg", "implicit:neumann", "implicit:diagonal"],
                                "Estimators compared at each point (the first is the reference of cosine_with_first).")
_POINTS = flags.DEFINE_list("points", ["0", "40", "120"], "Meta-iterations of training before each frozen point.")
_SAMPLES = flags.DEFINE_integer("samples", 32, "Estimates per estimator and point.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the training run.")
_OVERRIDES = flags.DEFINE_list("overrides", [], "implicit_reward config overrides, e.g. helper_scale=10.")
_TAG = flags.DEFINE_string("tag", "", "Suffix of the result and figure names.")
_OUT = flags.DEFINE_string("out", "docs", "Where results/ and figures/ go.")


def config_values(run: str):
  from configs.implicit_reward_cartpole import run_section
  return run_section(run, _HELPER.value, _ACTIONS.value, _OVERRIDES.value)


def statistics(samples, reference, z_direction):
  """The module docstring's numbers from estimates [M, P], the reference's [M, P] and J [P]."""
  import numpy as np
  unit = lambda x: x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-30)
  mean = samples.mean(0)
  spread = np.sqrt(np.mean(np.sum((samples - mean) ** 2, -1)))
  cosines = unit(samples) @ unit(samples).T
  m = len(samples)
  along_z = samples @ z_direction
  return {"snr": float(np.linalg.norm(mean) / max(spread, 1e-30)),
          "pairwise_cosine": float((cosines.sum() - np.trace(cosines)) / (m * (m - 1))),
          "lowers_z": float(np.mean(along_z > 0)),
          "cosine_with_z": float(np.mean(unit(samples) @ unit(z_direction))),
          "cosine_with_first": float(np.mean(np.sum(unit(samples) * unit(reference), -1))),
          "mean_norm": float(np.mean(np.linalg.norm(samples, axis=-1)))}


def main(_):
  import numpy as np
  import tensorflow as tf
  from tf_metarl.algorithms.implicit_reward import ImplicitRewardTrainer, config_from_section, make_estimator
  from tf_metarl.meta.implicit import flatten
  trainer = ImplicitRewardTrainer(config_from_section(config_values(_TRAIN_RUN.value)), _SEED.value)
  problem = trainer.problem
  estimators = {run: make_estimator(config_from_section(config_values(run))) for run in _ESTIMATORS.value}
  points, done, start = sorted(int(p) for p in _POINTS.value), 0, time.time()
  record = {"command": "benchmarks/implicit_reward_estimates.py " + " ".join(sys.argv[1:]), "helper": _HELPER.value,
            "actions": _ACTIONS.value, "overrides": _OVERRIDES.value, "train_run": _TRAIN_RUN.value,
            "seed": _SEED.value, "samples": _SAMPLES.value, "points": []}

  @tf.function
  def z_gradient(eta, state, seed):
    batch = problem.meta_batch(state, seed)[1]
    with tf.GradientTape() as tape:
      tape.watch(eta)
      z = tf.reduce_mean(problem.shaped(eta, batch)[2])
    return flatten(tape.gradient(z, eta, unconnected_gradients=tf.UnconnectedGradients.ZERO)), z

  def estimate_fn(estimator):  # traced once per estimator: η and θ are arguments
    def estimate(eta, state, seed):
      grads, _, metrics = estimator.estimate(problem, eta, state, seed)
      return flatten(grads), metrics.get("reject", tf.constant(False))
    return tf.function(estimate)

  estimates = {run: estimate_fn(estimator) for run, estimator in estimators.items()}
  for point in points:
    while done < point:
      trainer.iteration()
      done += 1
    eta, state = trainer.eta.read(), trainer.state.read()
    direction, z_mean = z_gradient(eta, state, tf.constant([_SEED.value, 999_999]))
    rows = {}
    for run, estimate in estimates.items():
      draws = [estimate(eta, state, tf.constant([_SEED.value, 10_000 + i])) for i in range(_SAMPLES.value)]
      rows[run] = (np.stack([g.numpy() for g, _ in draws]), np.array([bool(r) for _, r in draws]))
    first, first_rejected = rows[_ESTIMATORS.value[0]]
    entry = {"meta_iterations": point, "env_steps": int(trainer.env_steps.numpy()), "mean_z": float(z_mean),
             "estimators": {}}
    for run, (samples, rejected) in rows.items():
      kept = ~rejected & ~first_rejected  # the estimates a meta-step would take (and the reference's on the same seeds)
      stats = statistics(samples[kept], first[kept], direction.numpy()) if kept.sum() >= 2 else {}
      entry["estimators"][run] = dict(stats, rejected=float(rejected.mean()), kept=int(kept.sum()))
    record["points"].append(entry)
    print(f"point {point} (mean z {float(z_mean):.3f}, {time.time() - start:.0f} s):", flush=True)
    for run, stats in entry["estimators"].items():
      print(f"  {run:20s} " + " ".join(f"{k} {v:.3g}" for k, v in stats.items()), flush=True)
  name = f"implicit_reward_estimates{_TAG.value}"
  record["figure"] = plot(record, os.path.join(_OUT.value, "figures", f"{name}.png"))
  write_result(os.path.join(_OUT.value, "results", f"{name}.json"), record)


def plot(record, path):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  import numpy as np
  keys = ("snr", "pairwise_cosine", "lowers_z", "cosine_with_z")
  fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.8))
  runs = list(record["points"][0]["estimators"])
  width = 0.8 / len(runs)
  for ax, key in zip(axes, keys):
    for k, run in enumerate(runs):
      values = [p["estimators"][run].get(key, float("nan")) for p in record["points"]]
      ax.bar(np.arange(len(values)) + k * width, values, width, label=run)
    ax.set_xticks(np.arange(len(record["points"])) + 0.4 - width / 2)
    ax.set_xticklabels([f"{p['meta_iterations']} it.\nz={p['mean_z']:.2f}" for p in record["points"]], fontsize=8)
    ax.set_title(key)
  axes[0].legend(fontsize=7)
  fig.suptitle(f"meta-gradient estimates at frozen points of a {record['train_run']} run, helper {record['helper']} "
               f"{' '.join(record['overrides'])} ({record['samples']} samples each)", fontsize=9)
  return save_figure(fig, path)


if __name__ == "__main__":
  app.run(main)
