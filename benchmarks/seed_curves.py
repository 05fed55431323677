"""Summaries of learning curves over seeds, shared by the benchmark scripts."""
import numpy as np


def threshold_summary(per_seed):
  """Per-seed records with `steps_to_threshold` (None if never reached) and `final_eval_return`
  -> how many seeds reach the threshold, their steps (mean ± std) and the final return (mean ± std)."""
  hit = [s["steps_to_threshold"] for s in per_seed if s["steps_to_threshold"] is not None]
  finals = [s["final_eval_return"] for s in per_seed]
  return dict(seeds_reaching=len(hit), steps_to_threshold_mean=float(np.mean(hit)) if hit else None,
              steps_to_threshold_std=float(np.std(hit)) if hit else None,
              final_eval_return_mean=float(np.mean(finals)), final_eval_return_std=float(np.std(finals)))


def mean_and_std(runs):
  """Curves (steps, values) of several seeds, cut to the shortest -> (steps, mean, std) arrays."""
  length = min(len(xs) for xs, _ in runs)
  ys = np.array([y[:length] for _, y in runs])
  return np.array(runs[0][0][:length]), ys.mean(0), ys.std(0)
