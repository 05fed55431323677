r"""Plots a MetaGenRL meta-training run from its TensorBoard summaries: the population's training
return per environment, the meta-objective and the annealing weight.

  .venv/bin/python benchmarks/metagenrl_curves.py --logdir=runs/mg_lc_cpu_s0 --name=metagenrl_meta_training

Writes docs/figures/<name>.png and docs/results/<name>.json (the curves, subsampled, and the
run's summary).
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from benchmarks.results_io import read_scalars, running_mean, write_result  # noqa: E402

_LOGDIR = flags.DEFINE_string("logdir", None, "A meta_train logdir of a MetaGenRL run.", required=True)
_NAME = flags.DEFINE_string("name", "metagenrl_meta_training", "Result and figure file name.")
_OUT = flags.DEFINE_string("out", "docs", "Where results/ and figures/ go.")
_POINTS = flags.DEFINE_integer("points", 200, "At most this many points per curve in the JSON.")
TAGS = ("charts/return_", "losses/future_policy_value", "meta/anneal_weight", "meta/objective_ddpg_alignment")


def main(_):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  from matplotlib.ticker import FuncFormatter
  thousands = FuncFormatter(lambda x, _: f"{x / 1000:g}k")
  import numpy as np

  curves = read_scalars(os.path.join(_LOGDIR.value, "tb"), TAGS)
  returns = sorted(t for t in curves if t.startswith("charts/return_"))
  if not returns:
    raise SystemExit(f"error: {_LOGDIR.value}/tb has no charts/return_<env> summaries: not a MetaGenRL run")
  alignment = [(step, v) for step, v in curves.get("meta/objective_ddpg_alignment", []) if np.isfinite(v)]
  fig, axes = plt.subplots(1, 3 if alignment else 2, figsize=(18 if alignment else 12, 4), dpi=110)
  for tag in returns:
    steps, values = zip(*curves[tag])
    axes[0].plot(steps, values, label=tag.split("return_", 1)[1])
  axes[0].set(xlabel="environment steps (population total)", ylabel="training return (last 100 episodes)",
              title="population return per training environment")
  axes[0].legend(fontsize=8)
  if "losses/future_policy_value" in curves:  # one point per meta-iteration: a running mean over 1% of them
    steps, smooth, window = running_mean(curves["losses/future_policy_value"])
    axes[1].plot(steps, smooth, label=f"meta-objective Q(s, π_φ'(s)), mean of {window}")
  if "meta/anneal_weight" in curves:
    twin = axes[1].twinx()
    steps, values = zip(*curves["meta/anneal_weight"])
    twin.plot(steps, values, color="gray", ls=":", label="annealing weight")
    twin.set_ylabel("annealing weight (0: DDPG gradient, 1: L_α)")
  axes[1].set(xlabel="environment steps (population total)", ylabel="meta-objective", title="meta-training")
  axes[1].legend(fontsize=8, loc="lower left")
  if alignment:  # running mean over 1% of the meta-iterations
    steps, smooth, _ = running_mean(alignment)
    axes[2].plot(steps, smooth)
    axes[2].axhline(0.0, color="gray", lw=0.8)
    axes[2].set(xlabel="environment steps (population total)", ylabel="cosine",
                title="L_α's policy direction vs the DDPG gradient")
  for ax in axes:
    ax.xaxis.set_major_formatter(thousands)
  fig.tight_layout()
  os.makedirs(os.path.join(_OUT.value, "figures"), exist_ok=True)
  fig.savefig(os.path.join(_OUT.value, "figures", f"{_NAME.value}.png"))
  summary_path = os.path.join(_LOGDIR.value, "summary.json")
  summary = json.load(open(summary_path)) if os.path.exists(summary_path) else None
  thin = lambda xs: xs[:: max(len(xs) // _POINTS.value, 1)] + xs[-1:]
  write_result(os.path.join(_OUT.value, "results", f"{_NAME.value}.json"),
               dict(command=" ".join(sys.argv), logdir=_LOGDIR.value, summary=summary,
                    curves={tag: thin(values) for tag, values in sorted(curves.items())}))


if __name__ == "__main__":
  app.run(main)
