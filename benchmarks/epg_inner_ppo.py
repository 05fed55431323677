r"""Does PPO learn inside one EPG inner training? The budget check before meta-training a family
(issue 12): while α = 1 the inner trainings are PPO with rewards, and ES has a signal to climb only
once they improve.

  .venv/bin/python benchmarks/epg_inner_ppo.py --config=configs/epg_random_pendulum.py \
      --settings=256:4:1e-3,1024:4:1e-3,1024:8:3e-4 --runs=8

Each setting is `updates:gradient_steps:inner_learning_rate` (U, Adam steps per update, δ); every
other value is the config's. Every setting trains the same fresh agents on the same task draws
with the same noise, through `EPGProblem.meta_test` with α = 1 (the inner training meta_train
runs). Reports the mean return of the episodes finished in the first and the last quarter of the
runs, and each run's last episode. Writes docs/results/epg_inner_ppo_<env><tag>.json.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from benchmarks.results_io import write_result  # noqa: E402
from tf_metarl.bin.common import define_config  # noqa: E402

_CONFIG = define_config("epg_random_pendulum.py", "The family's meta_train config (overrides: --config.epg.*).")
_SETTINGS = flags.DEFINE_list("settings", ["256:4:1e-3", "1024:4:1e-3"], "updates:gradient_steps:learning_rate.")
_RUNS = flags.DEFINE_integer("runs", 8, "Fresh agents (and task draws) per setting.")
_SEED = flags.DEFINE_integer("seed", 1, "Seed of the agents, tasks and noise.")
_TAG = flags.DEFINE_string("tag", "", "Suffix of the result name.")
_OUT = flags.DEFINE_string("out", "docs", "Where results/ goes.")


def main(argv):
  del argv
  import numpy as np
  from tf_metarl.algorithms.epg import EPGTrainer, config_from_section
  base = _CONFIG.value.epg.to_dict()
  rows = []
  for setting in _SETTINGS.value:
    updates, gradient_steps, learning_rate = setting.split(":")
    config = config_from_section(dict(base, updates=int(updates), gradient_steps=int(gradient_steps),
                                      inner_learning_rate=float(learning_rate), population=2, runs_per_member=1))
    start = time.time()
    results = EPGTrainer(config, seed=0).problem.compiled_meta_test(_RUNS.value)([_SEED.value, 2], 1.0)
    curve, last = results.curve.numpy(), results.last_return.numpy()  # [U, runs], [runs]
    quarter = max(1, curve.shape[0] // 4)
    rows.append({"updates": int(updates), "gradient_steps": int(gradient_steps), "learning_rate": float(learning_rate),
                 "steps_per_run": int(updates) * config.update_every,
                 "first_quarter_return": round(float(np.nanmean(curve[:quarter])), 1),
                 "last_quarter_return": round(float(np.nanmean(curve[-quarter:])), 1),
                 "last_episode": [round(float(x), 1) for x in last], "wall_time_s": round(time.time() - start, 1)})
    print(rows[-1], flush=True)
  name = config.env.split("/")[-1].split("-")[0].lower()
  write_result(os.path.join(_OUT.value, "results", f"epg_inner_ppo_{name}{_TAG.value}.json"),
               {"command": " ".join(["benchmarks/epg_inner_ppo.py"] + sys.argv[1:]), "epg": base,
                "runs": _RUNS.value, "rows": rows})


if __name__ == "__main__":
  app.run(main)
