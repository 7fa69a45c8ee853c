"""Radio throughput benchmark on one core. v1 (`bench_radio`): transmitter and receiver samples per second per
K=7 MCS, and scikit-commpy's modem + Viterbi on the same coded bits as a reference. v2 (`bench_burst_rx`): per
LDPC MCS, the burst receiver's MS/s (at a working point and at the waterfall), the LDPC decoder's information
Mbit/s near its waterfall, and the speed-up over scikit-commpy's LDPC decoder (`ldpc_bp_decode`) on the same
code and LLRs.

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
from radio.modulation import constellation, demap_llr, map_bits
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


# ----- v2 burst receiver (radio/burst_rx.py) -----

V2_ROLLOFF = 0.15
V2_LO_HZ = 2.4e9
V2_BURST_S = 0.25  # airtime of the benchmark burst
V2_CFO_HZ, V2_SCO_PPM = 120e3, 50.0  # 50 ppm crystals at 2.4 GHz (locked clocks)
V2_SNR_DB = {  # about 2 dB above each MCS's waterfall: every codeword decodes, iterations are realistic
    "ldpc-bpsk-1/4": 0.0, "ldpc-bpsk-1/2": 2.0, "ldpc-qpsk-1/2": 4.0, "ldpc-qpsk-2/3": 6.0,
    "ldpc-qpsk-3/4": 7.0, "ldpc-qpsk-5/6": 8.5, "ldpc-16qam-1/2": 9.5, "ldpc-16qam-2/3": 12.0,
    "ldpc-16qam-3/4": 13.0, "ldpc-16qam-5/6": 14.5, "ldpc-64qam-2/3": 17.0, "ldpc-64qam-3/4": 18.5,
    "ldpc-64qam-5/6": 20.0, "ldpc-256qam-3/4": 24.0, "ldpc-256qam-5/6": 27.0,
}


DECODER_SNR_DB = {  # Es/N0 at codeword BLER ~3e-2 over bare symbols (radio/bler_table.py symbol_link, n = 1944):
    # the decoder's operating point near its waterfall, where it works hardest on codewords that still decode
    "ldpc-bpsk-1/4": -4.4, "ldpc-bpsk-1/2": -1.4, "ldpc-qpsk-1/2": 1.65, "ldpc-qpsk-2/3": 3.4,
    "ldpc-qpsk-3/4": 4.4, "ldpc-qpsk-5/6": 5.6, "ldpc-16qam-1/2": 6.9, "ldpc-16qam-2/3": 9.25,
    "ldpc-16qam-3/4": 10.55, "ldpc-16qam-5/6": 11.9, "ldpc-64qam-2/3": 14.25, "ldpc-64qam-3/4": 15.85,
    "ldpc-64qam-5/6": 17.5, "ldpc-256qam-3/4": 20.95, "ldpc-256qam-5/6": 22.9,
}
DECODER_CODEWORDS = 64  # codewords per decoder batch (as the receiver decodes a segment's worth)
COMMPY_CODEWORDS = 4  # commpy's SPA decodes ~0.1-0.2 Mbit/s: a few codewords are enough to time it
RX_TARGET_MS_PER_S = 2.0  # the receiver's goal on one core (the Pluto rate the lab uses)


@dataclass
class BurstRxFigures:
    """Throughput of the v2 receiver and of the LDPC decoder at one MCS (CPU time, one core)."""

    name: str
    snr_db: float
    rx_msamples_per_s: float  # input samples per second through BurstReceiver.feed at snr_db (all decode)
    rx_info_mbit_per_s: float  # delivered payload bits per second
    codewords_ok: int
    codewords: int
    waterfall_snr_db: float  # DECODER_SNR_DB: the decoder's operating point
    rx_msamples_per_s_waterfall: float  # the receiver at the waterfall point (more iterations, failures)
    ldpc_info_mbit_per_s: float  # ldpc.decode alone on symbol-level LLRs at the waterfall point (info bits)
    ldpc_bler: float  # codeword error rate of that batch (~1e-2..1e-1: near the waterfall)
    mean_iterations: float
    commpy_info_mbit_per_s: float  # scikit-commpy ldpc_bp_decode (SPA, 20 iterations) on the same LLRs
    speedup_vs_commpy: float
    commpy_agree: int  # of the codewords both decoders decoded to a valid codeword, how many are equal
    commpy_both_ok: int


def commpy_params(code) -> dict:
    """scikit-commpy's LDPC parameters for one of our codes: its decoder reads only `n_vnodes` and the sparse
    `parity_check_matrix` (what `get_ldpc_code_params` builds from a design file, which fails under numpy 2)."""
    import scipy.sparse as sp

    from radio import ldpc
    return {"n_vnodes": code.n, "n_cnodes": code.m,
            "parity_check_matrix": sp.csc_matrix(ldpc.parity_check_matrix(code).astype(np.int8))}


def bench_commpy_ldpc(code, llr: np.ndarray, max_iterations: int = 20) -> tuple[float, np.ndarray]:
    """(information Mbit/s, (b, n) hard decisions) of commpy's sum-product decoder on (b, n) LLRs (ours: log
    P(0)/P(1), its convention too); CPU time, one call for the whole batch."""
    from commpy.channelcoding.ldpc import ldpc_bp_decode

    params = commpy_params(code)
    x = np.ascontiguousarray(llr, np.float64).ravel()
    t0 = time.process_time()
    bits, _ = ldpc_bp_decode(x.copy(), params, "SPA", max_iterations)
    seconds = time.process_time() - t0
    return llr.shape[0] * code.k / seconds / 1e6, np.asarray(bits).T.astype(np.uint8)


def _receive_burst(stream: np.ndarray) -> list:
    """Feed a stream in CHUNK pieces to a fresh BurstReceiver (locked clocks at V2_LO_HZ): its events."""
    from radio.burst_rx import BurstReceiver

    rx = BurstReceiver(SAMPLE_RATE_HZ, SPS, V2_ROLLOFF, lo_hz=V2_LO_HZ, locked_clocks=True)
    events = []
    for i in range(0, stream.size, CHUNK):
        events += rx.feed(stream[i:i + CHUNK])
    return events + rx.flush()


def bench_burst_rx_mcs(name: str, seconds: float = 1.0, seed: int = 0, commpy_codewords: int = COMMPY_CODEWORDS
                       ) -> BurstRxFigures:
    """One burst of V2_BURST_S with 120 kHz CFO and 50 ppm SCO, fed in CHUNK pieces, at the MCS's V2_SNR_DB
    (every codeword decodes) and at its DECODER_SNR_DB (the waterfall); the LDPC decoder alone, ours and
    commpy's (0 codewords: skipped), on symbol-level LLRs at the waterfall point."""
    from radio import codeword, ldpc
    from radio.burst import codeword_bytes, codeword_symbols
    from radio.burst_events import RxCodeword
    from radio.burst_tx import BurstPlan, CodewordRun, burst_chunks
    from radio.link import LinkSettings
    from radio.mcs import ldpc_code

    mcs, snr_db, fall_db = by_name(name), V2_SNR_DB[name], DECODER_SNR_DB[name]
    n = max(1, int(V2_BURST_S * SAMPLE_RATE_HZ / SPS * 0.98) // codeword_symbols(mcs))
    data = np.random.default_rng(seed).integers(0, 256, n * codeword_bytes(mcs), dtype=np.uint8).tobytes()
    plan = BurstPlan(1, 1, mcs, (CodewordRun(0, n),), len(data))
    iq = np.concatenate([np.zeros(5000, np.complex64), *burst_chunks(plan, data, LinkSettings(
        SAMPLE_RATE_HZ, SPS, V2_ROLLOFF)), np.zeros(5000, np.complex64)])

    def stream_at(snr: float) -> np.ndarray:
        return Channel("awgn", snr, SAMPLE_RATE_HZ, SPS, TX_POWER, cfo_hz=V2_CFO_HZ, sco_ppm=V2_SCO_PPM,
                       seed=seed).apply(iq)

    stream = stream_at(snr_db)
    _receive_burst(stream)  # warm-up (numba, FFT plans)
    rx_s, _, events = _timed(lambda: _receive_burst(stream), seconds)
    ok = sum(c.ok for c in events if isinstance(c, RxCodeword))
    fall = stream_at(fall_db)
    fall_s, _, _ = _timed(lambda: _receive_burst(fall), seconds / 2)
    # the decoder alone, on LLRs of the same channel at symbol level (ideal equalization) at the waterfall
    code, const = ldpc_code(mcs), constellation(mcs.modulation)
    rng = np.random.default_rng(seed + 1)
    payload = rng.integers(0, 256, DECODER_CODEWORDS * codeword_bytes(mcs), dtype=np.uint8).tobytes()
    bits = codeword.encode(code, payload, 0, DECODER_CODEWORDS)
    sym = map_bits(bits.reshape(-1), const)
    nv = 10 ** (-fall_db / 10) / mcs.repeat  # repeats: LLRs summed over the copies
    z = sym + np.sqrt(nv / 2) * (rng.standard_normal(sym.size) + 1j * rng.standard_normal(sym.size))
    llr = demap_llr(z.astype(np.complex64), nv, const).reshape(bits.shape)
    ldpc.decode(code, llr[:1])
    dec_s, _, result = _timed(lambda: ldpc.decode(code, llr), seconds / 4)
    ours = bits.shape[0] * code.k / dec_s / 1e6
    theirs, agree, both_ok = float("nan"), 0, 0
    if commpy_codewords > 0:
        theirs, hard = bench_commpy_ldpc(code, llr[:commpy_codewords])
        both = ldpc.syndrome_ok(code, hard) & result.ok[:commpy_codewords]
        both_ok = int(both.sum())
        agree = int(np.all(hard[both] == result.codewords[:commpy_codewords][both], axis=1).sum())
    return BurstRxFigures(name, snr_db, stream.size / rx_s / 1e6, ok * 8 * codeword_bytes(mcs) / rx_s / 1e6, ok, n,
                          fall_db, fall.size / fall_s / 1e6, ours, float(np.mean(~result.ok)),
                          float(np.mean(result.iterations)), theirs, ours / theirs, agree, both_ok)


def bench_burst_rx(seconds: float = 1.0, seed: int = 0, commpy_codewords: int = COMMPY_CODEWORDS,
                   names: list[str] | None = None, say=print) -> dict:
    """Every LDPC MCS (or `names`) through the v2 burst receiver on one core; one JSON-ready dict (and a table
    through `say`)."""
    from radio.mcs import LDPC_MCS_TABLE
    with one_core() as note:
        figures = [bench_burst_rx_mcs(name, seconds, seed, commpy_codewords)
                   for name in names or [m.name for m in LDPC_MCS_TABLE]]
    say(f"v2 burst receiver and LDPC decoder on one core ({note}); fs {SAMPLE_RATE_HZ:g} Hz, sps {SPS}, roll-off "
        f"{V2_ROLLOFF}, {V2_BURST_S} s bursts, CFO {V2_CFO_HZ:g} Hz, SCO {V2_SCO_PPM:g} ppm; CPU time")
    say("rx: MS/s through BurstReceiver.feed at snr (every codeword decodes) and at the waterfall point (goal "
        f">= {RX_TARGET_MS_PER_S:g}); ldpc: information Mbit/s of ldpc.decode at the waterfall point (BLER, mean "
        "iterations) and of scikit-commpy's ldpc_bp_decode (SPA, 20 iterations) on the same LLRs")
    say(f"{'mcs':17s} {'snr':>5s} {'rx MS/s':>7s} {'ok':>9s} {'fall':>6s} {'rx MS/s':>7s} {'ldpc Mb/s':>9s} "
        f"{'bler':>6s} {'iter':>5s} {'commpy':>7s} {'speed-up':>8s}")
    for f in figures:
        say(f"{f.name:17s} {f.snr_db:5.1f} {f.rx_msamples_per_s:7.2f} {f.codewords_ok:4d}/{f.codewords:<4d} "
            f"{f.waterfall_snr_db:6.2f} {f.rx_msamples_per_s_waterfall:7.2f} {f.ldpc_info_mbit_per_s:9.1f} "
            f"{f.ldpc_bler:6.3f} {f.mean_iterations:5.2f} {f.commpy_info_mbit_per_s:7.3f} {f.speedup_vs_commpy:7.0f}x")
    slowest = min(min(f.rx_msamples_per_s, f.rx_msamples_per_s_waterfall) for f in figures)
    say(f"slowest receiver: {slowest:.2f} MS/s ({'meets' if slowest >= RX_TARGET_MS_PER_S else 'misses'} the "
        f"{RX_TARGET_MS_PER_S:g} MS/s goal)")
    return {"mcs": [asdict(f) for f in figures], "burst_s": V2_BURST_S, "cfo_hz": V2_CFO_HZ,
            "sco_ppm": V2_SCO_PPM, "rolloff": V2_ROLLOFF, "feed_chunk_samples": CHUNK, "threads": note,
            "decoder_codewords": DECODER_CODEWORDS, "commpy_codewords": commpy_codewords,
            "rx_target_msamples_per_s": RX_TARGET_MS_PER_S, "slowest_rx_msamples_per_s": slowest,
            "clock": "process CPU time (pinned to one core)"}
