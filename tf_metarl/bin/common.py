"""What every binary shares: one-line errors for bad flags and bad input, quiet logs, config paths."""
from __future__ import annotations

import logging as std_logging
import os
import re
import sys
from typing import Callable, List

from absl import app, flags, logging

from tf_metarl import errors

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG_DIR = os.path.join(REPO_ROOT, "configs")
# Config files import shared pieces as `configs.<module>`; make that work from any working directory.
if REPO_ROOT not in sys.path:
  sys.path.append(REPO_ROOT)


def default_config(name: str) -> str:
  """Path of a config file in the repository's `configs/`."""
  return os.path.join(CONFIG_DIR, name)


def plot_run(logdir: str, label: str, title: str) -> str:
  """Plots a run's learning curve to `<logdir>/learning_curve.png`; returns the path."""
  from tf_metarl import plotting
  from tf_metarl.learners import loop
  rows = loop.read_learning_curve(os.path.join(logdir, loop.CURVE_FILE))
  return plotting.plot_learning_curves({label: rows}, os.path.join(logdir, "learning_curve.png"), title=title)


def fail(message: str, status: int = 2):
  """Prints `error: message` on one line to stderr and exits with `status`."""
  print(f"error: {message}", file=sys.stderr, flush=True)
  sys.exit(status)


def one_line(exception: BaseException, limit: int = 400) -> str:
  """The exception's message with whitespace (newlines included) collapsed, cut to `limit` characters."""
  text = str(exception)
  if "Traceback (most recent call last)" in text:  # ml_collections embeds the config file's traceback.
    head, _, tail = text.partition("Traceback (most recent call last)")
    text = head + [line for line in tail.splitlines() if line.strip()][-1]
  text = " ".join(text.split()) or type(exception).__name__
  return text if len(text) <= limit else text[:limit - 3] + "..."


def explain_config_error(exception: BaseException, argv: List[str]) -> str:
  """One line for an exception raised while a config file is loaded or overridden. ml_collections
  reports an override of a field that does not exist as a bare KeyError/AttributeError naming the
  field; this names the flag that asked for it."""
  text = one_line(exception)
  match = re.fullmatch(r"""["']*([A-Za-z_]\w*)["']*""", text)
  if isinstance(exception, (KeyError, AttributeError)) and match:
    field = match.group(1)
    for arg in argv:
      name = arg.split("=", 1)[0]
      if name.startswith("--config.") and field in name.split("."):
        return f"{name}: the config has no field {field!r} (an override must name an existing field)"
    return f"the config has no field {field!r}"
  return f"cannot load config: {text}"


def parse_flags(argv: List[str]) -> List[str]:
  """absl flag parsing with a one-line error instead of usage text and a traceback."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    fail(one_line(e))
  except Exception as e:  # A config file that raises while it is built (e.g. an unknown preset).
    fail(explain_config_error(e, argv))


def define_config(default_file: str, help_text: str):
  """`config_flags.DEFINE_config_file` for `--config`, default `configs/<default_file>`.

  ml_collections loads the default file and applies `--config.*` overrides from sys.argv while
  the flag is defined, that is at import time, before `parse_flags` can catch anything; errors
  there get the same one line.
  """
  from ml_collections import config_flags
  try:
    return config_flags.DEFINE_config_file("config", default_config(default_file), help_text, lock_config=True)
  except Exception as e:  # pylint: disable=broad-except
    fail(explain_config_error(e, sys.argv))


def define_fresh_flag():
  return flags.DEFINE_boolean("fresh", False, "Move an existing --logdir aside (to <logdir>.old-<n>; nothing is "
                                              "deleted) and start over, instead of resuming it.")


class _DropNoise(std_logging.Filter):
  """Drops TensorFlow's per-save checkpoint chatter from the progress log."""

  def filter(self, record):
    return not record.getMessage().startswith("Sharding callback duration")


def import_tensorflow_quietly():
  """Imports TensorFlow with file descriptor 2 pointed at /dev/null, and C++ log lines below FATAL
  off (TF_CPP_MIN_LOG_LEVEL=3 unless set).

  TensorFlow 2.21 writes start-up lines (oneDNN, CUDA probing) from C++ before its logger is set
  up, so TF_CPP_MIN_LOG_LEVEL does not remove them (measured here), and at run time C++ ERROR
  lines that are not errors of the run (`oneDNN supports DT_INT32 only on platforms with AVX-512`,
  printed by every FRODO run here); they would bury the progress log and break the one-line
  errors. Failures still reach Python as exceptions. TF_METARL_VERBOSE_TF=1 keeps everything.
  Python exceptions raised by the import still reach the caller.
  """
  if "tensorflow" in sys.modules or os.environ.get("TF_METARL_VERBOSE_TF"):
    return
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  sys.stderr.flush()
  saved = os.dup(2)
  devnull = os.open(os.devnull, os.O_WRONLY)
  try:
    os.dup2(devnull, 2)
    import tensorflow
    tensorflow.config.list_physical_devices()  # Device probing logs too (cuInit on CPU-only machines).
  finally:
    os.dup2(saved, 2)
    os.close(saved)
    os.close(devnull)


def run(main: Callable[[List[str]], None]):
  """`app.run` with one-line errors: UserError -> `error: ...`, exit status 2; a run stopped by
  SIGINT/SIGTERM (after its checkpoint) -> one line, exit status 128 + the signal number."""
  import_tensorflow_quietly()

  def wrapped(argv):
    logging.get_absl_logger().addFilter(_DropNoise())
    logging.set_verbosity(logging.INFO)
    try:
      main(argv)
    except errors.UserError as e:
      fail(str(e))
    except errors.RunInterrupted as e:
      print(f"interrupted: {e}", file=sys.stderr, flush=True)
      sys.exit(128 + e.signum)

  app.run(wrapped, flags_parser=parse_flags)


# Binaries import this module before defining their flags, and ml_collections loads the default
# config file (which imports the dataclasses, hence TensorFlow) while defining them.
import_tensorflow_quietly()
