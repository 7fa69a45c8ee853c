"""Carrier-offset acquisition over +-50 ppm of a 2.4 GHz LO (+-120 kHz): a prior path, a wide path and a
coarse search over the STF's CFO ambiguity.

The STF's period L = 8 symbols (32 samples at 4 sps) makes its lag-L autocorrelation angle measure the CFO
only modulo fs / L (31.25 kHz at 1 MS/s). Three pieces cover the rest:

- *Prior path*: the stream is derotated by the last good CFO (`CfoPrior`), with a phase that follows the
  absolute sample index (so chunking does not matter), then matched-filtered and searched with the
  Schmidl-Cox detector (`sync.detect`) as before. Cost as without acquisition.
- *Wide path*: when no prior is trusted, the raw stream is low-passed to +-((1 + beta) Rs / 2 + max CFO)
  (`wide_taps`, a short FIR) and searched with the same detector, whose metric does not depend on the CFO.
- *Detector*: both paths threshold the Schmidl-Cox metric (`sync.detect`, the default; v1) or, with
  `detector="multilag"` (the v2 burst receiver), the multi-lag STF metric (radio/stf_detect.py), which sums
  every pair of STF periods and finds preambles ~1.5 dB weaker; the thresholds are in the metric's units.
- *Coarse search* (`best_cfo`): the hypotheses f + m fs / L within +-max CFO are tested on the preamble
  alone (one FFT of the segment, one inverse FFT per hypothesis: matched filter and LTF correlation in one
  product); the hypothesis with the largest LTF correlation peak wins.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Literal

import numpy as np
from scipy import fft as sfft
from radio.fir import firwin, oaconvolve

from radio.phasor import phasor
from radio.preamble import STF_PERIOD, ltf_symbols
from radio.pulse import matched_filter, rrc_taps
from radio.stf_detect import detect_multilag, window_samples
from radio.sync import WINDOW_PERIODS, Detection, detect

LO_PPM = 50.0  # crystal tolerance of each end, combined
LO_HZ = 2.4e9
DEFAULT_MAX_CFO_HZ = LO_PPM * LO_HZ / 1e6  # 120 kHz
WIDE_MARGIN_HZ = 10.0e3  # extra passband of the wide path's low-pass beyond signal + max CFO
WIDE_TAPS = 31  # length of the wide path's low-pass FIR
WIDE_THRESHOLD = 0.04  # Schmidl-Cox threshold on the wide path: 2 false alarms per second of noise at 1 MS/s

AcquisitionPath = Literal["prior", "wide"]
Detector = Literal["schmidl-cox", "multilag"]  # radio/sync.py `detect` or radio/stf_detect.py `detect_multilag`


def representable_cfo_hz(sample_rate_hz: float, samples_per_symbol: int, rolloff: float) -> float:
    """Largest |CFO| at which the shifted signal still fits in +-fs/2: fs/2 - (1 + beta) Rs / 2 (>= 0)."""
    symbol_rate_hz = sample_rate_hz / samples_per_symbol
    return max(sample_rate_hz / 2 - (1 + rolloff) * symbol_rate_hz / 2, 0.0)


def default_max_cfo_hz(sample_rate_hz: float, samples_per_symbol: int, rolloff: float) -> float:
    """50 ppm of a 2.4 GHz LO (120 kHz), clamped to what the sample rate represents."""
    return min(DEFAULT_MAX_CFO_HZ, representable_cfo_hz(sample_rate_hz, samples_per_symbol, rolloff))


@dataclass
class CfoPrior:
    """The last good CFO estimate (from a decoded header) and the absolute stream index it is dated at
    (the receiver uses the packet's end).

    Two crystals' ppm offset is stable over minutes: the estimate is trusted for `hold_samples` of stream
    after that index; after that (or before any estimate) the wide path and the coarse search run again.
    """

    hold_samples: int
    hz: float | None = None
    sample: int = 0

    def update(self, cfo_hz: float, sample: int) -> None:
        """Record a good estimate measured at absolute stream index `sample`."""
        self.hz, self.sample = float(cfo_hz), int(sample)

    def trusted(self, sample: int) -> bool:
        """Whether the estimate may be relied on for a packet at absolute stream index `sample`."""
        return self.hz is not None and sample - self.sample <= self.hold_samples


@dataclass(frozen=True)
class AcquisitionSettings:
    """What acquisition needs of the link: rates, roll-off, CFO range and detector thresholds."""

    sample_rate_hz: float
    samples_per_symbol: int
    rolloff: float
    max_cfo_hz: float  # hypotheses beyond this are not tested (clamped to `representable_cfo_hz`)
    detect_threshold: float = 0.1  # Schmidl-Cox threshold after the matched filter (prior path)
    wide_threshold: float = WIDE_THRESHOLD  # the same on the wide path
    detector: Detector = "schmidl-cox"  # the metric both paths threshold (the thresholds are in its units)

    @classmethod
    def make(cls, sample_rate_hz: float, samples_per_symbol: int, rolloff: float,
             max_cfo_hz: float | None = None, detect_threshold: float = 0.1,
             wide_threshold: float = WIDE_THRESHOLD, detector: Detector = "schmidl-cox") -> AcquisitionSettings:
        """Settings with max_cfo_hz defaulted (`default_max_cfo_hz`) or clamped to the representable range."""
        if detector not in ("schmidl-cox", "multilag"):
            raise ValueError(f"detector must be 'schmidl-cox' or 'multilag', got {detector!r}")
        limit = representable_cfo_hz(sample_rate_hz, samples_per_symbol, rolloff)
        cfo = default_max_cfo_hz(sample_rate_hz, samples_per_symbol, rolloff) if max_cfo_hz is None else \
            min(abs(float(max_cfo_hz)), limit)
        return cls(float(sample_rate_hz), int(samples_per_symbol), float(rolloff), cfo,
                   detect_threshold, wide_threshold, detector)

    @property
    def lag(self) -> int:
        """One STF period in samples: the lag of the detector's autocorrelation."""
        return STF_PERIOD * self.samples_per_symbol

    @property
    def metric_span(self) -> int:
        """Samples one value of the detection metric reads: lag + window (Schmidl-Cox) or the STF (multilag)."""
        if self.detector == "multilag":
            return window_samples(self.samples_per_symbol)
        return self.lag + WINDOW_PERIODS * self.lag

    def detect(self, y: np.ndarray, threshold: float) -> list[Detection]:
        """Detections of the configured metric in a (n,) complex stream."""
        if self.detector == "multilag":
            return detect_multilag(y, self.samples_per_symbol, threshold)
        return detect(y, self.samples_per_symbol, threshold)

    @property
    def ambiguity_cycles(self) -> float:
        """CFO ambiguity of the lag-L autocorrelation, cycles per sample (1 / L)."""
        return 1.0 / self.lag


@dataclass(frozen=True)
class Acquired:
    """A detection and the path that found it; its CFO is in the raw stream's frame (cycles per sample)."""

    detection: Detection
    path: AcquisitionPath


def derotate(samples: np.ndarray, cfo_hz: float, sample_rate_hz: float, first_sample: int) -> np.ndarray:
    """(n,) complex64 samples times exp(-j 2 pi cfo (first_sample + k) / fs): the phase follows the
    absolute stream index, so any chunking of a stream derotates it identically."""
    cycles = cfo_hz / sample_rate_hz
    phase0 = -2 * np.pi * ((cycles * first_sample) % 1.0)
    return (samples * phasor(phase0, -2 * np.pi * cycles, samples.size)).astype(np.complex64)


@lru_cache(maxsize=16)
def wide_taps(sample_rate_hz: float, samples_per_symbol: int, rolloff: float,
              max_cfo_hz: float) -> np.ndarray | None:
    """(WIDE_TAPS,) float32 low-pass to +-((1 + beta) Rs / 2 + max CFO + margin); None when that passes
    (nearly) everything, i.e. the raw stream is used."""
    symbol_rate_hz = sample_rate_hz / samples_per_symbol
    cutoff_hz = (1 + rolloff) * symbol_rate_hz / 2 + max_cfo_hz + WIDE_MARGIN_HZ
    if cutoff_hz >= 0.45 * sample_rate_hz:
        return None
    return firwin(WIDE_TAPS, cutoff_hz, fs=sample_rate_hz).astype(np.float32)


def acquire(buf: np.ndarray, first_sample: int, settings: AcquisitionSettings, prior_hz: float,
            wide: bool) -> list[Acquired]:
    """Detections in a raw (n,) complex64 buffer whose first sample has absolute index first_sample.

    Prior path: derotated by prior_hz (0 leaves the buffer as it is), matched-filtered, detected. Wide
    path (when `wide`): low-passed raw buffer, detected with `settings.wide_threshold`. Runs are buffer
    indices, sorted by run start (prior first on ties); every CFO is in the raw frame.
    """
    sps, fs = settings.samples_per_symbol, settings.sample_rate_hz
    shifted = derotate(buf, prior_hz, fs, first_sample) if prior_hz else buf
    y = matched_filter(shifted, sps, settings.rolloff)
    offset = prior_hz / fs
    out = [Acquired(replace(d, cfo_cycles_per_sample=d.cfo_cycles_per_sample + offset), "prior")
           for d in settings.detect(y, settings.detect_threshold)]
    if wide:
        taps = wide_taps(fs, sps, settings.rolloff, settings.max_cfo_hz)
        low = buf if taps is None else oaconvolve(buf, taps, mode="same").astype(np.complex64)
        out += [Acquired(d, "wide") for d in settings.detect(low, settings.wide_threshold)]
    out.sort(key=lambda a: (a.detection.run_start, a.path != "prior"))
    return out


def hypotheses(coarse_cycles: float, settings: AcquisitionSettings) -> np.ndarray:
    """(k,) integers m, ascending, for which coarse + m / L stays within +-(max CFO + a quarter of the
    ambiguity), so m = 0 is among them iff the coarse estimate itself is in range; [0] if the range is
    narrower than the ambiguity and holds none."""
    step = settings.ambiguity_cycles
    limit = settings.max_cfo_hz / settings.sample_rate_hz + step / 4
    m = np.arange(int(np.ceil((-limit - coarse_cycles) / step)), int(np.floor((limit - coarse_cycles) / step)) + 1)
    return m if m.size else np.zeros(1, np.int64)


def in_range(cfo_cycles: float, settings: AcquisitionSettings) -> bool:
    """Whether a CFO (cycles per sample) is one of the hypotheses `best_cfo` would test."""
    return bool(np.any(hypotheses(cfo_cycles, settings) == 0))


def best_cfo(seg: np.ndarray, lo: int, hi: int, coarse_cycles: float,
             settings: AcquisitionSettings) -> float:
    """The coarse CFO hypothesis (cycles per sample) whose LTF correlation peak over starts [lo, hi) of the
    raw (n,) segment is largest; `seg` is derotated here, not by the caller.

    One FFT of the derotated segment; a shift by m / L cycles per sample is a rotation of its bins by
    m nfft / L (nfft a multiple of L), so each hypothesis costs one product and one inverse FFT.
    """
    m = hypotheses(coarse_cycles, settings)
    if m.size == 1:
        return coarse_cycles + m[0] * settings.ambiguity_cycles
    sps, lag = settings.samples_per_symbol, settings.lag
    nfft = sfft.next_fast_len(-(-(seg.size + 2 * len(rrc_taps(sps, settings.rolloff))) // lag)) * lag
    x = sfft.fft(seg * phasor(0.0, -2 * np.pi * coarse_cycles, seg.size), nfft)
    g = _mf_ltf_response(nfft, sps, settings.rolloff)
    span = (ltf_symbols().size - 1) * sps + 1
    lo, hi = max(lo, 0), min(hi, seg.size - span)
    peaks = np.array([np.abs(sfft.ifft(np.roll(x, -k * nfft // lag) * g)[lo:hi]).max(initial=0.0) for k in m])
    return coarse_cycles + float(m[int(np.argmax(peaks))]) * settings.ambiguity_cycles


@lru_cache(maxsize=32)
def _mf_ltf_response(nfft: int, samples_per_symbol: int, rolloff: float) -> np.ndarray:
    """(nfft,) complex128: matched filter ('same' alignment) times the conjugate spectrum of the LTF
    symbol taps: its inverse FFT of a segment's spectrum is the LTF correlation at every start."""
    sps, taps = samples_per_symbol, rrc_taps(samples_per_symbol, rolloff).astype(np.float64)
    half = (taps.size - 1) // 2
    h = np.zeros(nfft)
    h[: half + 1] = taps[half:]
    h[-half:] = taps[:half]
    ref = np.zeros(nfft, np.complex128)
    ref[: (ltf_symbols().size - 1) * sps + 1: sps] = ltf_symbols()
    return sfft.fft(h) * np.conj(sfft.fft(ref))
