"""The host's end of an edge's uplink over frame v2: LDPC bursts planned here, transmitted by the edge.

The downlink's v2 link (radio.link_v2.TransferLoop: windowed ARQ per codeword, MCS picked per burst for expected
goodput from the per-codeword SNRs the burst receiver measured, failed codewords re-sent and chase-combined) with
its two ends swapped: the host runs the sender's ARQ and the receiver, the edge only modulates. For each planned
burst the host sends an uplink_request naming its codeword runs, MCS and SIG flags, the edge transmits exactly that
burst of its held payload (edge_node.fed_worker) and answers uplink_sent, and the host reads the burst off the
uplink's receiving end (host.uplink_receiver.UplinkReceiver.exchange: the cable's transmit clock, or a real-time
radio's stream) through the v2 burst receiver. Used with edges that list uplink:v2 when radio.frame is v2.

Bounds: the edge's announced size was checked before (host.fed_experiment); an uplink_sent that claims more
codewords or samples than the planned burst has is not believed (the edge is left out); the payload is reassembled
in memory up to radio's default limit and spilled beyond it (radio.reassembly.ByteReassembly).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable

import numpy as np

from radio.burst import codeword_bytes
from radio.burst_tx import BurstPlan
from radio.link import LinkSettings
from radio.link_v2 import BurstRecord, LinkV2Report, TransferLoop, default_receiver, make_selector
from radio.reassembly import ByteReassembly
from host.uplink_receiver import Uplink, UplinkReceiver
from testbed.control.client import ControlClient
from testbed.messages import UplinkRequest


class UplinkStopped(Exception):
    """Why a v2 uplink stops before it is whole (the edge refused, went away, or the deadline passed)."""


class _RemoteSource:
    """The payload the edge holds: only its size is known here (the loop never reads it)."""

    def __init__(self, size: int) -> None:
        self.size = size

    def read(self, offset: int, length: int) -> bytes:
        raise UplinkStopped("the uplink's payload is on the edge")


def v2_settings(settings: LinkSettings) -> LinkSettings:
    """The uplink's v2 settings: frame v2, the configured LDPC MCS or 'auto'."""
    mcs = settings.mcs if settings.mcs.startswith("ldpc-") else "auto"
    return dataclasses.replace(settings, frame="v2", mcs=mcs)


class UplinkLoop(TransferLoop):
    """The v2 transfer loop whose bursts an edge transmits on request."""

    def __init__(self, owner: UplinkReceiver, client: ControlClient, up: Uplink, deadline: float,
                 deadline_s: float, gone: Callable[[], bool], **loop) -> None:
        super().__init__(**loop)
        self.owner, self.client, self.up = owner, client, up
        self.deadline, self.deadline_s, self.gone = deadline, deadline_s, gone

    def send(self, plan: BurstPlan, frontier: int) -> None:
        """Ask the edge for this burst and read it through the burst receiver."""
        if self.gone():
            raise UplinkStopped("the edge process exited")
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise UplinkStopped(f"uplink deadline of {self.deadline_s:g} s passed with "
                                f"{self.reassembly.payload_bytes - self.reassembly.received_bytes} of "
                                f"{self.reassembly.payload_bytes} bytes missing (fed.uplink_deadline_s)")
        size = codeword_bytes(plan.mcs)
        resent = sum(min(r.count, -(-(frontier - r.offset) // size)) for r in plan.runs if r.offset < frontier)
        samples = plan.samples(self.settings)
        record = BurstRecord(plan.burst, plan.mcs.name, plan.codewords, plan.map_codewords, resent, samples,
                             self.rx.samples_received + self.rx.pending, plan.flags)
        self.records[plan.burst] = record
        self.report.bursts.append(record)
        self.up.bursts += 1
        self.up.mcs_per_burst.append(plan.mcs.name)
        request = UplinkRequest(session=plan.session, burst=plan.burst, mcs=plan.mcs.name, ranges=[],
                                runs=[[r.offset, r.count] for r in plan.runs], flags=plan.flags)
        got = self.owner.exchange(self.client, request, plan.codewords, samples, self.up, left,
                                  self._feed)
        if isinstance(got, str):
            raise UplinkStopped(got)
        self.report.samples_sent = self.up.samples

    def _feed(self, samples: np.ndarray) -> list[float]:
        events = self.receiver.feed(np.asarray(samples, np.complex64))
        self.handle(events)
        return []


def receive_v2(owner: UplinkReceiver, client: ControlClient, edge: str, session: int, payload_bytes: int,
               payload_sha256: str, deadline_s: float, max_rounds: int, gone: Callable[[], bool]) -> Uplink:
    """Pull the edge's held payload up the radio as v2 bursts; an Uplink either way (delivered or why not). The
    uplink's SNR (owner.snr_db, what the next ranks come from) is the mean the burst receiver measured."""
    up = Uplink(edge)
    t0 = time.monotonic()
    settings = v2_settings(owner.settings)
    report = LinkV2Report(False, payload_bytes, settings.sample_rate_hz, settings.occupied_bandwidth_hz,
                          payload_sha256)
    try:
        with ByteReassembly(payload_bytes) as reassembly:
            loop = UplinkLoop(owner, client, up, t0 + deadline_s, deadline_s, gone,
                              source=_RemoteSource(payload_bytes), tx=None, rx=owner.rx, settings=settings,
                              session=session, receiver=default_receiver(settings), selector=make_selector(settings),
                              reassembly=reassembly, report=report, chunk_samples=1 << 16,
                              max_stall_bursts=max_rounds, on_progress=None, on_burst=None)
            try:
                loop.run()
            except UplinkStopped as exc:
                up.reason = str(exc)
            finally:
                up.packets_sent = loop.arq.stats.codewords_sent
                up.packets_ok = loop.arq.stats.codewords_ok
                up.snr_db_packets = [b.snr_db for b in report.bursts if b.detected and np.isfinite(b.snr_db)]
                measured = report.snr_db_measured
                owner.snr_db = float(measured) if np.isfinite(measured) else owner.snr_db
            if up.reason is not None:
                return up
            if not reassembly.complete:
                up.reason = (f"{payload_bytes - reassembly.received_bytes} of {payload_bytes} bytes missing after "
                             f"{max_rounds} bursts in a row added nothing (fed.uplink_max_rounds)")
                return up
            if reassembly.sha256_hex() != payload_sha256:
                up.reason = "the reassembled uplink payload does not match the SHA-256 the edge announced"
                return up
            data = reassembly.open_payload()  # bytes, or the spill file (read before the reassembly closes)
            up.delivered, up.payload = True, data if isinstance(data, bytes) else data.read_bytes()
            return up
    finally:
        up.wall_s = time.monotonic() - t0
