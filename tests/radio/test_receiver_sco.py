"""The v1 receiver under a sample clock offset: a long packet slips samples by its end (1 kB at bpsk-1/4, 20 ppm:
~2.7), so it is sampled at the drifting instants; without an offset it is sampled exactly as before."""

from __future__ import annotations

import numpy as np
import pytest

from radio.channel import Channel
from radio.frame import Header
from radio.mcs import by_name
from radio.preamble import layout
from radio.receiver import LTF_SYMBOLS, Receiver
from radio.transmitter import TX_POWER, burst, header_block_symbols, packet_symbols, payload_data_symbols

FS, SPS, ROLLOFF = 1.0e6, 4, 0.25


def stream(mcs_name: str, payload_bytes: int, snr_db: float, sco_ppm: float, cfo_hz: float, packets: int,
           seed: int, tail: int = 3000) -> tuple[np.ndarray, list[bytes]]:
    """Packets of one MCS in one burst through an AWGN channel; (received stream, payloads)."""
    mcs = by_name(mcs_name)
    rng = np.random.default_rng(seed)
    payloads = [rng.integers(0, 256, payload_bytes, dtype=np.uint8).tobytes() for _ in range(packets)]
    iq = burst([packet_symbols(Header(mcs.index, 1, i, packets, len(p)), p, mcs) for i, p in enumerate(payloads)],
               SPS, ROLLOFF)
    channel = Channel("awgn", snr_db, FS, SPS, TX_POWER, cfo_hz=cfo_hz, timing_offset_samples=517.3, seed=seed,
                      sco_ppm=sco_ppm)
    x = np.concatenate([np.zeros(2000, np.complex64), iq, np.zeros(tail, np.complex64)])
    return channel.apply(x), payloads


def receive(x: np.ndarray, chunk: int = 65536) -> list:
    rx = Receiver(FS, SPS, ROLLOFF)
    out = []
    for i in range(0, x.size, chunk):
        out += rx.feed(x[i:i + chunk])
    return out + rx.flush()


@pytest.mark.parametrize("mcs_name, payload_bytes", [("bpsk-1/4", 1000), ("qpsk-1/2", 3000)])
@pytest.mark.parametrize("sco_ppm", [20.0, 50.0, -50.0])
def test_long_packets_decode_and_read_the_channel_snr(mcs_name: str, payload_bytes: int, sco_ppm: float) -> None:
    x, payloads = stream(mcs_name, payload_bytes, 20.0, sco_ppm, 18300.0, 3, seed=4)
    got = receive(x, chunk=50_000)
    assert [p.payload for p in got] == payloads
    for p in got:
        assert abs(p.snr_db - 20.0) < 1.0
        assert p.evm_snr_db > 19.0
        assert p.timing_drift_ppm == pytest.approx(-sco_ppm, abs=1.0)  # fast transmitter: symbols closer


def test_0_db_long_packets_decode_under_20_ppm() -> None:
    x, payloads = stream("bpsk-1/4", 1000, 0.0, 20.0, 18300.0, 4, seed=2)
    got = receive(x)
    assert sum(p.payload == q for p, q in zip(got, payloads)) >= 3
    assert abs(np.mean([p.snr_db for p in got]) - 0.0) < 0.7


@pytest.mark.parametrize("snr_db", [20.0, 0.0])
def test_without_sco_packets_are_sampled_at_the_nominal_instants(snr_db: float) -> None:
    """A large CFO and no SCO: no drift is applied (the same symbols as without the estimate)."""
    x, payloads = stream("bpsk-1/4", 1000, snr_db, 0.0, 0.01 * FS, 4, seed=7)
    got = receive(x)
    assert [p.timing_drift_ppm for p in got] == [0.0] * 4
    assert sum(p.payload == q for p, q in zip(got, payloads)) >= 4 - (snr_db < 5)
    assert abs(np.mean([p.snr_db for p in got]) - snr_db) < 0.5


def test_a_packet_slipping_past_the_stream_end_still_decodes() -> None:
    """-200 ppm spreads the symbols: the last of a 2 kB bpsk-1/4 packet lies ~54 samples after its nominal
    place, beyond the filter's margin. Cut the stream just after what the nominal instants need: feed() waits
    for the late symbols, flush() takes them at the stream's edge and the code still corrects them."""
    x, payloads = stream("bpsk-1/4", 2000, 20.0, -200.0, 0.0, 1, seed=9)
    whole = receive(x)
    assert whole[0].payload == payloads[0] and whole[0].timing_drift_ppm == pytest.approx(200.0, abs=2.0)
    rx = Receiver(FS, SPS, ROLLOFF)
    n_total = LTF_SYMBOLS + header_block_symbols() + layout(payload_data_symbols(2000, by_name("bpsk-1/4")))[0]
    stop = whole[0].start_sample + (n_total - 1) * SPS + 1
    cut = x[: stop + rx._pad + 1]
    got = rx.feed(cut)
    assert got == []  # the late symbols are not there yet: it waits
    got = rx.flush()
    assert len(got) == 1 and got[0].payload == payloads[0]
