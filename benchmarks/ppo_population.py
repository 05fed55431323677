r"""PPO on CartPole-v1 with seeds as a population in one graph, beside the gymnasium path.

  .venv/bin/python benchmarks/ppo_population.py --seeds=5 --steps=500000 --gym_steps=100000

1. In graph: `InGraphOnPolicyLearner` (the learner `train_agent --env=tf_metarl/CartPole-v1
   --seeds=N` runs) with the `ppo` preset of configs/train_agent.py, N seeds in one graph for
   --steps steps each. Wall-clock with tracing included, the steady rate (iterations after the
   first), and per seed the steps to a mean training return of --threshold, counted only on rows
   of at least 10 finished episodes (a row closes as soon as 10 episodes of that seed are
   pending), plus a greedy evaluation (--eval_episodes) every --eval_every steps.
2. Gymnasium: one seed of `train("CartPole-v1", "ppo", ...)` (`OnPolicyLearner`, the path
   `train_agent --env=CartPole-v1` runs) for --gym_steps steps, in the same process; its
   environment-steps rate gives the time the same N × --steps would take there.
3. Population scaling (--scaling, e.g. 1,5,20,64): time of one PPO iteration for N agents in one
   graph, per agent, against N = 1 (median of --scaling_iterations after two warm-up iterations).

Writes docs/results/ppo_population<tag>.json and docs/figures/ppo_population<tag>.png (and
_scaling.png). Variants of the late-collapse study (issue 10, part 3), for example:

  .venv/bin/python benchmarks/ppo_population.py --seeds=10 --gym_steps=0 --scaling= \
      --overrides=on_policy.anneal_learning_rate=False --tag=_10seeds_no_anneal
"""
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags, logging  # noqa: E402

from benchmarks.results_io import write_result  # noqa: E402

_SEEDS = flags.DEFINE_integer("seeds", 5, "Agents in the population (seeds 0..n-1).")
_FIRST_SEED = flags.DEFINE_integer("first_seed", 0, "Seed of the first agent (agents have seeds first_seed ..).")
_STEPS = flags.DEFINE_integer("steps", 500_000, "Environment steps per seed.")
_THRESHOLD = flags.DEFINE_float("threshold", 475.0, "Mean training return to reach.")
_EVAL_EVERY = flags.DEFINE_integer("eval_every", 10_000, "Steps between greedy evaluations (0: only at the end).")
_EVAL_EPISODES = flags.DEFINE_integer("eval_episodes", 5, "Greedy episodes per evaluation and seed.")
_GYM_STEPS = flags.DEFINE_integer("gym_steps", 100_000, "Steps of the gymnasium path (0: skip).")
_SCALING = flags.DEFINE_list("scaling", ["1", "5", "20", "64"], "Population sizes to time (empty: skip).")
_SCALING_ITERATIONS = flags.DEFINE_integer("scaling_iterations", 10, "Timed iterations per population size.")
_OVERRIDES = flags.DEFINE_list("overrides", [], "Config overrides of configs/train_agent.py:ppo, e.g. "
                                "on_policy.anneal_learning_rate=False,objective_settings.ppo.normalise_advantages=False.")
_TAG = flags.DEFINE_string("tag", "", "Suffix of the result and figure names (for variants).")
_OUT = flags.DEFINE_string("out", "docs", "Where results/ and figures/ go.")


def ppo_config():
  """configs/train_agent.py:ppo with --overrides applied (values parsed as Python literals)."""
  import ast
  from configs import train_agent as train_agent_config
  config = train_agent_config.get_config("ppo")
  for item in _OVERRIDES.value:
    path, _, text = item.partition("=")
    *sections, key = path.split(".")
    node = config
    for section in sections:
      node = node[section]
    if key not in node:
      raise ValueError(f"--overrides: the config has no field {path!r}")
    node[key] = ast.literal_eval(text)
  return config


def make_learner(members: int, steps: int, seed: int = 0):
  from tf_metarl.config_utils import dataclass_from_config
  from tf_metarl.envs import describe_env
  from tf_metarl.learners.in_graph_on_policy import InGraphOnPolicyLearner
  from tf_metarl.learners.on_policy import OnPolicyConfig
  from tf_metarl.objectives.registry import make_objective
  config = ppo_config()
  learner_config = dataclass_from_config(OnPolicyConfig, config.on_policy.to_dict(), "on_policy")
  objective = make_objective("ppo", dict(config.objective_settings.ppo))
  return InGraphOnPolicyLearner(describe_env("tf_metarl/CartPole-v1"), objective, learner_config, seed, steps,
                                members=members)


def population_run(members: int, steps: int):
  import numpy as np
  start = time.perf_counter()
  learner = make_learner(members, steps, seed=_FIRST_SEED.value)
  pending = [[] for _ in range(members)]
  curves = [[] for _ in range(members)]
  evals = [[] for _ in range(members)]
  iteration_times, last_eval = [], 0
  while int(learner.env_steps.numpy()) < steps:
    tick = time.perf_counter()
    learner.iteration()
    iteration_times.append(time.perf_counter() - tick)
    done = int(learner.env_steps.numpy())
    for i, returns in enumerate(learner.last_member_returns):
      pending[i] += returns
      if len(pending[i]) >= 10:
        curves[i].append(dict(env_steps=done, train_return=float(np.mean(pending[i])), episodes=len(pending[i])))
        pending[i] = []
    every = _EVAL_EVERY.value
    if (every and done - last_eval >= every) or done >= steps:  # every = 0: only at the end
      last_eval = done // every * every if every else done
      learner.evaluate(_EVAL_EPISODES.value)
      for i in range(members):
        evals[i].append(dict(env_steps=done, eval_return=learner.member_eval_returns[i]))
  wall = time.perf_counter() - start
  per_iteration = float(np.median(iteration_times[1:]))
  steps_per_iteration = learner.config.num_envs * learner.config.rollout_length
  per_seed = []
  for i in range(members):
    reached = next((r["env_steps"] for r in curves[i] if r["train_return"] >= _THRESHOLD.value), None)
    last = [r["train_return"] for r in curves[i] if r["env_steps"] > 0.8 * steps]
    late = [r["train_return"] for r in curves[i] if r["env_steps"] > 0.6 * steps]
    per_seed.append(dict(seed=_FIRST_SEED.value + i, steps_to_threshold=reached, final_eval_return=evals[i][-1]["eval_return"],
                         mean_train_return_last_20_percent=round(float(np.mean(last)), 1) if last else None,
                         min_train_row_last_20_percent=round(float(np.min(last)), 1) if last else None,
                         min_train_row_last_40_percent=round(float(np.min(late)), 1) if late else None))
  return dict(wall_time_s=round(wall, 1), first_iteration_s=round(iteration_times[0], 2),
              steady_agent_steps_per_second=round(members * steps_per_iteration / per_iteration),
              per_seed=per_seed), curves, evals


def gymnasium_rate(steps: int) -> float:
  from tf_metarl.learners import train
  config = ppo_config()
  config.steps, config.eval_every, config.checkpoint_every, config.log_every_seconds = steps, 0, 0, 60.0
  with tempfile.TemporaryDirectory() as logdir:
    summary = train("CartPole-v1", "ppo", 0, logdir, config.to_dict())
  return float(summary["steps_per_second"])


def scaling(sizes):
  import numpy as np
  rows = []
  for members in sizes:
    learner = make_learner(members, 10**9)
    for _ in range(2):
      learner.iteration()
    times = []
    for _ in range(_SCALING_ITERATIONS.value):
      tick = time.perf_counter()
      learner.iteration()
      times.append(time.perf_counter() - tick)
    rows.append(dict(members=members, seconds_per_iteration=round(float(np.median(times)), 4)))
    logging.info("scaling: %s", rows[-1])
  base = rows[0]["seconds_per_iteration"] / rows[0]["members"]
  for row in rows:
    row["seconds_per_agent_iteration"] = round(row["seconds_per_iteration"] / row["members"], 5)
    row["per_agent_speedup_vs_first"] = round(base / row["seconds_per_agent_iteration"], 2)
  return rows


def main(_):
  import numpy as np

  from tf_metarl import plotting
  seeds, steps = _SEEDS.value, _STEPS.value
  result = dict(command=" ".join(sys.argv), env="tf_metarl/CartPole-v1", objective="ppo (train_agent.py preset)",
                overrides=list(_OVERRIDES.value), seeds=seeds, first_seed=_FIRST_SEED.value, steps_per_seed=steps, threshold=_THRESHOLD.value,
                criterion="first row of >= 10 finished training episodes of that seed with mean >= threshold")
  population, curves, evals = population_run(seeds, steps)
  result["in_graph_population"] = population
  reached = [s["steps_to_threshold"] for s in population["per_seed"] if s["steps_to_threshold"] is not None]
  population["median_steps_to_threshold"] = float(np.median(reached)) if reached else None
  population["seeds_reaching_threshold"] = len(reached)
  finals = [s["final_eval_return"] for s in population["per_seed"]]
  population["final_eval_return_mean"], population["final_eval_return_std"] = (
      round(float(np.mean(finals)), 1), round(float(np.std(finals)), 1))
  lows = [s["min_train_row_last_40_percent"] for s in population["per_seed"]]
  population["seeds_with_a_training_row_below_400_after_60_percent"] = sum(x is not None and x < 400 for x in lows)
  population["seeds_ending_below_475"] = sum(s["mean_train_return_last_20_percent"] is None or
                                             s["mean_train_return_last_20_percent"] < 475 for s in population["per_seed"])
  logging.info("population: %s", population)
  if _GYM_STEPS.value:
    rate = gymnasium_rate(_GYM_STEPS.value)
    projected = seeds * steps / rate
    result["gymnasium_path"] = dict(steps=_GYM_STEPS.value, steps_per_second=round(rate, 1),
                                    projected_wall_time_s=round(projected, 1),
                                    speedup_of_population=round(projected / population["wall_time_s"], 2))
  if _SCALING.value:
    result["scaling"] = scaling([int(n) for n in _SCALING.value])
  os.makedirs(os.path.join(_OUT.value, "figures"), exist_ok=True)
  plotting.plot_learning_curves({f"seed {_FIRST_SEED.value + i}": curves[i] for i in range(seeds)},
                                os.path.join(_OUT.value, "figures", f"ppo_population{_TAG.value}.png"),
                                title=f"PPO on tf_metarl/CartPole-v1: {seeds} seeds in one graph"
                                + (f" ({', '.join(_OVERRIDES.value)})" if _OVERRIDES.value else ""), key="train_return",
                                fallback_key="__none__")
  if _SCALING.value:
    plotting.plot_learning_curves(
        {"per agent, against N = 1": result["scaling"]}, os.path.join(_OUT.value, "figures", "ppo_population_scaling.png"),
        title="One PPO iteration of N agents in one graph", key="per_agent_speedup_vs_first", fallback_key="__none__",
        x_key="members", xlabel="agents in the graph (N)", ylabel="speed-up per agent")
  write_result(os.path.join(_OUT.value, "results", f"ppo_population{_TAG.value}.json"), result)


if __name__ == "__main__":
  app.run(main)
