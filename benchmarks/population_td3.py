r"""One TD3 update for a population of N agents: one vectorised call against a loop of N single calls.

  .venv/bin/python benchmarks/population_td3.py --sizes=1,5,20 --batch=256 --repeats=10

Agents of 3 × 350 ReLU units (actor and twin critic; observation 17, action 6: HalfCheetah's
sizes), Adam, TD3's critic and actor update (`agents.TD3.update` with policy delay 1, so every
call updates both). Batched: `agents.population.vectorize(update)` on stacked states, batches and
seeds, one `tf.function` call. Loop: N calls of the compiled single-agent update. Both in one
process, interleaved; the ratio is what is reported. Writes docs/results/population_td3.json.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from benchmarks.results_io import write_result  # noqa: E402

_SIZES = flags.DEFINE_list("sizes", ["1", "5", "20"], "Population sizes N.")
_BATCHES = flags.DEFINE_list("batch", ["256"], "Transitions per update and agent (one or more sizes).")
_REPEATS = flags.DEFINE_integer("repeats", 10, "Timed calls per measurement (median).")
_ROUNDS = flags.DEFINE_integer("rounds", 2, "Interleaved rounds.")
_OUT = flags.DEFINE_string("out", "docs/results/population_td3.json", "Result file.")


def main(_):
  import keras
  import numpy as np
  import tensorflow as tf

  from tf_metarl.agents import TD3, Adam, TD3Settings, population
  from tf_metarl.networks import DeterministicPolicy, TwinQCritic
  from tf_metarl.objectives import TD3ActorObjective
  from tf_metarl.trajectories import Trajectory

  obs_dim, act_dim, hidden = 17, 6, (350, 350, 350)
  keras.utils.set_random_seed(0)
  td3 = TD3(DeterministicPolicy(obs_dim, [-1.0] * act_dim, [1.0] * act_dim, hidden),
            TwinQCritic(obs_dim, act_dim, hidden), Adam(1e-3), Adam(1e-3), TD3Settings(policy_delay=1))
  objective = TD3ActorObjective()
  update = lambda state, batch, seed: td3.update(state, batch, seed, objective)
  single = tf.function(update)
  batched = tf.function(population.vectorize(update))
  rng = np.random.default_rng(0)

  def batch(n, b):
    """n agents' batches of b transitions, as [n, b, 1, ...] sequences of length 1."""
    normal = lambda *shape: tf.constant(rng.normal(size=(n, b, 1) + shape), tf.float32)
    actions = tf.clip_by_value(normal(act_dim), -1.0, 1.0)
    zeros = tf.zeros((n, b, 1))
    return Trajectory(observations=normal(obs_dim), actions=actions, rewards=normal(), next_observations=normal(obs_dim),
                      terminated=zeros, truncated=zeros, policy_outputs=actions, log_probs=zeros, episode_steps=zeros)

  def median_ms(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
      start = time.perf_counter()
      fn()
      times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))

  result = {"command": " ".join(sys.argv), "tensorflow": tf.__version__, "cpu_count": os.cpu_count(),
            "hidden": list(hidden), "sizes": {}}
  for b in (int(x) for x in _BATCHES.value):
    for n in (int(x) for x in _SIZES.value):
      states = population.stack([td3.init() for _ in range(n)])
      data = batch(n, b)
      seeds = population.member_seeds(tf.constant([0, 1]), n)
      members = population.unstack(states, n)
      member_batches = population.unstack(data, n)
      run_batched = lambda: tf.nest.flatten(batched(states, data, seeds)[0])[0].numpy()
      run_loop = lambda: [tf.nest.flatten(single(members[i], member_batches[i], seeds[i])[0])[0].numpy()
                          for i in range(n)]
      samples = {"batched": [], "loop": []}
      for _ in range(_ROUNDS.value):
        samples["batched"].append(median_ms(run_batched, _REPEATS.value))
        samples["loop"].append(median_ms(run_loop, _REPEATS.value))
      batched_ms, loop_ms = (float(np.median(samples[k])) for k in ("batched", "loop"))
      result["sizes"][f"batch{b}_n{n}"] = {"batch": b, "agents": n, "batched_ms": round(batched_ms, 1),
                                           "loop_ms": round(loop_ms, 1), "speedup": round(loop_ms / batched_ms, 2)}
      print(result["sizes"][f"batch{b}_n{n}"], flush=True)
  write_result(_OUT.value, result)


if __name__ == "__main__":
  app.run(main)
