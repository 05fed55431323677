r"""Environment steps per second of the in-graph batched Catch rollout (random actions).

  .venv/bin/python benchmarks/catch_throughput.py --copies=1024 --length=1000

The whole rollout (observation rendered each step, autoreset, random actions) runs in one
tf.function with a tf.while_loop; timed with and without XLA, median of --repeats calls.
Writes docs/results/catch_throughput.json. Reference on this machine (../shared/FACTS.md):
gymnax's Catch-bsuite under jax.jit+vmap, same batch and policy, about 4 million steps/s.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from benchmarks.results_io import write_result  # noqa: E402

_COPIES = flags.DEFINE_integer("copies", 1024, "Batched environment copies.")
_LENGTH = flags.DEFINE_integer("length", 1000, "Steps per rollout call.")
_REPEATS = flags.DEFINE_integer("repeats", 10, "Timed calls (median reported).")
_OUT = flags.DEFINE_string("out", "docs/results/catch_throughput.json", "Result file.")


def main(_):
  import numpy as np
  import tensorflow as tf

  from tf_metarl.envs.catch import NUM_ACTIONS, Catch

  catch = Catch()
  batch = _COPIES.value
  random_policy = lambda obs, seed: tf.random.stateless_uniform([batch], seed, 0, NUM_ACTIONS, dtype=tf.int32)
  result = {"command": " ".join(sys.argv), "copies": batch, "length": _LENGTH.value, "board": [catch.rows, catch.columns]}
  for jit in (False, True):
    @tf.function(jit_compile=jit)
    def run(state, seed):
      state, out = catch.rollout(state, random_policy, seed, _LENGTH.value)
      return state, tf.reduce_sum(out["rewards"])  # consume the outputs so nothing is pruned

    state = catch.reset(tf.constant([0, 0]), batch)
    for k in range(2):
      state, _ = run(state, tf.constant([1, k]))
    times = []
    for k in range(_REPEATS.value):
      start = time.perf_counter()
      state, total = run(state, tf.constant([2, k]))
      total.numpy()
      times.append(time.perf_counter() - start)
    seconds = float(np.median(times))
    result["xla" if jit else "no_xla"] = {"seconds_per_call": round(seconds, 4),
                                          "steps_per_second": round(batch * _LENGTH.value / seconds)}
  write_result(_OUT.value, result)


if __name__ == "__main__":
  app.run(main)
