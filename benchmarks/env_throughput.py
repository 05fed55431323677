r"""Environment steps per second of the TF-native batched environments (random actions), in graph,
next to the same environment in gymnasium's `SyncVectorEnv`.

  .venv/bin/python benchmarks/env_throughput.py --copies=1024 --length=1000

In graph: the whole rollout (observations, autoreset, random actions) is one `tf.function` with a
`tf.while_loop` (`envs.batched.rollout`, the path training uses), timed with and without XLA,
median of --repeats calls. Gymnasium: `--gym_steps` vector steps of `SyncVectorEnv` over
`--copies` copies of the original id (Catch: its gymnasium twin), random actions sampled in NumPy.
Writes docs/results/env_throughput.json. Reference on this machine (../shared/FACTS.md): gymnax's
Catch-bsuite under jax.jit+vmap, same batch and policy, about 4 million steps/s.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from benchmarks.results_io import write_result  # noqa: E402

_ENVS = flags.DEFINE_list("envs", ["catch", "tf_metarl/CartPole-v1", "tf_metarl/ContinuousCartPole-v1",
                                   "tf_metarl/Acrobot-v1", "tf_metarl/Pendulum-v1", "tf_metarl/MountainCar-v0",
                                   "tf_metarl/MountainCarContinuous-v0"], "Environments to time.")
_COPIES = flags.DEFINE_integer("copies", 1024, "Batched environment copies.")
_LENGTH = flags.DEFINE_integer("length", 1000, "Steps per in-graph rollout call.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed in-graph calls (median reported).")
_GYM_STEPS = flags.DEFINE_integer("gym_steps", 100, "Vector steps of the gymnasium SyncVectorEnv (0: skip).")
_OUT = flags.DEFINE_string("out", "docs/results/env_throughput.json", "Result file.")


def in_graph_rate(env, random_actions, batch: int, length: int, repeats: int, jit: bool) -> float:
  import numpy as np
  import tensorflow as tf

  from tf_metarl.envs import batched

  @tf.function(jit_compile=jit)
  def run(state, seed):
    state, out = batched.rollout(env, state, random_actions, seed, length)
    return state, tf.reduce_sum(out["rewards"])  # consume the outputs so nothing is pruned

  state = env.reset(tf.constant([0, 0]), batch)
  for k in range(2):
    state, _ = run(state, tf.constant([1, k]))
  times = []
  for k in range(repeats):
    start = time.perf_counter()
    state, total = run(state, tf.constant([2, k]))
    total.numpy()
    times.append(time.perf_counter() - start)
  return batch * length / float(np.median(times))


def gymnasium_rate(env_id: str, batch: int, steps: int) -> float:
  import gymnasium as gym

  envs = gym.vector.SyncVectorEnv([lambda: gym.make(env_id) for _ in range(batch)])
  envs.reset(seed=0)
  envs.action_space.seed(0)
  actions = [envs.action_space.sample() for _ in range(steps)]
  start = time.perf_counter()
  for action in actions:
    envs.step(action)
  return batch * steps / (time.perf_counter() - start)


def main(_):
  import tensorflow as tf

  from tf_metarl.envs import classic_control
  from tf_metarl.envs.catch import NUM_ACTIONS, Catch

  batch = _COPIES.value
  result = {"command": " ".join(sys.argv), "copies": batch, "length": _LENGTH.value, "gym_steps": _GYM_STEPS.value,
            "environments": {}}
  for name in _ENVS.value:
    if name == "catch":
      env, gym_id, num_actions = Catch(), "tf_metarl/Catch-v0", NUM_ACTIONS
    else:
      env = classic_control.make_native(name)
      # gymnasium has no continuous CartPole: its discrete one stands in for the timing.
      gym_id, num_actions = type(env).gym_id or "CartPole-v1", env.num_actions
    if num_actions:
      random_actions = lambda obs, seed, n=num_actions: tf.random.stateless_uniform([batch], seed, 0, n, dtype=tf.int32)
    else:
      random_actions = lambda obs, seed, e=env: tf.random.stateless_uniform([batch, e.action_dim], seed, e.action_low,
                                                                             e.action_high)
    row = {"gymnasium_id": gym_id}
    for jit in (False, True):
      rate = in_graph_rate(env, random_actions, batch, _LENGTH.value, _REPEATS.value, jit)
      row["xla_steps_per_second" if jit else "steps_per_second"] = round(rate)
    if _GYM_STEPS.value:
      row["gymnasium_sync_steps_per_second"] = round(gymnasium_rate(gym_id, batch, _GYM_STEPS.value))
      best = max(row["steps_per_second"], row["xla_steps_per_second"])
      row["speedup_vs_gymnasium"] = round(best / row["gymnasium_sync_steps_per_second"], 1)
    result["environments"][name] = row
    print(name, row, flush=True)
  write_result(_OUT.value, result)


if __name__ == "__main__":
  app.run(main)
