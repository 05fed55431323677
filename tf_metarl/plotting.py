"""Learning-curve plots (PNG) from the CSVs that runs write."""
from __future__ import annotations

import math
from typing import Dict, Sequence

import matplotlib

matplotlib.use("Agg")  # Files only: no display on servers.
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_learning_curves(curves: Dict[str, Sequence[Dict]], path: str, title: str = "", key: str = "eval_return",
                         fallback_key: str = "train_return", x_key: str = "env_steps",
                         xlabel: str = "environment steps", ylabel: str = "episode return") -> str:
  """Plots `key` (or `fallback_key` where `key` is empty) against `x_key`, one line per label.

  Args:
    curves: label -> rows as read by `loop.read_learning_curve`.
  """
  fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
  for label, rows in curves.items():
    for k, style in ((key, "-"), (fallback_key, ":")):
      points = [(r[x_key], r[k]) for r in rows if not math.isnan(r.get(k, float("nan")))]
      if points:
        xs, ys = np.array(points).T
        ax.plot(xs, ys, style, label=f"{label} ({k.replace('_', ' ')})")
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  ax.set_title(title)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)
  return path
