"""Uncoded bit error rate of the full waveform receiver, and its theory over AWGN.

The measurement sends packets of an MCS through the `sim` backend (random start offset, CFO, AWGN),
lets the streaming Receiver detect, synchronize, correct CFO and track pilots, then compares hard
decisions on the equalized payload symbols (RxPacket.symbols) against the on-air bits of the payload
block that was sent (transmitter.payload_block_bits). The code does not matter: these are the raw
channel bits. Packets whose header fails (or that are not detected) cannot be aligned and are counted
apart, never as bit errors.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.special import erfc

from radio.backends.sim import SimBackend
from radio.channel import Channel
from radio.errors import RadioError
from radio.frame import Header
from radio.mcs import MCS_TABLE, Mcs
from radio.modulation import constellation, hard_bits
from radio.receiver import Receiver
from radio.transmitter import TX_POWER, burst, packet_symbols, payload_block_bits

BITS_PER_SYMBOL = {"bpsk": 1, "qpsk": 2, "16qam": 4, "64qam": 6}
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
    mcs = mcs_for(modulation)
    c = constellation(modulation)
    esn0_db = ebn0_db + 10.0 * np.log10(c.bits_per_symbol)
    rng = np.random.default_rng(seed)
    channel = Channel("awgn", esn0_db, sample_rate_hz, samples_per_symbol, TX_POWER,
                      cfo_hz=cfo_frac * sample_rate_hz, seed=seed)
    backend = SimBackend(channel, sample_rate_hz, idle_start_samples=None, seed=seed + 1)
    rx = Receiver(sample_rate_hz, samples_per_symbol, rolloff, keep_symbols=True)
    bits_per_packet = payload_block_bits(bytes(payload_bytes), mcs).size
    needed = -(-n_bits // bits_per_packet)
    limit = max_packets if max_packets is not None else 4 * needed + 20
    sent: dict[int, bytes] = {}
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
            ref = payload_block_bits(sent[h.seq], mcs)
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
            sent[seq] = payload
            symbols.append(packet_symbols(Header(mcs.index, seed & 0xFFFFFFFF, seq, 2**31, payload_bytes),
                                          payload, mcs))
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
