"""ADALM-PLUTO backend over pyadi-iio's `adi.Pluto` (a real device by URI) or an injected device with its API.

The emulated device (`pluto_emulator.EmulatedPluto`) builds on this module, not the other way round:
`pluto_emulator.emulated_pluto_backend` injects it and says that it is an emulation.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from radio.backends.base import RadioBackend
from radio.channel import StreamChannel
from radio.errors import BackendError

TX_SCALE = 2**14
"""Device units of full scale |x| = 1 on TX (pyadi-iio convention; 6 dB below the DAC's 2**15)."""
RX_SCALE = 2**11
"""Device units of full scale on RX (12-bit ADC codes)."""
TX_DRAIN_MARGIN_S = 0.05
"""Extra wait, beyond a burst's airtime, before a real device's TX buffer is destroyed."""
LATENCY_S = 0.05
"""TX-to-RX pipeline latency allowed for on top of one RX buffer (`pending` of a streaming device)."""
RX_STALL_S = 5.0
"""A streaming device that delivers no buffer for this long (beyond one buffer's time) is reported failed."""
DEFAULT_TX_BUFFER_SAMPLES = 65536
"""Samples per TX buffer of a tx_burst (radio.pluto.tx_buffer_samples in the design; not a config field yet)."""


class RxStream:
    """Reads a device's RX buffers on a thread into a bounded backlog: a real Pluto runs in real time.

    Samples not read from the device are lost, so the thread reads continuously; rx() takes from the
    backlog. When the caller falls more than `max_samples` behind, the oldest buffers are dropped
    (counted in `dropped_samples`) and the stream jumps forward.
    """

    def __init__(self, device: Any, max_samples: int, uri: str) -> None:
        self._device, self._max, self._uri = device, int(max_samples), uri
        self._chunks: deque[np.ndarray] = deque()
        self._count = 0
        self._error: Exception | None = None
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self.dropped_samples = 0
        self._thread = threading.Thread(target=self._run, name=f"pluto-rx {uri}", daemon=True)
        self._thread.start()

    @property
    def backlog(self) -> int:
        """Samples read from the device and not taken yet."""
        return self._count

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                chunk = (np.asarray(self._device.rx()) / RX_SCALE).astype(np.complex64)
            except Exception as exc:  # libiio timeouts and disconnects
                with self._cond:
                    self._error = exc
                    self._cond.notify_all()
                return
            with self._cond:
                self._chunks.append(chunk)
                self._count += len(chunk)
                while self._count > self._max and len(self._chunks) > 1:
                    old = self._chunks.popleft()
                    self._count -= len(old)
                    self.dropped_samples += len(old)
                self._cond.notify_all()

    def take(self, timeout_s: float) -> np.ndarray:
        """The oldest buffer of the backlog, waiting up to timeout_s for one; BackendError on failure."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._chunks or self._error is not None, timeout_s):
                raise BackendError(f"Pluto at {self._uri}: no RX samples for {timeout_s:.1f} s")
            if not self._chunks:
                raise BackendError(f"Pluto at {self._uri} failed to receive: {self._error}")
            chunk = self._chunks.popleft()
            self._count -= len(chunk)
            return chunk

    def stop(self) -> None:
        """Stop reading (returns once the buffer being read is in)."""
        self._stop.set()
        self._thread.join(timeout=RX_STALL_S)


@dataclass(frozen=True)
class PlutoSettings:
    """The device knobs a PlutoBackend sets when it opens (each is also a property of the backend)."""

    sample_rate_hz: float = 1.0e6
    """Baseband sample rate of both paths (Pluto: 521e3..61.44e6)."""
    lo_hz: float = 915.0e6
    """Carrier of both paths (stock AD9363: 325e6..3.8e9)."""
    tx_attenuation_db: float = 10.0
    """TX attenuation, 0..89.75 dB in 0.25 dB steps (hardwaregain = -attenuation)."""
    rx_gain_mode: str = "slow_attack"
    """RX gain control: "manual", "slow_attack", "fast_attack" or "hybrid"."""
    rx_gain_db: float = 30.0
    """RX gain in manual mode."""
    rf_bandwidth_hz: float | None = None
    """Analog filter bandwidth of both paths; None uses the sample rate."""
    rx_buffer_size: int = 2**15
    """Samples per device RX buffer."""
    tx_buffer_samples: int = DEFAULT_TX_BUFFER_SAMPLES
    """Samples per device TX buffer of a tx_burst (every buffer of a burst this long, the last zero-padded)."""
    xo_correction_hz: float | None = None
    """The AD9361's xo_correction: the 40 MHz reference frequency the driver assumes; None leaves the device's."""


class PlutoBackend(RadioBackend):
    """A Pluto as a RadioBackend: full-scale complex64 in and out, settings as properties.

    tx() scales |x| <= 1 to int16 units (x 2**14) and pushes one non-cyclic buffer per burst; a
    burst of a different length than the last destroys the TX buffer first (pyadi-iio cannot
    change the length on the fly), after waiting out the previous burst's airtime on a real device
    (destroying a buffer aborts DMA still in flight). tx_burst() streams non-cyclic buffers of
    `tx_buffer_samples` each, the last zero-padded, so the TX buffer is never re-created inside a burst
    and host memory holds one buffer; an emulated device is told which buffer ends the burst.
    rx(n) concatenates device buffers of `rx_buffer_size` and keeps the leftover for the next call,
    returning ADC codes / 2**11.

    Parameters
    ----------
    uri: libiio URI of a real Pluto, e.g. "ip:192.168.2.1" (always given, never scanned for); with
        `device`, the label the backend shows ("emulated:").
    settings: the device knobs (PlutoSettings); knobs given as keywords (sample_rate_hz=2e6, ...)
        override its fields.
    device: an object with the adi.Pluto API used instead of opening uri.
    emulated: the device is an emulation (its builder says so): its channel and queued stream are
        exposed, a TX buffer is destroyed without waiting out the burst, and RX is not streamed by default.
    rx_backlog_s: streaming: seconds of received samples held for a slow reader.
    stream_rx: read RX continuously on a thread; None: only for a real device (an emulator's
        stream waits for its reader unless it runs with realtime=True).
    """

    def __init__(
        self,
        uri: str | None,
        settings: PlutoSettings | None = None,
        *,
        device: Any = None,
        emulated: bool = False,
        rx_backlog_s: float = 2.0,
        stream_rx: bool | None = None,
        **knobs: Any,
    ) -> None:
        settings = replace(settings or PlutoSettings(), **knobs)
        if device is None:
            device = self._open(uri)
        self._device = device
        self._uri = uri or ""
        self._emulated = bool(emulated)
        self._tx_length: int | None = None
        self._tx_done_at = 0.0
        self._leftover = np.zeros(0, np.complex64)
        self._stream: RxStream | None = None
        self._overflow_before = 0
        self._rx_backlog_s = float(rx_backlog_s)
        self._sample_rate_hz = float(settings.sample_rate_hz)  # these two are read back from the device when set:
        self._rx_buffer_size = int(settings.rx_buffer_size)    # rx() and pending use them for every chunk
        if int(settings.tx_buffer_samples) < 1:
            raise BackendError(f"tx_buffer_samples must be positive, got {settings.tx_buffer_samples}")
        self._tx_buffer_samples = int(settings.tx_buffer_samples)
        self._tx_staging: np.ndarray | None = None  # tx_burst: the buffer being filled
        self._tx_fill = 0
        self._tx_first_buffer = True
        self.sample_rate_hz = settings.sample_rate_hz
        self.lo_hz = settings.lo_hz
        self.rf_bandwidth_hz = settings.sample_rate_hz if settings.rf_bandwidth_hz is None else settings.rf_bandwidth_hz
        self._set(False, "tx_cyclic_buffer")
        self.tx_attenuation_db = settings.tx_attenuation_db
        self.rx_gain_mode = settings.rx_gain_mode
        if settings.rx_gain_mode == "manual":
            self.rx_gain_db = settings.rx_gain_db
        self.rx_buffer_size = settings.rx_buffer_size
        if settings.xo_correction_hz is not None:
            self.xo_correction_hz = settings.xo_correction_hz
        self._streaming = (not self._emulated) if stream_rx is None else bool(stream_rx)
        self._start_stream()

    @staticmethod
    def _open(uri: str | None) -> Any:
        if not uri:
            raise BackendError("a Pluto needs its URI, e.g. ip:192.168.2.1 or usb:1.5.5 (the backend never scans)")
        try:
            import adi
        except ImportError as exc:
            raise BackendError("pyadi-iio is not installed: pip install 'airlora-testbed[pluto]'") from exc
        try:
            return adi.Pluto(uri=uri)
        except Exception as exc:  # libiio reports a missing device as a bare Exception
            raise BackendError(f"no Pluto at {uri}: {exc}") from exc

    def _set(self, value: Any, *names: str) -> None:
        """Write value to each named device attribute in turn; BackendError names the one refused."""
        for name in names:
            try:
                setattr(self._device, name, value)
            except Exception as exc:  # pyadi-iio raises Exception, ValueError and OSError
                raise BackendError(f"Pluto at {self._uri} refused {name}={value!r}: {exc}") from exc

    def _get(self, name: str) -> Any:
        """Read a device attribute; BackendError naming it when the device fails (a disconnect: BrokenPipeError)."""
        try:
            return getattr(self._device, name)
        except Exception as exc:  # libiio reports a lost device as OSError, pyadi-iio as Exception
            raise BackendError(f"Pluto at {self._uri}: reading {name} failed: {exc}") from exc

    def _call(self, name: str, *args: Any) -> Any:
        """Call a device method (rx, tx, *_destroy_buffer); BackendError naming it when the device fails."""
        try:
            return getattr(self._device, name)(*args)
        except Exception as exc:
            raise BackendError(f"Pluto at {self._uri}: {name}() failed: {exc}") from exc

    # ----- settings -----
    @property
    def device(self) -> Any:
        """The adi.Pluto (or the emulated device) underneath."""
        return self._device

    @property
    def uri(self) -> str:
        """libiio URI of the device ("emulated:" for the emulator)."""
        return self._uri

    @property
    def is_emulated(self) -> bool:
        """True when the device is an emulation (an EmulatedPluto)."""
        return self._emulated

    @property
    def channel(self) -> StreamChannel | None:
        """The emulated channel model between TX and RX (its SNR can be set); None on a real device."""
        return self._device.channel if self._emulated else None

    @property
    def streaming(self) -> bool:
        """True when a thread reads RX continuously (a real device, or stream_rx=True)."""
        return self._streaming

    @property
    def rx_overflow_samples(self) -> int:
        """Streaming: samples dropped because rx() fell more than rx_backlog_s behind the device."""
        return self._overflow_before + (self._stream.dropped_samples if self._stream else 0)

    @property
    def pending(self) -> int:
        """Samples rx() must still return to cover everything transmitted so far.

        Streaming: the unread backlog, the rest of the last TX burst's airtime and the pipeline
        latency (one RX buffer + LATENCY_S). Emulated, not streaming: the device's queued stream.
        """
        have = len(self._leftover)
        if self._stream is None:
            return have + (int(self._get("pending")) if self._emulated else 0)
        fs = self._sample_rate_hz
        playing = max(0.0, self._tx_done_at - time.monotonic())
        return have + self._stream.backlog + int(playing * fs) + self._rx_buffer_size + int(LATENCY_S * fs)

    @property
    def sample_rate_hz(self) -> float:
        """Baseband sample rate of both paths in samples per second, as the device reported it when set."""
        return self._sample_rate_hz

    @sample_rate_hz.setter
    def sample_rate_hz(self, value: float) -> None:
        self._set(int(value), "sample_rate")
        self._sample_rate_hz = float(self._get("sample_rate"))

    @property
    def lo_hz(self) -> float:
        """Carrier frequency of both paths in Hz (reads the RX LO)."""
        return float(self._get("rx_lo"))

    @lo_hz.setter
    def lo_hz(self, value: float) -> None:
        self._set(int(value), "rx_lo", "tx_lo")

    @property
    def rf_bandwidth_hz(self) -> float:
        """Analog filter bandwidth of both paths in Hz (reads the RX one)."""
        return float(self._get("rx_rf_bandwidth"))

    @rf_bandwidth_hz.setter
    def rf_bandwidth_hz(self, value: float) -> None:
        self._set(int(value), "rx_rf_bandwidth", "tx_rf_bandwidth")

    @property
    def tx_attenuation_db(self) -> float:
        """TX attenuation in dB (0..89.75, 0.25 dB steps); the device's tx_hardwaregain is its negative."""
        return -float(self._get("tx_hardwaregain_chan0"))

    @tx_attenuation_db.setter
    def tx_attenuation_db(self, value: float) -> None:
        self._set(-float(value), "tx_hardwaregain_chan0")

    @property
    def rx_gain_mode(self) -> str:
        """RX gain control: 'manual', 'slow_attack', 'fast_attack' or 'hybrid'."""
        return str(self._get("gain_control_mode_chan0"))

    @rx_gain_mode.setter
    def rx_gain_mode(self, value: str) -> None:
        self._set(value, "gain_control_mode_chan0")

    @property
    def rx_gain_db(self) -> float:
        """RX gain in dB (the AGC's current gain outside manual mode)."""
        return float(self._get("rx_hardwaregain_chan0"))

    @rx_gain_db.setter
    def rx_gain_db(self, value: float) -> None:
        if self.rx_gain_mode != "manual":
            raise BackendError(f"rx_gain_db is only settable in manual mode, not {self.rx_gain_mode!r}")
        self._set(float(value), "rx_hardwaregain_chan0")

    @property
    def xo_correction_hz(self) -> float:
        """The AD9361's xo_correction in Hz: the 40 MHz reference frequency the driver derives LO and sample clock from.

        pyadi-iio has no property for it: it is the ad9361-phy device attribute (`_get_iio_dev_attr`). Telling the
        driver a higher frequency than the nominal lowers the carrier and the sample clock by the same ppm.
        """
        try:
            return float(self._device._get_iio_dev_attr("xo_correction"))
        except Exception as exc:  # libiio: OSError, a device without the attribute: KeyError
            raise BackendError(f"Pluto at {self._uri}: reading xo_correction failed: {exc!r}") from exc

    @xo_correction_hz.setter
    def xo_correction_hz(self, value: float) -> None:
        try:
            self._device._set_iio_dev_attr("xo_correction", int(round(value)))
        except Exception as exc:
            raise BackendError(f"Pluto at {self._uri} refused xo_correction={int(round(value))}: {exc!r}") from exc

    @property
    def tx_buffer_samples(self) -> int:
        """Samples per TX buffer of a tx_burst (fixed when the backend opens)."""
        return self._tx_buffer_samples

    @property
    def rx_buffer_size(self) -> int:
        """Samples per device RX buffer (as the device reported it when set); setting it recreates the RX buffer."""
        return self._rx_buffer_size

    @rx_buffer_size.setter
    def rx_buffer_size(self, value: int) -> None:
        if int(value) <= 0:
            raise BackendError(f"rx_buffer_size must be positive, got {value}")
        restart = self._stop_stream()
        self._call("rx_destroy_buffer")
        self._set(int(value), "rx_buffer_size")
        self._rx_buffer_size = int(self._get("rx_buffer_size"))
        if restart:
            self._start_stream()

    def _start_stream(self) -> None:
        if self._streaming and self._stream is None:
            backlog = max(int(self._rx_backlog_s * self._sample_rate_hz), self._rx_buffer_size)
            self._stream = RxStream(self._device, backlog, self._uri)

    def _stop_stream(self) -> bool:
        """Stop the RX thread if one runs (its backlog is dropped); True when one ran."""
        stream, self._stream = self._stream, None
        if stream is None:
            return False
        stream.stop()
        self._overflow_before += stream.dropped_samples
        return True

    # ----- samples -----
    def _tx(self, iq: np.ndarray) -> None:
        self._push(iq, True, True)

    def _tx_chunk(self, iq: np.ndarray, first: bool, last: bool) -> None:
        """Fill tx_buffer_samples buffers; push each once more samples follow it, the last zero-padded."""
        size = self._tx_buffer_samples
        if first:
            self._tx_fill, self._tx_first_buffer = 0, True
            if self._tx_staging is None:
                self._tx_staging = np.zeros(size, np.complex64)
        buf, pos = self._tx_staging, 0
        while pos < len(iq):
            if self._tx_fill == size:
                self._push(buf, self._tx_first_buffer, False)
                self._tx_fill, self._tx_first_buffer = 0, False
            take = min(size - self._tx_fill, len(iq) - pos)
            buf[self._tx_fill: self._tx_fill + take] = iq[pos: pos + take]
            self._tx_fill += take
            pos += take
        if last and self._tx_fill:
            buf[self._tx_fill:] = 0
            self._push(buf, self._tx_first_buffer, True)
            self._tx_fill = 0

    def _push(self, iq: np.ndarray, first: bool, last: bool) -> None:
        """One non-cyclic device buffer (re-created when its length changes); an emulated device also learns
        whether it starts or ends a burst."""
        units = np.round(iq.astype(np.complex128) * TX_SCALE)
        if self._tx_length is not None and len(iq) != self._tx_length:
            self._wait_tx_drained()
            self._call("tx_destroy_buffer")
        try:
            if self._emulated:
                self._device.tx_buffer(units, first, last)
            else:
                self._device.tx(units)
        except Exception as exc:
            raise BackendError(f"Pluto at {self._uri} refused a {len(iq)}-sample burst: {exc}") from exc
        self._tx_length = len(iq)
        self._tx_done_at = max(self._tx_done_at, time.monotonic()) + len(iq) / self._sample_rate_hz

    def _wait_tx_drained(self) -> None:
        """On a real device, sleep until pushed samples have left the DAC (destroying aborts DMA)."""
        if not self._emulated:
            remaining = self._tx_done_at - time.monotonic()
            if remaining > 0:
                time.sleep(remaining + TX_DRAIN_MARGIN_S)

    def _rx(self, num_samples: int) -> np.ndarray:
        parts, have = [self._leftover], len(self._leftover)
        while have < num_samples:
            if self._stream is not None:
                chunk = self._stream.take(RX_STALL_S + self._rx_buffer_size / self._sample_rate_hz)
            else:
                try:
                    buf = self._device.rx()
                except Exception as exc:
                    raise BackendError(f"Pluto at {self._uri} failed to receive: {exc}") from exc
                chunk = (np.asarray(buf) / RX_SCALE).astype(np.complex64)
            parts.append(chunk)
            have += len(chunk)
        stream = np.concatenate(parts)
        self._leftover = stream[num_samples:]
        return stream[:num_samples]

    def _close(self) -> None:
        """Release the buffers (and the device); every step is tried, the first failure is raised as BackendError."""
        self._stop_stream()
        self._wait_tx_drained()
        steps = ["tx_destroy_buffer", "rx_destroy_buffer"]
        if getattr(type(self._device), "close", None) is not None:  # adi.Pluto has none (its IIO context goes with it)
            steps.append("close")
        failure = None
        for step in steps:
            try:
                self._call(step)
            except BackendError as exc:
                failure = failure or exc
        if failure is not None:
            raise failure


class CabledPlutoRelay(RadioBackend):
    """The edge's end of the one-device topology: one Pluto, TX cabled to RX, owned by the edge process.

    The host cannot open the same device, so it transmits over the ZeroMQ IQ cable (a ZmqTxBackend);
    a thread here takes each complete burst off the cable (`cable`, a channel-less ZmqRxBackend) and
    plays it with the Pluto's tx(); rx() returns the Pluto's received stream, read continuously. The
    air (cable and attenuator) is the channel (`channel` is None). It is no cable stream (`cable_stream` is None):
    the edge reads it as a real-time radio.
    """

    def __init__(self, pluto: PlutoBackend, cable: Any, poll_s: float = 0.002) -> None:
        self.pluto, self.cable = pluto, cable
        self.bursts_relayed = 0
        self._poll_s = float(poll_s)
        self._error: Exception | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pluto-relay", daemon=True)
        self._thread.start()

    @property
    def sample_rate_hz(self) -> float:
        """Baseband sample rate of the device."""
        return self.pluto.sample_rate_hz

    @property
    def pending(self) -> int:
        """Samples rx() must return to cover what the host sent: bursts still on the cable plus the device's pending."""
        return int(self.cable.pending) + self.pluto.pending

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.cable.poll_cable()
                if self.cable.pending and not self.cable.tx_active:  # a whole burst (it ended with a pause)
                    self.pluto.tx(self.cable.rx(self.cable.pending))
                    self.bursts_relayed += 1
                else:
                    self._stop.wait(self._poll_s)
            except Exception as exc:  # reported by the next rx()
                self._error = exc
                return

    def _tx(self, iq: np.ndarray) -> None:
        self.pluto.tx(iq)

    def _tx_chunk(self, iq: np.ndarray, first: bool, last: bool) -> None:
        self.pluto.tx_chunk(iq, first, last)

    def _rx(self, num_samples: int) -> np.ndarray:
        if self._error is not None:
            raise BackendError(f"relaying the host's bursts to the Pluto failed: {self._error}") from self._error
        return self.pluto.rx(num_samples)

    def _close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=RX_STALL_S)
        self.cable.close()
        self.pluto.close()
