"""The `fleet:` section and the configs of a fleet's edges: one-line errors naming the key; one edge is no fleet."""

from __future__ import annotations

import pytest

from host.fleet import edge_config, fleet_edges, local_fleet
from testbed.config import validate
from testbed.errors import ConfigError


def _fleet(**fleet) -> dict:
    return {"radio": {"backend": "zmq"}, "fleet": fleet}


def test_edges_with_their_own_channels_override_only_the_keys_they_give():
    cfg = validate({**_fleet(edges=[
        {"name": "pi-1", "control_endpoint": "tcp://10.0.0.5:5555", "iq_endpoint": "tcp://10.0.0.5:5600",
         "channel": {"snr_db": 3.0, "model": "rayleigh"}},
        {"name": "pi-2", "control_endpoint": "tcp://10.0.0.6:5555", "iq_endpoint": "tcp://10.0.0.6:5600"}]),
        "channel": {"snr_db": 15.0, "cfo_hz": 1500.0}})
    one, two = (edge_config(cfg, e, local=False) for e in cfg.fleet.edges)
    assert (one["channel"]["snr_db"], one["channel"]["model"], one["channel"]["cfo_hz"]) == (3.0, "rayleigh", 1500.0)
    assert (two["channel"]["snr_db"], two["channel"]["model"]) == (15.0, "awgn")
    assert one["control"]["endpoint"] == "tcp://10.0.0.5:5555" and one["radio"]["zmq"]["endpoint"] == \
        "tcp://10.0.0.5:5600"
    assert one["fleet"]["edges"] == [] and validate(one).channel.snr_db == 3.0
    assert fleet_edges(cfg, None) == cfg.fleet.edges and fleet_edges(cfg, 1) == []  # --edges 1: today's single edge


@pytest.mark.parametrize("fleet, key", [
    ({"edges": [{"name": "a", "control_endpoint": "tcp://x:1"}, {"name": "a", "control_endpoint": "tcp://y:1"}]},
     "names must be unique"),
    ({"edges": [{"name": "a b", "control_endpoint": "tcp://x:1"}]}, "fleet.edges.0.name"),
    ({"edges": [{"name": "a", "control_endpoint": "http://x:1"}]}, "fleet.edges.0.control_endpoint"),
    ({"edges": [{"name": "a", "control_endpoint": "tcp://x:1", "channel": {"snr_db": 99}}]},
     "fleet.edges.0.channel.snr_db"),
    ({"edges": [{"name": "a", "control_endpoint": "tcp://x:1", "pluto_uri": "foo"}]}, "fleet.edges.0.pluto_uri"),
    ({"mcs_rule": "best"}, "fleet.mcs_rule"),
    ({"percentile": 101}, "fleet.percentile"),
    ({"local_snr_db": []}, "fleet.local_snr_db"),
    ({"min_burst_symbols": 9, "max_burst_symbols": 8}, "min_burst_symbols"),
    ({"edges": [{"name": f"e{i}", "control_endpoint": "tcp://x:1"} for i in range(65)]}, "fleet.edges"),
])
def test_bad_fleet_settings_are_refused_with_the_key_named(fleet, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")) as err:
        validate(_fleet(**fleet))
    assert len(str(err.value).splitlines()) == 1


def test_a_local_fleet_spreads_snrs_seeds_ports_and_adapter_folders(tmp_path):
    cfg = validate({**_fleet(local_snr_db=[20.0, 5.0]), "edge": {"adapter_dir": str(tmp_path / "edge")},
                    "channel": {"seed": 7}})
    edges = local_fleet(cfg, 3)
    assert [e.name for e in edges] == ["edge-1", "edge-2", "edge-3"]
    assert [e.channel.snr_db for e in edges] == [20.0, 5.0, 20.0] and [e.channel.seed for e in edges] == [7, 8, 9]
    ports = {e.control_endpoint for e in edges} | {e.iq_endpoint for e in edges}
    assert len(ports) == 6 and all(p.startswith("tcp://127.0.0.1:") for p in ports)
    raws = [edge_config(cfg, e, local=True) for e in edges]
    assert [r["edge"]["adapter_dir"] for r in raws] == [f"{tmp_path / 'edge'}-edge-{i}" for i in (1, 2, 3)]
    with pytest.raises(ConfigError, match="--edges 0"):
        local_fleet(cfg, 0)
    with pytest.raises(ConfigError, match="radio.backend zmq"):
        local_fleet(validate({"radio": {"backend": "sim"}}), 2)
