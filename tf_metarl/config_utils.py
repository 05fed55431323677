"""Turning ml_collections config sections into typed dataclasses, with one-line errors."""
from __future__ import annotations

import dataclasses
from typing import Mapping

from tf_metarl import errors


def dataclass_from_config(cls, values: Mapping, section: str):
  """Builds dataclass `cls` from a config section, with one-line ConfigErrors for unknown keys and
  values of the wrong type (bools must be bools, numbers numbers, tuples sequences of ints)."""
  names = {f.name for f in dataclasses.fields(cls)}
  unknown = sorted(set(values) - names)
  if unknown:
    raise errors.ConfigError(f"unknown key(s) in config.{section}: {', '.join(unknown)}")
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
          f"config.{section}.{f.name} must be {type(default).__name__}, got {value!r}") from None
  return cls(**converted)


def positive_int(value, name: str) -> int:
  """Returns `value` if it is a positive int (not a bool), else raises a one-line ConfigError."""
  if isinstance(value, bool) or not isinstance(value, int) or value < 1:
    raise errors.ConfigError(f"{name} must be a positive integer, got {value!r}")
  return value
