r"""One EPG epoch in one graph against the same epoch as a loop of per-member inner trainings
(issue 12):

  .venv/bin/python benchmarks/epg_epoch_speed.py --population=16 --runs_per_member=2 --updates=32

"one graph": `EPGProblem.train_population` with all V × W agents stacked (what `meta_train` runs
inside each ES epoch). "loop": the same function for one agent at a time (V × W calls of one
compiled graph, as a per-member worker would run it). Both compiled once before timing; medians
of --repeats calls, interleaved. With --ray, also whole ES epochs (`EPGTrainer.iteration`, what
`meta_train` runs: inner trainings and the ES step) on the in-graph backend and on Ray with 1
and 2 worker processes started on this machine (one task per member; a first epoch, which
compiles each worker's graph, is not timed), and the bytes each Ray epoch moved. With --xla, also
whole ES epochs in graph with and without `epg.jit_compile` (the first, compiling epoch timed
apart). Writes docs/results/epg_epoch_speed<tag>.json.
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
_GRADIENT_STEPS = flags.DEFINE_integer("gradient_steps", 1, "Gradient steps on the inner loss per update.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed calls of each (medians).")
_RAY = flags.DEFINE_boolean("ray", False, "Also time whole epochs in graph and on Ray with 1 and 2 workers.")
_XLA = flags.DEFINE_boolean("xla", False, "Also time whole epochs in graph with and without XLA (epg.jit_compile).")
_SKIP_LOOP = flags.DEFINE_boolean("skip_loop", False, "Skip the one-graph against per-agent loop timing.")
_TAG = flags.DEFINE_string("tag", "", "Suffix of the result name.")
_OUT = flags.DEFINE_string("out", "docs", "Where results/ goes.")


def main(argv):
  del argv
  from tf_metarl.algorithms.epg import EPGConfig
  config = EPGConfig(population=_POPULATION.value, runs_per_member=_RUNS.value, updates=_UPDATES.value,
                     gradient_steps=_GRADIENT_STEPS.value)
  steps = config.epoch_steps
  result = {"command": "benchmarks/epg_epoch_speed.py " + " ".join(sys.argv[1:]), "population": config.population,
            "runs_per_member": config.runs_per_member, "updates": config.updates,
            "update_every": config.update_every, "gradient_steps": config.gradient_steps,
            "env_steps_per_epoch": steps}
  if not _SKIP_LOOP.value:
    result.update(graph_against_loop(config))
  backends = []
  if _RAY.value:
    backends += [("graph", {}), ("ray, 1 worker", dict(backend="ray", ray_workers=1)),
                 ("ray, 2 workers", dict(backend="ray", ray_workers=2))]
  if _XLA.value:
    backends += [("graph", {})] * (not _RAY.value) + [("graph, XLA", dict(jit_compile=True))]
  if backends:
    result["whole_epochs"] = whole_epochs(config, backends)
  write_result(os.path.join(_OUT.value, "results", f"epg_epoch_speed{_TAG.value}.json"), result)


def graph_against_loop(config):
  """`train_population` for all V × W agents stacked against V × W one-agent calls (medians)."""
  import numpy as np
  import tensorflow as tf
  from tf_metarl.algorithms.epg import EPGTrainer
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
  medians = {k: float(np.median(v)) for k, v in timings.items()}
  return {"seconds": timings, "median_s": medians,
          "env_steps_per_s": {k: config.epoch_steps / v for k, v in medians.items()},
          "loop_over_one_graph": medians["loop"] / medians["one graph"],
          "compile_s": {"one graph": compile_whole, "one agent": compile_single}}


def whole_epochs(config, backends):
  """Seconds per ES epoch (median of --repeats after one epoch, timed apart as `first_epoch_s`,
  that compiles) for each (name, EPGConfig overrides) of `backends`."""
  import dataclasses
  import numpy as np
  from tf_metarl.algorithms.epg import EPGTrainer
  from tf_metarl.meta.remote import RayMembers
  out = {}
  for name, overrides in backends:
    trainer = EPGTrainer(dataclasses.replace(config, **overrides), seed=0)
    start = time.perf_counter()
    trainer.iteration()
    first = time.perf_counter() - start
    seconds, metrics = [], {}
    for _ in range(_REPEATS.value):
      start = time.perf_counter()
      metrics, _ = trainer.iteration()
      seconds.append(time.perf_counter() - start)
    out[name] = {"seconds": seconds, "median_s": float(np.median(seconds)), "first_epoch_s": first,
                 "env_steps_per_s": config.epoch_steps / float(np.median(seconds)),
                 "bytes_sent": metrics.get("epg/bytes_sent"), "bytes_received": metrics.get("epg/bytes_received")}
    print(name, out[name], flush=True)
    RayMembers.shutdown()
  return out


if __name__ == "__main__":
  app.run(main)
