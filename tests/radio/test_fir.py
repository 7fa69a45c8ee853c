"""radio/fir.py against scipy.signal (the oracle): overlap-add convolution and the windowed-sinc low-pass."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from scipy import signal

from radio.fir import firwin, oaconvolve
from radio.pulse import rrc_taps


@pytest.mark.parametrize("n", [1, 5, 96, 97, 777, 100_003])
@pytest.mark.parametrize("mode", ["full", "same"])
def test_oaconvolve_matches_scipy_on_complex64(n: int, mode: str) -> None:
    rng = np.random.default_rng(n)
    x = (rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(np.complex64)
    h = rrc_taps(4, 0.15)
    want, got = signal.oaconvolve(x, h, mode=mode), oaconvolve(x, h, mode)
    assert got.shape == want.shape and got.dtype == np.complex64
    assert np.max(np.abs(got - want)) < 1e-6 * np.max(np.abs(want))


def test_oaconvolve_of_real_inputs_is_real_and_exact_on_an_impulse() -> None:
    x = np.zeros(5000, np.float32)
    x[1234] = 1.0
    h = np.arange(1.0, 98.0, dtype=np.float32)
    y = oaconvolve(x, h)
    assert y.dtype == np.float32 and y.size == 5000 + 97 - 1
    np.testing.assert_allclose(y[1234:1234 + 97], h, rtol=1e-5)
    assert np.max(np.abs(np.delete(y, np.arange(1234, 1234 + 97)))) < 1e-4
    with pytest.raises(ValueError, match="mode"):
        oaconvolve(x, h, "valid")


@pytest.mark.parametrize("numtaps,cutoff,fs", [(101, 300e3, 4e6), (64, 2e5, 1e6), (7, 0.1, 1.0)])
def test_firwin_matches_scipy(numtaps: int, cutoff: float, fs: float) -> None:
    np.testing.assert_allclose(firwin(numtaps, cutoff, fs), signal.firwin(numtaps, cutoff, fs=fs), atol=1e-15)
    with pytest.raises(ValueError, match="cutoff"):
        firwin(numtaps, fs, fs)


def test_the_radio_does_not_import_scipy_signal() -> None:
    """scipy.signal costs ~54 MB of RSS in every host and edge process (issue 16)."""
    code = ("import sys, radio.link, radio.link_v2, host.sender_v2, edge_node.daemon; "
            "print(sorted(m for m in sys.modules if m.startswith(('scipy.signal', 'scipy.stats'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
