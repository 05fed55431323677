"""Agents with explicit state and pure updates; functional optimizers; populations."""
from tf_metarl.agents.actor_critic import ActorCritic, ActorCriticState
from tf_metarl.agents.optimizers import SGD, Adam, RMSProp, make_optimizer
from tf_metarl.agents.td3 import TD3, TD3Settings, TD3State

__all__ = ["ActorCritic", "ActorCriticState", "SGD", "Adam", "RMSProp", "make_optimizer", "TD3", "TD3Settings",
           "TD3State"]
