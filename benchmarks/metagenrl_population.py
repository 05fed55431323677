r"""MetaGenRL's population update: one compiled call for N agents against N single-agent calls.

  .venv/bin/python benchmarks/metagenrl_population.py --sizes=1,5,20 --repeats=5

The code path `MetaGenRLProblem.unroll` and `meta_loss` run, on LunarLanderContinuous-v3's sizes
(observation 8, action 2) with the paper's networks (3 × 350 ReLU, layer normalisation), batch
100 × 20 steps, L_α with 32 units:

  update: `AgentGroup.update` (critics, then policies with L_α, targets: policy_delay = 1 here so
    every call does all of it) plus the meta-gradient of `future_policy_values` (K = 1) for α;
  batched: one `tf.function` call on the stacked N agents;
  loop: N calls of the same compiled function on one agent each (N = 1 stacks).

Both in one process, interleaved over rounds; medians. Then, with --loop_iterations > 0, the whole
loop (`MetaGenRLTrainer.iteration`: environment steps, replay, updates, meta-update) on
LunarLanderContinuous-v3 for each N after a short warm-up: agent-steps per second, with the copies
stepping in this process before the update (--env_modes=sync) and/or in worker processes overlapped
with it (async, `MetaGenRLConfig.async_envs`). Writes
docs/results/metagenrl_population.json.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from benchmarks.results_io import write_result  # noqa: E402

_SIZES = flags.DEFINE_list("sizes", ["1", "5", "20"], "Population sizes N.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed calls per measurement (median).")
_ROUNDS = flags.DEFINE_integer("rounds", 2, "Interleaved rounds.")
_HIDDEN = flags.DEFINE_list("hidden", ["350", "350", "350"], "Hidden layer sizes of policies and critics.")
_LOOP_ITERATIONS = flags.DEFINE_integer("loop_iterations", 0, "Timed whole-loop iterations per N (0: skip).")
_ENV_MODES = flags.DEFINE_list("env_modes", ["sync"], "How the whole loop's copies step: sync (in this process, "
                               "before the update) and/or async (worker processes, overlapped with the update).")
_OUT = flags.DEFINE_string("out", "docs/results/metagenrl_population.json", "Result file.")


def main(_):
  unknown = sorted(set(_ENV_MODES.value) - {"sync", "async"})
  if unknown:
    raise app.UsageError(f"--env_modes: unknown mode(s) {', '.join(unknown)}; expected sync and/or async")
  import numpy as np
  import tensorflow as tf

  from tf_metarl.algorithms.metagenrl import (AgentGroup, MetaGenRLConfig, annealed_objective,
                                              future_policy_values)
  from tf_metarl.objectives import MetaGenRLObjective
  from tf_metarl.trajectories import Trajectory

  sizes = [int(n) for n in _SIZES.value]
  config = MetaGenRLConfig(envs=("LunarLanderContinuous-v3",), num_agents=max(sizes), policy_delay=1,
                           hidden_sizes=tuple(int(h) for h in _HIDDEN.value), replay_capacity=100)
  group = AgentGroup(config.envs[0], max(sizes), config, seed=0)
  objective = MetaGenRLObjective()
  eta = list(objective.network.trainable_variables)
  states = group.init(0)
  rng = np.random.default_rng(0)
  b, t, o, a = config.batch_size, config.sequence_length, group.observation_dim, group.action_dim

  def batches(n):
    normal = lambda *shape: tf.constant(rng.normal(size=(n, b, t) + shape), tf.float32)
    zeros = tf.zeros((n, b, t))
    actions = tf.clip_by_value(normal(a), -1.0, 1.0)
    return Trajectory(observations=normal(o), actions=actions, rewards=normal(), next_observations=normal(o),
                      terminated=zeros, truncated=zeros, policy_outputs=actions, log_probs=zeros,
                      episode_steps=tf.constant(rng.integers(0, 1000, size=(n, b, t)), tf.float32))

  @tf.function
  def step(states, batches, seed):
    new, _ = group.update(states, batches, seed, annealed_objective(objective, eta, 1.0))
    with tf.GradientTape() as tape:
      loss = -tf.reduce_mean(future_policy_values(group.td3, objective, eta, new, batches, 1, 1e-3))
    return new, tape.gradient(loss, eta)

  def median_seconds(fn):
    fn()  # trace / warm up
    times = []
    for _ in range(_REPEATS.value):
      start = time.perf_counter()
      fn()
      times.append(time.perf_counter() - start)
    return float(np.median(times))

  seed = tf.constant([0, 1])
  results = {n: {"batched": [], "loop": []} for n in sizes}
  for _ in range(_ROUNDS.value):
    for n in sizes:
      stacked = tf.nest.map_structure(lambda x: x[:n], states)
      data = batches(n)
      singles = [(tf.nest.map_structure(lambda x: x[i:i + 1], stacked),
                  tf.nest.map_structure(lambda x: x[i:i + 1], data)) for i in range(n)]
      results[n]["batched"].append(median_seconds(lambda: tf.nest.map_structure(
          lambda x: x.numpy(), step(stacked, data, seed)[1])))
      results[n]["loop"].append(median_seconds(lambda: [tf.nest.map_structure(
          lambda x: x.numpy(), step(s, d, seed)[1]) for s, d in singles]))
  out = {"command": " ".join(sys.argv), "hidden": list(config.hidden_sizes), "batch": [b, t], "rows": []}
  for n in sizes:
    batched, loop = min(results[n]["batched"]), min(results[n]["loop"])
    out["rows"].append({"agents": n, "batched_ms": round(1000 * batched, 1), "loop_ms": round(1000 * loop, 1),
                        "speedup": round(loop / batched, 2)})
  if _LOOP_ITERATIONS.value:
    from tf_metarl.algorithms.metagenrl import MetaGenRLTrainer
    out["loop"] = []
    for n in sizes:
      for mode in _ENV_MODES.value:
        loop_config = MetaGenRLConfig(envs=("LunarLanderContinuous-v3",), num_agents=n,
                                      warmup_steps=config.sequence_length, hidden_sizes=config.hidden_sizes,
                                      replay_capacity=10_000, async_envs=mode == "async")
        trainer = MetaGenRLTrainer(loop_config, seed=0)
        while int(trainer.env_steps.numpy()) < n * 2 * loop_config.warmup_steps:  # warm-up and tracing, untimed
          trainer.iteration()
        start, steps = time.perf_counter(), int(trainer.env_steps.numpy())
        for _ in range(_LOOP_ITERATIONS.value):
          trainer.iteration()
        elapsed = time.perf_counter() - start
        trainer.problem.groups[0].collector.env.close()
        out["loop"].append({"agents": n, "envs": mode,
                            "agent_steps_per_second": round((int(trainer.env_steps.numpy()) - steps) / elapsed, 1),
                            "seconds_per_iteration": round(elapsed / _LOOP_ITERATIONS.value, 3)})
  write_result(_OUT.value, out)


if __name__ == "__main__":
  app.run(main)
