"""Acquisition over +-120 kHz (radio/acquisition.py): CFO range, hypotheses, derotation by absolute index,
the wide path's filter and sensitivity, the coarse search resolving the STF's fs/32 ambiguity."""

from __future__ import annotations

import numpy as np
import pytest

from radio import acquisition as acq
from radio.channel import Channel
from radio.frame import Header
from radio.mcs import by_name
from radio.preamble import STF_PERIOD, STF_REPEATS
from radio.pulse import filter_delay, shape
from radio.receiver import Receiver
from radio.sync import WINDOW_PERIODS, detection_metric
from radio.transmitter import TX_POWER, burst, packet_symbols

FS, SPS, ROLLOFF = 1.0e6, 4, 0.25
SETTINGS = acq.AcquisitionSettings.make(FS, SPS, ROLLOFF)
STEP_HZ = FS / (STF_PERIOD * SPS)  # 31.25 kHz: the lag-32 autocorrelation's ambiguity


def packets_stream(n_packets: int, snr_db: float, cfo_hz: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """bpsk-1/4 packets of 60 bytes with random silences between them through an AWGN channel with CFO;
    (stream, absolute index of each packet's first STF sample at the matched filter's output)."""
    mcs, rng = by_name("bpsk-1/4"), np.random.default_rng(seed)
    parts, starts, position = [np.zeros(700, np.complex64)], [], 700
    for seq in range(n_packets):
        payload = rng.integers(0, 256, 60, dtype=np.uint8).tobytes()
        iq = burst([packet_symbols(Header(mcs.index, 1, seq, n_packets, 60), payload, mcs)], SPS, ROLLOFF)
        gap = np.zeros(int(rng.integers(0, 3000)), np.complex64)
        parts += [iq, gap]
        starts.append(position)
        position += iq.size + gap.size
    channel = Channel("awgn", snr_db, FS, SPS, TX_POWER, cfo_hz=cfo_hz, timing_offset_samples=57.3, seed=seed)
    stream = channel.apply(np.concatenate(parts + [np.zeros(2000, np.complex64)]))
    return stream, np.array(starts) + channel.delay_samples + filter_delay(SPS, ROLLOFF)


def test_cfo_range_defaults_to_50_ppm_of_2g4_and_clamps_to_the_sample_rate() -> None:
    assert acq.representable_cfo_hz(1e6, 4, 0.25) == 343_750.0  # fs/2 - 1.25 * 250k / 2
    assert acq.default_max_cfo_hz(1e6, 4, 0.25) == 120_000.0
    assert acq.default_max_cfo_hz(250e3, 2, 0.25) == 46_875.0  # 125k - 1.25 * 125k / 2
    assert acq.AcquisitionSettings.make(1e6, 4, 0.25, max_cfo_hz=1e6).max_cfo_hz == 343_750.0
    assert acq.AcquisitionSettings.make(1e6, 4, 0.25, max_cfo_hz=-20e3).max_cfo_hz == 20_000.0
    assert Receiver(1e6, 4, 0.25, max_cfo_hz=5e5).acquisition.max_cfo_hz == 343_750.0
    assert Receiver(1e6, 4, 0.25).acquisition.max_cfo_hz == 120_000.0


@pytest.mark.parametrize("coarse_hz, expected_hz", [
    (0.0, [-125e3, -93.75e3, -62.5e3, -31.25e3, 0.0, 31.25e3, 62.5e3, 93.75e3, 125e3]),
    (-5e3, [-98.75e3, -67.5e3, -36.25e3, -5e3, 26.25e3, 57.5e3, 88.75e3, 120e3]),
    (130e3, [-120e3, -88.75e3, -57.5e3, -26.25e3, 5e3, 36.25e3, 67.5e3, 98.75e3]),  # a prior 250 kHz off
])
def test_hypotheses_cover_plus_minus_120_khz_and_nothing_beyond(coarse_hz: float, expected_hz: list) -> None:
    m = acq.hypotheses(coarse_hz / FS, SETTINGS)
    np.testing.assert_allclose(coarse_hz + m * STEP_HZ, expected_hz, atol=1e-6)
    assert acq.in_range(coarse_hz / FS, SETTINGS) == (coarse_hz != 130e3)


def test_derotation_follows_the_absolute_index_in_any_chunking() -> None:
    f_hz, first = 46_000.0, 1_234_567_891
    n = np.arange(first, first + 20_000)
    tone = np.exp(2j * np.pi * ((f_hz / FS * n) % 1.0) + 0.3j).astype(np.complex64)
    whole = acq.derotate(tone, f_hz, FS, first)
    np.testing.assert_allclose(whole, np.exp(0.3j), atol=2e-4)  # the tone becomes its constant phase
    cuts = [0, 1, 777, 5000, 12_345, 20_000]
    chunked = np.concatenate([acq.derotate(tone[a:b], f_hz, FS, first + a) for a, b in zip(cuts, cuts[1:])])
    np.testing.assert_allclose(chunked, whole, atol=2e-4)


def test_prior_is_trusted_for_its_hold_after_its_date_only() -> None:
    prior = acq.CfoPrior(hold_samples=1000)
    assert not prior.trusted(0)
    prior.update(46e3, 5000)
    assert prior.hz == 46e3 and prior.trusted(5000) and prior.trusted(6000) and not prior.trusted(6001)


def test_wide_filter_keeps_a_120_khz_shifted_signal_and_cuts_the_noise() -> None:
    taps = acq.wide_taps(FS, SPS, ROLLOFF, 120e3)
    assert taps.size == acq.WIDE_TAPS and abs(float(taps.sum()) - 1.0) < 1e-3
    rng = np.random.default_rng(0)
    x = shape(np.exp(2j * np.pi * rng.random(20_000)), SPS, ROLLOFF)
    for f_hz in (0.0, 120e3, -120e3):
        shifted = x * np.exp(2j * np.pi * f_hz / FS * np.arange(x.size))
        kept = np.sum(np.abs(np.convolve(shifted, taps, "same")) ** 2) / np.sum(np.abs(shifted) ** 2)
        assert kept > 0.98, (f_hz, kept)  # 0.99 measured; a +-156 kHz band alone would keep ~0.6
    noise = (rng.standard_normal(200_000) + 1j * rng.standard_normal(200_000)) / np.sqrt(2)
    noise_gain = np.mean(np.abs(np.convolve(noise, taps, "same")) ** 2)
    assert 0.5 < noise_gain < 0.6  # about 2 * 286 kHz / 1 MHz of the noise stays (the MF keeps 0.25)
    assert acq.wide_taps(FS, 2, 0.35, 120e3) is None  # its band would reach 0.45 fs: the raw stream is used


def test_detection_metric_equals_the_schmidl_cox_formula() -> None:
    rng = np.random.default_rng(1)
    y = (rng.standard_normal(5000) + 1j * rng.standard_normal(5000)).astype(np.complex64)
    y[2000:3000] = 0  # a silence gives exactly zero, not rounding noise
    metric, p = detection_metric(y, SPS)
    lag = STF_PERIOD * SPS
    window = WINDOW_PERIODS * lag
    yy = y.astype(np.complex128)
    d = np.arange(y.size - lag - window + 1)[:, None] + np.arange(window)[None, :]
    p_ref = np.sum(yy[d + lag] * np.conj(yy[d]), axis=1)
    e0, e1 = np.sum(np.abs(yy[d]) ** 2, axis=1), np.sum(np.abs(yy[d + lag]) ** 2, axis=1)
    np.testing.assert_allclose(p, p_ref, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(metric, np.abs(p_ref) ** 2 / np.maximum(e0 * e1, 1e-30), rtol=1e-7, atol=1e-12)
    assert np.all(metric[2000:3000 - lag - window] == 0.0)


@pytest.mark.parametrize("cfo_hz", [-120e3, -46e3, 46e3, 100e3, 120e3])
def test_coarse_search_resolves_the_ambiguity_from_the_preamble(cfo_hz: float) -> None:
    stream, stf_starts = packets_stream(1, 10.0, cfo_hz, seed=5)
    ltf = int(round(stf_starts[0])) + STF_PERIOD * STF_REPEATS * SPS
    a = ltf - 900
    seg = stream[a:a + 1700]
    aliased = (cfo_hz + STEP_HZ / 2) % STEP_HZ - STEP_HZ / 2 + 700.0  # what lag 32 says, 700 Hz off
    found = acq.best_cfo(seg, ltf - a - 300, ltf - a + 300, aliased / FS, SETTINGS) * FS
    assert abs(found - cfo_hz) < 800.0


def test_wide_path_detects_at_0_db_and_120_khz_where_the_matched_filter_misses() -> None:
    stream, stf_starts = packets_stream(40, 0.0, 120e3, seed=31)
    found = {"prior": 0, "wide": 0}
    errors = []
    candidates = acq.acquire(stream, 0, SETTINGS, 0.0, wide=True)
    for path in found:
        runs = [c.detection for c in candidates if c.path == path]
        for start in stf_starts:
            near = [d for d in runs if start - 450 <= d.run_start <= start + 450]
            found[path] += bool(near)
            if near and path == "wide":
                cfo_hz = near[0].cfo_cycles_per_sample * FS
                errors.append((cfo_hz - 120e3 + STEP_HZ / 2) % STEP_HZ - STEP_HZ / 2)
    assert found["wide"] >= 39 and found["prior"] <= 36, found
    assert np.max(np.abs(errors)) < 2500.0  # the fractional CFO, before the coarse search and the LTF


def detected(candidates: list[acq.Acquired], starts: np.ndarray, tolerance: int = 600) -> int:
    """How many of the true starts have a detection whose run starts within `tolerance` samples of them."""
    runs = np.array([c.detection.run_start for c in candidates])
    return sum(bool(runs.size and np.min(np.abs(runs - s)) <= tolerance) for s in starts)


def test_multilag_detector_finds_minus_4db_preambles_schmidl_cox_misses() -> None:
    """20 seeded preambles at -4 dB Es/N0 and 10 kHz CFO on the matched-filter path: the multi-lag metric
    (radio/stf_detect.py, every pair of the STF's 16 periods) at its noise-set threshold finds all 20, the
    Schmidl-Cox metric at 0.07 (the burst receiver's previous threshold) 13."""
    stream, starts = packets_stream(20, -4.0, 10e3, seed=4)
    multilag = acq.AcquisitionSettings.make(FS, SPS, ROLLOFF, detect_threshold=1.25, detector="multilag")
    schmidl = acq.AcquisitionSettings.make(FS, SPS, ROLLOFF, detect_threshold=0.07)
    found_multilag = detected(acq.acquire(stream, 0, multilag, 0.0, wide=False), starts)
    found_schmidl = detected(acq.acquire(stream, 0, schmidl, 0.0, wide=False), starts)
    assert found_multilag == 20 and found_schmidl <= 16, (found_multilag, found_schmidl)


def test_multilag_detector_on_noise_fires_a_few_times_a_second() -> None:
    """One second of noise: the matched-filter path at 1.25 fires a few times (6.5 / s measured over 2 s at
    roll-off 0.15), the wide path at 1.05 never; each detection costs one preamble synchronization."""
    rng = np.random.default_rng(11)
    noise = ((rng.standard_normal(1_000_000) + 1j * rng.standard_normal(1_000_000)) / np.sqrt(2)).astype(np.complex64)
    settings = acq.AcquisitionSettings.make(FS, SPS, 0.15, detect_threshold=1.25, wide_threshold=1.05,
                                            detector="multilag")
    found = acq.acquire(noise, 0, settings, 0.0, wide=True)
    assert len([c for c in found if c.path == "prior"]) <= 15
    assert not [c for c in found if c.path == "wide"]


def test_unknown_detector_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="detector"):
        acq.AcquisitionSettings.make(FS, SPS, ROLLOFF, detector="energy")
