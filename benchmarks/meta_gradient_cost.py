r"""Cost of a second-order meta-gradient step relative to a first-order policy update.

  .venv/bin/python benchmarks/meta_gradient_cost.py --repeats=30

Setting (the MetaGenRL shape): a 3x350 ReLU deterministic policy, a frozen twin-Q critic, the
backward-LSTM objective (32 units) on batches of 100 sequences x 20 steps, observation dim 17,
action dim 6 (HalfCheetah's sizes).
  first-order: one policy update, gradient of the objective's loss through the policy's actions.
  meta step:   θ' = θ − α ∇θ L_η(θ) kept differentiable (functional_call), outer loss −Q(s, π_θ'(s)),
               gradient with respect to the objective's parameters η, and an Adam step on η.
Both are tf.functions, timed with and without XLA (jit_compile=True) in one run; the ratio is
what is reported. Writes docs/results/meta_gradient_cost.json.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from benchmarks.results_io import write_result  # noqa: E402

_REPEATS = flags.DEFINE_integer("repeats", 30, "Timed calls per measurement (median reported).")
_ROUNDS = flags.DEFINE_integer("rounds", 3, "Interleaved rounds over the four measurements.")
_OUT = flags.DEFINE_string("out", "docs/results/meta_gradient_cost.json", "Result file.")


def build(jit_compile):
  import keras
  import tensorflow as tf

  from tf_metarl.meta import unrolled_meta_gradient
  from tf_metarl.networks import DeterministicPolicy, TwinQCritic, functional_call
  from tf_metarl.objectives import LSTMObjective

  keras.utils.set_random_seed(0)
  obs_dim, act_dim, batch, length = 17, 6, 100, 20
  policy = DeterministicPolicy(obs_dim, [-1.0] * act_dim, [1.0] * act_dim, hidden_sizes=(350, 350, 350))
  critic = TwinQCritic(obs_dim, act_dim, hidden_sizes=(350, 350))
  objective = LSTMObjective(act_dim, units=32)
  policy_optimizer = keras.optimizers.Adam(1e-3)
  meta_optimizer = keras.optimizers.Adam(1e-3)
  policy_optimizer.build(policy.trainable_variables)
  meta_optimizer.build(objective.network.trainable_variables)
  rng = tf.random.Generator.from_seed(0)
  obs = rng.normal([batch, length, obs_dim])
  scalars = {"rewards": rng.normal([batch, length]), "discounts": tf.ones([batch, length]),
             "episode_ends": tf.zeros([batch, length])}

  def objective_loss(actions):
    q = critic((obs, actions))[0]
    return objective(dict(scalars, q_values=q, actions=actions))["loss"]

  @tf.function(jit_compile=jit_compile)
  def first_order():
    with tf.GradientTape() as tape:
      loss = objective_loss(policy(obs))
    grads = tape.gradient(loss, policy.trainable_variables)
    policy_optimizer.apply_gradients(zip(grads, policy.trainable_variables))
    return loss

  theta = policy.trainable_variables
  eta = objective.network.trainable_variables

  @tf.function(jit_compile=jit_compile)
  def meta_step():
    # The library's path: unrolled_meta_gradient over functional_call (one inner SGD step).
    outer_loss, meta_grads, _ = unrolled_meta_gradient(
        [v.value for v in theta], eta,
        inner_loss=lambda params: objective_loss(functional_call(policy, params, obs)),
        outer_loss=lambda params: -tf.reduce_mean(critic((obs, functional_call(policy, params, obs)))[0]),
        learning_rate=1e-3, steps=1)
    meta_optimizer.apply_gradients(zip(meta_grads, eta))
    return outer_loss

  return first_order, meta_step


def median_ms(fn, repeats):
  import numpy as np
  for _ in range(3):
    fn().numpy()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn().numpy()
    times.append(time.perf_counter() - start)
  return 1e3 * float(np.median(times))


def main(_):
  import numpy as np
  import tensorflow as tf
  fns = {jit: build(jit) for jit in (False, True)}
  samples = {(jit, kind): [] for jit in (False, True) for kind in ("first_order", "meta_step")}
  for _ in range(_ROUNDS.value):  # interleaved, so drifting machine load hits all four alike
    for jit in (False, True):
      first_order, meta_step = fns[jit]
      samples[(jit, "first_order")].append(median_ms(first_order, _REPEATS.value))
      samples[(jit, "meta_step")].append(median_ms(meta_step, _REPEATS.value))
  result = {"command": " ".join(sys.argv), "tensorflow": tf.__version__, "cpu_count": os.cpu_count()}
  for jit in (False, True):
    name = "xla" if jit else "no_xla"
    fo, ms = float(np.median(samples[(jit, "first_order")])), float(np.median(samples[(jit, "meta_step")]))
    result[name] = {"first_order_ms": round(fo, 2), "meta_step_ms": round(ms, 2), "ratio": round(ms / fo, 2)}
  result["faster_setting"] = min(("no_xla", "xla"), key=lambda k: result[k]["meta_step_ms"])
  result["xla_speedup_meta_step"] = round(result["no_xla"]["meta_step_ms"] / result["xla"]["meta_step_ms"], 2)
  write_result(_OUT.value, result)


if __name__ == "__main__":
  app.run(main)
