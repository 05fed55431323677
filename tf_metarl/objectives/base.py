"""The interface every objective implements, hand-designed or learned.

An objective maps named `[batch, time]` tensors (experience, and the policy's and critic's
differentiable outputs on it) to per-step objective values `[batch, time]` and a scalar `loss` whose
gradient trains the agent. Inputs are passed by name, so the same learner feeds a Python objective
and one loaded from a SavedModel, and the exported signature takes exactly `input_names`.
"""
from __future__ import annotations

from typing import Dict, Mapping, Tuple

import tensorflow as tf

from tf_metarl import errors

ON_POLICY = "on_policy"    # stochastic policy, fresh rollouts, inputs from log-probabilities/values
OFF_POLICY = "off_policy"  # deterministic policy, replayed sequences, inputs from twin-Q critics

# Every input an objective may ask for. All float32; [B, T] unless noted. Differentiable ones are
# recomputed by the learner with the current parameters; the others come from the trajectory.
INPUT_DESCRIPTIONS = {
    "rewards": "reward r_t",
    "discounts": "environment discount: 0 where the episode terminated at t, else 1",
    "episode_ends": "1 where the episode ended at t (terminated or truncated), else 0",
    "values": "V(s_t) of the current critic (differentiable)",
    "next_values": "V(s'_t) of the true next observation (current critic)",
    "rollout_values": "V(s_t) the objective's targets are computed from (constant): the critic's at collection "
                      "when the learner freezes targets per rollout (on_policy.freeze_targets), else the current one's",
    "rollout_next_values": "V(s'_t) the targets are computed from (constant), as rollout_values",
    "log_probs": "log π(a_t|s_t) of the current policy (differentiable)",
    "behaviour_log_probs": "log μ(a_t|s_t) of the policy that collected the data",
    "entropies": "entropy of the current policy at s_t (differentiable)",
    "q_values": "Q1(s_t, π(s_t)) of the current critic at the current policy's action (differentiable)",
    "time": "time within the episode: its step count at t divided by the environment's step limit, in [0, 1]",
    "actions": "[B, T, A] current policy's action π(s_t) (differentiable; off-policy)",
    "behaviour_actions": "[B, T, A] action a_t taken in the data (one-hot for discrete actions)",
    "observations": "[B, T, O] observation s_t (flat)",
    "policy_outputs": "[B, T, P] π(·|s_t) of the current policy: probabilities, or mean and log-std (differentiable)",
    "memory": "[B, T, M] the policy's memory unit output, the same at every step (differentiable; EPG)",
}
_RANK3 = ("actions", "behaviour_actions", "observations", "policy_outputs", "memory")


def input_spec(name: str) -> tf.TensorSpec:
  """The TensorSpec of a named input, with dynamic batch, time (and action) dimensions."""
  if name not in INPUT_DESCRIPTIONS:
    raise errors.ObjectiveInputError(f"unknown objective input {name!r}; known: {', '.join(INPUT_DESCRIPTIONS)}")
  shape = [None, None, None] if name in _RANK3 else [None, None]
  return tf.TensorSpec(shape, tf.float32, name=name)


def with_feature_sizes(specs: Mapping[str, tf.TensorSpec], constraints: Mapping) -> Dict[str, tf.TensorSpec]:
  """`specs` with the last axis of observations / actions / policy outputs / memory fixed to
  `constraints`' observation_dim / action_dim (num_actions for one-hot actions) /
  policy_output_dim / memory_units where those are set."""
  sizes = {"observations": constraints.get("observation_dim"), "actions": constraints.get("action_dim"),
           "behaviour_actions": constraints.get("action_dim") or constraints.get("num_actions"),  # one-hot if discrete
           "policy_outputs": constraints.get("policy_output_dim"), "memory": constraints.get("memory_units")}
  out = {}
  for name, spec in specs.items():
    if sizes.get(name) is not None and spec.shape.rank == 3:
      spec = tf.TensorSpec([None, None, int(sizes[name])], spec.dtype, name=name)
    out[name] = spec
  return out


def describe_spec(spec: tf.TensorSpec) -> str:
  dims = ",".join("?" if d is None else str(d) for d in spec.shape.as_list())
  return f"{spec.name}: {spec.dtype.name}[{dims}]"


def validate_inputs(specs: Mapping[str, tf.TensorSpec], inputs: Mapping[str, tf.Tensor], owner: str) -> Dict[str, tf.Tensor]:
  """Checks names, dtypes and ranks against `specs`; returns exactly the inputs the specs name.

  Raises:
    ObjectiveInputError: naming the first offending input and the expected spec.
  """
  missing = [n for n in specs if n not in inputs]
  if missing:
    raise errors.ObjectiveInputError(
        f"{owner}: missing input(s) {', '.join(missing)}; expected "
        f"{'; '.join(describe_spec(specs[n]) for n in specs)}")
  checked = {}
  for name, spec in specs.items():
    x = inputs[name]
    dtype = x.dtype if hasattr(x, "dtype") else None
    if dtype is not None and tf.as_dtype(dtype) != spec.dtype:
      raise errors.ObjectiveInputError(
          f"{owner}: input {name} has dtype {tf.as_dtype(dtype).name}, expected {describe_spec(spec)}")
    x = tf.convert_to_tensor(x, spec.dtype)
    if x.shape.rank is not None and not spec.shape.is_compatible_with(x.shape):
      raise errors.ObjectiveInputError(
          f"{owner}: input {name} has shape {x.shape.as_list()}, expected {describe_spec(spec)}")
    checked[name] = x
  return checked


def _runtime_rank(x: tf.Tensor) -> tf.Tensor:
  """The rank of the tensor actually fed. `tf.rank` is folded to the placeholder's declared rank
  when a graph is optimised (measured: a rank-1 feed into a [?, ?] signature passed a rank
  assertion); the row count of `tf.where` is only known at run time, so it cannot be folded."""
  return tf.shape(tf.where(tf.shape(x) >= 0), out_type=tf.int32)[0]


def assert_input_shapes(specs: Mapping[str, tf.TensorSpec], inputs: Mapping[str, tf.Tensor],
                        owner: str) -> Dict[str, tf.Tensor]:
  """Run-time checks for graphs that outlive Python (an export's signatures): every input has its
  spec's rank and fixed sizes, all share one non-empty [batch, time], and the returned tensors
  depend on those checks. A SavedModel signature does not check the ranks or sizes of what it is
  fed (measured: a rank-1 `rewards` reached the loss), and broadcasting would otherwise hide a
  [1, T] input beside [B, T] ones. Ranks are checked first, so each error names the input at fault
  and its expected spec.
  """
  names = sorted(specs)
  rank_checks = [tf.debugging.assert_equal(_runtime_rank(inputs[n]), specs[n].shape.rank,
                                           message=f"{owner}: input {n} must have rank {specs[n].shape.rank}: "
                                                   f"{describe_spec(specs[n])}") for n in names]
  with tf.control_dependencies(rank_checks):
    reference = "rewards" if "rewards" in specs else names[0]
    ref_dims = tf.shape(inputs[reference], out_type=tf.int32)[:2]
    checks = [tf.debugging.assert_positive(tf.reduce_prod(ref_dims), message=(
        f"{owner}: empty batch: input {reference} has a zero batch or time dimension; every input needs "
        f"batch >= 1 and time >= 1"))]
    for name in names:
      spec, dims = specs[name], tf.shape(inputs[name], out_type=tf.int32)
      expected = describe_spec(spec)
      checks.append(tf.debugging.assert_equal(dims[:2], ref_dims, message=(
          f"{owner}: input {name} must be {expected} with the batch and time dimensions of {reference} (all "
          f"inputs share [batch, time])")))
      for axis, size in enumerate(spec.shape.as_list()):
        if size is not None:
          checks.append(tf.debugging.assert_equal(dims[axis], size, message=(
              f"{owner}: input {name} must have size {size} on axis {axis}: {expected}")))
    if "actions" in specs and "behaviour_actions" in specs:
      checks.append(tf.debugging.assert_equal(
          tf.shape(inputs["behaviour_actions"])[2], tf.shape(inputs["actions"])[2], message=(
              f"{owner}: inputs actions and behaviour_actions must have the same action dimension (axis 2)")))
  with tf.control_dependencies(checks):
    return {name: tf.identity(inputs[name]) for name in names}


class Objective(tf.Module):
  """Base class: subclasses set the class attributes and implement `_loss`.

  Attributes:
    kind: registry name of the objective ("ppo", "td3", "metagenrl", ...).
    learner: ON_POLICY or OFF_POLICY: which learner trains an agent with it.
    action_kinds: action spaces it can train ("discrete", "continuous").
    input_names: the inputs `_loss` reads.
    output_names: what `_loss` returns and an export's signature outputs: always `per_step`
      [B, T] and `loss` (scalar); some objectives add more (e.g. FRODO's `targets`).
    trains_critic: True if the loss also regresses the critic (through `values`); otherwise the
      learner trains the critic with its own loss.
  """
  kind: str = "objective"
  learner: str = ON_POLICY
  action_kinds: Tuple[str, ...] = ("discrete", "continuous")
  input_names: Tuple[str, ...] = ()
  output_names: Tuple[str, ...] = ("per_step", "loss")
  trains_critic: bool = False

  def input_specs(self) -> Dict[str, tf.TensorSpec]:
    """One spec per input name; the feature size of observations / actions is fixed where
    `constraints()` fixes it (and then appears in an export's signature)."""
    return with_feature_sizes({n: input_spec(n) for n in self.input_names}, self.constraints())

  def __call__(self, inputs: Mapping[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    """Returns {"per_step": [B, T], "loss": scalar} (plus scalar diagnostics for some objectives)."""
    return self._loss(validate_inputs(self.input_specs(), inputs, self.kind))

  def _loss(self, inputs: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    raise NotImplementedError

  # --- targets computed once per rollout (optional) ---
  # An objective whose targets (advantages, returns) need whole trajectories can compute them once
  # per rollout, so that a learner may train on minibatches of shuffled single transitions
  # (`on_policy.minibatch_unit`): `rollout_targets` on the whole rollout [B, T], then
  # `loss_from_targets` on any minibatch of the same steps. Learned objectives do not.
  computes_rollout_targets: bool = False
  rollout_target_inputs: Tuple[str, ...] = ()  # what `rollout_targets` reads (no policy outputs)

  def rollout_targets(self, inputs: Mapping[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    """Named [B, T] targets of a whole rollout from `rollout_target_inputs` (constants)."""
    raise errors.ConfigError(f"objective {self.kind!r} does not compute its targets per rollout")

  def loss_from_targets(self, inputs: Mapping[str, tf.Tensor], targets: Mapping[str, tf.Tensor]
                        ) -> Dict[str, tf.Tensor]:
    """As `__call__`, with the targets `rollout_targets` gave for the same steps (any [B, T] layout)."""
    raise errors.ConfigError(f"objective {self.kind!r} does not compute its targets per rollout")

  def hyperparameters(self) -> dict:
    """JSON-serialisable settings recorded in exports."""
    return {}

  def with_hyperparameters(self, **values) -> "Objective":
    """A copy with some numeric `hyperparameters()` replaced, by floats or scalar tensors (one
    member's values inside a population's vectorised update). Unknown or non-numeric names are a
    one-line ConfigError."""
    known = {k: v for k, v in self.hyperparameters().items()
             if isinstance(v, (int, float)) and not isinstance(v, bool)}
    unknown = sorted(set(values) - set(known))
    if unknown:
      raise errors.ConfigError(f"objective {self.kind!r} has no numeric hyperparameter(s) {', '.join(unknown)}; "
                               f"it has: {', '.join(sorted(known)) or 'none'}")
    copy = object.__new__(type(self))
    copy.__dict__.update(self.__dict__)
    for name, value in values.items():
      object.__setattr__(copy, name, value)
    return copy

  def learner_settings(self) -> dict:
    """Settings of the learner this objective was meta-trained beside (keys of that learner's
    config section, e.g. `off_policy.sequence_length`), recorded in exports: `train_agent` uses
    them where the user's config leaves a key at its default. Empty for hand-written objectives."""
    return dict(getattr(self, "_learner_settings", None) or {})

  def set_learner_settings(self, settings: Mapping) -> None:
    """Records `learner_settings` (JSON-serialisable; not tracked as checkpoint state)."""
    self._learner_settings = self._no_dependency(dict(settings))

  def constraints(self) -> dict:
    """What an environment must satisfy for this objective (recorded in exports, checked by learners).

    Keys: `action_kinds`; `action_dim` if the objective reads fixed-size actions; `observation_dim`
    if it reads fixed-size observations (None: observations are not read).
    """
    return {"action_kinds": list(self.action_kinds), "action_dim": None, "observation_dim": None}
