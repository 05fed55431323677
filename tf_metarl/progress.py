"""Progress lines with rate and ETA, for long runs."""
from __future__ import annotations

import datetime
import time
from typing import Optional


def format_duration(seconds: float) -> str:
  if seconds != seconds or seconds == float("inf"):
    return "?"
  return str(datetime.timedelta(seconds=int(max(seconds, 0))))


class ProgressMeter:
  """Tracks steps done towards a total; `line()` gives 'steps a/b (p%) | rate steps/s | ETA h:mm:ss'.

  The rate is measured over the steps done in this process (a resumed run does not count the
  steps it restored as instantly done).
  """

  def __init__(self, total: int, start: int = 0, unit: str = "steps", clock=time.monotonic):
    self.total, self.start, self.unit, self._clock = int(total), int(start), unit, clock
    self._t0 = clock()

  def rate(self, done: int) -> float:
    elapsed = self._clock() - self._t0
    return (done - self.start) / elapsed if elapsed > 0 else 0.0

  def eta_seconds(self, done: int) -> float:
    rate = self.rate(done)
    return (self.total - done) / rate if rate > 0 else float("inf")

  def line(self, done: int, extra: Optional[str] = None) -> str:
    pct = 100.0 * done / self.total if self.total else 100.0
    text = (f"{self.unit} {done:,}/{self.total:,} ({pct:.0f}%) | {self.rate(done):,.0f} {self.unit}/s | "
            f"ETA {format_duration(self.eta_seconds(done))}")
    return f"{text} | {extra}" if extra else text
