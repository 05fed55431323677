r"""What FRODO's learned target G_η says during one Catch run: how well its advantages G_η − V track
the canonical n-step return's G − V, and how large they are, next to the greedy return and the
outer loss's magnitude (which sets the extension's weight b1 / |L_outer|).

  .venv/bin/python benchmarks/frodo_target_diagnostics.py --seed=14 --steps=2500000
  .venv/bin/python benchmarks/frodo_target_diagnostics.py --seed=14 --extension_scale_floor=0.1 --tag=_floor

The run is `meta_train`'s trainer with configs/meta_train_common.py's Catch defaults (FRODO +
extension unless --noextension). Every --every steps, on the batch the next inner update will use
(collected with the current policy): Pearson correlations of G_η with G and of G_η − V with G − V,
the standard deviations of both advantages, the policy's entropy, a greedy evaluation over 256
episodes, and the median |L_outer| of the iterations since the last row. Writes
docs/results/frodo_target_diagnostics_s<seed><tag>.json.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from benchmarks.results_io import write_result  # noqa: E402

_SEED = flags.DEFINE_integer("seed", 14, "Seed of the run.")
_STEPS = flags.DEFINE_integer("steps", 2_500_000, "Environment steps.")
_EVERY = flags.DEFINE_integer("every", 100_000, "Steps between diagnostic rows.")
_EXTENSION = flags.DEFINE_bool("extension", True, "FRODO + extension (else plain FRODO).")
_FLOOR = flags.DEFINE_float("extension_scale_floor", 0.0, "frodo.extension_scale_floor (default here 0: the "
                            "paper's unbounded weight b1/|L_outer|, whose stalls this measures; the library's is 0.1).")
_TAG = flags.DEFINE_string("tag", "", "Suffix of the result name.")
_OUT = flags.DEFINE_string("out", "docs", "Where results/ goes.")


def correlation(a, b):
  import numpy as np
  a, b = np.ravel(a) - np.mean(a), np.ravel(b) - np.mean(b)
  return float((a * b).sum() / (np.sqrt((a * a).sum() * (b * b).sum()) + 1e-12))


def diagnose(trainer):
  """The row's measurements on the carried batch (see the module docstring)."""
  import numpy as np
  from tf_metarl import returns
  problem, state, eta = trainer.problem, trainer.state.read(), trainer.eta.read()
  inputs = problem.agent.objective_inputs(state.agent.policy, state.agent.critic, state.batch)
  values, next_values = inputs["values"], inputs["next_values"]
  learned = problem.target_model.targets(inputs, values, next_values, params=eta).numpy()
  canonical = returns.n_step_returns(inputs["rewards"], inputs["discounts"], inputs["episode_ends"], next_values,
                                     problem.config.gamma, problem.config.n_step).numpy()
  values = values.numpy()
  entropy = problem.agent.policy.entropy(problem.agent.policy_outputs(state.agent.policy, state.batch.observations))
  return {"target_correlation": correlation(learned, canonical),
          "advantage_correlation": correlation(learned - values, canonical - values),
          "learned_advantage_std": float(np.std(learned - values)),
          "canonical_advantage_std": float(np.std(canonical - values)),
          "entropy": float(np.mean(entropy.numpy()))}


def main(argv):
  del argv
  import numpy as np
  from configs.meta_train_common import base_config
  from tf_metarl.bin.meta_runs import method_run
  base = base_config("catch", "frodo")
  base.frodo.extension = _EXTENSION.value
  base.frodo.extension_scale_floor = _FLOOR.value
  trainer = method_run(base, _SEED.value)[0]()  # the trainer meta_train builds for this config
  rows, outer, next_row = [], [], 0
  while int(trainer.env_steps.numpy()) < _STEPS.value:
    metrics, _ = trainer.iteration()
    outer.append(abs(metrics["outer_loss"]))
    steps = int(trainer.env_steps.numpy())
    if steps >= next_row:
      row = {"env_steps": steps, "greedy_return": float(np.mean(trainer.evaluate(256))),
             "median_abs_outer_loss": float(np.median(outer)), **diagnose(trainer)}
      rows.append({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()})
      print(json.dumps(rows[-1]), flush=True)
      outer, next_row = [], next_row + _EVERY.value
  name = f"frodo_target_diagnostics_s{_SEED.value}{_TAG.value}.json"
  write_result(os.path.join(_OUT.value, "results", name),
               {"command": " ".join(["benchmarks/frodo_target_diagnostics.py"] + sys.argv[1:]),
                "extension": _EXTENSION.value, "extension_scale_floor": _FLOOR.value, "rows": rows})


if __name__ == "__main__":
  app.run(main)
