"""Uncoded bit error rate of the full waveform receiver, and its theory over AWGN.

The measurement sends packets of an MCS through the `sim` backend (random start offset, CFO, AWGN),
lets the streaming Receiver detect, synchronize, correct CFO and track pilots, then compares hard
decisions on the equalized payload symbols (RxPacket.symbols) against the on-air bits of the payload
block that was sent (transmitter.payload_block_bits). The code does not matter: these are the raw
channel bits. Packets whose header fails (or that are not detected) cannot be aligned and are counted
apart, never as bit errors. A modulation no v1 MCS carries (256-QAM) rides in packets of the densest MCS
(`carrier_mcs`) whose payload data symbols are replaced by random symbols of that modulation: the
receiver's pilot-aided equalizer does not look at them, so its equalized symbols are the same measurement.
Also here: the BICM capacity of each constellation, the theory coded links are compared with.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.special import erfc, logsumexp

from radio.backends.sim import SimBackend
from radio.channel import Channel
from radio.errors import RadioError
from radio.frame import Header
from radio.mcs import MCS_TABLE, Mcs
from radio.modulation import BITS_PER_SYMBOL, constellation, hard_bits, map_bits
from radio.preamble import layout, preamble_symbols
from radio.receiver import Receiver
from radio.transmitter import (TX_POWER, burst, header_block_symbols, packet_symbols, payload_block_bits,
                               payload_data_symbols)

TAIL_SYMBOLS = 64  # noise-only symbols received after each burst, so the last packet completes


def theory_ber(modulation: str, ebn0_db: np.ndarray | float) -> np.ndarray:
    """Exact uncoded BER over AWGN of Gray-mapped BPSK, QPSK or square M-QAM at Eb/N0 in dB.

    BPSK and QPSK: Q(sqrt(2 Eb/N0)). Square M-QAM: Cho and Yoon (IEEE Trans. Commun. 2002), eq. (14)-(16),
    the exact BER of the binary-reflected Gray code on each PAM dimension.
    """
    if modulation not in BITS_PER_SYMBOL:
        raise RadioError(f"unknown modulation {modulation!r}; known: {', '.join(BITS_PER_SYMBOL)}")
    gamma = 10.0 ** (np.asarray(ebn0_db, float) / 10.0)
    m = BITS_PER_SYMBOL[modulation]
    if m <= 2:
        return 0.5 * erfc(np.sqrt(gamma))
    big_m = 2**m
    root = 2 ** (m // 2)
    arg = np.sqrt(3.0 * m * gamma / (2.0 * (big_m - 1)))
    total = np.zeros_like(gamma)
    for k in range(1, m // 2 + 1):
        pk = np.zeros_like(gamma)
        for i in range(int((1 - 2.0**-k) * root)):
            w = i * 2 ** (k - 1) / root
            pk += (-1) ** int(np.floor(w)) * (2 ** (k - 1) - np.floor(w + 0.5)) * erfc((2 * i + 1) * arg)
        total += pk / root
    return total / (m // 2)


CAPACITY_CHUNK = 8
"""Es/N0 points bicm_capacity evaluates at once (256-QAM: ~1.6 MB per point and array)."""


def bicm_capacity(modulation: str, esn0_db: np.ndarray | float, nodes: int = 96) -> np.ndarray:
    """BICM capacity over AWGN (bits per symbol) of a Gray-mapped constellation at Es/N0 in dB.

    The sum over bits of I(b_j; y) with uniform bits and a bitwise (max-a-posteriori) demapper: what a
    binary code over the demapper's exact LLRs can reach. A square QAM's bits each depend on one PAM
    dimension, so C = 2 C_PAM (per-dimension noise N0/2); BPSK is one 2-PAM dimension. The noise
    expectation is Gauss-Hermite quadrature with `nodes` points (error < 1e-4 bit at 96).
    """
    c = constellation(modulation)
    esn0_db = np.asarray(esn0_db, float)
    if esn0_db.size > CAPACITY_CHUNK:  # a grid: in slices, so the (..., L, G, L) metric stays a few MB
        flat = esn0_db.reshape(-1)
        return np.concatenate([bicm_capacity(modulation, flat[i:i + CAPACITY_CHUNK], nodes)
                               for i in range(0, flat.size, CAPACITY_CHUNK)]).reshape(esn0_db.shape)
    esn0 = 10.0 ** (esn0_db / 10.0)
    sigma = np.sqrt(0.5 / esn0)[..., None, None]  # (..., 1, 1) per-dimension noise std (Es = 1)
    levels = c.levels.astype(float)
    bits = c.level_bits.astype(bool)  # (L, mb)
    x, w = np.polynomial.hermite.hermgauss(nodes)
    y = levels[:, None] + np.sqrt(2.0) * sigma * x  # (..., L sent, G)
    metric = -((y[..., None] - levels) ** 2) / (2.0 * sigma[..., None] ** 2)  # (..., L, G, L candidates)
    total = logsumexp(metric, axis=-1)
    info = 0.0
    for j in range(bits.shape[1]):
        same = bits[:, j][:, None] == bits[:, j][None, :]  # (L sent, L candidates): same bit j
        part = logsumexp(np.where(same[:, None, :], metric, -np.inf), axis=-1)
        loss = (total - part) / np.log(2.0)  # (..., L, G)
        info = info + 1.0 - np.mean(np.sum(w * loss, axis=-1) / np.sqrt(np.pi), axis=-1)
    return info if c.is_bpsk else 2.0 * info


def bicm_limit_esn0_db(modulation: str, bits_per_symbol: float) -> float:
    """The Es/N0 (dB) at which the BICM capacity of `modulation` equals bits_per_symbol (bisection)."""
    m = constellation(modulation).bits_per_symbol
    if not 0.0 < bits_per_symbol < m:
        raise RadioError(f"{modulation} carries 0..{m} bits per symbol, asked for {bits_per_symbol}")
    lo, hi = -20.0, 50.0
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if float(bicm_capacity(modulation, mid)) < bits_per_symbol else (lo, mid)
    return 0.5 * (lo + hi)


def parse_range(text: str) -> list[float]:
    """'a:b:step' (inclusive of b) or 'x,y,z' or 'x' -> list of floats; RadioError naming the syntax."""
    try:
        if ":" in text:
            parts = [float(p) for p in text.split(":")]
            if len(parts) == 2:
                parts.append(1.0)
            if len(parts) != 3:
                raise ValueError
            start, stop, step = parts
            if step <= 0 or stop < start:
                raise ValueError
            count = int(np.floor((stop - start) / step + 1e-9)) + 1
            return [round(start + i * step, 10) for i in range(count)]
        values = [float(p) for p in text.split(",") if p.strip()]
        if not values:
            raise ValueError
        return values
    except ValueError:
        raise RadioError(f"bad Eb/N0 list {text!r}: use start:stop:step (inclusive, step > 0) or a comma list") from None


def mcs_for(modulation: str) -> Mcs:
    """The rate-1/2-or-nearest MCS carrying this modulation (the code does not affect uncoded BER)."""
    candidates = [m for m in MCS_TABLE if m.modulation == modulation and m.repeat == 1]
    if not candidates:
        raise RadioError(f"no MCS uses modulation {modulation!r}; known: {', '.join(BITS_PER_SYMBOL)}")
    return candidates[0]


def carrier_mcs(modulation: str) -> Mcs:
    """The MCS whose packets carry a BER measurement of `modulation`: mcs_for(modulation), or, when no
    v1 MCS uses it (256-QAM), the densest one, whose payload data symbols are then replaced."""
    constellation(modulation)  # refuses unknown names
    if any(m.modulation == modulation for m in MCS_TABLE):
        return mcs_for(modulation)
    densest = max(m.bits_per_symbol for m in MCS_TABLE)
    return mcs_for(next(m.modulation for m in MCS_TABLE if m.bits_per_symbol == densest))


@dataclass
class BerPoint:
    """One measured point of a BER curve."""

    ebn0_db: float
    ber: float
    ber_theory: float
    bits: int  # bits compared
    errors: int
    packets_sent: int
    packets_counted: int  # header decoded and payload symbols compared
    packets_missed: int  # not detected, header failed or cut off: not counted

    def to_dict(self) -> dict:
        return asdict(self)


def measure_ber(
    modulation: str,
    ebn0_db: float,
    n_bits: int,
    cfo_frac: float = 0.01,
    seed: int = 1,
    sample_rate_hz: float = 1.0e6,
    samples_per_symbol: int = 4,
    rolloff: float = 0.25,
    payload_bytes: int = 1024,
    packets_per_burst: int = 4,
    max_packets: int | None = None,
) -> BerPoint:
    """Send packets until n_bits on-air bits were compared; the uncoded BER at Eb/N0 = ebn0_db.

    The channel is AWGN at Es/N0 = Eb/N0 + 10 log10(bits per symbol) with a CFO of cfo_frac *
    sample_rate_hz; the SimBackend starts the stream at a seeded random offset (0..5000 samples).
    max_packets bounds the work when headers keep failing (default: 4x the packets n_bits needs + 20).
    """
    mcs = carrier_mcs(modulation)
    c = constellation(modulation)
    replace = mcs.modulation != modulation  # payload data symbols replaced by `modulation`'s
    n_data = payload_data_symbols(payload_bytes, mcs)
    data_at = preamble_symbols().size + header_block_symbols() + layout(n_data)[1]
    esn0_db = ebn0_db + 10.0 * np.log10(c.bits_per_symbol)
    rng = np.random.default_rng(seed)
    channel = Channel("awgn", esn0_db, sample_rate_hz, samples_per_symbol, TX_POWER,
                      cfo_hz=cfo_frac * sample_rate_hz, seed=seed)
    backend = SimBackend(channel, sample_rate_hz, idle_start_samples=None, seed=seed + 1)
    rx = Receiver(sample_rate_hz, samples_per_symbol, rolloff, keep_symbols=True)
    bits_per_packet = n_data * c.bits_per_symbol if replace else payload_block_bits(bytes(payload_bytes), mcs).size
    needed = -(-n_bits // bits_per_packet)
    limit = max_packets if max_packets is not None else 4 * needed + 20
    sent: dict[int, np.ndarray] = {}  # seq -> on-air payload bits
    counted: set[int] = set()
    bits = errors = 0

    def account(packets) -> None:
        nonlocal bits, errors
        for p in packets:
            h = p.header
            if h is None or p.symbols is None or h.seq not in sent or h.seq in counted:
                continue
            if h.mcs_index != mcs.index or h.length != payload_bytes:
                continue
            ref = sent[h.seq]
            got = hard_bits(p.symbols, c)
            if got.size != ref.size:
                continue
            counted.add(h.seq)
            bits += ref.size
            errors += int(np.count_nonzero(got != ref))

    seq = 0
    while bits < n_bits and seq < limit:
        count = min(packets_per_burst, limit - seq, max(-(-(n_bits - bits) // bits_per_packet), 1))
        symbols = []
        for _ in range(count):
            payload = rng.integers(0, 256, payload_bytes, dtype=np.uint8).tobytes()
            packet = packet_symbols(Header(mcs.index, seed & 0xFFFFFFFF, seq, 2**31, payload_bytes), payload, mcs)
            if replace:
                sent[seq] = rng.integers(0, 2, n_data * c.bits_per_symbol, dtype=np.uint8)
                packet[data_at] = map_bits(sent[seq], c)
            else:
                sent[seq] = payload_block_bits(payload, mcs)
            symbols.append(packet)
            seq += 1
        backend.tx(burst(symbols, samples_per_symbol, rolloff))
        account(rx.feed(backend.rx(backend.pending + TAIL_SYMBOLS * samples_per_symbol)))
    account(rx.flush())
    theory = float(theory_ber(modulation, ebn0_db))
    return BerPoint(float(ebn0_db), errors / bits if bits else float("nan"), theory, bits, errors,
                    seq, len(counted), seq - len(counted))


def ber_curve(modulation: str, ebn0_db: list[float], n_bits: int, **kw) -> list[BerPoint]:
    """measure_ber at each Eb/N0 (seeds differ per point so the points are independent)."""
    seed = kw.pop("seed", 1)
    return [measure_ber(modulation, e, n_bits, seed=seed + 1000 * i, **kw) for i, e in enumerate(ebn0_db)]


def plot_curve(points: list[BerPoint], modulation: str, cfo_frac: float, path: str) -> None:
    """Write a PNG: measured BER markers and the theory line against Eb/N0 (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    x = np.array([p.ebn0_db for p in points])
    fine = np.linspace(x.min(), x.max(), 200) if x.size > 1 else x
    ax.semilogy(fine, theory_ber(modulation, fine), "-", label="theory (AWGN, Gray)")
    measured = [(p.ebn0_db, p.ber) for p in points if p.ber > 0]
    if measured:
        mx, my = zip(*measured)
        ax.semilogy(mx, my, "o", label="measured (full receiver)")
    zero = [p.ebn0_db for p in points if p.bits and p.errors == 0]
    if zero:
        floor = [0.5 / max(p.bits, 1) for p in points if p.bits and p.errors == 0]
        ax.semilogy(zero, floor, "v", label="no errors (below 1/bits)")
    ax.set_xlabel("Eb/N0 (dB)")
    ax.set_ylabel("bit error rate (uncoded)")
    ax.set_title(f"{modulation.upper()} uncoded BER, CFO {100 * cfo_frac:g}% of fs, random start offset")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
