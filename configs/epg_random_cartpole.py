"""Evolved Policy Gradients on random CartPole (issue 12): a family on which the inner training
learns within its budget, so evolution has a signal to climb.

  meta_train --config=configs/epg_random_cartpole.py --export=export/epg_random_cartpole
  meta_train --config=configs/epg_random_cartpole.py:quick     # a short smoke run

Each copy draws its pole's half length, pole mass and push force (held-out draws: longer poles and
stronger pushes). The inner training is U = 256 updates × M = 128 steps (32,768 steps) with 4 Adam
steps per update: PPO alone (α = 1) reaches a mean return of about 350 in it. Everything else, the
variants included, is configs/epg_random_pendulum.py's.
"""
from configs import epg_random_pendulum

CARTPOLE = dict(env="tf_metarl/CartPole-v1",
                randomize="half_length=0.25:1.0,pole_mass=0.05:0.2,force=5:15",
                held_out="half_length=1.0:1.5,force=15:20",
                updates=256, gradient_steps=4)


def get_config(variant: str = ""):
  return epg_random_pendulum.get_config(variant, family=CARTPOLE)
