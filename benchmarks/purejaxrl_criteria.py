r"""purejaxrl's PPO on CartPole-v1 (its default config), N seeds vmapped, scored with the criteria
of benchmarks/ppo_population.py: training rows of >= 10 finished episodes, steps to a row of mean
>= 475, the mean of the rows in the last 20% of the run, the lowest row in the last 40%.

Not part of the project's environment (JAX is not in its stack); run it in a separate one:

  python3 -m venv /tmp/jaxenv && /tmp/jaxenv/bin/pip install jax==0.10.2 jaxlib gymnax flax optax distrax
  # purejaxrl's ppo.py and wrappers.py (github.com/luchris429/purejaxrl, purejaxrl/) in PUREJAXRL_DIR,
  # with wrappers.py's brax and navix imports removed (CartPole does not use them)
  PUREJAXRL_DIR=... XLA_FLAGS=--xla_cpu_parallel_codegen_split_count=1 \
      /tmp/jaxenv/bin/python benchmarks/purejaxrl_criteria.py 10 42

gymnax 1.0 returns terminated and truncated separately; purejaxrl's ppo.py wants one `done`, so a
thin wrapper passes their logical or (purejaxrl's own semantics: no bootstrap at the time limit).
Prints one JSON line (docs/results/purejaxrl_criteria.json holds two such runs).
"""
import os
import json
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.environ.get("PUREJAXRL_DIR", "/tmp/pj"))
import gymnax  # noqa: E402

_make = gymnax.make
STEPS = 500_000
CONFIG = {"LR": 2.5e-4, "NUM_ENVS": 4, "NUM_STEPS": 128, "TOTAL_TIMESTEPS": 5e5, "UPDATE_EPOCHS": 4,
          "NUM_MINIBATCHES": 4, "GAMMA": 0.99, "GAE_LAMBDA": 0.95, "CLIP_EPS": 0.2, "ENT_COEF": 0.01,
          "VF_COEF": 0.5, "MAX_GRAD_NORM": 0.5, "ACTIVATION": "tanh", "ENV_NAME": "CartPole-v1",
          "ANNEAL_LR": True, "DEBUG": False}  # purejaxrl's ppo.py defaults


class OneDone:
  """gymnax 1.0 steps return (obs, state, reward, terminated, truncated, info); purejaxrl wants one done."""

  def __init__(self, env):
    self._env = env

  def __getattr__(self, name):
    return getattr(self._env, name)

  def step(self, key, state, action, params=None):
    obs, state, reward, terminated, truncated, info = self._env.step(key, state, action, params)
    return obs, state, reward, jnp.logical_or(terminated, truncated), info


def make(name, **kwargs):
  env, params = _make(name, **kwargs)
  return OneDone(env), params


def rows_of_ten(done, returns):
  """[(env steps, mean return)] per 10 finished episodes; done, returns: [updates, steps, envs]."""
  updates, length, envs = done.shape
  rows, pending = [], []
  for u in range(updates):
    for t in range(length):
      pending += [returns[u, t, e] for e in range(envs) if done[u, t, e]]
      if len(pending) >= 10:
        rows.append(((u * length + t + 1) * envs, float(np.mean(pending))))
        pending = []
  return rows


def main(seeds: int, key: int):
  gymnax.make = make
  import ppo  # purejaxrl's, from PUREJAXRL_DIR
  ppo.gymnax.make = make
  tick = time.time()
  out = jax.block_until_ready(jax.jit(jax.vmap(ppo.make_train(CONFIG)))(jax.random.split(jax.random.PRNGKey(key), seeds)))
  wall = time.time() - tick
  done, returns = np.asarray(out["metrics"]["returned_episode"]), np.asarray(out["metrics"]["returned_episode_returns"])
  per_seed = []
  for s in range(seeds):
    rows = rows_of_ten(done[s], returns[s])
    last = [r for x, r in rows if x > 0.8 * STEPS]
    late = [r for x, r in rows if x > 0.6 * STEPS]
    per_seed.append(dict(seed=s, steps_to_threshold=next((x for x, r in rows if r >= 475), None),
                         mean_train_return_last_20_percent=round(float(np.mean(last)), 1),
                         min_train_row_last_20_percent=round(min(last), 1), min_train_row_last_40_percent=round(min(late), 1)))
  reached = [p["steps_to_threshold"] for p in per_seed if p["steps_to_threshold"] is not None]
  print(json.dumps(dict(
      wall_s=round(wall, 1), per_seed=per_seed, median_steps_to_threshold=float(np.median(reached)),
      seeds_with_a_training_row_below_400_after_60_percent=sum(p["min_train_row_last_40_percent"] < 400 for p in per_seed),
      seeds_ending_below_475=sum(p["mean_train_return_last_20_percent"] < 475 for p in per_seed))))


if __name__ == "__main__":
  main(int(sys.argv[1]) if len(sys.argv) > 1 else 10, int(sys.argv[2]) if len(sys.argv) > 2 else 42)
