"""The waveform receiver: turns a continuous sample stream into packets with their measured SNR.

Per packet: acquisition (radio/acquisition.py: Schmidl-Cox on the matched-filtered stream derotated by the
CFO prior, and on a wide low-passed stream while no prior is trusted), coarse CFO (searched over the STF's
fs / 32 ambiguity up to +-max_cfo_hz), LTF timing with a fractional refinement, fine CFO, matched
filtering with the fractional delay applied in the frequency domain, the timing drift (sample clock
offset) over the whole packet from the spectral line of the matched filter's power (radio/timing_drift.py;
where it is significant and slips more than SLIP_MIN_SAMPLES, the symbols are taken at the drifting
instants by the cubic interpolator), pilot tracking, soft demapping, deinterleaving, soft Viterbi, CRC.
A bad header or payload CRC makes an erasure; nothing unchecked is delivered.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import fft as sfft

from radio import fec, interleaver
from radio.acquisition import AcquisitionSettings, CfoPrior, acquire, best_cfo, in_range
from radio.errors import FrameError, RadioError
from radio.frame import HEADER_BITS, Header, bits_to_bytes, check_payload, parse_header
from radio.interpolate import MARGIN_AFTER, interpolate
from radio.mcs import HEADER_MCS, MCS_TABLE, Mcs, by_index
from radio.modulation import constellation, demap_llr, hard_bits, map_bits
from radio.phasor import phasor
from radio.preamble import LTF_LENGTH, LTF_REPEATS, STF_PERIOD, layout, ltf_symbols, pilot_symbols
from radio.pulse import filter_delay, matched_filter, rrc_taps
from radio.snr import data_aided, evm_snr_db, to_db
from radio.sync import WINDOW_PERIODS, Detection, fine_cfo, ltf_timing, stf_samples
from radio.timing_drift import NO_DRIFT, Drift, drift_positions, estimate_drift
from radio.tracking import smoothing_window, track_gains
from radio.transmitter import header_block_symbols, header_data_symbols, payload_data_symbols

LTF_SYMBOLS = LTF_LENGTH * LTF_REPEATS
PRIOR_HOLD_S = 0.2  # stream time after a decoded packet for which its CFO is trusted (then the wide path)
LTF_MIN_PEAK = 0.35  # normalized LTF correlation below which a detection is a false alarm
SLIP_MIN_SAMPLES = 0.1  # estimated timing slip over a packet below which it is sampled at the nominal instants
LTF_CENTRE = (LTF_SYMBOLS - 1) / 2  # symbol at which the LTF's timing holds


@dataclass
class RxPacket:
    """One detected packet: what was decoded and what was measured."""

    start_sample: int  # absolute stream index of the LTF's first symbol
    header: Header | None
    payload: bytes | None  # None unless the CRC-32 matched
    snr_db: float  # data-aided estimate on the LTF and pilots
    evm_snr_db: float  # from the payload's error vector magnitude (nan without a header)
    cfo_hz: float
    error: str | None = None
    symbols: np.ndarray | None = field(default=None, repr=False)  # equalized payload symbols
    timing_drift_ppm: float = 0.0  # estimated sample clock offset applied over the packet (0: not tracked)

    @property
    def crc_ok(self) -> bool:
        return self.payload is not None


@dataclass
class _Sync:
    seg_start: int  # buffer index of the raw segment's first sample
    ltf_index: int  # buffer index of the LTF's first symbol instant
    frac: float
    cfo: float  # cycles per sample, coarse + fine


class Receiver:
    """Streaming receiver. feed() samples in any chunking; it returns packets as they complete.

    max_cfo_hz: the CFO range acquired without a prior (default 50 ppm of 2.4 GHz = 120 kHz), clamped to
    fs/2 - (1 + rolloff) Rs / 2, what the sample rate represents. prior_hold_s: stream time for which a
    decoded packet's CFO is trusted, counted from the packet's end (the prior path alone, no coarse search
    unless its LTF check fails); without a trusted prior the wide path and the coarse search run too, and
    the prior path keeps derotating by the last estimate until a decoded header replaces it.
    """

    def __init__(self, sample_rate_hz: float, samples_per_symbol: int, rolloff: float,
                 detect_threshold: float = 0.1, keep_symbols: bool = False, max_cfo_hz: float | None = None,
                 prior_hold_s: float = PRIOR_HOLD_S) -> None:
        self.sample_rate_hz = float(sample_rate_hz)
        self.sps = int(samples_per_symbol)
        self.rolloff = float(rolloff)
        self.detect_threshold = detect_threshold
        self.keep_symbols = keep_symbols
        self.acquisition = AcquisitionSettings.make(sample_rate_hz, samples_per_symbol, rolloff, max_cfo_hz,
                                                    detect_threshold)
        self.prior = CfoPrior(int(round(prior_hold_s * self.sample_rate_hz)))
        self.packets_by_path = {"prior": 0, "wide": 0}  # packets with a decoded header, by detection path
        self._derotate_hz = 0.0  # CFO the prior path derotates by (follows the prior with hysteresis)
        self._retune_hz = self.sample_rate_hz * self.acquisition.ambiguity_cycles / 4
        self._buf = np.zeros(0, np.complex64)
        self._offset = 0  # absolute index of _buf[0]
        self._consumed = {"prior": 0, "wide": 0}  # per path: absolute index before which all is handled
        self._pad = 2 * filter_delay(self.sps, self.rolloff)
        self._header_symbols = header_block_symbols()
        self._header_data = header_data_symbols()
        self.samples_processed = 0
        self.non_finite_samples = 0

    # --- stream handling -------------------------------------------------------------------------
    def feed(self, samples: np.ndarray) -> list[RxPacket]:
        """Append samples to the stream and return every packet completed by them.

        Non-finite samples (NaN, inf from a broken source) are zeroed and counted: they can only
        cost the packets they fall in, never raise or corrupt what is delivered.
        """
        samples = np.asarray(samples, np.complex64)
        bad = ~np.isfinite(samples)
        if bad.any():
            samples = np.where(bad, np.complex64(0), samples)
            self.non_finite_samples += int(bad.sum())
        self._buf = np.concatenate([self._buf, samples])
        self.samples_processed += len(samples)
        return self._process(final=False)

    def flush(self) -> list[RxPacket]:
        """Process what is buffered as if the stream ended."""
        out = self._process(final=True)
        self._offset += self._buf.size
        self._buf = np.zeros(0, np.complex64)
        return out

    def _process(self, final: bool) -> list[RxPacket]:
        buf, sps = self._buf, self.sps
        lag = STF_PERIOD * sps
        window = WINDOW_PERIODS * lag
        tail = stf_samples(sps) + window + 2 * lag + self._pad
        packets: list[RxPacket] = []
        keep_from = max(buf.size - tail, 0)
        if buf.size < window + lag + 1:
            return packets
        metric_len = buf.size - lag - window + 1
        self._retune()
        restart = True
        while restart:  # again from the top when a decoded header retuned the prior path
            restart = False
            wide = not self.prior.trusted(self._offset + buf.size)
            for cand in acquire(buf, self._offset, self.acquisition, self._derotate_hz, wide):
                det, start_abs = cand.detection, self._offset + cand.detection.run_start
                if self._offset + det.run_end <= self._consumed[cand.path]:
                    continue
                trusted = self.prior.trusted(start_abs)
                if cand.path == "wide" and trusted:
                    continue
                if det.run_end >= metric_len and not final:
                    keep_from = min(keep_from, max(det.run_start - window - lag - self._pad, 0))
                    break
                result = self._packet(buf, det, final, search=not trusted)
                if result is None:  # needs more samples
                    keep_from = min(keep_from, max(det.run_start - window - lag - self._pad, 0))
                    break
                packet, end = result
                if packet is None:  # a false alarm on this path; the other may still try the same run
                    self._consumed[cand.path] = self._offset + det.run_end
                    continue
                packets.append(packet)
                self._consumed = dict.fromkeys(self._consumed, self._offset + end)
                if packet.header is not None:
                    self.packets_by_path[cand.path] += 1
                    self.prior.update(packet.cfo_hz, self._offset + end)
                    restart = self._retune()
                    if restart:
                        break
        if not final and keep_from > 0:
            self._buf = buf[keep_from:].copy()
            self._offset += keep_from
        return packets

    def _retune(self) -> bool:
        """Move the prior path's derotation to the prior when they differ by more than a quarter of the
        STF's ambiguity (hysteresis: small updates leave the detector's input unchanged); True if it moved."""
        if self.prior.hz is None or abs(self.prior.hz - self._derotate_hz) <= self._retune_hz:
            return False
        self._derotate_hz = self.prior.hz
        return True

    # --- one packet ------------------------------------------------------------------------------
    def _symbols(self, buf: np.ndarray, sync: _Sync, n_symbols: int, track: bool = False,
                 final: bool = False) -> tuple[np.ndarray, Drift] | None:
        """n_symbols symbol-spaced, CFO-corrected, matched-filtered samples from the LTF start on, with the
        timing drift applied (NO_DRIFT unless `track`); None when more samples are needed (`final`: the
        stream ended, so symbols past its end are taken at its edge instead)."""
        first = sync.ltf_index
        stop = first + (n_symbols - 1) * self.sps + 1
        a, b = max(first - self._pad, 0), stop + self._pad
        if b > buf.size:
            return None
        y = self._matched(buf, sync, a, b)
        drift = estimate_drift(y, first - a, n_symbols, self.sps) if track else NO_DRIFT
        reach = max(LTF_CENTRE, n_symbols - 1 - LTF_CENTRE)
        if not drift.significant or abs(drift.drift) * self.sps * reach < SLIP_MIN_SAMPLES:
            return y[first - a: stop - a: self.sps].astype(np.complex64), NO_DRIFT
        positions = drift_positions(first - a, n_symbols, self.sps, drift.drift, LTF_CENTRE)
        margin = self._pad // 2 + MARGIN_AFTER + 1  # samples after a position that its value depends on
        if positions[-1] + margin > y.size:  # the last symbols slipped past the filter's pad (rare)
            b = a + int(np.ceil(positions[-1])) + margin
            if b > buf.size and not final:
                return None
            y = self._matched(buf, sync, a, min(b, buf.size))
            positions = np.minimum(positions, y.size - margin)
        return interpolate(y, positions), drift

    def _matched(self, buf: np.ndarray, sync: _Sync, a: int, b: int) -> np.ndarray:
        """(b - a,) complex64 matched-filter output of buf[a:b], CFO-corrected and delayed by -sync.frac."""
        seg = buf[a:b] * phasor(-2 * np.pi * sync.cfo * a, -2 * np.pi * sync.cfo, b - a)
        taps = rrc_taps(self.sps, self.rolloff)
        nfft = sfft.next_fast_len(seg.size + taps.size)
        spectrum = sfft.fft(seg, nfft) * _centred_taps_fft(taps, nfft)
        if sync.frac:  # delay by -frac: multiply bin k by exp(j 2 pi f_k frac), f_k = fftfreq
            half = (nfft + 1) // 2
            ramp = phasor(0.0, 2 * np.pi * sync.frac / nfft, nfft)
            ramp[half:] *= np.complex64(np.exp(-2j * np.pi * sync.frac))
            spectrum *= ramp
        return sfft.ifft(spectrum)[: seg.size]

    def _synchronize(self, buf: np.ndarray, det: Detection, search: bool) -> tuple[_Sync, float] | None:
        """Timing and CFO for a detection (ltf_index -1 when the LTF is not convincing); None when more
        samples are needed. search: test every CFO hypothesis first, else the detection's own and the
        others only when its LTF check fails."""
        sps, lag = self.sps, STF_PERIOD * self.sps
        window = WINDOW_PERIODS * lag
        stf = stf_samples(sps)
        # the STF starts between (run start - window - lag) and the end of the metric's plateau
        lo = det.run_start - window - lag + stf
        hi = max(det.run_end, det.run_start + stf - window - lag) + stf + 2 * lag
        a = max(lo - self._pad, 0)
        b = hi + LTF_SYMBOLS * sps + self._pad
        if b > buf.size:
            return None
        cfo = det.cfo_cycles_per_sample
        search = search or not in_range(cfo, self.acquisition)  # e.g. a prior 250 kHz (Rs) from the truth
        if search:
            cfo = best_cfo(buf[a:b], lo - a, hi - a, cfo, self.acquisition)
        index, frac, peak = self._ltf_timing(buf, a, b, lo, hi, cfo)
        if (index < 0 or peak < LTF_MIN_PEAK) and not search:
            searched = best_cfo(buf[a:b], lo - a, hi - a, cfo, self.acquisition)
            if searched != cfo:
                cfo = searched
                index, frac, peak = self._ltf_timing(buf, a, b, lo, hi, cfo)
        if index < 0 or peak < LTF_MIN_PEAK:
            return _Sync(a, -1, 0.0, 0.0), peak
        sync = _Sync(a, a + index, frac, cfo)
        ltf = self._symbols(buf, sync, LTF_SYMBOLS)
        if ltf is None:
            return None
        sync.cfo += fine_cfo(ltf[0], sps)
        return sync, peak

    def _ltf_timing(self, buf: np.ndarray, a: int, b: int, lo: int, hi: int,
                    cfo: float) -> tuple[int, float, float]:
        """`sync.ltf_timing` over LTF starts [lo, hi) of buf[a:b] derotated by cfo (cycles per sample)."""
        step = -2 * np.pi * cfo
        seg = buf[a:b] * phasor(step * a, step, b - a)
        ymf = matched_filter(seg, self.sps, self.rolloff)
        return ltf_timing(ymf, self.sps, lo - a, hi - a)

    def _packet(self, buf: np.ndarray, det: Detection, final: bool,
                search: bool) -> tuple[RxPacket | None, int] | None:
        """Decode the packet behind a detection: (packet or None for a false alarm, end index), or None
        when more samples are needed."""
        synced = self._synchronize(buf, det, search)
        if synced is None:
            return (None, det.run_end) if final else None
        sync, _ = synced
        if sync.ltf_index < 0:
            return None, det.run_end
        n_head = LTF_SYMBOLS + self._header_symbols
        sampled = self._symbols(buf, sync, n_head)
        if sampled is None:
            return (None, det.run_end) if final else None
        head = sampled[0]
        cfo_hz = sync.cfo * self.sample_rate_hz
        start_abs = self._offset + sync.ltf_index
        _, noise_ltf, snr_ltf = data_aided(head[:LTF_SYMBOLS], ltf_symbols())
        try:
            header = self._decode_header(head)
        except FrameError as exc:
            end = sync.ltf_index + n_head * self.sps
            return RxPacket(start_abs, None, None, snr_ltf, float("nan"), cfo_hz, str(exc)), end
        mcs = by_index(header.mcs_index)
        n_pay_data = payload_data_symbols(header.length, mcs)
        n_total = n_head + layout(n_pay_data)[0]
        sampled = self._symbols(buf, sync, n_total, track=True, final=final)
        if sampled is None:
            if final:
                return RxPacket(start_abs, header, None, snr_ltf, float("nan"), cfo_hz,
                                "stream ended inside the packet"), buf.size
            return None
        symbols, drift = sampled
        packet = self._decode_payload(symbols, header, mcs, n_pay_data)
        packet.start_sample, packet.cfo_hz, packet.timing_drift_ppm = start_abs, cfo_hz, drift.drift_ppm
        slip = drift.drift * self.sps * (n_total - LTF_CENTRE)
        return packet, sync.ltf_index + n_total * self.sps + int(round(slip))

    def _equalize(self, symbols: np.ndarray, n_pay_data: int) -> tuple[dict, float, float]:
        """Track the channel over header and payload pilots; equalized data and noise per block."""
        after = symbols[LTF_SYMBOLS:]
        h_tot, h_data, h_pilot = _block_layout(self._header_data, 0)
        if n_pay_data:
            _, p_data, p_pilot = _block_layout(n_pay_data, h_tot)
        else:
            p_data, p_pilot = np.zeros(0, np.int64), np.zeros(0, np.int64)
        pilot_pos = np.concatenate([h_pilot, p_pilot]).astype(np.int64)
        data_pos = np.concatenate([h_data, p_data]).astype(np.int64)
        pilot_tx = np.concatenate([pilot_symbols(len(h_pilot)), pilot_symbols(len(p_pilot))])
        pilot_rx = after[pilot_pos]
        h_ltf, noise_ltf, _ = data_aided(symbols[:LTF_SYMBOLS], ltf_symbols())
        w = smoothing_window(abs(h_ltf) ** 2 / max(noise_ltf, 1e-30))
        tracked = track_gains(pilot_pos, pilot_rx, pilot_tx, data_pos, w)
        g_data, g_pilot = tracked.at_data, tracked.at_pilots
        # noise from LTF residuals and pilot residuals (a pilot is part of its own smoothed estimate)
        resid = np.sum(np.abs(pilot_rx - g_pilot * pilot_tx) ** 2)
        dof_p = float(np.sum(1.0 - tracked.self_weight))
        noise = (noise_ltf * (LTF_SYMBOLS - 1) + resid) / ((LTF_SYMBOLS - 1) + dof_p)
        bias = noise * float(np.mean(tracked.self_weight))
        signal = max(float(np.mean(np.abs(g_pilot) ** 2)) - bias, 1e-30)
        z = after[data_pos] / g_data
        nv = noise / np.maximum(np.abs(g_data) ** 2, 1e-30)
        n_h = len(h_data)
        return {"header": (z[:n_h], nv[:n_h]), "payload": (z[n_h:], nv[n_h:])}, noise, to_db(signal / noise)

    def _decode_header(self, head: np.ndarray) -> Header:
        blocks, _, _ = self._equalize(head, 0)
        z, nv = blocks["header"]
        llr = interleaver.deinterleave(demap_llr(z, nv, constellation(HEADER_MCS.modulation)))
        n_coded = fec.coded_length(HEADER_BITS, HEADER_MCS.rate)
        try:
            bits = fec.decode(llr[:n_coded], HEADER_MCS.rate, HEADER_BITS)
        except RadioError as exc:
            raise FrameError(f"header could not be decoded: {exc}") from None
        return parse_header(bits_to_bytes(bits), len(MCS_TABLE))

    def _decode_payload(self, symbols: np.ndarray, header: Header, mcs: Mcs, n_pay_data: int) -> RxPacket:
        blocks, _, snr_db = self._equalize(symbols, n_pay_data)
        z, nv = blocks["payload"]
        c = constellation(mcs.modulation)
        llr = interleaver.deinterleave(demap_llr(z, nv, c))
        n_info = 8 * (header.length + 4)
        n_coded = fec.coded_length(n_info, mcs.rate)
        llr = llr[: n_coded * mcs.repeat].reshape(mcs.repeat, n_coded).sum(axis=0)
        bits = fec.decode(llr, mcs.rate, n_info)
        payload = check_payload(bits_to_bytes(bits))
        nearest = map_bits(hard_bits(z, c), c)
        error = None if payload is not None else "payload CRC mismatch"
        return RxPacket(0, header, payload, snr_db, evm_snr_db(z, nearest), 0.0, error,
                        z if self.keep_symbols else None)


def _block_layout(n_data: int, base: int) -> tuple[int, np.ndarray, np.ndarray]:
    total, data_pos, pilot_pos = layout(n_data)
    return total, data_pos + base, pilot_pos + base


_TAPS_FFT: dict[tuple[int, int], np.ndarray] = {}


def _centred_taps_fft(taps: np.ndarray, nfft: int) -> np.ndarray:
    """FFT of the taps placed circularly around index 0 ('same' alignment), cached per size."""
    key = (id(taps), nfft)
    if key not in _TAPS_FFT:
        half = (taps.size - 1) // 2
        h = np.zeros(nfft, np.complex64)
        h[: half + 1] = taps[half:]
        h[-half:] = taps[:half]
        if len(_TAPS_FFT) > 64:
            _TAPS_FFT.clear()
        _TAPS_FFT[key] = sfft.fft(h)
    return _TAPS_FFT[key]
