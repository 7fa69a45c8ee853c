"""Which radios carry a fleet (zmq cables, real Plutos, emulated Plutos), the one-line refusals of what cannot work,
the emulated devices' crystals, and the backends the broadcast and the uplink get for each."""

from __future__ import annotations

import pytest

from host.fleet import broadcast_tx, edge_config, edge_crystals_ppm, fleet_air, local_fleet
from radio.backends import PlutoBackend
from radio.backends.broadcast import BroadcastTx
from radio.backends.factory import (emulated_pluto_backend, fleet_crystals_ppm, make_broadcast_backend,
                                    make_uplink_backend)
from radio.backends.zmq_iq import ZmqRxBackend, ZmqTxBackend
from radio.errors import BackendError
from radio.oscillator import emulated_ppm, pair_ppm
from radio.transmitter import TX_POWER
from testbed.config import validate
from testbed.errors import ConfigError
from testbed.sections.fleet import FleetEdge

LO_HZ = 915.0e6


def _cfg(backend: str = "pluto", **pluto) -> object:
    return validate({"radio": {"backend": backend, "pluto": pluto}, "channel": {"seed": 7}})


def _edge(name: str, uri: str | None = None, iq: str | None = "tcp://127.0.0.1:5601") -> FleetEdge:
    return FleetEdge(name=name, control_endpoint="tcp://127.0.0.1:5500", iq_endpoint=iq, pluto_uri=uri)


def _refused(match: str, *args) -> str:
    with pytest.raises(ConfigError, match=match) as err:
        fleet_air(*args)
    assert len(str(err.value).splitlines()) == 1
    return str(err.value)


def test_the_air_is_picked_from_the_backend_and_the_uris() -> None:
    assert fleet_air(_cfg("zmq"), [_edge("a"), _edge("b")]) == "zmq"
    assert fleet_air(_cfg(), [_edge("a"), _edge("b")]) == "emulated"
    real = [_edge("a", "ip:10.0.0.2", None), _edge("b", "usb:1.2.5", None)]
    assert fleet_air(_cfg(uri="ip:10.0.0.1"), real) == "pluto"
    assert fleet_air(_cfg(), real, "ip:10.0.0.1") == "pluto"  # --pluto-uri is the host's device too


def test_what_cannot_work_is_refused_in_one_line() -> None:
    _refused(r"radio\.pluto\.one_device", _cfg(uri="ip:10.0.0.1", one_device=True), [_edge("a", "ip:10.0.0.2")])
    text = _refused("fleet.edges: b: the host's Pluto is real", _cfg(uri="ip:10.0.0.1"),
                    [_edge("a", "ip:10.0.0.2"), _edge("b")])
    assert "a" not in text.split(":")[1]  # only the edge without a URI is named
    _refused("fleet.edges: a: the host's Pluto is real", _cfg(uri="ip:10.0.0.1"), [_edge("a")])
    _refused("fleet.edges: b: pluto_uri set but the host's Pluto is emulated", _cfg(),
             [_edge("a"), _edge("b", "ip:x")])
    _refused("fleet.edges: b: emulated Plutos", _cfg(), [_edge("a"), _edge("b", iq=None)])
    _refused("fleet.edges: a: radio.backend zmq needs each edge's iq_endpoint", _cfg("zmq"), [_edge("a", iq=None)])
    _refused("radio.backend zmq .* or pluto", _cfg("sim"), [_edge("a")])
    with pytest.raises(ConfigError, match=r"radio\.pluto\.one_device"):  # before any device or cable opens
        broadcast_tx(_cfg(uri="ip:10.0.0.1", one_device=True), [_edge("a", "ip:10.0.0.2")])


def test_local_edges_get_emulated_air_or_the_listed_uris() -> None:
    emulated = local_fleet(_cfg(), 2)
    assert all(e.iq_endpoint and e.pluto_uri is None for e in emulated)
    uris = ["usb:1.2.5", "usb:1.3.5", "usb:1.4.5"]
    real = local_fleet(validate({"radio": {"backend": "pluto", "pluto": {"uri": "usb:1.1.5"}},
                                 "fleet": {"local_pluto_uris": uris}}), 2)
    assert [e.pluto_uri for e in real] == uris[:2] and all(e.iq_endpoint is None for e in real)
    with pytest.raises(ConfigError, match=r"fleet\.local_pluto_uris: 3 local edges need 3 Pluto URIs, got 1"):
        local_fleet(validate({"radio": {"backend": "pluto"}, "fleet": {"local_pluto_uris": ["usb:1.2.5"]}}), 3)
    with pytest.raises(ConfigError, match=r"fleet\.local_pluto_uris"):
        validate({"fleet": {"local_pluto_uris": ["192.168.2.1"]}})


def test_every_emulated_device_has_its_own_crystal_and_the_host_one_for_all() -> None:
    cfg = _cfg()
    edges = local_fleet(cfg, 3)
    host_ppm, each = edge_crystals_ppm(cfg, edges)
    assert (host_ppm, each) == edge_crystals_ppm(cfg, edges)  # reproducible
    assert host_ppm == emulated_ppm(7, "host") and list(each.values()) == [emulated_ppm(s, "edge") for s in (7, 8, 9)]
    assert (host_ppm, each["edge-1"]) == pair_ppm(None, 7)  # edge-1's pair is the unicast pair of the same seed
    assert len(set(each.values())) == 3 and all(-25 <= p <= 25 for p in (host_ppm, *each.values()))
    for e in edges:  # each edge process applies its pair's relative error (host minus edge) to the downlink
        raw = edge_config(cfg, e, local=True)
        assert raw["radio"]["pluto"]["emulated_ppm"] == pytest.approx(host_ppm - each[e.name])
        assert validate(raw).radio.pluto.emulated_ppm == pytest.approx(host_ppm - each[e.name])
    set_ppm = _cfg(emulated_ppm=12.5)
    assert fleet_crystals_ppm(set_ppm.radio, 7, [7, 8]) == (12.5, [0.0, 0.0])  # the host's error, exact edges
    assert edge_config(set_ppm, edges[1], local=True)["radio"]["pluto"]["emulated_ppm"] == 12.5
    real = edge_config(_cfg(uri="usb:1.1.5", xo_correction_hz=40_000_100), _edge("a", "usb:1.2.5"), local=True)
    assert real["radio"]["pluto"]["uri"] == "usb:1.2.5" and real["radio"]["pluto"]["xo_correction_hz"] is None


def test_the_broadcast_backend_per_air() -> None:
    cfg = _cfg()
    endpoints = ["tcp://127.0.0.1:5611", "tcp://127.0.0.1:5612"]
    with make_broadcast_backend(_cfg("zmq").radio, endpoints, curves=[None, None], lag_timeout_s=1.0) as tx:
        assert isinstance(tx, BroadcastTx)
    tx = make_broadcast_backend(cfg.radio, endpoints, curves=[None, None], lag_timeout_s=1.0, host_ppm=-3.5)
    try:
        assert isinstance(tx, PlutoBackend) and tx.is_emulated and not tx.streaming
        assert isinstance(tx.device.air_tx, BroadcastTx) and tx.device.crystal_ppm == -3.5
        assert [d.endpoint for d in tx.device.air_tx.destinations] == endpoints
    finally:
        tx.close()
    with pytest.raises(BackendError, match="one_device"):
        make_broadcast_backend(_cfg(uri="usb:1.1.5", one_device=True).radio, [], curves=[], lag_timeout_s=1.0)


def test_the_uplink_backend_per_radio() -> None:
    zmq = _cfg("zmq")
    with make_uplink_backend(zmq.radio, zmq.channel, TX_POWER, "rx", "tcp://127.0.0.1:*") as rx:
        assert isinstance(rx, ZmqRxBackend) and rx.channel is not None and rx.window_samples == 2_000_000
        with make_uplink_backend(zmq.radio, zmq.channel, TX_POWER, "tx", rx.endpoint) as tx:
            assert isinstance(tx, ZmqTxBackend)
    cfg = _cfg()
    rx = make_uplink_backend(cfg.radio, cfg.channel, TX_POWER, "rx", "tcp://127.0.0.1:*", crystals_ppm=(10.0, -4.0))
    tx = make_uplink_backend(cfg.radio, cfg.channel, TX_POWER, "tx", rx.device.air_rx.endpoint,
                             crystals_ppm=(10.0, -4.0))
    try:  # the host's device hears the edge's: relative error edge minus host, -14 ppm
        assert isinstance(rx, PlutoBackend) and rx.is_emulated and rx.device.crystal_ppm == 10.0
        assert rx.channel.cfo_hz == pytest.approx(-14e-6 * LO_HZ) and rx.channel.sco_ppm == pytest.approx(-14.0)
        assert isinstance(tx, PlutoBackend) and isinstance(tx.device.air_tx, ZmqTxBackend)
        assert tx.device.crystal_ppm == -4.0
    finally:
        tx.close()
        rx.close()
    own = emulated_pluto_backend(None)  # stands in for a node's open device: a URI uses the device it is given
    try:
        real = _cfg(uri="usb:1.1.5")
        assert make_uplink_backend(real.radio, real.channel, TX_POWER, "tx", "tcp://127.0.0.1:1", device=own) is own
    finally:
        own.close()
    for radio, match in ((_cfg(uri="usb:1.1.5", one_device=True), "one_device"), (_cfg("sim"), "zmq or pluto")):
        with pytest.raises(BackendError, match=match):
            make_uplink_backend(radio.radio, radio.channel, TX_POWER, "rx", "tcp://127.0.0.1:1")
    with pytest.raises(BackendError, match="role"):
        make_uplink_backend(cfg.radio, cfg.channel, TX_POWER, "loopback", "tcp://127.0.0.1:1")


def test_a_fleet_run_that_cannot_work_fails_before_any_edge_starts(tmp_path, capsys) -> None:
    """`airlora run --edges 2 --pluto-uri URI` without fleet.local_pluto_uris: one line naming the edges, exit 2,
    and no edge process was started (the run folder holds no edge configs or logs)."""
    from airlora.cli import main

    code = main(["run", "--edges", "2", "--pluto-uri", "ip:192.0.2.1", "--set", "radio.backend=pluto",
                 "--set", f"run.out_dir={tmp_path}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("airlora run: fleet.edges: edge-1, edge-2: the host's Pluto is real")
    folders = list(tmp_path.iterdir())
    assert len(folders) == 1 and not (folders[0] / "edges").exists()
    assert not list(folders[0].glob("edge*.log"))
