"""The local edge process: its death is noticed at once, and it does not outlive the process that started it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from airlora.commands.run import _interrupt_on_termination
from host.edge_process import EdgeExited, EdgeProcess

REPO = Path(__file__).resolve().parents[2]


def _gone(pid: int) -> bool:
    """True when pid no longer runs (exited, or a zombie nobody reaped yet)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def test_check_names_the_exit_code_and_the_log(tmp_path: Path) -> None:
    edge = EdgeProcess(tmp_path / "missing.yaml", tmp_path / "edge.log")
    try:
        edge.proc.wait(60)
        with pytest.raises(EdgeExited) as err:
            edge.check()
    finally:
        edge.stop()
    msg = str(err.value)
    assert "the local edge process exited with code 2" in msg and str(tmp_path / "edge.log") in msg
    assert "missing.yaml: cannot read the config file" in msg and "\n" not in msg


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_child_started_with_die_with_parent_dies_when_its_parent_is_killed() -> None:
    code = ("import subprocess, time\n"
            "from host.edge_process import die_with_parent\n"
            "child = subprocess.Popen(['sleep', '60'], preexec_fn=die_with_parent())\n"
            "print(child.pid, flush=True)\n"
            "time.sleep(60)\n")
    parent = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    assert not _gone(child)
    parent.kill()  # SIGKILL: no handler, no finally runs in the parent
    parent.wait(10)
    deadline = time.monotonic() + 10
    while not _gone(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    if not _gone(child):
        os.kill(child, signal.SIGKILL)
        pytest.fail("the child outlived its SIGKILLed parent")


def test_sigterm_ends_a_run_like_ctrl_c_and_the_handlers_are_restored() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
        with _interrupt_on_termination():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
    assert signal.getsignal(signal.SIGTERM) is before
