"""Where benchmark scripts write their results."""
import json
import os


def write_result(path: str, result: dict) -> None:
  """Writes `result` as indented JSON to `path` (creating its folder) and prints it as one line."""
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  with open(path, "w") as f:
    json.dump(result, f, indent=2)
  print(json.dumps(result))


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
