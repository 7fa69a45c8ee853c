"""The v2 link in one process: both ends of `airlora link --frame v2` in one cooperative loop (design link_v2 s. 4).

`transfer_v2` plans bursts with `ArqSender`, modulates each lazily (`burst_chunks`) and hands the backend one
chunk at a time; after every chunk it reads what the backend holds and feeds the `BurstReceiver`. Decoded
codewords go into a `ByteReassembly`; each `RxBurst` becomes a `BurstOutcome` for `ArqSender.on_report` at
once (in-process there is no control plane), and a burst with the 'last' flag is followed by the
reassembly's missing list (`on_missing`). A burst never detected is settled by the sender's timeout. The clock
is the received stream (samples read / fs), never wall time, so timeouts do not depend on CPU speed.

Memory: one chunk of IQ in flight, the receiver's segment, the reassembly (spilled to a file beyond
memory_limit_bytes) and the HARQ store; never a burst's or the payload's IQ. Because the loop reads while it
sends, the in-process ZeroMQ loopback never fills its high-water mark, whatever the payload size.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from radio import airtime
from radio.arq import ArqSender, ArqStats, BurstOutcome, Selector
from radio.backends.base import RadioBackend
from radio.burst import FLAG_LAST, codeword_bytes
from radio.burst_events import RxBurst, RxCodeword
from radio.burst_tx import DEFAULT_CHUNK_SAMPLES, BurstPlan, PayloadSource, as_source, burst_chunks
from radio.errors import LinkError
from radio.intervals import from_inclusive
from radio.link import LinkSettings
from radio.link_adaptation import FixedMcs, McsSelector, SelectorSettings
from radio.mcs import bler_curves, by_name, family_table
from radio.reassembly import DEFAULT_MEMORY_LIMIT_BYTES, ByteReassembly

REPORT_MARGIN_SAMPLES = 1 << 17
"""A burst with no RxBurst this many stream samples after its air ends is lost (the receiver lags less)."""
IDLE_BLOCK_SAMPLES = 1 << 13
"""Samples of silence read per step while waiting for reports (window full, or the pass sent)."""
RX_BLOCK_SAMPLES = 1 << 16
"""Largest block handed to the receiver at once."""
HASH_BLOCK_BYTES = 1 << 20


class StreamReceiver(Protocol):
    """What the loop feeds: radio.burst_rx.BurstReceiver, or a stand-in of the same shape (tests)."""

    def feed(self, samples: np.ndarray) -> list: ...

    def flush(self) -> list: ...


@dataclass
class BurstRecord:
    """One burst as sent, and what the receiver said of it."""

    burst: int
    mcs: str
    codewords: int
    map_codewords: int
    resent_codewords: int
    """data codewords carrying bytes sent before (repairs)"""
    samples: int
    start_sample: int
    """received-stream index the burst's first sample was queued at"""
    flags: int
    detected: bool = False
    codewords_ok: int = 0
    snr_db: float = float("nan")
    cfo_hz: float = float("nan")
    error: str | None = None


@dataclass
class LinkV2Report:
    """What a v2 transfer did, measured."""

    delivered: bool
    payload_bytes: int
    sample_rate_hz: float
    occupied_bandwidth_hz: float
    sha256_hex: str
    """of the payload that was sent"""
    received_sha256_hex: str | None = None
    bursts: list[BurstRecord] = field(default_factory=list)
    stats: ArqStats = field(default_factory=ArqStats)
    samples_sent: int = 0
    stream_samples: int = 0
    """samples the receiver read (airtime plus idle start, silence while waiting for reports)"""
    wall_s: float = 0.0
    rx_wall_s: float = 0.0
    tx_wall_s: float = 0.0
    timeouts: int = 0
    foreign_bursts: int = 0
    """RxBursts of another session or with an undecodable SIG"""
    data: bytes | None = None
    """the received payload when asked for (keep_data) and held in memory"""

    @property
    def airtime_s(self) -> float:
        return self.samples_sent / self.sample_rate_hz

    @property
    def goodput_bps(self) -> float:
        """Payload bits per second of airtime, 0 unless delivered."""
        return 8.0 * self.payload_bytes / self.airtime_s if self.delivered and self.samples_sent else 0.0

    @property
    def codewords_sent(self) -> int:
        return self.stats.codewords_sent

    @property
    def codewords_ok(self) -> int:
        return self.stats.codewords_ok

    @property
    def codewords_resent(self) -> int:
        return sum(b.resent_codewords for b in self.bursts)

    @property
    def repair_bursts(self) -> int:
        """Bursts that carried a MAP (several runs: repairs)."""
        return sum(1 for b in self.bursts if b.map_codewords)

    @property
    def mcs_per_burst(self) -> list[str]:
        return [b.mcs for b in self.bursts]

    @property
    def snr_db_per_burst(self) -> list[float]:
        return [b.snr_db for b in self.bursts]

    @property
    def snr_db_measured(self) -> float:
        """Mean of the detected bursts' SNRs, weighted by codewords."""
        pairs = [(b.snr_db, b.codewords) for b in self.bursts if b.detected and math.isfinite(b.snr_db)]
        return float(np.average([s for s, _ in pairs], weights=[w for _, w in pairs])) if pairs else float("nan")

    def shannon_bps(self, snr_db: float) -> float:
        """(1 + rolloff) Rs log2(1 + SNR): the capacity of the occupied bandwidth at snr_db."""
        return self.occupied_bandwidth_hz * math.log2(1.0 + 10.0 ** (snr_db / 10.0))

    def shannon_fraction(self, snr_db: float) -> float:
        """Goodput over the capacity of the occupied bandwidth at snr_db."""
        return self.goodput_bps / self.shannon_bps(snr_db)


def make_selector(settings: LinkSettings) -> Selector:
    """radio.mcs 'auto': McsSelector over the LDPC family with this link's exact burst efficiency and airtime;
    an ldpc-* name: FixedMcs; anything else: LinkError naming radio.mcs."""
    if settings.mcs != "auto":
        names = [m.name for m in family_table("ldpc")]
        if settings.mcs not in names:
            raise LinkError(f"radio.mcs {settings.mcs[:40]!r} is not a frame v2 MCS: use 'auto' or one of "
                            f"{', '.join(names)}")
        return FixedMcs(by_name(settings.mcs))
    burst_s = settings.burst_airtime_s
    options = SelectorSettings(symbol_rate_hz=settings.sample_rate_hz / settings.samples_per_symbol,
                               burst_airtime_s=burst_s, interleaved=settings.interleave_symbols > 0)
    return McsSelector(
        family_table("ldpc"), bler_curves(),
        efficiency=lambda m: airtime.burst_efficiency(settings, m, burst_s),
        settings=options,
        airtime_s=lambda m, n: airtime.codewords_airtime_s(settings, m, n, burst_s))


def default_receiver(settings: LinkSettings) -> StreamReceiver:
    """The v2 burst receiver for these settings, with a HARQ store."""
    from radio.burst_rx import BurstReceiver
    from radio.harq import LlrStore

    return BurstReceiver(settings.sample_rate_hz, settings.samples_per_symbol, settings.rolloff, harq=LlrStore(),
                         interleave_symbols=settings.interleave_symbols)


def payload_sha256(source: PayloadSource) -> str:
    """SHA-256 of a payload source, read in bounded blocks."""
    sha = hashlib.sha256()
    for offset in range(0, source.size, HASH_BLOCK_BYTES):
        sha.update(source.read(offset, HASH_BLOCK_BYTES))
    return sha.hexdigest()


class TransferLoop:
    """Both ends of one v2 transfer; `run` drives them until the sender is done or the link stalls. `send` is the
    one place a burst goes out: host.uplink_v2 replaces it to have a remote edge transmit the planned burst."""

    def __init__(self, source: PayloadSource, tx: RadioBackend, rx: RadioBackend, settings: LinkSettings,
                 session: int, receiver: StreamReceiver, selector: Selector, reassembly: ByteReassembly,
                 report: LinkV2Report, chunk_samples: int, max_stall_bursts: int,
                 on_progress: Callable[[int, int], None] | None,
                 on_burst: Callable[[BurstRecord], None] | None) -> None:
        self.source, self.tx, self.rx, self.settings, self.session = source, tx, rx, settings, session
        self.receiver, self.reassembly, self.report = receiver, reassembly, report
        self.chunk_samples, self.max_stall_bursts = chunk_samples, max_stall_bursts
        self.on_progress, self.on_burst = on_progress, on_burst
        self.fs = settings.sample_rate_hz
        self.arq = ArqSender(source.size, settings, selector, settings.window_bursts, session,
                             settings.burst_airtime_s, report_timeout_s=REPORT_MARGIN_SAMPLES / self.fs)
        self.records: dict[int, BurstRecord] = {}
        self._stall = 0
        self._received_at_last_burst = -1  # the first burst counts as progress

    def now_s(self) -> float:
        """Stream time: samples the receiver has read, in seconds."""
        return self.rx.samples_received / self.fs

    def run(self) -> None:
        arq = self.arq
        while not arq.done:
            frontier = arq.frontier
            plan = arq.next_plan(self.now_s())
            if plan is not None:
                if self._stalled():
                    return
                self.send(plan, frontier)
            elif arq.outstanding:
                self.pump(IDLE_BLOCK_SAMPLES)
            else:  # nothing to send, nothing awaited, not done: cannot happen with a consistent sender
                raise LinkError(f"the v2 sender is stuck: {arq.to_send_bytes} bytes to send, none planned")
            for burst in arq.expired(self.now_s()):
                arq.on_timeout(burst)
                self.report.timeouts += 1
        self.handle(self.receiver.flush())

    def _stalled(self) -> bool:
        """max_stall_bursts bursts in a row delivered no new byte: give up."""
        got = self.reassembly.received_bytes
        self._stall = 0 if got > self._received_at_last_burst else self._stall + 1
        self._received_at_last_burst = got
        return self._stall > self.max_stall_bursts

    def send(self, plan: BurstPlan, frontier: int) -> None:
        """Modulate and transmit one burst chunk by chunk, reading and decoding between chunks (frontier: the
        sender's before this plan; codewords below it are repairs)."""
        size = codeword_bytes(plan.mcs)
        resent = sum(min(r.count, -(-(frontier - r.offset) // size)) for r in plan.runs if r.offset < frontier)
        self._poll()
        record = BurstRecord(plan.burst, plan.mcs.name, plan.codewords, plan.map_codewords, resent,
                             plan.samples(self.settings), self.rx.samples_received + self.rx.pending, plan.flags)
        self.records[plan.burst] = record
        self.report.bursts.append(record)
        t0 = time.perf_counter()
        chunks = burst_chunks(plan, self.source, self.settings, self.chunk_samples)
        held, first = next(chunks), True
        for chunk in chunks:
            self.report.samples_sent += self.tx.tx_chunk(held, first, False)
            first, held = False, chunk
            self._pump_timed(t0)
            t0 = time.perf_counter()
        self.report.samples_sent += self.tx.tx_chunk(held, first, True)
        self._pump_timed(t0)

    def _pump_timed(self, t0: float) -> None:
        self.report.tx_wall_s += time.perf_counter() - t0
        self.pump()

    def _poll(self) -> None:
        cable = self.rx.cable_stream
        if cable is not None:
            while cable.poll_cable():
                pass

    def pump(self, extra: int = 0) -> None:
        """Read everything the backend holds (plus `extra` samples of silence) through the receiver."""
        self._poll()
        n = self.rx.pending + extra
        while n > 0:
            take = min(n, RX_BLOCK_SAMPLES)
            samples = self.rx.rx(take)
            t0 = time.perf_counter()
            events = self.receiver.feed(samples)
            self.report.rx_wall_s += time.perf_counter() - t0
            self.handle(events)
            n -= take

    def handle(self, events: list) -> None:
        """Codewords into the reassembly; bursts into the sender's reports (and the missing list after a last)."""
        for event in events:
            if isinstance(event, RxCodeword):
                if event.session == self.session and event.data is not None:
                    self.reassembly.write(event.offset, event.data)
            elif isinstance(event, RxBurst):
                self._burst(event)
        if self.on_progress is not None and events:
            self.on_progress(self.reassembly.received_bytes, self.reassembly.payload_bytes)

    def _burst(self, event: RxBurst) -> None:
        if event.sig is None or event.sig.session != self.session:
            self.report.foreign_bursts += 1
            return
        now = self.now_s()
        record = self.records.get(event.sig.burst)
        if record is not None:
            record.detected, record.codewords_ok = True, event.codewords_ok
            record.snr_db, record.cfo_hz, record.error = float(event.snr_db), float(event.cfo_hz), event.error
        self.arq.on_report(BurstOutcome(event.sig.burst, True, np.asarray(event.codeword_snr_db, float),
                                        event.codewords_ok, tuple(event.failed)), now)
        if event.sig.flags & FLAG_LAST:
            self.arq.on_missing(from_inclusive(self.reassembly.missing()), through_burst=event.sig.burst)
        if self.on_burst is not None and record is not None:
            self.on_burst(record)


def transfer_v2(payload: PayloadSource | bytes | bytearray | memoryview | np.ndarray, backend: RadioBackend,
                settings: LinkSettings, session: int = 1, *, rx_backend: RadioBackend | None = None,
                receiver: StreamReceiver | None = None, selector: Selector | None = None,
                on_progress: Callable[[int, int], None] | None = None,
                on_burst: Callable[[BurstRecord], None] | None = None,
                memory_limit_bytes: int = DEFAULT_MEMORY_LIMIT_BYTES, spill_dir: str | None = None,
                chunk_samples: int = DEFAULT_CHUNK_SAMPLES, keep_data: bool = False) -> LinkV2Report:
    """Deliver a payload over v2 bursts; both ends run here, over `backend` (rx_backend: the receiving end when
    it is another object, e.g. the zmq loopback's). The report says what happened.

    receiver (default radio.burst_rx.BurstReceiver) and selector (default make_selector) may be replaced.
    on_progress(received_bytes, payload_bytes) after each block of decoded events; on_burst(record) after
    each burst's report. Gives up (delivered False) after settings.max_rounds bursts in a row added no byte.
    """
    source = as_source(payload)
    if source.size < 1:
        raise LinkError("nothing to send: the payload is empty")
    if not 0 <= session < 1 << 32:
        raise LinkError(f"session must be a u32, got {session}")
    selector = selector if selector is not None else make_selector(settings)
    rx = rx_backend if rx_backend is not None else backend
    receiver = receiver if receiver is not None else default_receiver(settings)
    report = LinkV2Report(False, source.size, settings.sample_rate_hz, settings.occupied_bandwidth_hz,
                          payload_sha256(source))
    started = time.perf_counter()
    with ByteReassembly(source.size, memory_limit_bytes, spill_dir) as reassembly:
        loop = TransferLoop(source, backend, rx, settings, session, receiver, selector, reassembly, report,
                     chunk_samples, settings.max_rounds, on_progress, on_burst)
        try:
            loop.run()
        finally:
            report.stats = loop.arq.stats
            report.stream_samples = rx.samples_received
            report.wall_s = time.perf_counter() - started
        if reassembly.complete:
            report.received_sha256_hex = reassembly.sha256_hex()
            report.delivered = report.received_sha256_hex == report.sha256_hex
            if keep_data and reassembly.in_memory:
                report.data = reassembly.open_payload()
    return report


__all__ = ["BurstRecord", "LinkV2Report", "TransferLoop", "default_receiver", "make_selector", "payload_sha256",
           "transfer_v2"]
