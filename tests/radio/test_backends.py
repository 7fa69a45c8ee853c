"""Backends: sim stream semantics, the emulated Pluto's pyadi-iio rules, PlutoBackend over the emulator, the factory."""

from __future__ import annotations

import numpy as np
import pytest

from radio.backends import EmulatedPluto, PlutoBackend, SimBackend, emulated_pluto_backend, make_backend
from radio.backends.sim import MAX_IDLE_START_SAMPLES
from radio.channel import Channel
from radio.errors import BackendError
from radio.config import ChannelConfig, RadioConfig

FS = 1.0e6


def channel(snr_db: float = 200.0, reference_power: float = 0.25, **kw) -> Channel:
    return Channel(kw.pop("model", "awgn"), snr_db, FS, 4, reference_power, seed=kw.pop("seed", 5), **kw)


def burst(n: int = 3000, amplitude: float = 0.5, seed: int = 0) -> np.ndarray:
    """QPSK-like random burst of constant modulus `amplitude` (power amplitude**2)."""
    rng = np.random.default_rng(seed)
    return (amplitude * np.exp(1j * (np.pi / 4 + np.pi / 2 * rng.integers(0, 4, n)))).astype(np.complex64)


# ----- sim backend -----

def test_sim_rx_after_tx_returns_burst_after_idle_offset() -> None:
    b = SimBackend(channel(), FS, idle_start_samples=123)
    x = burst()
    b.tx(x)
    assert b.pending == 123 + len(x)
    y = b.rx(123 + len(x) + 50)
    assert np.allclose(y[:123], 0, atol=1e-6)
    assert np.allclose(y[123 : 123 + len(x)], x, atol=1e-6)
    assert np.allclose(y[-50:], 0, atol=1e-6)
    assert (b.samples_sent, b.samples_received, b.pending) == (len(x), len(y), 0)


def test_sim_idle_start_is_seeded_random() -> None:
    starts = [SimBackend(channel(), FS, seed=s).idle_start_samples for s in range(20)]
    assert all(0 <= s <= MAX_IDLE_START_SAMPLES for s in starts)
    assert len(set(starts)) > 15
    assert SimBackend(channel(), FS, seed=3).idle_start_samples == starts[3]


def test_sim_idle_stream_is_channel_noise() -> None:
    ch = channel(snr_db=10.0)
    b = SimBackend(ch, FS, idle_start_samples=0)
    y = b.rx(300_000)
    assert np.mean(np.abs(y) ** 2) == pytest.approx(ch.noise_variance, rel=0.02)


def test_sim_bursts_are_back_to_back_and_rx_chunking_is_invisible() -> None:
    def run(sizes: list[int]) -> np.ndarray:
        b = SimBackend(channel(snr_db=15.0, cfo_hz=300.0, timing_offset_samples=2.5), FS, seed=1)
        b.tx(burst(1000, seed=1))
        b.tx(burst(500, seed=2))
        out = [b.rx(n) for n in sizes]
        b.tx(burst(700, seed=3))
        out += [b.rx(4000)]
        return np.concatenate(out)

    assert np.allclose(run([9000]), run([1, 4999, 0, 3000, 1000]), atol=1e-6)


def test_sim_refuses_beyond_full_scale_and_bad_shapes() -> None:
    b = SimBackend(channel(), FS)
    x = burst()
    x[17] = 1.25
    with pytest.raises(BackendError, match="peak .*1.25"):
        b.tx(x)
    with pytest.raises(BackendError):
        b.tx(np.ones((2, 3), np.complex64) * 0.1)
    with pytest.raises(BackendError):
        b.rx(-1)
    assert b.samples_sent == 0
    b.tx(np.ones(4, np.complex64))  # exactly full scale is fine


def test_sim_context_manager_closes() -> None:
    with SimBackend(channel(), FS) as b:
        b.rx(10)
    assert b.closed
    with pytest.raises(BackendError, match="closed"):
        b.rx(10)


def test_sim_refuses_channel_at_other_rate() -> None:
    with pytest.raises(BackendError, match="sample rate"):
        SimBackend(channel(), 2 * FS)


# ----- emulated Pluto: pyadi-iio rules -----

def unity_pluto(**kw) -> EmulatedPluto:
    """No channel, 0 dB everywhere: an RX code equals the 12-bit DAC code."""
    kw.setdefault("idle_start_samples", 0)
    dev = EmulatedPluto(channel=None, link_gain_db=0.0, **kw)
    dev.gain_control_mode_chan0 = "manual"
    dev.rx_hardwaregain_chan0 = 0
    dev.tx_hardwaregain_chan0 = 0
    return dev


def test_emulated_pluto_range_and_type_checks() -> None:
    dev = EmulatedPluto()
    with pytest.raises(Exception, match="Value must be an int"):
        dev.rx_lo = 915e6
    with pytest.raises(OSError):
        dev.rx_lo = 100_000_000
    with pytest.raises(OSError):
        dev.tx_lo = 4_000_000_000
    dev.rx_lo = 915_000_000
    assert dev.rx_lo == 915_000_000
    with pytest.raises(ValueError, match="below 521e3"):
        dev.sample_rate = 500e3
    with pytest.raises(OSError):
        dev.sample_rate = 70e6
    dev.sample_rate = 2e6
    assert dev.sample_rate == 2_000_000 and isinstance(dev.sample_rate, int)
    with pytest.raises(OSError):
        dev.tx_hardwaregain_chan0 = 1.0
    with pytest.raises(OSError):
        dev.tx_hardwaregain_chan0 = -90.0
    with pytest.raises(Exception, match="Value must be a float"):
        dev.tx_hardwaregain_chan0 = "-10"
    dev.tx_hardwaregain_chan0 = -10.1
    assert dev.tx_hardwaregain_chan0 == -10.0  # 0.25 dB steps
    dev.tx_hardwaregain_chan0 = -20.6
    assert dev.tx_hardwaregain_chan0 == -20.5
    with pytest.raises(OSError):
        dev.gain_control_mode_chan0 = "turbo"
    dev.rx_rf_bandwidth = 100_000_000
    assert dev.rx_rf_bandwidth == 56_000_000  # clamped like the driver
    with pytest.raises(Exception, match="RX mapping exceeds"):
        dev.rx_enabled_channels = [1]
    with pytest.raises(Exception, match="cannot be empty"):
        dev.rx_enabled_channels = []


def test_emulated_pluto_rx_gain_only_in_manual_and_by_band() -> None:
    dev = EmulatedPluto(channel=channel())
    dev.rx_lo = 2_400_000_000
    agc_gain = dev.rx_hardwaregain_chan0
    dev.rx_hardwaregain_chan0 = 5  # ignored outside manual, as pyadi-iio does
    assert dev.rx_hardwaregain_chan0 == agc_gain
    dev.gain_control_mode_chan0 = "manual"
    assert dev.rx_hardwaregain_chan0 == agc_gain  # manual starts from the AGC's gain
    with pytest.raises(OSError):
        dev.rx_hardwaregain_chan0 = 72
    dev.rx_hardwaregain_chan0 = 71
    dev.rx_lo = 900_000_000
    dev.rx_hardwaregain_chan0 = 73  # allowed below 1.3 GHz
    assert dev.rx_hardwaregain_chan0 == 73


def test_emulated_pluto_int16_cast_and_12_bit_dac() -> None:
    dev = unity_pluto()
    dev.rx_buffer_size = 6
    values = np.array([1000.7, -1000.7, 2**14, 40000.0, 15.0, -16.0])
    dev.tx(values + 1j * values[::-1])
    y = dev.rx()
    assert y.dtype == np.complex128 and len(y) == 6
    # astype(int16) truncates and wraps (40000 -> -25536); the DAC keeps the top 12 bits (>> 4)
    expected = np.array([62, -63, 1024, -1596, 0, -1])
    assert np.array_equal(y.real, expected)
    assert np.array_equal(y.imag, expected[::-1])


def test_emulated_pluto_adc_saturates_at_12_bits() -> None:
    dev = unity_pluto()
    dev.rx_hardwaregain_chan0 = 20
    dev.rx_buffer_size = 4
    dev.tx(np.array([2**14, -(2**14), 100, 2**14 * 1j]))
    y = dev.rx()
    assert np.array_equal(y, [2047, -2048, 60, 2047j])  # 100 >> 4 = 6, times 20 dB = 60: in range


def test_emulated_pluto_tx_buffer_length_is_fixed_until_destroyed() -> None:
    dev = unity_pluto()
    dev.tx(np.full(100, 1000 + 0j))
    dev.tx(np.full(100, 1000 + 0j))  # same length: fine
    with pytest.raises(Exception, match="Cannot change buffer length on the fly"):
        dev.tx(np.full(200, 1000 + 0j))
    dev.tx_destroy_buffer()
    dev.tx(np.full(200, 1000 + 0j))
    dev.rx_buffer_size = 450
    assert np.count_nonzero(dev.rx()) == 400  # the refused burst never went out


def test_emulated_pluto_cyclic_buffer_rules_and_repetition() -> None:
    dev = unity_pluto()
    dev.tx_cyclic_buffer = True
    tone = 1600 * np.exp(2j * np.pi * np.arange(10) / 10)
    dev.tx(tone)
    with pytest.raises(Exception, match="submitted in cyclic mode"):
        dev.tx(tone)
    with pytest.raises(Exception, match="destroyed then recreated"):
        dev.tx_cyclic_buffer = False
    dev.rx_buffer_size = 35
    y = np.concatenate([dev.rx(), dev.rx()])
    assert np.array_equal(y[:60], np.tile(y[:10], 6))  # repeats, continuous across rx() calls
    assert np.all(np.abs(y) > 90)
    dev.tx_destroy_buffer()
    assert np.count_nonzero(dev.rx()) == 0  # destroying stops the cyclic transmission
    dev.tx_cyclic_buffer = False


def test_emulated_pluto_rx_buffer_size_fixed_at_buffer_creation() -> None:
    dev = EmulatedPluto(channel=channel(snr_db=10.0))
    dev.rx_buffer_size = 1000
    assert len(dev.rx()) == 1000
    dev.rx_buffer_size = 300
    assert len(dev.rx()) == 1000  # libiio 0.x keeps the buffer it created
    dev.rx_destroy_buffer()
    assert len(dev.rx()) == 300
    dev.rx_buffer_size = 0
    dev.rx_destroy_buffer()
    with pytest.raises(OSError):
        dev.rx()


def test_emulated_pluto_stream_starts_at_random_offset() -> None:
    def first_sample(seed: int) -> int:
        dev = unity_pluto(seed=seed, idle_start_samples=None)
        dev.rx_buffer_size = 6000
        dev.tx(np.full(100, 2**14 + 0j))
        return int(np.flatnonzero(dev.rx())[0])

    starts = {first_sample(s) for s in range(8)}
    assert len(starts) == 8 and all(0 <= s <= 5000 for s in starts)


# ----- PlutoBackend over the emulator -----

def test_pluto_backend_awgn_round_trip_level_and_snr() -> None:
    ch = channel(snr_db=20.0, reference_power=0.25)
    b = emulated_pluto_backend(ch, sample_rate_hz=FS, tx_attenuation_db=10, rx_gain_mode="manual",
                               rx_gain_db=30, link_gain_db=-30, idle_start_samples=1000, rx_buffer_size=4096)
    x = burst(20_000, amplitude=0.5)
    b.tx(x)
    y = b.rx(1000 + len(x) + 5000)
    # full scale in -> (2**14 / 2**15) * 10**((-10 - 30 + 30) / 20) of ADC full scale out
    g = 0.5 * 10 ** (-10 / 20)
    signal = y[1000 + 100 : 1000 + len(x) - 100]
    noise = y[1000 + len(x) + 100 :]
    assert np.mean(np.abs(noise) ** 2) == pytest.approx(ch.noise_variance * g**2, rel=0.05)
    assert np.mean(np.abs(signal) ** 2) == pytest.approx(g**2 * (0.25 + ch.noise_variance), rel=0.02)
    ref = x[100:-100]
    gain = np.vdot(ref, signal) / np.vdot(ref, ref)  # least-squares complex gain: the same symbols, scaled
    assert abs(gain - g) < 0.01 * g
    assert y.dtype == np.complex64 and b.samples_received == len(y)


def test_pluto_backend_agc_puts_reference_power_near_minus_12_dbfs() -> None:
    b = emulated_pluto_backend(channel(snr_db=30.0, reference_power=0.25), idle_start_samples=0)
    assert b.rx_gain_mode == "slow_attack"
    b.tx(burst(8000, amplitude=0.5))
    y = b.rx(8000)
    assert 10 * np.log10(np.mean(np.abs(y) ** 2)) == pytest.approx(-12.0, abs=0.7)


def test_pluto_backend_rx_keeps_leftovers_across_calls() -> None:
    def stream(sizes: list[int]) -> np.ndarray:
        b = emulated_pluto_backend(channel(snr_db=10.0), rx_buffer_size=1000, seed=4)
        b.tx(burst(2500))
        return np.concatenate([b.rx(n) for n in sizes])

    assert np.array_equal(stream([7000]), stream([1, 999, 1500, 0, 4500]))


def test_pluto_backend_bursts_of_different_lengths() -> None:
    b = emulated_pluto_backend(channel(), idle_start_samples=0, rx_gain_mode="manual", rx_gain_db=40)
    for n in (300, 300, 1000, 64):
        b.tx(burst(n, seed=n))
    y = b.rx(1664 + 100)
    # 0.5 amplitude x (2**14 / 2**15) x 10**((-10 - 30 + 40) / 20) = 0.25 of ADC full scale
    assert np.allclose(np.abs(y[:1664]), 0.25, atol=2e-3) and np.allclose(y[1664:], 0, atol=2e-3)
    assert b.samples_sent == 1664


def test_pluto_backend_settings_and_errors() -> None:
    b = emulated_pluto_backend(channel(), rx_gain_mode="manual", rx_gain_db=25)
    assert (b.sample_rate_hz, b.lo_hz, b.rf_bandwidth_hz, b.rx_gain_db) == (FS, 915e6, FS, 25.0)
    b.tx_attenuation_db = 20.3
    assert b.tx_attenuation_db == 20.25
    b.rx_buffer_size = 512
    assert len(b.device.rx()) == 512  # the device buffer is recreated with the new size
    with pytest.raises(BackendError, match="lo"):
        b.lo_hz = 6.0e9
    with pytest.raises(BackendError, match="peak"):
        b.tx(np.full(10, 1.5, np.complex64))
    with pytest.raises(BackendError, match="sample_rate"):
        emulated_pluto_backend(Channel("awgn", 10, 200e3, 4, 1.0), sample_rate_hz=200e3)
    with pytest.raises(BackendError, match="URI"):
        PlutoBackend(None)
    b.close()
    with pytest.raises(BackendError, match="closed"):
        b.tx(burst(10))


# ----- factory -----

def test_make_backend_builds_each_kind() -> None:
    ch_cfg = ChannelConfig(snr_db=12.0, seed=3)
    sim = make_backend(RadioConfig(backend="sim", sample_rate_hz=FS, samples_per_symbol=8), ch_cfg, 0.5)
    assert isinstance(sim, SimBackend)
    assert sim.channel.noise_variance == pytest.approx(0.5 * 8 / 10 ** 1.2)
    pluto = make_backend(RadioConfig(backend="pluto", sample_rate_hz=2e6), ch_cfg, 0.5)
    assert isinstance(pluto, PlutoBackend) and pluto.is_emulated and pluto.sample_rate_hz == 2e6
    from radio.backends.zmq_iq import ZmqTxBackend

    tx = make_backend(RadioConfig(backend="zmq"), ch_cfg, 0.5, role="tx")
    assert isinstance(tx, ZmqTxBackend)
    tx.close()


# ----- what callers ask of any backend -----

def test_capabilities_are_declared_on_the_interface_with_defaults() -> None:
    from radio.backends.zmq_iq import loopback_pair

    sim = SimBackend(channel(), FS, idle_start_samples=10)
    sim.tx(burst(100))
    assert (sim.pending, sim.clock_samples, sim.cable_stream) == (110, 100, None) and sim.channel is not None
    pluto = emulated_pluto_backend(channel(snr_db=20.0), idle_start_samples=0)
    assert pluto.channel is pluto.device.channel and pluto.cable_stream is None and pluto.pending == 0
    pluto.channel.set_snr_db(5.0)
    assert pluto.device.channel.snr_db == 5.0
    tx, rx = loopback_pair(FS, channel())
    with tx, rx:
        tx.idle(50)
        tx.tx(burst(100))
        assert (tx.clock_samples, tx.samples_sent, tx.pending, tx.channel) == (150, 100, 0, None)
        assert rx.cable_stream is rx and rx.poll_cable() == 2 and rx.tx_clock_received == 150
        assert not rx.wait_cable(0.0)
    real = PlutoBackend("ip:192.0.2.1", device=EmulatedPluto(channel=channel()), stream_rx=False)
    assert not real.is_emulated and real.channel is None and real.pending == 0 and real.uri == "ip:192.0.2.1"
