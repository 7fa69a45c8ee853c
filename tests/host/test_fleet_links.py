"""Fleet.links(): whether an edge is gone is asked of the process that runs it now, so a restarted local edge (a new
process under the same name) counts as present in a broadcast whose sender was made before the restart."""

from __future__ import annotations

import subprocess
import sys

from host.edge_process import EdgeProcess
from host.fleet_experiment import Fleet
from testbed.sections.fleet import FleetEdge


def _process(code: str) -> EdgeProcess:
    proc = EdgeProcess.__new__(EdgeProcess)  # a real process without an edge's config: only .alive is used here
    proc.proc = subprocess.Popen([sys.executable, "-c", code])
    return proc


def test_a_restarted_edge_is_not_gone() -> None:
    fleet = Fleet.__new__(Fleet)
    fleet.edges = [FleetEdge(name="edge-1", control_endpoint="tcp://127.0.0.1:1")]
    fleet.clients, fleet.local = {"edge-1": None}, True
    killed = _process("pass")
    killed.proc.wait(30)
    fleet.processes = {"edge-1": killed}
    [link] = fleet.links()  # made before the restart, as the round's sender is
    assert link.gone()
    restarted = _process("import time; time.sleep(60)")
    fleet.processes["edge-1"] = restarted
    try:
        assert not link.gone()
    finally:
        restarted.proc.kill()
        restarted.proc.wait(30)
    assert link.gone()


def test_a_remote_edge_is_never_gone() -> None:
    fleet = Fleet.__new__(Fleet)
    fleet.edges = [FleetEdge(name="lab-1", control_endpoint="tcp://10.0.0.2:5555")]
    fleet.clients, fleet.processes, fleet.local = {"lab-1": None}, {}, False
    assert not fleet.links()[0].gone()
