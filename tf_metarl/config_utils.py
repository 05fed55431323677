"""Turning ml_collections config sections into typed dataclasses, with one-line errors."""
from __future__ import annotations

import dataclasses
import typing
from typing import Mapping

import ml_collections

from tf_metarl import errors


def config_from_dataclass(instance) -> ml_collections.ConfigDict:
  """A ConfigDict holding a dataclass instance's fields (nested dataclasses become sections), so
  configs take their defaults from the dataclasses that define them. `None` defaults of
  `Optional[float]`/`Optional[int]` fields become typed placeholders, settable from flags."""
  hints = typing.get_type_hints(type(instance))
  out = ml_collections.ConfigDict()
  for f in dataclasses.fields(instance):
    value = getattr(instance, f.name)
    if dataclasses.is_dataclass(value):
      out[f.name] = config_from_dataclass(value)
    elif value is None:
      kind = next((t for t in typing.get_args(hints[f.name]) if t is not type(None)), object)
      out[f.name] = ml_collections.config_dict.placeholder(kind)
    else:
      out[f.name] = value
  return out


def dataclass_from_config(cls, values: Mapping, section: str):
  """Builds dataclass `cls` from a config section, with one-line ConfigErrors for unknown keys and
  values of the wrong type (bools must be bools, numbers numbers, tuples sequences of ints, or of
  strings where the default holds strings).
  `section` names the config section in messages ("" for top-level keys)."""
  names = {f.name for f in dataclasses.fields(cls)}
  unknown = sorted(set(values) - names)
  where = f"config.{section}." if section else "config."
  if unknown:
    raise errors.ConfigError(f"unknown key(s) in {where.rstrip('.')}: {', '.join(unknown)}")
  converted = {}
  for f in dataclasses.fields(cls):
    if f.name not in values:
      continue
    value = values[f.name]
    default = f.default
    try:
      if isinstance(default, bool):
        if not isinstance(value, bool):
          raise TypeError
        converted[f.name] = value
      elif isinstance(default, tuple):
        if default and isinstance(default[0], str):  # e.g. environment ids
          if isinstance(value, str) or not all(isinstance(v, str) for v in value):
            raise TypeError
          converted[f.name] = tuple(value)
        else:
          converted[f.name] = tuple(int(v) for v in value)
      elif isinstance(default, str):
        if not isinstance(value, str):
          raise TypeError
        converted[f.name] = value
      elif isinstance(default, (int, float)):
        if isinstance(value, bool) or isinstance(value, str):
          raise TypeError
        converted[f.name] = type(default)(value)
      else:
        converted[f.name] = value
    except (TypeError, ValueError):
      raise errors.ConfigError(
          f"{where}{f.name} must be {type(default).__name__}, got {value!r}") from None
  return cls(**converted)


def positive_int(value, name: str) -> int:
  """Returns `value` if it is a positive int (not a bool), else raises a one-line ConfigError."""
  if isinstance(value, bool) or not isinstance(value, int) or value < 1:
    raise errors.ConfigError(f"{name} must be a positive integer, got {value!r}")
  return value


def parse_member_values(text: str, members: int, name: str = "config.member_settings") -> typing.Dict[str, list]:
  """"learning_rate=1e-4:2.5e-4,entropy_coef=0:0.01" -> {"learning_rate": [1e-4, 2.5e-4], ...}: one
  value per population member ("" -> {}). Each list must have `members` finite values."""
  values = {}
  for item in filter(None, (part.strip() for part in str(text or "").split(","))):
    key, _, listed = item.partition("=")
    try:
      numbers = [float(v) for v in listed.split(":")] if key.strip() and listed else None
    except ValueError:
      numbers = None
    if numbers is None:
      raise errors.ConfigError(f"{name}: settings are name=v1:v2:... separated by commas (e.g. "
                               f"learning_rate=1e-4:3e-4), got {item!r}")
    if len(numbers) != members or not all(abs(v) < float("inf") for v in numbers):
      raise errors.ConfigError(f"{name}: {key.strip()} needs {members} finite values (one per member), got {listed!r}")
    values[key.strip()] = numbers
  return values
