"""Rate-limited logging: a peer that sends bad input as fast as it can must not write a log line per message."""

from __future__ import annotations

import logging
import time
from typing import Any


class LogThrottle:
    """A token bucket in front of one logger: `burst` lines at once, then `rate_per_s` lines per second; the lines
    dropped meanwhile are counted and the next line that passes says how many ("N similar messages suppressed")."""

    def __init__(self, logger: logging.Logger, rate_per_s: float = 2.0, burst: int = 10) -> None:
        self.logger = logger
        self.rate, self.burst, self.tokens = float(rate_per_s), int(burst), float(burst)
        self.stamp = time.monotonic()
        self.suppressed = 0

    def log(self, level: int, fmt: str, *args: Any) -> bool:
        """Log one line unless the bucket is empty (then count it); True when the line was written."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1.0:
            self.suppressed += 1
            return False
        self.tokens -= 1.0
        if self.suppressed:
            fmt, args = fmt + " (%d similar messages suppressed)", (*args, self.suppressed)
            self.suppressed = 0
        self.logger.log(level, fmt, *args)
        return True
