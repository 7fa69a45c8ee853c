"""Frame v2 control messages: old peers still parse v1 messages, every new size and count is bounded."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest

from testbed.messages import (MAX_RANGES, MAX_RUNS, BurstDone, BurstReport, MissingRequest, ProtocolError, SessionStart,
                              decode, encode, from_quarter_db, quarter_db)

SHA = "cd" * 32
V2_FIELDS = {"frame_version", "rolloff", "samples_per_symbol", "mcs_family", "burst_airtime_s"}


def start(**kw) -> SessionStart:
    fields = dict(session=1, payload_bytes=5000, packet_count=5, packet_payload_bytes=1024, mcs="qpsk-1/2",
                  payload_sha256=SHA, deadline_s=60.0, sample_rate_hz=1e6, backend="zmq")
    return SessionStart(**{**fields, **kw})


def wire(msg) -> dict:
    return msgpack.unpackb(encode(msg), raw=False)


def test_v1_messages_carry_no_v2_field_so_an_older_edge_parses_them() -> None:
    assert not V2_FIELDS & set(wire(start()))
    done = BurstDone(session=1, burst=1, first_sample=0, samples_sent=10, ranges=[[0, 4]], airtime_s=0.1)
    assert not {"mcs", "codewords", "runs", "last"} & set(wire(done))
    missing = MissingRequest(session=1, round=0, ranges=[[1, 2]], missing_count=2)
    assert not {"unit", "through_burst", "last_burst"} & set(wire(missing))
    # and a v1 message as an older host sends it decodes with the v1 defaults
    back = decode(encode(start()))
    assert (back.frame_version, back.mcs_family, back.rolloff, back.samples_per_symbol) == (1, "conv", 0.25, 4)


def test_v2_session_start_round_trips_and_pairs_frame_with_family() -> None:
    msg = start(mcs="ldpc-qpsk-1/2", frame_version=2, mcs_family="ldpc", rolloff=0.15, burst_airtime_s=0.5)
    assert decode(encode(msg)) == msg and V2_FIELDS <= set(wire(msg)) | {"samples_per_symbol"}
    with pytest.raises(ValueError, match="frame_version 2 goes with mcs_family ldpc"):
        start(frame_version=2)
    with pytest.raises(ValueError):
        start(frame_version=2, mcs_family="ldpc", burst_airtime_s=5.0)


def test_byte_ranges_are_u64_but_packet_ranges_stay_u32() -> None:
    big = [[2**40, 2**40 + 10]]
    assert decode(encode(MissingRequest(session=1, round=0, ranges=big, missing_count=11, unit="byte",
                                        through_burst=3))).ranges == big
    with pytest.raises(ValueError, match="u32"):
        MissingRequest(session=1, round=0, ranges=big, missing_count=11)
    with pytest.raises(ValueError):
        MissingRequest(session=1, round=0, ranges=[[0, 5], [3, 9]], missing_count=1, unit="byte")
    with pytest.raises(ValueError):
        MissingRequest(session=1, round=0, ranges=[[i, i] for i in range(0, 2 * MAX_RANGES + 2, 2)],
                       missing_count=1, unit="byte")


def test_a_resumes_held_list_round_trips_its_last_burst_and_an_older_host_parses_the_rest() -> None:
    held = MissingRequest(session=1, round=0, ranges=[[10, 99]], missing_count=90, unit="byte", last_burst=2**32 - 2)
    assert decode(encode(held)) == held and wire(held)["last_burst"] == 2**32 - 2
    old = {k: v for k, v in wire(held).items() if k != "last_burst"}  # what an edge before last_burst sends
    assert decode(msgpack.packb(old, use_bin_type=True)).last_burst is None
    for bad, problem in ((-1, "last_burst: Input should be greater than or equal to 0"),
                         (2**32, "last_burst: Input should be less than or equal to 4294967295"),
                         (1.5, "last_burst: Input should be a valid integer")):
        with pytest.raises(ProtocolError, match=problem):
            decode(msgpack.packb({**wire(held), "last_burst": bad}, use_bin_type=True))
    for other in ({"through_burst": 4}, {"unit": "packet"}):  # only a byte list written before any burst
        with pytest.raises(ProtocolError, match="last_burst goes only on a byte list without through_burst"):
            decode(msgpack.packb({**wire(held), **other}, use_bin_type=True))


def test_burst_done_runs_are_bounded_and_add_up() -> None:
    ok = BurstDone(session=1, burst=2, first_sample=0, samples_sent=10, ranges=[], airtime_s=0.1,
                   mcs="ldpc-qpsk-1/2", codewords=7, runs=[[0, 3], [1000, 4]], last=True)
    assert decode(encode(ok)) == ok
    with pytest.raises(ValueError, match="do not hold"):
        BurstDone(session=1, burst=2, first_sample=0, samples_sent=10, ranges=[], airtime_s=0.1, codewords=7,
                  runs=[[0, 3]])
    with pytest.raises(ValueError):
        BurstDone(session=1, burst=2, first_sample=0, samples_sent=10, ranges=[], airtime_s=0.1, codewords=70000)
    with pytest.raises(ValueError):
        BurstDone(session=1, burst=2, first_sample=0, samples_sent=10, ranges=[], airtime_s=0.1,
                  codewords=MAX_RUNS + 1, runs=[[i, 1] for i in range(MAX_RUNS + 1)])


def test_burst_report_is_bounded_on_receipt() -> None:
    fields = msgpack.unpackb(encode(BurstReport(session=1, burst=1, detected=True)), raw=False)
    for bad in ({"codeword_snr_db": bytes(70000)}, {"snr_db": float("nan")}, {"codewords_ok": 70000},
                {"failed": [[5, 1]]}, {"failed": [[0, 0]] * 2}, {"decode_lag_s": -1.0}):
        with pytest.raises(ProtocolError):
            decode(msgpack.packb({**fields, **bad}, use_bin_type=True))


def test_quarter_db_codes_saturate_and_round_trip() -> None:
    snr = np.array([-40.0, -1.3, 0.0, 12.26, 31.75, 90.0, np.nan])
    back = from_quarter_db(quarter_db(snr))
    assert back.tolist() == [-32.0, -1.25, 0.0, 12.25, 31.75, 31.75, -32.0]


def test_a_v2_uplink_request_round_trips_and_a_v1_one_carries_no_v2_field() -> None:
    from testbed.messages import UplinkRequest

    v1 = UplinkRequest(session=7, burst=1, mcs="qpsk-1/2", ranges=[[0, 3]])
    assert not {"runs", "flags"} & set(wire(v1)) and decode(encode(v1)) == v1  # an edge before uplink:v2 parses it
    v2 = UplinkRequest(session=7, burst=2, mcs="ldpc-qpsk-1/2", ranges=[], runs=[[0, 40], [9680, 3]], flags=3)
    assert decode(encode(v2)) == v2 and wire(v2)["runs"] == [[0, 40], [9680, 3]]
    with pytest.raises(ProtocolError):
        decode(msgpack.packb({**wire(v2), "runs": [[0, 1]] * (MAX_RUNS + 1)}, use_bin_type=True))
    with pytest.raises(ProtocolError):
        decode(msgpack.packb({**wire(v2), "flags": 256}, use_bin_type=True))
