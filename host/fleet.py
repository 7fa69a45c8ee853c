"""The fleet a host serves: its edges (from fleet.edges, or N local edge processes), their configs, the broadcast.

`local_fleet(cfg, n)` makes N edges on this machine on free loopback ports, each with its own emulated channel
(fleet.local_snr_db, cycled; each its own noise seed) and its own adapter folder. `edge_config(cfg, edge)` is the
config one edge process runs with. `broadcast_tx(cfg, edges)` is the one transmitter all of them hear.

radio.backend pluto: one Pluto on the host (radio.pluto.uri or --pluto-uri) and one per edge (its pluto_uri;
fleet.local_pluto_uris for local edges), or, with no URI anywhere, emulated devices: the host's one device sends
over each edge's IQ cable (the emulated air), every device has its own crystal (`edge_crystals_ppm`), so each
edge's channel carries its pair's relative error. `fleet_air` refuses what cannot work, in one line.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import yaml

from radio.backends.base import RadioBackend
from radio.backends.factory import fleet_crystals_ppm, make_broadcast_backend
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
    """count edges on this machine: edge-1..edge-N on free ports, SNRs from fleet.local_snr_db (cycled); with
    radio.backend pluto each edge's Pluto is fleet.local_pluto_uris[i], or (none listed) emulated on an IQ cable."""
    if not 1 <= count <= MAX_EDGES:
        raise ConfigError(f"--edges {count}: a local fleet has 1..{MAX_EDGES} edges")
    if cfg.radio.backend not in ("zmq", "pluto"):
        raise ConfigError(f"--edges {count}: local edges hear the host over the ZeroMQ IQ cable or Plutos; set "
                          f"radio.backend zmq or pluto (it is {cfg.radio.backend!r}), or list real edges in "
                          "fleet.edges")
    uris = cfg.fleet.local_pluto_uris if cfg.radio.backend == "pluto" else []
    if uris and len(uris) < count:
        raise ConfigError(f"fleet.local_pluto_uris: {count} local edges need {count} Pluto URIs, got {len(uris)}")
    snrs = cfg.fleet.local_snr_db
    edges = []
    for i in range(count):
        channel = cfg.channel.model_copy(update={"snr_db": snrs[i % len(snrs)], "seed": cfg.channel.seed + i})
        edges.append(FleetEdge(name=f"edge-{i + 1}", control_endpoint=f"tcp://127.0.0.1:{free_port()}",
                               iq_endpoint=None if uris else f"tcp://127.0.0.1:{free_port()}",
                               pluto_uri=uris[i] if uris else None, channel=channel.model_copy()))
    return edges


def fleet_air(cfg: TestbedConfig, edges: list[FleetEdge], pluto_uri: str | None = None) -> str:
    """What carries the fleet's IQ: 'zmq' (IQ cables), 'pluto' (real devices) or 'emulated' (emulated Plutos on IQ
    cables); ConfigError, one line, for a fleet that cannot work."""
    r = cfg.radio
    if r.backend not in ("zmq", "pluto"):
        raise ConfigError(f"a fleet is served over radio.backend zmq (IQ cables) or pluto (a Pluto per node); got "
                          f"backend {r.backend!r}")
    if r.backend == "pluto" and r.pluto.one_device:
        raise ConfigError("radio.pluto.one_device: a fleet needs a Pluto on the host and one per edge; one_device is "
                          "one edge's Pluto with its TX cabled to its RX (set it false)")
    real = [e.name for e in edges if e.pluto_uri]
    if r.backend == "pluto" and (pluto_uri or r.pluto.uri):
        if len(real) < len(edges):
            missing = [e.name for e in edges if not e.pluto_uri]
            raise ConfigError(f"fleet.edges: {', '.join(missing)}: the host's Pluto is real, so every edge needs its "
                              "pluto_uri (local edges: fleet.local_pluto_uris)")
        return "pluto"
    if real and r.backend == "pluto":
        raise ConfigError(f"fleet.edges: {', '.join(real)}: pluto_uri set but the host's Pluto is emulated "
                          "(radio.pluto.uri null): set the host's URI, or remove the edges' to emulate them all")
    missing = [e.name for e in edges if e.iq_endpoint is None]
    if missing:
        what = "radio.backend zmq" if r.backend == "zmq" else "emulated Plutos (the air is their IQ cable)"
        raise ConfigError(f"fleet.edges: {', '.join(missing)}: {what} needs each edge's iq_endpoint")
    return "zmq" if r.backend == "zmq" else "emulated"


def edge_channel_seed(cfg: TestbedConfig, edge: FleetEdge) -> int:
    """The channel.seed the edge process runs with (its channel's, else the host's)."""
    ch = edge.channel
    return ch.seed if ch is not None and "seed" in ch.model_fields_set else cfg.channel.seed


def edge_crystals_ppm(cfg: TestbedConfig, edges: list[FleetEdge]) -> tuple[float, dict[str, float]]:
    """Emulated Plutos: (the host device's crystal error, each edge device's by name) in ppm, drawn reproducibly:
    the host's from channel.seed, each edge's from its own channel seed (radio.pluto.emulated_ppm set: the host's
    error against exact edges)."""
    host, each = fleet_crystals_ppm(cfg.radio, cfg.channel.seed, [edge_channel_seed(cfg, e) for e in edges])
    return host, {e.name: ppm for e, ppm in zip(edges, each, strict=True)}


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
        if local:  # the host's trim is not this device's
            raw["radio"]["pluto"]["xo_correction_hz"] = None
    elif cfg.radio.backend == "pluto" and cfg.radio.pluto.uri is None:
        # an emulated edge device: its channel carries its pair's relative crystal error (host minus edge) as the
        # host's error against an exact edge (radio.pluto.emulated_ppm), the host's crystal being the fleet's one
        host_ppm, edge_ppm = edge_crystals_ppm(cfg, [edge])
        raw["radio"]["pluto"]["emulated_ppm"] = host_ppm - edge_ppm[edge.name]
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


def broadcast_tx(cfg: TestbedConfig, edges: list[FleetEdge], pluto_uri: str | None = None,
                 receive: bool = False) -> RadioBackend:
    """The one transmitter every edge hears: the IQ cables to all of them (zmq), this host's Pluto (pluto, its URI),
    or an emulated Pluto on those cables (pluto, no URI). receive: a real Pluto also streams what it receives (the
    uplinks of `airlora fed`)."""
    air = fleet_air(cfg, edges, pluto_uri)
    endpoints = [e.iq_endpoint for e in edges] if air != "pluto" else []
    curve = cable_curve(cfg.control.curve, "tx")
    host_ppm = edge_crystals_ppm(cfg, edges)[0] if air == "emulated" else 0.0
    return make_broadcast_backend(cfg.radio, endpoints, curves=[curve] * len(endpoints),
                                  lag_timeout_s=cfg.fleet.lag_timeout_s, pluto_uri=pluto_uri, host_ppm=host_ppm,
                                  seed=cfg.channel.seed, stream_rx=receive)
