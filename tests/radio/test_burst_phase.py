"""Residual gain after the pilot tracker (radio/burst_phase.py): the decision-directed line per QAM codeword."""

from __future__ import annotations

import numpy as np
import pytest

from radio.burst_phase import refine_qam
from radio.modulation import constellation


def residual(modulation: str, snr_db: float, gain: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(b, n) symbols of `modulation` times a per-symbol gain, plus AWGN; and the symbols themselves."""
    rng = np.random.default_rng(seed)
    x = rng.choice(constellation(modulation).points, gain.shape)
    w = rng.standard_normal(gain.shape) + 1j * rng.standard_normal(gain.shape)
    return (x * gain + np.sqrt(10 ** (-snr_db / 10) / 2) * w).astype(np.complex64), x


@pytest.mark.parametrize("modulation,snr_db,bits,degrees,tolerance", [
    ("qpsk", 6.0, 2, 8.0, 2.5), ("16qam", 13.0, 4, 8.0, 1.5), ("64qam", 19.0, 6, 3.0, 1.0),
    ("256qam", 25.0, 8, 2.0, 0.6)])
def test_gain_line_is_removed(modulation: str, snr_db: float, bits: int, degrees: float, tolerance: float) -> None:
    """Each codeword row keeps a different residual gain (a few per cent, and up to `degrees`, drifting along
    the row: the pilots' estimate after a fading block boundary): the fit brings every row to unit gain within
    3 % and `tolerance` degrees, and the symbols' SNR to within 0.3 dB of the noise's (the residual gain cost
    0.3-0.9 dB). Decision errors near each modulation's waterfall read the amplitude a few per cent
    high (QPSK at 4 dB: 5 %, 16-QAM at 10 dB: 3 %; the amplitude only scales QPSK's LLRs). The capture range
    is that of the decisions: a few degrees at 64/256-QAM, where the tracker's jump restart must come first."""
    n = 1944 // bits
    t = np.linspace(-0.5, 0.5, n)
    rows = np.array([(1.0 + a * 0.04 + 0.03 * t * s) * np.exp(1j * np.deg2rad(degrees * (p + 0.4 * t * s)))
                     for a, p, s in [(1, 0.5, 1), (-1, -0.6, -1), (0.5, 1.0, 0.5), (-0.5, 0.0, 1)]])
    z, x = residual(modulation, snr_db, rows)
    out, gain = refine_qam(z, bits)
    ratio = (gain / rows).mean(axis=1)
    np.testing.assert_allclose(np.abs(ratio), 1.0, atol=0.03)
    assert np.max(np.abs(np.angle(ratio, deg=True))) < tolerance
    before = 10 * np.log10(1 / np.mean(np.abs(z - x) ** 2))
    after = 10 * np.log10(1 / np.mean(np.abs(out - x) ** 2))
    assert after > snr_db - 0.3 and after > before + 0.25


def test_clean_rows_stay_unchanged() -> None:
    z, x = residual("64qam", 60.0, np.ones((3, 324)))
    out, gain = refine_qam(z, 6)
    np.testing.assert_allclose(gain, 1.0, atol=1e-3)
    np.testing.assert_allclose(out, x, atol=5e-3)
