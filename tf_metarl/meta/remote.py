"""Population members evaluated in other processes, on Ray (EPG's `backend="ray"`; any
evolution-strategies problem whose members are described by seeds).

  members = RayMembers(address="", workers=2, timeout_s=600.0)
  results, report = members.map(evaluate_member, shared, jobs)

`evaluate_member(shared, job)` is a module-level function run as one Ray task per job. `shared`
(the current parameters, the config) is put in Ray's object store once per call; each job is
small (seeds, a member index). Results come back in job order. A member whose worker dies, whose
function raises, or that is not done within `timeout_s` is lost: its result is None, a one-line
warning says why, and the call goes on with the rest (the estimator then uses the members it
has). `report` counts the bytes that travelled (pickled `shared` once, the jobs and the results)
and the lost members.

Ray starts on this machine (`address=""`: `workers` processes, one per core if 0) or joins a
cluster (`"auto"`, `"host:port"` or `"ray://host:port"`; the cluster must have tf_metarl
installed). An address that does not answer is a one-line `errors.ConfigError` before anything
runs.
"""
from __future__ import annotations

import dataclasses
import logging as std_logging
import os
import pickle
import socket
import time
from typing import Callable, Dict, List, Optional, Sequence

from absl import logging

from tf_metarl import errors

CONNECT_TIMEOUT_S = 5.0


def _import_ray():
  try:
    import ray
  except ImportError:
    raise errors.ConfigError("the Ray backend needs ray: pip install '.[ray]'") from None
  return ray


def check_address(address: str) -> None:
  """Raises a one-line ConfigError if a `host:port` (or `ray://host:port`) address does not accept
  a TCP connection within CONNECT_TIMEOUT_S ("" and "auto" are not checked here)."""
  if address in ("", "auto"):
    return
  hostport = address.split("://", 1)[-1]
  host, colon, port = hostport.rpartition(":")
  if not colon or not host or not port.isdigit():
    raise errors.ConfigError(f"Ray address must be '', 'auto', host:port or ray://host:port, got {address!r}")
  try:
    with socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S):
      pass
  except OSError as e:
    raise errors.ConfigError(f"Ray address {address} is unreachable ({e.strerror or type(e).__name__}); "
                             f"start the cluster or pass --backend=graph") from None


@dataclasses.dataclass
class MapReport:
  """What one `map` call cost and lost."""
  bytes_sent: int = 0
  bytes_received: int = 0
  lost: Dict[int, str] = dataclasses.field(default_factory=dict)  # job index -> why
  seconds: float = 0.0


def _why(error) -> str:
  """One line on why a task failed: the function's own exception, or Ray's (a dead worker)."""
  cause = getattr(error, "cause", None)
  if isinstance(cause, BaseException):
    return f"{type(cause).__name__}: {str(cause).strip().splitlines()[0][:200] if str(cause).strip() else ''}"
  text = str(error).strip()
  return f"{type(error).__name__}: {text.splitlines()[0][:200] if text else ''}"


class RayMembers:
  """Args:
    address: "" (start Ray here), "auto", "host:port" or "ray://host:port".
    workers: worker processes when Ray starts here (0: one per core).
    timeout_s: a job not done this many seconds after the call started is lost (0: no limit).
  """

  def __init__(self, address: str = "", workers: int = 0, timeout_s: float = 0.0):
    if workers < 0 or timeout_s < 0:
      raise errors.ConfigError(f"Ray workers and timeout must be >= 0, got {workers} and {timeout_s}")
    check_address(address)
    self.address, self.workers, self.timeout_s = address, int(workers), float(timeout_s)
    self._remote: Dict[Callable, object] = {}

  def _ensure_started(self):
    ray = _import_ray()
    if not ray.is_initialized():
      # Each task runs TensorFlow; one thread pool per process keeps workers from fighting over cores.
      # (Not the inter-op pool: a task stepped in Python runs a compiled policy from inside a
      # py_function, which needs a second inter-op thread.)
      env = {"TF_NUM_INTRAOP_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
      kwargs = dict(include_dashboard=False, logging_level=std_logging.WARNING, log_to_driver=False,
                    runtime_env={"env_vars": env})
      if self.address:
        ray.init(address=self.address, **kwargs)
      else:
        ray.init(num_cpus=self.workers or os.cpu_count(), **kwargs)
    return ray

  def map(self, fn: Callable, shared, jobs: Sequence) -> tuple:
    """Runs fn(shared, job) for every job as a Ray task. Returns (results in job order, None for
    a lost job; MapReport)."""
    ray = self._ensure_started()
    if fn not in self._remote:
      self._remote[fn] = ray.remote(max_retries=0, num_cpus=1)(fn)
    remote, report, start = self._remote[fn], MapReport(), time.time()
    report.bytes_sent = len(pickle.dumps(shared)) + sum(len(pickle.dumps(job)) for job in jobs)
    shared_ref = ray.put(shared)
    refs = [remote.remote(shared_ref, job) for job in jobs]
    position = {ref: i for i, ref in enumerate(refs)}
    results: List[Optional[object]] = [None] * len(jobs)
    pending = list(refs)
    while pending:
      left = None if not self.timeout_s else max(0.0, start + self.timeout_s - time.time())
      done, pending = ray.wait(pending, num_returns=1, timeout=left)
      if not done:
        break
      for ref in done:
        try:
          results[position[ref]] = ray.get(ref)
          report.bytes_received += len(pickle.dumps(results[position[ref]]))
        except ray.exceptions.RayError as e:  # the worker died, or the function raised
          report.lost[position[ref]] = _why(e)
    for ref in pending:
      ray.cancel(ref, force=True)
      report.lost[position[ref]] = f"not done within {self.timeout_s:g} s"
    for index, why in sorted(report.lost.items()):
      logging.warning("member %d lost: %s", index, why)
    report.seconds = time.time() - start
    return results, report

  @staticmethod
  def shutdown():
    ray = _import_ray()
    if ray.is_initialized():
      ray.shutdown()
