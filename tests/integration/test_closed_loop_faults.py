"""Faults of the closed loop with real processes (issue 4).

The edge is a real `python -m airlora.cli edge --config <yaml>` process on free ports; the host side runs
in the test process (Sender over a real ControlClient and ZmqTxBackend). Payloads are real adapter
payloads of a random-init tiny BERT (one training step), so the edge verifies, rebuilds, checks the
probe logits, installs and evaluates them for real, in a few seconds.

What is checked after every fault is the edge's adapter folder itself: `current` only ever points to a
complete version whose manifest carries the delivered payload's SHA-256 and whose safetensors are the
bytes the host rebuilds from that payload; interrupted installs never become `current`.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml
import zmq

from edge_node.install import current_adapter
from adapters.payload import read_header
from adapters.signing import unwrap_unverified
from host.sender import DeliveryError, Sender
from radio.backends.factory import make_backend
from radio.backends.zmq_iq import KIND_DATA, KIND_IDLE, MAGIC, pack_header
from radio.link import LinkSettings
from radio.transmitter import TX_POWER
from testbed import __version__
from testbed.config import validate
from testbed.keys import (authorize, cable_curve, load_signing_secret, trust_signing_key, write_keypair,
                          write_signing_keypair)
from testbed.control.client import ControlClient
from testbed.control.endpoint import RemoteError
from testbed.messages import (ERR_BAD_MESSAGE, ERR_HELLO_REQUIRED, ERR_NOT_OWNER, ERR_SESSION_BUSY, BurstDone, Error,
                              Hello, SessionAck, SessionStart, decode, encode)

ROOT = Path(__file__).resolve().parents[2]
HEARTBEAT_S, PEER_TIMEOUT_S = 0.2, 1.0
DEADLINE_S, REPORT_TIMEOUT_S, APPLY_TIMEOUT_S = 90.0, 5.0, 60.0
EDGE_START_S = 30.0

pytestmark = pytest.mark.slow


# --- payloads ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Packed:
    data: bytes
    sha: str  # the SHA-256 in the payload's header (names the installed version); the transfer checks its own

    @property
    def version(self) -> str:
        return self.sha[:16]  # the edge's versions/<sha16> folder and adapter_id


def _raw(model_dir: Path, root: Path) -> dict:
    """The config both sides share (ports and paths are filled in per test)."""
    return {
        "model": {"name": str(model_dir), "max_length": 32, "cache_dir": str(root / "cache")},
        "data": {"task": "bbc_news", "train_size": 16, "val_size": 0, "test_size": 10, "probe_count": 2},
        "finetune": {"ranks": "uniform:4", "steps": 1, "batch_size": 8, "lr": 5e-3, "quant": "int8"},
    }


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny random-init BERT and two real adapter payloads for it (A and B, different ranks)."""
    from host.pipeline import finetune_and_pack
    from ml.tiny import make_tiny_model

    root = tmp_path_factory.mktemp("faults")
    model = make_tiny_model(root / "tiny-bert", "bert")
    cfg = validate(_raw(model, root))
    keys = write_signing_keypair(root / "keys", "host")  # the lab's host key, trusted by every edge below
    trust_signing_key(keys.public, root / "keys" / "trusted")
    secret = load_signing_secret(keys.secret)
    packed = {}
    for name, ranks in (("A", "uniform:4"), ("B", "uniform:8")):
        data, report = finetune_and_pack(cfg, ranks=ranks, steps=1, signing_key=secret)
        assert report["payload_sha256"] == read_header(unwrap_unverified(data))[2].hex()  # what the payload carries
        packed[name] = Packed(data, report["payload_sha256"])
    assert packed["A"].sha != packed["B"].sha
    return model, root, packed


def expected_safetensors(payload: Packed, tmp: Path) -> bytes:
    """The adapter_model.safetensors the host itself rebuilds from the payload (what the edge must install)."""
    from adapters.rebuild import rebuild
    from adapters.payload import decode as decode_payload

    return (rebuild(decode_payload(unwrap_unverified(payload.data)), tmp / f"rebuilt-{payload.version}") /
            "adapter_model.safetensors").read_bytes()


# --- the lab: one edge process at a time, hosts in this process -------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Host:
    """A host 'process' in this test: its own control client, IQ transmitter and sender."""

    def __init__(self, lab: "Lab", on_event=None) -> None:
        hello = Hello(role="host", node_id="test-host", software_version=__version__, capabilities=["send"])
        self.client = ControlClient.from_config(lab.cfg.control, hello)
        self.tx = make_backend(lab.cfg.radio, lab.cfg.channel, TX_POWER, role="tx",
                               curve=cable_curve(lab.cfg.control.curve, "tx"))
        self.events: list[tuple[str, dict]] = []
        self.on_event = on_event
        self.sender = Sender(self.client, self.tx, LinkSettings.from_config(lab.cfg.radio), "zmq", on_event=self._event)

    def _event(self, kind: str, **fields) -> None:
        self.events.append((kind, fields))
        if self.on_event is not None:
            self.on_event(kind, **fields)

    def kinds(self) -> list[str]:
        return [k for k, _ in self.events]

    def deliver(self, payload: bytes, session: int, **kw):
        kw = {"deadline_s": DEADLINE_S, "report_timeout_s": REPORT_TIMEOUT_S, "apply_timeout_s": APPLY_TIMEOUT_S,
              **kw}
        return self.sender.deliver(payload, session, **kw)

    def sound(self, session: int) -> None:
        """A one-packet channel sounding (not applied), as `airlora run` starts each round."""
        d = self.deliver(os.urandom(256), session, apply=False)
        assert d.delivered and self.sender.snr_db is not None

    def close(self) -> None:
        self.tx.close()
        self.client.close()


class Lab:
    def __init__(self, tmp_path: Path, tiny, channel: dict | None = None, curve: bool = False) -> None:
        model, root, self.payloads = tiny
        self.tmp = tmp_path
        self.adapter_dir = tmp_path / "edge"
        raw = _raw(model, root)
        raw.update({
            "radio": {"backend": "zmq", "zmq": {"endpoint": f"tcp://127.0.0.1:{free_port()}", "timeout_s": 1.0,
                                                "send_timeout_s": 3.0}},
            "channel": {"snr_db": 20.0, "seed": 3, **(channel or {})},
            "control": {"endpoint": f"tcp://127.0.0.1:{free_port()}", "heartbeat_s": HEARTBEAT_S,
                        "peer_timeout_s": PEER_TIMEOUT_S, "request_timeout_s": 3.0},
            "edge": {"adapter_dir": str(self.adapter_dir), "trusted_keys_dir": str(root / "keys" / "trusted")},
        })
        if curve:  # one keys folder holds both sides' files: edge.key_secret + authorized/ and host.key_secret + edge.key
            keys = tmp_path / "curve"
            write_keypair(keys, "edge")
            authorize(write_keypair(keys, "host").public, keys / "authorized")
            raw["control"]["curve"] = {"enabled": True, "keys_dir": str(keys)}
        self.cfg = validate(raw)
        self.config_path = tmp_path / "edge.yaml"
        self.config_path.write_text(yaml.safe_dump(raw))
        self.edge: subprocess.Popen | None = None
        self.edge_logs: list[Path] = []
        self.hosts: list[Host] = []

    def start_edge(self, name: str) -> subprocess.Popen:
        log_path = self.tmp / f"{name}.log"
        self.edge_logs.append(log_path)
        env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1", TOKENIZERS_PARALLELISM="false",
                   PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
        with log_path.open("wb") as log:
            self.edge = subprocess.Popen([sys.executable, "-m", "airlora.cli", "edge", "--config",
                                          str(self.config_path), "--node-id", name],
                                         stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
        return self.edge

    def kill_edge(self) -> None:
        assert self.edge is not None and self.edge.poll() is None, self.log()
        self.edge.send_signal(signal.SIGKILL)
        self.edge.wait(10)

    def host(self, on_event=None, ready: bool = True) -> Host:
        h = Host(self, on_event)
        self.hosts.append(h)
        if ready:
            h.client.wait_ready(EDGE_START_S)
        return h

    def log(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-4000:]}" for p in self.edge_logs
                         if p.exists())

    # what the edge has on disk
    def live_version(self) -> str | None:
        current = current_adapter(self.adapter_dir)
        return current.name if current else None

    def versions(self) -> set[str]:
        folder = self.adapter_dir / "versions"
        return {p.name for p in folder.iterdir()} if folder.is_dir() else set()

    def leftovers(self) -> list[str]:
        return sorted(p.name for p in self.adapter_dir.glob("staging-*")) if self.adapter_dir.is_dir() else []

    def assert_installed(self, payload: Packed) -> None:
        """`current` is exactly this payload, complete: manifest SHA and the rebuilt tensors byte for byte."""
        import json

        assert self.live_version() == payload.version, self.log()
        live = self.adapter_dir / "current"
        assert os.readlink(live) == os.path.join("versions", payload.version)
        assert sorted(p.name for p in live.iterdir()) == ["adapter_config.json", "adapter_model.safetensors",
                                                         "airlora_manifest.json"]
        assert json.loads((live / "airlora_manifest.json").read_text())["payload_sha256"] == payload.sha
        assert (live / "adapter_model.safetensors").read_bytes() == expected_safetensors(payload, self.tmp)

    def close(self) -> None:
        for h in self.hosts:
            h.close()
        if self.edge is not None and self.edge.poll() is None:
            self.edge.kill()  # (a graceful SIGTERM works too, but an interpreter with torch takes ~4 s to exit)
            self.edge.wait(10)


@pytest.fixture
def lab_factory(tmp_path, tiny):
    labs = []

    def make(**kw) -> Lab:
        lab = Lab(tmp_path, tiny, **kw)
        labs.append(lab)
        return lab

    yield make
    for lab in labs:
        lab.close()


def assert_applied(d, payload: Packed) -> None:
    assert d.delivered and d.apply is not None
    assert d.apply.installed, d.apply.reason
    assert d.apply.adapter_id == payload.version
    assert d.apply.accuracy is not None and d.apply.probe_max_abs_err is not None


# --- 1. the edge is killed mid-transfer and mid-install, and restarted -------------------------------------
def test_edge_killed_mid_transfer_and_mid_install_never_installs_a_partial_adapter(lab_factory):
    lab = lab_factory()
    A, B = lab.payloads["A"], lab.payloads["B"]
    lab.start_edge("edge-1")
    host = lab.host()
    assert host.client.peer_hello.node_id == "edge-1"
    host.sound(1)
    assert_applied(host.deliver(A.data, 2), A)
    lab.assert_installed(A)

    seen: dict[str, dict] = {}

    def kill_mid_transfer(kind: str, **f) -> None:
        # The first burst of B is on the cable; the edge has not reported it yet.
        if kind == "burst" and f["session"] == 3 and "transfer" not in seen:
            lab.kill_edge()
            seen["transfer"] = {"live": lab.live_version(), "versions": lab.versions(), "leftovers": lab.leftovers()}
            lab.start_edge("edge-2")

    def kill_mid_install() -> None:
        # edge-2 received all of B and builds it in a staging folder: kill it before `current` moves.
        until = time.monotonic() + 120
        while time.monotonic() < until and "install" not in seen:
            if "transfer" in seen and lab.leftovers():
                lab.kill_edge()
                seen["install"] = {"live": lab.live_version(), "versions": lab.versions(),
                                   "leftovers": lab.leftovers()}
                lab.start_edge("edge-3")
            time.sleep(0.002)

    watcher = threading.Thread(target=kill_mid_install, daemon=True)
    watcher.start()
    host.on_event = kill_mid_transfer
    d = host.deliver(B.data, 3)
    watcher.join(5)

    # Both kills happened where intended, and neither left anything but A live.
    assert seen["transfer"] == {"live": A.version, "versions": {A.version}, "leftovers": []}
    assert seen["install"]["live"] == A.version and seen["install"]["versions"] == {A.version}
    assert len(seen["install"]["leftovers"]) == 1  # killed while building B aside

    # The host noticed both losses, resent everything to the restarted edges, and B got installed.
    assert d.edge_restarts >= 2
    kinds = host.kinds()
    assert "edge_lost" in kinds and "edge_lost_applying" in kinds
    assert [f["restarted"] for k, f in host.events if k == "edge_back"][-1] is True, \
        [(k, f) for k, f in host.events if k.startswith("edge")]
    assert_applied(d, B)
    lab.assert_installed(B)
    assert lab.versions() == {A.version, B.version}  # keep_previous 2
    assert lab.leftovers() == []  # edge-3 removed edge-2's staging folder at start
    log3 = lab.edge_logs[-1].read_text()
    assert "removed leftovers of an interrupted install" in log3 and seen["install"]["leftovers"][0] in log3

    # A new host sees edge-3 with B installed.
    fresh = lab.host()
    assert fresh.client.peer_hello.node_id == "edge-3"
    assert fresh.client.peer_hello.adapter_id == B.version


# --- 2. the link drops ------------------------------------------------------------------------------------
def test_link_drop_by_snr_schedule_recovers_and_completes(lab_factory):
    # Received-stream time: the sounding (a 3-codeword v2 probe) takes ~0.02 s, B's first burst starts right
    # after; the link is at -10 dB from 0.05 s to 0.8 s of stream time, then back at 20 dB.
    lab = lab_factory(channel={"snr_schedule": [{"at_s": 0.05, "snr_db": -10.0}, {"at_s": 0.8, "snr_db": 20.0}]})
    B = lab.payloads["B"]
    lab.start_edge("edge-1")
    host = lab.host()
    host.sound(1)
    d = host.deliver(B.data, 2)
    assert_applied(d, B)
    lab.assert_installed(B)
    assert d.frame == "v2" and d.bursts >= 3 and d.codewords_resent >= 1
    reports = d.burst_reports  # one per burst (frame v2: no per-packet SnrReports)
    # The drop hit the first burst, at least one later burst fell entirely into it, and the last one came
    # through at ~20 dB once the link was back.
    assert reports[0].received_bytes < len(B.data)
    assert any(not r.detected or r.codewords_ok == 0 for r in reports[1:-1]), reports
    assert reports[-1].detected and reports[-1].codewords_ok >= 1 and 15.0 < reports[-1].snr_db < 25.0
    assert lab.leftovers() == []


def test_link_down_past_the_deadline_fails_clearly_keeps_previous_adapter_then_resumes(lab_factory):
    lab = lab_factory()
    A, B = lab.payloads["A"], lab.payloads["B"]
    lab.start_edge("edge-1")
    host = lab.host()
    host.sound(1)
    assert_applied(host.deliver(A.data, 2), A)

    n = len(B.data)
    t0 = time.monotonic()
    with pytest.raises(DeliveryError) as err:
        host.deliver(B.data, 3, deadline_s=4.0, channel_snr_db=-10.0)
    assert time.monotonic() - t0 < 4.0 + REPORT_TIMEOUT_S + 3.0
    msg = str(err.value)
    assert f"session 3: {n} of {n} bytes unconfirmed after the 4 s delivery deadline" in msg, msg
    assert int(re.search(r"; (\d+) bursts sent", msg).group(1)) >= 2, msg  # the probe was sent again
    assert "the edge keeps its previous adapter" in msg
    # Nothing half-installed: A is live, complete, alone; no staging folder.
    lab.assert_installed(A)
    assert lab.versions() == {A.version} and lab.leftovers() == []

    # The link comes back: the same session resumes and completes.
    d = host.deliver(B.data, 3, channel_snr_db=20.0)
    assert_applied(d, B)
    lab.assert_installed(B)


# --- 3. the host restarts ---------------------------------------------------------------------------------
class HostCrash(Exception):
    pass


def test_host_restart_edge_keeps_adapter_and_accepts_new_session(lab_factory):
    lab = lab_factory()
    A, B = lab.payloads["A"], lab.payloads["B"]
    lab.start_edge("edge-1")
    first = lab.host()
    edge_instance = first.client.peer_hello.instance
    first.sound(1)
    assert_applied(first.deliver(A.data, 2), A)

    def crash(kind: str, **f) -> None:
        if kind == "burst":
            raise HostCrash  # mid-transfer of B: the burst is out, no BurstDone, no Bye
    first.on_event = crash
    with pytest.raises(HostCrash):
        first.deliver(B.data, 3)
    first.close()
    lab.hosts.remove(first)

    second = lab.host()  # a new client (new instance, routing id) and a new transmitter stream
    ack = second.client.peer_hello
    assert ack.instance == edge_instance and ack.node_id == "edge-1"  # the same edge process ...
    assert ack.adapter_id == A.version  # ... still serving A
    lab.assert_installed(A)
    second.sound(100)
    d = second.deliver(B.data, 101)
    assert_applied(d, B)
    assert d.edge_restarts == 0
    lab.assert_installed(B)
    assert lab.edge.poll() is None


# --- 4. strangers on the control and IQ ports -------------------------------------------------------------
def _raw_tcp(port: int, data: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(data)
        time.sleep(0.1)


def test_garbage_on_control_and_iq_ports_is_refused_and_the_daemon_keeps_serving(lab_factory):
    lab = lab_factory()
    A = lab.payloads["A"]
    lab.start_edge("edge-1")
    host = lab.host()  # the real host is connected before and during the attack
    ctl_port = int(lab.cfg.control.endpoint.rsplit(":", 1)[1])
    iq_endpoint = lab.cfg.radio.zmq.endpoint
    iq_port = int(iq_endpoint.rsplit(":", 1)[1])

    # Raw TCP garbage on both ports (fails the ZMTP handshake).
    _raw_tcp(ctl_port, b"GET / HTTP/1.1\r\nHost: edge\r\n\r\n" + os.urandom(512))
    _raw_tcp(iq_port, os.urandom(4096))

    ctx = zmq.Context()
    try:
        # A ZeroMQ stranger on the control port: garbage, several frames, no hello, wrong role.
        dealer = ctx.socket(zmq.DEALER)
        dealer.setsockopt(zmq.LINGER, 0)
        dealer.setsockopt(zmq.RCVTIMEO, 3000)
        dealer.connect(lab.cfg.control.endpoint)
        start = SessionStart(session=9, payload_bytes=10, packet_count=1, packet_payload_bytes=1024, mcs="qpsk-1/2",
                             payload_sha256="ab" * 32, deadline_s=5.0, sample_rate_hz=1e6, backend="zmq")
        dealer.send(b"\x93\x00garbage that is not msgpack")
        assert (r := decode(dealer.recv())).type == "error" and r.code == ERR_BAD_MESSAGE
        dealer.send_multipart([b"two", b"frames"])
        assert (r := decode(dealer.recv())).type == "error" and r.code == ERR_BAD_MESSAGE
        dealer.send(encode(start))
        assert (r := decode(dealer.recv())).type == "error" and r.code == ERR_HELLO_REQUIRED
        dealer.send(encode(Hello(role="edge", node_id="impostor", software_version="0")))
        r = decode(dealer.recv())
        assert r.type == "hello_ack" and r.accepted is False and "role 'edge'" in r.reason
        dealer.send(os.urandom(2 << 20))  # over max_message_bytes: the edge drops the connection

        # A ZeroMQ stranger on the IQ port: bad magic, NaN samples, and a well-formed stream at another rate.
        push = ctx.socket(zmq.PUSH)
        push.setsockopt(zmq.LINGER, 1000)
        push.connect(iq_endpoint)
        push.send_multipart([b"JUNK" + bytes(32), np.zeros(16, np.complex64).tobytes()])
        push.send_multipart([pack_header(KIND_DATA, 7, 0, 4, 1e6), np.full(4, np.nan, np.complex64).tobytes()])
        push.send_multipart([pack_header(KIND_DATA, 8, 0, 1024, 2e6),
                             (0.1 * np.ones(1024)).astype(np.complex64).tobytes()])
        assert MAGIC != b"JUNK"
        time.sleep(0.5)
        push.close()
        dealer.close()
    finally:
        ctx.term()

    # The daemon is alive and serves the real host: a full delivery with install.
    assert lab.edge.poll() is None, lab.log()
    host.sound(1)
    d = host.deliver(A.data, 2)
    assert_applied(d, A)
    lab.assert_installed(A)
    assert lab.edge.poll() is None
    log = lab.edge_logs[-1].read_text()
    assert "refused a message" in log and "dropped a malformed message" in log
    assert "runs at 2e+06 Hz but this receiver at 1e+06 Hz" in log and "ignored" in log
    assert "Traceback" not in log


# --- 5. a rogue host on the same network (issue 11) ---------------------------------------------------------
def forge(payload: Packed, cfg, tmp: Path) -> bytes:
    """What an attacker with the public base model and no keys builds from a captured payload: every lora_B
    zeroed, the classifier always answering class 0, probe logits recomputed so the probe check passes, a
    fresh SHA-256. Unsigned: the attacker has no host secret key."""
    from adapters import payload as pl
    from adapters.rebuild import rebuild
    from ml.evaluate import load_adapted, logits

    p = pl.decode(unwrap_unverified(payload.data))
    tensors = {}
    for name, value in p.tensors.items():
        if ".lora_B." in name or ("classifier" in name and value.ndim == 2):
            value = np.zeros_like(value)
        elif "classifier" in name:
            value = np.zeros_like(value)
            value[0] = 10.0  # the bias: always class 0
        tensors[name] = value
    schemes = {t["name"]: t["scheme"] for t in p.manifest["tensors"]}
    manifest = {k: v for k, v in p.manifest.items() if k not in ("tensors", "format", "version", "block_size")}
    draft = pl.encode(manifest, tensors, schemes, p.manifest["block_size"])
    model, tok = load_adapted(cfg.model, rebuild(pl.decode(draft), tmp / "forged"), manifest["model"]["num_labels"])
    manifest["probe"] = dict(manifest["probe"], logits=logits(model, tok, manifest["probe"]["texts"],
                                                              cfg.model.max_length).tolist())
    return pl.encode(manifest, tensors, schemes, p.manifest["block_size"])


def disk_state(root: Path) -> dict[str, tuple]:
    """Every entry under the adapter folder: kind, content hash or link target, and mtime (nothing may change)."""
    import hashlib

    state = {".": ("dir", None, root.stat().st_mtime_ns)}
    for path in sorted(root.rglob("*")):
        st = os.lstat(path)
        if path.is_symlink():
            state[str(path.relative_to(root))] = ("link", os.readlink(path), st.st_mtime_ns)
        elif path.is_file():
            state[str(path.relative_to(root))] = ("file", hashlib.sha256(path.read_bytes()).hexdigest(),
                                                  st.st_mtime_ns)
        else:
            state[str(path.relative_to(root))] = ("dir", None, st.st_mtime_ns)
    return state


def test_rogue_host_cannot_install_a_repacked_adapter_and_the_lab_adapter_stays(lab_factory):
    from adapters.signing import HEADER, SIGNED_HEADER_BYTES, sign
    from edge_node.pipeline import apply_payload

    lab = lab_factory()
    A, B = lab.payloads["A"], lab.payloads["B"]
    forged = forge(A, lab.cfg, lab.tmp)
    # The forgery is good enough to pass every check but the signature: an edge that allows unsigned
    # payloads installs it (this is what issue 11's edge did).
    careless = lab.cfg.model_copy(update={"edge": lab.cfg.edge.model_copy(
        update={"adapter_dir": str(lab.tmp / "careless-edge"), "allow_unsigned": True})})
    assert apply_payload(careless, forged, evaluate=False).installed

    lab.start_edge("edge-1")
    host = lab.host()
    host.sound(1)
    assert_applied(host.deliver(B.data, 2), B)
    assert_applied(host.deliver(A.data, 3), A)
    before = disk_state(lab.adapter_dir)
    assert lab.versions() == {A.version, B.version}

    # A rogue client with no keys (CurveZMQ is off, as in the default) connects, starts sessions, sends the
    # bursts: unsigned, signed with its own key, and the host's signature header spliced in front.
    rogue = lab.host()
    magic, version, flags, kid, _ = HEADER.unpack_from(A.data)
    spliced = HEADER.pack(magic, version, flags, kid, len(forged)) + A.data[HEADER.size:SIGNED_HEADER_BYTES] + forged
    attempts = {"unsigned": (forged, "unsigned payload"),
                "own key": (sign(forged, os.urandom(32)), "signed by unknown key"),
                "host's signature": (spliced, "bad signature")}
    for session, (name, (data, why)) in enumerate(attempts.items(), start=10):
        d = rogue.deliver(data, session)
        assert d.delivered and d.apply is not None, name
        assert not d.apply.installed and why in d.apply.reason, (name, d.apply.reason)
        assert "\n" not in d.apply.reason
    # Nothing changed on disk: A live, B kept, no staging folder, not one byte or timestamp touched.
    assert disk_state(lab.adapter_dir) == before
    lab.assert_installed(A)
    fresh = lab.host()
    assert fresh.client.peer_hello.adapter_id == A.version
    assert "installs payloads signed by host" in lab.edge_logs[-1].read_text()

    # While the lab host delivers B again, the rogue tries to take its live session over: a session of its own,
    # a "resume" of the lab's session, a BurstDone for it, and 12 days of declared silence on the IQ cable.
    # Each is refused; the lab's delivery goes on and B is installed.
    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.LINGER, 1000)
    push.connect(lab.cfg.radio.zmq.endpoint)
    refused: dict[str, str] = {}

    def hijack(kind: str, **f) -> None:
        if kind != "burst" or refused:
            return
        push.send_multipart([pack_header(KIND_IDLE, 0xBAD, 0, 1 << 40, 1e6)])
        size = lab.cfg.radio.packet_payload_bytes
        live = SessionStart(session=20, payload_bytes=len(B.data), packet_count=-(-len(B.data) // size),
                            packet_payload_bytes=size, mcs=f["mcs"], payload_sha256=hashlib.sha256(B.data).hexdigest(),
                            deadline_s=5.0, sample_rate_hz=1e6, backend="zmq", frame_version=2, mcs_family="ldpc")
        for name, msg in (("own session", live.model_copy(update={"session": 21})), ("resume", live)):
            try:
                rogue.client.request(msg, SessionAck, timeout_s=3.0)
            except RemoteError as exc:
                refused[name] = exc.code
        rogue.client.send(BurstDone(session=20, burst=1, first_sample=0, samples_sent=10**9, ranges=[[0, 0]],
                                    airtime_s=1.0))
        until = time.monotonic() + 3
        while time.monotonic() < until and "burst" not in refused:
            reply = rogue.client.recv(0.05)
            if isinstance(reply, Error):
                refused["burst"] = reply.code

    host.on_event = hijack
    t0 = time.monotonic()
    d = host.deliver(B.data, 20)
    push.close()
    ctx.term()
    assert refused == {"own session": ERR_SESSION_BUSY, "resume": ERR_SESSION_BUSY, "burst": ERR_NOT_OWNER}
    assert_applied(d, B)
    assert time.monotonic() - t0 < 30 and d.bursts <= 3  # the declared silence was refused, not waited out
    lab.assert_installed(B)
    log = lab.edge_logs[-1].read_text()
    assert "idle of 1099511627776 samples, longer than this receiver's limit" in log
    assert "refused a burst of session 20 from host" in log and "Traceback" not in log


def test_with_curve_the_iq_cable_and_the_control_port_refuse_peers_without_keys(lab_factory):
    lab = lab_factory(curve=True)
    A = lab.payloads["A"]
    lab.start_edge("edge-1")
    host = lab.host()  # the lab's host: authorized key on both planes
    assert host.client.curve and host.tx.curve
    ctx = zmq.Context()
    try:
        # Without keys: well-formed IQ at another rate and garbage never reach the edge's receiver.
        push = ctx.socket(zmq.PUSH)
        push.setsockopt(zmq.LINGER, 0)
        push.connect(lab.cfg.radio.zmq.endpoint)
        for _ in range(4):
            push.send_multipart([pack_header(KIND_DATA, 8, 0, 1024, 2e6),
                                 (0.1 * np.ones(1024)).astype(np.complex64).tobytes()], zmq.NOBLOCK)
            push.send(b"x", zmq.NOBLOCK)
        dealer = ctx.socket(zmq.DEALER)
        dealer.setsockopt(zmq.LINGER, 0)
        dealer.connect(lab.cfg.control.endpoint)
        dealer.send(encode(Hello(role="host", node_id="rogue", software_version="0")))
        assert not dealer.poll(1000)  # no answer: the handshake failed, the edge never saw the hello
        push.close()
        dealer.close()
    finally:
        ctx.term()
    host.sound(1)
    assert_applied(host.deliver(A.data, 2), A)
    lab.assert_installed(A)
    log = lab.edge_logs[-1].read_text()
    assert "runs at 2e+06 Hz" not in log and "malformed" not in log and "Traceback" not in log
    assert "CurveZMQ on" in log


# --- `airlora run` without an edge -------------------------------------------------------------------------
def _airlora_run(tmp_path: Path, *sets: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    args = [sys.executable, "-m", "airlora.cli", "run", "--set", "radio.backend=zmq",
            "--set", f"radio.zmq.endpoint=tcp://127.0.0.1:{free_port()}", "--set", f"run.out_dir={tmp_path / 'runs'}",
            "--set", f"edge.adapter_dir={tmp_path / 'edge'}", "--set", f"control.curve.keys_dir={tmp_path / 'keys'}",
            "--set", "control.heartbeat_s=0.2", "--set", "control.peer_timeout_s=1.0", "--set", "run.rounds=1"]
    for s in sets:
        args += ["--set", s]
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_airlora_run_fails_clearly_when_the_edge_never_comes_up(tmp_path):
    # A remote edge that is not there.
    port = free_port()
    out = _airlora_run(tmp_path, "run.edge=remote", f"control.endpoint=tcp://127.0.0.1:{port}",
                       "run.edge_start_timeout_s=3")
    assert out.returncode == 2, out.stderr
    assert f"airlora run: the edge at tcp://127.0.0.1:{port} is not available" in out.stderr
    assert "within 3.0 s" in out.stderr

    # A local edge that cannot start (its control port is taken by something that is not an edge).
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        # (the edge needs a few seconds to fail: leave it the time to write its error to its log)
        out = _airlora_run(tmp_path, "run.edge=local", f"control.endpoint=tcp://127.0.0.1:{port}",
                           "run.edge_start_timeout_s=10")
    assert out.returncode == 2, out.stderr
    assert re.search(r"did not answer within \d+ s|exited with code", out.stderr), out.stderr
    assert "cannot bind the control port" in out.stderr  # the edge's own error, from its log
