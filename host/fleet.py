"""The fleet a host serves: its edges (from fleet.edges, or N local edge processes), their configs, the broadcast.

`local_fleet(cfg, n)` makes N edges on this machine on free loopback ports, each with its own emulated channel
(fleet.local_snr_db, cycled; each its own noise seed) and its own adapter folder. `edge_config(cfg, edge)` is the
config one edge process runs with. `broadcast_tx(cfg, edges)` is the one transmitter all of them hear.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import yaml

from radio.backends.base import RadioBackend
from radio.backends.broadcast import BroadcastTx
from radio.backends.factory import make_backend
from radio.transmitter import TX_POWER
from testbed.config import TestbedConfig, validate
from testbed.errors import ConfigError
from testbed.keys import cable_curve
from testbed.sections.fleet import MAX_EDGES, FleetEdge


def free_port() -> int:
    """A TCP port on loopback that nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def local_fleet(cfg: TestbedConfig, count: int) -> list[FleetEdge]:
    """count edges on this machine: edge-1..edge-N on free ports, SNRs from fleet.local_snr_db (cycled)."""
    if not 1 <= count <= MAX_EDGES:
        raise ConfigError(f"--edges {count}: a local fleet has 1..{MAX_EDGES} edges")
    if cfg.radio.backend != "zmq":
        raise ConfigError(f"--edges {count}: local edges hear the host over the ZeroMQ IQ cable; set radio.backend "
                          f"zmq (it is {cfg.radio.backend!r}), or list real edges in fleet.edges")
    snrs = cfg.fleet.local_snr_db
    edges = []
    for i in range(count):
        channel = cfg.channel.model_copy(update={"snr_db": snrs[i % len(snrs)], "seed": cfg.channel.seed + i})
        edges.append(FleetEdge(name=f"edge-{i + 1}", control_endpoint=f"tcp://127.0.0.1:{free_port()}",
                               iq_endpoint=f"tcp://127.0.0.1:{free_port()}",
                               channel=channel.model_copy()))
    return edges


def fleet_edges(cfg: TestbedConfig, count: int | None) -> list[FleetEdge]:
    """The fleet of this run: `--edges N` local edges, else fleet.edges (empty: no fleet, the unicast path)."""
    if count is None:
        return list(cfg.fleet.edges)
    return [] if count == 1 else local_fleet(cfg, count)


def edge_config(cfg: TestbedConfig, edge: FleetEdge, local: bool) -> dict[str, Any]:
    """The config (a mapping, as testbed.yaml holds it) one edge of the fleet runs with."""
    raw = cfg.model_dump(mode="json")
    raw["control"]["endpoint"] = edge.control_endpoint
    raw["control"]["bind"] = None if local else raw["control"]["bind"]
    if edge.iq_endpoint is not None:
        raw["radio"]["zmq"].update({"endpoint": edge.iq_endpoint, "bind_endpoint": None, "bind_side": "rx"})
    if edge.pluto_uri is not None:
        raw["radio"]["pluto"]["uri"] = edge.pluto_uri
    if edge.channel is not None:
        raw["channel"].update(edge.channel.model_dump(mode="json", include=edge.channel.model_fields_set))
    if local:
        raw["edge"]["adapter_dir"] = f"{cfg.edge.adapter_dir.rstrip('/')}-{edge.name}"
    raw["fleet"]["edges"] = []
    return raw


def write_edge_configs(cfg: TestbedConfig, edges: list[FleetEdge], folder: Path, local: bool,
                       sections: dict[str, dict[str, dict]] | None = None) -> dict[str, Path]:
    """Each edge's config as edges/<name>.yaml in the run folder (validated first); name -> path. sections gives
    per-edge keys that replace the config's ({name: {section: {key: value}}}, e.g. an edge's fed.shard_index)."""
    (folder / "edges").mkdir(exist_ok=True)
    paths = {}
    for edge in edges:
        raw = edge_config(cfg, edge, local)
        for section, keys in (sections or {}).get(edge.name, {}).items():
            raw[section].update(keys)
        validate(raw, source=f"fleet edge {edge.name}")
        paths[edge.name] = folder / "edges" / f"{edge.name}.yaml"
        paths[edge.name].write_text(yaml.safe_dump(raw, sort_keys=False))
    return paths


def broadcast_tx(cfg: TestbedConfig, edges: list[FleetEdge], pluto_uri: str | None = None) -> RadioBackend:
    """The one transmitter every edge hears: the IQ cables to all of them (zmq), or this host's radio (pluto)."""
    if cfg.radio.backend == "zmq":
        missing = [e.name for e in edges if e.iq_endpoint is None]
        if missing:
            raise ConfigError(f"fleet.edges: {', '.join(missing)}: radio.backend zmq needs each edge's iq_endpoint")
        curve = cable_curve(cfg.control.curve, "tx")
        return BroadcastTx([e.iq_endpoint for e in edges], cfg.radio.sample_rate_hz,
                           curves=[curve] * len(edges), lag_timeout_s=cfg.fleet.lag_timeout_s,
                           hwm_messages=cfg.radio.zmq.hwm_messages)
    if cfg.radio.backend == "pluto" and (pluto_uri or cfg.radio.pluto.uri) and not cfg.radio.pluto.one_device:
        return make_backend(cfg.radio, cfg.channel, TX_POWER, pluto_uri=pluto_uri, role="tx")  # the air broadcasts
    raise ConfigError(f"a fleet is served over radio.backend zmq (IQ cables) or a real Pluto (radio.pluto.uri, "
                      f"one_device false); got backend {cfg.radio.backend!r}")
