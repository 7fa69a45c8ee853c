"""Start and stop a local edge daemon process (`airlora edge`) for runs on one machine."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from testbed.errors import AirLoraError

PR_SET_PDEATHSIG = 1
"""prctl(2) option: the signal the kernel sends a process when its parent dies (Linux)."""


class EdgeExited(AirLoraError):
    """The local edge process exited: nobody restarts it, so the run cannot go on."""


def die_with_parent() -> Callable[[], None] | None:
    """A Popen preexec_fn that has Linux send the child SIGTERM when this process dies, even by SIGKILL.

    The kernel ties the child to the thread that starts it: start it from the main thread. None off Linux.
    """
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM))
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


class EdgeProcess:
    """An `airlora edge` child process with its log in the run folder; it dies with the process that started it."""

    def __init__(self, config_path: Path, log_path: Path, node_id: str = "edge-local") -> None:
        self.log_path = log_path
        self._log = log_path.open("ab")
        env = dict(os.environ, HF_HUB_OFFLINE=os.environ.get("HF_HUB_OFFLINE", "1"), PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "airlora.cli", "edge", "--config", str(config_path), "--node-id", node_id],
            stdout=self._log, stderr=subprocess.STDOUT, env=env, preexec_fn=die_with_parent())

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def check(self) -> None:
        """Raise EdgeExited, naming the exit code and the log, once the process has exited (it will not come back)."""
        if self.alive:
            return
        lines = self.log_tail(1)
        last = f" (last line: {lines[:200]})" if lines else ""
        raise EdgeExited(f"the local edge process exited with code {self.proc.returncode}; its log: "
                         f"{self.log_path}{last}")

    def wait_ready(self, client, timeout_s: float):
        """client.wait_ready(timeout_s), but give up at once when this process exits (a bad config, a port in
        use): PeerTimeout naming the exit code and the end of the edge's log, instead of the whole timeout."""
        from testbed.control.endpoint import PeerTimeout

        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return client.wait_ready(min(0.5, max(deadline - time.monotonic(), 0.01)))
            except PeerTimeout:
                if not self.alive:
                    tail = self.log_tail()
                    raise PeerTimeout(f"the local edge process exited with code {self.proc.returncode} before it "
                                      f"answered" + (f"; its log ends:\n{tail}" if tail else "")) from None
                if time.monotonic() >= deadline:
                    raise PeerTimeout(f"no answer to hello from the edge at {client.endpoint} within "
                                      f"{timeout_s:.1f} s") from None

    def stop(self, timeout_s: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL if it does not exit in time; the exit code."""
        if self.alive:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        return self.proc.returncode

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
