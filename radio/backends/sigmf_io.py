"""SigMF IQ recordings: record what any backend's rx() returns, and replay a recording as a backend.

A recording is `<base>.sigmf-data` (cf32_le samples, interleaved I/Q float32 little-endian) plus
`<base>.sigmf-meta` (JSON: global core:datatype, core:version, core:sample_rate, core:hw,
core:description, core:recorder; one capture at sample 0; optional annotations). The meta file is
written by hand following the SigMF 1.2 specification, so the edge needs no extra package; the
`sigmf` package validates it in the tests. The samples stream to the data file as rx() returns them.

A recording states its waveform in the `airlora` extension (`RecordedFrame`): `airlora:frame_version`
(1: K=7 packets, 2: LDPC bursts), `airlora:mcs_family`, `airlora:rolloff`, `airlora:samples_per_symbol` and,
for v2, `airlora:burst_airtime_s` and `airlora:interleave_symbols` (absent: 0, not interleaved); a replay takes
its receiver from them (`RecordedFrame.receiver`). A recording without them (made before they existed) is v1
at roll-off 0.25 and 4 samples per symbol.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from radio.backends.base import CableStream, RadioBackend
from radio.channel import StreamChannel
from radio.errors import BackendError
from radio.interleave import MAX_INTERLEAVE_SYMBOLS

if TYPE_CHECKING:
    from radio.burst_rx import BurstReceiver
    from radio.receiver import Receiver

log = logging.getLogger(__name__)

SIGMF_VERSION = "1.2.0"
DATATYPE = "cf32_le"
RECORDER = "airlora-testbed"
_SUFFIXES = (".sigmf-meta", ".sigmf-data", ".sigmf")
EXTENSION = {"name": "airlora", "version": "1.0.0", "optional": True}
"""The SigMF extension the airlora:* global fields belong to (declared in core:extensions)."""
_FAMILY_OF_FRAME = {1: "conv", 2: "ldpc"}


@dataclass(frozen=True)
class RecordedFrame:
    """The waveform a recording carries: which receiver decodes it, and with what pulse."""

    frame_version: int = 1
    """1: K=7 packets (radio.receiver.Receiver); 2: LDPC bursts (radio.burst_rx.BurstReceiver)"""
    rolloff: float = 0.25
    """root-raised-cosine roll-off"""
    samples_per_symbol: int = 4
    """samples per symbol of the RRC pulse"""
    burst_airtime_s: float | None = None
    """v2: the longest burst on air (radio.burst_airtime_s); None for v1"""
    interleave_symbols: int = 0
    """v2: codeword interleaving span (radio.interleave_symbols; recordings without it: 0, off)"""

    def __post_init__(self) -> None:
        if self.frame_version not in _FAMILY_OF_FRAME:
            raise BackendError(f"airlora:frame_version {self.frame_version!r} is not 1 or 2")
        if not 0.0 < self.rolloff <= 1.0 or not 2 <= self.samples_per_symbol <= 64:
            raise BackendError(f"airlora:rolloff {self.rolloff!r} or airlora:samples_per_symbol "
                               f"{self.samples_per_symbol!r} out of range")
        if not 0 <= self.interleave_symbols <= MAX_INTERLEAVE_SYMBOLS:
            raise BackendError(f"airlora:interleave_symbols {self.interleave_symbols!r} is not in "
                               f"0..{MAX_INTERLEAVE_SYMBOLS}")

    @property
    def mcs_family(self) -> str:
        """'conv' (frame v1) or 'ldpc' (frame v2)."""
        return _FAMILY_OF_FRAME[self.frame_version]

    @classmethod
    def from_settings(cls, frame: str, rolloff: float, samples_per_symbol: int,
                      burst_airtime_s: float, interleave_symbols: int = 0) -> RecordedFrame:
        """From radio.frame ('v1' or 'v2') and the waveform's numbers."""
        v2 = frame == "v2"
        return cls(2 if v2 else 1, float(rolloff), int(samples_per_symbol), float(burst_airtime_s) if v2 else None,
                   int(interleave_symbols) if v2 else 0)

    def to_meta(self) -> dict[str, Any]:
        """The airlora:* global fields."""
        meta: dict[str, Any] = {"airlora:frame_version": self.frame_version, "airlora:mcs_family": self.mcs_family,
                                "airlora:rolloff": self.rolloff, "airlora:samples_per_symbol": self.samples_per_symbol}
        if self.burst_airtime_s is not None:
            meta["airlora:burst_airtime_s"] = self.burst_airtime_s
        if self.frame_version == 2:
            meta["airlora:interleave_symbols"] = self.interleave_symbols
        return meta

    @classmethod
    def from_meta(cls, glob: dict[str, Any], where: str = "recording") -> RecordedFrame:
        """From a meta file's global object; without airlora:frame_version a v1 recording (the old format)."""
        if "airlora:frame_version" not in glob:
            return cls()
        try:
            frame = cls(int(glob["airlora:frame_version"]), float(glob.get("airlora:rolloff", 0.25)),
                        int(glob.get("airlora:samples_per_symbol", 4)),
                        None if glob.get("airlora:burst_airtime_s") is None else float(glob["airlora:burst_airtime_s"]),
                        int(glob.get("airlora:interleave_symbols", 0)))
        except (TypeError, ValueError) as exc:
            raise BackendError(f"{where}: an airlora:* field is not a number ({exc})") from None
        except BackendError as exc:
            raise BackendError(f"{where}: {exc}") from None
        family = glob.get("airlora:mcs_family", frame.mcs_family)
        if family != frame.mcs_family:
            raise BackendError(f"{where}: airlora:mcs_family {family!r} does not go with frame v{frame.frame_version}")
        return frame

    def receiver(self, sample_rate_hz: float, lo_hz: float | None = None) -> Receiver | BurstReceiver:
        """A new receiver for this waveform: v1 Receiver or v2 BurstReceiver (free-running clocks)."""
        if self.frame_version == 2:
            from radio.burst_rx import BurstReceiver

            return BurstReceiver(sample_rate_hz, self.samples_per_symbol, self.rolloff, lo_hz=lo_hz,
                                 interleave_symbols=self.interleave_symbols)
        from radio.receiver import Receiver

        return Receiver(sample_rate_hz, self.samples_per_symbol, self.rolloff)


class EndOfRecording(BackendError, EOFError):
    """rx() was called on a replay whose samples are all returned."""


def sigmf_paths(path: str | Path) -> tuple[Path, Path]:
    """(meta, data) paths of a recording given its base path, with or without a SigMF suffix."""
    p = Path(path).expanduser()
    if p.suffix in _SUFFIXES:
        p = p.with_suffix("")
    return p.with_name(p.name + ".sigmf-meta"), p.with_name(p.name + ".sigmf-data")


class SigmfRecorder(RadioBackend):
    """Wraps a backend: tx() and tx_burst() pass through, rx() also appends what it returns to a SigMF recording.

    The meta file is written when recording starts and rewritten with annotations on close(), so a
    crashed run still leaves a readable recording. close() closes the wrapped backend too.

    Parameters
    ----------
    backend: the backend whose received stream is recorded.
    path: base path of the recording (`.sigmf-meta` / `.sigmf-data` are appended); parent folders are made.
    description: core:description of the recording.
    hw: core:hw; the wrapped backend's class name by default.
    frame: the waveform received (the airlora:* fields a replay picks its receiver from); v1 defaults when None.
    """

    def __init__(self, backend: RadioBackend, path: str | Path, description: str = "", hw: str | None = None,
                 frame: RecordedFrame | None = None) -> None:
        self._backend = backend
        self.meta_path, self.data_path = sigmf_paths(path)
        self.meta_path.parent.mkdir(parents=True, exist_ok=True)
        self._annotations: list[dict] = []
        self._global = {
            "core:datatype": DATATYPE,
            "core:version": SIGMF_VERSION,
            "core:sample_rate": float(backend.sample_rate_hz),
            "core:num_channels": 1,
            "core:recorder": RECORDER,
            "core:hw": hw or type(backend).__name__,
            "core:description": description or "received IQ stream of an AirLoRA testbed backend",
            "core:extensions": [dict(EXTENSION)],
            **(frame or RecordedFrame()).to_meta(),
        }
        self._capture = {
            "core:sample_start": 0,
            "core:datetime": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }
        self._data = self.data_path.open("wb")
        self._write_meta()

    @property
    def sample_rate_hz(self) -> float:
        """Sample rate of the wrapped backend."""
        return self._backend.sample_rate_hz

    @property
    def backend(self) -> RadioBackend:
        """The wrapped backend."""
        return self._backend

    @property
    def pending(self) -> int:
        """The wrapped backend's samples queued ahead of the read position."""
        return self._backend.pending

    @property
    def clock_samples(self) -> int:
        """The wrapped backend's transmit clock."""
        return self._backend.clock_samples

    @property
    def channel(self) -> StreamChannel | None:
        """The wrapped backend's emulated channel (None on real air)."""
        return self._backend.channel

    @property
    def cable_stream(self) -> CableStream | None:
        """The wrapped backend's cable, when it is cable-fed: recording changes nothing about how it is read."""
        return self._backend.cable_stream

    @property
    def frame(self) -> RecordedFrame:
        """The waveform the meta file states."""
        return RecordedFrame.from_meta(self._global)

    def set_frame(self, frame: RecordedFrame) -> None:
        """State another waveform (an edge learns it from a session's start); the meta file is rewritten now."""
        for key in [k for k in self._global if k.startswith("airlora:")]:
            del self._global[key]
        self._global.update(frame.to_meta())
        self._write_meta()

    def annotate(self, sample_start: int, sample_count: int, label: str, comment: str | None = None) -> None:
        """Mark samples of the recording (e.g. a detected packet); written to the meta file on close()."""
        entry = {"core:sample_start": int(sample_start), "core:sample_count": int(sample_count), "core:label": label}
        if comment:
            entry["core:comment"] = comment
        self._annotations.append(entry)

    def metadata(self) -> dict:
        """The SigMF metadata as a dict (global, captures, annotations sorted by sample_start)."""
        notes = sorted(self._annotations, key=lambda a: a["core:sample_start"])
        return {"global": dict(self._global), "captures": [dict(self._capture)], "annotations": notes}

    def _write_meta(self) -> None:
        tmp = self.meta_path.with_name(self.meta_path.name + ".tmp")
        tmp.write_text(json.dumps(self.metadata(), indent=2) + "\n")
        tmp.replace(self.meta_path)

    def _tx(self, iq: np.ndarray) -> None:
        self._backend.tx(iq)

    def _tx_chunk(self, iq: np.ndarray, first: bool, last: bool) -> None:
        self._backend.tx_chunk(iq, first, last)

    def _rx(self, num_samples: int) -> np.ndarray:
        y = self._backend.rx(num_samples)
        self._data.write(np.ascontiguousarray(y, dtype="<c8").tobytes())
        return y

    def _close(self) -> None:
        try:
            self._data.close()
            self._write_meta()
        finally:
            self._backend.close()


def read_meta(path: str | Path) -> dict:
    """The parsed `.sigmf-meta` of a recording; BackendError if missing or not a cf32_le single-channel recording."""
    meta_path, _ = sigmf_paths(path)
    try:
        meta = json.loads(meta_path.read_text())
    except OSError as exc:
        raise BackendError(f"{meta_path}: cannot read the SigMF meta file ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise BackendError(f"{meta_path}: not valid JSON ({exc})") from None
    glob = meta.get("global") if isinstance(meta, dict) else None
    if not isinstance(glob, dict):
        raise BackendError(f"{meta_path}: no 'global' object")
    if glob.get("core:datatype") not in (DATATYPE, "cf32"):
        raise BackendError(f"{meta_path}: datatype {glob.get('core:datatype')!r} is not supported; only {DATATYPE}")
    if glob.get("core:num_channels", 1) != 1:
        raise BackendError(f"{meta_path}: {glob['core:num_channels']} channels; only single-channel recordings")
    rate = glob.get("core:sample_rate")
    if not isinstance(rate, (int, float)) or rate <= 0:
        raise BackendError(f"{meta_path}: core:sample_rate missing or not positive")
    return meta


class SigmfReplayBackend(RadioBackend):
    """Replays a SigMF recording as the received stream; tx() raises.

    End of file: rx(n) returns n samples while that many remain; the call that reaches the end returns
    the remainder (1..n samples, never an empty array), and every later call raises EndOfRecording
    (a BackendError and an EOFError). With loop=True the recording repeats
    and rx(n) always returns n samples. samples_received counts the samples actually returned.

    Parameters
    ----------
    path: base path of the recording (or its .sigmf-meta / .sigmf-data file).
    sample_rate_hz: if given, must equal the recording's core:sample_rate (else BackendError).
    loop: repeat the recording instead of ending.
    """

    def __init__(self, path: str | Path, sample_rate_hz: float | None = None, loop: bool = False) -> None:
        self.meta = read_meta(path)
        self.meta_path, self.data_path = sigmf_paths(path)
        self._sample_rate_hz = float(self.meta["global"]["core:sample_rate"])
        if sample_rate_hz is not None and abs(sample_rate_hz - self._sample_rate_hz) > 1e-9 * self._sample_rate_hz:
            raise BackendError(
                f"{self.meta_path}: recorded at {self._sample_rate_hz:g} Hz but the radio runs at {sample_rate_hz:g} Hz"
            )
        try:
            size = self.data_path.stat().st_size
        except OSError as exc:
            raise BackendError(f"{self.data_path}: cannot read the SigMF data file ({exc.strerror})") from None
        if size % 8:
            log.warning("%s: %d trailing bytes are not a whole cf32 sample; ignored", self.data_path, size % 8)
        n = size // 8
        self._samples = np.memmap(self.data_path, dtype="<c8", mode="r", shape=(n,)) if n else np.zeros(0, "<c8")
        self._loop = bool(loop)
        self._pos = 0
        self.frame = RecordedFrame.from_meta(self.meta["global"], str(self.meta_path))
        """The recorded waveform (v1 for a recording without airlora:* fields)."""

    @property
    def sample_rate_hz(self) -> float:
        """core:sample_rate of the recording."""
        return self._sample_rate_hz

    @property
    def total_samples(self) -> int:
        """Samples in the recording."""
        return len(self._samples)

    @property
    def remaining(self) -> int:
        """Samples left before the end (the recording's length when looping)."""
        return len(self._samples) - self._pos

    def receiver(self, lo_hz: float | None = None) -> Receiver | BurstReceiver:
        """A new receiver for the recorded waveform (v1 Receiver or v2 BurstReceiver, from the meta file)."""
        return self.frame.receiver(self._sample_rate_hz, lo_hz)

    @property
    def annotations(self) -> list[dict]:
        """The recording's annotations."""
        return list(self.meta.get("annotations", []))

    def rx(self, num_samples: int) -> np.ndarray:
        """The next num_samples of the recording; fewer at its end, then EndOfRecording (see class doc)."""
        y = super().rx(num_samples)
        self._samples_received -= num_samples - len(y)
        return y

    def _tx(self, iq: np.ndarray) -> None:
        raise BackendError("SigmfReplayBackend only replays received samples; it cannot transmit")

    def _rx(self, num_samples: int) -> np.ndarray:
        total = len(self._samples)
        if self._loop:
            if not total:
                raise EndOfRecording(f"{self.data_path}: the recording is empty")
            idx = (self._pos + np.arange(num_samples)) % total
            self._pos = int((self._pos + num_samples) % total)
            return np.asarray(self._samples[idx], np.complex64)
        if self._pos >= total:
            raise EndOfRecording(f"{self.data_path}: end of recording after {total} samples")
        end = min(self._pos + num_samples, total)
        y = np.array(self._samples[self._pos:end], np.complex64)
        self._pos = end
        return y

    def _close(self) -> None:
        self._samples = np.zeros(0, "<c8")
