"""What the in-graph learners share for a population of agents trained together in one graph.

Member i is the agent of seed `seed + i`, initialised as a lone agent of that seed would be. The
members' states are stacked on a leading axis (`agents.population`) and act and update through
`tf.vectorized_map`; their `num_envs` copies each are one batched environment of
`members × num_envs` copies, member i owning copies `i · num_envs … (i + 1) · num_envs − 1`.
`env_steps` counts each member's steps. With one member nothing is stacked or vectorised: the
learner's state is the lone agent's, and `_per_member` adds and removes the leading axis.
"""
from __future__ import annotations

import collections
from typing import List

import numpy as np
import tensorflow as tf

from tf_metarl import errors
from tf_metarl.agents import population
from tf_metarl.collection import EpisodeStats
from tf_metarl.state_variables import StateVariables


class InGraphPopulation:
  """Mixin for the in-graph learners: call `_init_members` before the learner's own `__init__` and
  `_stack_members` after it; the learner provides `_fresh_state(seed)` (the initial state a lone
  agent of `seed` would start from) and `_member_greedy(policy, observations)`."""

  members = 1
  member_settings: dict = {}  # per-member hyperparameters (the on-policy learner's `member_settings`)

  def _init_members(self, members) -> None:
    if int(members) < 1:
      raise errors.ConfigError(f"a population needs at least 1 member, got {members}")
    self.members = int(members)
    self._recent = [collections.deque(maxlen=100) for _ in range(self.members)]
    self.member_eval_returns: List[float] = [float("nan")] * self.members
    self.last_member_returns: List[List[float]] = [[] for _ in range(self.members)]  # the last iteration's episodes

  def _stack_members(self, seed: int) -> None:
    """Member 0 is the learner's own agent; the others start as lone agents of seed + i. The Keras
    models stay member 0's structure; the state is the stack."""
    if self.members > 1:
      self.state = StateVariables(population.stack([self.agent.init()] + [self._fresh_state(seed + i)
                                                                          for i in range(1, self.members)]),
                                  name="population_state")

  # --- members: every state leaf has a leading population axis inside a call ---
  def _read_members(self):
    state = self.state.read()
    return state if self.members > 1 else tf.nest.map_structure(lambda x: x[None], state)

  def _assign_members(self, state):
    self.state.assign(state if self.members > 1 else tf.nest.map_structure(lambda x: x[0], state))

  def _per_member(self, fn):
    """fn over one member's arguments -> over stacked arguments (no vectorisation for one member)."""
    if self.members > 1:
      return population.vectorize(fn)
    return lambda *args: tf.nest.map_structure(lambda x: x[None], fn(*tf.nest.map_structure(lambda x: x[0], args)))

  def _split_copies(self, x):
    """[members · num_envs, ...] -> [members, num_envs, ...] (static shapes, for XLA)."""
    return tf.reshape(x, [self.members, self.config.num_envs] + x.shape[1:].as_list())

  def _merge_copies(self, x):
    """The inverse of `_split_copies`."""
    return tf.reshape(x, [self.members * self.config.num_envs] + x.shape[2:].as_list())

  # --- episodes and evaluation, per member ---
  def _member_episodes(self, returns, lengths, finished, metrics) -> EpisodeStats:
    """Episodes of one call (NumPy [steps · copies], copy-minor as `tasks.BatchedTask.rollout`
    reports them): kept per member, each member's mean return added to `metrics` for a population."""
    ended = finished > 0
    returns, lengths = returns[ended], lengths[ended]
    copies = self.members * self.config.num_envs
    member = (np.flatnonzero(ended) % copies) // self.config.num_envs
    self.last_member_returns = [returns[member == i].tolist() for i in range(self.members)]
    if self.members > 1:
      for i in range(self.members):
        self._recent[i].extend(returns[member == i].tolist())
        if np.any(member == i):
          metrics[f"population/episodic_return_seed{self.seed + i}"] = float(returns[member == i].mean())
    return EpisodeStats(returns=returns.tolist(), lengths=lengths.astype(int).tolist())

  def summary_extra(self):
    """For a population, per member (in seed order): the seeds, the last evaluation's mean return
    and the mean of the last 100 training episodes (None where there are none)."""
    if self.members == 1:
      return {}
    nan_to_none = lambda xs: [None if x != x else round(x, 2) for x in xs]
    recent = [float(np.mean(r)) if r else float("nan") for r in self._recent]
    return {"seeds": [self.seed + i for i in range(self.members)],
            "member_settings": self.member_settings,
            "member_final_eval_return": nan_to_none(self.member_eval_returns),
            "member_train_return_last100": nan_to_none(recent)}

  def _greedy_members(self, stacked_policy, observations):
    """Every member's greedy actions on its share of observations [members · episodes, O]."""
    split = tf.reshape(observations, [self.members, -1, observations.shape[-1]])
    actions = self._per_member(self._member_greedy)(stacked_policy, split)
    return tf.reshape(actions, [-1] + actions.shape[2:].as_list())

  def evaluate(self, episodes: int):
    """Greedy episodes of every member (concatenated in seed order), all members in one graph."""
    self._evaluations += 1
    seed = 10_000 * (self.seed + 1) + 100 * self._evaluations
    returns = self.task.evaluate(self._greedy_fn, self._read_members().policy, episodes * self.members, seed=seed)
    if not returns:
      return []
    for i in range(self.members):
      own = returns[i * episodes:(i + 1) * episodes]
      self.member_eval_returns[i] = float(np.mean(own)) if own else float("nan")
    return returns
