"""The edge daemon's frame v2 part: which sessions it takes, their burst receiver, and how they complete.

The daemon (edge_node/daemon.py) keeps ownership, resumes and the control port; for a session whose
SessionStart says frame_version 2 it calls in here: `refusal` before anything is allocated, `new_session`,
`on_burst_done`, and `step` once per loop turn, which reads the stream, sends the BurstReports and missing
lists, and on completion checks the SHA-256, says TransferComplete and hands the payload to `apply`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from edge_node.radio_input_v2 import BurstInput, ReceiverParams
from edge_node.session_v2 import EdgeSessionV2
from radio.backends.base import RadioBackend
from radio.errors import LinkError
from testbed.config import TestbedConfig
from testbed.messages import (CAPABILITY_FRAME_V2, CAPABILITY_UPLINK_V2, ERR_REASSEMBLY_FAILED, BurstDone, Error,
                              Message, SessionStart, TransferComplete)

log = logging.getLogger("airlora.edge")

SPILL_FOLDER = ".reassembly"  # under edge.adapter_dir: payloads over edge.reassembly_memory_bytes while they arrive


def capabilities(cfg: TestbedConfig) -> list[str]:
    """The Hello capabilities frame v2 adds when edge.frames lists v2: frame:v2 (it receives v2 bursts) and
    uplink:v2 (its fed uplink transmits them, edge_node/fed_worker.py)."""
    return [CAPABILITY_FRAME_V2, CAPABILITY_UPLINK_V2] if "v2" in cfg.edge.frames else []


class ControlPort(Protocol):
    """What `step` needs of the daemon's control server."""

    def send(self, peer: bytes, msg: Message) -> None: ...

    def protect(self, peers: list[bytes]) -> None: ...


class FrameV2Edge:
    """Builds v2 sessions and their burst receiver; drives them one step at a time."""

    def __init__(self, cfg: TestbedConfig, backend: RadioBackend) -> None:
        self.cfg, self.backend = cfg, backend
        self.radio: BurstInput | None = None
        self.spill_dir = Path(cfg.edge.adapter_dir).expanduser() / SPILL_FOLDER

    def refusal(self, msg: SessionStart) -> str | None:
        """Why this edge does not take a v2 session (None: it does)."""
        if "v2" not in self.cfg.edge.frames:
            return "this edge does not receive frame v2 (edge.frames); send frame v1"
        return None

    def params(self, msg: SessionStart) -> ReceiverParams:
        """The burst receiver for this session's waveform on this edge's radio."""
        r = self.cfg.radio
        pluto = r.backend == "pluto"  # LO and sample clock from one crystal: the SCO follows the CFO
        return ReceiverParams(r.sample_rate_hz, msg.samples_per_symbol, msg.rolloff,
                              lo_hz=r.pluto.lo_hz if pluto else None, locked_clocks=pluto,
                              max_payload_bytes=self.cfg.edge.max_payload_bytes,
                              interleave_symbols=msg.interleave_symbols)  # the host's, as its waveform

    def new_session(self, msg: SessionStart, peer: bytes, user: str | None) -> EdgeSessionV2:
        """A fresh session (its receiver rebuilt when the waveform differs from the last one's)."""
        params = self.params(msg)
        if self.radio is None or self.radio.params != params:
            self.radio = BurstInput(self.backend, params)
        self.radio.forget()
        self.radio.harq.drop_session(msg.session)
        edge = self.cfg.edge
        return EdgeSessionV2(msg, peer, user, memory_limit_bytes=edge.reassembly_memory_bytes,
                             spill_dir=self.spill_dir, max_payload_bytes=edge.max_payload_bytes)

    def resume(self, s: EdgeSessionV2) -> None:
        """The host came back: announcements made before are not waited for; it hears what this edge lacks."""
        if self.radio is not None:
            self.radio.forget()
        s.resume()

    def on_burst_done(self, s: EdgeSessionV2, msg: BurstDone) -> None:
        assert self.radio is not None
        s.on_burst_done(msg, self.radio)

    def expecting(self) -> bool:
        return self.radio is not None and bool(self.radio.announced)

    def step(self, s: EdgeSessionV2, control: ControlPort, apply: Callable[[EdgeSessionV2, bytes | Path], None],
             wait_s: float = 0.0) -> None:
        """Read the stream once, send what the host needs to hear; on completion verify, report and apply."""
        assert self.radio is not None
        try:
            messages = s.step(self.radio, wait_s)
        except LinkError as exc:  # the reassembly cannot go on (e.g. its spill file's disk is full): end the session
            log.error("session %d: %s; the session ends, nothing is installed", s.session, exc)
            control.send(s.peer, Error(code=ERR_REASSEMBLY_FAILED, message=str(exc)[:1024]))
            s.finished = True
            s.close()
            control.protect([])
            return
        for msg in messages:
            control.send(s.peer, msg)
        if s.finished or not s.complete:
            return
        if not s.sha_ok:
            log.warning("session %d: reassembled payload does not match its SHA-256; starting over", s.session)
            control.send(s.peer, Error(code="sha_mismatch", message="reassembled payload fails its SHA-256"))
            s.restart()
            control.send(s.peer, s.missing_request())
            return
        s.finished = True
        if self.radio is not None:
            self.radio.harq.drop_session(s.session)
        payload: bytes | Path | None = None
        try:
            if s.start.apply:  # (a sounding's payload is never copied out)
                payload = s.reassembly.open_payload()
                if isinstance(payload, Path):  # spilled: read it whole (bounded), then the file goes
                    payload = self._read_spilled(payload)
        finally:
            s.close()  # before the host hears of it: a finished session leaves nothing on disk
        control.protect([])
        control.send(s.peer, TransferComplete(
            session=s.session, payload_sha256=s.start.payload_sha256,
            packets_received=min(s.bursts_reported, 2**32 - 1), elapsed_s=time.monotonic() - s.started))
        if payload is not None:
            apply(s, payload)

    def _read_spilled(self, path: Path) -> bytes | Path:
        """The spill file's bytes (edge.max_payload_bytes at most); the path itself when unreadable, so that
        apply_payload refuses it with the reason."""
        from edge_node.pipeline import read_payload_file
        from adapters.payload import PayloadError

        try:
            return read_payload_file(path, self.cfg.edge.max_payload_bytes)
        except PayloadError:
            return path
