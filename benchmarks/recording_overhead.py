r"""What recording an RLDS dataset costs a training run (issue 13: at most 10%):

  .venv/bin/python benchmarks/recording_overhead.py --env=CartPole-v1 --objective=ppo --steps=20000 --repeats=3

The same `learners.train` call (what `train_agent` runs) with and without `config.record`,
interleaved after one untimed run (which compiles the graphs), each in a fresh logdir and dataset
directory; wall-clock of the whole call, medians over --repeats. Writes docs/results/recording_overhead<tag>.json.
"""
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from benchmarks.results_io import write_result  # noqa: E402

_ENV = flags.DEFINE_string("env", "CartPole-v1", "A gymnasium id (recording needs the Python path).")
_OBJECTIVE = flags.DEFINE_string("objective", "ppo", "Built-in objective or an export.")
_STEPS = flags.DEFINE_integer("steps", 20_000, "Environment steps per run.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Runs of each (medians).")
_TAG = flags.DEFINE_string("tag", "", "Suffix of the result name.")
_OUT = flags.DEFINE_string("out", "docs", "Where results/ goes.")


def main(argv):
  del argv
  import numpy as np
  from tf_metarl import learners
  sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs"))
  import train_agent  # configs/train_agent.py: the defaults train_agent runs with
  config = train_agent.get_config("td3" if _OBJECTIVE.value == "td3" else "ppo")
  config.steps, config.eval_every = _STEPS.value, 0
  seconds = {"without recording": [], "with recording": []}
  episodes = []
  with tempfile.TemporaryDirectory() as scratch:
    learners.train(_ENV.value, _OBJECTIVE.value, 0, os.path.join(scratch, "warm-up"), config.to_dict())  # not timed
    for r in range(_REPEATS.value):
      for name in seconds:
        config.record = os.path.join(scratch, f"ds{r}") if name == "with recording" else ""
        start = time.perf_counter()
        learners.train(_ENV.value, _OBJECTIVE.value, 0, os.path.join(scratch, f"run{r}-{bool(config.record)}"), config.to_dict())
        seconds[name].append(time.perf_counter() - start)
        if config.record:
          from tf_metarl.recording import read_episodes
          episodes.append(sum(1 for _ in read_episodes(config.record)))
  medians = {k: float(np.median(v)) for k, v in seconds.items()}
  result = {"command": "benchmarks/recording_overhead.py " + " ".join(sys.argv[1:]), "env": _ENV.value,
            "objective": _OBJECTIVE.value, "steps": _STEPS.value, "seconds": seconds, "median_s": medians,
            "overhead": medians["with recording"] / medians["without recording"] - 1.0,
            "episodes_recorded": episodes}
  write_result(os.path.join(_OUT.value, "results", f"recording_overhead{_TAG.value}.json"), result)


if __name__ == "__main__":
  app.run(main)
