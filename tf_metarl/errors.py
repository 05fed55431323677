"""User-facing errors: each carries a one-line message and is reported without a traceback."""


class UserError(Exception):
  """Bad input from a user: binaries print `error: <message>` and exit with status 2."""


class UnknownEnvironmentError(UserError):
  """The environment id is not registered with gymnasium."""


class IncompatibleSpaceError(UserError):
  """An objective or network does not fit an environment's observation or action space."""


class ObjectiveInputError(UserError):
  """Inputs passed to an objective do not match its input spec."""


class NotASavedModelError(UserError):
  """A path that should hold an exported objective does not."""


class HelperRewardError(UserError):
  """A helper reward does not answer as the interface asks (shape, signature)."""


class ConfigError(UserError):
  """A configuration value is malformed or out of range."""


class CheckpointError(UserError):
  """A checkpoint cannot be restored (corrupt, or written by an incompatible run)."""


class NonFiniteError(UserError):
  """Training produced non-finite values it could not skip past, or an export holds them."""


class RunInterrupted(Exception):
  """A run stopped at SIGINT/SIGTERM after writing a checkpoint; binaries exit 128 + signal."""

  def __init__(self, message: str, signum: int):
    super().__init__(message)
    self.signum = signum
