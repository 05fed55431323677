"""Runs many invocations of tf_metarl's binaries as forked children of one interpreter that has
imported them once: each child starts where a fresh `python -m tf_metarl.bin.<name>` would after
its imports, with its own argv, working directory, stdout, stderr and exit status.

Why: a binary spends ~5 s of a bad-input check importing TensorFlow and the library (measured on
a 2-core host: 6 s per `train_agent --config.no_such_field=1`, 2 s forked), and
tests/test_bad_inputs.py checks 72 of them. Cold starts stay covered there by a few cases that
run as plain subprocesses (`COLD_START_CASES`), so the quiet import itself is still tested.

Protocol: `python -m tests.forked_binaries` reads a JSON list of {"binary", "args", "cwd"} on
stdin, runs them two at a time (two cores), and prints a JSON list of {"returncode", "stdout",
"stderr"} in the same order.
"""
import atexit
import json
import os
import runpy
import signal
import sys
import tempfile
import traceback

PARALLEL = 2
CHILD_TIMEOUT_S = 300  # a child still running then is killed by SIGALRM (status -14)


def _child(binary: str, args, cwd: str, out_path: str, err_path: str):
  """Runs in the forked child: never returns."""
  code = 1
  try:
    signal.alarm(CHILD_TIMEOUT_S)
    os.chdir(cwd)
    for fd, path in ((1, out_path), (2, err_path)):
      target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
      os.dup2(target, fd)
      os.close(target)
    sys.argv = [f"tf_metarl.bin.{binary}"] + list(args)
    try:
      runpy.run_module(f"tf_metarl.bin.{binary}", run_name="__main__", alter_sys=True)
      code = 0
    except SystemExit as e:  # as the interpreter treats it at exit
      if e.code is None or isinstance(e.code, int):
        code = e.code or 0
      else:
        print(e.code, file=sys.stderr)
        code = 1
    except BaseException:  # noqa: BLE001 - an uncaught exception: traceback and status 1, as python does
      traceback.print_exc()
      code = 1
    atexit._run_exitfuncs()
  finally:
    for stream in (sys.stdout, sys.stderr):
      try:
        stream.flush()
      except Exception:  # noqa: BLE001
        pass
    os._exit(code)


def run_all(requests):
  """[{"binary", "args", "cwd"}] -> [{"returncode", "stdout", "stderr"}], PARALLEL at a time."""
  results = [None] * len(requests)
  running = {}  # pid -> (index, stdout path, stderr path)
  scratch = tempfile.mkdtemp(prefix="forked_binaries_")
  pending = list(enumerate(requests))
  while pending or running:
    while pending and len(running) < PARALLEL:
      index, request = pending.pop(0)
      out_path, err_path = (os.path.join(scratch, f"{index}.{s}") for s in ("out", "err"))
      sys.stdout.flush()
      sys.stderr.flush()
      pid = os.fork()
      if pid == 0:
        _child(request["binary"], request["args"], request["cwd"], out_path, err_path)
      running[pid] = (index, out_path, err_path)
    pid, status = os.wait()
    if pid not in running:
      continue
    index, out_path, err_path = running.pop(pid)
    read = lambda path: open(path, errors="replace").read() if os.path.exists(path) else ""
    results[index] = {"returncode": os.waitstatus_to_exitcode(status), "stdout": read(out_path),
                      "stderr": read(err_path)}
  return results


def main():
  requests = json.load(sys.stdin)
  import tf_metarl.bin.common  # noqa: F401 - TensorFlow, quietly, and the library, once for every child
  json.dump(run_all(requests), sys.stdout)


if __name__ == "__main__":
  main()
