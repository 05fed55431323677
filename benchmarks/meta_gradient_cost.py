r"""Cost of the meta-gradient on the path the algorithms run, with and without XLA.

  .venv/bin/python benchmarks/meta_gradient_cost.py --copies=100 --length=20 --iterations=10 --rounds=3

Times whole meta-iterations of `OnlineMetaTrainer` (the meta-trainer's compiled step:
`UnrolledEstimator` over `FrodoProblem` on the in-graph Catch, rollouts included) for FRODO
(M = 3 differentiable inner updates, backward-LSTM target, second-order meta-gradient, Adam on
η) and for A2C in the same loop (the same M first-order inner updates and rollouts, no
meta-parameters), each compiled without and with XLA (`jit_compile=True`), interleaved in one
process. Reports the FRODO/A2C ratio (the price of the meta-gradient) and the XLA speed-up.
Writes docs/results/meta_gradient_cost.json.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from benchmarks.results_io import write_result  # noqa: E402

_COPIES = flags.DEFINE_integer("copies", 100, "Batched Catch copies (the batch of every update).")
_LENGTH = flags.DEFINE_integer("length", 20, "Trajectory length.")
_ITERATIONS = flags.DEFINE_integer("iterations", 10, "Timed iterations per round.")
_ROUNDS = flags.DEFINE_integer("rounds", 3, "Interleaved rounds.")
_OUT = flags.DEFINE_string("out", "docs/results/meta_gradient_cost.json", "Result file.")


def main(_):
  import numpy as np
  import tensorflow as tf

  from tf_metarl.algorithms.frodo import OnlineMetaConfig, OnlineMetaTrainer

  trainers = {}
  for method in ("frodo", "a2c"):
    for jit in (False, True):
      config = OnlineMetaConfig(env="catch", method=method, num_envs=_COPIES.value, trajectory_length=_LENGTH.value)
      trainer = OnlineMetaTrainer(config, seed=0, jit_compile=jit)
      start = time.perf_counter()
      trainer.iteration()
      compile_s = time.perf_counter() - start
      trainer.iteration()
      trainers[(method, jit)] = (trainer, compile_s)
  seconds = {key: [] for key in trainers}
  for _ in range(_ROUNDS.value):
    for key, (trainer, _) in trainers.items():
      start = time.perf_counter()
      for _ in range(_ITERATIONS.value):
        trainer.iteration()
      seconds[key].append((time.perf_counter() - start) / _ITERATIONS.value)
  result = {"command": " ".join(sys.argv), "tensorflow": tf.__version__, "cpu_count": os.cpu_count(),
            "copies": _COPIES.value, "trajectory_length": _LENGTH.value, "inner_steps": 3}
  for jit in (False, True):
    name = "xla" if jit else "no_xla"
    frodo, a2c = (float(np.median(seconds[(m, jit)])) for m in ("frodo", "a2c"))
    result[name] = {"frodo_iteration_ms": round(1e3 * frodo, 2), "a2c_iteration_ms": round(1e3 * a2c, 2),
                    "ratio": round(frodo / a2c, 2), "first_call_s": {m: round(trainers[(m, jit)][1], 1)
                                                                     for m in ("frodo", "a2c")}}
  result["xla_speedup_frodo"] = round(result["no_xla"]["frodo_iteration_ms"] / result["xla"]["frodo_iteration_ms"], 2)
  result["faster_setting"] = "xla" if result["xla_speedup_frodo"] > 1 else "no_xla"
  write_result(_OUT.value, result)


if __name__ == "__main__":
  app.run(main)
