"""Where benchmark scripts write their results."""
import json
import os


def write_result(path: str, result: dict) -> None:
  """Writes `result` as indented JSON to `path` (creating its folder) and prints it as one line."""
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  with open(path, "w") as f:
    json.dump(result, f, indent=2)
  print(json.dumps(result))


def read_scalars(tb_dir: str, prefixes) -> dict:
  """{tag: [(step, value)]} of a TensorBoard directory's scalar summaries whose tags start with one
  of `prefixes` (TF2's summary API writes scalars as tensors)."""
  import tensorflow as tf
  from tensorboard.backend.event_processing import event_accumulator
  acc = event_accumulator.EventAccumulator(tb_dir, size_guidance={"tensors": 0})
  acc.Reload()
  return {tag: [(e.step, float(tf.make_ndarray(e.tensor_proto))) for e in acc.Tensors(tag)]
          for tag in acc.Tags()["tensors"] if tag.startswith(tuple(prefixes))}


def running_mean(points, parts: int = 100):
  """(steps, means, window) of [(step, value)] points: the running mean over 1/`parts` of them
  (at least 1), each mean placed at its window's last step. For one-point-per-iteration curves."""
  import numpy as np
  steps, values = map(np.asarray, zip(*points))
  window = max(len(values) // parts, 1)
  return steps[window - 1:], np.convolve(values, np.ones(window) / window, mode="valid"), window


def define_meta_test_flags(seed: int):
  """The flags of a command that meta-tests a meta_train run: (logdir, runs, seed, tag, out)."""
  from absl import flags
  return (flags.DEFINE_string("logdir", None, "The meta_train run (config.json and checkpoints); several, "
                              "comma-separated, where the command takes seeds.", required=True),
          flags.DEFINE_integer("runs", 5, "Fresh agents (and task draws) per loss."),
          flags.DEFINE_integer("seed", seed, "Seed of the agents, tasks and noise."),
          flags.DEFINE_string("tag", "", "Suffix of the result and figure names."),
          flags.DEFINE_string("out", "docs", "Where results/ and figures/ go."))


def save_figure(fig, path: str) -> str:
  """Lays out and writes a matplotlib figure as PNG (creating its folder); returns the path."""
  fig.tight_layout()
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  fig.savefig(path, dpi=110)
  return path
