"""Checks that an output directory can be used, made before any work starts (nothing is created)."""
from __future__ import annotations

import os

from tf_metarl import errors


def check_writable_directory(path: str, label: str) -> None:
  """Raises ConfigError (one line, starting with `label`) unless `path` is a writable directory
  or can be created as one: it must not be a file, and its nearest existing ancestor must be a
  writable directory. (As root, `os.access` grants everything, so a read-only mount is then only
  found when the first write fails.)"""
  full = os.path.abspath(path)
  if os.path.exists(full):
    if not os.path.isdir(full):
      raise errors.ConfigError(f"{label}: exists and is not a directory")
    if not os.access(full, os.W_OK | os.X_OK):
      raise errors.ConfigError(f"{label}: directory is not writable")
    return
  parent = os.path.dirname(full)
  while not os.path.exists(parent):
    parent = os.path.dirname(parent)
  if not os.path.isdir(parent) or not os.access(parent, os.W_OK | os.X_OK):
    raise errors.ConfigError(f"{label}: cannot create it ({parent} is not a writable directory)")
