r"""TD3 on Pendulum-v1 with one update per environment step: environment steps per second on the
gymnasium path and on the TensorFlow-native path, measured in one process.

  .venv/bin/python benchmarks/td3_throughput.py --steps=3000
  .venv/bin/python benchmarks/td3_throughput.py --steps=0 --members=1,2,4,8   # populations only

Both run the learner `train_agent` picks (the `td3` preset of configs/train_agent.py: one copy,
256×256 ReLU networks, batch 256, one update per step): `OffPolicyLearner` on `Pendulum-v1`
(gymnasium stepped from Python, one compiled update per step) and `InGraphOffPolicyLearner` on
`tf_metarl/Pendulum-v1` (`graph_steps` vector steps with their updates per compiled call), also
with XLA. Each is warmed up past the warm-up phase first, then timed over --steps steps with
updates. The same update alone (`agents.TD3.update` on a sampled batch, repeated inside one
`tf.function`) gives the floor any path pays. With --members, populations of N agents trained
together in one graph (`InGraphOffPolicyLearner(members=N)`, what `train_agent --seeds=N` runs, XLA
on) are timed over --population_steps steps per member: agent steps per second in all, and that
rate against the smallest N's of the same run (the speed-up over training the agents one after
another). Writes docs/results/td3_throughput<tag>.json.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from benchmarks.results_io import write_result  # noqa: E402

_STEPS = flags.DEFINE_integer("steps", 3_000, "Timed environment steps per path (after warm-up).")
_XLA = flags.DEFINE_bool("xla", True, "Also time the in-graph path with jit_compile=True.")
_MEMBERS = flags.DEFINE_list("members", [], "Population sizes to time in one graph (e.g. 1,2,4,8).")
_POPULATION_STEPS = flags.DEFINE_integer("population_steps", 750, "Timed steps per member of each population.")
_HIDDEN = flags.DEFINE_list("hidden_sizes", [], "Override the preset's 256,256 (e.g. 64,64).")
_TAG = flags.DEFINE_string("tag", "", "Suffix of the result file.")
_OUT = flags.DEFINE_string("out", "docs", "Where results/ goes.")


def td3_config(**overrides):
  from configs import train_agent as train_agent_config
  from tf_metarl.config_utils import dataclass_from_config
  from tf_metarl.learners.off_policy import OffPolicyConfig
  if _HIDDEN.value:
    overrides.setdefault("hidden_sizes", tuple(int(h) for h in _HIDDEN.value))
  values = dict(train_agent_config.get_config("td3").off_policy.to_dict(), **overrides)
  return dataclass_from_config(OffPolicyConfig, values, "off_policy")


def timed_rate(learner, steps: int) -> float:
  """Environment steps per second of `learner.iteration()` over `steps` steps, after warm-up."""
  while int(learner.env_steps.numpy()) <= learner.config.warmup_steps + learner.config.graph_steps:
    learner.iteration()  # past the random warm-up, and every graph traced
  start_steps, tick = int(learner.env_steps.numpy()), time.perf_counter()
  while int(learner.env_steps.numpy()) - start_steps < steps:
    learner.iteration()
  return (int(learner.env_steps.numpy()) - start_steps) / (time.perf_counter() - tick)


def update_floor(learner, repeats: int = 500) -> float:
  """Seconds per `TD3.update` alone on replay batches, inside one tf.function loop."""
  import tensorflow as tf
  cfg = learner.config

  @tf.function
  def loop(seed):
    def body(k, state):
      sample_seed, update_seed = tf.unstack(tf.random.experimental.stateless_split(tf.stack([seed, k]), num=2))
      batch = learner.replay.sample_sequences(sample_seed, cfg.batch_size, cfg.sequence_length)
      state, _ = learner.agent.update(state, batch, update_seed, learner.objective)
      return k + 1, state
    return tf.while_loop(lambda k, _: k < repeats, body, (tf.constant(0), learner.state.read()))[1].updates

  loop(tf.constant(1))
  tick = time.perf_counter()
  loop(tf.constant(2)).numpy()
  return (time.perf_counter() - tick) / repeats


def main(_):
  from tf_metarl.envs import describe_env
  from tf_metarl.learners.in_graph_off_policy import InGraphOffPolicyLearner
  from tf_metarl.learners.off_policy import OffPolicyLearner
  from tf_metarl.objectives.registry import make_objective
  steps = _STEPS.value
  result = dict(command=" ".join(sys.argv), config="configs/train_agent.py:td3", timed_steps=steps,
                hidden_sizes=list(td3_config().hidden_sizes))
  if steps:
    gym = OffPolicyLearner(describe_env("Pendulum-v1"), make_objective("td3", {}), td3_config(), 0)
    result["gymnasium_steps_per_second"] = round(timed_rate(gym, steps), 1)
    native = InGraphOffPolicyLearner(describe_env("tf_metarl/Pendulum-v1"), make_objective("td3", {}),
                                     td3_config(jit_compile=False), 0)
    result["in_graph_steps_per_second"] = round(timed_rate(native, steps), 1)
    result["update_alone_ms"] = round(1e3 * update_floor(native), 3)
    if _XLA.value:
      xla = InGraphOffPolicyLearner(describe_env("tf_metarl/Pendulum-v1"), make_objective("td3", {}),
                                    td3_config(jit_compile=True), 0)
      result["in_graph_xla_steps_per_second"] = round(timed_rate(xla, steps), 1)
    result["in_graph_vs_gymnasium"] = round(result["in_graph_steps_per_second"] / result["gymnasium_steps_per_second"],
                                            2)
  if _MEMBERS.value:
    rates = {}
    for members in map(int, _MEMBERS.value):
      team = InGraphOffPolicyLearner(describe_env("tf_metarl/Pendulum-v1"), make_objective("td3", {}),
                                     td3_config(jit_compile=True), 0, members=members)
      rates[members] = members * timed_rate(team, _POPULATION_STEPS.value)  # agent steps/s in all
      print(f"{members} members: {rates[members]:.0f} agent steps/s", flush=True)
    first = min(rates)
    result["population_agent_steps_per_second"] = {str(n): round(r, 1) for n, r in rates.items()}
    # Against training the agents one after another at the smallest population's rate.
    result["population_speedup_over_sequential"] = {str(n): round(r / rates[first], 2) for n, r in rates.items()}
    result["population_timed_steps_per_member"] = _POPULATION_STEPS.value
  result["target_steps_per_second"] = 5000
  write_result(os.path.join(_OUT.value, "results", f"td3_throughput{_TAG.value}.json"), result)


if __name__ == "__main__":
  app.run(main)
