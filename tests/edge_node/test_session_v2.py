"""Frame v2 on the edge: the session's reports and missing lists (synthetic events), and the daemon in this
process over a real control port and a ZeroMQ IQ cable (no torch: sessions are not applied)."""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field

import numpy as np
import pytest

from edge_node.radio_input_v2 import Announced, ReceiverParams
from edge_node.session_v2 import EdgeSessionV2
from radio.burst import FLAG_LAST, SigHeader
from radio.burst_events import RxBurst, RxCodeword
from radio.harq import LlrStore
from radio.mcs import by_name
from testbed.messages import CAPABILITY_FRAME_V2, BurstDone, BurstReport, MissingRequest, SessionAck, SessionStart, \
    from_quarter_db

from test_daemon import Running, _cfg

MCS = by_name("ldpc-qpsk-1/2")
L = 119  # payload bytes per codeword at rate 1/2


def start(payload: bytes, session: int = 9) -> SessionStart:
    return SessionStart(session=session, payload_bytes=len(payload), packet_count=-(-len(payload) // 1024),
                        packet_payload_bytes=1024, mcs=MCS.name, payload_sha256=hashlib.sha256(payload).hexdigest(),
                        deadline_s=30.0, sample_rate_hz=1e6, backend="zmq", apply=False, frame_version=2,
                        mcs_family="ldpc", rolloff=0.25)


@dataclass
class StubRadio:
    """What EdgeSessionV2 uses of a BurstInput: events to hand out, announcements, a HARQ store."""

    events: list = field(default_factory=list)
    overdue: list = field(default_factory=list)
    announced: dict = field(default_factory=dict)
    harq: LlrStore = field(default_factory=LlrStore)
    params: ReceiverParams = ReceiverParams(1e6, 4, 0.25)
    fed: int = 0

    def announce(self, burst, first_sample, samples_sent, mcs, last) -> None:
        self.announced[burst] = Announced(burst, mcs, last, first_sample + samples_sent)

    def settle(self, burst):
        self.announced.pop(burst, None)
        earlier = sorted(b for b in self.announced if b < burst)
        return [self.announced.pop(b) for b in earlier]

    def step(self, wait_s=0.0):
        events, overdue = self.events, self.overdue
        self.events, self.overdue = [], []
        return events, overdue


def burst_events(payload: bytes, session: int, burst: int, first: int, count: int, bad: set[int] = frozenset(),
                 flags: int = 0) -> list:
    sig = SigHeader(MCS.index, flags, 0, count, session, burst, first, len(payload))
    out, failed = [], []
    for i in range(count):
        offset = first + i * L
        data = None if i in bad else payload[offset:offset + L]
        failed += [(offset, min(offset + L, len(payload)))] if i in bad else []
        out.append(RxCodeword(session, burst, i, offset, min(L, len(payload) - offset), data, 12.0, 3, False))
    snrs = np.full(count, 12.0, np.float32)
    out.append(RxBurst(0, sig, count - len(bad), len(bad), 12.0, 11.5, 100.0, 1.0, 13.0, snrs, tuple(failed),
                       end_sample=5000))
    return out


def test_reports_in_burst_order_and_a_byte_missing_list_after_the_last_burst(tmp_path) -> None:
    payload = os.urandom(10 * L + 50)  # 11 codewords
    s = EdgeSessionV2(start(payload), b"host", memory_limit_bytes=1 << 20, spill_dir=tmp_path,
                      max_payload_bytes=1 << 20)
    radio = StubRadio(fed=21000)
    for burst in (0, 1):
        s.on_burst_done(BurstDone(session=9, burst=burst, first_sample=0, samples_sent=10, ranges=[], airtime_s=0.1,
                                  mcs=MCS.name, last=burst == 1), radio)
    # burst 0 was never detected; burst 1 (the last of the pass) lost codewords 2 and 3; a stranger's codeword
    radio.events = [RxCodeword(77, 1, 0, 0, L, bytes(L), 5.0, 1, False)] + \
        burst_events(payload, 9, 1, 0, 11, bad={2, 3}, flags=FLAG_LAST)
    out = s.step(radio)
    assert [type(m) for m in out] == [BurstReport, BurstReport, MissingRequest]
    lost, got, missing = out
    assert (lost.burst, lost.detected, lost.mcs) == (0, False, MCS.name)
    assert (got.burst, got.detected, got.codewords_ok, got.codewords_failed) == (1, True, 9, 2)
    assert got.failed == [[2 * L, 4 * L - 1]] and got.received_bytes == len(payload) - 2 * L
    assert from_quarter_db(got.codeword_snr_db).tolist() == [12.0] * 11
    assert got.decode_lag_s == pytest.approx(16000 / 1e6)
    assert (missing.unit, missing.through_burst, missing.ranges) == ("byte", 1, [[2 * L, 4 * L - 1]])
    assert missing.missing_count == 2 * L and not s.complete

    # a repair burst completes it; a late duplicate report of burst 1 is not sent twice
    radio.events = burst_events(payload, 9, 1, 0, 11) + burst_events(payload, 9, 2, 2 * L, 2, flags=FLAG_LAST)
    out = s.step(radio)
    assert [(type(m).__name__, getattr(m, "burst", None)) for m in out] == [("BurstReport", 2),
                                                                           ("MissingRequest", None)]
    assert out[1].ranges == [] and out[1].missing_count == 0
    assert s.complete and s.payload_if_valid() == payload
    s.finished = True
    s.close()
    radio.events = burst_events(payload, 9, 3, 0, 2)  # a burst still on the way once it is done
    assert s.step(radio) == []


def test_a_payload_over_the_memory_limit_is_spilled_and_a_wrong_one_never_offered(tmp_path) -> None:
    payload = os.urandom(3 * L)
    s = EdgeSessionV2(start(payload), b"host", memory_limit_bytes=100, spill_dir=tmp_path / "spill",
                      max_payload_bytes=1 << 20)
    radio = StubRadio()
    forged = bytearray(payload)
    forged[5] ^= 1
    radio.events = burst_events(bytes(forged), 9, 0, 0, 3)
    s.step(radio)
    assert s.complete and s.payload_if_valid() is None  # every byte there, SHA-256 wrong: nothing to install
    s.restart()
    assert s.reassembly.received_bytes == 0 and len(list((tmp_path / "spill").iterdir())) == 1
    radio.events = burst_events(payload, 9, 1, 0, 3)
    s.step(radio)
    path = s.payload_if_valid()
    assert path is not None and path.read_bytes() == payload
    s.close()
    assert list((tmp_path / "spill").iterdir()) == []


# --- the daemon in this process: real control port, zmq IQ cable ---------------------------------------------
@pytest.fixture
def running():
    made = []

    def make(tmp_path, **kw) -> Running:
        r = Running(_cfg(tmp_path, **kw))
        made.append(r)
        return r

    yield make
    for r in made:
        r.daemon.running = False
        r.thread.join(10)
        r.client.close()
        r.tx.close()


def test_v2_host_and_edge_deliver_a_spilled_payload_in_bursts(tmp_path, running) -> None:
    r = running(tmp_path, edge={"reassembly_memory_bytes": 4096}, frame="v2")
    assert CAPABILITY_FRAME_V2 in r.client.peer_hello.capabilities
    payload = os.urandom(60_000)
    d = r.sender.deliver(payload, 21, deadline_s=60.0, report_timeout_s=5.0, apply=False)
    assert d.delivered and d.frame == "v2" and d.snr_reports == []
    assert d.mcs_per_burst[0] == "ldpc-qpsk-1/2" and d.mcs_per_burst[1].startswith("ldpc-")  # probe, then picked
    assert [b.burst for b in d.burst_reports] == list(range(d.bursts)) and all(b.detected for b in d.burst_reports)
    assert 17.0 < d.snr_db_measured < 23.0  # channel at 20 dB
    assert d.codewords_ok >= -(-len(payload) // 200) and d.samples_sent > 0
    spill = tmp_path / "edge" / ".reassembly"
    assert spill.is_dir() and list(spill.iterdir()) == []  # spilled while it arrived, deleted once complete


def test_a_v1_only_edge_gets_v1_from_a_v2_host_and_refuses_a_v2_session(tmp_path, running) -> None:
    r = running(tmp_path, edge={"frames": ["v1"]}, frame="v2", mcs="ldpc-16qam-1/2")
    assert CAPABILITY_FRAME_V2 not in r.client.peer_hello.capabilities
    events = []
    r.sender.on_event = lambda kind, **f: events.append(kind)
    d = r.sender.deliver(os.urandom(3000), 22, deadline_s=60.0, report_timeout_s=5.0, apply=False)
    assert d.delivered and d.frame == "v1" and d.snr_reports and not d.burst_reports
    assert "frame_fallback" in events and all(not m.startswith("ldpc-") for m in d.mcs_per_burst)
    assert r.sender.snr_db is not None  # the fallback's measurement is the sender's
    ack = r.client.request(start(os.urandom(100), session=23), SessionAck)
    assert not ack.ready and "frame v2" in ack.reason


def test_a_v1_host_with_a_v2_edge_speaks_v1(tmp_path, running) -> None:
    r = running(tmp_path, frame="v1")  # an old host: radio.frame v1
    assert CAPABILITY_FRAME_V2 in r.client.peer_hello.capabilities
    d = r.sender.deliver(os.urandom(3000), 24, deadline_s=60.0, report_timeout_s=5.0, apply=False)
    assert d.delivered and d.frame == "v1" and d.snr_reports and d.packets_sent >= 3


def test_a_link_that_stays_down_fails_at_the_deadline_with_every_burst_reported_lost(tmp_path, running) -> None:
    from host.sender import DeliveryError

    r = running(tmp_path, frame="v2")
    reports = []
    r.sender.on_event = lambda kind, **f: reports.append(f) if kind == "burst_report" else None
    t0 = time.monotonic()
    with pytest.raises(DeliveryError, match=r"session 25: 20000 of 20000 bytes unconfirmed after the 3 s delivery "
                                            r"deadline.*the edge keeps its previous adapter"):
        r.sender.deliver(os.urandom(20_000), 25, deadline_s=3.0, report_timeout_s=5.0, apply=False,
                         channel_snr_db=-15.0)
    assert time.monotonic() - t0 < 5.0
    assert r.daemon.session.reassembly.received_bytes == 0
    # the probe was resent after each report saying it was not detected (not after a wall-time timeout)
    assert len(reports) >= 3 and not any(f["detected"] for f in reports)
    assert [f["burst"] for f in reports] == list(range(len(reports)))


class HostCrash(Exception):
    pass


def test_a_host_that_crashes_mid_transfer_leaves_the_edge_serving_the_next_one(tmp_path, running) -> None:
    from host.sender import Sender
    from radio.link import LinkSettings

    r = running(tmp_path, frame="v2", burst_airtime_s=0.05)

    def crash(kind: str, **f) -> None:
        if kind == "burst" and f["burst"] == 2:
            raise HostCrash  # bursts 0-2 are out, no BurstDone for 2, no bye
    r.sender.on_event = crash
    payload = os.urandom(40_000)
    with pytest.raises(HostCrash):
        r.sender.deliver(payload, 30, deadline_s=30.0, report_timeout_s=5.0, apply=False)
    r.client.close()
    second = Sender(r.host(), r.tx, LinkSettings.from_config(r.daemon.cfg.radio), "zmq")
    d = second.deliver(payload, 31, deadline_s=30.0, report_timeout_s=5.0, apply=False)  # waits out session_busy
    assert d.delivered and d.frame == "v2" and r.daemon.session.session == 31 and r.daemon.session.finished
