"""Streaming resampler for a sample clock offset: a polyphase windowed-sinc interpolator with a fractional time pointer.

Output sample n of the stream is the input interpolated at input position

    p_n = sum_{k < n} (1 + eps_k),   eps_k = (ppm + drift_ppm_per_s * k / fs) * 1e-6,

so p_0 = 0 and eps_k is the instantaneous clock offset at output sample k: a tone at f cycles/sample comes
out at f (1 + eps). Sign convention: eps > 0 means the transmitter's clock runs fast against the receiver's
(the receiver samples slower), so n input samples become about n / (1 + eps) output samples; for two
crystals that also drive the LOs, the same relative error e (ppm) gives cfo_hz = e * 1e-6 * lo_hz
(docs/radio_backends.md).

The interpolator is a Kaiser-windowed sinc (RESAMPLER_TAPS taps, RESAMPLER_PHASES phases, adjacent phases
interpolated linearly); worst-case error at any fractional position is -85 dB for tones up to 0.25 cycles/
sample and -80 dB up to 0.31. Output n needs input up to floor(p_n) + TAPS / 2, so output lags input by
TAPS / 2 samples; the state (stream counts, anchor of the pointer, the last TAPS input samples) makes the
concatenated output of any chunking equal to the one-shot output exactly.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from radio.errors import RadioError

RESAMPLER_TAPS = 16
"""Interpolator length in input samples (offsets -7..8 around floor(p))."""
RESAMPLER_PHASES = 256
"""Fractional positions tabulated per input sample; between two of them the taps are interpolated linearly."""
RESAMPLER_KAISER_BETA = 9.0
"""Kaiser window shape: -85 dB worst-case error to 0.25 cycles/sample (measured over all fractional positions)."""

_HALF = RESAMPLER_TAPS // 2


def polyphase_table(taps: int = RESAMPLER_TAPS, phases: int = RESAMPLER_PHASES,
                    beta: float = RESAMPLER_KAISER_BETA) -> np.ndarray:
    """(phases + 1, taps) float64: row r interpolates at fraction r / phases; tap j weighs input floor(p) + j + 1 - taps/2.

    Each row is a Kaiser-windowed sinc (cutoff half the sample rate) normalised to DC gain 1.
    """
    half = taps // 2
    offsets = np.arange(taps) - (half - 1)
    t = offsets[None, :] - (np.arange(phases + 1) / phases)[:, None]
    window = np.i0(beta * np.sqrt(np.clip(1.0 - (t / half) ** 2, 0.0, None))) / np.i0(beta)
    rows = np.sinc(t) * window
    return rows / rows.sum(axis=1, keepdims=True)


_TABLE = polyphase_table()


@njit(cache=True)
def _position(n: int, anchor_n: int, anchor_int: int, anchor_frac: float, ppm: float,
              drift_ppm_per_sample: float) -> tuple[int, float]:
    """Input position of output sample n as (floor, fraction); exact integer part, float64 fraction."""
    m = float(n - anchor_n)
    ppm_sum = ppm * m + drift_ppm_per_sample * (float(anchor_n) * m + 0.5 * m * (m - 1.0))
    s = anchor_frac + 1e-6 * ppm_sum
    whole = np.floor(s)
    return anchor_int + (n - anchor_n) + int(whole), s - whole


@njit(cache=True)
def _resample_kernel(buf: np.ndarray, buf_first: int, table: np.ndarray, n_first: int, max_out: int,
                     anchor_n: int, anchor_int: int, anchor_frac: float, ppm: float, drift_ppm_per_sample: float,
                     out: np.ndarray) -> int:
    """Fill out[:count] with outputs n_first.. whose inputs buf (stream index buf_first..) holds; return count."""
    phases = table.shape[0] - 1
    taps = table.shape[1]
    half = taps // 2
    end = buf_first + buf.shape[0]
    count = 0
    while count < max_out:
        base, frac = _position(n_first + count, anchor_n, anchor_int, anchor_frac, ppm, drift_ppm_per_sample)
        if base + half >= end:
            break
        pos = frac * phases
        row = int(pos)
        if row >= phases:
            row = phases - 1
        a = pos - row
        start = base - (half - 1) - buf_first
        acc_re = 0.0
        acc_im = 0.0
        for j in range(taps):
            h = table[row, j] * (1.0 - a) + table[row + 1, j] * a
            v = buf[start + j]
            acc_re += h * v.real
            acc_im += h * v.imag
        out[count] = complex(acc_re, acc_im)
        count += 1
    return count


class StreamResampler:
    """Resamples a stream at p_n = sum_{k<n} (1 + eps_k) (see the module docstring); state carries across calls.

    ppm: clock offset in ppm at output sample 0; drift_ppm_per_s: its change per second of output;
    sample_rate_hz: converts the drift to per sample. Input before the stream's start counts as zeros.
    """

    def __init__(self, ppm: float, drift_ppm_per_s: float = 0.0, sample_rate_hz: float = 1.0e6) -> None:
        if sample_rate_hz <= 0:
            raise RadioError(f"resampler sample_rate_hz must be positive, got {sample_rate_hz}")
        self.sample_rate_hz = float(sample_rate_hz)
        self._ppm = float(ppm)
        self._drift = float(drift_ppm_per_s) / self.sample_rate_hz  # ppm per output sample
        self._anchor = (0, 0, 0.0)  # (output index, floor, fraction) where the current rate starts
        self._out = 0  # outputs produced
        self._in = 0  # inputs received
        self._buf = np.zeros(_HALF - 1, np.complex128)  # inputs from stream index self._buf_first on
        self._buf_first = -(_HALF - 1)

    @property
    def drift_ppm_per_s(self) -> float:
        """Change of the clock offset per second of output."""
        return self._drift * self.sample_rate_hz

    @property
    def samples_in(self) -> int:
        """Input samples received so far."""
        return self._in

    @property
    def samples_out(self) -> int:
        """Output samples produced so far."""
        return self._out

    def ppm_at(self, n: int) -> float:
        """Instantaneous clock offset eps_n in ppm at output sample n (as the current rate runs)."""
        return self._ppm + self._drift * n

    def position(self, n: int) -> float:
        """Input position p_n of output sample n (float; exact parts from `_position`)."""
        base, frac = _position(n, *self._anchor, self._ppm, self._drift)
        return base + frac

    def set_rate(self, ppm: float, drift_ppm_per_s: float | None = None) -> None:
        """Change the offset from the next output sample on; the time pointer stays continuous.

        ppm is the offset at the next output sample; drift keeps its value unless given.
        """
        base, frac = _position(self._out, *self._anchor, self._ppm, self._drift)
        if drift_ppm_per_s is not None:
            self._drift = float(drift_ppm_per_s) / self.sample_rate_hz
        # eps_k = ppm_new + drift (k - out) from here: expressed with the absolute k of `_position`
        self._ppm = float(ppm) - self._drift * self._out
        self._anchor = (self._out, int(base), float(frac))

    def input_samples_for(self, num_out: int) -> int:
        """Input samples still to feed before the next num_out outputs can be produced (0 when already held)."""
        if num_out <= 0:
            return 0
        base, _ = _position(self._out + num_out - 1, *self._anchor, self._ppm, self._drift)
        return max(0, int(base) + _HALF + 1 - self._in)

    def process(self, x: np.ndarray, max_out: int | None = None) -> np.ndarray:
        """Feed (n,) complex input; return (m,) complex128: every output now computable, at most max_out."""
        x = np.asarray(x, np.complex128)
        if x.ndim != 1:
            raise RadioError(f"resampler input must be 1-D, got shape {x.shape}")
        buf = np.concatenate([self._buf, x]) if len(x) else self._buf
        self._in += len(x)
        limit = max_out
        parts = []
        produced = 0
        while limit is None or produced < limit:
            # an upper bound of the outputs the held input allows (|eps| < 0.5 keeps it generous)
            room = 2 * (self._in - int(self.position(self._out + produced))) + 2
            room = max(room, 1) if limit is None else max(min(room, limit - produced), 0)
            if room == 0:
                break
            out = np.empty(room, np.complex128)
            count = _resample_kernel(buf, self._buf_first, _TABLE, self._out + produced, room,
                                     *self._anchor, self._ppm, self._drift, out)
            parts.append(out[:count])
            produced += count
            if count < room:
                break
        self._out += produced
        # keep the inputs the next output needs: from floor(p_next) - (HALF - 1) on
        base, _ = _position(self._out, *self._anchor, self._ppm, self._drift)
        keep_from = min(int(base) - (_HALF - 1), self._in)
        drop = max(0, keep_from - self._buf_first)
        self._buf = buf[drop:].copy()
        self._buf_first += drop
        if not parts:
            return np.zeros(0, np.complex128)
        return np.concatenate(parts) if len(parts) > 1 else parts[0]
