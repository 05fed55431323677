"""Evolved Policy Gradients on random Pendulum (Houthooft et al. 2018; issue 12):

  meta_train --config=configs/epg_random_pendulum.py --export=export/epg_random_pendulum
  meta_train --config=configs/epg_random_pendulum.py:quick     # a short smoke run
  meta_train --config=configs/epg_random_pendulum.py:paper     # the paper's SGD update (or :openes)

`config.epochs` ES epochs; each trains V × W inner agents for U × M environment steps (meta_train
counts steps: epochs × V × W × U × M; the `*_every` settings are in epochs here). The `epg` section comes from
`tf_metarl.algorithms.epg.EPGConfig` and the run settings from `RunSettings`: defaults live there.
"""
import ml_collections

from tf_metarl.algorithms.epg import EPGConfig
from tf_metarl.config_utils import config_from_dataclass
from tf_metarl.learners.loop import RunSettings

VARIANTS = {
    "": {},  # Adam (β1 = 0) on the centred-rank estimate, constant σ: the reference implementation's choices
    "quick": dict(population=4, runs_per_member=2, updates=8),
    # The paper's update, φ ← φ + lr/(Vσ) Σ F_i ε_i by plain SGD, with F z-scored per epoch (the raw
    # returns' scale, about 10³ here, would set the step size otherwise).
    "paper": dict(meta_optimizer="sgd", shaping="z_score", meta_learning_rate=1e-4),
    # OpenES practice: Adam, centred ranks, σ decaying by 1% an epoch to a floor.
    "openes": dict(sigma=0.02, sigma_decay=0.99, sigma_min=0.005),
}


def get_config(variant: str = "", family: dict = None):
  """family: `epg` settings of another task family (configs/epg_random_cartpole.py), applied first."""
  if variant not in VARIANTS:
    raise ValueError(f"config variant {variant!r} is unknown; choose one of {', '.join(map(repr, VARIANTS))}")
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.epochs = 3 if variant == "quick" else 300
  c.epg = config_from_dataclass(EPGConfig(**{**(family or {}), **VARIANTS[variant]}))
  c.update(config_from_dataclass(RunSettings(eval_every=10, eval_episodes=4, checkpoint_every=5)))
  return c
