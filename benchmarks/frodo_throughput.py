r"""Throughput of online meta-training on the in-graph batched Catch, and the meta-update's cost.

  .venv/bin/python benchmarks/frodo_throughput.py --copies=1024 --iterations=20 [--inner_steps=1]

For each method (FRODO, FRODO with the extension, learned γ/λ, A2C with a fixed n-step target),
times whole iterations (M inner updates, the first on the previous iteration's held-out batch, and
M new trajectories of 16 steps from every copy, rollouts included, evaluation excluded) after two
warm-up iterations, in one process, methods
interleaved over rounds. Reports environment steps per second and each method's iteration time
relative to A2C's (same environment steps, same agent update; the difference is the meta-gradient).
Writes docs/results/frodo_throughput.json.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from benchmarks.results_io import write_result  # noqa: E402

_COPIES = flags.DEFINE_integer("copies", 1024, "Batched Catch copies.")
_ITERATIONS = flags.DEFINE_integer("iterations", 20, "Timed iterations per round.")
_ROUNDS = flags.DEFINE_integer("rounds", 3, "Interleaved rounds.")
_INNER_STEPS = flags.DEFINE_integer("inner_steps", 3, "M, inner updates per meta-update (the configs' default: 3).")
_OUT = flags.DEFINE_string("out", "docs/results/frodo_throughput.json", "Result file.")

METHODS = {"frodo": ("frodo", False), "frodo_extension": ("frodo", True), "mgrl": ("mgrl", False), "a2c": ("a2c", False)}


def main(_):
  import numpy as np

  from tf_metarl.algorithms.frodo import FrodoConfig, OnlineMetaConfig, OnlineMetaTrainer
  
  learners = {}
  for name, (method, extension) in METHODS.items():
    config = OnlineMetaConfig(env="catch", method=method, num_envs=_COPIES.value,
                              frodo=FrodoConfig(inner_steps=_INNER_STEPS.value, extension=extension))
    learners[name] = OnlineMetaTrainer(config, seed=0)
    for _ in range(2):
      learners[name].iteration()
  seconds = {name: [] for name in METHODS}
  for _ in range(_ROUNDS.value):
    for name, learner in learners.items():
      start = time.perf_counter()
      for _ in range(_ITERATIONS.value):
        learner.iteration()
      seconds[name].append((time.perf_counter() - start) / _ITERATIONS.value)
  steps = learners["a2c"].steps_per_iteration
  a2c = float(np.median(seconds["a2c"]))
  result = {"command": " ".join(sys.argv), "copies": _COPIES.value, "trajectory_length": 16, "inner_steps": _INNER_STEPS.value,
            "env_steps_per_iteration": steps}
  for name in METHODS:
    t = float(np.median(seconds[name]))
    result[name] = {"seconds_per_iteration": round(t, 4), "env_steps_per_second": round(steps / t),
                    "cost_relative_to_a2c": round(t / a2c, 2)}
  write_result(_OUT.value, result)


if __name__ == "__main__":
  app.run(main)
