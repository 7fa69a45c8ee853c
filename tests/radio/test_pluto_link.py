"""The pluto backend end to end: `airlora link --backend pluto`, the emulated air between two devices,
the config, and the real-device code path (streamed RX) on a real-time emulator behind a stand-in adi.Pluto."""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from pydantic import ValidationError

from radio.backends import EmulatedPluto, PlutoBackend, emulated_pluto_backend, make_backend
from radio.backends.pluto import CabledPlutoRelay
from radio.backends.zmq_iq import ZmqRxBackend, ZmqTxBackend
from radio.channel import Channel
from radio.errors import BackendError
from radio.transmitter import TX_POWER
from airlora.cli import main
from testbed.config import load
from radio.config import ChannelConfig, RadioConfig

FS = 1.0e6
_spec = importlib.util.spec_from_file_location(
    "pluto_loopback", Path(__file__).resolve().parents[1] / "hardware" / "pluto_loopback.py")
pluto_loopback = importlib.util.module_from_spec(_spec)
sys.modules["pluto_loopback"] = pluto_loopback
_spec.loader.exec_module(pluto_loopback)


def qpsk(n: int, amplitude: float = 0.5, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (amplitude * np.exp(1j * (np.pi / 4 + np.pi / 2 * rng.integers(0, 4, n)))).astype(np.complex64)


# ----- airlora link through PlutoBackend (in-process: one emulated device, TX cabled to RX) -----

@pytest.mark.parametrize("snr_db", [10.0, 25.0])
def test_airlora_link_backend_pluto_delivers_and_measures_snr(snr_db: float, capsys) -> None:
    code = main(["link", "--backend", "pluto", "--snr-db", str(snr_db), "--bytes", "12000", "--seed", "3", "--json",
                 "--set", "radio.pluto.uri=null", "--frame", "v1"])  # v1: its MCS per round
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["delivered"] and result["backend"] == "pluto"
    assert result["snr_db_measured"] == pytest.approx(snr_db, abs=1.5)
    if snr_db >= 25:
        assert result["mcs_per_round"][-1].startswith("64qam")
    else:
        assert not result["mcs_per_round"][-1].startswith(("64qam", "16qam-3/4"))


# ----- the emulated air: two devices joined by the ZeroMQ IQ cable -----

def air_pair(snr_db: float, rx_atten_db: float = 10.0) -> tuple[PlutoBackend, PlutoBackend, Channel]:
    """(host TX device, edge RX device) over an inproc cable; the edge's attenuation is the link's nominal."""
    ch = Channel("awgn", snr_db, FS, 4, 0.25, seed=2)
    cable_rx = ZmqRxBackend("inproc://pluto-air-" + str(time.monotonic_ns()), FS, None, bind=True, timeout_s=2.0)
    edge = emulated_pluto_backend(ch, air_rx=cable_rx, idle_start_samples=0, tx_attenuation_db=rx_atten_db,
                                  rx_gain_mode="manual", rx_gain_db=30)
    host = emulated_pluto_backend(None, air_tx=ZmqTxBackend(cable_rx.endpoint, FS), tx_attenuation_db=10.0)
    return host, edge, ch


def test_emulated_air_carries_the_dac_output_with_the_in_process_levels_and_snr() -> None:
    host, edge, ch = air_pair(snr_db=20.0)
    x = qpsk(20_000)
    host.tx(x)
    host.tx(qpsk(3_000, seed=1))  # another length: the TX buffer is destroyed and recreated
    y = edge.rx(23_000 + 5_000)
    g = 0.5 * 10 ** (-10 / 20)  # (2**14 / 2**15) x 10**((-10 - 30 + 30) / 20), as in-process
    signal, noise = y[100:19_900], y[23_100:]
    assert np.mean(np.abs(noise) ** 2) == pytest.approx(ch.noise_variance * g**2, rel=0.08)
    gain = np.vdot(x[100:19_900], signal) / np.vdot(x[100:19_900], x[100:19_900])
    assert abs(gain - g) < 0.01 * g
    assert host.samples_sent == 23_000 and not host.streaming and not edge.streaming
    host.close(), edge.close()


def test_emulated_air_more_tx_attenuation_than_nominal_lowers_level_and_snr() -> None:
    host, edge, ch = air_pair(snr_db=20.0)
    host.tx_attenuation_db = 16.0  # 6 dB below the link's nominal 10 dB
    x = qpsk(20_000)
    host.tx(x)
    y = edge.rx(25_000)
    g = 0.5 * 10 ** (-16 / 20)
    gain = np.vdot(x[100:-100], y[100:19_900]) / np.vdot(x[100:-100], x[100:-100])
    assert abs(gain - g) < 0.02 * g
    noise = np.mean(np.abs(y[20_100:]) ** 2)
    per_sample_snr_db = 10 * np.log10(0.25 * abs(gain) ** 2 / noise)  # Es/N0 minus 10 log10(4 samples per symbol)
    assert per_sample_snr_db + 10 * np.log10(4) == pytest.approx(14.0, abs=0.5)
    host.close(), edge.close()


def test_emulated_air_refuses_cyclic_tx() -> None:
    host, edge, _ = air_pair(snr_db=20.0)
    host.device.tx_cyclic_buffer = True
    with pytest.raises(BackendError, match="cyclic"):
        host.tx(qpsk(100))
    host.close(), edge.close()


def test_make_backend_pluto_roles_without_uri(monkeypatch) -> None:
    radio = RadioConfig(backend="pluto", zmq={"endpoint": "inproc://pluto-roles"},
                        pluto={"lo_hz": 2.4e9, "tx_attenuation_db": 20.0, "rx_gain_mode": "manual",
                               "rx_gain_db": 12.0, "rx_buffer_size": 4096})
    ch = ChannelConfig(snr_db=7.0)
    edge = make_backend(radio, ch, TX_POWER, role="rx")
    host = make_backend(radio, ch, TX_POWER, role="tx")
    loop = make_backend(radio, ch, TX_POWER)
    assert isinstance(edge.device.air_rx, ZmqRxBackend) and edge.device.air_tx is None
    assert isinstance(host.device.air_tx, ZmqTxBackend) and host.device.air_rx is None
    assert loop.device.air_tx is None and loop.device.air_rx is None
    for b in (edge, host, loop):
        assert (b.lo_hz, b.tx_attenuation_db, b.rx_gain_mode, b.rx_gain_db, b.rx_buffer_size) == (
            2.4e9, 20.0, "manual", 12.0, 4096)
    edge.channel.set_snr_db(3.0)  # what the edge daemon does with a session's channel_snr_db
    assert edge.device.channel.snr_db == 3.0 and loop.channel.snr_db == 7.0
    for b in (host, edge, loop):
        b.close()


# ----- config -----

def test_pluto_config_section_checks_values() -> None:
    cfg = load()
    assert cfg.radio.pluto.uri is None and cfg.radio.pluto.rx_buffer_size == 32768
    with pytest.raises(ValidationError, match="521e3"):
        RadioConfig(backend="pluto", sample_rate_hz=300e3)
    with pytest.raises(ValidationError, match="libiio URI"):
        RadioConfig(pluto={"uri": "192.168.2.1"})
    with pytest.raises(ValidationError):
        RadioConfig(pluto={"tx_attenuation_db": 95.0})
    with pytest.raises(ValidationError):
        RadioConfig(pluto={"rx_gain_mode": "auto"})


# ----- the real-device code path on a real-time emulator behind a stand-in adi.Pluto -----

class DeviceProxy:
    """Passes every attribute to an EmulatedPluto, so PlutoBackend treats it as a real device."""

    def __init__(self, device: EmulatedPluto) -> None:
        object.__setattr__(self, "_device", device)

    def __getattr__(self, name: str):
        return getattr(self._device, name)

    def __setattr__(self, name: str, value) -> None:
        setattr(self._device, name, value)


@pytest.fixture
def fake_adi(monkeypatch) -> list[EmulatedPluto]:
    """`import adi` gives Pluto(uri) -> a real-time EmulatedPluto at 25 dB SNR; the list holds the devices."""
    devices: list[EmulatedPluto] = []

    def pluto(uri: str) -> DeviceProxy:
        devices.append(EmulatedPluto(uri=uri, channel=Channel("awgn", 25.0, FS, 4, TX_POWER, seed=4),
                                     realtime=True, seed=len(devices)))
        return DeviceProxy(devices[-1])

    monkeypatch.setitem(sys.modules, "adi", SimpleNamespace(Pluto=pluto))
    return devices


def real_radio(**pluto) -> PlutoBackend:
    cfg = RadioConfig(backend="pluto", pluto={"uri": "ip:192.0.2.1", "rx_gain_mode": "manual", "rx_gain_db": 30.0,
                                              **pluto})
    return make_backend(cfg, ChannelConfig(), TX_POWER)


def test_hardware_loopback_procedure_on_a_realtime_device(fake_adi) -> None:
    with real_radio() as radio:
        assert not radio.is_emulated and radio.streaming and radio.channel is None
        assert fake_adi[0].uri == "ip:192.0.2.1" and fake_adi[0].rx_lo == 915_000_000
        time.sleep(0.1)  # the stream runs while nobody reads
        result = pluto_loopback.loopback_packets(radio, packets=6)
        again = pluto_loopback.loopback_packets(radio, packets=4, mcs_name="16qam-1/2", session=7)
        assert radio.rx_overflow_samples == 0
    assert result.delivered and again.delivered
    assert result.snr_db_mean == pytest.approx(25.0, abs=1.5)


@pytest.mark.parametrize("streamed", [True, False])
def test_a_late_first_rx_misses_the_burst_start_unless_rx_is_streamed(fake_adi, streamed: bool) -> None:
    """`airlora link`'s first round calls tx() before any rx(): a device RX buffer created only then is late."""
    with real_radio() as radio:
        if not streamed:
            radio._stop_stream()  # reading only inside rx()
            radio._streaming = False
            radio.device.rx_destroy_buffer()  # a device RX buffer only captures from its creation on
        mcs = pluto_loopback.by_name("qpsk-1/2")
        payload = bytes(range(200))
        header = pluto_loopback.Header(mcs.index, 9, 0, 1, len(payload))
        iq = pluto_loopback.burst([pluto_loopback.packet_symbols(header, payload, mcs)], 4, 0.25)
        radio.tx(iq)
        time.sleep(0.02)  # the caller is busy for 20 ms (the burst lasts about 8 ms)
        receiver = pluto_loopback.Receiver(FS, 4, 0.25)
        packets = receiver.feed(radio.rx(radio.pending + len(iq) + 16384)) + receiver.flush()
    assert any(p.crc_ok and p.payload == payload for p in packets) == streamed


def test_streamed_rx_drops_the_oldest_when_the_reader_falls_behind(fake_adi) -> None:
    with real_radio(rx_backlog_s=0.05, rx_buffer_size=4096) as radio:
        time.sleep(0.3)
        y = radio.rx(20_000)
        assert len(y) == 20_000 and radio.rx_overflow_samples >= 150_000  # the backlog held 50 ms


def test_one_device_topology_edge_relays_host_bursts_through_its_pluto(fake_adi) -> None:
    radio = RadioConfig(backend="pluto", zmq={"endpoint": "inproc://pluto-one-device"},
                        pluto={"uri": "ip:192.0.2.1", "one_device": True, "rx_gain_mode": "manual"})
    edge = make_backend(radio, ChannelConfig(), TX_POWER, role="rx")
    host = make_backend(radio, ChannelConfig(), TX_POWER, role="tx", pluto_uri="ip:192.0.2.1")
    assert isinstance(edge, CabledPlutoRelay) and isinstance(host, ZmqTxBackend) and len(fake_adi) == 1
    assert not hasattr(edge, "poll_cable") and edge.cable_stream is None  # the edge reads it as a real-time radio
    assert edge.channel is None
    mcs = pluto_loopback.by_name("qpsk-3/4")
    sent = {s: bytes([s]) * 150 for s in range(5)}
    for seqs in ([0, 1, 2], [3, 4]):  # two bursts of different lengths
        host.tx(pluto_loopback.burst([pluto_loopback.packet_symbols(
            pluto_loopback.Header(mcs.index, 5, s, 5, 150), sent[s], mcs) for s in seqs], 4, 0.25))
    receiver, got, deadline = pluto_loopback.Receiver(FS, 4, 0.25), {}, time.monotonic() + 5
    while len(got) < 5 and time.monotonic() < deadline:
        for p in receiver.feed(edge.rx(16384)):
            if p.crc_ok:
                got[p.header.seq] = p.payload
    assert got == sent and edge.bursts_relayed >= 1
    host.close()
    edge.close()
