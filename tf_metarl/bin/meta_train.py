r"""Meta-training with the meta-trainer: online meta-gradients (FRODO, learned γ/λ, A2C baseline),
MetaGenRL (a population of TD3 agents sharing one learned objective), the implicit reward
method (learned helper-reward weighting, with BiPaRS and PPO baselines) and Evolved Policy
Gradients (a learned loss evolved by ES over inner trainings on randomised environments).

  meta_train --config=configs/frodo_catch.py --seed=1 --logdir=runs/frodo-catch-s1
  meta_train --config=configs/metagenrl_quick.py --export=/tmp/metagenrl_quick
  meta_train --config=configs/frodo_catch.py:extension --config.frodo.inner_steps=3
  meta_train --config=configs/mgrl_catch.py:a2c
  meta_train --config=configs/implicit_reward_cartpole.py:random,cg
  meta_train --config=configs/epg_random_pendulum.py --export=export/epg_random_pendulum
  meta_train --config=configs/epg_mujoco.py:hopper --backend=ray --ray_address=10.0.0.1:6379

Writes TensorBoard summaries (meta/gamma and meta/lambda for learned γ/λ; charts/value_error on
the random walk), checkpoints (by steps, every few minutes, and at SIGINT/SIGTERM; a rerun with
the same --logdir resumes, --fresh starts over), a learning curve (CSV, PNG), config.json and
summary.json to --logdir, and prints the summary as one JSON line.
"""
import dataclasses
import json
import os

from absl import flags

from tf_metarl.bin import common, meta_runs

_CONFIG = common.define_config("frodo_catch.py", "ml_collections config file (optionally :variant).")
_SEED = flags.DEFINE_integer("seed", None, "Random seed (default: config.seed).")
_LOGDIR = flags.DEFINE_string("logdir", None, "Output directory (default: runs/<method>-<env>-s<seed>).")
_PLOT = flags.DEFINE_boolean("plot", True, "Write learning_curve.png to the logdir.")
_EXPORT = flags.DEFINE_string("export", None,
                              "FRODO, MetaGenRL or the implicit reward method: export the learned target / objective "
                              "/ reward to this model directory (a new integer version inside, e.g. "
                              "export/frodo_catch).")
_FRESH = common.define_fresh_flag()
_RECORD = flags.DEFINE_string("record", None,
                              "Write the episodes the inner agents collect as RLDS datasets (TFDS format) to this "
                              "directory (one subdirectory per environment when there are several).")
_REPLAY_FROM = flags.DEFINE_string("replay_from", None,
                                   "MetaGenRL: warm-start every agent's replay from datasets recorded with --record "
                                   "(this directory, or one subdirectory per environment when there are several).")
_BACKEND = flags.DEFINE_enum("backend", None, ["graph", "ray"],
                             "EPG: where the inner trainings run (overrides config.epg.backend): graph, all in one "
                             "compiled computation (tf_metarl/ environments); ray, one Ray task per ES member.")
_RAY_ADDRESS = flags.DEFINE_string("ray_address", None,
                                   "EPG with --backend=ray: a cluster to join (auto, host:port or ray://host:port; "
                                   "overrides config.epg.ray_address; default: start Ray on this machine).")


def _epoch_settings(config, settings):
  """EPG counts in ES epochs: (total steps, settings with *_every in steps)."""
  from tf_metarl.algorithms.epg import config_from_section
  from tf_metarl.config_utils import positive_int
  epoch = config_from_section(config.epg.to_dict()).epoch_steps
  epochs = positive_int(config.epochs, "config.epochs")
  return epochs * epoch, dataclasses.replace(settings, eval_every=settings.eval_every * epoch,
                                             checkpoint_every=settings.checkpoint_every * epoch)


def _recorders(trainer, directory, identity, logdir):
  """An `EpisodeRecorder` on every environment the trainer's problem collects in (gymnasium copies
  stepped from Python, or in-graph tasks, which hand their rollouts back from the graph)."""
  from tf_metarl.recording import EpisodeRecorder, population_dataset
  from tf_metarl.tasks import Task
  sources = trainer.problem.recording_sources()
  if not sources:
    common.fail(f"--record needs inner agents whose experience reaches this process; this run ({identity['method']}) "
                f"trains them on Ray workers")
  if trainer.jit_compile:
    common.fail("--record hands rollouts out of the meta-step, which XLA cannot compile: set config.learner.jit_compile "
                "to False")
  recorders = []
  for env_id, env_info, source in sources:
    path = population_dataset(directory, env_id, len(sources) > 1)
    source.recorder = EpisodeRecorder(path, env_info, dict(identity, env=env_id, logdir=os.path.abspath(logdir)))
    if isinstance(source, Task):  # its copies may be mid-episode: a first batch collected at init, or restored
      source.recorder.join_mid_episode()
    recorders.append(source.recorder)
  return recorders


def main(argv):
  if len(argv) > 1:
    common.fail(f"unexpected positional arguments: {' '.join(argv[1:])}")
  from tf_metarl.config_utils import positive_int
  from tf_metarl.export import check_export_dir
  from tf_metarl.learners import loop

  config = _CONFIG.value
  for flag, key in ((_BACKEND, "backend"), (_RAY_ADDRESS, "ray_address")):
    if flag.value is not None:
      if "epg" not in config:
        common.fail(f"--{flag.name} applies to EPG configs (an epg section); this config has none")
      config.epg[key] = flag.value
  seed = config.seed if _SEED.value is None else _SEED.value
  settings = loop.RunSettings.from_config(config)
  if "epg" in config:
    steps, settings = _epoch_settings(config, settings)
  else:
    steps = positive_int(config.steps, "config.steps")
  make_trainer, name, identity, not_exportable = meta_runs.method_run(config, seed)
  logdir = _LOGDIR.value or os.path.join("runs", f"{name}-s{seed}")
  loop.check_logdir(logdir)
  if _EXPORT.value:  # checked now, not after hours of training
    if not_exportable:
      common.fail(not_exportable)
    check_export_dir(_EXPORT.value)
  if _REPLAY_FROM.value:
    if "metagenrl" not in config:
      common.fail("--replay_from warm-starts MetaGenRL's replays; this config has no metagenrl section (train_agent "
                  "--replay_from warm-starts a single off-policy agent)")
    identity["replay_from"] = os.path.abspath(_REPLAY_FROM.value)
  trainer = make_trainer()
  if _REPLAY_FROM.value:
    trainer.problem.warm_start(_REPLAY_FROM.value)  # before any checkpoint restore, which replaces the replays
  recorders = _recorders(trainer, _RECORD.value, identity, logdir) if _RECORD.value else []
  resolved = dict(config.to_dict(), seed=seed, record=_RECORD.value or "", replay_from=_REPLAY_FROM.value or "")
  try:
    summary = loop.run_training(trainer, steps, logdir, identity, settings, config=resolved, fresh=_FRESH.value)
  finally:
    for recorder in recorders:
      recorder.close()
  if _EXPORT.value:
    from tf_metarl.export import export_objective
    export = trainer.export_reward if "implicit_reward" in config else (
        lambda path, **kwargs: export_objective(trainer.objective(), path, **kwargs))
    summary["exported"] = export(_EXPORT.value, training_config=resolved,
                                 provenance={"source": "meta_train", "logdir": logdir,
                                             "env_steps": summary["env_steps"], "seed": seed})
  if _PLOT.value:
    summary["plot"] = common.plot_run(logdir, name, f"{name}, seed {seed}")
  print(json.dumps(summary, sort_keys=True), flush=True)


def run():
  common.run(main)


if __name__ == "__main__":
  run()
