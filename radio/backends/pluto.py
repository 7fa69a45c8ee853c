"""ADALM-PLUTO backend over pyadi-iio's `adi.Pluto` (a real device by URI) or an injected `EmulatedPluto`."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from radio.backends.base import RadioBackend
from radio.backends.pluto_emulator import EmulatedPluto
from radio.channel import Channel
from radio.errors import BackendError

TX_SCALE = 2**14
"""Device units of full scale |x| = 1 on TX (pyadi-iio convention; 6 dB below the DAC's 2**15)."""
RX_SCALE = 2**11
"""Device units of full scale on RX (12-bit ADC codes)."""
TX_DRAIN_MARGIN_S = 0.05
"""Extra wait, beyond a burst's airtime, before a real device's TX buffer is destroyed."""


class PlutoBackend(RadioBackend):
    """A Pluto as a RadioBackend: full-scale complex64 in and out, settings as properties.

    tx() scales |x| <= 1 to int16 units (x 2**14) and pushes one non-cyclic buffer per burst; a
    burst of a different length than the last destroys the TX buffer first (pyadi-iio cannot
    change the length on the fly), after waiting out the previous burst's airtime on a real device
    (destroying a buffer aborts DMA still in flight). rx(n) concatenates device buffers of
    `rx_buffer_size` and keeps the leftover for the next call, returning ADC codes / 2**11.

    Parameters
    ----------
    uri: libiio URI of a real Pluto, e.g. "ip:192.168.2.1" (always given, never scanned for).
    sample_rate_hz: baseband sample rate of both paths (Pluto: 521e3..61.44e6).
    lo_hz: carrier of both paths (stock AD9363: 325e6..3.8e9).
    tx_attenuation_db: TX attenuation, 0..89.75 dB in 0.25 dB steps (hardwaregain = -attenuation).
    rx_gain_mode: "manual", "slow_attack", "fast_attack" or "hybrid".
    rx_gain_db: RX gain in manual mode.
    rf_bandwidth_hz: analog filter bandwidth of both paths; None uses the sample rate.
    rx_buffer_size: samples per device RX buffer.
    device: an object with the adi.Pluto API (an EmulatedPluto) used instead of opening uri.
    """

    def __init__(
        self,
        uri: str | None,
        sample_rate_hz: float = 1.0e6,
        lo_hz: float = 915.0e6,
        tx_attenuation_db: float = 10.0,
        rx_gain_mode: str = "slow_attack",
        rx_gain_db: float = 30.0,
        rf_bandwidth_hz: float | None = None,
        rx_buffer_size: int = 2**15,
        device: Any = None,
    ) -> None:
        if device is None:
            device = self._open(uri)
        self._device = device
        self._uri = uri or getattr(device, "uri", "")
        self._emulated = isinstance(device, EmulatedPluto)
        self._tx_length: int | None = None
        self._tx_done_at = 0.0
        self._leftover = np.zeros(0, np.complex64)
        self._set("sample_rate", int(sample_rate_hz))
        self.lo_hz = lo_hz
        self.rf_bandwidth_hz = sample_rate_hz if rf_bandwidth_hz is None else rf_bandwidth_hz
        self._set("tx_cyclic_buffer", False)
        self.tx_attenuation_db = tx_attenuation_db
        self.rx_gain_mode = rx_gain_mode
        if rx_gain_mode == "manual":
            self.rx_gain_db = rx_gain_db
        self.rx_buffer_size = rx_buffer_size

    @classmethod
    def emulated(
        cls,
        channel: Channel | None,
        sample_rate_hz: float = 1.0e6,
        lo_hz: float = 915.0e6,
        tx_attenuation_db: float = 10.0,
        rx_gain_mode: str = "slow_attack",
        rx_gain_db: float = 30.0,
        rf_bandwidth_hz: float | None = None,
        rx_buffer_size: int = 2**15,
        link_gain_db: float = -30.0,
        idle_start_samples: int | None = None,
        seed: int = 0,
    ) -> PlutoBackend:
        """A PlutoBackend on an EmulatedPluto whose TX and RX are joined by `channel`."""
        if channel is not None and abs(channel.sample_rate_hz - sample_rate_hz) > 1e-6 * sample_rate_hz:
            raise BackendError(
                f"channel sample rate {channel.sample_rate_hz} Hz differs from backend {sample_rate_hz} Hz"
            )
        device = EmulatedPluto(
            uri="emulated:", channel=channel, link_gain_db=link_gain_db,
            idle_start_samples=idle_start_samples, seed=seed,
        )
        return cls(
            None, sample_rate_hz, lo_hz, tx_attenuation_db, rx_gain_mode, rx_gain_db,
            rf_bandwidth_hz, rx_buffer_size, device=device,
        )

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

    def _set(self, name: str, value: Any) -> None:
        try:
            setattr(self._device, name, value)
        except Exception as exc:  # pyadi-iio raises Exception, ValueError and OSError
            raise BackendError(f"Pluto at {self._uri} refused {name}={value!r}: {exc}") from exc

    # ----- settings -----
    @property
    def device(self) -> Any:
        """The adi.Pluto or EmulatedPluto underneath."""
        return self._device

    @property
    def uri(self) -> str:
        """libiio URI of the device ("emulated:" for the emulator)."""
        return self._uri

    @property
    def is_emulated(self) -> bool:
        """True when the device is an EmulatedPluto."""
        return self._emulated

    @property
    def sample_rate_hz(self) -> float:
        """Baseband sample rate of both paths in samples per second, as the device reports it."""
        return float(self._device.sample_rate)

    @sample_rate_hz.setter
    def sample_rate_hz(self, value: float) -> None:
        self._set("sample_rate", int(value))

    @property
    def lo_hz(self) -> float:
        """Carrier frequency of both paths in Hz (reads the RX LO)."""
        return float(self._device.rx_lo)

    @lo_hz.setter
    def lo_hz(self, value: float) -> None:
        self._set("rx_lo", int(value))
        self._set("tx_lo", int(value))

    @property
    def rf_bandwidth_hz(self) -> float:
        """Analog filter bandwidth of both paths in Hz (reads the RX one)."""
        return float(self._device.rx_rf_bandwidth)

    @rf_bandwidth_hz.setter
    def rf_bandwidth_hz(self, value: float) -> None:
        self._set("rx_rf_bandwidth", int(value))
        self._set("tx_rf_bandwidth", int(value))

    @property
    def tx_attenuation_db(self) -> float:
        """TX attenuation in dB (0..89.75, 0.25 dB steps); the device's tx_hardwaregain is its negative."""
        return -float(self._device.tx_hardwaregain_chan0)

    @tx_attenuation_db.setter
    def tx_attenuation_db(self, value: float) -> None:
        self._set("tx_hardwaregain_chan0", -float(value))

    @property
    def rx_gain_mode(self) -> str:
        """RX gain control: 'manual', 'slow_attack', 'fast_attack' or 'hybrid'."""
        return str(self._device.gain_control_mode_chan0)

    @rx_gain_mode.setter
    def rx_gain_mode(self, value: str) -> None:
        self._set("gain_control_mode_chan0", value)

    @property
    def rx_gain_db(self) -> float:
        """RX gain in dB (the AGC's current gain outside manual mode)."""
        return float(self._device.rx_hardwaregain_chan0)

    @rx_gain_db.setter
    def rx_gain_db(self, value: float) -> None:
        if self.rx_gain_mode != "manual":
            raise BackendError(f"rx_gain_db is only settable in manual mode, not {self.rx_gain_mode!r}")
        self._set("rx_hardwaregain_chan0", float(value))

    @property
    def rx_buffer_size(self) -> int:
        """Samples per device RX buffer; setting it recreates the RX buffer."""
        return int(self._device.rx_buffer_size)

    @rx_buffer_size.setter
    def rx_buffer_size(self, value: int) -> None:
        if int(value) <= 0:
            raise BackendError(f"rx_buffer_size must be positive, got {value}")
        self._device.rx_destroy_buffer()
        self._set("rx_buffer_size", int(value))

    # ----- samples -----
    def _tx(self, iq: np.ndarray) -> None:
        units = np.round(iq.astype(np.complex128) * TX_SCALE)
        if self._tx_length is not None and len(iq) != self._tx_length:
            self._wait_tx_drained()
            self._device.tx_destroy_buffer()
        try:
            self._device.tx(units)
        except Exception as exc:
            raise BackendError(f"Pluto at {self._uri} refused a {len(iq)}-sample burst: {exc}") from exc
        self._tx_length = len(iq)
        self._tx_done_at = max(self._tx_done_at, time.monotonic()) + len(iq) / self.sample_rate_hz

    def _wait_tx_drained(self) -> None:
        """On a real device, sleep until pushed samples have left the DAC (destroying aborts DMA)."""
        if not self._emulated:
            remaining = self._tx_done_at - time.monotonic()
            if remaining > 0:
                time.sleep(remaining + TX_DRAIN_MARGIN_S)

    def _rx(self, num_samples: int) -> np.ndarray:
        parts, have = [self._leftover], len(self._leftover)
        while have < num_samples:
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
        self._wait_tx_drained()
        self._device.tx_destroy_buffer()
        self._device.rx_destroy_buffer()
        close = getattr(self._device, "close", None)
        if close is not None:
            close()
