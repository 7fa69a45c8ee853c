"""One frame v2 transfer on the edge: codewords into a byte reassembly, one BurstReport per burst, and the
missing list (bytes) after the burst that ends a pass (docs/design/link_v2.md sections 4 and 5.7).

The payload is held in memory up to edge.reassembly_memory_bytes, beyond that in a sparse file under the
edge's state folder, and hashed as its contiguous prefix grows. Nothing here installs anything: the daemon
takes `payload_if_valid()` (bytes, or the spill file's path) only once every byte is there and the SHA-256
is the announced one, and the signature is checked after that, before any parsing (edge_node/pipeline.py).

A resume (a restarted host, or the link came back) moves the burst numbering on: the held list's last_burst is
the highest number seen so far plus RESUME_GAP, and the host numbers its bursts past it. A burst below that
floor is an earlier host's (one still on the air or in the cable) unless the current host announced it since
the resume (its probe, sent before the held list reached it): its codewords are kept, but it is neither
reported nor does it settle announced bursts (`stale_bursts` counts it).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from edge_node.radio_input_v2 import Announced, BurstInput
from radio.burst_events import RxBurst, RxCodeword, RxEvent
from radio.reassembly import ByteReassembly
from testbed.messages import MAX_BURST_CODEWORDS, MAX_RANGES, BurstDone, BurstReport, Message, MissingRequest, \
    SessionStart, quarter_db

MAX_REPORTED = 256  # burst numbers remembered as reported (a late duplicate RxBurst is not reported twice)
MAX_LAST = 64  # bursts the host flagged as the last of a pass, remembered until settled
RESUME_GAP = 1024  # numbers skipped at a resume: more than a dead host can have sent that this edge never saw
MAX_BURST_NUMBER = (1 << 32) - 1  # the SIG's and the messages' burst numbers are u32
MAX_HELD_BACK = 8  # bursts below the floor decoded before the current host announced them, kept for that


def _db(value: float, low: float = -100.0, high: float = 200.0) -> float | None:
    """A finite dB value clipped to the message's bounds; None for nan."""
    return float(np.clip(value, low, high)) if math.isfinite(value) else None


def _inclusive(ranges: tuple[tuple[int, int], ...], limit: int = MAX_RANGES) -> list[list[int]]:
    """Half-open byte ranges -> ascending, merged [first, last] ranges (the first `limit`)."""
    out: list[list[int]] = []
    for start, stop in sorted(r for r in ranges if r[1] > r[0]):
        if out and start <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], stop - 1)
        else:
            out.append([start, stop - 1])
    return out[:limit]


class EdgeSessionV2:
    """The edge's state of one v2 session: started by a SessionStart with frame_version 2."""

    frame_version = 2

    def __init__(self, start: SessionStart, peer: bytes, user: str | None = None, *,
                 memory_limit_bytes: int, spill_dir: Path, max_payload_bytes: int) -> None:
        self.start, self.peer, self.user = start, peer, user
        spill_dir.mkdir(parents=True, exist_ok=True)
        self._reassembly_args = (memory_limit_bytes, spill_dir, max_payload_bytes)
        self.reassembly = self._new_reassembly()
        self.started = time.monotonic()
        self.bursts_done = 0
        self.bursts_reported = 0
        self.repair_round = 0
        self.finished = False
        self.foreign_bursts = 0  # RxBursts of another session, or whose SIG did not decode
        self.stale_bursts = 0  # RxBursts below the floor the current host had not announced (held back)
        self.highest_burst: int | None = None  # the highest burst number announced or received in this session
        self.floor = 0  # burst numbers below it are an earlier host's, unless announced since the resume
        self._current: set[int] = set()  # numbers below the floor that the current host announced
        self._held_back: dict[int, RxBurst] = {}  # below the floor, received before their announcement
        self._reported: set[int] = set()
        self._last: set[int] = set()
        self._outbox: list[Message] = []  # sent with the next step's messages

    @property
    def session(self) -> int:
        return self.start.session

    def owned_by(self, peer: bytes, user: str | None) -> bool:
        """As EdgeSession.owned_by: the owner's routing id with its key, or (CurveZMQ) its key on a new id."""
        return (peer == self.peer and user == self.user) or (user is not None and user == self.user)

    def matches(self, start: SessionStart) -> bool:
        """Same session, same payload, same frame: a resume after the host or the link came back."""
        return start.session == self.session and start.payload_sha256 == self.start.payload_sha256 \
            and start.payload_bytes == self.start.payload_bytes and start.frame_version == 2

    # --- input ------------------------------------------------------------------------------------
    def on_burst_done(self, msg: BurstDone, radio: BurstInput) -> None:
        """The host sent a burst: announce it to the radio input (to settle it if never detected)."""
        self.bursts_done = max(self.bursts_done, msg.burst)
        self._seen(msg.burst)
        if msg.burst < self.floor:
            self._current.add(msg.burst)
            while len(self._current) > MAX_LAST:
                self._current.discard(min(self._current))
        if msg.last:
            self._last.add(msg.burst)
            while len(self._last) > MAX_LAST:
                self._last.discard(min(self._last))
        if msg.burst in self._reported:
            return
        held = self._held_back.pop(msg.burst, None)
        if held is not None:  # decoded before its announcement came: reported now
            self._outbox += self._detected(held, radio)
        else:
            radio.announce(msg.burst, msg.first_sample, msg.samples_sent, msg.mcs, msg.last)

    def _seen(self, burst: int) -> None:
        self.highest_burst = burst if self.highest_burst is None else max(self.highest_burst, burst)

    def step(self, radio: BurstInput, wait_s: float = 0.0) -> list[Message]:
        """Read the stream once; the messages for the host (reports, missing lists), in order."""
        events, overdue = radio.step(wait_s)
        if self.finished:  # done (and its reassembly closed): bursts still on the way are read and dropped
            return []
        out, self._outbox = self._outbox, []
        out += self._take(events, radio)
        for a in overdue:
            out += self._undetected(a, radio)
        return out

    def _take(self, events: list[RxEvent], radio: BurstInput) -> list[Message]:
        out: list[Message] = []
        for event in events:
            if isinstance(event, RxCodeword):
                if event.session == self.session and event.data is not None \
                        and 0 <= event.offset < self.reassembly.payload_bytes:
                    self.reassembly.write(event.offset, event.data)
            elif isinstance(event, RxBurst):
                sig = event.sig
                if sig is None or sig.session != self.session or sig.payload_bytes != self.start.payload_bytes:
                    self.foreign_bursts += 1
                    continue
                self._seen(sig.burst)
                if sig.burst < self.floor and sig.burst not in self._current:
                    self.stale_bursts += 1  # an earlier host's, or the current one's not yet announced
                    self._held_back[sig.burst] = event
                    while len(self._held_back) > MAX_HELD_BACK:
                        del self._held_back[min(self._held_back)]
                    continue
                out += self._detected(event, radio)
        return out

    def _detected(self, event: RxBurst, radio: BurstInput) -> list[Message]:
        """The report of a received burst of the current host (after those of earlier bursts never detected)."""
        sig = event.sig
        assert sig is not None
        out: list[Message] = []
        for earlier in radio.settle(sig.burst):
            out += self._undetected(earlier, radio)
        if sig.burst in self._reported:
            return out
        out.append(self._report(event, radio))
        if sig.last or sig.burst in self._last:
            out.append(self.missing_request(sig.burst))
        return out

    def _undetected(self, a: Announced, radio: BurstInput) -> list[Message]:
        if a.burst in self._reported:
            return []
        self._mark(a.burst)
        out: list[Message] = [BurstReport(session=self.session, burst=a.burst, mcs=a.mcs, detected=False,
                                          harq_stored=len(radio.harq), received_bytes=self.reassembly.received_bytes)]
        if a.last or a.burst in self._last:
            out.append(self.missing_request(a.burst))
        return out

    def _mark(self, burst: int) -> None:
        self.bursts_reported += 1
        self._reported.add(burst)
        self._last.discard(burst)
        while len(self._reported) > MAX_REPORTED:
            self._reported.discard(min(self._reported))

    def _report(self, event: RxBurst, radio: BurstInput) -> BurstReport:
        sig = event.sig
        assert sig is not None
        self._mark(sig.burst)
        fs = radio.params.sample_rate_hz
        lag = max(radio.fed - event.end_sample, 0) / fs if event.end_sample >= 0 else 0.0
        return BurstReport(
            session=self.session, burst=sig.burst, mcs=sig.scheme.name, detected=True, snr_db=_db(event.snr_db),
            snr_db_p25=_db(event.snr_db_p25), codeword_snr_db=quarter_db(event.codeword_snr_db[:MAX_BURST_CODEWORDS]),
            cfo_hz=_db(event.cfo_hz, -1e8, 1e8), sco_ppm=_db(event.sco_ppm, -1e6, 1e6),
            evm_snr_db=_db(event.evm_snr_db), codewords_ok=min(event.codewords_ok, MAX_BURST_CODEWORDS),
            codewords_failed=min(event.codewords_failed, MAX_BURST_CODEWORDS), failed=_inclusive(event.failed),
            harq_stored=len(radio.harq), received_bytes=self.reassembly.received_bytes, decode_lag_s=min(lag, 1e9),
            error=event.error[:1024] if event.error else None)

    # --- state ------------------------------------------------------------------------------------
    def missing_request(self, through_burst: int | None = None, last_burst: int | None = None) -> MissingRequest:
        """What is still missing, in payload bytes (the first MAX_RANGES ranges); last_burst for a resume."""
        missing = self.reassembly.missing(MAX_RANGES + 1)
        listed = missing[:MAX_RANGES]
        count = self.reassembly.payload_bytes - self.reassembly.received_bytes
        msg = MissingRequest(session=self.session, round=self.repair_round, ranges=[list(r) for r in listed],
                             missing_count=count, truncated=len(missing) > MAX_RANGES, unit="byte",
                             through_burst=through_burst, last_burst=last_burst)
        self.repair_round += 1
        return msg

    @property
    def complete(self) -> bool:
        return self.reassembly.complete

    @property
    def sha_ok(self) -> bool:
        """Every byte is there and the SHA-256 is the announced one."""
        return self.reassembly.complete and self.reassembly.sha256_hex() == self.start.payload_sha256

    def payload_if_valid(self) -> bytes | Path | None:
        """The payload (bytes, or the spill file's path, valid until close()) when complete and its SHA-256 is
        the announced one; else None."""
        return self.reassembly.open_payload() if self.sha_ok else None

    def _new_reassembly(self) -> ByteReassembly:
        memory_limit_bytes, spill_dir, max_payload_bytes = self._reassembly_args
        return ByteReassembly(self.start.payload_bytes, memory_limit_bytes, spill_dir,
                              max_payload_bytes=max_payload_bytes)

    def resume(self) -> None:
        """The host came back, or a restarted one resumes: it hears first what this edge lacks (a byte
        MissingRequest without through_burst), so that it sends nothing this edge holds, and the number to
        continue after (last_burst), so that an earlier host's late burst is never taken for one of its own."""
        highest = -1 if self.highest_burst is None else self.highest_burst
        last_burst = min(highest + RESUME_GAP, MAX_BURST_NUMBER)
        self.floor = last_burst + 1
        self._reported.clear()
        self._last.clear()
        self._current.clear()
        self._held_back.clear()
        self._outbox.append(self.missing_request(last_burst=last_burst))

    def restart(self) -> None:
        """Drop what was received (it failed its SHA-256) and start the reassembly over."""
        self.reassembly.close()
        self.reassembly = self._new_reassembly()

    def close(self) -> None:
        """Free the reassembly (deletes a spill file)."""
        self.reassembly.close()
