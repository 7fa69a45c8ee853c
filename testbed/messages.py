"""The control-plane message set: small typed records, msgpack on the wire, validated on receipt.

Every message is a msgpack map with `type`, `version` (PROTOCOL_VERSION) and `req` (request id: a reply
echoes the id of the message it answers; 0 = unsolicited). `decode` refuses anything else with a
ProtocolError that names the problem: bytes that are not msgpack, a payload over the size limit, an
unknown type or version, a missing, extra or wrongly typed field, or a value out of range.

Direction (host = the DEALER that connects, edge = the ROUTER that binds):
  host -> edge: hello, session_start, fountain_start, burst_done, train_start, uplink_request, heartbeat, bye
  edge -> host: hello_ack, session_ack, snr_report, burst_report, missing_request, fountain_progress,
                transfer_complete, apply_result, train_done, uplink_sent, heartbeat (the answer to the host's),
                error, bye
"""

from __future__ import annotations

import os
from typing import Annotated, Any, ClassVar, Iterable, Literal

import msgpack
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from radio.config import MAX_INTERLEAVE_SYMBOLS
from testbed.errors import AirLoraError

PROTOCOL_VERSION = 1
DEFAULT_MAX_MESSAGE_BYTES = 1 << 20
MAX_RANGES = 4096  # run-length ranges in one missing_request / burst_done
MAX_PACKETS_PER_REPORT = 4096  # per-packet entries in one snr_report
MAX_CAPABILITIES = 64
MAX_RUNS = 4096  # codeword runs in one burst_done, failed byte ranges in one burst_report
MAX_BURST_CODEWORDS = 65535  # a v2 burst's SIG counts codewords in a u16
CAPABILITY_FRAME_V2 = "frame:v2"
"""Hello capability of an edge that receives v2 bursts; a host uses frame v2 only with an edge that lists it."""
CAPABILITY_UPLINK_V2 = "uplink:v2"
"""Hello capability of an edge that transmits its fed uplink as v2 bursts when the host asks (uplink_request runs)."""


class ProtocolError(AirLoraError):
    """A control message is malformed, oversized, of an unknown type or version, or fails validation."""


def new_instance_id() -> str:
    """A fresh random id for one run of a process: a peer that restarts gets a new one."""
    return os.urandom(8).hex()


U32 = Annotated[int, Field(ge=0, le=2**32 - 1)]
U64 = Annotated[int, Field(ge=0, le=2**64 - 1)]
Name = Annotated[str, Field(min_length=1, max_length=128)]
Text = Annotated[str, Field(max_length=1024)]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
Seconds = Annotated[float, Field(ge=0.0, le=1.0e9, allow_inf_nan=False)]
EpochSeconds = Annotated[float, Field(ge=0.0, le=1.0e11, allow_inf_nan=False)]
SnrDb = Annotated[float, Field(ge=-100.0, le=200.0, allow_inf_nan=False)]
SeqRange = Annotated[list[U32], Field(min_length=2, max_length=2)]
"""[first, last] of a run of packet sequence numbers, both inclusive."""


class Record(BaseModel):
    """A nested record inside a message: unknown fields refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Message(Record):
    """Base of every control message: `type`, `version` and the request id `req`."""

    type: str
    version: Literal[1] = PROTOCOL_VERSION
    req: U32 = Field(0, description="request id; a reply echoes it, 0 = unsolicited")

    TYPE: ClassVar[str] = ""
    WIRE_OPTIONAL: ClassVar[frozenset[str]] = frozenset()
    """Fields added after a message first shipped: left off the wire while they hold their default, so a peer
    that predates them still parses the message (their defaults are the old behaviour)."""


def _check_ranges(ranges: list[list[int]]) -> list[list[int]]:
    """Ranges must be [first, last] with first <= last, ascending and not overlapping."""
    previous = -1
    for first, last in ranges:
        if first > last:
            raise ValueError(f"range [{first}, {last}] has first > last")
        if first <= previous:
            raise ValueError(f"range [{first}, {last}] overlaps or is not ascending")
        previous = last
    return ranges


SeqRanges = Annotated[list[SeqRange], Field(max_length=MAX_RANGES), AfterValidator(_check_ranges)]
"""Ascending, non-overlapping [first, last] runs, at most MAX_RANGES of them."""
ByteRanges = Annotated[list[Annotated[list[U64], Field(min_length=2, max_length=2)]], Field(max_length=MAX_RANGES),
                       AfterValidator(_check_ranges)]
"""Ascending, non-overlapping [first, last] payload byte offsets (both inclusive), at most MAX_RANGES of them."""
CodewordRunField = Annotated[list[Annotated[int, Field(ge=0, le=2**64 - 1)]], Field(min_length=2, max_length=2)]
"""[offset, count]: `count` codewords at payload byte `offset` (frame v2)."""


def seqs_to_ranges(seqs: Iterable[int]) -> list[list[int]]:
    """Sequence numbers -> compact ascending [first, last] runs (duplicates merged)."""
    ranges: list[list[int]] = []
    for seq in sorted(set(int(s) for s in seqs)):
        if ranges and seq == ranges[-1][1] + 1:
            ranges[-1][1] = seq
        else:
            ranges.append([seq, seq])
    return ranges


def ranges_to_seqs(ranges: Iterable[list[int]]) -> list[int]:
    """[first, last] runs -> the sequence numbers they cover, ascending."""
    return [seq for first, last in ranges for seq in range(first, last + 1)]


# --- identity -------------------------------------------------------------------------------------


class ModelIdentity(Record):
    """Which base model a node runs: adapters only apply to the model they were trained on."""

    name: Name
    sha256: Sha256 | None = Field(None, description="hash of the base weights, when known")


class _Identity(Message):
    """Who a node is; carried by hello (host) and hello_ack (edge)."""

    role: Literal["host", "edge"]
    node_id: Name
    instance: Annotated[str, Field(pattern=r"^[0-9a-f]{8,64}$")] = Field(
        default_factory=new_instance_id, description="random per process start: a change means a restart")
    software_version: Annotated[str, Field(min_length=1, max_length=64)]
    base_model: ModelIdentity | None = None
    capabilities: list[Name] = Field(default_factory=list, max_length=MAX_CAPABILITIES,
                                     description='e.g. ["apply", "radio:sim", "radio:zmq"]')
    adapter_id: Name | None = Field(None, description="the installed adapter, None when none")


class Hello(_Identity):
    """host -> edge: first message after connecting, and again after the edge restarted."""

    TYPE: ClassVar[str] = "hello"
    type: Literal["hello"] = "hello"


class HelloAck(_Identity):
    """edge -> host: the answer to hello, with the edge's own identity."""

    TYPE: ClassVar[str] = "hello_ack"
    type: Literal["hello_ack"] = "hello_ack"
    accepted: bool = True
    reason: Text | None = None


# --- session --------------------------------------------------------------------------------------


class SessionStart(Message):
    """host -> edge: what is coming over the air, on which MCS, and how to verify it."""

    TYPE: ClassVar[str] = "session_start"
    type: Literal["session_start"] = "session_start"
    session: U32
    payload_bytes: Annotated[int, Field(ge=1, le=2**40)]
    packet_count: Annotated[int, Field(ge=1, le=2**32 - 1)]
    packet_payload_bytes: Annotated[int, Field(ge=1, le=65535)]
    mcs: Name
    payload_sha256: Sha256
    deadline_s: Annotated[float, Field(gt=0.0, le=1.0e6, allow_inf_nan=False)]
    sample_rate_hz: Annotated[float, Field(gt=0.0, le=1.0e10, allow_inf_nan=False)]
    backend: Name
    adapter_id: Name | None = None
    apply: bool = Field(True, description="install and evaluate the payload (False: a channel-sounding session)")
    channel_snr_db: SnrDb | None = Field(
        None, description="emulated channels only: the SNR the edge's channel model applies from now on")
    frame_version: Literal[1, 2] = Field(1, description="1: K=7 packets; 2: LDPC bursts (edges listing frame:v2)")
    rolloff: Annotated[float, Field(ge=0.05, le=1.0, allow_inf_nan=False)] = Field(
        0.25, description="RRC roll-off of the bursts (frame 2; frame 1 uses the edge's radio.rolloff)")
    samples_per_symbol: Annotated[int, Field(ge=2, le=16)] = Field(4, description="oversampling (frame 2)")
    mcs_family: Literal["conv", "ldpc"] = Field("conv", description="conv with frame 1, ldpc with frame 2")
    burst_airtime_s: Annotated[float, Field(ge=0.05, le=2.0, allow_inf_nan=False)] = Field(
        1.0, description="frame 2: longest burst on air")
    interleave_symbols: Annotated[int, Field(ge=0, le=MAX_INTERLEAVE_SYMBOLS)] = Field(
        0, description="frame 2: symbols an interleaving group of codewords spans (0: off; radio/interleave.py)")

    WIRE_OPTIONAL: ClassVar[frozenset[str]] = frozenset(
        {"frame_version", "rolloff", "samples_per_symbol", "mcs_family", "burst_airtime_s", "interleave_symbols"})

    @model_validator(mode="after")
    def _family_of_the_frame(self) -> "SessionStart":
        if (self.frame_version == 2) != (self.mcs_family == "ldpc"):
            raise ValueError(f"frame_version {self.frame_version} goes with mcs_family "
                             f"{'ldpc' if self.frame_version == 2 else 'conv'}, got {self.mcs_family}")
        return self

    @model_validator(mode="after")
    def _packets_cover_the_payload(self) -> "SessionStart":
        """packet_count is what payload_bytes in packets of packet_payload_bytes implies: the edge sizes its
        reassembly and its missing lists from it, so a count the payload does not need is refused."""
        implied = -(-self.payload_bytes // self.packet_payload_bytes)
        if self.packet_count != implied:
            raise ValueError(f"packet_count {self.packet_count} is not the {implied} packets that payload_bytes "
                             f"{self.payload_bytes} in packets of {self.packet_payload_bytes} bytes make")
        return self


class SessionAck(Message):
    """edge -> host: ready to receive the session, or why not."""

    TYPE: ClassVar[str] = "session_ack"
    type: Literal["session_ack"] = "session_ack"
    session: U32
    ready: bool
    reason: Text | None = None


class PacketSnr(Record):
    """One detected packet: its sequence number, the SNR measured on it, whether its CRC passed."""

    seq: U32
    snr_db: SnrDb
    crc_ok: bool


class SnrReport(Message):
    """edge -> host: what the edge measured on one burst (summary, optionally per packet)."""

    TYPE: ClassVar[str] = "snr_report"
    type: Literal["snr_report"] = "snr_report"
    session: U32
    burst: U32
    sample_index: U64 = Field(description="receive-stream sample index where the burst was processed")
    time_s: EpochSeconds = Field(description="edge clock (time.time()) when the report was made")
    mean_snr_db: SnrDb | None = Field(description="mean over detected packets; None when none was detected")
    packets_detected: U32
    packets_crc_ok: U32
    packets: list[PacketSnr] = Field(default_factory=list, max_length=MAX_PACKETS_PER_REPORT)
    constellation: list[Annotated[list[float], Field(min_length=2, max_length=2)]] = Field(
        default_factory=list, max_length=1024, description="equalized symbols (I, Q) of one packet of the burst")
    constellation_mcs: Name | None = None


class MissingRequest(Message):
    """edge -> host: selective repeat, what is still missing as [first, last] runs: packet sequence numbers (frame
    1), or payload byte offsets (frame 2, unit byte, sent after the burst flagged last of a pass)."""

    TYPE: ClassVar[str] = "missing_request"
    type: Literal["missing_request"] = "missing_request"
    session: U32
    round: U32 = Field(description="repair round, 0 after the first pass")
    ranges: ByteRanges = Field(description="packet runs (each number a u32) or byte ranges, both inclusive")
    missing_count: U64 = Field(description="packets (bytes) missing in total (may exceed what ranges lists)")
    truncated: bool = Field(False, description="ranges lists only the first MAX_RANGES runs")
    unit: Literal["packet", "byte"] = "packet"
    through_burst: U32 | None = Field(None, description="unit byte: the highest burst the edge had processed")
    last_burst: U32 | None = Field(
        None, description="unit byte, held list of a resumed session (through_burst None): the host numbers its "
                          "bursts from last_burst + 1; the edge ignores lower numbers it was not told of since")

    WIRE_OPTIONAL: ClassVar[frozenset[str]] = frozenset({"unit", "through_burst", "last_burst"})

    @model_validator(mode="after")
    def _packets_are_u32(self) -> "MissingRequest":
        if self.unit == "packet" and (self.missing_count > 2**32 - 1 or any(r[1] > 2**32 - 1 for r in self.ranges)):
            raise ValueError("packet numbers and counts are u32")
        return self

    @model_validator(mode="after")
    def _last_burst_on_a_held_list(self) -> "MissingRequest":
        if self.last_burst is not None and (self.unit != "byte" or self.through_burst is not None):
            raise ValueError("last_burst goes only on a byte list without through_burst (a resume's held list)")
        return self


class BurstDone(Message):
    """host -> edge: one burst has been transmitted, where it starts and which packets it held."""

    TYPE: ClassVar[str] = "burst_done"
    type: Literal["burst_done"] = "burst_done"
    session: U32
    burst: U32
    first_sample: U64 = Field(description="transmit-stream sample index where the burst starts")
    samples_sent: U64
    ranges: SeqRanges = Field(description="packets sent, as [first, last] runs (frame 1; empty in frame 2)")
    airtime_s: Seconds
    mcs: Name | None = Field(None, description="frame 2: the burst's MCS")
    codewords: Annotated[int, Field(ge=0, le=MAX_BURST_CODEWORDS)] = Field(0, description="frame 2: data codewords")
    runs: list[CodewordRunField] = Field(default_factory=list, max_length=MAX_RUNS,
                                         description="frame 2: the codewords as [offset, count] runs")
    last: bool = Field(False, description="frame 2: nothing is left to send after it (the end of a pass)")

    WIRE_OPTIONAL: ClassVar[frozenset[str]] = frozenset({"mcs", "codewords", "runs", "last"})

    @model_validator(mode="after")
    def _runs_hold_the_codewords(self) -> "BurstDone":
        if self.runs and sum(min(count, MAX_BURST_CODEWORDS + 1) for _, count in self.runs) != self.codewords:
            raise ValueError(f"runs do not hold the burst's {self.codewords} codewords")
        return self


class BurstReport(Message):
    """edge -> host (frame 2): what the edge received of one burst, once per burst, in burst order."""

    TYPE: ClassVar[str] = "burst_report"
    type: Literal["burst_report"] = "burst_report"
    session: U32
    burst: U32
    mcs: Name | None = Field(None, description="the MCS its SIG announced; None when it was not detected")
    detected: bool
    snr_db: SnrDb | None = Field(None, description="mean over the codewords (None: not measured)")
    snr_db_p25: SnrDb | None = None
    codeword_snr_db: bytes = Field(b"", max_length=MAX_BURST_CODEWORDS,
                                   description="per data codeword, int8 in quarter dB (-32..31.75 dB)")
    cfo_hz: Annotated[float, Field(ge=-1.0e8, le=1.0e8, allow_inf_nan=False)] | None = None
    sco_ppm: Annotated[float, Field(ge=-1.0e6, le=1.0e6, allow_inf_nan=False)] | None = None
    evm_snr_db: SnrDb | None = None
    codewords_ok: Annotated[int, Field(ge=0, le=MAX_BURST_CODEWORDS)] = 0
    codewords_failed: Annotated[int, Field(ge=0, le=MAX_BURST_CODEWORDS)] = 0
    failed: ByteRanges = Field(default_factory=list, description="payload bytes of the failed codewords")
    harq_stored: U32 = Field(0, description="codewords whose LLRs the edge holds for combining")
    received_bytes: U64 = Field(0, description="payload bytes the edge holds after this burst")
    decode_lag_s: Seconds = Field(0.0, description="stream time the edge had read past the burst's end")
    error: Text | None = None


MAX_QUARTER_DB = 127


def quarter_db(values) -> bytes:
    """SNRs in dB -> int8 quarter-dB bytes (saturating; nan as the lowest value)."""
    import numpy as np

    x = np.nan_to_num(np.asarray(values, np.float64) * 4.0, nan=-128.0, posinf=MAX_QUARTER_DB, neginf=-128.0)
    return np.clip(np.round(x), -128, MAX_QUARTER_DB).astype(np.int8).tobytes()


def from_quarter_db(data: bytes):
    """int8 quarter-dB bytes -> float64 dB."""
    import numpy as np

    return np.frombuffer(data, np.int8).astype(np.float64) / 4.0


class TransferComplete(Message):
    """edge -> host: every packet received and the payload SHA-256 matches."""

    TYPE: ClassVar[str] = "transfer_complete"
    type: Literal["transfer_complete"] = "transfer_complete"
    session: U32
    payload_sha256: Sha256
    packets_received: U32
    packets_retransmitted: U32 = 0
    elapsed_s: Seconds


class ApplyResult(Message):
    """edge -> host: whether the adapter was installed and how it does on the edge."""

    TYPE: ClassVar[str] = "apply_result"
    type: Literal["apply_result"] = "apply_result"
    session: U32
    installed: bool
    reason: Text | None = None
    accuracy: Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)] | None = None
    latency_s: Seconds
    adapter_id: Name | None = None
    probe_max_abs_err: Annotated[float, Field(ge=0.0, allow_inf_nan=False)] | None = None


# --- fountain-coded broadcast (one payload to a fleet) ----------------------------------------------------

FOUNTAIN_MIN_SYMBOL_BYTES = 64
FOUNTAIN_MAX_SYMBOL_BYTES = 64992
FOUNTAIN_MAX_SOURCE_SYMBOLS = 56403
"""radio.fountain's bounds, repeated here so the control plane stays below the radio (tests check they agree)."""


class FountainStart(Message):
    """host -> edge: a fountain-coded broadcast is on the air; any source_symbols-and-a-few of its symbols rebuild it.

    Each packet of the session carries one RaptorQ symbol (4-byte payload id + symbol_bytes); the edge answers
    with a session_ack, and after every burst with a snr_report and a fountain_progress."""

    TYPE: ClassVar[str] = "fountain_start"
    type: Literal["fountain_start"] = "fountain_start"
    session: U32
    payload_bytes: Annotated[int, Field(ge=1, le=FOUNTAIN_MAX_SOURCE_SYMBOLS * FOUNTAIN_MAX_SYMBOL_BYTES)]
    symbol_bytes: Annotated[int, Field(ge=FOUNTAIN_MIN_SYMBOL_BYTES, le=FOUNTAIN_MAX_SYMBOL_BYTES, multiple_of=8)]
    source_symbols: Annotated[int, Field(ge=1, le=FOUNTAIN_MAX_SOURCE_SYMBOLS)]
    mcs: Name
    payload_sha256: Sha256
    deadline_s: Annotated[float, Field(gt=0.0, le=1.0e6, allow_inf_nan=False)]
    sample_rate_hz: Annotated[float, Field(gt=0.0, le=1.0e10, allow_inf_nan=False)]
    backend: Name
    adapter_id: Name | None = None
    apply: bool = Field(True, description="install the payload (False: a channel-sounding session)")
    evaluate: bool = Field(True, description="after installing, evaluate on the edge's test split")
    channel_snr_db: SnrDb | None = Field(
        None, description="emulated channels only: the SNR the edge's channel model applies from now on")

    @model_validator(mode="after")
    def _symbols_cover_the_payload(self) -> "FountainStart":
        implied = -(-self.payload_bytes // self.symbol_bytes)
        if self.source_symbols != implied:
            raise ValueError(f"source_symbols {self.source_symbols} is not the {implied} symbols that payload_bytes "
                             f"{self.payload_bytes} in symbols of {self.symbol_bytes} bytes make")
        return self


class FountainProgress(Message):
    """edge -> host: how far the edge is with a fountain session (after every burst, and once when it decodes)."""

    TYPE: ClassVar[str] = "fountain_progress"
    type: Literal["fountain_progress"] = "fountain_progress"
    session: U32
    burst: U32 = Field(description="the last burst the host announced (0: none yet)")
    symbols_received: U32 = Field(description="distinct symbols of this session taken in")
    symbols_needed: U32 = Field(description="source symbols K: the fewest that may rebuild the payload")
    packets_crc_ok: U32 = Field(description="packets of this burst that passed their CRC (any session)")
    packets_detected: U32 = Field(description="packets detected in this burst")
    mean_snr_db: SnrDb | None = Field(description="mean SNR over this burst's detected packets; None when none")
    done: bool = Field(description="the payload is rebuilt and matches its SHA-256")
    elapsed_s: Seconds = Field(description="since the edge took the session")


# --- federated fine-tuning: local training and the uplink (edge -> host over the radio) -------------------

MAX_RANK_ENTRIES = 1024
MAX_UPLINK_BYTES = 128 << 20
Rank = Annotated[int, Field(ge=0, le=1024)]
Accuracy = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]


def _endpoint(value: str) -> str:
    from radio.config import check_zmq_endpoint

    return check_zmq_endpoint(value)


class TrainStart(Message):
    """host -> edge: fine-tune on your own shard with these ranks, from the global adapter with this SHA-256 (None:
    from the base model), then hold the signed adapter for the uplink `session`."""

    TYPE: ClassVar[str] = "train_start"
    type: Literal["train_start"] = "train_start"
    round: U32
    session: U32 = Field(description="the uplink session the adapter will travel in")
    ranks: dict[Name, Rank] = Field(max_length=MAX_RANK_ENTRIES, description="rank per adapted module (0: none)")
    steps: Annotated[int, Field(ge=1, le=10**6)]
    seed: U32
    start_sha256: Sha256 | None = Field(None, description="the installed global adapter to start from")
    uplink_endpoint: Annotated[str, Field(max_length=256), AfterValidator(_endpoint)] = Field(
        description="where the host's uplink receiver listens (the edge connects its transmitter)")
    sample_rate_hz: Annotated[float, Field(gt=0.0, le=1.0e10, allow_inf_nan=False)]


class TrainDone(Message):
    """edge -> host: local training ended; the signed adapter is held for the uplink (or why not)."""

    TYPE: ClassVar[str] = "train_done"
    type: Literal["train_done"] = "train_done"
    round: U32
    session: U32
    ok: bool
    reason: Text | None = None
    payload_bytes: Annotated[int, Field(ge=0, le=MAX_UPLINK_BYTES)] = 0
    packet_count: U32 = 0
    payload_sha256: Sha256 | None = None
    samples: U32 = Field(0, description="training examples in the edge's shard")
    local_accuracy: Accuracy | None = None
    train_s: Seconds = 0.0
    final_loss: Annotated[float, Field(ge=0.0, le=1.0e6, allow_inf_nan=False)] | None = None


class UplinkRequest(Message):
    """host -> edge: transmit these packets of the held adapter at this MCS (the host measured the last burst).
    Frame v2 (to an edge listing uplink:v2): `runs` names the burst's codewords, `mcs` is an LDPC MCS, `flags` the
    SIG's, `ranges` is empty; the edge transmits exactly that burst (radio.burst_tx.BurstPlan)."""

    TYPE: ClassVar[str] = "uplink_request"
    type: Literal["uplink_request"] = "uplink_request"
    session: U32
    burst: U32
    mcs: Name
    ranges: SeqRanges
    runs: list[CodewordRunField] = Field(default_factory=list, max_length=MAX_RUNS,
                                         description="frame 2: the codewords as [offset, count] runs")
    flags: Annotated[int, Field(ge=0, le=255)] = Field(0, description="frame 2: the SIG flags (last, probe)")

    WIRE_OPTIONAL: ClassVar[frozenset[str]] = frozenset({"runs", "flags"})


class UplinkSent(Message):
    """edge -> host: the burst is on the air: where it starts on the edge's transmit clock and how long it is."""

    TYPE: ClassVar[str] = "uplink_sent"
    type: Literal["uplink_sent"] = "uplink_sent"
    session: U32
    burst: U32
    first_sample: U64
    samples_sent: U64
    packets: U32


# --- liveness and errors --------------------------------------------------------------------------


class Heartbeat(Message):
    """Both ways: the host sends one every heartbeat_s, the edge answers each with its own."""

    TYPE: ClassVar[str] = "heartbeat"
    type: Literal["heartbeat"] = "heartbeat"
    seq: U64
    time_s: EpochSeconds = Field(description="sender's clock, time.time()")
    instance: Annotated[str, Field(pattern=r"^[0-9a-f]{8,64}$")]


class Error(Message):
    """Either way: a request was refused; `code` is machine-readable, `message` is for people."""

    TYPE: ClassVar[str] = "error"
    type: Literal["error"] = "error"
    code: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
    message: Text = ""


class Bye(Message):
    """Either way: the sender is closing on purpose."""

    TYPE: ClassVar[str] = "bye"
    type: Literal["bye"] = "bye"
    reason: Text | None = None


# Error codes used by the control plane itself.
ERR_BAD_MESSAGE = "bad_message"
ERR_HELLO_REQUIRED = "hello_required"
ERR_SESSION_BUSY = "session_busy"
"""The edge serves another host's live session: a SessionStart may be tried again once that host is gone."""
ERR_NOT_OWNER = "not_session_owner"
"""A message about a session from a host that did not start it."""
ERR_REASSEMBLY_FAILED = "reassembly_failed"
"""Frame v2: the edge could not keep the payload (its spill file's disk); the session is over."""

MESSAGE_TYPES: dict[str, type[Message]] = {
    cls.TYPE: cls
    for cls in (Hello, HelloAck, SessionStart, SessionAck, SnrReport, MissingRequest, BurstDone, BurstReport,
                TransferComplete, ApplyResult, FountainStart, FountainProgress, TrainStart, TrainDone, UplinkRequest,
                UplinkSent, Heartbeat, Error, Bye)
}


def type_name(kind: str | type[Message]) -> str:
    """'hello' or Hello -> 'hello' (unknown names are refused)."""
    name = kind.TYPE if isinstance(kind, type) else kind
    if name not in MESSAGE_TYPES:
        raise ProtocolError(f"unknown message type {name!r}")
    return name


def _describe(err: dict[str, Any]) -> str:
    """One short line for one pydantic error."""
    field = ".".join(str(p) for p in err["loc"]) or "(message)"
    if err["type"] == "extra_forbidden":
        return f"unknown field '{field}'"
    if err["type"] == "missing":
        return f"missing field '{field}'"
    if not err["loc"]:  # a rule across fields: its message names them
        return str(err["msg"]).removeprefix("Value error, ")
    value = repr(err.get("input"))
    if len(value) > 40:
        value = value[:37] + "..."
    return f"{field}: {err['msg']} (got {value})"


def encode(msg: Message, max_bytes: int | None = None) -> bytes:
    """A message -> msgpack bytes; ProtocolError if it exceeds max_bytes."""
    if not isinstance(msg, Message) or msg.type not in MESSAGE_TYPES:
        raise ProtocolError(f"cannot encode {type(msg).__name__}: not a control message")
    fields = msg.model_dump(mode="python")
    for name in msg.WIRE_OPTIONAL:  # newer fields at their defaults stay off the wire (older peers parse it)
        if fields.get(name) == type(msg).model_fields[name].get_default(call_default_factory=True):
            del fields[name]
    data = msgpack.packb(fields, use_bin_type=True)
    if max_bytes is not None and len(data) > max_bytes:
        raise ProtocolError(f"'{msg.type}' message is {len(data)} bytes, over max_message_bytes {max_bytes}")
    return data


def decode(data: bytes, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> Message:
    """msgpack bytes -> a validated message; ProtocolError naming the problem otherwise."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ProtocolError(f"expected bytes, got {type(data).__name__}")
    if len(data) > max_bytes:
        raise ProtocolError(f"message of {len(data)} bytes is over max_message_bytes {max_bytes}")
    if len(data) == 0:
        raise ProtocolError("empty message")
    try:
        obj = msgpack.unpackb(bytes(data), raw=False, use_list=True, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise ProtocolError(f"not valid msgpack ({detail})"[:300]) from None
    if not isinstance(obj, dict):
        raise ProtocolError(f"a message must be a msgpack map, got {type(obj).__name__}")
    kind = obj.get("type")
    if kind is None:
        raise ProtocolError("message has no 'type' field")
    if not isinstance(kind, str) or kind not in MESSAGE_TYPES:
        shown = repr(kind) if len(repr(kind)) <= 40 else repr(kind)[:37] + "..."
        raise ProtocolError(f"unknown message type {shown}")
    version = obj.get("version")
    if version is None:
        raise ProtocolError(f"'{kind}' message has no 'version' field")
    if type(version) is not int or version != PROTOCOL_VERSION:
        shown = repr(version) if len(repr(version)) <= 40 else repr(version)[:37] + "..."
        raise ProtocolError(f"'{kind}' message has protocol version {shown}; this side speaks {PROTOCOL_VERSION}")
    try:
        return MESSAGE_TYPES[kind].model_validate(obj, strict=True)
    except ValidationError as exc:
        problems = [_describe(e) for e in exc.errors()]
        more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        raise ProtocolError(f"invalid '{kind}' message: " + "; ".join(problems[:3]) + more) from None
