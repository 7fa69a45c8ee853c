"""The v2 burst receiver: a continuous sample stream in, codeword and burst events out (radio/burst_events.py).

Pipeline (docs/design/link_v2.md section 5):

1. *Search* (radio/acquisition.py, radio/burst_sync.py): multi-lag STF detection (radio/stf_detect.py) on
   the prior and wide paths, the detections of one preamble tried strongest first, then the CFO hypotheses
   tested against both LTFs: a v2 burst (LTF2) is received, a v1 packet (LTF) is skipped. LTF2 timing and fine CFO start a `PilotTracker` (PLL + DLL over the pilot groups).
2. *Segments*: the burst is tracked SEGMENT_GROUPS pilot periods at a time. Each segment's raw samples
   (absolute indices, plus margins) are derotated by the acquired CFO, matched-filtered, and handed to
   the tracker with the segment's pilot groups and content symbols; the equalized content symbols go to a
   small buffer until the codewords they complete are decoded (radio/burst_decode.py).
3. *SIG* (groups 0..4 bracket it) gives the layout (and, once decoded, checks the tracker's frequency); MAP codewords give the runs (offsets); data codewords
   are decoded in batches as they complete (HARQ-combined by `(session, offset, code.name)`), each giving
   an `RxCodeword`; the closing group ends the burst with an `RxBurst`.

Streaming contract as `Receiver`: `feed` any chunking, `flush` at the end. Samples are processed in
pieces that end at absolute multiples of STEP_SAMPLES, and every slice the receiver reads is fixed by
absolute indices, so any chunking gives identical events. Memory: the sample buffer holds at most about
two steps (one segment plus margins), the symbol buffer one segment plus one codeword; never a burst.
Sign conventions: `RxBurst.sco_ppm` follows radio/channel.py (positive: the transmitter's clock is fast,
the received symbols come closer together); with `locked_clocks` the timing loop starts at the SCO the
CFO implies (cfo / lo_hz, the crystals drive both).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from radio.acquisition import Acquired, AcquisitionSettings, CfoPrior, acquire
from radio.burst import (PILOT_CONTENT, PILOT_GROUP, PILOT_PERIOD, PREAMBLE_SYMBOLS, SIG_SYMBOLS, BurstLayout,
                         SigHeader, codeword_bytes, codeword_symbols, pilot_group_symbols, sig_symbols)
from radio.burst_decode import PooledNoise, decode_data, decode_map, local_noise
from radio.burst_phase import refine_bpsk, refine_qam
from radio.burst_events import RxBurst, RxCodeword, RxEvent
from radio.burst_sync import LTF_SYMBOLS, PreambleSync, rotate, search_range, synchronize
from radio.errors import FrameError, RadioError
from radio.harq import LlrStore
from radio.interleave import (DEFAULT_INTERLEAVE_SYMBOLS, check_interleave_symbols, complete_codewords, deinterleave,
                              effective_snr_db, group_codewords)
from radio.mcs import ldpc_code
from radio.modulation import BITS_PER_SYMBOL, constellation
from radio.pilot_tracker import PilotTracker, TrackerConfig
from radio.pulse import filter_delay, matched_filter
from radio.sig_decode import decode_sig_tracked
from radio.snr import to_db
from radio.sync import stf_samples
from radio.transmitter import GAP_SYMBOLS

STEP_SAMPLES = 1 << 14  # processing happens when the stream reaches a multiple of this (and at flush)
DECODE_BATCH = 64  # codewords (air blocks) refined and decoded at a time within an interleaving group
SEGMENT_GROUPS = 16  # pilot periods tracked per call (4096 symbols, 16 k samples at 4 sps)
SIG_GROUPS = 4  # pilot intervals 0..3 hold the SIG (856 content symbols < 4 x 252): groups 0..4
TRACK_MARGIN = 16  # samples kept around a segment's predicted span ...
SCO_MARGIN = 2.5e-3  # ... plus this fraction of its length (an SCO the loop has not learned yet)
LTF_SYMBOL = PREAMBLE_SYMBOLS - LTF_SYMBOLS  # burst symbol of the LTF's first symbol (128)
BANK_SPACING_HZ = 80e3  # CFO bank of the no-prior search: the prior path's centre and +-this
PRIOR_HOLD_S = 0.2  # stream time after a decoded SIG for which its CFO is trusted (then the wide path too)
LOCKED_PRIOR_GROUPS = 100.0  # weight (pilot groups) of the CFO-implied SCO with locked clocks
SCO_PRIOR_PPM = 50.0
# Detection: the multi-lag STF metric (radio/stf_detect.py), every pair of the STF's 16 periods, where the
# Schmidl-Cox metric (threshold 0.07) used 12 neighbouring pairs and missed ~20 % of preambles at -4 dB Es/N0.
# Thresholds set on 2 s of noise: on the matched-filter paths 1.2 / 1.25 / 1.3 gave 14.5 / 6 / 0.5 candidates
# per second per path (noise maximum 1.37; a preamble at -4 dB peaks above 1.67 in 95 % of cases, at -5.5 dB
# above 1.28); the wide path's low-pass passes more noise, which lowers the metric (noise maximum 0.98)
DETECT_THRESHOLD = 1.25
WIDE_DETECT_THRESHOLD = 1.05
SIG_SLOPE_LAG = 128  # symbols: the SIG's residual-frequency check (`_check_frequency`), +-pi / 128 rad per symbol
SIG_END_SYMBOLS = 64  # the SIG's last symbols whose data-aided phase anchors the BPSK refinement after it
SIG_SLOPE_LIMIT = 0.004  # rad per symbol (160 Hz at 250 ksym/s; the estimate's std is 0.0007 at -6 dB) to correct
TIMING_FLOOR_SAMPLES = 0.03  # free-running clocks: the SCO is within about this (the timing loop's prior is 0)


def strongest_first(candidates: list[Acquired], gap: int) -> list[Acquired]:
    """Candidates sorted by run start, regrouped: runs that overlap or lie within `gap` samples of each other
    (one preamble seen by several paths and CFO centres) are tried strongest metric first. A path whose filter
    passes only the preamble's edge can cross the threshold with a short run hundreds of samples early; tried
    first, its LTF search missed the LTF and could start the burst at a wrong CFO (then the SIG failed)."""
    groups: list[list[Acquired]] = []
    end = None
    for c in candidates:  # a group reaches `gap` past its first run's end (no chaining over a long burst)
        if end is None or c.detection.run_start > end + gap:
            groups.append([])
            end = c.detection.run_end
        groups[-1].append(c)
    return [c for g in groups for c in sorted(g, key=lambda a: -a.detection.metric)]


def sco_prior_groups(snr_db: float) -> float:
    """Weight (pilot groups) of the SCO prior 0 +- SCO_PRIOR_PPM for free-running clocks: as many groups as
    measure eps that well at this SNR (per-group timing noise about 0.25 / sqrt(SNR) samples, at least
    TIMING_FLOOR_SAMPLES (self-noise, interpolation); a least-squares
    slope over w groups has std sigma sqrt(12 / w^3) / 1024): ~7 at -2 dB, ~1 at 20 dB. Without it the first
    noisy groups at low SNR can throw eps to hundreds of ppm and cost the SIG."""
    sigma = np.sqrt(0.0625 / 10.0 ** (snr_db / 10.0) + TIMING_FLOOR_SAMPLES**2)
    return float((12.0 * sigma**2 / (PILOT_PERIOD * 4 * SCO_PRIOR_PPM * 1e-6) ** 2) ** (1.0 / 3.0))


@dataclass
class _Burst:
    """A burst being received."""

    sync: PreambleSync
    start_sample: int
    tracker: PilotTracker
    noise: PooledNoise  # noise variance per matched-filter sample (absolute: the gain varies, the noise not)
    sig: SigHeader | None = None
    layout: BurstLayout | None = None
    offsets: np.ndarray | None = None  # payload offset per data codeword once known (MAP decoded)
    next_group: int = 0  # pilot groups before this one are tracked
    next_codeword: int = 0  # data codewords before this one are decoded
    z: np.ndarray = field(default_factory=lambda: np.zeros(0, np.complex64))  # content symbols from z_base
    amp: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # gain magnitude removed from each
    z_base: int = 0
    snrs: list[float] = field(default_factory=list)
    failed: list[tuple[int, int]] = field(default_factory=list)
    ok: int = 0
    evm_energy: float = 0.0
    evm_symbols: int = 0
    config: TrackerConfig | None = None  # the loops' settings from pilot group 1 on
    bpsk_phase: float = 0.0  # residual phase where the last BPSK block refined ended (radio/burst_phase.py)
    resume_at: int = 0  # absolute index (its detection's run end) where search resumes if the SIG fails its check
    sig_checked: bool = False  # the SIG passed its CRC (a burst, not a false alarm)
    anchored: bool = False  # the BPSK refinement's phase was anchored on the re-tracked SIG (_anchor_phase)

    def content_end(self) -> int:
        return self.z_base + self.z.size

    def symbols(self, first: int, stop: int) -> np.ndarray:
        """Content symbols [first, stop) (must be buffered)."""
        return self.z[first - self.z_base: stop - self.z_base]

    def noise_var(self, first: int, stop: int) -> np.ndarray:
        """(stop - first,) float32 noise variance of content symbols [first, stop) after their gain was removed."""
        a = self.amp[first - self.z_base: stop - self.z_base]
        return (self.noise.nv / np.maximum(a * a, 1e-30)).astype(np.float32)

    def snr_db(self) -> float:
        """SNR at the tracker's latest anchor: smoothed gain over the pooled noise."""
        return to_db(self.tracker.state.amplitude ** 2 / max(self.noise.nv, 1e-30))

    def drop_before(self, content: int) -> None:
        if content > self.z_base:
            self.z = self.z[content - self.z_base:].copy()
            self.amp = self.amp[content - self.z_base:].copy()
            self.z_base = content


class BurstReceiver:
    """Streaming v2 burst receiver: feed() samples in any chunking; it returns events as they complete.

    lo_hz: carrier frequency (with locked_clocks the SCO prior is cfo / lo_hz). max_cfo_hz: CFO range
    acquired without a prior (default 120 kHz, clamped to what the sample rate represents). harq: a
    chase-combining store shared across bursts (None: no combining). max_payload_bytes: a SIG announcing
    a larger payload is refused. interleave_symbols: the transmitter's codeword interleaving span
    (radio/interleave.py; an interleaving group is decoded when its last symbol has arrived).

    Attributes for measurements: `refine_qam` (default True) fits a decision-directed gain line to each
    QPSK/QAM codeword after the tracker (radio/burst_phase.py); `bank_hz` are the CFO centres the no-prior
    search adds to the prior path and the wide path.
    """

    def __init__(self, sample_rate_hz: float, samples_per_symbol: int, rolloff: float, *, lo_hz: float | None = None,
                 locked_clocks: bool = False, max_cfo_hz: float | None = None, harq: LlrStore | None = None,
                 max_iterations: int = 20, max_payload_bytes: int = 1 << 34,
                 interleave_symbols: int = DEFAULT_INTERLEAVE_SYMBOLS) -> None:
        if locked_clocks and not lo_hz:
            raise RadioError("locked_clocks needs lo_hz (the SCO prior is cfo / lo_hz)")
        self.sample_rate_hz = float(sample_rate_hz)
        self.sps = int(samples_per_symbol)
        self.rolloff = float(rolloff)
        self.lo_hz = lo_hz
        self.locked_clocks = locked_clocks
        self.harq = harq
        self.max_iterations = int(max_iterations)
        self.max_payload_bytes = int(max_payload_bytes)
        self.interleave_symbols = check_interleave_symbols(interleave_symbols, "interleave_symbols")
        self.refine_qam = True  # decision-directed gain line per QPSK/QAM codeword (radio/burst_phase.py)
        self.local_noise = True  # noise variance raised where the decisions say the tracker mis-equalized
        self.acquisition = AcquisitionSettings.make(sample_rate_hz, samples_per_symbol, rolloff, max_cfo_hz,
                                                    detect_threshold=DETECT_THRESHOLD,
                                                    wide_threshold=WIDE_DETECT_THRESHOLD, detector="multilag")
        self.prior = CfoPrior(int(round(PRIOR_HOLD_S * self.sample_rate_hz)))
        self.tracker_config = TrackerConfig(samples_per_symbol=self.sps, rolloff=self.rolloff,
                                            sample_rate_hz=self.sample_rate_hz,
                                            eps0_prior_groups=LOCKED_PRIOR_GROUPS if locked_clocks else 0.0)
        self._fd = filter_delay(self.sps, self.rolloff)
        lag = self.acquisition.lag
        self._window = self.acquisition.metric_span - lag  # the metric reads window + lag samples
        self._search_tail = stf_samples(self.sps) + self._window + 2 * lag + 2 * self._fd
        self._derotate_hz = 0.0
        limit = self.acquisition.max_cfo_hz
        self.bank_hz = tuple(f for f in (-BANK_SPACING_HZ, BANK_SPACING_HZ) if abs(f) < limit)  # see _candidates
        self._retune_hz = self.sample_rate_hz * self.acquisition.ambiguity_cycles / 4
        self._buf = np.zeros(0, np.complex64)
        self._offset = 0  # absolute index of _buf[0]
        self._consumed = {"prior": 0, "wide": 0}  # per detection path: absolute index before which all is handled
        self._burst: _Burst | None = None
        self._false_ltf: float | None = None  # LTF time (absolute) of the last peak whose SIG failed its check
        self._seen = 0
        self.non_finite_samples = 0
        self.frequency_corrections = 0  # bursts whose tracker frequency the SIG corrected (`_check_frequency`)
        self.max_buffered_samples = 0  # high-water mark of the sample buffer (memory check)
        self.max_buffered_symbols = 0  # high-water mark of the content symbol buffer

    # --- stream ------------------------------------------------------------------------------------
    @property
    def samples_seen(self) -> int:
        """Samples fed so far (the absolute index of the next one)."""
        return self._seen

    @property
    def buffered_samples(self) -> int:
        """Raw samples held now."""
        return self._buf.size

    def feed(self, samples: np.ndarray) -> list[RxEvent]:
        """Append samples (any length) and return the events they complete, in stream order.

        Non-finite samples are zeroed and counted: they cost the codewords they fall in, nothing else.
        """
        x = np.asarray(samples, np.complex64).ravel()
        bad = ~np.isfinite(x)
        if bad.any():
            x = np.where(bad, np.complex64(0), x)
            self.non_finite_samples += int(bad.sum())
        events: list[RxEvent] = []
        pos = 0
        while pos < x.size:
            take = min(STEP_SAMPLES - self._seen % STEP_SAMPLES, x.size - pos)
            self._buf = np.concatenate([self._buf, x[pos: pos + take]])
            self._seen += take
            pos += take
            self.max_buffered_samples = max(self.max_buffered_samples, self._buf.size)
            if self._seen % STEP_SAMPLES == 0:
                events += self._process(final=False)
        return events

    def flush(self) -> list[RxEvent]:
        """End of stream: process what is buffered; a burst still pending ends with error 'stream ended'."""
        events = self._process(final=True)
        if self._burst is not None:
            events.append(self._finish(self._burst, "stream ended inside the burst"))
            self._burst = None
        self._offset += self._buf.size
        self._buf = np.zeros(0, np.complex64)
        return events

    def _process(self, final: bool) -> list[RxEvent]:
        events: list[RxEvent] = []
        while True:
            if self._burst is None:
                if not self._search(final):
                    return events
            elif not self._advance(self._burst, events, final):
                return events

    # --- search ------------------------------------------------------------------------------------
    def _search(self, final: bool) -> bool:
        """Look for a v2 preamble in the buffer; True when a burst was started."""
        buf, lag = self._buf, self.acquisition.lag
        if buf.size < self._window + lag + 1:
            return False
        metric_len = buf.size - lag - self._window + 1
        keep_from = max(buf.size - self._search_tail, 0)
        if self.prior.hz is not None and abs(self.prior.hz - self._derotate_hz) > self._retune_hz:
            self._derotate_hz = self.prior.hz
        wide = not self.prior.trusted(self._offset + buf.size)
        hold = self._window + lag + 2 * self._fd
        handled = dict(self._consumed)  # before this pass: candidates regrouped strongest first all get a try
        for cand in self._candidates(buf, wide):
            det = cand.detection
            if self._offset + det.run_end <= handled[cand.path]:
                continue
            if cand.path == "wide" and self.prior.trusted(self._offset + det.run_start):
                continue
            lo, hi, a, b = search_range(det, self.acquisition)
            if (det.run_end >= metric_len or b > buf.size) and not final:
                keep_from = min(keep_from, max(det.run_start - hold, 0))
                break
            sync = None if b > buf.size else synchronize(buf[a:b], self._offset + a, lo - a, hi - a,
                                                         det.cfo_cycles_per_sample, self.acquisition)
            if sync is None:  # a false alarm on this path; the other may still try the same run
                self._consumed[cand.path] = max(self._consumed[cand.path], self._offset + det.run_end)
                continue
            if sync.version != 2:  # a v1 packet: not ours
                self._consumed = dict.fromkeys(self._consumed, self._offset + det.run_end)
                continue
            if self._false_ltf is not None and abs(sync.ltf_time_samples - self._false_ltf) < 2 * self.sps:
                self._consumed[cand.path] = self._offset + det.run_end  # the peak whose SIG just failed
                continue
            self._start(sync, self._offset + det.run_end)
            return True
        if not final and keep_from > 0:
            self._drop(self._offset + keep_from)
        return False

    def _candidates(self, buf: np.ndarray, wide: bool) -> list[Acquired]:
        """Detections in the buffer, sorted by run start: the prior path, and without a trusted prior the wide
        path plus the matched-filter detector derotated to each of `bank_hz` (labelled wide): the wide
        low-pass admits 3.4 dB more noise, so at -2 dB it missed about one preamble in five at +-120 kHz;
        a bank centre within +-40 kHz of the CFO loses only the band edge."""
        out = acquire(buf, self._offset, self.acquisition, self._derotate_hz, wide)
        if wide:
            for centre in self.bank_hz:
                if abs(centre - self._derotate_hz) > self._retune_hz:
                    bank = acquire(buf, self._offset, self.acquisition, centre, False)
                    out += [replace(c, path="wide") for c in bank]
            out.sort(key=lambda a: (a.detection.run_start, a.path != "prior"))
        return strongest_first(out, stf_samples(self.sps))

    def _drop(self, absolute: int) -> None:
        """Forget raw samples before an absolute index."""
        cut = absolute - self._offset
        if cut > 0:
            self._buf = self._buf[cut:].copy()
            self._offset += cut

    def _start(self, sync: PreambleSync, resume_at: int) -> None:
        cfo_hz = sync.cfo_cycles * self.sample_rate_hz
        eps0 = -cfo_hz / self.lo_hz if self.locked_clocks else 0.0  # tracker eps: received samples per symbol
        config = self.tracker_config
        if not self.locked_clocks:
            config = replace(config, eps0_prior_groups=sco_prior_groups(sync.ltf_snr_db))
        # group 0 alone first, without an SCO prior: its timing error is mostly self-noise of the unknown
        # LTF/SIG symbols around it (decisions join from group 1 on), which trust_t0 ignores only when the
        # eps integrator's gain is zero too (no prior); the loops get their own config from group 1 on
        tracker = PilotTracker.start(sync.ltf_time_samples, LTF_SYMBOL, eps0, 0.0,
                                     replace(config, eps0_prior_groups=0.0))
        start = int(round(sync.ltf_time_samples - LTF_SYMBOL * self.sps - self._fd))
        self._burst = _Burst(sync, start, tracker, PooledNoise(max(sync.ltf_noise, 1e-30)), config=config,
                             resume_at=resume_at)

    # --- one burst ---------------------------------------------------------------------------------
    def _span(self, bs: _Burst) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int, np.ndarray] | None:
        """The next tracker call: (group numbers (g,), pilot indices (g, 4), pilot values (g, 4), content
        first, stop, bits per content symbol); None when every group is tracked."""
        if bs.next_group == 0:
            groups = np.arange(1)
            first = stop = 0
            bits = np.zeros(0, np.int8)
        elif bs.layout is None:  # groups 1..3, then (tentatively, see _advance) group 4
            groups = np.arange(1, SIG_GROUPS) if bs.next_group == 1 else np.arange(SIG_GROUPS, SIG_GROUPS + 1)
            first, stop = PILOT_CONTENT * (groups[0] - 1), PILOT_CONTENT * groups[-1]
            bits = (np.arange(first, stop) < SIG_SYMBOLS).astype(np.int8)
        else:
            regular = bs.layout.pilot_groups - 1  # the closing group is number `regular`
            if bs.next_group > regular:
                return None
            groups = np.arange(bs.next_group, min(bs.next_group + SEGMENT_GROUPS, regular + 1))
            first = PILOT_CONTENT * (bs.next_group - 1)
            stop = min(PILOT_CONTENT * groups[-1], bs.layout.content_symbols)
            bits = self._content_bits(bs.layout, first, stop)
        idx = PREAMBLE_SYMBOLS + PILOT_PERIOD * groups[:, None] + np.arange(PILOT_GROUP)
        if bs.layout is not None and groups[-1] == bs.layout.pilot_groups - 1:
            idx[-1] = bs.layout.pilot_indices()[-1]
        return groups, idx, pilot_group_symbols(groups), first, stop, bits

    @staticmethod
    def _content_bits(layout: BurstLayout, first: int, stop: int) -> np.ndarray:
        """(stop - first,) int8 bits per symbol of content symbols [first, stop): SIG, MAP, data."""
        c = np.arange(first, stop)
        bits = np.full(c.size, BITS_PER_SYMBOL[layout.mcs.modulation], np.int8)
        bits[c < layout.data_content_start] = BITS_PER_SYMBOL[layout.map_scheme.modulation]
        bits[c < SIG_SYMBOLS] = 1
        return bits

    def _margin(self, span_samples: float) -> int:
        return TRACK_MARGIN + int(SCO_MARGIN * span_samples)

    def _advance(self, bs: _Burst, events: list[RxEvent], final: bool) -> bool:
        """Track and decode what the buffer allows; True when the burst ended (events appended)."""
        while True:
            span = self._span(bs)
            if span is None:
                events.append(self._finish(bs, None))
                self._end(bs)
                return True
            groups, idx, values, first, stop, bits = span
            st = bs.tracker.state
            per = self.sps * (1.0 + st.eps)
            t_end = st.time_samples + (idx[-1, -1] - st.anchor_symbol) * per
            margin = self._margin(t_end - st.time_samples)
            a = math.floor(st.time_samples) - margin
            b = math.ceil(t_end) + margin
            if b + self._fd > self._offset + self._buf.size:
                return False  # flush() fails the burst when final
            if a - self._fd < self._offset:
                events.append(self._finish(bs, f"tracking lost: sample {a - self._fd} already dropped"))
                self._end(bs)
                return True
            raw = self._buf[a - self._fd - self._offset: b + self._fd - self._offset]
            y = matched_filter(rotate(raw, bs.sync.cfo_cycles, a - self._fd), self.sps, self.rolloff)
            data = BurstLayout.content_index(np.arange(first, stop))
            # the SIG's last interval (group 4) also holds MAP/data symbols of a modulation the SIG tells:
            # track it on a copy for the SIG, then again with their decisions (unknown symbols next to a
            # group bias its timing error by tenths of a sample)
            tentative = bs.layout is None and groups[0] == SIG_GROUPS
            tracker = PilotTracker(bs.tracker.state, bs.config) if tentative else bs.tracker
            try:
                res = tracker.process(y[self._fd: y.size - self._fd], a, idx, values, data, bits)
            except ValueError as exc:
                events.append(self._finish(bs, f"tracking lost: {exc}"))
                self._end(bs)
                return True
            bs.z = np.concatenate([bs.z, res.symbols])
            bs.amp = np.concatenate([bs.amp, res.symbol_amplitude])
            self.max_buffered_symbols = max(self.max_buffered_symbols, bs.z.size)
            if tentative:
                error = self._decode_sig(bs)
                bs.z, bs.amp, bs.z_base = np.zeros(0, np.complex64), np.zeros(0, np.float32), first  # tracked again
            else:
                bs.next_group = int(groups[-1]) + 1
                if groups[0] == 0:
                    bs.tracker = PilotTracker(bs.tracker.state, bs.config)
                error = self._decode(bs, events)
            if error is not None:
                events.append(self._finish(bs, error))
                self._end(bs, sig_only=bs.layout is None)
                return True
            if bs.layout is not None:  # until the SIG checks, the preamble's samples stay: see _end
                keep = self._margin(SEGMENT_GROUPS * PILOT_PERIOD * per) + self._fd + 1
                self._drop(math.floor(bs.tracker.state.time_samples) - keep)

    def _decode_sig(self, bs: _Burst) -> str | None:
        """Decode the SIG from the buffered content 0..855: sets sig and layout, or says what failed."""
        try:
            sig, nv, _, bs.bpsk_phase = decode_sig_tracked(bs.symbols(0, SIG_SYMBOLS), bs.noise_var(0, SIG_SYMBOLS))
        except FrameError as exc:
            return f"SIG: {exc}"
        bs.sig_checked = True
        self._check_frequency(bs, sig)
        a = bs.amp[:SIG_SYMBOLS]
        bs.noise = PooledNoise(nv * float(np.mean(a * a)))  # its fit is relative to the gain removed
        bs.noise.update(bs.noise.nv, SIG_SYMBOLS)
        layout = BurstLayout.from_sig(sig)
        if layout.pilot_groups - 1 <= SIG_GROUPS:
            return f"SIG announces a burst too short to track ({sig.codewords} codewords)"
        if sig.payload_bytes > self.max_payload_bytes:
            return f"SIG payload of {sig.payload_bytes} bytes exceeds the limit {self.max_payload_bytes}"
        bs.sig, bs.layout = sig, layout
        self.prior.update(bs.sync.cfo_cycles * self.sample_rate_hz, int(bs.tracker.state.time_samples))
        return None

    def _check_frequency(self, bs: _Burst, sig: SigHeader) -> None:
        """Re-anchor the tracker's residual CFO on the decoded SIG (known symbols).

        At -1 dB Es/N0 about one burst in 40 left the SIG with the tracker's frequency a few hundred Hz off
        (the residual phase turning by ~7 rad over the SIG): the SIG still decoded (its phase is refined per
        window), but the tracker kept that frequency and every data codeword failed. The phase step at lag
        SIG_SLOPE_LAG of z conj(SIG) measures the residual (std ~0.0007 rad per symbol at -6 dB); beyond
        SIG_SLOPE_LIMIT it is removed from the tracker's state."""
        r = bs.symbols(0, SIG_SYMBOLS) * np.conj(sig_symbols(sig))
        slope = float(np.angle(np.vdot(r[:-SIG_SLOPE_LAG], r[SIG_SLOPE_LAG:]))) / SIG_SLOPE_LAG
        if abs(slope) > SIG_SLOPE_LIMIT:
            st = bs.tracker.state
            bs.tracker = PilotTracker(replace(st, freq_rad_per_symbol=st.freq_rad_per_symbol + slope), bs.config)
            self.frequency_corrections += 1

    @staticmethod
    def _anchor_phase(bs: _Burst) -> None:
        """Start the BPSK refinement after the SIG at the data-aided phase of the SIG's last SIG_END_SYMBOLS
        symbols as re-tracked with the SIG's decisions (the nearest representative of it).

        The refinement used to continue from the SIG's own end phase, measured on the tentative tracking of
        its last interval: in about one burst in 100 at -2..-0.5 dB that phase was pi off (a slip of the
        squared-symbol phase, or the tentative tracker off where the re-tracked one is right), and every BPSK
        codeword after the SIG was refined negated and failed."""
        bs.anchored = True
        first = max(bs.z_base, SIG_SYMBOLS - SIG_END_SYMBOLS)
        if bs.content_end() < SIG_SYMBOLS or first >= SIG_SYMBOLS:
            return
        r = bs.symbols(first, SIG_SYMBOLS) * np.conj(sig_symbols(bs.sig)[first:])
        end = float(np.angle(np.sum(r)))
        bs.bpsk_phase += float(np.angle(np.exp(1j * (end - bs.bpsk_phase))))

    def _decode(self, bs: _Burst, events: list[RxEvent]) -> str | None:
        """Decode MAP and the data codewords the buffered symbols complete; an error ends the burst."""
        if bs.layout is None:
            return None
        layout, sig = bs.layout, bs.sig
        if not bs.anchored:
            self._anchor_phase(bs)
        if bs.offsets is None:
            if layout.map_codewords == 0:
                bs.offsets = sig.first_offset + codeword_bytes(layout.mcs) * np.arange(sig.codewords, dtype=np.int64)
            elif bs.content_end() >= layout.data_content_start:
                scheme = layout.map_scheme
                z = bs.symbols(SIG_SYMBOLS, layout.data_content_start)
                nv = bs.noise_var(SIG_SYMBOLS, layout.data_content_start)
                if scheme.modulation == "bpsk":
                    z, bs.bpsk_phase = refine_bpsk(z, bs.bpsk_phase)
                elif self.refine_qam:  # per copy, as data codewords
                    copies = layout.map_codewords * scheme.repeat
                    z, gain = refine_qam(z.reshape(copies, -1), BITS_PER_SYMBOL[scheme.modulation])
                    nv = nv / np.maximum(np.abs(gain.ravel()) ** 2, 1e-12)
                z = z.reshape(layout.map_codewords, scheme.repeat, -1)
                nv = nv.reshape(z.shape)
                try:
                    bs.offsets = decode_map(z, nv, scheme, sig, self.max_iterations)
                except FrameError as exc:
                    return f"MAP: {exc}"
            else:
                return None
            bs.drop_before(layout.data_content_start)
        self._decode_data(bs, events)
        return None

    def _refine(self, bs: _Burst, mcs, z: np.ndarray, nv: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(b, S) air-order blocks of a codeword's length and their noise variance -> (symbols with the residual
        phase or gain removed, their variance, the variance the LLRs use (radio/burst_decode.py local_noise))."""
        b = z.shape[0]
        if mcs.modulation == "bpsk":  # residual phase per block (all its copies), continuous
            z = z.copy()
            for j in range(b):
                z[j], bs.bpsk_phase = refine_bpsk(z[j], bs.bpsk_phase)
        elif self.refine_qam:  # residual complex gain per codeword-copy-long block, decision-directed
            z, gain = refine_qam(z.reshape(b * mcs.repeat, -1), BITS_PER_SYMBOL[mcs.modulation])
            z = z.reshape(b, -1)
            nv = nv / np.maximum(np.abs(gain.reshape(b, -1)) ** 2, 1e-12)
        llr_nv = nv
        if self.local_noise and mcs.modulation != "bpsk":
            llr_nv = local_noise(z.reshape(b * mcs.repeat, -1), nv.reshape(b * mcs.repeat, -1),
                                 constellation(mcs.modulation)).reshape(b, -1)
        return z, nv, llr_nv

    def _decode_data(self, bs: _Burst, events: list[RxEvent]) -> None:
        layout, sig, mcs = bs.layout, bs.sig, bs.layout.mcs
        per = codeword_symbols(mcs)
        start = layout.data_content_start
        depth = group_codewords(per, self.interleave_symbols, sig.probe)
        complete = complete_codewords(bs.content_end() - start, per, sig.codewords, depth)
        if complete <= bs.next_codeword:
            return
        first, count = bs.next_codeword, complete - bs.next_codeword
        # rows: air-order blocks of one codeword's length (a codeword each when not interleaved), refined as
        # they came, then deinterleaved (first is a group boundary); DECODE_BATCH rows or codewords at a time,
        # so that the temporaries of a whole interleaving group never coexist
        z = bs.symbols(start + first * per, start + complete * per).reshape(count, -1)
        nv = bs.noise_var(start + first * per, start + complete * per).reshape(count, -1)
        z_out, llr_nv = np.empty_like(z), np.empty_like(nv)
        for a in range(0, count, DECODE_BATCH):
            b = min(a + DECODE_BATCH, count)
            z_out[a:b], nv[a:b], llr_nv[a:b] = self._refine(bs, mcs, z[a:b], nv[a:b])
        z = z_out
        if depth > 1:
            z, nv, llr_nv = (deinterleave(x.reshape(-1), count, depth) for x in (z, nv, llr_nv))
        shape = (count, mcs.repeat, per // mcs.repeat)
        z, nv, llr_nv = z.reshape(shape), nv.reshape(shape), llr_nv.reshape(shape)
        for a in range(0, count, DECODE_BATCH):
            b = min(a + DECODE_BATCH, count)
            self._decode_codewords(bs, events, first + a, z[a:b], nv[a:b], llr_nv[a:b])
        bs.next_codeword = complete
        bs.drop_before(start + complete * per)

    def _decode_codewords(self, bs: _Burst, events: list[RxEvent], first: int, z: np.ndarray, nv: np.ndarray,
                          llr_nv: np.ndarray) -> None:
        """Data codewords first .. first + b - 1 from their (b, repeat, per) deinterleaved symbols: events."""
        sig, mcs = bs.sig, bs.layout.mcs
        code, size, count = ldpc_code(mcs), codeword_bytes(mcs), z.shape[0]
        offsets = [int(o) for o in bs.offsets[first:first + count]]
        keys = [(sig.session, o, code.name) for o in offsets]
        pilot_snr_db = effective_snr_db(1.0 / np.maximum(nv.reshape(count, -1), 1e-30), mcs.modulation)
        batch = decode_data(code, constellation(mcs.modulation), z, nv, keys, self.harq, pilot_snr_db,
                            self.max_iterations, llr_nv)
        bs.evm_energy += batch.evm_energy
        bs.evm_symbols += batch.evm_symbols
        for j, cw in enumerate(batch.codewords):
            offset = offsets[j]
            length = max(min(size, sig.payload_bytes - offset), 0)
            data = None if cw.data is None else cw.data[:length]
            if data is None:
                bs.failed.append((offset, offset + length))
            else:
                bs.ok += 1
                bs.noise.update(cw.nv * bs.noise.nv / float(np.mean(nv[j])), z[j].size)  # relative -> absolute
            bs.snrs.append(cw.snr_db)
            events.append(RxCodeword(sig.session, sig.burst, first + j, offset, length, data, cw.snr_db,
                                     cw.iterations, cw.combined))

    def _time_of(self, bs: _Burst, symbol: float) -> float:
        """Predicted absolute sample of a burst symbol from the tracker's state."""
        st = bs.tracker.state
        return st.time_samples + (symbol - st.anchor_symbol) * self.sps * (1.0 + st.eps)

    def _end(self, bs: _Burst, sig_only: bool = False) -> None:
        """Back to search after a burst: detections before its last pilots (or its SIG) are ignored. When its
        SIG failed its check (most often a false alarm in noise), the search resumes right after the detection
        that started it (a burst just behind a false alarm is still found), and that LTF peak is not tried again."""
        self._burst = None
        if bs.layout is None and not bs.sig_checked:
            self._false_ltf = bs.sync.ltf_time_samples
            self._consumed = {k: max(v, bs.resume_at) for k, v in self._consumed.items()}
            self._drop(bs.resume_at - self._search_tail)
            return
        if sig_only or bs.layout is None:
            stop = bs.tracker.state.time_samples
        else:
            stop = self._time_of(bs, bs.layout.total_symbols - GAP_SYMBOLS)
        self._consumed = dict.fromkeys(self._consumed, int(stop))
        self._drop(int(stop) - self._search_tail)

    def _finish(self, bs: _Burst, error: str | None) -> RxBurst:
        """The burst's RxBurst (error set when it ended early: pending codewords count as failed)."""
        sig, snrs = bs.sig, np.asarray(bs.snrs, np.float32)
        failed = list(bs.failed)
        pending = 0
        if sig is not None:
            pending = sig.codewords - bs.next_codeword
            if bs.offsets is not None and pending:
                size = codeword_bytes(sig.scheme)
                for o in bs.offsets[bs.next_codeword:]:
                    failed.append((int(o), int(o) + max(min(size, sig.payload_bytes - int(o)), 0)))
        snr = float(np.mean(snrs)) if snrs.size else (bs.snr_db() if sig is not None else bs.sync.ltf_snr_db)
        p25 = float(np.percentile(snrs, 25)) if snrs.size else snr
        st = bs.tracker.state
        cfo_hz = bs.sync.cfo_cycles * self.sample_rate_hz + st.freq_rad_per_symbol / (2 * np.pi) * \
            self.sample_rate_hz / self.sps
        evm = to_db(bs.evm_symbols / bs.evm_energy) if bs.evm_symbols and bs.evm_energy > 0 else float("nan")
        end = -1
        if bs.layout is not None and error is None:
            end = int(math.ceil(self._time_of(bs, bs.layout.total_symbols - 1))) + self._fd + 1
        return RxBurst(bs.start_sample, sig, bs.ok, (sig.codewords - bs.ok) if sig is not None else 0, snr, p25,
                       float(cfo_hz), float(-st.eps * 1e6), evm, snrs, _merge(failed), error, end)


def _merge(ranges: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """Half-open ranges sorted and merged where they touch or overlap."""
    out: list[list[int]] = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return tuple((a, b) for a, b in out)
