"""McsSelector: the argmax of expected goodput on synthetic curves, monotone on the shipped curves, the outer
loop, the SNR window, the tail rule; FixedMcs and make_picker."""

import numpy as np
import pytest

from radio.errors import RadioError
from radio.link_adaptation import FixedMcs, McsSelector, SelectorSettings, TailInfo, make_picker
from radio.mcs import LDPC_MCS_TABLE, bler_curves, by_name

GRID = np.arange(-10.0, 40.01, 0.25)
SMALL = tuple(by_name(n) for n in ("ldpc-bpsk-1/2", "ldpc-qpsk-1/2", "ldpc-16qam-1/2", "ldpc-64qam-2/3"))
CENTRES_DB = (-1.0, 2.0, 7.0, 14.0)


def logistic_curves(table=SMALL, centres=CENTRES_DB, width_db: float = 0.3) -> dict:
    """BLER = 1 / (1 + exp((s - centre) / width)) per MCS on GRID."""
    x = np.clip((GRID[None, :] - np.asarray(centres, float)[:, None]) / width_db, -500, 500)
    bler = 1.0 / (1.0 + np.exp(x))
    return {"snr_db": GRID.tolist(), "bler": {m.name: bler[i].tolist() for i, m in enumerate(table)}}


def brute_force_goodput(curves: dict, table, s: np.ndarray, eta: float = 1.0, delta: float = 0.0) -> np.ndarray:
    """G_m = b_m eta / (1 + (1 - p1) / p2) straight from the curve definition (log10 interpolation, floor 1e-6)."""
    out = []
    for m in table:
        logb = np.log10(np.clip(curves["bler"][m.name], 1e-6, 1.0))
        p1 = 1 - np.mean(10 ** np.interp(s + delta, GRID, logb))
        p2 = 1 - np.mean(10 ** np.interp(s + delta + 3.0, GRID, logb))
        out.append((m.info_bits_per_symbol * eta / (1 + (1 - p1) / max(p2, 1e-12)), p1))
    return np.array(out)


def test_pick_is_the_argmax_of_expected_goodput_on_synthetic_curves() -> None:
    curves = logistic_curves()
    rng = np.random.default_rng(3)
    for centre in np.arange(-4.0, 20.0, 0.37):
        s = centre + rng.normal(0, 1.5, 64)
        sel = McsSelector(SMALL, curves, efficiency=lambda m: 0.965)
        expected, p1 = brute_force_goodput(curves, SMALL, s, eta=0.965).T
        np.testing.assert_allclose(sel.expected_goodput(s), expected, rtol=1e-9)
        eligible = np.where(p1 >= 0.5, expected, 0.0)  # first pass must succeed at least half the time
        assert sel.pick(s) == (SMALL[int(np.argmax(eligible))] if eligible.any() else SMALL[0])
        assert sel.last_predicted_bler == pytest.approx(1 - (1 - np.mean(  # the chosen MCS's first-pass BLER
            10 ** np.interp(s, GRID, np.log10(np.clip(curves["bler"][sel.pick(s).name], 1e-6, 1))))), rel=1e-9)


def test_step_curves_pick_the_fastest_working_mcs() -> None:
    curves = logistic_curves(width_db=0.01)  # steps at -1, 2, 7, 14 dB
    for snr, name in [(-5.0, "ldpc-bpsk-1/2"), (0.0, "ldpc-bpsk-1/2"), (3.0, "ldpc-qpsk-1/2"),
                      (10.0, "ldpc-16qam-1/2"), (20.0, "ldpc-64qam-2/3")]:
        assert McsSelector(SMALL, curves).pick(np.full(8, snr)).name == name
    # 1 dB below a step only the combined copy (3 dB) decodes: 64qam-2/3 scores 4 / 2, as much as 16qam-1/2,
    # but a first pass that always fails is not eligible
    g = McsSelector(SMALL, curves).expected_goodput(np.full(8, 13.0))
    np.testing.assert_allclose(g, [0.5, 1.0, 2.0, 2.0], atol=1e-5)
    assert McsSelector(SMALL, curves).pick(np.full(8, 13.0)).name == "ldpc-16qam-1/2"


def test_a_hopeless_fast_mcs_never_beats_a_working_slow_one() -> None:
    curves = logistic_curves(width_db=0.01)
    sel = McsSelector(SMALL, curves)
    g = sel.expected_goodput(np.full(4, -8.0))  # nothing decodes, not even combined: nothing gets through
    np.testing.assert_allclose(g, 0.0, atol=1e-4)
    assert sel.pick(np.full(4, -8.0)) == SMALL[0] and sel.last_predicted_bler == pytest.approx(1.0)
    assert sel.pick(np.full(4, 5.0)).name == "ldpc-qpsk-1/2"


def test_shipped_curves_pick_monotone_in_snr_and_span_the_table() -> None:
    sel = McsSelector.from_shipped(efficiency=lambda m: 0.965)
    picks = [sel.pick(np.full(16, s)) for s in np.arange(-10.0, 35.01, 0.25)]
    rates = [m.info_bits_per_symbol for m in picks]
    assert rates == sorted(rates)
    assert picks[0].name == "ldpc-bpsk-1/4" and picks[-1].name == "ldpc-256qam-5/6"
    assert len({m.name for m in picks}) >= 12  # most of the ladder is somebody's best


def test_outer_loop_moves_delta_the_right_way_and_clips() -> None:
    sel = McsSelector(SMALL, logistic_curves())
    assert sel.update(0.15, 0.05) == pytest.approx(-1.0)  # worse than predicted: effective SNR lower
    assert sel.update(0.0, 0.001) == pytest.approx(-1.0 + 0.5 * 0.001 / 0.01)  # predicted floored at 0.01
    for _ in range(10):
        sel.update(1.0, 0.02)
    assert sel.delta_db == -3.0
    for _ in range(20):
        sel.update(0.0, 0.5)
    assert sel.delta_db == 3.0
    assert sel.update(float("nan"), 0.1) == 3.0  # nothing observed: unchanged


def test_delta_shifts_the_pick_and_the_prediction() -> None:
    curves = logistic_curves(width_db=0.01)
    sel = McsSelector(SMALL, curves)
    assert sel.pick(np.full(8, 7.5)).name == "ldpc-16qam-1/2"
    assert sel.predicted_bler(SMALL[2], 7.5) == pytest.approx(0.0, abs=1e-6)
    sel.update(0.6, sel.last_predicted_bler)  # the channel is far worse: delta -> -3 dB
    assert sel.delta_db == -3.0
    assert sel.predicted_bler(SMALL[2], 7.5) == pytest.approx(1.0)
    assert sel.pick(np.full(8, 7.5)).name == "ldpc-qpsk-1/2"


def test_latest_half_decides_after_a_jump() -> None:
    curves = logistic_curves(width_db=0.01)
    sel = McsSelector(SMALL, curves)
    assert sel.pick(np.full(20, 20.0)).name == "ldpc-64qam-2/3"
    burst = np.r_[np.full(12, 20.0), np.full(8, 4.0)]  # the channel dropped 16 dB late in the burst
    assert sel.pick(burst).name == "ldpc-qpsk-1/2"  # judged on the latest half: 8 of its 10 at 4 dB
    fresh = McsSelector(SMALL, curves)  # no previous burst: the whole array counts, 60 % of it at 20 dB
    assert fresh.pick(burst).name == "ldpc-64qam-2/3"  # p1 = p2 = 0.6: 4 / 1.67 beats 16qam-1/2's 2 / 1.5


def test_nan_or_empty_snr_picks_the_most_robust() -> None:
    sel = McsSelector.from_shipped()
    for s in (np.array([]), np.array([np.nan, np.inf]), np.full(3, np.nan)):
        assert sel.pick(s) == LDPC_MCS_TABLE[0]
        assert sel.last_predicted_bler is None
    assert sel.update(0.5) == 0.0  # no prediction to compare with
    assert sel.pick(np.array([np.nan, 30.0, 30.0])).name == "ldpc-256qam-5/6"  # NaNs dropped


def test_tail_rule_prefers_a_robust_mcs_for_a_tiny_remainder_and_a_long_rtt() -> None:
    sel = McsSelector.from_shipped(efficiency=lambda m: 0.965)
    s = np.full(32, 17.5)
    plain = sel.pick(s)
    assert 0.005 < sel.last_predicted_bler < 0.5  # the goodput pick runs into its waterfall here
    tail = sel.pick(s, TailInfo(remaining_bytes=150, rtt_s=0.5))
    assert tail.info_bits_per_symbol < plain.info_bits_per_symbol
    assert sel.last_predicted_bler < 1e-3
    assert sel.pick(s, TailInfo(remaining_bytes=10_000_000, rtt_s=0.5)) == plain  # far from the end: goodput
    assert sel.pick(s, TailInfo(remaining_bytes=0, rtt_s=0.5)) == plain


def test_tail_completion_time_numbers() -> None:
    """One codeword of ldpc-qpsk-1/2 (972 symbols) at 250 ksym/s: 1128 fixed + 972 symbols = 8.4 ms."""
    curves = logistic_curves(width_db=0.01)
    sel = McsSelector(SMALL, curves, settings=SelectorSettings(symbol_rate_hz=250e3))
    p1, _ = sel.success(np.full(4, 3.0))
    t = sel.completion_s(p1, TailInfo(remaining_bytes=100, rtt_s=0.2))
    assert t[1] == pytest.approx((1128 + 972) / 250e3, rel=1e-4)
    assert t[2] == np.inf and t[3] == np.inf  # 16qam / 64qam never decode at 3 dB: not candidates for the tail
    p1_half = np.array([1.0, 1.0, 0.9, 0.0])  # 16qam eligible with one codeword failing in ten
    t = sel.completion_s(p1_half, TailInfo(remaining_bytes=100, rtt_s=0.2))
    assert t[2] == pytest.approx((1128 + 486) / 250e3 + 0.1 * (0.2 + (1128 + 486) / 250e3))  # one repair if it fails
    nothing = sel.completion_s(np.zeros(4), TailInfo(remaining_bytes=100, rtt_s=0.2))
    assert nothing[0] == 0.0 and np.isinf(nothing[1:]).all()  # nothing decodes: the most robust MCS


def test_fixed_mcs_and_make_picker() -> None:
    fixed = make_picker("ldpc-qpsk-3/4")
    assert isinstance(fixed, FixedMcs)
    assert fixed.pick(np.array([-20.0])).name == "ldpc-qpsk-3/4" and fixed.update(1.0, 0.0) == 0.0
    assert isinstance(make_picker("auto", curves=logistic_curves(LDPC_MCS_TABLE, np.arange(15.0))), McsSelector)
    with pytest.raises(RadioError, match="unknown MCS"):
        make_picker("ldpc-qpsk-7/8")


def test_missing_or_bad_curves_are_refused() -> None:
    with pytest.raises(RadioError, match="lack ldpc-64qam-2/3"):
        McsSelector(SMALL, logistic_curves(SMALL[:3], CENTRES_DB[:3]))
    bad = logistic_curves()
    bad["snr_db"] = bad["snr_db"][::-1]
    with pytest.raises(RadioError, match="increasing SNR grid"):
        McsSelector(SMALL, bad)


def test_shipped_curves_load() -> None:
    assert bler_curves()["level"] == "receiver"


def test_whole_burst_losses_in_receiver_curves_are_not_held_against_the_mcs() -> None:
    """Receiver-level curves count codewords of bursts a fresh receiver never found (burst_lost); a running link
    holds a CFO prior and its ARQ handles a lost burst, so the selector judges codewords of received bursts."""
    curves = logistic_curves(width_db=0.01)
    plain = McsSelector(SMALL, curves)
    lost = {name: [0.3] * len(GRID) for name in curves["bler"]}  # 30 % of every MCS's codewords in lost bursts
    inflated = {**curves, "bler": {n: list(0.3 + 0.7 * np.asarray(v)) for n, v in curves["bler"].items()},
                "burst_lost": lost}
    sel = McsSelector(SMALL, inflated)
    for snr in (-5.0, 3.0, 10.0, 20.0):
        s = np.full(8, snr)
        np.testing.assert_allclose(sel.expected_goodput(s), plain.expected_goodput(s), rtol=1e-6, atol=1e-9)
        assert sel.pick(s) == plain.pick(s)
