"""SNR estimation from received samples: data-aided on known symbols, and from EVM on decisions."""

from __future__ import annotations

import numpy as np


def data_aided(rx: np.ndarray, tx: np.ndarray) -> tuple[complex, float, float]:
    """One complex gain fitted to known symbols: (gain h, noise variance, SNR in dB).

    rx, tx: (n,) complex. The noise variance is unbiased for the one fitted parameter; the signal power
    |h|^2 assumes unit-energy symbols.
    """
    energy = float(np.sum(np.abs(tx) ** 2))
    h = complex(np.sum(rx * np.conj(tx)) / energy)
    resid = rx - h * tx
    noise = float(np.sum(np.abs(resid) ** 2) / max(rx.size - 1, 1))
    return h, noise, to_db(abs(h) ** 2 / max(noise, 1e-30))


def evm_snr_db(equalized: np.ndarray, nearest: np.ndarray) -> float:
    """SNR implied by the error vector magnitude against hard decisions (biased low at low SNR)."""
    evm2 = float(np.mean(np.abs(equalized - nearest) ** 2)) if equalized.size else float("nan")
    return to_db(1.0 / max(evm2, 1e-30))


def to_db(x: float) -> float:
    return float(10.0 * np.log10(max(x, 1e-30)))
