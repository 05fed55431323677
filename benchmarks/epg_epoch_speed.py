r"""One EPG epoch in one graph against the same epoch as a loop of per-member inner trainings
(issue 12):

  .venv/bin/python benchmarks/epg_epoch_speed.py --population=16 --runs_per_member=2 --updates=32

"one graph": `EPGProblem.train_population` with all V × W agents stacked (what `meta_train` runs
inside each ES epoch). "loop": the same function for one agent at a time (V × W calls of one
compiled graph, as a per-member worker would run it). Both compiled once before timing; medians
of --repeats calls, interleaved. With --ray, also whole ES epochs (`EPGTrainer.iteration`, what
`meta_train` runs: inner trainings and the ES step) on the in-graph backend and on Ray with 1
and 2 worker processes started on this machine (one task per member; a first epoch, which
compiles each worker's graph, is not timed), and the bytes each Ray epoch moved. Writes
docs/results/epg_epoch_speed<tag>.json.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from benchmarks.results_io import write_result  # noqa: E402

_POPULATION = flags.DEFINE_integer("population", 16, "V perturbations.")
_RUNS = flags.DEFINE_integer("runs_per_member", 2, "W inner runs per perturbation.")
_UPDATES = flags.DEFINE_integer("updates", 32, "U updates per inner run.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed calls of each (medians).")
_RAY = flags.DEFINE_boolean("ray", False, "Also time whole epochs in graph and on Ray with 1 and 2 workers.")
_TAG = flags.DEFINE_string("tag", "", "Suffix of the result name.")
_OUT = flags.DEFINE_string("out", "docs", "Where results/ goes.")


def main(argv):
  del argv
  import numpy as np
  import tensorflow as tf
  from tf_metarl.algorithms.epg import EPGConfig, EPGTrainer
  config = EPGConfig(population=_POPULATION.value, runs_per_member=_RUNS.value, updates=_UPDATES.value)
  trainer = EPGTrainer(config, seed=0)
  problem = trainer.problem
  phi = [tf.convert_to_tensor(v) for v in trainer.objective().network.trainable_variables]
  members, runs = config.population, config.runs_per_member
  stacked = [tf.stack([p] * members) for p in phi]
  one = [p[None] for p in phi]
  whole = tf.function(lambda seed: problem.train_population(stacked, runs, tf.constant(0.5), seed, problem.task).fitness)
  single = tf.function(lambda seed: problem.train_population(one, 1, tf.constant(0.5), seed,
                                                                 problem.test_task(False, 1)).fitness)

  def loop(seed):
    return [single(tf.random.experimental.stateless_fold_in(seed, i)) for i in range(members * runs)]

  timings = {"one graph": [], "loop": []}
  start = time.perf_counter()
  whole(tf.constant([0, 1])).numpy()
  compile_whole = time.perf_counter() - start
  start = time.perf_counter()
  single(tf.constant([0, 1])).numpy()
  compile_single = time.perf_counter() - start
  for r in range(_REPEATS.value):
    for name, fn in (("one graph", whole), ("loop", loop)):
      start = time.perf_counter()
      out = fn(tf.constant([r, 2]))
      tf.nest.map_structure(lambda x: x.numpy(), out)
      timings[name].append(time.perf_counter() - start)
  steps = members * runs * config.updates * config.update_every
  medians = {k: float(np.median(v)) for k, v in timings.items()}
  result = {"command": "benchmarks/epg_epoch_speed.py " + " ".join(sys.argv[1:]), "population": members,
            "runs_per_member": runs, "updates": config.updates, "update_every": config.update_every,
            "env_steps_per_epoch": steps, "seconds": timings, "median_s": medians,
            "env_steps_per_s": {k: steps / v for k, v in medians.items()},
            "loop_over_one_graph": medians["loop"] / medians["one graph"],
            "compile_s": {"one graph": compile_whole, "one agent": compile_single}}
  if _RAY.value:
    result["whole_epochs"] = whole_epochs(config)
  write_result(os.path.join(_OUT.value, "results", f"epg_epoch_speed{_TAG.value}.json"), result)


def whole_epochs(config):
  """Seconds per ES epoch (median of --repeats after one untimed epoch) on each backend."""
  import dataclasses
  import numpy as np
  from tf_metarl.algorithms.epg import EPGTrainer
  from tf_metarl.meta.remote import RayMembers
  out = {}
  for name, backend, workers in (("graph", "graph", 0), ("ray, 1 worker", "ray", 1), ("ray, 2 workers", "ray", 2)):
    trainer = EPGTrainer(dataclasses.replace(config, backend=backend, ray_workers=workers), seed=0)
    trainer.iteration()
    seconds, metrics = [], {}
    for _ in range(_REPEATS.value):
      start = time.perf_counter()
      metrics, _ = trainer.iteration()
      seconds.append(time.perf_counter() - start)
    out[name] = {"seconds": seconds, "median_s": float(np.median(seconds)),
                 "bytes_sent": metrics.get("epg/bytes_sent"), "bytes_received": metrics.get("epg/bytes_received")}
    print(name, out[name], flush=True)
    RayMembers.shutdown()
  return out


if __name__ == "__main__":
  app.run(main)
