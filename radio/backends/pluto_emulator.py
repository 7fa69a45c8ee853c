"""An in-process stand-in for pyadi-iio's `adi.Pluto`: same properties, same buffer rules, a Channel between TX and RX.

It copies pyadi-iio 0.0.21's sample scaling, buffer and attribute rules, emulates the stock AD9363 ranges and
settled AGC, runs in stream time or on the wall clock (`realtime=True`), and crosses processes over the ZeroMQ
IQ cable. Which behaviours are the device's and which are emulation choices: docs/radio_backends.md.
"""

from __future__ import annotations

import errno
import math
import os
import threading
import time
from dataclasses import fields, replace
from types import TracebackType
from typing import Any

import numpy as np

from radio.ad9361 import (LO_RANGE_HZ, RX_RF_BANDWIDTH_RANGE_HZ, SAMPLE_RATE_RANGE_HZ, TX_ATTENUATION_RANGE_DB,
                          TX_RF_BANDWIDTH_RANGE_HZ, rx_gain_range_db)
from radio.backends.base import RadioBackend
from radio.backends.pluto import PlutoBackend, PlutoSettings
from radio.backends.sim import SampleQueue, idle_start
from radio.channel import StreamChannel
from radio.errors import BackendError
from radio.oscillator import XO_NOMINAL_HZ, xo_ppm_shift
from radio.resample import StreamResampler

TX_HARDWAREGAIN_RANGE_DB = (-TX_ATTENUATION_RANGE_DB[1], -TX_ATTENUATION_RANGE_DB[0])
GAIN_CONTROL_MODES = ("manual", "slow_attack", "fast_attack", "hybrid")
DAC_FULL_SCALE = 2**15
ADC_FULL_SCALE = 2**11
CHANNEL_UNIT = 2**14
AGC_TARGET_DBFS = -12.0
AIR_UNIT = DAC_FULL_SCALE * math.sqrt(2.0)
"""Device units of |x| = 1 on the emulated air (so any int16 I/Q pair fits the cable's full scale)."""
KERNEL_BUFFERS = 4
"""RX buffers the emulated kernel holds (libiio's default) before a slow reader loses samples (realtime)."""
EMULATED_URI = "emulated:"
"""The URI an emulated device shows."""
XO_CORRECTION_LIMIT_PPM = 1000.0
"""Emulation choice: an xo_correction further than this from 40 MHz is refused (EINVAL)."""


def _einval() -> OSError:
    """The error libiio raises when the kernel driver refuses an attribute write."""
    return OSError(errno.EINVAL, os.strerror(errno.EINVAL))


def _number(value: float) -> int | float:
    """Read-back like pyadi-iio's get_numbers: int when integral, else float."""
    return int(value) if float(value).is_integer() else float(value)


def _to_int16(values: np.ndarray) -> np.ndarray:
    """numpy's float -> int16 cast as it behaves on x86: truncate toward zero, wrap modulo 2**16."""
    return np.trunc(np.nan_to_num(values)).astype(np.int64).astype(np.int16)


class EmulatedPluto:
    """Emulated ADALM-PLUTO with the `adi.Pluto` attribute and buffer API.

    Parameters
    ----------
    uri: kept as `uri` for display, like adi.Pluto(uri).
    channel: the channel model between TX and RX, fed DAC samples / 2**14; None is a noiseless cable.
        It keeps its own sample rate (for CFO and phase noise) whatever `sample_rate` is set to.
    link_gain_db: ADC full scale over DAC full scale at 0 dB TX attenuation and 0 dB RX gain,
        including the cable or air path.
    idle_start_samples: samples before the first transmitted sample can arrive; None draws 0..5000.
    seed: seed of the idle-start draw.
    realtime: run the stream on the wall clock (see the module docstring); not with air_rx.
    air_tx: a RadioBackend (ZmqTxBackend) that carries this device's TX to another process.
    air_rx: a RadioBackend (channel-less ZmqRxBackend) whose stream this device's RX receives.
    crystal_ppm: this device's crystal error in ppm (the pair's relative error is already in the channel);
        `xo_correction` corrects it: a receiving device's channel, or a transmitting device's carrier and DAC clock
        on the air.
    """

    _device_name = "PlutoSDR"
    _rx_channel_names = ["voltage0", "voltage1"]
    _tx_channel_names = ["voltage0", "voltage1"]

    def __init__(
        self,
        uri: str = EMULATED_URI,
        channel: StreamChannel | None = None,
        link_gain_db: float = -30.0,
        idle_start_samples: int | None = None,
        seed: int = 0,
        realtime: bool = False,
        air_tx: RadioBackend | None = None,
        air_rx: RadioBackend | None = None,
        crystal_ppm: float = 0.0,
    ) -> None:
        if realtime and air_rx is not None:
            raise ValueError("realtime and air_rx exclude each other: the air's receiver paces the stream")
        self.uri = uri
        self.air_tx, self.air_rx = air_tx, air_rx
        self.realtime = bool(realtime)
        self.rx_dropped_samples = 0
        self._lock = threading.Lock()  # tx() and a reader thread's rx() share the stream
        self._rx_pos = 0  # stream index of the next sample rx() returns
        self._anchor = (time.monotonic(), 0)  # (wall time, stream index) of the realtime clock
        self.channel = channel
        self.link_gain_db = float(link_gain_db)
        self._rx_lo = 2_400_000_000
        self._tx_lo = 2_450_000_000
        self._sample_rate = 30_720_000
        self._rx_rf_bandwidth = 18_000_000
        self._tx_rf_bandwidth = 18_000_000
        self._gain_control_mode = "slow_attack"
        self._manual_rx_gain = 71.0
        self._tx_hardwaregain = -10.0
        self._rx_buffer_size = 1024
        self._rx_enabled_channels = [0]
        self._tx_enabled_channels = [0]
        self._tx_cyclic_buffer = False
        self._txbuf = False
        self._tx_buffer_size = 0
        self._rxbuf_size: int | None = None
        self._cyclic: np.ndarray | None = None
        self._cyclic_pos = 0
        self._queue = SampleQueue()
        self._queue.push(np.zeros(idle_start(idle_start_samples, np.random.default_rng(seed)), np.complex64))
        self.crystal_ppm = float(crystal_ppm)
        self._xo_correction = XO_NOMINAL_HZ
        self._tx_carrier_phase = 0.0  # radians: the corrected carrier of a device transmitting over the air
        self._tx_clock: StreamResampler | None = None  # the corrected DAC clock of a burst on the air
        self._tx_clock_in = 0  # samples of that burst fed to it

    def __repr__(self) -> str:
        return f'EmulatedPluto(uri="{self.uri}") rx_lo={self.rx_lo} sample_rate={self.sample_rate}'

    # context manager, like adi.context_manager
    def close(self) -> None:
        """Close the (emulated) IIO context: both buffers are destroyed, the air's ends closed."""
        self.tx_destroy_buffer()
        self.rx_destroy_buffer()
        for end in (self.air_tx, self.air_rx):
            if end is not None:
                end.close()

    def __enter__(self) -> EmulatedPluto:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        self.close()
        return False

    # ----- settings -----
    @property
    def rx_lo(self) -> int:
        """rx_lo: Carrier frequency of RX path"""
        return self._rx_lo

    @rx_lo.setter
    def rx_lo(self, value: int) -> None:
        self._rx_lo = self._check_lo(value)

    @property
    def tx_lo(self) -> int:
        """tx_lo: Carrier frequency of TX path"""
        return self._tx_lo

    @tx_lo.setter
    def tx_lo(self, value: int) -> None:
        self._tx_lo = self._check_lo(value)

    @staticmethod
    def _check_lo(value: int) -> int:
        if not isinstance(value, int):
            raise Exception("Value must be an int")
        if not LO_RANGE_HZ[0] <= value <= LO_RANGE_HZ[1]:
            raise _einval()
        return value

    @property
    def sample_rate(self) -> int | float:
        """sample_rate: Sample rate RX and TX paths in samples per second"""
        return _number(self._sample_rate)

    @sample_rate.setter
    def sample_rate(self, rate: float) -> None:
        if rate < SAMPLE_RATE_RANGE_HZ[0]:
            raise ValueError("Error: Does not currently support sample rates below 521e3")
        if rate > SAMPLE_RATE_RANGE_HZ[1]:
            raise _einval()
        self._anchor = (time.monotonic(), self._now_index())
        self._sample_rate = int(rate)

    @property
    def rx_rf_bandwidth(self) -> int:
        """rx_rf_bandwidth: Bandwidth of front-end analog filter of RX path"""
        return self._rx_rf_bandwidth

    @rx_rf_bandwidth.setter
    def rx_rf_bandwidth(self, value: int) -> None:
        self._rx_rf_bandwidth = self._check_bandwidth(value, RX_RF_BANDWIDTH_RANGE_HZ)

    @property
    def tx_rf_bandwidth(self) -> int:
        """tx_rf_bandwidth: Bandwidth of front-end analog filter of TX path"""
        return self._tx_rf_bandwidth

    @tx_rf_bandwidth.setter
    def tx_rf_bandwidth(self, value: int) -> None:
        self._tx_rf_bandwidth = self._check_bandwidth(value, TX_RF_BANDWIDTH_RANGE_HZ)

    @staticmethod
    def _check_bandwidth(value: int, limits: tuple[int, int]) -> int:
        """The driver clamps a bandwidth into its path's range (TX: 40 MHz at most)."""
        if not isinstance(value, int):
            raise Exception("Value must be an int")
        return min(max(value, limits[0]), limits[1])

    @property
    def gain_control_mode_chan0(self) -> str:
        """gain_control_mode_chan0: Mode of receive path AGC. Options are: slow_attack, fast_attack, manual"""
        return self._gain_control_mode

    @gain_control_mode_chan0.setter
    def gain_control_mode_chan0(self, value: str) -> None:
        if value not in GAIN_CONTROL_MODES:
            raise _einval()
        if value == "manual" and self._gain_control_mode != "manual":
            self._manual_rx_gain = float(self._agc_gain())  # the driver keeps the AGC's last gain
        self._gain_control_mode = value

    @property
    def rx_hardwaregain_chan0(self) -> int | float:
        """rx_hardwaregain_chan0: Gain applied to RX path. Only applicable when gain_control_mode is set to 'manual'"""
        return _number(self._rx_gain_db())

    @rx_hardwaregain_chan0.setter
    def rx_hardwaregain_chan0(self, value: float) -> None:
        if self._gain_control_mode != "manual":
            return  # pyadi-iio silently ignores the write outside manual mode
        value = self._check_float(value)
        low, high = rx_gain_range_db(self._rx_lo)
        if not low <= value <= high:
            raise _einval()
        self._manual_rx_gain = float(round(value))

    @property
    def tx_hardwaregain_chan0(self) -> int | float:
        """tx_hardwaregain_chan0: Attenuation applied to TX path"""
        return _number(self._tx_hardwaregain)

    @tx_hardwaregain_chan0.setter
    def tx_hardwaregain_chan0(self, value: float) -> None:
        value = self._check_float(value)
        if not TX_HARDWAREGAIN_RANGE_DB[0] <= value <= TX_HARDWAREGAIN_RANGE_DB[1]:
            raise _einval()
        atten_mdb = int(round(-value * 1000))
        self._tx_hardwaregain = -(atten_mdb // 250) * 0.25

    @staticmethod
    def _check_float(value: float) -> float:
        if isinstance(value, int):
            value = float(value)
        if not isinstance(value, float):
            raise Exception("Value must be a float")
        return value

    @property
    def rx_buffer_size(self) -> int:
        """rx_buffer_size: Size of receive buffer in samples"""
        return self._rx_buffer_size

    @rx_buffer_size.setter
    def rx_buffer_size(self, value: int) -> None:
        self._rx_buffer_size = value

    @property
    def tx_cyclic_buffer(self) -> bool:
        """tx_cyclic_buffer: Enable cyclic buffer for TX"""
        return self._tx_cyclic_buffer

    @tx_cyclic_buffer.setter
    def tx_cyclic_buffer(self, value: bool) -> None:
        if self._txbuf:
            raise Exception(
                "TX buffer already created, buffer must be destroyed then recreated to modify tx_cyclic_buffer"
            )
        self._tx_cyclic_buffer = value

    @property
    def rx_enabled_channels(self) -> list[int]:
        """rx_enabled_channels: List of enabled channels (channel 1 is 0)"""
        return self._rx_enabled_channels

    @rx_enabled_channels.setter
    def rx_enabled_channels(self, value: list[int]) -> None:
        if not value:
            raise Exception("rx_enabled_channels cannot be empty")
        self._rx_enabled_channels = self._check_channels(value, "RX", self._rx_channel_names)

    @property
    def tx_enabled_channels(self) -> list[int]:
        """tx_enabled_channels: List of enabled channels (channel 1 is 0)"""
        return self._tx_enabled_channels

    @tx_enabled_channels.setter
    def tx_enabled_channels(self, value: list[int]) -> None:
        self._tx_enabled_channels = self._check_channels(value, "TX", self._tx_channel_names) if value else value

    @staticmethod
    def _check_channels(value: list, direction: str, names: list[str]) -> list[int]:
        name = f"{direction.lower()}_enabled_channels"
        if not isinstance(value, list):
            raise Exception(f"{name} must be a list")
        if not all(isinstance(x, int) for x in value) and not all(isinstance(x, str) for x in value):
            raise Exception(f"{name} must be a list of integers or list of channel names")
        if isinstance(value[0], str):
            for cname in value:
                if cname not in names:
                    raise Exception(f"Invalid channel name: {cname}. Must be one of {names}")
            return sorted({names.index(c) for c in value})
        if max(value) > len(names) / 2 - 1:
            raise Exception(f"{direction} mapping exceeds available channels")
        return value

    # ----- reference clock (pyadi-iio: the ad9361-phy device attribute, sdr._ctrl.attrs["xo_correction"]) -----
    @property
    def xo_correction(self) -> int:
        """xo_correction: Frequency (Hz) the driver assumes for the 40 MHz reference (the true one cancels the error)"""
        return self._xo_correction

    @xo_correction.setter
    def xo_correction(self, value: int) -> None:
        value = int(value)
        if abs(xo_ppm_shift(value)) > XO_CORRECTION_LIMIT_PPM:
            raise _einval()
        step_ppm = xo_ppm_shift(value) - xo_ppm_shift(self._xo_correction)
        self._xo_correction = value
        if self.channel is not None and self.air_rx is not None:
            # this device receives: a lower own error raises the pair's relative error (transmitter minus receiver)
            self.channel.shift_clock(step_ppm, float(self._rx_lo))
        # a transmitting device's correction is applied to its carrier in tx(); TX and RX of one device cancel

    @property
    def effective_ppm(self) -> float:
        """Emulation only: crystal error left after xo_correction, in ppm."""
        return ((1.0 + self.crystal_ppm * 1e-6) * XO_NOMINAL_HZ / self._xo_correction - 1.0) * 1e6

    def _get_iio_dev_attr(self, attr_name: str) -> int:
        """Read an ad9361-phy device attribute, as pyadi-iio's helper (only xo_correction is emulated)."""
        if attr_name != "xo_correction":
            raise KeyError(attr_name)
        return self.xo_correction

    def _set_iio_dev_attr(self, attr_name: str, value: int) -> None:
        """Write an ad9361-phy device attribute, as pyadi-iio's helper (only xo_correction is emulated)."""
        if attr_name != "xo_correction":
            raise KeyError(attr_name)
        self.xo_correction = int(value)

    # ----- buffers -----
    def tx_destroy_buffer(self) -> None:
        """tx_destroy_buffer: Clears TX buffer"""
        self._txbuf = False
        self._cyclic = None

    @property
    def pending(self) -> int:
        """Emulation only: stream samples queued ahead of RX (idle start, bursts; the air's queue included).

        With a sample clock offset, counted as received samples (n queued ones give about n / (1 + eps)) and
        rounded down to whole RX buffers: rx() returns whole buffers and fills what the queue lacks with
        silence, so reading more than the queue completes would put silence inside a burst."""
        air = self.air_rx.pending if self.air_rx is not None else 0
        queued = self._queue.pending + int(air)
        out = queued if self.channel is None else self.channel.output_samples_for(queued)
        if out == queued:  # no clock offset: as before
            return queued
        size = self._rxbuf_size or self._rx_buffer_size
        return out - out % size if isinstance(size, (int, np.integer)) and size > 0 else out

    def rx_destroy_buffer(self) -> None:
        """rx_destroy_buffer: Clears RX buffer"""
        self._rxbuf_size = None

    def tx(self, data_np: np.ndarray | None = None) -> None:
        """Transmit complex int16-unit samples (12 MSBs reach the DAC); see the module docstring for the rules."""
        self.tx_buffer(data_np, True, True)

    def tx_buffer(self, data_np: np.ndarray | None, first: bool, last: bool) -> None:
        """Emulation only: tx() of one buffer of a burst streamed as consecutive equal-length buffers
        (PlutoBackend.tx_burst); over the air they travel as one burst, paused only after the `last` one."""
        if not self._tx_enabled_channels:
            if data_np is not None and len(data_np):
                raise Exception(
                    "When tx_enabled_channels is None or empty, the input to tx() must be None or empty or not provided"
                )
            return
        if self._txbuf and self._tx_cyclic_buffer:
            raise Exception(
                "TX buffer has been submitted in cyclic mode. To push more data the tx buffer must be destroyed first."
            )
        data = np.asarray(data_np)
        i, q = _to_int16(np.real(data)), _to_int16(np.imag(data))
        if not self._txbuf:
            self._tx_buffer_size = len(i)
            self._txbuf = True
        if len(i) != self._tx_buffer_size:
            raise Exception("Buffer length different than data length. Cannot change buffer length on the fly")
        # the DAC keeps the 12 most significant bits of each 16-bit word
        dac = ((i.astype(np.int32) >> 4) << 4) + 1j * ((q.astype(np.int32) >> 4) << 4)
        samples = (dac / CHANNEL_UNIT).astype(np.complex64)
        if self.air_tx is not None:
            if self._tx_cyclic_buffer:
                raise Exception("emulation: cyclic TX does not cross processes; push bursts non-cyclic")
            gain = 10.0 ** (self._tx_hardwaregain / 20.0) * CHANNEL_UNIT / AIR_UNIT
            air = self._corrected_carrier(self._corrected_clock(samples, first, last))
            self.air_tx.tx_chunk((air * gain).astype(np.complex64), first, last)
        elif self._tx_cyclic_buffer:
            self._cyclic, self._cyclic_pos = samples, 0
        else:
            with self._lock:
                if self.realtime:
                    self._catch_up()
                    late = self._now_index() - (self._rx_pos + self._queue.pending)
                    if late > 0:  # the burst starts now, not right after what was queued
                        self._queue.push(np.zeros(late, np.complex64))
                self._queue.push(samples)

    def _corrected_clock(self, samples: np.ndarray, first: bool, last: bool) -> np.ndarray:
        """Transmitting over the air: the DAC clock moves by -xo shift too (one crystal drives both).

        Each burst is resampled on its own (silence between bursts) and keeps its length: the output of a burst
        is as long as its input, its tail ending a few samples early or late (a burst ends in zeros: its gap and
        the last buffer's padding), so the cable's clock stays the host's.
        """
        shift_ppm = xo_ppm_shift(self._xo_correction)
        if first:
            self._tx_clock = StreamResampler(-shift_ppm, 0.0, float(self._sample_rate)) if shift_ppm else None
            self._tx_clock_in = 0
        clock = self._tx_clock
        if clock is None:
            return samples
        self._tx_clock_in += len(samples)
        y = clock.process(samples, self._tx_clock_in - clock.samples_out)
        if last:
            owed = self._tx_clock_in - clock.samples_out
            y = np.concatenate([y, clock.process(np.zeros(clock.input_samples_for(owed), np.complex64), owed)])
            self._tx_clock = None
        return y.astype(np.complex64)

    def _corrected_carrier(self, samples: np.ndarray) -> np.ndarray:
        """Transmitting over the air: the carrier moves by -xo shift x tx_lo (phase continuous over pushed samples)."""
        shift_ppm = xo_ppm_shift(self._xo_correction)
        if shift_ppm == 0.0:
            return samples
        step = -2.0 * np.pi * shift_ppm * 1e-6 * self._tx_lo / self._sample_rate
        phase = self._tx_carrier_phase + step * np.arange(len(samples))
        self._tx_carrier_phase = float(np.mod(self._tx_carrier_phase + step * len(samples), 2.0 * np.pi))
        return samples * np.exp(1j * phase)

    def rx(self) -> np.ndarray:
        """Receive one buffer: (rx_buffer_size,) complex128 of 12-bit ADC codes, the next samples of the stream."""
        if self._rxbuf_size is None:
            size = self._rx_buffer_size
            if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
                raise TypeError(f"rx_buffer_size must be an int, got {size!r}")
            if size <= 0:
                raise _einval()
            if self.realtime:
                with self._lock:
                    self._catch_up()  # a new RX buffer starts capturing now
            self._rxbuf_size = int(size)
        n = self._rxbuf_size
        if self.realtime:
            with self._lock:
                self._catch_up()
                wait_s = (self._rx_pos + n - self._now_index()) / self._sample_rate
            if wait_s > 0:
                time.sleep(wait_s)
        need = n if self.channel is None else self.channel.input_samples_for(n)  # != n with a clock offset
        with self._lock:
            x = self._next_transmitted(need)
            self._rx_pos += need
        y = self.channel.apply(x, n) if self.channel is not None else x
        gain_db = self._tx_hardwaregain + self.link_gain_db + self._rx_gain_db()
        scale = CHANNEL_UNIT / DAC_FULL_SCALE * 10.0 ** (gain_db / 20.0) * ADC_FULL_SCALE
        codes = np.round(y.astype(np.complex128) * scale)
        low, high = -ADC_FULL_SCALE, ADC_FULL_SCALE - 1
        return np.clip(codes.real, low, high).astype(np.int16) + 1j * np.clip(codes.imag, low, high).astype(np.int16)

    def _next_transmitted(self, n: int) -> np.ndarray:
        """(n,) complex64 transmitted samples (channel units) of the stream: queue, then cyclic buffer, then zeros."""
        x = self._queue.pop(n)
        missing = n - len(x)
        if missing and self.air_rx is not None:
            gain = AIR_UNIT / CHANNEL_UNIT / 10.0 ** (self._tx_hardwaregain / 20.0)
            x = np.concatenate([x, (self.air_rx.rx(missing) * gain).astype(np.complex64)])
        elif missing and self._cyclic is not None and len(self._cyclic):
            idx = (self._cyclic_pos + np.arange(missing)) % len(self._cyclic)
            self._cyclic_pos = int((self._cyclic_pos + missing) % len(self._cyclic))
            x = np.concatenate([x, self._cyclic[idx]])
        elif missing:
            x = np.concatenate([x, np.zeros(missing, np.complex64)])
        return x

    def _now_index(self) -> int:
        """Realtime: stream index the wall clock has reached."""
        t0, n0 = self._anchor
        return n0 + int((time.monotonic() - t0) * self._sample_rate)

    def _catch_up(self) -> None:
        """Realtime: a reader more than KERNEL_BUFFERS buffers behind the clock loses the oldest samples.

        Without an RX buffer nothing is captured: everything up to now is lost.
        """
        keep = 0 if self._rxbuf_size is None else KERNEL_BUFFERS * self._rxbuf_size
        behind = self._now_index() - self._rx_pos - keep
        if behind > 0:
            self._queue.pop(behind)
            self._rx_pos += behind
            if self._rxbuf_size is not None:
                self.rx_dropped_samples += behind

    def _rx_gain_db(self) -> float:
        return self._manual_rx_gain if self._gain_control_mode == "manual" else float(self._agc_gain())

    def _agc_gain(self) -> int:
        """Settled AGC gain: a burst of the channel's reference power lands at about AGC_TARGET_DBFS."""
        reference = self.channel.reference_power if self.channel is not None else 1.0
        at_adc_db = 10.0 * math.log10(reference * (CHANNEL_UNIT / DAC_FULL_SCALE) ** 2)
        gain = AGC_TARGET_DBFS - at_adc_db - self._tx_hardwaregain - self.link_gain_db
        low, high = rx_gain_range_db(self._rx_lo)
        return int(min(max(round(gain), low), high))


def emulated_pluto_backend(
    channel: StreamChannel | None, settings: PlutoSettings | None = None, *, stream_rx: bool | None = None,
    **options: Any,
) -> PlutoBackend:
    """A PlutoBackend on a new EmulatedPluto whose TX and RX are joined by `channel`.

    options: PlutoSettings fields (sample_rate_hz=2e6, ...) overriding `settings`, the rest EmulatedPluto
    parameters (link_gain_db, idle_start_samples, seed, realtime, air_tx, air_rx). With air_tx / air_rx
    (ZeroMQ IQ cable ends) the device transmits to / receives from another process instead; realtime
    runs its stream on the wall clock. stream_rx: see PlutoBackend.
    """
    knob_names = {f.name for f in fields(PlutoSettings)}
    settings = replace(settings or PlutoSettings(), **{k: v for k, v in options.items() if k in knob_names})
    fs = settings.sample_rate_hz
    if channel is not None and abs(channel.sample_rate_hz - fs) > 1e-6 * fs:
        raise BackendError(f"channel sample rate {channel.sample_rate_hz} Hz differs from backend {fs} Hz")
    device = EmulatedPluto(EMULATED_URI, channel, **{k: v for k, v in options.items() if k not in knob_names})
    return PlutoBackend(EMULATED_URI, settings, device=device, emulated=True, stream_rx=stream_rx)
