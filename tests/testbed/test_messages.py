"""The control message set: every message round trips; anything else is a ProtocolError naming the problem."""

from __future__ import annotations

import math

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from testbed.messages import TrainDone, TrainStart, UplinkRequest, UplinkSent  # federated rounds
from testbed.messages import (
    MAX_RANGES,
    MESSAGE_TYPES,
    PROTOCOL_VERSION,
    ApplyResult,
    BurstDone,
    BurstReport,
    Bye,
    Error,
    FountainProgress,
    FountainStart,
    Heartbeat,
    Hello,
    HelloAck,
    Message,
    MissingRequest,
    ModelIdentity,
    PacketSnr,
    ProtocolError,
    SessionAck,
    SessionStart,
    SnrReport,
    TransferComplete,
    decode,
    encode,
    ranges_to_seqs,
    seqs_to_ranges,
)

SHA = "ab" * 32


def samples() -> list[Message]:
    """One fully populated message of every type (and a few minimal ones)."""
    model = ModelIdentity(name="minilm-l6", sha256=SHA)
    return [
        Hello(role="host", node_id="gpu-host", software_version="0.1.0", base_model=model,
              capabilities=["finetune", "radio:zmq"], adapter_id=None, req=7),
        Hello(role="host", node_id="h", software_version="0.1.0"),
        HelloAck(role="edge", node_id="pi-1", software_version="0.1.0", base_model=model,
                 capabilities=["apply", "radio:sim"], adapter_id="a-3", accepted=True),
        HelloAck(role="edge", node_id="pi-1", software_version="0.1.0", accepted=False, reason="too many hosts"),
        SessionStart(session=2**32 - 1, payload_bytes=1_500_000, packet_count=1465, packet_payload_bytes=1024,
                     mcs="qpsk-1/2", payload_sha256=SHA, deadline_s=120.0, sample_rate_hz=1e6, backend="zmq",
                     adapter_id="a-4", req=3),
        SessionAck(session=5, ready=False, reason="base model differs"),
        SnrReport(session=5, burst=2, sample_index=2**40, time_s=1.8e9, mean_snr_db=12.5, packets_detected=3,
                  packets_crc_ok=2, packets=[PacketSnr(seq=0, snr_db=12.0, crc_ok=True),
                                             PacketSnr(seq=1, snr_db=-3.5, crc_ok=False),
                                             PacketSnr(seq=2, snr_db=13, crc_ok=True)]),
        SnrReport(session=5, burst=3, sample_index=0, time_s=0.0, mean_snr_db=None, packets_detected=0,
                  packets_crc_ok=0),
        MissingRequest(session=5, round=1, ranges=seqs_to_ranges([3, 4, 5, 9, 100]), missing_count=5),
        BurstDone(session=5, burst=0, first_sample=0, samples_sent=123456, ranges=[[0, 1464]], airtime_s=0.12),
        SessionStart(session=7, payload_bytes=28_000_000, packet_count=27344, packet_payload_bytes=1024,
                     mcs="ldpc-qpsk-1/2", payload_sha256=SHA, deadline_s=600.0, sample_rate_hz=4e6, backend="zmq",
                     frame_version=2, rolloff=0.15, samples_per_symbol=4, mcs_family="ldpc", burst_airtime_s=0.5),
        MissingRequest(session=7, round=0, ranges=[[0, 199], [2**33, 2**33 + 159]], missing_count=360, unit="byte",
                       through_burst=12),
        BurstDone(session=7, burst=3, first_sample=10, samples_sent=500_000, ranges=[], airtime_s=0.5,
                  mcs="ldpc-64qam-5/6", codewords=120, runs=[[0, 20], [2**33, 100]], last=True),
        BurstReport(session=7, burst=3, mcs="ldpc-64qam-5/6", detected=True, snr_db=21.5, snr_db_p25=20.75,
                    codeword_snr_db=bytes([86, 84, 255]), cfo_hz=-1234.5, sco_ppm=3.25, evm_snr_db=22.0,
                    codewords_ok=2, codewords_failed=1, failed=[[400, 599]], harq_stored=1, received_bytes=400,
                    decode_lag_s=0.02),
        BurstReport(session=7, burst=4, detected=False),
        TransferComplete(session=5, payload_sha256=SHA, packets_received=1465, packets_retransmitted=17,
                         elapsed_s=3.5),
        ApplyResult(session=5, installed=True, accuracy=0.81, latency_s=2.5, adapter_id="a-4",
                    probe_max_abs_err=1e-3),
        ApplyResult(session=5, installed=False, reason="probe logits differ", latency_s=0.1),
        FountainStart(session=6, payload_bytes=174_712, symbol_bytes=1016, source_symbols=172, mcs="bpsk-1/4",
                      payload_sha256=SHA, deadline_s=300.0, sample_rate_hz=1e6, backend="zmq", adapter_id="a-5",
                      apply=True, evaluate=False, channel_snr_db=None, req=4),
        FountainProgress(session=6, burst=2, symbols_received=170, symbols_needed=172, packets_crc_ok=90,
                         packets_detected=96, mean_snr_db=1.5, done=False, elapsed_s=4.0),
        TrainStart(round=2, session=7, ranks={"bert.encoder.layer.0.attention.self.query": 4}, steps=20, seed=3,
                   start_sha256=SHA, uplink_endpoint="tcp://127.0.0.1:6001", sample_rate_hz=1e6, req=5),
        TrainDone(round=2, session=7, ok=True, payload_bytes=46_000, packet_count=45, payload_sha256=SHA, samples=500,
                  local_accuracy=0.71, train_s=12.5, final_loss=0.43),
        TrainDone(round=2, session=7, ok=False, reason="installed adapter is not the global adapter"),
        UplinkRequest(session=7, burst=1, mcs="qpsk-1/2", ranges=[[0, 44]], req=6),
        UplinkSent(session=7, burst=1, first_sample=2**33, samples_sent=400_000, packets=45),
        Heartbeat(seq=2**63, time_s=1.8e9, instance="0123456789abcdef"),
        Error(code="hello_required", message="say hello first", req=9),
        Bye(reason="shutting down"),
        Bye(),
    ]


def packed(**fields) -> bytes:
    return msgpack.packb(fields, use_bin_type=True)


def valid(kind: str = "session_ack") -> dict:
    return {"type": kind, "version": PROTOCOL_VERSION, "req": 0, "session": 1, "ready": True, "reason": None}


@pytest.mark.parametrize("msg", samples(), ids=lambda m: m.type)
def test_every_message_round_trips(msg: Message) -> None:
    data = encode(msg)
    back = decode(data)
    assert back == msg
    assert type(back) is type(msg)
    assert encode(back) == data


def test_every_type_has_a_sample() -> None:
    assert {m.type for m in samples()} == set(MESSAGE_TYPES)


def test_version_and_type_travel() -> None:
    obj = msgpack.unpackb(encode(Bye()))
    assert obj["type"] == "bye" and obj["version"] == PROTOCOL_VERSION


@pytest.mark.parametrize("data, words", [
    (b"", "empty"),
    (b"\xc1", "not valid msgpack"),
    (b"\x92\x01", "not valid msgpack"),  # truncated array
    (packed(type="bye", version=1) + b"\x00", "not valid msgpack"),  # trailing bytes
    (msgpack.packb([1, 2]), "must be a msgpack map"),
    (msgpack.packb({1: 2}), "not valid msgpack"),  # non-string keys
    (packed(version=1), "no 'type'"),
    (packed(type="launch_missiles", version=1), "unknown message type 'launch_missiles'"),
    (packed(type=7, version=1), "unknown message type 7"),
    (packed(type="bye"), "no 'version'"),
    (packed(type="bye", version=2), "protocol version 2"),
    (packed(type="bye", version="1"), "protocol version '1'"),
    (packed(type="bye", version=True), "protocol version True"),
    (packed(type="bye", version=1, colour="red"), "unknown field 'colour'"),
    (packed(**{**valid(), "session": "1"}), "session"),
    (packed(**{**valid(), "session": -1}), "session"),
    (packed(**{**valid(), "session": 2**32}), "session"),
    (packed(**{**valid(), "session": 1.0}), "session"),
    (packed(**{**valid(), "ready": 1}), "ready"),
    (packed(**{k: v for k, v in valid().items() if k != "ready"}), "missing field 'ready'"),
    (packed(type="heartbeat", version=1, seq=1, time_s=math.nan, instance="00112233"), "time_s"),
    (packed(type="heartbeat", version=1, seq=1, time_s=1.0, instance="not hex"), "instance"),
    (packed(type="error", version=1, code="Bad Code", message="x"), "code"),
    (packed(type="missing_request", version=1, session=1, round=0, ranges=[[5, 3]], missing_count=1),
     "first > last"),
    (packed(type="missing_request", version=1, session=1, round=0, ranges=[[1, 5], [4, 8]], missing_count=8),
     "overlaps"),
    (packed(type="missing_request", version=1, session=1, round=0, ranges=[[1, 2, 3]], missing_count=1),
     "ranges"),
    (packed(type="missing_request", version=1, session=1, round=0,
            ranges=[[2 * i, 2 * i] for i in range(MAX_RANGES + 1)], missing_count=1), "ranges"),
    (packed(type="hello", version=1, role="toaster", node_id="x", software_version="1"), "role"),
    (packed(type="snr_report", version=1, session=1, burst=0, sample_index=0, time_s=0.0, mean_snr_db=None,
            packets_detected=1, packets_crc_ok=1, packets=[{"seq": 0, "snr_db": 3.0, "crc_ok": True, "x": 1}]),
     "unknown field 'packets.0.x'"),
])
def test_bad_input_is_a_protocol_error_naming_the_problem(data: bytes, words: str) -> None:
    with pytest.raises(ProtocolError) as info:
        decode(data)
    assert words in str(info.value)


def test_oversized_is_refused_on_both_sides() -> None:
    msg = Error(code="x", message="y" * 1000)
    data = encode(msg)
    with pytest.raises(ProtocolError, match=rf"{len(data)} bytes is over max_message_bytes 100"):
        decode(data, max_bytes=100)
    with pytest.raises(ProtocolError, match="over max_message_bytes 100"):
        encode(msg, max_bytes=100)
    assert decode(data, max_bytes=len(data)) == msg


def test_seq_ranges_are_compact() -> None:
    assert seqs_to_ranges([9, 1, 2, 3, 3, 7]) == [[1, 3], [7, 7], [9, 9]]
    assert seqs_to_ranges([]) == []
    assert ranges_to_seqs([[1, 3], [7, 7]]) == [1, 2, 3, 7]


@given(st.sets(st.integers(0, 5000), max_size=300))
def test_seq_ranges_round_trip(seqs: set[int]) -> None:
    ranges = seqs_to_ranges(seqs)
    assert ranges_to_seqs(ranges) == sorted(seqs)
    msg = MissingRequest(session=1, round=0, ranges=ranges, missing_count=len(seqs))
    assert decode(encode(msg)) == msg


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_raise_only_protocol_errors(data: bytes) -> None:
    try:
        decode(data, max_bytes=150)
    except ProtocolError:
        pass


_leaf = st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats() | st.text(max_size=10) \
    | st.binary(max_size=10)
_value = st.recursive(_leaf, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(sorted(MESSAGE_TYPES)), st.sampled_from([1, 1, 1, 2, 0, "1", None]),
       st.dictionaries(st.sampled_from(["req", "session", "ready", "reason", "seq", "time_s", "instance", "code",
                                        "message", "ranges", "node_id", "role", "packets", "extra"]),
                       _value, max_size=6))
def test_random_maps_are_a_message_or_a_protocol_error(kind: str, version, fields: dict) -> None:
    data = msgpack.packb({"type": kind, "version": version, **fields}, use_bin_type=True)
    try:
        msg = decode(data)
    except ProtocolError:
        return
    assert msg.type == kind and decode(encode(msg)) == msg


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 2**32 - 1), st.integers(1, 65535), st.integers(1, 2**32 - 1))
def test_packet_count_must_be_what_the_payload_implies(payload_bytes: int, packet_bytes: int, count: int) -> None:
    """The edge sizes its reassembly and missing lists from packet_count: a count the payload does not need (a
    billion packets for one byte) is refused when the message is decoded, before anything is allocated."""
    fields = dict(type="session_start", version=1, session=1, payload_bytes=payload_bytes, packet_count=count,
                  packet_payload_bytes=packet_bytes, mcs="qpsk-1/2", payload_sha256=SHA, deadline_s=5.0,
                  sample_rate_hz=1e6, backend="zmq")
    implied = -(-payload_bytes // packet_bytes)
    for n in (count, implied):
        data = msgpack.packb({**fields, "packet_count": n}, use_bin_type=True)
        if n == implied:
            assert decode(data).packet_count == n
        else:
            with pytest.raises(ProtocolError, match=f"^invalid 'session_start' message: packet_count {n} is not the "
                                                    f"{implied} packets"):
                decode(data)


@pytest.mark.parametrize("change, problem", [
    ({"source_symbols": 171}, "source_symbols 171 is not the 172 symbols"),
    ({"symbol_bytes": 1020}, "symbol_bytes"),  # RaptorQ symbols are multiples of 8 bytes
    ({"symbol_bytes": 32}, "symbol_bytes"),
    ({"payload_bytes": 56403 * 64992 + 1}, "payload_bytes"),
    ({"source_symbols": 56404}, "source_symbols"),
])
def test_a_fountain_start_is_bounded_and_its_symbol_count_must_cover_the_payload(change, problem) -> None:
    fields = dict(type="fountain_start", version=PROTOCOL_VERSION, req=0, session=1, payload_bytes=174_712,
                  symbol_bytes=1016, source_symbols=172, mcs="bpsk-1/4", payload_sha256=SHA, deadline_s=10.0,
                  sample_rate_hz=1e6, backend="zmq", adapter_id=None, apply=True, evaluate=True, channel_snr_db=None)
    assert decode(packed(**fields)).source_symbols == 172
    with pytest.raises(ProtocolError, match=problem):
        decode(packed(**{**fields, **change}))
