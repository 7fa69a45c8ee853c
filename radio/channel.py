"""A stateful, streaming, seeded channel model: delay, sample clock offset, block fading, CFO, phase noise, AWGN, DC.

Successive `apply` calls continue one stream: the delay line, the resampler, the fading block position,
the CFO phase and the phase-noise random walk all carry over, so splitting an input into chunks gives the
same output as one call (same seed). Operations, in order, on sample n of the stream:

    y[n] = h[n // coherence_samples] * x_delayed(t_n) * exp(j (2 pi cfo n / fs + phi[n])) + w[n] + dc

with w ~ CN(0, noise_variance), phi a Wiener process and dc a constant of magnitude `dc_offset`.
Without a sample clock offset t_n = n; with one, x_delayed is resampled (`radio/resample.py`) at
t_n = sum_{k<n} (1 + eps_k), eps_k = (sco_ppm + sco_drift_ppm_per_s * k / fs) * 1e-6: eps > 0 is a
transmitter clock fast against the receiver's, a tone at f comes out at f (1 + eps), n transmitted samples
give about n / (1 + eps) received ones (so `apply` returns that many, and `input_samples_for` says how many
to feed for a given number out). Two crystals with a relative error e (transmitter minus receiver, ppm)
driving both LO and sample clock give cfo_hz = e * 1e-6 * lo_hz and sco_ppm = e (`radio/oscillator.py`).
`ScheduledChannel` wraps a Channel and steps its SNR at given samples of the stream; `StreamChannel`
is what a backend needs of either.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np

from radio.errors import BackendError, RadioError
from radio.resample import StreamResampler

if TYPE_CHECKING:
    from radio.config import ChannelConfig

ChannelModel = Literal["awgn", "rayleigh", "rician"]

FRAC_DELAY_HALF_TAPS = 16
"""Half length of the windowed-sinc fractional-delay filter; its bulk delay in samples."""
MAX_SCO_PPM = 1.0e4
"""Largest sample clock offset a Channel takes (1 %); the configuration allows +-200 ppm."""
MAX_SCO_DRIFT_PPM_PER_S = 1.0e3
"""Largest clock drift a Channel takes; the configuration allows +-10 ppm/s."""


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
    sco_ppm: sample clock offset eps at the stream start, in ppm (see the module docstring for the sign).
    sco_drift_ppm_per_s: change of the sample clock offset per second of received stream.
        Both 0 skip the resampler: the channel is then exactly the one without these parameters.
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
        sco_ppm: float = 0.0,
        sco_drift_ppm_per_s: float = 0.0,
    ) -> None:
        if model not in ("awgn", "rayleigh", "rician"):
            raise RadioError(f"unknown channel model {model!r}; use awgn, rayleigh or rician")
        if sample_rate_hz <= 0 or samples_per_symbol < 1 or reference_power <= 0:
            raise RadioError("sample_rate_hz, samples_per_symbol and reference_power must be positive")
        if coherence_samples < 1 or timing_offset_samples < 0 or phase_noise_linewidth_hz < 0 or dc_offset < 0:
            raise RadioError("coherence_samples >= 1; timing offset, linewidth and dc_offset >= 0")
        if not (abs(sco_ppm) <= MAX_SCO_PPM and abs(sco_drift_ppm_per_s) <= MAX_SCO_DRIFT_PPM_PER_S):
            raise RadioError(f"sco_ppm must be within +-{MAX_SCO_PPM:g} and sco_drift_ppm_per_s within "
                             f"+-{MAX_SCO_DRIFT_PPM_PER_S:g}, got {sco_ppm} and {sco_drift_ppm_per_s}")
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
        self.sco_ppm = float(sco_ppm)
        self.sco_drift_ppm_per_s = float(sco_drift_ppm_per_s)
        self._resampler: StreamResampler | None = None
        if self.sco_ppm != 0.0 or self.sco_drift_ppm_per_s != 0.0:
            self._resampler = StreamResampler(self.sco_ppm, self.sco_drift_ppm_per_s, self.sample_rate_hz)
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
            sco_ppm=cfg.sco_ppm,
            sco_drift_ppm_per_s=cfg.sco_drift_ppm_per_s,
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

    @property
    def sco_ppm_now(self) -> float:
        """Sample clock offset (ppm) at the next received sample (sco_ppm plus the drift so far)."""
        return 0.0 if self._resampler is None else self._resampler.ppm_at(self._resampler.samples_out)

    def shift_clock(self, ppm: float, lo_hz: float) -> None:
        """Add ppm to the relative crystal error from the next sample on: CFO by ppm 1e-6 lo_hz, SCO by ppm."""
        self.cfo_hz += ppm * 1e-6 * lo_hz
        self.set_sco_ppm(self.sco_ppm_now + ppm)

    def set_sco_ppm(self, value: float) -> None:
        """Change the sample clock offset (ppm) from the next received sample on; the time pointer stays continuous.

        The drift keeps running. Turning a clock offset on mid-stream in a channel built without one starts the
        resampler there, with zeros as its history: the first RESAMPLER_TAPS / 2 samples after it are glitched.
        """
        if not abs(value) <= MAX_SCO_PPM:
            raise RadioError(f"sco_ppm must be within +-{MAX_SCO_PPM:g}, got {value}")
        if self._resampler is None:
            if value == 0.0:
                return
            self._resampler = StreamResampler(0.0, 0.0, self.sample_rate_hz)
        self._resampler.set_rate(float(value))

    def input_samples_for(self, num_samples: int) -> int:
        """Transmitted samples to feed `apply` so that it returns exactly the next num_samples received samples.

        num_samples without a clock offset; with one about num_samples (1 + eps), less what the resampler holds.
        """
        if self._resampler is None:
            return max(int(num_samples), 0)
        return self._resampler.input_samples_for(int(num_samples))

    def output_samples_for(self, input_samples: int) -> int:
        """Received samples that `input_samples` more transmitted ones complete (inverse of `input_samples_for`):
        the input itself without a clock offset; with one about input_samples / (1 + eps), plus what is held."""
        n = max(int(input_samples), 0)
        if self._resampler is None:
            return n
        m = max(int(n / (1.0 + 1e-6 * self.sco_ppm_now)) - 2, 0)
        while m > 0 and self.input_samples_for(m) > n:
            m -= 1
        while self.input_samples_for(m + 1) <= n:
            m += 1
        return m

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

    def apply(self, iq: np.ndarray, num_samples: int | None = None) -> np.ndarray:
        """(n,) complex transmitted samples -> (m,) complex64 received samples (the stream continues).

        m = n without a clock offset. With one, m is every received sample the input so far determines
        (about n / (1 + eps) over a long stream), or exactly num_samples when given: feed
        `input_samples_for(num_samples)` samples for that (a shortfall raises RadioError).
        """
        x = np.asarray(iq)
        if x.ndim != 1:
            raise RadioError(f"channel input must be 1-D, got shape {x.shape}")
        if self._resampler is None:
            if num_samples is not None and num_samples != len(x):
                raise RadioError(f"channel without a clock offset returns as many samples as it is fed: "
                                 f"{num_samples} asked, {len(x)} given")
            if len(x) == 0:
                return np.zeros(0, np.complex64)
            y = self._delay(x.astype(np.complex128))
        else:
            delayed = self._delay(x.astype(np.complex128)) if len(x) else np.zeros(0, np.complex128)
            y = self._resampler.process(delayed, num_samples)
            if num_samples is not None and len(y) != num_samples:
                raise RadioError(f"channel fed too few samples for {num_samples} out ({len(y)} came); "
                                 "feed input_samples_for(num_samples)")
            if len(y) == 0:
                return np.zeros(0, np.complex64)
        n = len(y)
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

    def input_samples_for(self, num_samples: int) -> int:
        """Transmitted samples to feed for exactly the next num_samples received ones (num_samples without SCO)."""

    def output_samples_for(self, input_samples: int) -> int:
        """Received samples that input_samples more transmitted ones complete (input_samples without SCO)."""

    def shift_clock(self, ppm: float, lo_hz: float) -> None:
        """Add ppm to the relative crystal error (transmitter minus receiver) from the next sample on."""

    def apply(self, iq: np.ndarray, num_samples: int | None = None) -> np.ndarray:
        """(n,) complex transmitted samples -> complex64 received samples (the stream continues); see Channel.apply."""


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

    def input_samples_for(self, num_samples: int) -> int:
        """Transmitted samples to feed for exactly the next num_samples received ones."""
        return self.channel.input_samples_for(num_samples)

    def output_samples_for(self, input_samples: int) -> int:
        """Received samples that input_samples more transmitted ones complete."""
        return self.channel.output_samples_for(input_samples)

    def shift_clock(self, ppm: float, lo_hz: float) -> None:
        """Add ppm to the wrapped channel's relative crystal error (see Channel.shift_clock)."""
        self.channel.shift_clock(ppm, lo_hz)

    def apply(self, iq: np.ndarray, num_samples: int | None = None) -> np.ndarray:
        """Like Channel.apply, switching SNR exactly at the scheduled indices of the received stream."""
        x = np.asarray(iq)
        parts, i, produced = [], 0, 0
        while True:
            while self._next < len(self.steps) and self.steps[self._next][0] <= self._n:
                self.channel.set_snr_db(self.steps[self._next][1])
                self._next += 1
            left = None if num_samples is None else num_samples - produced
            if left == 0:
                if i < len(x):  # input beyond the asked count: the resampler holds it
                    self.channel.apply(x[i:], 0)
                break
            bound = self.steps[self._next][0] - self._n if self._next < len(self.steps) else None
            k = bound if left is None else (left if bound is None else min(bound, left))
            need = None if k is None else self.channel.input_samples_for(k)
            last = need is None or need > len(x) - i
            if last and left is not None:
                raise RadioError(f"channel fed too few samples for {num_samples} out; "
                                 "feed input_samples_for(num_samples)")
            # up to the next step (or the asked count) when the input reaches it, else all of the input
            y = self.channel.apply(x[i:], None) if last else self.channel.apply(x[i:i + need], k)
            i = len(x) if last else i + need
            if len(y):
                parts.append(y)
            self._n += len(y)
            produced += len(y)
            if last:
                break
        if not parts:
            return np.zeros(0, np.complex64)
        return np.concatenate(parts) if len(parts) > 1 else parts[0]
