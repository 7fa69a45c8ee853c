"""The federated messages refuse out-of-range fields on receipt, naming the field: a train_start with steps or ranks
out of range, train_done with an absurd size, uplink_request and uplink_sent with absurd numbers."""

from __future__ import annotations

import msgpack
import pytest

from testbed.messages import PROTOCOL_VERSION, ProtocolError, decode

SHA = "ab" * 32
MODULE = "bert.encoder.layer.0.attention.self.query"


def _train_start(**over) -> dict:
    return {"type": "train_start", "version": PROTOCOL_VERSION, "req": 1, "round": 1, "session": 7,
            "ranks": {MODULE: 4}, "steps": 20, "seed": 0, "start_sha256": None,
            "uplink_endpoint": "tcp://127.0.0.1:6001", "sample_rate_hz": 1e6, **over}


def _raw(fields: dict) -> bytes:
    return msgpack.packb(fields, use_bin_type=True)


def test_a_good_train_start_decodes() -> None:
    msg = decode(_raw(_train_start()))
    assert msg.type == "train_start" and msg.steps == 20 and msg.ranks == {MODULE: 4}


@pytest.mark.parametrize("over, field", [
    ({"steps": 0}, "steps"),
    ({"steps": 10**6 + 1}, "steps"),
    ({"steps": -5}, "steps"),
    ({"ranks": {MODULE: -1}}, "ranks"),
    ({"ranks": {MODULE: 1025}}, "ranks"),
    ({"ranks": {f"m{i}": 1 for i in range(1025)}}, "ranks"),
    ({"ranks": {MODULE: "8"}}, "ranks"),
    ({"sample_rate_hz": 0.0}, "sample_rate_hz"),
    ({"uplink_endpoint": "http://10.0.0.1/steal"}, "uplink_endpoint"),
    ({"start_sha256": "zz"}, "start_sha256"),
])
def test_train_start_out_of_range_is_refused(over: dict, field: str) -> None:
    with pytest.raises(ProtocolError, match=field):
        decode(_raw(_train_start(**over)))


@pytest.mark.parametrize("fields, field", [
    ({"type": "train_done", "round": 1, "session": 7, "ok": True, "payload_bytes": (128 << 20) + 1}, "payload_bytes"),
    ({"type": "train_done", "round": 1, "session": 7, "ok": True, "packet_count": 2**32}, "packet_count"),
    ({"type": "uplink_request", "session": 7, "burst": 1, "mcs": "qpsk-1/2", "ranges": [[5, 2]]}, "ranges"),
    ({"type": "uplink_request", "session": 7, "burst": 1, "mcs": "qpsk-1/2", "ranges": [[0, 2**32]]}, "ranges"),
    ({"type": "uplink_sent", "session": 7, "burst": 1, "first_sample": -1, "samples_sent": 10, "packets": 1},
     "first_sample"),
    ({"type": "uplink_sent", "session": 7, "burst": 1, "first_sample": 0, "samples_sent": 10, "packets": -1},
     "packets"),
])
def test_absurd_uplink_numbers_are_refused(fields: dict, field: str) -> None:
    with pytest.raises(ProtocolError, match=field):
        decode(_raw({"version": PROTOCOL_VERSION, "req": 0, **fields}))
