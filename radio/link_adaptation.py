"""Link adaptation for v2 bursts: the LDPC MCS that maximizes expected goodput (docs/design/link_v2.md section 6).

`McsSelector.pick` takes the SNRs the receiver measured per codeword of the latest burst and the measured
BLER curves (radio/mcs_bler_curves.json) and scores every MCS m over that empirical distribution:

    p1 = mean_j (1 - BLER_m(s_j + delta))          first transmission
    p2 = mean_j (1 - BLER_m(s_j + delta + 3 dB))   after chase combining of two
    G_m = b_m eta_m / (1 + (1 - p1) / p2)

b_m the information bits per symbol, eta_m the burst's framing efficiency, delta an outer-loop offset (dB)
that `update` moves by the observed against the predicted BLER. 1 + (1 - p1) / p2 is the expected number of
transmissions of a codeword when every repeat succeeds with p2 (conservative: three or more combined copies
do better), so an MCS that never decodes scores 0. (The design's first form, 1 + (1 - p1)(2 - p2), counted
at most three transmissions and rated a never-decoding MCS at b_m eta_m / 3.) Only MCSs whose first pass
succeeds at least half the time (`max_first_pass_bler`) are eligible: one that always needs its
chase-combined second copy costs a round trip and a HARQ buffer for the rate of an MCS half as fast.
When none is eligible the most robust MCS goes. Ties (within TIE_TOLERANCE) go to the more robust MCS.
Near the end of a transfer (`TailInfo`) the pick minimizes the expected completion time instead.
`FixedMcs` serves a configured MCS name.
"""

from __future__ import annotations

import math
from functools import lru_cache
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from radio.codeword import bytes_per_codeword
from radio.errors import RadioError
from radio.interleave import effective_snr_db
from radio.mcs import Mcs, bler_curves, by_name, family_table, ldpc_code

TIE_TOLERANCE = 1e-4  # expected goodputs this close (relative) count as equal
BURST_FIXED_SYMBOLS = 256 + 856 + 16  # STF + LTF2, SIG, gap of a v2 burst (pilots scale with length: eta)
PROBE_SPREAD_DB = 0.8  # a probe's codeword SNRs spread wider than this: fading (SelectorSettings.probe_spread_db)


@dataclass(frozen=True)
class SelectorSettings:
    """Outer loop, SNR window and tail-rule settings of McsSelector."""

    outer_gain: float = 0.5
    """delta -= outer_gain * (observed - predicted) / max(predicted, min_predicted_bler)"""
    min_predicted_bler: float = 0.01
    """floor of the predicted BLER in the outer-loop step"""
    delta_limit_db: float = 3.0
    """the outer-loop offset stays within +-this"""
    full_sample_codewords: int = 64
    """an outer-loop step counts fully when its prediction came from at least this many codeword SNRs, else in
    proportion: a 50 ms probe's 11 codewords see one or two fading blocks, so a burst picked from them may
    miss its prediction by far without the curves being wrong (block fading, Rician K = 6 dB)"""
    prior_below_codewords: int = 16
    """a sample of fewer codeword SNRs than this (a 50 ms probe: 11) whose range exceeds probe_spread_db ..."""
    probe_spread_db: float = PROBE_SPREAD_DB
    """... (a probe's plain codewords measure to a few tenths of a dB: over AWGN their range is 0.3-0.8 dB at
    0-25 dB, so a wider one says the channel fades) is judged as Rician fading with fading_prior_k_db around its
    mean power instead of as it is: a probe sees two or three fading blocks, not their distribution, and picking
    from them cost the first bursts of a transfer half their codewords (Rician K = 6 dB, 20 ms blocks). At 2.0 dB
    (fading_spread_db) two blocks 1-2 dB apart passed as AWGN and a 16qam-2/3 burst lost every codeword at 10 dB.
    Measured with the ramp (radio/arq.py RAMP_AIRTIME_S 0.25 s; Rician K = 6, 200 kB, seeds 1-16, goodput /
    Shannon at 10 / 15 / 20 dB): 2.0 dB 0.421 / 0.466 / 0.493, 1.0 dB 0.424 / 0.477 / 0.501, 0.8 dB 0.434 /
    0.477 / 0.500 (fading_spread_db moved with it, probes and bursts alike: 1.2 dB 0.429 / 0.469 / 0.499, 0.8 dB
    0.432 / 0.483 / 0.506; AWGN bursts then judged as fading). Over AWGN (0 / 5 / 10 dB, seeds 1-12) one probe
    in 36 spread past 0.8 dB (5 dB: 0.587 instead of 0.610, its first 0.5 s at qpsk-1/2), none past 1.0 dB"""
    fading_spread_db: float = 2.0
    """a larger sample whose range exceeds this is judged as fading block by block (with interleaving: at its
    effective SNR, see interleaved); interleaved bursts' codeword SNRs spread 1-1.6 dB over AWGN at 5-15 dB"""
    fading_prior_k_db: float = 6.0
    """K factor of that prior"""
    interleaved: bool = False
    """bursts interleave their codewords over fading blocks (radio.interleave_symbols > 0): a codeword sees the
    whole SNR distribution of a sample measured block by block (the fading prior of a probe, or any sample whose
    spread exceeds fading_spread_db), so each MCS is judged at the sample's mutual-information effective SNR for
    its modulation (radio/interleave.py): judged block by block, an MCS above it looked as if the good blocks
    decoded, where interleaved every codeword fails"""
    interleaved_min_predicted_bler: float = 0.1
    """min_predicted_bler of the outer loop with interleaving: a burst's codewords fail together (a group, or a
    short tail burst inside one fade), so one burst is a single noisy trial and moved delta by its full 3 dB"""
    interleaved_prior_margin_db: float = 2.0
    """with interleaving the fading prior's mean power is taken this much below the probe's: its two or three
    blocks measure it to about +-1.5 dB at K = 6 dB, and an interleaved burst at an MCS above the effective SNR
    loses all its codewords at once (expected goodput is risk-neutral; a margin is not). Measured (Rician K = 6,
    200 kB, seeds 1-8, goodput / Shannon at 10 / 15 / 20 dB): averaging over a +-1 dB uncertainty 0.39 / 0.45 /
    0.53, margin 1 dB 0.40 / 0.48 / 0.53, 2 dB 0.43 / 0.48 / 0.54 (seeds 9-16 at 2 dB: 0.38 / 0.40 / 0.46).
    With the ramp (radio/arq.py, 0.25 s; seeds 1-16; spread thresholds of probes and bursts both 1.2 dB): 1.5 dB
    0.426 / 0.474 / 0.497, 2 dB 0.429 / 0.469 / 0.499, 2.5 dB 0.428 / 0.465 / 0.502, 3 dB 0.422 / 0.463 / 0.495
    (both 2.0 dB: 1 dB 0.410 / 0.465 / 0.492, 2 dB 0.421 / 0.466 / 0.493; both 0.8 dB: 1.5 dB 0.429 / 0.481 /
    0.505, 2 dB 0.432 / 0.483 / 0.506): 2 dB stays"""
    interleaved_loss_db: float = 0.5
    """... less what the receiver loses on interleaved codewords against their true effective SNR (tracking
    through fades; measured 0.3-0.6 dB at 10 dB, K = 6 dB, 20 ms blocks): an interleaved burst at too fast an
    MCS loses all its codewords at once"""
    max_first_pass_bler: float = 0.5
    """an MCS whose predicted first-pass BLER exceeds this is not picked for goodput"""
    combine_gain_db: float = 3.0
    """SNR gain of chase-combining two transmissions of a codeword"""
    moved_db: float = 3.0
    """a burst whose latest half moved at least this from the previous burst is judged on that half only"""
    bler_floor: float = 1e-6
    """curves are interpolated in log10(BLER) clipped to [bler_floor, 1]"""
    symbol_rate_hz: float = 250e3
    """symbols per second (tail rule airtime)"""
    burst_airtime_s: float = 1.0
    """longest burst (radio.burst_airtime_s): how many codewords one burst carries"""
    tail_bursts: int = 2
    """the tail rule applies when the remaining bytes fit in this many bursts"""


@dataclass(frozen=True)
class TailInfo:
    """What is left of a transfer: payload bytes still undelivered and the report round trip."""

    remaining_bytes: int
    rtt_s: float


class McsPicker(Protocol):
    """What the sender asks once per burst: an MCS from codeword SNRs; then the burst's observed BLER."""

    def pick(self, codeword_snr_db: np.ndarray, tail: TailInfo | None = None) -> Mcs: ...

    def update(self, observed_bler: float, predicted_bler: float | None = None) -> float: ...


@dataclass
class FixedMcs:
    """A configured MCS (radio.mcs a name): every pick returns it, the outer loop does nothing."""

    mcs: Mcs
    delta_db: float = 0.0
    last_predicted_bler: float | None = None

    def pick(self, codeword_snr_db: np.ndarray, tail: TailInfo | None = None) -> Mcs:
        return self.mcs

    def update(self, observed_bler: float, predicted_bler: float | None = None) -> float:
        return self.delta_db


def _unit_efficiency(mcs: Mcs) -> float:
    return 1.0


class McsSelector:
    """Expected-goodput MCS choice over an LDPC family from measured BLER curves, with an outer loop."""

    def __init__(self, table: tuple[Mcs, ...], curves: dict, efficiency: Callable[[Mcs], float] = _unit_efficiency,
                 settings: SelectorSettings = SelectorSettings(),
                 airtime_s: Callable[[Mcs, int], float] | None = None) -> None:
        """table: MCSs most robust first; curves: {"snr_db", "bler": {name: [...]}}; efficiency: eta_m of a
        full burst; airtime_s(mcs, codewords): seconds to send that many codewords (default: fixed burst
        symbols per burst plus codeword symbols / eta at settings.symbol_rate_hz)."""
        missing = [m.name for m in table if m.name not in curves.get("bler", {})]
        if not table or missing:
            raise RadioError(f"BLER curves lack {', '.join(missing) or 'every MCS'}: re-run `airlora mcs-table`")
        self.table = tuple(table)
        self.settings = settings
        self._snr_db = np.asarray(curves["snr_db"], float)
        bler = np.array([curves["bler"][m.name] for m in table], float)
        lost = curves.get("burst_lost", {})
        if lost:  # receiver-level curves: judge codewords of bursts that arrived (a running link holds a CFO prior;
            # a lost burst is the ARQ's timeout, not the MCS's BLER: counting it made BPSK look 10x worse at 0 dB)
            share = np.clip(np.array([lost.get(m.name, np.zeros(bler.shape[1])) for m in table], float), 0.0, 0.99)
            bler = np.clip((bler - share) / (1.0 - share), 0.0, 1.0)
        if bler.shape[1] != self._snr_db.size or np.any(np.diff(self._snr_db) <= 0):
            raise RadioError("BLER curves need one value per grid point on an increasing SNR grid")
        self._log_bler = np.log10(np.clip(bler, settings.bler_floor, 1.0))
        self._bits = np.array([m.info_bits_per_symbol for m in table])
        self._eta = np.array([efficiency(m) for m in table], float)
        self._codeword_bytes = np.array([bytes_per_codeword(ldpc_code(m)) for m in table])
        self._codeword_symbols = np.array([m.code_n * m.repeat / m.bits_per_symbol for m in table])
        self._airtime_s = airtime_s or self._default_airtime_s
        self.delta_db = 0.0
        self.last_predicted_bler: float | None = None
        self._previous_db: float | None = None
        self._sample_size: dict[float, int] = {}  # codeword SNRs behind each recent prediction, by its value

    @classmethod
    def from_shipped(cls, family: str = "ldpc", **kwargs) -> McsSelector:
        """The selector over `family` with the shipped radio/mcs_bler_curves.json."""
        return cls(family_table(family), bler_curves(), **kwargs)

    def _row(self, mcs: Mcs) -> int:
        for i, m in enumerate(self.table):
            if m == mcs:
                return i
        raise RadioError(f"MCS {mcs.name} is not in this selector's table")

    def _bler_rows(self, snr_db: np.ndarray) -> np.ndarray:
        """(M, J) BLER of every MCS at the effective SNRs (delta already added)."""
        return np.stack([10.0 ** np.interp(snr_db, self._snr_db, row) for row in self._log_bler])

    def predicted_bler(self, mcs: Mcs, snr_db: np.ndarray | float, combined: bool = False) -> np.ndarray:
        """BLER the curves predict for `mcs` at each SNR plus the outer-loop delta (plus the chase gain)."""
        s = np.asarray(snr_db, float) + self.delta_db + (self.settings.combine_gain_db if combined else 0.0)
        return 10.0 ** np.interp(s, self._snr_db, self._log_bler[self._row(mcs)])

    def success(self, codeword_snr_db: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(p1, p2), each (M,): mean first-pass and chase-combined success per MCS over the SNR samples."""
        s = np.asarray(codeword_snr_db, float) + self.delta_db
        p1 = 1.0 - self._bler_rows(s).mean(axis=1)
        p2 = 1.0 - self._bler_rows(s + self.settings.combine_gain_db).mean(axis=1)
        return p1, p2

    def ergodic_success(self, snr_db: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(p1, p2), each (M,): success of codewords interleaved over all these SNRs, each MCS at their effective
        SNR for its modulation."""
        linear = 10.0 ** (np.asarray(snr_db, float)[None, :] / 10.0)
        eff = {mod: float(effective_snr_db(linear, mod)[0]) for mod in {m.modulation for m in self.table}}
        s = np.array([eff[m.modulation] for m in self.table]) + self.delta_db - self.settings.interleaved_loss_db
        gain = self.settings.combine_gain_db
        p1 = 1.0 - 10.0 ** np.array([np.interp(s[i], self._snr_db, row) for i, row in enumerate(self._log_bler)])
        p2 = 1.0 - 10.0 ** np.array([np.interp(s[i] + gain, self._snr_db, row) for i, row in enumerate(self._log_bler)])
        return p1, p2

    def expected_goodput(self, codeword_snr_db: np.ndarray) -> np.ndarray:
        """(M,) expected information bits per symbol of every MCS over these SNR samples (no window, no state)."""
        return self._goodput(*self.success(codeword_snr_db))

    def _goodput(self, p1: np.ndarray, p2: np.ndarray) -> np.ndarray:
        """G_m = b_m eta_m / (1 + (1 - p1) / p2): expected transmissions per codeword with chase combining."""
        return self._bits * self._eta / (1.0 + (1.0 - p1) / np.maximum(p2, 1e-12))

    def window(self, codeword_snr_db: np.ndarray) -> np.ndarray:
        """The finite SNRs to judge by: all of them, or the latest half when it moved >= moved_db."""
        s = np.asarray(codeword_snr_db, float).ravel()
        s = s[np.isfinite(s)]
        if s.size == 0:
            return s
        latest = s[s.size // 2:]
        previous = self._previous_db
        if previous is not None and abs(float(np.median(latest)) - previous) >= self.settings.moved_db:
            s = latest
        self._previous_db = float(np.median(s))
        return s

    def pick(self, codeword_snr_db: np.ndarray, tail: TailInfo | None = None) -> Mcs:
        """The MCS for the next burst; the most robust one when no SNR is finite."""
        s = self.window(codeword_snr_db)
        if s.size == 0:
            self.last_predicted_bler = None
            return self.table[0]
        n = int(np.isfinite(np.asarray(codeword_snr_db, float)).sum())  # before the window: a cut means a step
        probe = s.size == n < self.settings.prior_below_codewords
        spread = np.ptp(s) > (self.settings.probe_spread_db if probe else self.settings.fading_spread_db)
        if probe and spread:
            margin = self.settings.interleaved_prior_margin_db if self.settings.interleaved else 0.0
            s = fading_prior(s - margin, self.settings.fading_prior_k_db)
        p1, p2 = self.ergodic_success(s) if self.settings.interleaved and spread else self.success(s)
        goodput = np.where(p1 >= 1.0 - self.settings.max_first_pass_bler, self._goodput(p1, p2), 0.0)
        best = int(np.argmax(goodput >= goodput.max() * (1.0 - TIE_TOLERANCE)))  # ties: the more robust one
        if tail is not None and tail.remaining_bytes > 0:
            codewords = -(-tail.remaining_bytes // self._codeword_bytes[best])
            if -(-codewords // self._codewords_per_burst(best)) <= self.settings.tail_bursts:
                best = int(np.argmin(self.completion_s(p1, tail, p2)))
        self.last_predicted_bler = float(1.0 - p1[best])
        self._sample_size.pop(self.last_predicted_bler, None)
        self._sample_size[self.last_predicted_bler] = n
        while len(self._sample_size) > 32:
            self._sample_size.pop(next(iter(self._sample_size)))
        return self.table[best]

    def completion_s(self, p1: np.ndarray, tail: TailInfo, p2: np.ndarray | None = None) -> np.ndarray:
        """(M,) expected seconds to deliver the tail: airtime + P(any codeword fails) (rtt + repair airtime).

        The repair airtime counts every repeat of a failed codeword, (1 - p1) / p2 transmissions per codeword
        as in the goodput formula (p2 None: 1, a single repair that always succeeds; under block fading a
        repair fails about as often as the first pass, and ignoring that made the tail prefer fast MCSs).

        Only MCSs eligible for goodput (first-pass BLER <= max_first_pass_bler) compete; the others get inf (the
        formula counts one repair, so an MCS that never decodes would look like twice its airtime plus a round
        trip: at 0 dB every tail burst went out at 256qam-5/6 and the transfer stalled). When none is eligible
        the most robust MCS gets 0.
        """
        eligible = p1 >= 1.0 - self.settings.max_first_pass_bler
        out = np.full(len(self.table), np.inf)
        if not eligible.any():
            out[0] = 0.0
            return out
        for i, mcs in enumerate(self.table):
            if not eligible[i]:
                continue
            k = int(-(-tail.remaining_bytes // self._codeword_bytes[i]))
            p_fail = 1.0 - float(p1[i]) ** k
            first = self._airtime_s(mcs, k)
            if p_fail <= 0.0:
                out[i] = first
                continue
            repeats = 1.0 if p2 is None else 1.0 / max(float(p2[i]), 1e-12)
            failed = max(1, math.ceil(k * (1.0 - float(p1[i])) * repeats / p_fail))  # to repair, given a failure
            out[i] = first + p_fail * (tail.rtt_s + self._airtime_s(mcs, failed))
        return out

    def _codewords_per_burst(self, i: int) -> int:
        """Codewords one burst of burst_airtime_s carries at table[i]."""
        st = self.settings
        room = (st.burst_airtime_s * st.symbol_rate_hz - BURST_FIXED_SYMBOLS) * self._eta[i]
        return max(1, int(room // self._codeword_symbols[i]))

    def _default_airtime_s(self, mcs: Mcs, codewords: int) -> float:
        """Fixed symbols per burst plus codeword symbols / eta, at the symbol rate."""
        i = self._row(mcs)
        bursts = -(-codewords // self._codewords_per_burst(i))
        symbols = bursts * BURST_FIXED_SYMBOLS + codewords * self._codeword_symbols[i] / self._eta[i]
        return float(symbols / self.settings.symbol_rate_hz)

    def update(self, observed_bler: float, predicted_bler: float | None = None) -> float:
        """Outer loop after a burst: a channel worse than predicted lowers delta. Returns the new delta (dB)."""
        predicted = self.last_predicted_bler if predicted_bler is None else predicted_bler
        if predicted is None or not (math.isfinite(observed_bler) and math.isfinite(predicted)):
            return self.delta_db
        st = self.settings
        weight = min(1.0, self._sample_size.get(predicted, st.full_sample_codewords) / st.full_sample_codewords)
        floor = st.interleaved_min_predicted_bler if st.interleaved else st.min_predicted_bler
        step = weight * st.outer_gain * (observed_bler - predicted) / max(predicted, floor)
        self.delta_db = float(np.clip(self.delta_db - step, -st.delta_limit_db, st.delta_limit_db))
        return self.delta_db


@lru_cache(maxsize=8)
def _rician_quantiles_db(k_db: float, points: int) -> np.ndarray:
    """(points,) quantiles of 10 log10 |h|^2 (E|h|^2 = 1, Rician K = k_db) at (i + 0.5) / points (seeded sample)."""
    k = 10.0 ** (k_db / 10.0)
    w = np.random.default_rng(0).standard_normal((4096, 2))
    h2 = np.abs(np.sqrt(k / (k + 1.0)) + np.sqrt(0.5 / (k + 1.0)) * (w[:, 0] + 1j * w[:, 1])) ** 2
    return 10.0 * np.log10(np.quantile(h2, (np.arange(points) + 0.5) / points))


def fading_prior(snr_db: np.ndarray, k_db: float, points: int = 64) -> np.ndarray:
    """(points,) SNRs (dB) of Rician block fading with factor k_db at the mean power of the given SNRs."""
    mean_db = 10.0 * np.log10(np.mean(10.0 ** (np.asarray(snr_db, float) / 10.0)))
    return mean_db + _rician_quantiles_db(float(k_db), int(points))


def make_picker(mcs_setting: str, family: str = "ldpc", curves: dict | None = None, **kwargs) -> McsPicker:
    """radio.mcs 'auto' -> McsSelector over the family's measured curves; an MCS name -> FixedMcs."""
    if mcs_setting == "auto":
        return McsSelector(family_table(family), curves if curves is not None else bler_curves(), **kwargs)
    return FixedMcs(by_name(mcs_setting))
