"""Faults of a fleet broadcast with real processes: an edge killed mid-broadcast, late joiners, a corrupted payload.

The edges are real `airlora edge` processes (one config each, as host.fleet writes them for a local fleet); the
host runs in the test process: one ControlClient per edge, one BroadcastTx over the IQ cables, a FountainSender.
Payloads are real signed adapter payloads of a random-init tiny BERT; small packets (K of about 40 symbols) and
bursts of a few symbols make a broadcast long enough to kill an edge in the middle of it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from adapters.signing import unwrap_unverified
from edge_node.install import current_adapter
from host.fleet import broadcast_tx, edge_config, free_port
from host.fountain_sender import FleetEdgeLink, FountainSender
from radio.link import LinkSettings
from testbed import __version__
from testbed.config import validate
from testbed.control.client import ControlClient
from testbed.keys import load_signing_secret, trust_signing_key, write_signing_keypair
from testbed.messages import Hello
from testbed.sections.fleet import FleetEdge

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny BERT, a trusted host signing key and two real signed payloads (A, B)."""
    from adapters.payload import read_header
    from host.pipeline import finetune_and_pack
    from ml.tiny import make_tiny_model

    root = tmp_path_factory.mktemp("fleet")
    model = make_tiny_model(root / "tiny-bert", "bert")
    raw = _raw(model, root)
    keys = write_signing_keypair(root / "keys", "host")
    trust_signing_key(keys.public, root / "keys" / "trusted")
    secret = load_signing_secret(keys.secret)
    payloads = {}
    for name, ranks in (("A", "uniform:4"), ("B", "uniform:8")):
        data, _ = finetune_and_pack(validate(raw), ranks=ranks, steps=1, signing_key=secret)
        payloads[name] = (data, read_header(unwrap_unverified(data))[2].hex()[:16])
    return model, root, payloads


def _raw(model: Path, root: Path) -> dict:
    return {
        "model": {"name": str(model), "max_length": 32, "cache_dir": str(root / "cache")},
        "data": {"task": "bbc_news", "train_size": 16, "val_size": 0, "test_size": 10, "probe_count": 2},
        "finetune": {"ranks": "uniform:4", "steps": 1, "batch_size": 8, "lr": 5e-3, "quant": "int8"},
        "radio": {"backend": "zmq", "packet_payload_bytes": 256, "zmq": {"timeout_s": 1.0}},
        "control": {"heartbeat_s": 0.2, "peer_timeout_s": 1.0, "request_timeout_s": 3.0},
        "edge": {"trusted_keys_dir": str(root / "keys" / "trusted")},
        "fleet": {"max_burst_symbols": 6, "min_burst_symbols": 2, "lag_timeout_s": 0.5, "report_timeout_s": 5.0,
                  "rejoin_wait_s": 60.0, "evaluate": False},
    }


class FleetLab:
    """N edge processes on free ports, each its own channel and adapter folder; the host in this process."""

    def __init__(self, tmp: Path, tiny, snrs: list[float]) -> None:
        model, root, self.payloads = tiny
        self.tmp = tmp
        raw = _raw(model, root)
        raw["edge"]["adapter_dir"] = str(tmp / "edge")
        raw["control"]["endpoint"] = f"tcp://127.0.0.1:{free_port()}"
        self.cfg = validate(raw)
        self.edges = [FleetEdge(name=f"edge-{i + 1}", control_endpoint=f"tcp://127.0.0.1:{free_port()}",
                                iq_endpoint=f"tcp://127.0.0.1:{free_port()}",
                                channel={"snr_db": snr, "seed": 10 + i}) for i, snr in enumerate(snrs)]
        self.paths = {}
        for e in self.edges:
            self.paths[e.name] = tmp / f"{e.name}.yaml"
            self.paths[e.name].write_text(yaml.safe_dump(edge_config(self.cfg, e, local=True)))
        self.procs: dict[str, subprocess.Popen] = {}
        hello = Hello(role="host", node_id="test-host", software_version=__version__, capabilities=["send"])
        self.clients = {e.name: ControlClient.from_config(self.cfg.control.model_copy(
            update={"endpoint": e.control_endpoint}), hello) for e in self.edges}
        self.tx = broadcast_tx(self.cfg, self.edges)
        self.events: list[tuple[str, dict]] = []
        self.on_event = None
        links = [FleetEdgeLink(e.name, self.clients[e.name]) for e in self.edges]
        self.sender = FountainSender(links, self.tx, LinkSettings.from_config(self.cfg.radio), "zmq", self.cfg.fleet,
                                     on_event=self._event)

    def _event(self, kind: str, **fields) -> None:
        self.events.append((kind, fields))
        if self.on_event is not None:
            self.on_event(kind, **fields)

    def start(self, name: str) -> None:
        env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
        with (self.tmp / f"{name}.log").open("ab") as log:
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", "airlora.cli", "edge", "--config", str(self.paths[name]), "--node-id", name],
                stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env)

    def kill(self, name: str) -> None:
        self.procs[name].send_signal(signal.SIGKILL)
        self.procs[name].wait(10)

    def wait_ready(self, names: list[str]) -> None:
        for n in names:
            self.clients[n].wait_ready(60.0)

    def live(self, name: str) -> str | None:
        current = current_adapter(f"{self.tmp / 'edge'}-{name}")
        return current.name if current else None

    def log(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in self.tmp.glob("*.log"))

    def close(self) -> None:
        self.tx.close()
        for c in self.clients.values():
            c.close()
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
                p.wait(10)


@pytest.fixture
def lab_factory(tmp_path, tiny):
    labs = []

    def make(snrs: list[float]) -> FleetLab:
        labs.append(FleetLab(tmp_path, tiny, snrs))
        return labs[-1]

    yield make
    for lab in labs:
        lab.close()


def test_an_edge_killed_mid_broadcast_does_not_stop_the_others_and_completes_after_restart(lab_factory):
    lab = lab_factory([18.0, 6.0, 12.0])
    for e in lab.edges:
        lab.start(e.name)
    lab.wait_ready([e.name for e in lab.edges])
    data, version = lab.payloads["A"]
    killed: dict[str, float] = {}

    def kill_edge_2_after_its_first_report(kind, **f):
        if kind == "fleet_progress" and f["edge"] == "edge-2" and f["received"] > 0 and not killed:
            lab.kill("edge-2")
            killed["t"] = time.monotonic()

    lab.on_event = kill_edge_2_after_its_first_report
    restart_after_others = {}

    def restart_when_the_others_are_done(kind, **f):
        kill_edge_2_after_its_first_report(kind, **f)
        if kind == "apply_result" and f["edge"] != "edge-2":
            restart_after_others[f["edge"]] = time.monotonic()
            if len(restart_after_others) == 2:
                lab.start("edge-2")  # comes back once the others have installed: it must still complete

    lab.on_event = restart_when_the_others_are_done
    d = lab.sender.deliver(data, 4242, deadline_s=120.0, apply=True, evaluate=False, apply_timeout_s=60.0)
    assert killed, lab.log()
    e1, e2, e3 = (d.edges[f"edge-{i}"] for i in (1, 2, 3))
    for e in (e1, e2, e3):
        assert e.done and e.apply is not None and e.apply.installed, (e.row(), lab.log())
        assert lab.live(e.name) == version
    assert e2.lost >= 1 and e2.done_s > max(e1.done_s, e3.done_s)  # it finished last, after coming back
    # the others did not wait for it: both finished before it was even restarted
    assert max(restart_after_others.values()) >= killed["t"]
    assert e2.received >= d.source_symbols and d.symbols_sent > d.source_symbols  # it needed fresh repair symbols
    kinds = [k for k, _ in lab.events]
    assert "edge_lost" in kinds and kinds.count("edge_joined") >= 4


def test_a_corrupted_payload_is_never_installed_and_a_late_edge_still_completes(lab_factory):
    lab = lab_factory([15.0, 4.0])
    lab.start("edge-1")
    lab.wait_ready(["edge-1"])
    data, version = lab.payloads["A"]
    started = {}

    def start_edge_2_late(kind, **f):  # edge-2 joins once the broadcast has begun
        if kind == "burst" and not started:
            started["burst"] = f["burst"]
            lab.start("edge-2")

    lab.on_event = start_edge_2_late
    d = lab.sender.deliver(data, 7000, deadline_s=120.0, apply=True, evaluate=False, apply_timeout_s=60.0)
    assert started and all(e.apply is not None and e.apply.installed for e in d.edges.values()), lab.log()
    assert lab.live("edge-1") == lab.live("edge-2") == version
    lab.on_event = None

    other, _ = lab.payloads["B"]
    tampered = bytearray(other)
    tampered[-100] ^= 0x01  # one bit of the signed body: the transfer is intact, the signature is not
    d = lab.sender.deliver(bytes(tampered), 7001, deadline_s=120.0, apply=True, evaluate=False, apply_timeout_s=60.0)
    for e in d.edges.values():
        assert e.done and e.apply is not None and not e.apply.installed, e.row()
        assert "signature" in (e.apply.reason or "")
        assert lab.live(e.name) == version  # the previous adapter stays
