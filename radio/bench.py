"""Radio throughput benchmark: transmitter and receiver samples per second per MCS on one core,
and scikit-commpy's modem + Viterbi on the same coded bits as a reference.

A benchmark, not a test: it prints figures and asserts nothing. The process is pinned to one CPU
(os.sched_setaffinity) while it measures; numba kernels are not parallel and scipy.fft runs with one
worker by default, so "one core" holds without threadpoolctl (used when installed, to limit BLAS too).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import numpy as np

from radio.channel import Channel
from radio.frame import Header
from radio.mcs import MCS_TABLE, Mcs, by_name
from radio.receiver import Receiver
from radio.transmitter import TX_POWER, burst, packet_symbols

SAMPLE_RATE_HZ = 1.0e6
SPS = 4
ROLLOFF = 0.25
PAYLOAD_BYTES = 1024
PACKETS = 16  # packets per benchmark stream
CHUNK = 65536  # samples per Receiver.feed call, like a Pluto rx buffer
SNR_DB = 30.0  # high enough that every packet decodes: the work measured is the full decode
REFERENCE_MCS = "qpsk-1/2"
COMMPY_SNR_DB = 10.0  # commpy's soft demodulator overflows to infinite LLRs at 30 dB


@dataclass
class McsFigures:
    """Throughput of one MCS."""

    name: str
    tx_samples_per_s: float
    rx_samples_per_s: float
    rx_info_bits_per_s: float  # payload bits delivered per second of receiver time
    packets_ok: int
    packets: int
    samples: int
    rx_samples_per_wall_s: float  # the same against wall-clock time (lower when the core is shared)


@contextlib.contextmanager
def one_core() -> Iterator[str]:
    """Pin this process to one CPU (and BLAS/OpenMP pools to one thread when threadpoolctl exists)."""
    notes = []
    old = None
    if hasattr(os, "sched_getaffinity"):
        old = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {min(old)})
        notes.append(f"pinned to cpu {min(old)}")
    else:
        notes.append("cpu affinity not available on this OS")
    try:
        from threadpoolctl import threadpool_limits
        limiter = threadpool_limits(1)
        notes.append("threadpoolctl limits=1")
    except ImportError:
        limiter = contextlib.nullcontext()
        notes.append("threadpoolctl not installed (numba kernels are serial, scipy.fft uses 1 worker)")
    try:
        with limiter:
            yield "; ".join(notes)
    finally:
        if old is not None:
            os.sched_setaffinity(0, old)


def _payloads(count: int, rng: np.random.Generator) -> list[bytes]:
    return [rng.integers(0, 256, PAYLOAD_BYTES, dtype=np.uint8).tobytes() for _ in range(count)]


def _build(mcs: Mcs, payloads: list[bytes]) -> np.ndarray:
    packets = [packet_symbols(Header(mcs.index, 1, i, len(payloads), len(p)), p, mcs)
               for i, p in enumerate(payloads)]
    return burst(packets, SPS, ROLLOFF)


def _receive(stream: np.ndarray) -> tuple[int, int]:
    """Feed the stream in CHUNK pieces to a fresh Receiver: (packets, packets with a good CRC)."""
    rx = Receiver(SAMPLE_RATE_HZ, SPS, ROLLOFF)
    out = []
    for i in range(0, stream.size, CHUNK):
        out += rx.feed(stream[i:i + CHUNK])
    out += rx.flush()
    return len(out), sum(p.payload is not None for p in out)


def _timed(fn, seconds: float) -> tuple[float, float, object]:
    """Call fn until `seconds` of CPU time have passed (at least twice).

    Returns (CPU seconds per call, wall seconds per call, last result). CPU time of this process,
    pinned to one core, is what the rates use: it does not count time other processes held the core.
    """
    calls, cpu, wall, result = 0, 0.0, 0.0, None
    while calls < 2 or cpu < seconds:
        c0, w0 = time.process_time(), time.perf_counter()
        result = fn()
        cpu += time.process_time() - c0
        wall += time.perf_counter() - w0
        calls += 1
    return cpu / calls, wall / calls, result


def bench_mcs(mcs: Mcs, seconds: float = 1.0, seed: int = 0) -> McsFigures:
    """Transmitter and receiver throughput of one MCS (warm-up excluded)."""
    rng = np.random.default_rng(seed)
    payloads = _payloads(PACKETS, rng)
    _build(mcs, payloads[:1])  # warm-up
    tx_s, _, iq = _timed(lambda: _build(mcs, payloads), seconds / 2)
    gap = np.zeros(2000, np.complex64)
    channel = Channel("awgn", SNR_DB, SAMPLE_RATE_HZ, SPS, TX_POWER, cfo_hz=0.003 * SAMPLE_RATE_HZ, seed=seed)
    stream = channel.apply(np.concatenate([gap, iq, gap]))
    _receive(stream[: stream.size // PACKETS * 2])  # warm-up: numba compile, FFT plans, caches
    rx_s, rx_wall, (n, ok) = _timed(lambda: _receive(stream), seconds)
    return McsFigures(mcs.name, iq.size / tx_s, stream.size / rx_s, ok * 8 * PAYLOAD_BYTES / rx_s,
                      ok, PACKETS, int(stream.size), stream.size / rx_wall)


def bench_commpy(info_bits: int = 1500, seed: int = 0) -> dict:
    """scikit-commpy on QPSK rate 1/2: QAMModem(4) modulate + soft demodulate + unquantized Viterbi
    (Trellis 0o133/0o171, Matlab polynomial format, tb_depth 35) of `info_bits` random bits."""
    import commpy.channelcoding as cc
    from commpy.modulation import QAMModem

    rng = np.random.default_rng(seed)
    trellis = cc.Trellis(np.array([6]), np.array([[0o133, 0o171]]), polynomial_format="Matlab")
    modem = QAMModem(4)
    bits = rng.integers(0, 2, info_bits)
    coded = cc.conv_encode(bits, trellis, "cont")
    noise_var = 2.0 / 10 ** (COMMPY_SNR_DB / 10)  # QAMModem(4) has Es = 2; finite LLRs, error-free decode
    warm = cc.conv_encode(bits[:64], trellis, "cont")
    cc.viterbi_decode(modem.demodulate(modem.modulate(warm), "soft", noise_var=noise_var), trellis, tb_depth=35,
                      decoding_type="unquantized")
    t0 = time.process_time()
    symbols = modem.modulate(coded)
    noise = np.sqrt(noise_var / 2) * (rng.standard_normal(symbols.size) + 1j * rng.standard_normal(symbols.size))
    llrs = modem.demodulate(symbols + noise, "soft", noise_var=noise_var)
    decoded = cc.viterbi_decode(llrs, trellis, tb_depth=35, decoding_type="unquantized")
    seconds = time.process_time() - t0
    errors = int(np.count_nonzero(decoded[:info_bits] != bits))
    return {"mcs": REFERENCE_MCS, "info_bits": info_bits, "seconds": seconds,
            "info_bits_per_s": info_bits / seconds, "bit_errors": errors, "snr_db": COMMPY_SNR_DB,
            "work": "QAMModem(4) modulate + soft demodulate + viterbi_decode(unquantized, tb_depth=35)"}


def bench_radio(seconds: float = 1.0, commpy_bits: int = 1500, seed: int = 0) -> dict:
    """Every MCS in MCS_TABLE, then the commpy reference; one JSON-ready dict."""
    with one_core() as note:
        figures = [bench_mcs(m, seconds, seed) for m in MCS_TABLE]
        reference = bench_commpy(commpy_bits, seed)
    ours = next(f for f in figures if f.name == REFERENCE_MCS)
    return {
        "mcs": [asdict(f) for f in figures],
        "commpy_reference": reference,
        "speedup_vs_commpy": ours.rx_info_bits_per_s / reference["info_bits_per_s"],
        "reference_mcs": by_name(REFERENCE_MCS).name,
        "sample_rate_hz": SAMPLE_RATE_HZ, "samples_per_symbol": SPS, "rolloff": ROLLOFF,
        "payload_bytes": PAYLOAD_BYTES, "snr_db": SNR_DB, "feed_chunk_samples": CHUNK,
        "threads": note, "clock": "process CPU time (pinned to one core)",
    }
