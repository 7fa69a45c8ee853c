"""A stateful, streaming, seeded channel model: delay, block fading, CFO, phase noise, AWGN, DC offset.

Successive `apply` calls continue one stream: the delay line, the fading block position, the CFO
phase and the phase-noise random walk all carry over, so splitting an input into chunks gives the
same output as one call (same seed). Operations, in order, on sample n of the stream:

    y[n] = h[n // coherence_samples] * x_delayed[n] * exp(j (2 pi cfo n / fs + phi[n])) + w[n] + dc

with w ~ CN(0, noise_variance), phi a Wiener process and dc a constant of magnitude `dc_offset`.
`ScheduledChannel` wraps a Channel and steps its SNR at given samples of the stream; `StreamChannel`
is what a backend needs of either.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np

from radio.errors import BackendError, RadioError

if TYPE_CHECKING:
    from radio.config import ChannelConfig

ChannelModel = Literal["awgn", "rayleigh", "rician"]

FRAC_DELAY_HALF_TAPS = 16
"""Half length of the windowed-sinc fractional-delay filter; its bulk delay in samples."""


def fractional_delay_taps(frac: float, half_taps: int = FRAC_DELAY_HALF_TAPS) -> np.ndarray:
    """(2 * half_taps + 2,) float64 Kaiser-windowed sinc delaying by half_taps + frac samples (DC gain 1)."""
    t = np.arange(2 * half_taps + 2) - half_taps - frac
    span = half_taps + 1.0
    window = np.i0(8.0 * np.sqrt(np.clip(1.0 - (t / span) ** 2, 0.0, None))) / np.i0(8.0)
    taps = np.sinc(t) * window
    return taps / taps.sum()


class Channel:
    """Streaming channel from transmitted to received complex baseband samples.

    snr_db is the average in-band Es/N0: the noise variance per complex sample is
    ``reference_power * samples_per_symbol / 10**(snr_db / 10)``, where reference_power is the
    nominal mean power of a transmitted burst. Fading has E|h|^2 = 1, so snr_db is the average SNR.

    Parameters
    ----------
    model: "awgn" | "rayleigh" | "rician" (flat block fading, new independent h every block).
    snr_db: average Es/N0 in dB.
    sample_rate_hz: sample rate, for CFO and phase noise.
    samples_per_symbol: oversampling of the transmitted pulse (Es = P * sps).
    reference_power: nominal mean power of a transmitted burst (full scale |x| <= 1).
    rician_k_db: Rician K factor (LOS to scattered power) in dB.
    coherence_samples: block-fading length in samples.
    cfo_hz: carrier frequency offset.
    timing_offset_samples: delay of the stream; the integer part is leading noise-only samples,
        a fractional part is a windowed-sinc FIR (see `delay_samples`).
    phase_noise_linewidth_hz: Wiener phase noise, increment variance 2 pi linewidth / fs per sample.
    dc_offset: magnitude of a constant complex value added to every sample (seeded phase).
    seed: seed of all random numbers (noise, fading, phase noise, LOS and DC phases).
    """

    def __init__(
        self,
        model: ChannelModel,
        snr_db: float,
        sample_rate_hz: float,
        samples_per_symbol: int,
        reference_power: float,
        rician_k_db: float = 6.0,
        coherence_samples: int = 20000,
        cfo_hz: float = 0.0,
        timing_offset_samples: float = 0.0,
        phase_noise_linewidth_hz: float = 0.0,
        dc_offset: float = 0.0,
        seed: int = 1,
    ) -> None:
        if model not in ("awgn", "rayleigh", "rician"):
            raise RadioError(f"unknown channel model {model!r}; use awgn, rayleigh or rician")
        if sample_rate_hz <= 0 or samples_per_symbol < 1 or reference_power <= 0:
            raise RadioError("sample_rate_hz, samples_per_symbol and reference_power must be positive")
        if coherence_samples < 1 or timing_offset_samples < 0 or phase_noise_linewidth_hz < 0 or dc_offset < 0:
            raise RadioError("coherence_samples >= 1; timing offset, linewidth and dc_offset >= 0")
        self.model = model
        self.sample_rate_hz = float(sample_rate_hz)
        self.samples_per_symbol = int(samples_per_symbol)
        self.reference_power = float(reference_power)
        self.rician_k_db = float(rician_k_db)
        self.coherence_samples = int(coherence_samples)
        self.cfo_hz = float(cfo_hz)
        self.timing_offset_samples = float(timing_offset_samples)
        self.phase_noise_linewidth_hz = float(phase_noise_linewidth_hz)
        self.seed = int(seed)
        self.set_snr_db(snr_db)

        noise_ss, fading_ss, phase_ss, const_ss = np.random.SeedSequence(self.seed).spawn(4)
        self._noise_rng = np.random.default_rng(noise_ss)
        self._fading_rng = np.random.default_rng(fading_ss)
        self._phase_rng = np.random.default_rng(phase_ss)
        const_rng = np.random.default_rng(const_ss)
        self._los = np.exp(2j * np.pi * const_rng.random())
        self.dc_offset = complex(dc_offset * np.exp(2j * np.pi * const_rng.random()))

        # delay line: integer part by history, fractional part by an FIR
        whole, frac = divmod(self.timing_offset_samples, 1.0)
        if frac < 1e-9:
            self._taps = np.ones(1)
            self._delay_int = int(round(self.timing_offset_samples))
        else:
            self._taps = fractional_delay_taps(frac)
            self._delay_int = max(int(whole) - FRAC_DELAY_HALF_TAPS, 0)
        self._history = np.zeros(self._delay_int + len(self._taps) - 1, np.complex128)

        self._n = 0  # samples produced so far (stream time)
        self._block = -1  # fading block of the cached gain
        self._h = 1.0 + 0.0j
        self._cfo_phase = 0.0  # radians at stream time self._n
        self._pn_phase = 0.0  # Wiener phase at stream time self._n - 1

    @classmethod
    def from_config(
        cls, cfg: ChannelConfig, sample_rate_hz: float, samples_per_symbol: int, reference_power: float
    ) -> Channel:
        """Build from the `channel:` section of testbed.yaml plus the radio's plain values."""
        return cls(
            model=cfg.model,
            snr_db=cfg.snr_db,
            sample_rate_hz=sample_rate_hz,
            samples_per_symbol=samples_per_symbol,
            reference_power=reference_power,
            rician_k_db=cfg.rician_k_db,
            coherence_samples=cfg.coherence_samples,
            cfo_hz=cfg.cfo_hz,
            timing_offset_samples=cfg.timing_offset_samples,
            phase_noise_linewidth_hz=cfg.phase_noise_linewidth_hz,
            dc_offset=cfg.dc_offset,
            seed=cfg.seed,
        )

    @property
    def snr_db(self) -> float:
        """Average in-band Es/N0 in dB that the next samples get."""
        return self._snr_db

    def set_snr_db(self, value: float) -> None:
        """Change the SNR from the next `apply` call on (for SNR schedules)."""
        self._snr_db = float(value)

    @property
    def noise_variance(self) -> float:
        """Noise variance per complex sample: reference_power * sps / 10**(snr_db / 10)."""
        return self.reference_power * self.samples_per_symbol / 10.0 ** (self._snr_db / 10.0)

    @property
    def delay_samples(self) -> float:
        """Total delay the channel applies to the stream, in samples.

        Equals timing_offset_samples, except that a fractional offset below the FIR's bulk delay
        (FRAC_DELAY_HALF_TAPS) becomes FRAC_DELAY_HALF_TAPS + the fractional part: a causal
        streaming filter cannot delay by less.
        """
        if len(self._taps) == 1:
            return float(self._delay_int)
        return self._delay_int + FRAC_DELAY_HALF_TAPS + self.timing_offset_samples % 1.0

    @property
    def samples_processed(self) -> int:
        """Stream time: samples output so far."""
        return self._n

    def _delay(self, x: np.ndarray) -> np.ndarray:
        ext = np.concatenate([self._history, x])
        keep = len(self._history)
        self._history = ext[len(ext) - keep:] if keep else self._history
        if len(self._taps) == 1:
            return ext[: len(x)]
        src = ext[: len(ext) - self._delay_int]
        return np.convolve(src, self._taps, mode="valid")

    def _fading(self, n: int) -> np.ndarray | complex:
        if self.model == "awgn":
            return 1.0
        c = self.coherence_samples
        first, last = self._n // c, (self._n + n - 1) // c
        new = last - max(self._block, first - 1)
        gains = np.empty(last - first + 1, np.complex128)
        reuse = self._block >= first
        if reuse:
            gains[0] = self._h
        if new > 0:
            gains[int(reuse):] = self._draw_gains(new)
        self._block, self._h = last, gains[-1]
        index = (self._n + np.arange(n)) // c - first
        return gains[index]

    def _draw_gains(self, count: int) -> np.ndarray:
        scatter = (self._fading_rng.standard_normal((count, 2)) @ np.array([1.0, 1j])) / np.sqrt(2.0)
        if self.model == "rayleigh":
            return scatter
        k = 10.0 ** (self.rician_k_db / 10.0)
        return np.sqrt(k / (k + 1.0)) * self._los + np.sqrt(1.0 / (k + 1.0)) * scatter

    def _rotation(self, n: int) -> np.ndarray | None:
        phase = None
        if self.cfo_hz != 0.0:
            step = 2.0 * np.pi * self.cfo_hz / self.sample_rate_hz
            phase = self._cfo_phase + step * np.arange(n)
            self._cfo_phase = float(np.mod(self._cfo_phase + step * n, 2.0 * np.pi))
        if self.phase_noise_linewidth_hz > 0.0:
            sigma = np.sqrt(2.0 * np.pi * self.phase_noise_linewidth_hz / self.sample_rate_hz)
            walk = self._pn_phase + np.cumsum(sigma * self._phase_rng.standard_normal(n))
            self._pn_phase = float(walk[-1])
            phase = walk if phase is None else phase + walk
        return None if phase is None else np.exp(1j * phase)

    def apply(self, iq: np.ndarray) -> np.ndarray:
        """(n,) complex transmitted samples -> (n,) complex64 received samples (stream continues)."""
        x = np.asarray(iq)
        if x.ndim != 1:
            raise RadioError(f"channel input must be 1-D, got shape {x.shape}")
        n = len(x)
        if n == 0:
            return np.zeros(0, np.complex64)
        y = self._delay(x.astype(np.complex128))
        y = y * self._fading(n)
        rotation = self._rotation(n)
        if rotation is not None:
            y = y * rotation
        draw = self._noise_rng.standard_normal((n, 2))
        noise = draw[:, 0] + 1j * draw[:, 1]  # = draw @ [1, 1j] exactly, without a (threaded) BLAS call
        y = y + np.sqrt(self.noise_variance / 2.0) * noise + self.dc_offset
        self._n += n
        return y.astype(np.complex64)


class StreamChannel(Protocol):
    """What a backend needs of a channel model: the received stream through it, and its SNR to read and set."""

    @property
    def sample_rate_hz(self) -> float:
        """Sample rate of the stream."""

    @property
    def reference_power(self) -> float:
        """Nominal burst power the SNR refers to."""

    @property
    def snr_db(self) -> float:
        """SNR the next samples get."""

    def set_snr_db(self, value: float) -> None:
        """Change the SNR from the next samples on."""

    def apply(self, iq: np.ndarray) -> np.ndarray:
        """(n,) complex transmitted samples -> (n,) complex64 received samples (the stream continues)."""


class ScheduledChannel:
    """A Channel whose SNR steps to given values at given sample indices of its output stream.

    steps: (at_sample, snr_db) pairs, at_sample strictly increasing; each step is applied once when the
    stream reaches it (a manual `set_snr_db` in between holds until the next step). Before the first
    step the wrapped channel keeps its own SNR.
    """

    def __init__(self, channel: Channel, steps: Sequence[tuple[int, float]]) -> None:
        ats = [int(a) for a, _ in steps]
        if any(a < 0 for a in ats) or any(b <= a for a, b in zip(ats, ats[1:])):
            raise BackendError(f"SNR schedule sample indices must be >= 0 and strictly increasing, got {ats}")
        self.channel = channel
        self.steps = [(int(a), float(s)) for a, s in steps]
        self._next = 0  # index of the first step not applied yet
        self._n = 0

    @classmethod
    def from_seconds(cls, channel: Channel, steps_s: Sequence[tuple[float, float]]) -> ScheduledChannel:
        """Steps given as (at_s, snr_db); at_s * sample_rate_hz, rounded, is the sample index."""
        return cls(channel, [(round(at * channel.sample_rate_hz), snr) for at, snr in steps_s])

    @property
    def sample_rate_hz(self) -> float:
        """Sample rate of the wrapped channel."""
        return self.channel.sample_rate_hz

    @property
    def reference_power(self) -> float:
        """Nominal burst power the SNR refers to."""
        return self.channel.reference_power

    @property
    def snr_db(self) -> float:
        """SNR the next samples get."""
        return self.channel.snr_db

    def set_snr_db(self, value: float) -> None:
        """Change the SNR now (until the next scheduled step)."""
        self.channel.set_snr_db(value)

    @property
    def noise_variance(self) -> float:
        """Noise variance per complex sample at the current SNR."""
        return self.channel.noise_variance

    @property
    def samples_processed(self) -> int:
        """Stream time: samples output so far."""
        return self._n

    def apply(self, iq: np.ndarray) -> np.ndarray:
        """(n,) complex -> (n,) complex64, switching SNR exactly at the scheduled sample indices."""
        x = np.asarray(iq)
        parts, i = [], 0
        while i < len(x):
            now = self._n + i
            while self._next < len(self.steps) and self.steps[self._next][0] <= now:
                self.channel.set_snr_db(self.steps[self._next][1])
                self._next += 1
            end = len(x)
            if self._next < len(self.steps):
                end = min(end, self.steps[self._next][0] - self._n)
            parts.append(self.channel.apply(x[i:end]))
            i = end
        self._n += len(x)
        if not parts:
            return np.zeros(0, np.complex64)
        return np.concatenate(parts) if len(parts) > 1 else parts[0]
