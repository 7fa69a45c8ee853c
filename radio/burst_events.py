"""What the v2 burst receiver reports: one event per decoded (or failed) codeword and one per burst.

`radio/burst_rx.py: BurstReceiver.feed(samples) -> list[RxCodeword | RxBurst]` emits, in stream order, an
`RxCodeword` for every data codeword of a burst it has synchronized to (as soon as the codeword is decoded
or has failed its CRC), then the burst's `RxBurst` once the burst's last symbol has been processed. A burst
whose SIG did not decode gives one `RxBurst` with `error` set and `sig` None (no codeword events). Offsets
and lengths are payload bytes: a codeword is `payload[offset : offset + length]` (length is the MCS's
codeword bytes, trimmed at the payload's end). Consumers: the in-process link (`radio/link_v2.py`), the
edge's radio input, `airlora mcs-table --family ldpc --level receiver`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from radio.burst import SigHeader


@dataclass(frozen=True)
class RxCodeword:
    """One data codeword of a synchronized burst: its payload bytes when its CRC-16 held, else None."""

    session: int
    burst: int
    index: int  # position within the burst (0 .. codewords - 1)
    offset: int  # payload byte offset
    length: int  # payload bytes it carries (trimmed at the payload's end)
    data: bytes | None  # None: the CRC failed after decoding (or combining); never unchecked bytes
    snr_db: float  # data-aided on the re-encoded codeword when decoded, else on decisions/pilots nearby
    iterations: int  # LDPC iterations used
    combined: bool  # HARQ: decoded (or failed) on LLRs summed with a stored earlier copy

    @property
    def ok(self) -> bool:
        return self.data is not None


@dataclass(frozen=True)
class RxBurst:
    """One burst: what its SIG announced and what the receiver measured over it."""

    start_sample: int  # absolute stream index of the burst's first preamble sample (its first STF symbol)
    sig: SigHeader | None  # None: the SIG did not decode (error says why)
    codewords_ok: int
    codewords_failed: int
    snr_db: float  # mean of the codewords' SNR (LTF + pilots when none was decoded); nan if nothing measured
    snr_db_p25: float
    cfo_hz: float  # carrier offset measured at acquisition (plus the tracked residual)
    sco_ppm: float  # sample clock offset the timing loop ended at
    evm_snr_db: float  # from the data symbols' error vector magnitude
    codeword_snr_db: np.ndarray = field(default_factory=lambda: np.empty(0, np.float32))  # per codeword, in order
    failed: tuple[tuple[int, int], ...] = ()  # half-open payload byte ranges of the failed codewords
    error: str | None = None  # why the burst could not be (fully) received, e.g. "SIG CRC", "stream ended"
    end_sample: int = -1  # absolute stream index just past the burst's last symbol's samples

    @property
    def session(self) -> int | None:
        return None if self.sig is None else self.sig.session

    @property
    def burst(self) -> int | None:
        return None if self.sig is None else self.sig.burst


RxEvent = RxCodeword | RxBurst
