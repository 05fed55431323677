r"""Compares MetaGenRL meta-training runs of the same budget (the paper's section 5.2 ablations):
the population's training return per environment over the runs' last quarter, the meta-objective,
the meta-gradient norm, the alignment of L_α's policy gradient with the DDPG gradient and the
fraction of policy actions at a bound (runs that log them), and, where given, each export's
meta-test (a `metagenrl_metatest` JSON).

  .venv/bin/python benchmarks/metagenrl_ablations.py \
      --runs=full:runs/abl/full,no_time:runs/abl/no_time,no_values:runs/abl/no_values,k3:runs/abl/k3,td3:runs/abl/td3 \
      --metatests=full:docs/results/metagenrl_metatest_ablation_full.json,...

Writes docs/results/<name>.json and docs/figures/<name>.png (the population return per training
environment, one curve per run, then the meta-objective, the alignment and the fraction of actions at
a bound over the run where logged) and prints a markdown table.

Seeds of one variant: label the runs `<variant>@<seed>` (`--runs=full@0:runs/full_s0,full@1:...`).
Their curves share a colour, and a second table gives each variant's mean ± std over its runs
(`groups` in the JSON).
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from benchmarks.results_io import read_scalars, running_mean, save_figure, write_result  # noqa: E402

_RUNS = flags.DEFINE_list("runs", None, "label:logdir of each meta_train run.", required=True)
_METATESTS = flags.DEFINE_list("metatests", [], "label:metagenrl_metatest JSON of a run's export (optional).")
_NAME = flags.DEFINE_string("name", "metagenrl_ablations", "Result and figure file name.")
_OUT = flags.DEFINE_string("out", "docs", "Where results/ and figures/ go.")
_LAST = flags.DEFINE_float("last", 0.25, "The final fraction of each run's steps that the table averages.")


def labelled(items, flag):
  """['label:path', ...] -> {label: path} (one-line errors)."""
  out = {}
  for item in items:
    label, sep, path = item.partition(":")
    if not sep or not label or not path:
      raise SystemExit(f"error: --{flag} entry {item!r}: expected <label>:<path>")
    if not os.path.exists(path):
      raise SystemExit(f"error: --{flag} {label}: {path} does not exist")
    out[label] = path
  return out


# Per-meta-iteration curves plotted beside the returns (a panel each, where some run logs them).
DIAGNOSTICS = {"losses/future_policy_value": "meta-objective Q(s, π_φ'(s))",
               "meta/objective_ddpg_alignment": "alignment of L_α with ∇_φ Q (cosine)",
               "meta/policy_actions_at_bound": "fraction of policy actions at a bound"}


def tail_mean(points, fraction):
  """Mean of the values whose step lies in the final `fraction` of the steps (points: [(step, value)])."""
  last = points[-1][0]
  values = [v for s, v in points if s >= (1.0 - fraction) * last]
  return sum(values) / len(values)


def group_of(label: str) -> str:
  """The variant a run label belongs to: the part before `@` (`full@1` -> `full`)."""
  return label.split("@", 1)[0]


def group_rows(rows):
  """{label: row} -> {variant: {column: [mean, std over the variant's runs, runs]}} (numeric
  columns present in every run of the variant; std is the population std, 0 for one run)."""
  import numpy as np
  groups = {}
  for label, row in rows.items():
    groups.setdefault(group_of(label), []).append(row)
  out = {}
  for variant, members in groups.items():
    columns = [c for c in members[0] if all(isinstance(m.get(c), (int, float)) for m in members)]
    out[variant] = {c: [float(np.mean([m[c] for m in members])), float(np.std([m[c] for m in members])),
                        len(members)] for c in columns}
  return out


def main(_):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  import numpy as np

  runs, metatests = labelled(_RUNS.value, "runs"), labelled(_METATESTS.value, "metatests")
  rows, curves, diagnostics = {}, {}, {}
  for label, logdir in runs.items():
    scalars = read_scalars(os.path.join(logdir, "tb"), ("charts/return_", "losses/", "meta/objective_ddpg_alignment",
                                                         "meta/policy_actions_at_bound"))
    if "losses/meta_loss" not in scalars:
      raise SystemExit(f"error: {logdir}/tb has no losses/meta_loss summaries: not a meta_train run")
    # Population returns appear once an episode has ended.
    returns = {t.split("return_", 1)[1]: v for t, v in scalars.items() if t.startswith("charts/return_")}
    row = {f"return_{env}": tail_mean(v, _LAST.value) for env, v in sorted(returns.items())}
    for tag in ("losses/meta_grad_norm", *DIAGNOSTICS):
      finite = [(step, v) for step, v in scalars.get(tag, []) if np.isfinite(v)]
      if finite:
        row[tag.split("/", 1)[1]] = tail_mean(finite, _LAST.value)
        if tag in DIAGNOSTICS:
          diagnostics.setdefault(tag, {})[label] = finite
    row["env_steps"] = scalars["losses/meta_loss"][-1][0]
    if label in metatests:
      with open(metatests[label]) as f:
        metatest = json.load(f)
      for env, result in metatest["envs"].items():
        if len(result["methods"]) != 1:
          raise SystemExit(f"error: {metatests[label]}: expected one method per meta-test, got "
                           f"{', '.join(result['methods'])}")
        (method,) = result["methods"].values()
        row[f"metatest_{env}"] = [method["final_eval_return_mean"], method["final_eval_return_std"],
                                  len(method["per_seed"])]
    rows[label] = row
    curves[label] = returns

  envs = sorted({env for returns in curves.values() for env in returns})
  panels = len(envs) + len(diagnostics)
  grid_columns = min(panels, 3)
  rows_of_panels = -(-panels // grid_columns)
  fig, grid = plt.subplots(rows_of_panels, grid_columns, figsize=(6 * grid_columns, 4 * rows_of_panels), squeeze=False)
  axes = [list(grid.flat)]
  for ax in axes[0][panels:]:
    ax.set_visible(False)
  variants = list(dict.fromkeys(group_of(label) for label in runs))
  colour = {label: f"C{variants.index(group_of(label)) % 10}" for label in runs}
  grouped = any("@" in label for label in runs)

  def legend_label(label, seen):
    """Seeds of a variant share a colour and one legend entry."""
    if not grouped:
      return label
    variant = group_of(label)
    if variant in seen:
      return None
    seen.add(variant)
    return variant

  for ax, env in zip(axes[0], envs):
    seen = set()
    for label, returns in curves.items():
      if env in returns:
        steps, values = zip(*returns[env])
        ax.plot(steps, values, color=colour[label], label=legend_label(label, seen), lw=1.0 if grouped else 1.5)
    ax.set(title=env, xlabel="environment steps (population total)", ylabel="training return (last 100 episodes)")
    ax.legend(fontsize=8)
  for ax, tag in zip(axes[0][len(envs):], [t for t in DIAGNOSTICS if t in diagnostics]):
    seen = set()
    for label, points in diagnostics[tag].items():  # one point per meta-iteration: a running mean over 1% of them
      steps, smooth, _ = running_mean(points)
      ax.plot(steps, smooth, color=colour[label], label=legend_label(label, seen), lw=1.0 if grouped else 1.5)
    ax.set(title=f"{DIAGNOSTICS[tag]}, running mean", xlabel="environment steps (population total)")
    ax.legend(fontsize=8)
  figure = save_figure(fig, os.path.join(_OUT.value, "figures", f"{_NAME.value}.png"))
  groups = group_rows(rows) if grouped else {}
  write_result(os.path.join(_OUT.value, "results", f"{_NAME.value}.json"),
               dict(command=" ".join(sys.argv), last_fraction=_LAST.value, runs=runs, metatests=metatests,
                    figure=figure, rows=rows, groups=groups))
  columns = sorted({c for row in rows.values() for c in row if c != "env_steps"})
  print_table("run", rows, columns, lambda c: f"{c[0]:.1f} ± {c[1]:.1f}" if isinstance(c, list) else f"{c:.3g}")
  if groups:
    print()
    print_table("variant (mean ± std over runs)", groups, [c for c in columns if any(c in g for g in groups.values())],
                lambda c: f"{c[0]:.3g} ± {c[1]:.2g} ({c[2]})")


def print_table(title, rows, columns, cell):
  """A markdown table: one row per entry of `rows` ({name: {column: value}}), `cell` formats a value."""
  print(f"| {title} | " + " | ".join(columns) + " |")
  print("| --- |" + " --- |" * len(columns))
  for name, row in rows.items():
    print(f"| {name} | " + " | ".join("–" if row.get(c) is None else cell(row[c]) for c in columns) + " |")


if __name__ == "__main__":
  app.run(main)
